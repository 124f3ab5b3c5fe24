//! Topic mapping look-ups: which Kafka topic a PUBLISH goes to (first matching rule of 100),
//! and which Kafka topics a subscription filter must read (uncached and cached).
//! `cargo bench -p tributary-broker --bench mapping` (BENCHMARKS.md "Micro-benchmarks").

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use tributary_broker::TopicMapping;

/// 100 rules in the shape of a fleet's: one Kafka topic per region and kind of data, the
/// last region's rules at the end of the list (the worst case of a first-match scan).
fn fleet_mapping() -> TopicMapping {
    let mut rules = Vec::new();
    for region in 0..50 {
        rules.push((format!("fleet-{region}-telemetry"), vec![format!("region/{region}/+/telemetry/#")]));
        rules.push((format!("fleet-{region}-events"), vec![format!("region/{region}/+/events/#")]));
    }
    TopicMapping::new(rules, "mqtt-messages".into()).expect("valid rules")
}

fn bench(c: &mut Criterion) {
    let mapping = fleet_mapping();
    let mut group = c.benchmark_group("mapping");
    group.throughput(Throughput::Elements(1));
    group.bench_function("publish topic, first rule of 100", |b| {
        b.iter(|| black_box(mapping.kafka_topic_for(black_box("region/0/truck-17/telemetry/gps"))))
    });
    group.bench_function("publish topic, last rule of 100", |b| {
        b.iter(|| black_box(mapping.kafka_topic_for(black_box("region/49/truck-17/events/door"))))
    });
    group.bench_function("publish topic, default (no rule)", |b| {
        b.iter(|| black_box(mapping.kafka_topic_for(black_box("other/device/17"))))
    });
    group.bench_function("filter to kafka topics, uncached", |b| {
        b.iter(|| black_box(mapping.kafka_topics_for_filter(black_box("region/+/truck-17/#"))))
    });
    group.bench_function("filter to kafka topics, cached", |b| {
        b.iter(|| black_box(mapping.kafka_topics_for_filter_cached(black_box("region/+/truck-17/#"))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
