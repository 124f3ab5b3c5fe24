//! Test PKI made with the `openssl` command: a CA, a server certificate for 127.0.0.1 and
//! localhost, and client certificates, as PEM files in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// A certificate authority and the certificates it signed, in one directory.
pub struct Pki {
    dir: TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running openssl (install it: scripts/install-deps.sh): {e}"));
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Pki {
    /// A new CA named `ca_name` with a server certificate (`server.pem`, `server.key`) valid for
    /// 127.0.0.1 and localhost.
    pub fn new(ca_name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let d = dir.path();
        let subject = format!("/CN={ca_name}");
        openssl(d, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.ec"]);
        openssl(d, &["pkcs8", "-topk8", "-nocrypt", "-in", "ca.ec", "-out", "ca.key"]);
        openssl(d, &["req", "-x509", "-new", "-key", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", &subject]);
        let pki = Pki { dir };
        pki.issue("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
        pki
    }

    /// Issues `<name>.pem` / `<name>.key` with common name `cn` and the given extensions
    /// (openssl `-extfile` lines, e.g. `subjectAltName=URI:spiffe://fleet/truck-1`).
    pub fn issue(&self, name: &str, cn: &str, extensions: &str) {
        let d = self.dir.path();
        std::fs::write(d.join(format!("{name}.ext")), extensions).unwrap_or_else(|e| panic!("ext file: {e}"));
        let (ec, key, csr, pem, ext) = (
            format!("{name}.ec"),
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        openssl(d, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &ec]);
        openssl(d, &["pkcs8", "-topk8", "-nocrypt", "-in", &ec, "-out", &key]);
        openssl(d, &["req", "-new", "-key", &key, "-out", &csr, "-subj", &format!("/CN={cn}")]);
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }

    /// Issues a client certificate `<name>.pem` / `<name>.key` with common name `name`.
    pub fn client(&self, name: &str) -> (PathBuf, PathBuf) {
        self.issue(name, name, "extendedKeyUsage=clientAuth\n");
        (self.path(&format!("{name}.pem")), self.path(&format!("{name}.key")))
    }

    /// A file of this PKI, e.g. `ca.pem`, `server.pem`, `server.key`.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// An `mqtts` listener entry for the broker's config on `port`; with `client_ca`, mTLS
    /// against this CA, `required` or optional.
    pub fn listener(&self, port: u16, client_ca: bool, required: bool) -> String {
        self.listener_of("mqtts", port, client_ca, required)
    }

    /// Like [`Pki::listener`] for `protocol` (`mqtts` or `wss`), named after it.
    pub fn listener_of(&self, protocol: &str, port: u16, client_ca: bool, required: bool) -> String {
        let mut tls = format!(
            "certFile: '{}', keyFile: '{}'",
            self.path("server.pem").display(),
            self.path("server.key").display()
        );
        if client_ca {
            tls.push_str(&format!(
                ", clientCaFile: '{}', requireClientCert: {required}",
                self.path("ca.pem").display()
            ));
        }
        format!("{{ name: {protocol}, protocol: {protocol}, address: '127.0.0.1:{port}', tls: {{ {tls} }} }}")
    }
}
