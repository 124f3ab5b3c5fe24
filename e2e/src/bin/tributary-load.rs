//! `tributary-load`: the load simulator behind BENCHMARKS.md.
//!
//! - `idle`: opens N MQTT 3.1.1 connections (rumqttc) and holds them, for memory per connection.
//! - `publish`: P publishers send M messages each of S bytes at a QoS, as fast as the broker
//!   acknowledges; prints messages per second.
//! - `kafka`: the same records written straight to Kafka with rdkafka, the baseline for `publish`.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Tributary load simulator")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Open idle connections and hold them.
    Idle {
        /// Broker host.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Broker port.
        #[arg(long, default_value_t = 1883)]
        port: u16,
        /// Number of connections.
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Keep-alive in seconds.
        #[arg(long, default_value_t = 60)]
        keep_alive: u64,
        /// How long to hold them once all are connected.
        #[arg(long, default_value_t = 30)]
        hold_secs: u64,
        /// Client id prefix (several processes need distinct ones).
        #[arg(long, default_value = "idle")]
        prefix: String,
    },
    /// Publish through the broker.
    Publish {
        /// Broker host.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Broker port.
        #[arg(long, default_value_t = 1883)]
        port: u16,
        /// Concurrent publishers.
        #[arg(long, default_value_t = 100)]
        publishers: usize,
        /// Messages per publisher.
        #[arg(long, default_value_t = 1000)]
        messages: usize,
        /// Payload bytes.
        #[arg(long, default_value_t = 500)]
        size: usize,
        /// QoS 0 or 1.
        #[arg(long, default_value_t = 1)]
        qos: u8,
        /// Kafka bootstrap servers: when given, the run ends only once every message is in
        /// Kafka topic `--topic` (QoS 0 has no acknowledgement to wait for).
        #[arg(long)]
        bootstrap: Option<String>,
        /// Kafka topic the messages land in.
        #[arg(long, default_value = "mqtt-messages")]
        topic: String,
    },
    /// Produce the same records straight to Kafka.
    Kafka {
        /// Bootstrap servers.
        #[arg(long)]
        bootstrap: String,
        /// Topic.
        #[arg(long, default_value = "mqtt-messages")]
        topic: String,
        /// Records in total.
        #[arg(long, default_value_t = 100_000)]
        records: usize,
        /// Payload bytes.
        #[arg(long, default_value_t = 500)]
        size: usize,
        /// Distinct keys (like one MQTT topic per publisher).
        #[arg(long, default_value_t = 100)]
        keys: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().cmd {
        Cmd::Idle { host, port, connections, keep_alive, hold_secs, prefix } => {
            idle(&host, port, connections, keep_alive, hold_secs, &prefix).await
        }
        Cmd::Publish { host, port, publishers, messages, size, qos, bootstrap, topic } => {
            let kafka = bootstrap.as_deref().map(|b| (b, topic.as_str()));
            publish(&host, port, publishers, messages, size, qos, kafka).await
        }
        Cmd::Kafka { bootstrap, topic, records, size, keys } => kafka(&bootstrap, &topic, records, size, keys).await,
    }
}

