//! `ws` and `wss` listeners with real WebSocket MQTT clients: paho-mqtt (Python,
//! `transport="websockets"`, MQTT 3.1.1 and 5), rumqttc's WebSocket transport and MQTT.js in
//! headless Chromium, exchanging messages with plain TCP clients through the same broker; `wss`
//! with required client certificates; the upgrade refused for another path or without the
//! `mqtt` subprotocol.

use rumqttc::{QoS, Transport};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tributary_e2e::certs::Pki;
use tributary_e2e::mqtt::{options, Client};
use tributary_e2e::procs::BrokerOptions;
use tributary_e2e::{free_port, wait_for_port, workspace_root, BrokerProcess, KafkaServer};

const WAIT: Duration = Duration::from_secs(15);

fn broker_with(kafka: &KafkaServer, listeners: Vec<String>) -> BrokerProcess {
    BrokerProcess::start_with(kafka, &BrokerOptions { extra_listeners: listeners, ..Default::default() })
}

fn ws_listener(port: u16, path: Option<&str>) -> String {
    let path = path.map(|p| format!(", path: '{p}'")).unwrap_or_default();
    format!("{{ name: ws, protocol: ws, address: '127.0.0.1:{port}'{path} }}")
}

/// `e2e/tests/paho_ws.py` with `args`.
fn paho_command(args: &[String]) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(workspace_root().join("e2e/tests/paho_ws.py")).args(args);
    cmd
}

/// Starts `e2e/tests/paho_ws.py` with `args`; see [`start`].
fn paho(args: &[String]) -> (Child, String) {
    start(paho_command(args))
}

/// Starts a WebSocket client process and waits for its first line: `ready` once it is
/// subscribed to `in/<id>`; returns the process and that line.
fn start(mut cmd: Command) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?} (see scripts/install-deps.sh): {e}"));
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    (child, line.trim().to_owned())
}

/// A paho client over the WebSocket answers a message a TCP client publishes to `in/<id>` on
/// `out/<id>`, which the TCP client receives: both directions cross between the listeners.
async fn echo_through_paho(b: &BrokerProcess, id: &str, paho_args: Vec<String>) {
    echo_through(b, id, paho_command(&paho_args)).await
}

