//! The load simulator (`tributary-load sim`) end to end, small: two worker processes and two
//! 127.0.0.x source addresses, QoS 1 devices and a subscriber against one broker on tansu. Its
//! JSON report must show every message acknowledged, found exactly once in Kafka, and delivered
//! live; and with a broker killed under it, persistent devices moving to the other broker and
//! finding their sessions.

use serde_json::Value;
use std::process::Command;
use tributary_e2e::procs::workspace_bin;
use tributary_e2e::{BrokerProcess, KafkaServer};

/// Runs `tributary-load sim` with `args` and returns its JSON report.
fn sim(args: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let json = dir.path().join("report.json");
    let bin = workspace_bin("tributary-load");
    assert!(bin.exists(), "{} not found (run `cargo build --workspace --bins`)", bin.display());
    let out = Command::new(&bin)
        .arg("sim")
        .args(args)
        .args(["--json", &json.display().to_string()])
        .output()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "sim failed: {}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().any(|l| l.starts_with("t=") && l.contains("connected=")), "no progress lines: {stdout}");
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("report: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("report {text}: {e}"))
}

fn count(report: &Value, pointer: &str) -> u64 {
    report.pointer(pointer).and_then(Value::as_u64).unwrap_or_else(|| panic!("{pointer} missing in {report}"))
}

#[test]
fn a_small_fleet_is_acknowledged_delivered_and_found_in_kafka() {
    let kafka = KafkaServer::start();
    let broker = BrokerProcess::start(&kafka);
    let addr = broker.addr();
    let report = sim(&[
        "--brokers",
        &addr,
        "--devices",
        "40",
        "--processes",
        "2",
        "--sources",
        "2",
        "--ramp",
        "200",
        "--interval",
        "0.5",
        "--qos",
        "1",
        "--duration",
        "3",
        "--subscribers",
        "1",
        "--kafka",
        &kafka.bootstrap,
        "--kafka-topic",
        "mqtt-messages",
    ]);
    let sent = count(&report, "/sent");
    assert!(sent >= 40 * 4, "each device publishes every 0.5 s for 3 s: {report}");
    assert_eq!(count(&report, "/connects"), 40, "every device connected once: {report}");
    assert_eq!(count(&report, "/acked"), sent, "{report}");
    assert_eq!(count(&report, "/kafka/found"), sent, "{report}");
    assert_eq!(count(&report, "/kafka/acked_missing"), 0, "{report}");
    assert_eq!(count(&report, "/kafka/duplicates"), 0, "{report}");
    assert!(count(&report, "/delivered") > 0, "the subscriber got messages live: {report}");
    assert!(count(&report, "/publish_to_ack/count") == sent, "{report}");
}

#[test]
fn persistent_devices_of_a_killed_broker_resume_on_the_other() {
    let kafka = KafkaServer::start();
    // One after the other: the first creates the topics.
    let doomed = BrokerProcess::start(&kafka);
    let survivor = BrokerProcess::start(&kafka);
    let brokers = format!("{},{}", doomed.addr(), survivor.addr());
    let pid = doomed.pid().map(|p| p.to_string()).unwrap_or_default();
    let report = sim(&[
        "--brokers",
        &brokers,
        "--devices",
        "20",
        "--ramp",
        "100",
        "--interval",
        "1",
        "--qos",
        "1",
        "--duration",
        "6",
        "--persistent",
        "--kill-pid",
        &pid,
        "--kill-at",
        "2",
    ]);
    // Half the devices started on the killed broker (round robin): each lost its connection
    // once, reconnected to the survivor and found its session there.
    assert_eq!(count(&report, "/lost"), 10, "{report}");
    assert_eq!(count(&report, "/resumed"), 10, "{report}");
    assert!(report.pointer("/all_reconnected_after_kill_s").and_then(Value::as_f64).is_some(), "{report}");
    drop(doomed);
}
