//! The subscription index with 1,000,000 subscriptions: one exact filter per device
//! (`vehicles/{id}/commands`) plus 1,000 wildcard subscribers (`vehicles/+/telemetry`) and 10
//! of `#`. Matching a device's command topic walks the trie to one exact subscriber and the 10
//! `#` ones; a telemetry topic reaches the 1,000 wildcard subscribers and the 10 `#` ones. Each
//! dispatch queues the deliveries in the subscribers' mailboxes, which the benchmark empties.
//! `cargo bench -p tributary-broker --bench subscriptions` (BENCHMARKS.md "Micro-benchmarks").

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::sync::Arc;
use std::time::Instant;
use tributary_broker::codec::{QoS, SubscriptionOptions};
use tributary_broker::{Mailbox, MemoryLog, Message, Metrics, Router, Subscriber};

const DEVICES: u64 = 1_000_000;

fn subscriber(session: u64, mailbox: &Arc<Mailbox>) -> Subscriber {
    Subscriber {
        session,
        client_id: format!("device-{session}").into(),
        mailbox: mailbox.clone(),
        options: SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            no_local: false,
            retain_as_published: false,
            retain_handling: 0,
        },
        id: None,
    }
}

fn message(topic: String) -> Arc<Message> {
    Arc::new(Message {
        topic,
        payload: Bytes::from_static(&[b'x'; 500]),
        qos: QoS::AtLeastOnce,
        retain: false,
        publisher: None,
        publish_id: None,
        properties: Default::default(),
    })
}

fn bench(c: &mut Criterion) {
    let router = Router::new(Arc::new(MemoryLog::new()), Arc::new(Metrics::new()));
    // One mailbox for all devices (the index is what is measured, not a million queues).
    let devices = Arc::new(Mailbox::new(usize::MAX));
    let watchers = Arc::new(Mailbox::new(usize::MAX));
    let started = Instant::now();
    for id in 0..DEVICES {
        router.subscribe(&format!("vehicles/{id}/commands"), subscriber(id, &devices));
    }
    for w in 0..1_000 {
        router.subscribe("vehicles/+/telemetry", subscriber(DEVICES + w, &watchers));
    }
    for w in 0..10 {
        router.subscribe("#", subscriber(DEVICES + 1_000 + w, &watchers));
    }
    let took = started.elapsed();
    println!(
        "subscriptions: {} inserted in {:.2} s ({:.0} per second)",
        DEVICES + 1_010,
        took.as_secs_f64(),
        (DEVICES + 1_010) as f64 / took.as_secs_f64()
    );

    let mut group = c.benchmark_group("subscriptions 1M");
    group.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    group.bench_function("dispatch a command topic (1 exact + 10 # matches)", |b| {
        b.iter(|| {
            n = (n + 7919) % DEVICES;
            router.dispatch(message(format!("vehicles/{n}/commands")), None);
            while devices.pop().is_some() {}
            while watchers.pop().is_some() {}
        })
    });
    group.bench_function("dispatch a telemetry topic (1,010 wildcard matches)", |b| {
        b.iter(|| {
            n = (n + 7919) % DEVICES;
            router.dispatch(message(format!("vehicles/{n}/telemetry")), None);
            while watchers.pop().is_some() {}
        })
    });
    group.bench_function("subscribe and unsubscribe one more device", |b| {
        b.iter(|| {
            router.subscribe("vehicles/new-device/commands", subscriber(u64::MAX, &devices));
            router.unsubscribe("vehicles/new-device/commands", u64::MAX);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