/// Like [`echo_through_paho`] with the client process `client`.
async fn echo_through(b: &BrokerProcess, id: &str, client: Command) {
    let mut tcp = Client::connect(options(b.port, &format!("tcp-{id}"))).await;
    tcp.subscribe(&format!("out/{id}"), QoS::AtLeastOnce).await;
    let (mut child, line) = tokio::task::spawn_blocking(move || start(client)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(line, "ready", "the WebSocket client did not subscribe");
    let payload = format!("from tcp to {id}");
    tcp.client
        .publish(format!("in/{id}"), QoS::AtLeastOnce, false, payload.clone())
        .await
        .unwrap_or_else(|e| panic!("publish: {e}"));
    let back = tcp.publish_received(WAIT).await;
    assert_eq!(back.topic, format!("out/{id}"));
    assert_eq!(back.payload, payload.as_bytes(), "the WebSocket client's answer reached TCP");
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(status.is_ok_and(|s| s.success()), "the WebSocket client exited with an error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_over_websocket_exchanges_messages_with_tcp_clients() {
    let kafka = KafkaServer::start();
    let (default_port, custom_port) = (free_port(), free_port());
    let mut custom = ws_listener(custom_port, Some("/broker/ws"));
    custom = custom.replace("name: ws", "name: ws-custom");
    let b = broker_with(&kafka, vec![ws_listener(default_port, None), custom]);
    wait_for_port(&format!("127.0.0.1:{custom_port}"), WAIT);

    let args = |port: u16, path: &str, version: &str, id: &str| {
        vec![port.to_string(), path.to_owned(), version.to_owned(), id.to_owned()]
    };
    echo_through_paho(&b, "paho-311", args(default_port, "/mqtt", "3", "paho-311")).await;
    echo_through_paho(&b, "paho-5", args(default_port, "/mqtt", "5", "paho-5")).await;
    echo_through_paho(&b, "paho-path", args(custom_port, "/broker/ws", "5", "paho-path")).await;

    // The default path is not served by the listener configured with another one.
    let (mut child, line) = paho(&args(custom_port, "/mqtt", "5", "paho-wrong-path"));
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(line != "ready" && !status.success(), "served on a path the listener does not have");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_over_wss_with_required_client_certificates() {
    let kafka = KafkaServer::start();
    let pki = Pki::new("tributary-test-ca");
    let (cert, key) = pki.client("device-1");
    let port = free_port();
    let b = broker_with(&kafka, vec![pki.listener_of("wss", port, true, true)]);
    wait_for_port(&format!("127.0.0.1:{port}"), WAIT);
    let path = |p: &std::path::Path| p.display().to_string();
    let tls = |id: &str, client: bool| {
        let mut a = vec![port.to_string(), "/mqtt".into(), "5".into(), id.to_owned(), path(&pki.path("ca.pem"))];
        if client {
            a.extend([path(&cert), path(&key)]);
        }
        a
    };
    echo_through_paho(&b, "wss-device", tls("wss-device", true)).await;

    let (mut child, line) = paho(&tls("wss-anonymous", false));
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(line != "ready" && !status.success(), "connected over wss without a client certificate");
}

/// A rumqttc client over the `ws` listener on 127.0.0.1:`port`.
fn ws_options(port: u16, id: &str) -> rumqttc::MqttOptions {
    // rumqttc takes the WebSocket URL as the host and offers the `mqtt` subprotocol.
    let mut o = rumqttc::MqttOptions::new(id, format!("ws://127.0.0.1:{port}/mqtt"), port);
    o.set_transport(Transport::Ws);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(1 << 20, 1 << 20);
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_over_websocket_and_the_upgrade_refusals() {
    let kafka = KafkaServer::start();
    let port = free_port();
    // The access rules apply to WebSocket clients as to TCP ones (the same connection code).
    let rules = "{ rules: [{ principal: '*', action: publish, topic: 'to-tcp/denied', effect: deny }] }";
    let b = BrokerProcess::start_with(
        &kafka,
        &BrokerOptions {
            extra_listeners: vec![ws_listener(port, None)],
            authorization: Some(rules.to_owned()),
            ..Default::default()
        },
    );
    wait_for_port(&format!("127.0.0.1:{port}"), WAIT);

    let mut ws = Client::connect(ws_options(port, "rumqttc-ws")).await;
    ws.subscribe("to-ws/#", QoS::AtLeastOnce).await;
    let mut tcp = Client::connect(options(b.port, "rumqttc-tcp")).await;
    tcp.subscribe("to-tcp/#", QoS::AtLeastOnce).await;

    // Larger than one read of the framing (1 KiB) and than a TCP segment: split on the way.
    let big = vec![b'x'; 200_000];
    tcp.client.publish("to-ws/big", QoS::AtLeastOnce, false, big.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    let got = ws.publish_received(WAIT).await;
    assert_eq!((got.topic.as_str(), got.payload.len()), ("to-ws/big", big.len()));
    // Refused by the rule (3.1.1: acknowledged and dropped), so the first to arrive is "0".
    ws.client.publish("to-tcp/denied", QoS::AtLeastOnce, false, "no").await.unwrap_or_else(|e| panic!("{e}"));
    for i in 0..20 {
        ws.client.publish("to-tcp/n", QoS::AtLeastOnce, false, format!("{i}")).await.unwrap_or_else(|e| panic!("{e}"));
    }
    for i in 0..20 {
        let got = tcp.publish_received(WAIT).await;
        assert_eq!(got.topic, "to-tcp/n", "a denied publish got through");
        assert_eq!(got.payload, format!("{i}").as_bytes(), "in order from the WebSocket client");
    }

    // Raw upgrades: another path is 404, no MQTT subprotocol is 400; both are counted.
    let upgrade = |path: &str, protocol: &str| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{e}"));
        s.set_read_timeout(Some(WAIT)).unwrap_or_else(|e| panic!("{e}"));
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{protocol}\r\n"
        );
        s.write_all(request.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        // The status line only: an accepted upgrade stays open for CONNECT.
        let mut status = String::new();
        let _ = BufReader::new(s).read_line(&mut status);
        status
    };
    assert!(upgrade("/other", "Sec-WebSocket-Protocol: mqtt\r\n").contains(" 404 "));
    assert!(upgrade("/mqtt", "").contains(" 400 "));
    assert!(upgrade("/mqtt", "Sec-WebSocket-Protocol: chat\r\n").contains(" 400 "));
    let ok = upgrade("/mqtt", "Sec-WebSocket-Protocol: mqttv3.1, mqtt\r\n");
    assert!(ok.contains(" 101 "), "{ok}");
    let failed = |m: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix("tributary_websocket_handshake_failed_total "))
            .and_then(|v| v.parse::<u64>().ok())
    };
    tributary_e2e::eventually("the refused upgrades counted", WAIT, || failed(&b.metrics()).filter(|n| *n >= 3)).await;
}

/// MQTT.js (npm `mqtt`) in headless Chromium, driven by playwright-core: a page served from a
/// local HTTP server connects to the `ws` listener, MQTT 5.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_js_in_headless_chromium_exchanges_messages_with_tcp_clients() {
    let dir = workspace_root().join("e2e/browser");
    assert!(dir.join("node_modules/mqtt").exists(), "run `npm ci` in e2e/browser (scripts/install-deps.sh)");
    let kafka = KafkaServer::start();
    let port = free_port();
    let b = broker_with(&kafka, vec![ws_listener(port, None)]);
    wait_for_port(&format!("127.0.0.1:{port}"), WAIT);
    let mut node = Command::new("node");
    node.arg(dir.join("browser-test.mjs")).arg(format!("ws://127.0.0.1:{port}/mqtt")).arg("browser-1");
    echo_through(&b, "browser-1", node).await;
}
