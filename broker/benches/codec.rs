//! The MQTT codec on the hot path: a device's telemetry PUBLISH (QoS 1, a 28-byte topic, a
//! 500-byte payload) decoded from and encoded into a buffer, MQTT 3.1.1 and 5.0.
//! `cargo bench -p tributary-broker --bench codec` (BENCHMARKS.md "Micro-benchmarks").

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use tributary_broker::codec::{decode, encode, Packet, Properties, ProtocolVersion, Publish, QoS};

fn telemetry() -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "vehicles/000123456/telemetry".into(),
        packet_id: Some(4242),
        properties: Properties::default(),
        payload: Bytes::from(vec![b'x'; 500]),
    })
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    for (name, version) in [("3.1.1", ProtocolVersion::V311), ("5.0", ProtocolVersion::V5)] {
        let packet = telemetry();
        let mut wire = BytesMut::new();
        encode(&packet, version, &mut wire).expect("a valid PUBLISH encodes");
        group.bench_function(format!("decode publish qos1 500B {name}"), |b| {
            b.iter_batched_ref(
                || wire.clone(),
                |buf| black_box(decode(buf, Some(version), 1 << 20)),
                BatchSize::SmallInput,
            )
        });
        let mut out = BytesMut::with_capacity(1024);
        group.bench_function(format!("encode publish qos1 500B {name}"), |b| {
            b.iter(|| {
                out.clear();
                black_box(encode(black_box(&packet), version, &mut out))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
