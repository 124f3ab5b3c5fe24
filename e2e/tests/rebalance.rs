//! Rebalancing after a scale-out: a broker holding every client while a new one starts empty
//! sheds clients at `rebalance.perSecond` (MQTT 5: DISCONNECT 0x9C) down to the average plus
//! `rebalance.tolerancePercent`, and no further. Persistent sessions move with their clients.

use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode;
use std::time::{Duration, Instant};
use tributary_e2e::mqtt5::{options5, Client5};
use tributary_e2e::procs::BrokerOptions;
use tributary_e2e::{BrokerProcess, KafkaServer};

const CLIENTS: usize = 40;
/// The average of 40 over 2 brokers plus 10 %, rounded up.
const LINE: usize = 22;

fn options(rebalance: &str) -> BrokerOptions {
    BrokerOptions {
        // Heartbeats every 0.8 s: the new broker's count shows quickly.
        limits: vec![("nodeTimeout".into(), "4".into())],
        rebalance: Some(rebalance.into()),
        ..Default::default()
    }
}

/// Polls `series` on `broker` until `done` holds for it, for at most `timeout`.
async fn metric_until(broker: &BrokerProcess, series: &str, timeout: Duration, done: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + timeout;
    loop {
        let value = broker.metric(series).unwrap_or(0.0);
        if done(value) || Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_broker_gets_its_share_at_a_bounded_rate() {
    let kafka = KafkaServer::start();
    let a = BrokerProcess::start_with(&kafka, &options("{ enabled: true, tolerancePercent: 10, perSecond: 5 }"));
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let mut o = options5(a.port, &format!("truck-{i}"));
        // Half of them keep a session, which must follow them to the other broker.
        if i % 2 == 0 {
            o.set_clean_start(false).set_session_expiry_interval(Some(600));
        }
        clients.push(Client5::connect(o).await);
    }
    // Alone, a broker has no one to give clients to.
    assert_eq!(a.metric("tributary_rebalance_disconnected_total"), Some(0.0));

    // Scale out: the new broker starts empty. Each client told to go reconnects to it, as a
    // load balancer would send most of them.
    let b = BrokerProcess::start_with(&kafka, &options("{ enabled: true, tolerancePercent: 10, perSecond: 5 }"));
    let b_port = b.port;
    let moved: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            tokio::spawn(async move {
                // Those not told to go keep their connection to A (returned, so it stays open).
                let told = tokio::time::timeout(Duration::from_secs(25), c.disconnected(Duration::from_secs(60))).await;
                let Ok(reason) = told else { return (c, None) };
                let at = Instant::now();
                let mut o = options5(b_port, &format!("truck-{i}"));
                if i % 2 == 0 {
                    o.set_clean_start(false).set_session_expiry_interval(Some(600));
                }
                let again = Client5::connect(o).await;
                let present = again.connack.session_present;
                (again, Some((i, reason, at, present)))
            })
        })
        .collect();

    let shed = metric_until(&a, "tributary_rebalance_disconnected_total", Duration::from_secs(40), |n| {
        n >= (CLIENTS - LINE) as f64
    })
    .await;
    assert_eq!(shed, (CLIENTS - LINE) as f64, "shed down to the line");
    // Nothing more once B's heartbeats show the moved clients: the picture is even.
    let more = metric_until(&a, "tributary_rebalance_disconnected_total", Duration::from_secs(10), |n| n > shed).await;
    assert_eq!(more, shed, "no shedding below the line");

    let mut times = Vec::new();
    let mut connected = Vec::new();
    for task in moved {
        let (client, moved) = task.await.unwrap_or_else(|e| panic!("{e}"));
        connected.push(client);
        let Some((i, reason, at, session_present)) = moved else { continue };
        assert_eq!(reason, DisconnectReasonCode::UseAnotherServer, "truck-{i}");
        assert_eq!(session_present, i % 2 == 0, "truck-{i}: a kept session follows its client");
        times.push(at);
    }
    assert_eq!(times.len(), CLIENTS - LINE);
    let first = times.iter().min().copied().unwrap_or_else(Instant::now);
    let last = times.iter().max().copied().unwrap_or_else(Instant::now);
    eprintln!("{} clients moved over {:?} at 5/s", times.len(), last - first);
    // 18 at 5 per second: four ticks, three seconds apart at least from the first to the last.
    assert!(last - first >= Duration::from_millis(2500), "bounded rate: all moved within {:?}", last - first);
    assert_eq!(a.metric("tributary_connections"), Some(LINE as f64));
    assert_eq!(b.metric("tributary_connections"), Some((CLIENTS - LINE) as f64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalancing_is_off_by_default_and_switched_on_by_a_reload() {
    let kafka = KafkaServer::start();
    let a = BrokerProcess::start_with(&kafka, &options("{}"));
    let mut clients = Vec::new();
    for i in 0..10 {
        clients.push(Client5::connect(options5(a.port, &format!("car-{i}"))).await);
    }
    let b = BrokerProcess::start_with(&kafka, &options("{}"));
    // B's heartbeat is read by A within a second or two; give it five, shedding nothing.
    let shed = metric_until(&a, "tributary_rebalance_disconnected_total", Duration::from_secs(5), |n| n > 0.0).await;
    assert_eq!(shed, 0.0, "off by default");
    // Switched on without a restart: the section is hot.
    a.rewrite_config(&options("{ enabled: true, tolerancePercent: 50, perSecond: 100 }"));
    // Line: 10 over 2 plus 50 %, rounded up = 8; the two shed ones just close here.
    let shed = metric_until(&a, "tributary_rebalance_disconnected_total", Duration::from_secs(20), |n| n >= 2.0).await;
    assert_eq!(shed, 2.0);
    assert_eq!(a.metric("tributary_connections"), Some(8.0));
    drop(b);
}
