//! `mqtts` listeners: MQTT over TLS with Debian's mosquitto clients, mutual TLS with required or
//! optional client certificates, and a broker that refuses to start on unusable TLS files.
//! Certificates are made per test with the `openssl` command (e2e/src/certs.rs).

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;
use tributary_e2e::certs::Pki;
use tributary_e2e::procs::{broker_bin, BrokerOptions};
use tributary_e2e::{free_port, wait_for_port, BrokerProcess, KafkaServer};

/// Publishes a retained message through the plain listener, so a later subscriber over TLS
/// receives it at once.
fn publish_retained(port: u16, topic: &str, payload: &str) {
    let ok = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-r", "-t", topic, "-m", payload])
        .status()
        .unwrap_or_else(|e| panic!("mosquitto_pub: {e}"))
        .success();
    assert!(ok, "mosquitto_pub over plain TCP");
}

/// `mosquitto_sub` over TLS for one message on `topic`, trusting `ca`, with an optional client
/// certificate.
fn subscribe_tls(port: u16, ca: &Path, client: Option<(&Path, &Path)>, topic: &str) -> Output {
    let mut cmd = Command::new("mosquitto_sub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", topic, "-C", "1", "-W", "10"]);
    cmd.arg("--cafile").arg(ca);
    if let Some((cert, key)) = client {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    cmd.output().unwrap_or_else(|e| panic!("mosquitto_sub: {e}"))
}

