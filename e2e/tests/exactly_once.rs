//! QoS 2 exactly once both ways across a kill -9 of the broker holding the publisher and the
//! subscriber (issue 3). In a file of its own so that it does not share the machine with the
//! other end-to-end tests of its binary: it moves 10,000 QoS 2 messages (about a minute).

use std::time::Duration;
use tributary_broker::codec::QoS as RawQoS;
use tributary_e2e::kafka::{read_topic, record_count};
use tributary_e2e::raw::{RawClient, Receiver, Sender};
use tributary_e2e::{BrokerProcess, KafkaServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_is_exactly_once_both_ways_across_a_kill_9_of_the_broker() {
    let kafka = KafkaServer::start();
    let mut b1 = BrokerProcess::start(&kafka);
    let b2 = BrokerProcess::start(&kafka);
    let n: usize = std::env::var("QOS2_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let (sub1, sub2) = (b1.addr(), b2.addr());

    // Subscriber: a raw client whose QoS 2 receiver state survives the move to broker 2.
    let (progress_tx, mut progress) = tokio::sync::watch::channel(0usize);
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel::<()>();
    let subscriber = tokio::task::spawn_blocking(move || {
        let mut c = RawClient::connect(&sub1, "x-sub", false).unwrap_or_else(|e| panic!("{e}"));
        c.subscribe("x/#", RawQoS::ExactlyOnce).unwrap_or_else(|e| panic!("{e}"));
        let _ = subscribed_tx.send(());
        let mut receiver = Receiver::default();
        let mut got: Vec<usize> = Vec::new();
        let mut moved = false;
        while got.len() < n {
            match c.recv().and_then(|p| receiver.handle(&mut c, p)) {
                Ok(Some(payload)) => {
                    got.push(String::from_utf8_lossy(&payload).parse().unwrap());
                    progress_tx.send_replace(got.len());
                }
                Ok(None) => {}
                Err(e) => {
                    assert!(!moved, "lost broker 2 too after {} messages: {e}", got.len());
                    moved = true;
                    c = RawClient::connect(&sub2, "x-sub", false).unwrap_or_else(|e| panic!("{e}"));
                    assert!(c.session_present, "subscriber session resumed on broker 2");
                }
            }
        }
        got
    });

    // Only what is published after SUBACK is promised to the subscriber.
    subscribed.await.unwrap_or_else(|e| panic!("subscriber did not subscribe: {e}"));

    // Publisher: a raw client with QoS 2 sender state that survives the move to broker 2.
    let (addr1, addr2) = (b1.addr(), b2.addr());
    let publisher = tokio::task::spawn_blocking(move || {
        let mut c = RawClient::connect(&addr1, "x-pub", false).unwrap_or_else(|e| panic!("{e}"));
        let mut sender = Sender::default();
        let (mut sent, mut completed, mut moved) = (0, 0, false);
        while completed < n {
            let step = if sent < n && sender.in_flight() < 20 {
                sent += 1;
                sender.publish(&mut c, &format!("x/{}", (sent - 1) % 4), (sent - 1).to_string().into())
            } else {
                c.recv().and_then(|p| sender.handle(&mut c, p)).map(|done| completed += usize::from(done))
            };
            if let Err(e) = step {
                assert!(!moved, "publisher lost broker 2 too: {e}");
                moved = true;
                c = RawClient::connect(&addr2, "x-pub", false).unwrap_or_else(|e| panic!("{e}"));
                assert!(c.session_present, "publisher session resumed on broker 2");
                sender.resume(&mut c).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    });

    // Kill broker 1 mid-stream.
    progress.wait_for(|got| *got >= n / 5).await.unwrap_or_else(|e| panic!("{e}"));
    b1.kill9();

    let deadline = Duration::from_secs(240);
    tokio::time::timeout(deadline, publisher).await.expect("publisher finished").unwrap();
    let got = tokio::time::timeout(deadline, subscriber).await.expect("subscriber finished").unwrap();
    // Counts, not lists, in the assertions: 10,000 numbers make an unreadable failure.
    let distinct: std::collections::BTreeSet<usize> = got.iter().copied().collect();
    assert_eq!(got.len(), distinct.len(), "{} QoS 2 deliveries were duplicates", got.len() - distinct.len());
    assert_eq!(distinct.len(), n, "messages reached the subscriber");
    assert!(distinct.iter().copied().eq(0..n), "the subscriber got something that was not published");

    let bootstrap = kafka.bootstrap.clone();
    let (count, records) = tokio::task::spawn_blocking(move || {
        (
            record_count(&bootstrap, "mqtt-messages"),
            read_topic(&bootstrap, "mqtt-messages", n, Duration::from_secs(120)),
        )
    })
    .await
    .unwrap();
    assert_eq!(count, n as i64, "records in Kafka (each message exactly once)");
    let in_kafka: std::collections::BTreeSet<usize> = records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).parse().unwrap())
        .collect();
    assert!(in_kafka.iter().copied().eq(0..n), "Kafka holds each published message ({} distinct read)", in_kafka.len());
}
