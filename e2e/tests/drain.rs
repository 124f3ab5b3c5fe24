//! SIGTERM drains: readiness fails at once, connections are closed spread over
//! `limits.drainSeconds` (MQTT 5: DISCONNECT 0x8B, or 0x9C with `limits.drainServerReference`),
//! and the process exits in bounded time even when its Kafka is gone.

use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tributary_e2e::kafka::http_get;
use tributary_e2e::mqtt5::{options5, Client5};
use tributary_e2e::procs::BrokerOptions;
use tributary_e2e::{workspace_root, BrokerProcess, KafkaServer};

fn drain(seconds: u16) -> BrokerOptions {
    BrokerOptions { limits: vec![("drainSeconds".into(), seconds.to_string())], ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_connections_spread_over_the_drain_window() {
    let kafka = KafkaServer::start();
    let mut b = BrokerProcess::start_with(&kafka, &drain(4));
    let mut clients = Vec::new();
    for i in 0..40 {
        clients.push(Client5::connect(options5(b.port, &format!("drained-{i}"))).await);
    }
    let admin = format!("127.0.0.1:{}", b.admin_port);
    let signalled = Instant::now();
    b.send_term();
    // Readiness fails first, while the connections are still open.
    let ready = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let answer = http_get(&admin, "/readyz");
            if answer != "ready" || Instant::now() > deadline {
                return answer;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ready, "draining", "readiness (503) fails while the connections are still open");
    assert_eq!(b.metric("tributary_draining"), Some(1.0), "the drain shows in the metrics");

    // Each client waits on its own task and notes when its DISCONNECT came.
    let waiting: Vec<_> = clients
        .into_iter()
        .map(|mut c| tokio::spawn(async move { (c.disconnected(Duration::from_secs(20)).await, Instant::now()) }))
        .collect();
    let mut closed = Vec::new();
    for w in waiting {
        let (reason, at) = w.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reason, DisconnectReasonCode::ServerShuttingDown);
        closed.push(at);
    }
    let first = closed.iter().min().copied().unwrap_or(signalled) - signalled;
    let last = closed.iter().max().copied().unwrap_or(signalled) - signalled;
    eprintln!("40 connections closed between {first:?} and {last:?} after SIGTERM (window 4 s)");
    assert!(last - first >= Duration::from_secs(2), "spread over the window: {first:?}..{last:?}");
    assert!(last < Duration::from_secs(6), "within the window: {last:?}");
    assert!(tokio::task::spawn_blocking(move || b.exited_within(Duration::from_secs(30))).await.unwrap_or(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_whose_kafka_is_gone_still_exits() {
    let mut kafka = KafkaServer::start();
    let mut b = BrokerProcess::start_with(&kafka, &drain(1));
    let mut o = options5(b.port, "stranded");
    o.set_clean_start(false).set_session_expiry_interval(Some(3600));
    let _c = Client5::connect(o).await;
    kafka.stop();
    let signalled = Instant::now();
    b.send_term();
    // Drain window 1 s, then at most 10 s of grace, 5 s for the stop and 10 s of flush.
    let exited = tokio::task::spawn_blocking(move || b.exited_within(Duration::from_secs(45))).await.unwrap_or(false);
    assert!(exited, "still running {:?} after SIGTERM", signalled.elapsed());
}

/// paho-mqtt (rumqttc 0.25 drops a DISCONNECT's properties) connects over MQTT 5 and reports
/// the DISCONNECT that `stop` provokes: its reason code and Server Reference.
fn paho_goodbye(port: u16, client_id: &str, stop: impl FnOnce()) -> (Option<u64>, Option<String>) {
    let mut child = Command::new("python3")
        .arg(workspace_root().join("e2e/paho/disconnect.py"))
        .args([&port.to_string(), client_id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().transpose().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.as_deref(), Some("connected"));
    stop();
    let last = lines.next().transpose().unwrap_or_else(|e| panic!("{e}")).unwrap_or_default();
    let _ = child.wait();
    let v: serde_json::Value = serde_json::from_str(&last).unwrap_or_else(|e| panic!("paho output {last:?}: {e}"));
    (v["reason"].as_u64(), v["server_reference"].as_str().map(str::to_owned))
}

#[test]
fn a_drain_with_a_server_reference_sends_mqtt5_clients_there() {
    let kafka = KafkaServer::start();
    let mut opts = drain(0);
    opts.limits.push(("drainServerReference".into(), "mqtt-b.example.com:1883".into()));
    let mut b = BrokerProcess::start_with(&kafka, &opts);
    let (reason, reference) = paho_goodbye(b.port, "moved", || b.send_term());
    assert_eq!(reason, Some(0x9C), "Use another server");
    assert_eq!(reference.as_deref(), Some("mqtt-b.example.com:1883"));
    assert!(b.exited_within(Duration::from_secs(30)));
}