fn received(out: &Output) -> String {
    assert!(out.status.success(), "mosquitto_sub failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn broker_with(kafka: &KafkaServer, listener: String) -> BrokerProcess {
    BrokerProcess::start_with(kafka, &BrokerOptions { extra_listeners: vec![listener], ..Default::default() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_listener_serves_mqtt_over_tls_next_to_plain_tcp() {
    let kafka = KafkaServer::start();
    let pki = Pki::new("tributary-test-ca");
    let tls_port = free_port();
    let b = broker_with(&kafka, pki.listener(tls_port, false, false));
    wait_for_port(&format!("127.0.0.1:{tls_port}"), Duration::from_secs(10));

    publish_retained(b.port, "tls/plain", "over tcp");
    let out = tokio::task::spawn_blocking({
        let ca = pki.path("ca.pem");
        move || subscribe_tls(tls_port, &ca, None, "tls/plain")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(received(&out), "over tcp", "a message crosses from the TCP to the TLS listener");

    // A client that does not trust the server's CA does not connect.
    let other = Pki::new("some-other-ca");
    let out = subscribe_tls(tls_port, &other.path("ca.pem"), None, "tls/plain");
    assert!(!out.status.success(), "connected with an untrusted server certificate");

    // Plain MQTT sent to the TLS port gets no CONNACK, and is counted.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", tls_port)).unwrap_or_else(|e| panic!("{e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap_or_else(|e| panic!("{e}"));
    s.write_all(&[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 30, 0, 1, b'x']).unwrap_or_else(|e| panic!("{e}"));
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    assert!(n == 0 || buf[0] != 0x20, "plain MQTT got a CONNACK from the TLS port");
    let failed = |m: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix("tributary_tls_handshake_failed_total "))
            .and_then(|v| v.parse::<u64>().ok())
    };
    tributary_e2e::eventually("the failed handshake counted", Duration::from_secs(10), || {
        failed(&b.metrics()).filter(|n| *n >= 2)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_certificates_of_the_client_ca_when_required() {
    let kafka = KafkaServer::start();
    let pki = Pki::new("tributary-test-ca");
    let (cert, key) = pki.client("device-1");
    let other = Pki::new("rogue-ca");
    let (rogue_cert, rogue_key) = other.client("device-1");
    let required_port = free_port();
    let b = broker_with(&kafka, pki.listener(required_port, true, true));
    wait_for_port(&format!("127.0.0.1:{required_port}"), Duration::from_secs(10));
    publish_retained(b.port, "tls/m", "hello device");
    let ca = pki.path("ca.pem");

    let out = subscribe_tls(required_port, &ca, Some((&cert, &key)), "tls/m");
    assert_eq!(received(&out), "hello device");
    let out = subscribe_tls(required_port, &ca, None, "tls/m");
    assert!(!out.status.success(), "connected without a client certificate");
    let out = subscribe_tls(required_port, &ca, Some((&rogue_cert, &rogue_key)), "tls/m");
    assert!(!out.status.success(), "connected with a certificate of another CA");
    drop(b);

    // Optional client certificates: clients without one are served too.
    let optional_port = free_port();
    let b = broker_with(&kafka, pki.listener(optional_port, true, false));
    wait_for_port(&format!("127.0.0.1:{optional_port}"), Duration::from_secs(10));
    assert_eq!(received(&subscribe_tls(optional_port, &ca, None, "tls/m")), "hello device");
    assert_eq!(received(&subscribe_tls(optional_port, &ca, Some((&cert, &key)), "tls/m")), "hello device");
    let out = subscribe_tls(optional_port, &ca, Some((&rogue_cert, &rogue_key)), "tls/m");
    assert!(!out.status.success(), "a certificate that fails verification is refused even when optional");
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cn_rules_grant_one_certificate_and_refuse_another() {
    let kafka = KafkaServer::start();
    let pki = Pki::new("tributary-test-ca");
    let (truck17, truck17_key) = pki.client("truck-17");
    let (truck18, truck18_key) = pki.client("truck-18");
    let port = free_port();
    let opts = BrokerOptions {
        extra_listeners: vec![pki.listener(port, true, true)],
        authorization: Some(
            "{ defaultEffect: deny, rules: [\
             { principal: 'cn:truck-17', action: all, topic: 'trucks/17/#', effect: allow },\
             { principal: anonymous, action: publish, topic: 'trucks/#', effect: allow } ] }"
                .into(),
        ),
        ..Default::default()
    };
    let b = BrokerProcess::start_with(&kafka, &opts);
    wait_for_port(&format!("127.0.0.1:{port}"), Duration::from_secs(10));
    publish_retained(b.port, "trucks/17/route", "north");
    let ca = pki.path("ca.pem");

    let out = subscribe_tls(port, &ca, Some((&truck17, &truck17_key)), "trucks/17/route");
    assert_eq!(received(&out), "north", "cn:truck-17 may read its own topics");
    let out = subscribe_tls(port, &ca, Some((&truck18, &truck18_key)), "trucks/17/route");
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(stderr.contains("denied"), "truck-18 is not truck-17: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_name_can_be_a_subject_alternative_name() {
    let kafka = KafkaServer::start();
    let pki = Pki::new("tributary-test-ca");
    // The same common name, different URIs: only the URI (a SPIFFE ID) decides.
    pki.issue("a", "device", "subjectAltName=URI:spiffe://fleet/truck-1\nextendedKeyUsage=clientAuth\n");
    pki.issue("b", "device", "subjectAltName=URI:spiffe://fleet/truck-2\nextendedKeyUsage=clientAuth\n");
    let port = free_port();
    let opts = BrokerOptions {
        extra_listeners: vec![pki.listener(port, true, true)],
        authentication: Some("{ allowAnonymous: true, certificateName: sanUri }".into()),
        authorization: Some(
            "{ defaultEffect: deny, rules: [\
             { principal: 'cn:spiffe://fleet/truck-1', action: subscribe, topic: 'trucks/1/#', effect: allow },\
             { principal: anonymous, action: publish, topic: 'trucks/#', effect: allow } ] }"
                .into(),
        ),
        ..Default::default()
    };
    let b = BrokerProcess::start_with(&kafka, &opts);
    wait_for_port(&format!("127.0.0.1:{port}"), Duration::from_secs(10));
    publish_retained(b.port, "trucks/1/route", "south");
    let ca = pki.path("ca.pem");
    let (a, a_key, b_cert, b_key) = (pki.path("a.pem"), pki.path("a.key"), pki.path("b.pem"), pki.path("b.key"));
    assert_eq!(received(&subscribe_tls(port, &ca, Some((&a, &a_key)), "trucks/1/route")), "south");
    let out = subscribe_tls(port, &ca, Some((&b_cert, &b_key)), "trucks/1/route");
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(stderr.contains("denied"), "truck-2's URI is not truck-1's: {stderr}");
}

/// Copies `pki`'s server certificate and key over the listener's files, as the kubelet swaps a
/// rotated Secret: new files renamed into place.
fn install_server_cert(pki: &Pki, dir: &Path) {
    for (from, to) in [("server.pem", "tls.crt"), ("server.key", "tls.key")] {
        let tmp = dir.join(format!("{to}.tmp"));
        std::fs::copy(pki.path(from), &tmp).unwrap_or_else(|e| panic!("{e}"));
        std::fs::rename(&tmp, dir.join(to)).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_serves_new_connections_and_keeps_open_ones() {
    let kafka = KafkaServer::start();
    let (old, new) = (Pki::new("old-ca"), Pki::new("new-ca"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    install_server_cert(&old, dir.path());
    let port = free_port();
    let (crt, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let listener = format!(
        "{{ name: mqtts, protocol: mqtts, address: '127.0.0.1:{port}', tls: {{ certFile: '{}', keyFile: '{}' }} }}",
        crt.display(),
        key.display()
    );
    let b = broker_with(&kafka, listener);
    wait_for_port(&format!("127.0.0.1:{port}"), Duration::from_secs(10));

    // A subscriber connected with the old certificate, waiting for two messages. The first is
    // retained before it subscribes, so it arrives once, as the retained message; reading it
    // proves the subscription is in place before the rotation.
    publish_retained(b.port, "rot/t", "before");
    let mut open = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", "rot/t", "-C", "2", "-W", "60"])
        .arg("--cafile")
        .arg(old.path("ca.pem"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("mosquitto_sub: {e}"));
    let stdout = open.stdout.take().unwrap_or_else(|| panic!("mosquitto_sub has no stdout"));
    let (mut lines, first) = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let first = lines.next().transpose().unwrap_or_else(|e| panic!("{e}"));
        (lines, first)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.as_deref(), Some("before"), "the subscriber over the old certificate got the retained message");

    install_server_cert(&new, dir.path());
    // New handshakes get the new certificate once the broker has noticed (it checks every 2 s).
    let new_ca = new.path("ca.pem");
    tributary_e2e::eventually("the new certificate is served", Duration::from_secs(30), || {
        let out = subscribe_tls(port, &new_ca, None, "rot/t");
        (out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "before").then_some(())
    })
    .await;
    let refused = subscribe_tls(port, &old.path("ca.pem"), None, "rot/t");
    assert!(!refused.status.success(), "the old CA no longer verifies the server");

    // The connection opened before the rotation still works.
    publish_retained(b.port, "rot/t", "after");
    let (status, second) = tokio::task::spawn_blocking(move || {
        let second = lines.next().transpose().unwrap_or_else(|e| panic!("{e}"));
        (open.wait().unwrap_or_else(|e| panic!("{e}")), second)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "the open subscriber kept its connection");
    assert_eq!(second.as_deref(), Some("after"));
}

#[test]
fn unusable_tls_files_stop_the_broker_naming_the_listener_and_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let missing = dir.path().join("missing.pem");
    let config = format!(
        "listeners:\n  - {{ name: secure, protocol: mqtts, address: '127.0.0.1:{}', \
         tls: {{ certFile: '{}', keyFile: '{}' }} }}\nkafka: {{ bootstrapServers: '127.0.0.1:9' }}\n",
        free_port(),
        missing.display(),
        missing.display()
    );
    let path = dir.path().join("broker.yaml");
    std::fs::write(&path, config).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(broker_bin()).arg("--config").arg(&path).output().unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("listener secure: TLS"), "{stderr}");
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
}