async fn idle(host: &str, port: u16, n: usize, keep_alive: u64, hold: u64, prefix: &str) -> anyhow::Result<()> {
    let connected = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let mut o = MqttOptions::new(format!("{prefix}-{i}"), host, port);
        o.set_keep_alive(Duration::from_secs(keep_alive));
        let (client, mut ev) = AsyncClient::new(o, 10);
        let connected = connected.clone();
        tasks.push(tokio::spawn(async move {
            let _client = client;
            let mut counted = false;
            loop {
                match ev.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) if !counted => {
                        counted = true;
                        connected.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => {
                        if counted {
                            connected.fetch_sub(1, Ordering::Relaxed);
                            counted = false;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }));
        // Pace connects a little so the accept queue does not overflow.
        if i % 500 == 499 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    while connected.load(Ordering::Relaxed) < n {
        if start.elapsed() > Duration::from_secs(120) {
            bail!("only {} of {n} connected after 120 s", connected.load(Ordering::Relaxed));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("connected {n} in {:.1}s", start.elapsed().as_secs_f64());
    println!("READY");
    tokio::time::sleep(Duration::from_secs(hold)).await;
    println!("still connected: {}", connected.load(Ordering::Relaxed));
    Ok(())
}

async fn publish(
    host: &str,
    port: u16,
    publishers: usize,
    messages: usize,
    size: usize,
    qos: u8,
    kafka: Option<(&str, &str)>,
) -> anyhow::Result<()> {
    let watermarks = match kafka {
        Some((bootstrap, topic)) => {
            let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
            let before = records_in(&consumer, topic)?;
            Some((consumer, topic, before))
        }
        None => None,
    };
    let qos = match qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        q => bail!("qos {q} not supported by this benchmark"),
    };
    let payload = vec![b'x'; size];
    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let mut o = MqttOptions::new(format!("bench-pub-{p}"), host, port);
        o.set_keep_alive(Duration::from_secs(60));
        o.set_inflight(32);
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut ev) = AsyncClient::new(o, 64);
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let topic = format!("bench/{p}");
            let sender = tokio::spawn(async move {
                for _ in 0..messages {
                    if client.publish(&topic, qos, false, payload.clone()).await.is_err() {
                        break;
                    }
                }
                client
            });
            let mut done = 0;
            // QoS 1 finishes at the last PUBACK; QoS 0 once every packet left the client.
            while done < messages {
                match ev.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) if qos == QoS::AtLeastOnce => done += 1,
                    Ok(Event::Outgoing(rumqttc::Outgoing::Publish(_))) if qos == QoS::AtMostOnce => done += 1,
                    Ok(_) => {}
                    Err(e) => return Err(anyhow::anyhow!("publisher {p}: {e}")),
                }
            }
            let client = sender.await?;
            let _ = client.disconnect().await;
            // Let DISCONNECT go out.
            let _ = tokio::time::timeout(Duration::from_millis(200), ev.poll()).await;
            Ok(())
        }));
    }
    for t in tasks {
        t.await.context("publisher task")??;
    }
    let total = publishers * messages;
    if let Some((consumer, topic, before)) = &watermarks {
        while records_in(consumer, topic)? < before + total as i64 {
            if start.elapsed() > Duration::from_secs(300) {
                bail!("not all messages reached Kafka within 300 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "mqtt qos{} publishers={publishers} messages={total} size={size}B time={secs:.2}s rate={:.0} msg/s",
        qos as u8,
        total as f64 / secs
    );
    Ok(())
}

/// Records in `topic`: the sum of its partitions' high watermarks.
fn records_in(consumer: &BaseConsumer, topic: &str) -> anyhow::Result<i64> {
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
    let mut sum = 0;
    for t in md.topics() {
        for p in t.partitions() {
            sum += consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(5))?.1;
        }
    }
    Ok(sum)
}

async fn kafka(bootstrap: &str, topic: &str, records: usize, size: usize, keys: usize) -> anyhow::Result<()> {
    // Same durability settings as the broker's producer, so the comparison is fair.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .create()?;
    let payload = vec![b'x'; size];
    let keys: Vec<String> = (0..keys).map(|k| format!("bench/{k}")).collect();
    let start = Instant::now();
    let mut pending = futures_unordered(&producer, topic, &keys, &payload, records);
    let mut failed = 0;
    while let Some(r) = pending.pop() {
        if !matches!(r.await, Ok(Ok(_))) {
            failed += 1;
        }
    }
    producer.flush(Duration::from_secs(30))?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "kafka-direct records={records} size={size}B time={secs:.2}s rate={:.0} rec/s failed={failed}",
        records as f64 / secs
    );
    Ok(())
}

fn futures_unordered(
    producer: &FutureProducer,
    topic: &str,
    keys: &[String],
    payload: &[u8],
    records: usize,
) -> Vec<rdkafka::producer::DeliveryFuture> {
    let mut out = Vec::with_capacity(records);
    for i in 0..records {
        let key = &keys[i % keys.len()];
        loop {
            match producer.send_result(FutureRecord::to(topic).key(key).payload(payload)) {
                Ok(f) => {
                    out.push(f);
                    break;
                }
                Err((_, _)) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }
    out.reverse();
    out
}
