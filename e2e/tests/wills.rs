//! Last Wills kept in the session state: the Will Delay Interval (published after it, on any
//! broker; cancelled by a reconnect within it; at once when the next connect starts clean), and
//! Wills of clients whose broker was killed (kill -9), published by another broker once the
//! dead one's heartbeat stops, which also starts the expiry of its persistent sessions.

use rumqttc::v5::mqttbytes::v5::{LastWill, LastWillProperties};
use rumqttc::v5::mqttbytes::QoS;
use std::time::{Duration, Instant};
use tributary_e2e::mqtt5::{filter, options5, Client5};
use tributary_e2e::procs::BrokerOptions;
use tributary_e2e::{BrokerProcess, KafkaServer};

const T: Duration = Duration::from_secs(30);

/// Brokers that declare a silent peer dead after 3 s (default 15 s).
fn quick_failover() -> BrokerOptions {
    BrokerOptions { limits: vec![("nodeTimeout".into(), "3".into())], ..Default::default() }
}

fn will(topic: &str, delay_secs: Option<u32>) -> LastWill {
    let props = LastWillProperties {
        delay_interval: delay_secs,
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        user_properties: Vec::new(),
    };
    LastWill::new(topic, "offline", QoS::AtLeastOnce, false, Some(props))
}

/// A device with a persistent session (expiry `expiry_secs`) and a Will.
async fn device(port: u16, id: &str, expiry_secs: u32, will: LastWill, clean_start: bool) -> Client5 {
    let mut o = options5(port, id);
    o.set_clean_start(clean_start);
    o.set_session_expiry_interval(Some(expiry_secs));
    o.set_last_will(will);
    Client5::connect(o).await
}

async fn watcher(port: u16, id: &str) -> Client5 {
    let mut w = Client5::connect(options5(port, id)).await;
    w.subscribe(filter("status/#", QoS::AtLeastOnce, false, false), None).await;
    w
}

