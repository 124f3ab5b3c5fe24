//! `mqtts` listeners: MQTT over TLS with Debian's mosquitto clients, mutual TLS with required or
//! optional client certificates, and a broker that refuses to start on unusable TLS files.
//! Certificates are made per test with the `openssl` command (e2e/src/certs.rs).

use std::io::{Read, Write};
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
