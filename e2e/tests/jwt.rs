//! JSON Web Tokens as CONNECT passwords, with rumqttc over TCP and WebSocket: valid tokens let
//! their user in with its `user:` and `group:` rules, expired, foreign-audience and badly signed
//! ones are refused with 0x86, a connection ends with DISCONNECT 0xA0 when its token expires,
//! and ES256 tokens are checked against a PEM public key.

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, DisconnectReasonCode, Filter, PubAckReason};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::MqttOptions;
use rumqttc::Transport;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tributary_e2e::mqtt5::{options5, Client5};
use tributary_e2e::procs::BrokerOptions;
use tributary_e2e::{free_port, wait_for_port, BrokerProcess, KafkaServer};

const SECRET: &[u8] = b"fleet-signing-secret-of-32-bytes!!";
const RULES: &str = "{ defaultEffect: deny, rules: [\
    { principal: 'user:truck-1', action: publish, topic: 'fleet/trucks/truck-1', effect: allow },\
    { principal: 'group:ui', action: subscribe, topic: 'fleet/#', effect: allow } ] }";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn hs256(claims: serde_json::Value, secret: &[u8]) -> String {
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret)).unwrap_or_else(|e| panic!("{e}"))
}

/// A file holding [`SECRET`], in a directory that lives as long as the returned guard.
fn secret_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap_or_else(|e| panic!("{e}"));
    (dir, secret)
}

fn with_token(mut o: MqttOptions, user: &str, token: &str) -> MqttOptions {
    o.set_credentials(user, token);
    o
}

/// Options for a WebSocket connection to `port`.
fn ws5(port: u16, id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, format!("ws://127.0.0.1:{port}/mqtt"), port);
    o.set_transport(Transport::Ws);
    o.set_keep_alive(Duration::from_secs(30));
    o
}