/// Asserts that no PUBLISH reaches `w` within `wait`.
async fn assert_quiet(w: &mut Client5, wait: Duration, why: &str) {
    if let Ok(p) = tokio::time::timeout(wait, w.publish_received(wait + T)).await {
        panic!("{why}: got {:?} on {:?}", p.payload, p.topic);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_delay_is_kept_cancelled_by_a_reconnect_and_cut_short_by_a_clean_start() {
    let kafka = KafkaServer::start();
    let b1 = BrokerProcess::start(&kafka);
    let b2 = BrokerProcess::start(&kafka);
    let mut w = watcher(b2.port, "watcher").await;

    // Dropped without DISCONNECT: the Will waits for its 3 s delay, then goes out once.
    let dev = device(b1.port, "dev-delay", 60, will("status/dev-delay", Some(3)), true).await;
    let dropped = Instant::now();
    dev.abort();
    let got = w.publish_received(T).await;
    let after = dropped.elapsed();
    assert_eq!(got.topic, "status/dev-delay");
    assert!(after >= Duration::from_millis(2900), "published {after:?} after the drop, before the delay");
    assert!(after < Duration::from_secs(10), "published only {after:?} after the drop");
    assert_quiet(&mut w, Duration::from_secs(2), "the Will went out twice").await;

    // A reconnect to the other broker within the delay resumes the session: no Will.
    let dev = device(b1.port, "dev-back", 60, will("status/dev-back", Some(3)), true).await;
    dev.abort();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let back = device(b2.port, "dev-back", 60, will("status/dev-back", Some(3)), false).await;
    assert!(back.connack.session_present);
    assert_quiet(&mut w, Duration::from_secs(5), "the Will of a resumed session was published").await;

    // A reconnect that starts clean ends the old session: its Will goes out at once.
    let dev = device(b1.port, "dev-clean", 60, will("status/dev-clean", Some(60)), true).await;
    dev.abort();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let restarted = Instant::now();
    let _fresh = device(b2.port, "dev-clean", 60, will("status/dev-clean-2", Some(60)), true).await;
    let got = w.publish_received(T).await;
    assert_eq!(got.topic, "status/dev-clean", "the old session's Will");
    assert!(restarted.elapsed() < Duration::from_secs(5), "not at once: {:?}", restarted.elapsed());
    drop(back);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ending_before_the_will_delay_publishes_the_will_then() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start(&kafka);
    let mut w = watcher(b.port, "watcher").await;
    // Session expiry 2 s, Will delay 60 s: the Will goes out when the session ends.
    let dev = device(b.port, "dev-short", 2, will("status/dev-short", Some(60)), true).await;
    let dropped = Instant::now();
    dev.abort();
    let got = w.publish_received(T).await;
    let after = dropped.elapsed();
    assert_eq!(got.topic, "status/dev-short");
    assert!(after >= Duration::from_millis(1900) && after < Duration::from_secs(10), "after {after:?}");
    // And the session is gone with it.
    let mut o = options5(b.port, "dev-short");
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(2));
    assert!(!Client5::connect(o).await.connack.session_present);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wills_and_expiry_of_a_killed_brokers_sessions_are_handled_by_another_broker() {
    let kafka = KafkaServer::start();
    let mut b1 = BrokerProcess::start_with(&kafka, &quick_failover());
    let b2 = BrokerProcess::start_with(&kafka, &quick_failover());
    let mut w = watcher(b2.port, "watcher").await;

    // On broker 1: a clean session with a Will (stored only for this), a persistent session
    // with a delayed Will, and a persistent session without Will expiring 2 s after it is gone.
    let mut o = options5(b1.port, "dev-clean");
    o.set_last_will(will("status/dev-clean", None));
    let _clean = Client5::connect(o).await;
    let _delayed = device(b1.port, "dev-delayed", 3600, will("status/dev-delayed", Some(2)), true).await;
    let mut o = options5(b1.port, "dev-expiring");
    o.set_session_expiry_interval(Some(2));
    let mut expiring = Client5::connect(o).await;
    expiring.subscribe(filter("cmd/dev-expiring", QoS::AtLeastOnce, false, false), None).await;

    let killed = Instant::now();
    b1.kill9();
    let mut topics = Vec::new();
    for _ in 0..2 {
        topics.push(w.publish_received(T).await.topic);
    }
    topics.sort();
    assert_eq!(topics, ["status/dev-clean", "status/dev-delayed"]);
    println!("wills of the killed broker's clients published {:?} after kill -9", killed.elapsed());
    assert_quiet(&mut w, Duration::from_secs(3), "a Will went out twice").await;

    // The persistent session was marked disconnected when broker 1 died: it has expired.
    let mut o = options5(b2.port, "dev-expiring");
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(2));
    let back = Client5::connect(o).await;
    assert!(!back.connack.session_present, "the dead broker's session should have expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wills_over_128_kib_are_refused_at_connect() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start(&kafka);
    // The payload is at most 65,535 bytes by the protocol; user properties make the rest.
    let pub_with_will = |property: usize| {
        std::process::Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &b.port.to_string(), "-V", "mqttv5", "-t", "w/ok", "-m", "x"])
            .args(["--will-topic", "status/big", "--will-payload", &"w".repeat(65_000)])
            // Two properties: a UTF-8 string is at most 65,535 bytes.
            .args(["-D", "will", "user-property", "a", &"p".repeat(40_000)])
            .args(["-D", "will", "user-property", "b", &"p".repeat(property - 40_000)])
            .output()
            .unwrap_or_else(|e| panic!("mosquitto_pub: {e}"))
    };
    let fits = 128 * 1024 - 65_000 - "status/big".len() - 2;
    let ok = pub_with_will(fits);
    assert!(ok.status.success(), "a 128 KiB Will is accepted: {}", String::from_utf8_lossy(&ok.stderr));
    let refused = pub_with_will(fits + 1);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr).to_lowercase();
    assert!(stderr.contains("packet too large") || stderr.contains("149"), "{stderr}");
}
