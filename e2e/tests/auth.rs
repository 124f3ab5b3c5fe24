//! Password authentication with Debian's mosquitto clients: a password file of
//! `username:<argon2id hash>` lines (made with `tributary-broker hash-password`), `allowAnonymous: false`, wrong passwords refused with the right
//! reason code in both protocol versions, the file reloaded while the broker runs, and clients
//! with a verified TLS client certificate admitted without a password.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use tributary_e2e::certs::Pki;
use tributary_e2e::procs::{password_line, BrokerOptions};
use tributary_e2e::{free_port, wait_for_port, BrokerProcess, KafkaServer};

fn write_passwords(path: &Path, users: &[(&str, &str)]) {
    let text: String = users.iter().map(|(u, p)| format!("{}\n", password_line(u, p))).collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("# test users\n{text}")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("{e}"));
}

/// `mosquitto_pub` of one QoS 1 message with optional credentials and protocol version.
fn publish(port: u16, version: &str, user: Option<(&str, &str)>) -> Output {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-V", version, "-q", "1", "-t", "auth/t", "-m", "x"]);
    if let Some((u, p)) = user {
        cmd.args(["-u", u, "-P", p]);
    }
    cmd.output().unwrap_or_else(|e| panic!("mosquitto_pub: {e}"))
}

fn refused_with(out: &Output, text: &str) {
    assert!(!out.status.success(), "expected a refusal");
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(stderr.contains(text), "expected {text:?} in {stderr:?}");
}

fn broker(kafka: &KafkaServer, passwords: &Path, extra: Vec<String>) -> BrokerProcess {
    let opts = BrokerOptions {
        authentication: Some(format!("{{ allowAnonymous: false, passwordFile: '{}' }}", passwords.display())),
        extra_listeners: extra,
        ..Default::default()
    };
    BrokerProcess::start_with(kafka, &opts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_clients_with_the_right_password_connect_and_the_file_is_reloaded() {
    let kafka = KafkaServer::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let passwords = dir.path().join("passwords");
    write_passwords(&passwords, &[("dev-1", "s3cret")]);
    let b = broker(&kafka, &passwords, vec![]);

    for version in ["mqttv311", "mqttv5"] {
        let ok = publish(b.port, version, Some(("dev-1", "s3cret")));
        assert!(ok.status.success(), "{version}: {}", String::from_utf8_lossy(&ok.stderr));
    }
    refused_with(&publish(b.port, "mqttv311", Some(("dev-1", "wrong"))), "bad user name or password");
    refused_with(&publish(b.port, "mqttv5", Some(("dev-1", "wrong"))), "bad user name or password");
    refused_with(&publish(b.port, "mqttv311", None), "not authorised");
    refused_with(&publish(b.port, "mqttv5", None), "not authorized");
    refused_with(&publish(b.port, "mqttv5", Some(("dev-2", "n3w"))), "bad user name or password");
    let failed = b.metrics();
    assert!(failed.contains("\ntributary_auth_failed_total 5\n"), "{failed}");

    // A new user in the mounted file works without a restart (a rotated Secret).
    write_passwords(&passwords, &[("dev-1", "s3cret"), ("dev-2", "n3w")]);
    let start = Instant::now();
    loop {
        if publish(b.port, "mqttv5", Some(("dev-2", "n3w"))).status.success() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "the new password file was not picked up");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A broken file is ignored: the previous users keep working.
    std::fs::write(&passwords, "garbage without colon\n").unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(publish(b.port, "mqttv5", Some(("dev-2", "n3w"))).status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_client_certificate_needs_no_password() {
    let kafka = KafkaServer::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let passwords = dir.path().join("passwords");
    write_passwords(&passwords, &[("dev-1", "s3cret")]);
    let pki = Pki::new("tributary-test-ca");
    let (cert, key) = pki.client("device-7");
    let tls_port = free_port();
    // Optional client certificates: with one, no password; without, the password file decides.
    let b = broker(&kafka, &passwords, vec![pki.listener(tls_port, true, false)]);
    wait_for_port(&format!("127.0.0.1:{tls_port}"), Duration::from_secs(10));
    let tls_pub = |client: Option<(&Path, &Path)>| {
        let mut cmd = Command::new("mosquitto_pub");
        cmd.args(["-h", "127.0.0.1", "-p", &tls_port.to_string(), "-q", "1", "-t", "auth/tls", "-m", "x"]);
        cmd.arg("--cafile").arg(pki.path("ca.pem"));
        if let Some((c, k)) = client {
            cmd.arg("--cert").arg(c).arg("--key").arg(k);
        }
        cmd.output().unwrap_or_else(|e| panic!("mosquitto_pub: {e}"))
    };
    let ok = tls_pub(Some((&cert, &key)));
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    refused_with(&tls_pub(None), "not authorised");
    drop(b);
}