fn jwt_broker(kafka: &KafkaServer, jwt: &str, ws_port: u16) -> BrokerProcess {
    let opts = BrokerOptions {
        authentication: Some(format!("{{ allowAnonymous: false, jwt: {jwt} }}")),
        authorization: Some(RULES.into()),
        extra_listeners: vec![format!("{{ name: ws, protocol: ws, address: '127.0.0.1:{ws_port}' }}")],
        ..Default::default()
    };
    let b = BrokerProcess::start_with(kafka, &opts);
    wait_for_port(&format!("127.0.0.1:{ws_port}"), Duration::from_secs(10));
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_verified_over_tcp_and_websocket() {
    let kafka = KafkaServer::start();
    let (_dir, secret) = secret_file();
    let ws_port = free_port();
    let jwt =
        format!("{{ algorithm: HS256, secretFile: '{}', audience: mqtt, groupsClaim: groups }}", secret.display());
    let b = jwt_broker(&kafka, &jwt, ws_port);
    let exp = now() + 600;

    // A dashboard in the ui group: over WebSocket, no user name, may read fleet/#.
    let ui = hs256(json!({"sub": "dashboard", "aud": "mqtt", "exp": exp, "groups": ["ui"]}), SECRET);
    let mut viewer = Client5::connect(with_token(ws5(ws_port, "viewer"), "", &ui)).await;
    viewer.subscribe(Filter::new("fleet/#", QoS::AtLeastOnce), None).await;
    // A truck over TCP, its user name the token's subject.
    let truck = hs256(json!({"sub": "truck-1", "aud": ["mqtt", "other"], "exp": exp}), SECRET);
    let t = Client5::connect(with_token(options5(b.port, "truck-1"), "truck-1", &truck)).await;
    t.client
        .publish("fleet/trucks/truck-1", QoS::AtLeastOnce, false, "45.4,9.2")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = viewer.publish_received(Duration::from_secs(15)).await;
    assert_eq!(&got.payload[..], b"45.4,9.2");
    // The ui identity may not publish: its group grants subscribe only.
    viewer
        .client
        .publish("fleet/trucks/truck-1", QoS::AtLeastOnce, false, "spoof")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(viewer.puback().await, PubAckReason::NotAuthorized);

    let refused = |o: MqttOptions| async move { Client5::try_connect(o).await.connack.code };
    let expired = hs256(json!({"sub": "truck-1", "aud": "mqtt", "exp": now() - 120}), SECRET);
    let foreign = hs256(json!({"sub": "truck-1", "aud": "billing", "exp": exp}), SECRET);
    let forged = hs256(json!({"sub": "truck-1", "aud": "mqtt", "exp": exp}), b"not-the-fleet-secret-but-32-bytes");
    let no_aud = hs256(json!({"sub": "truck-1", "exp": exp}), SECRET);
    let cases =
        [("expired", &expired), ("wrong audience", &foreign), ("no audience", &no_aud), ("bad signature", &forged)];
    for (what, token) in cases {
        assert_eq!(
            refused(with_token(options5(b.port, "t"), "truck-1", token)).await,
            ConnectReturnCode::BadUserNamePassword,
            "{what} over TCP"
        );
        assert_eq!(
            refused(with_token(ws5(ws_port, "t"), "", token)).await,
            ConnectReturnCode::BadUserNamePassword,
            "{what} over WebSocket"
        );
    }
    assert_eq!(
        refused(with_token(options5(b.port, "t"), "truck-2", &truck)).await,
        ConnectReturnCode::BadUserNamePassword,
        "the user name must be the token's"
    );
    assert_eq!(refused(options5(b.port, "anon")).await, ConnectReturnCode::NotAuthorized, "no token, no entry");
    let metrics = b.metrics();
    assert!(
        metrics.lines().any(|l| l.starts_with("tributary_acl_denied_total ") && l != "tributary_acl_denied_total 0"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_ends_when_its_token_expires() {
    let kafka = KafkaServer::start();
    let (_dir, secret) = secret_file();
    let b = jwt_broker(&kafka, &format!("{{ algorithm: HS256, secretFile: '{}' }}", secret.display()), free_port());
    let short = hs256(json!({"sub": "truck-1", "exp": now() + 3}), SECRET);
    let mut c = Client5::connect(with_token(options5(b.port, "short"), "truck-1", &short)).await;
    assert_eq!(c.disconnected(Duration::from_secs(20)).await, DisconnectReasonCode::MaximumConnectTime);
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().unwrap_or_else(|e| panic!("openssl: {e}"));
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_tokens_are_checked_against_the_public_key() {
    let kafka = KafkaServer::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    for name in ["idp", "other"] {
        openssl(
            d,
            &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &format!("{name}.key")],
        );
    }
    openssl(d, &["pkey", "-in", "idp.key", "-pubout", "-out", "idp.pub"]);
    let jwt = format!(
        "{{ algorithm: ES256, publicKeyFile: '{}', issuer: 'https://idp.example' }}",
        d.join("idp.pub").display()
    );
    let b = jwt_broker(&kafka, &jwt, free_port());
    let sign = |key: &str, iss: &str| {
        let pem = std::fs::read(d.join(key)).unwrap_or_else(|e| panic!("{e}"));
        let key = EncodingKey::from_ec_pem(&pem).unwrap_or_else(|e| panic!("{e}"));
        encode(&Header::new(Algorithm::ES256), &json!({"sub": "truck-1", "iss": iss, "exp": now() + 600}), &key)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let c = Client5::try_connect(with_token(options5(b.port, "es"), "", &sign("idp.key", "https://idp.example"))).await;
    assert_eq!(c.connack.code, ConnectReturnCode::Success);
    for (what, token) in
        [("another key", sign("other.key", "https://idp.example")), ("another issuer", sign("idp.key", "https://evil"))]
    {
        let c = Client5::try_connect(with_token(options5(b.port, "es"), "", &token)).await;
        assert_eq!(c.connack.code, ConnectReturnCode::BadUserNamePassword, "{what}");
    }
}
