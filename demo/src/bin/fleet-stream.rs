//! `fleet-stream`: the fleet's stream job, a Kafka application beside the brokers. It reads the
//! trucks' position reports from the Kafka topic the brokers map `fleet/trucks/#` to, counts
//! trucks by heading (N/E/S/W, towards their next waypoint) over a sliding window, and every
//! `--every` seconds produces a `demo::report::DirectionStats` record to the topic mapped to
//! `fleet/stats/#`, in the broker's record format (key = MQTT topic, value = payload,
//! `mqtt.*` headers), so MQTT subscribers of `fleet/stats/directions` receive it.
//!
//! It reads every partition from the live end without a consumer group (like the brokers'
//! own consumers), and optionally the brokers' `/metrics` for their connection counts.

use anyhow::{bail, Context};
use clap::Parser;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tributary_broker::codec::QoS;
use tributary_broker::{Message as MqttMessage, MessageProperties};
use tributary_demo::report::{now_ms, DirectionStats, TruckReport};
use tributary_demo::window::DirectionWindow;

/// How long the job waits for the input topic to exist (the brokers create it at start).
const TOPIC_WAIT: Duration = Duration::from_secs(120);
/// Bound of one scrape of a broker's `/metrics`.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Parser, Debug)]
#[command(about = "Counts trucks by heading from Kafka and produces the counts back to Kafka")]
struct Args {
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Kafka topic holding `fleet/trucks/#`.
    #[arg(long, default_value = "fleet-trucks")]
    input_topic: String,
    /// Kafka topic holding `fleet/stats/#`.
    #[arg(long, default_value = "fleet-stats")]
    output_topic: String,
    /// MQTT topic of the records produced (their Kafka key).
    #[arg(long, default_value = "fleet/stats/directions")]
    mqtt_topic: String,
    /// Seconds of reports the counts cover.
    #[arg(long, default_value_t = 30)]
    window_secs: u64,
    /// Seconds between two records.
    #[arg(long, default_value_t = 2.0)]
    every: f64,
    /// Admin addresses (host:port) of brokers whose `tributary_connections` are summed into
    /// the records, comma-separated.
    #[arg(long, value_delimiter = ',')]
    metrics: Vec<String>,
    /// Trucks the window holds at most (bounded memory).
    #[arg(long, default_value_t = 200_000)]
    max_trucks: usize,
    /// More librdkafka properties, `key=value`, repeatable (e.g. `fetch.wait.max.ms=10`).
    #[arg(short = 'X', long = "kafka-property", value_parser = key_value)]
    properties: Vec<(String, String)>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("{s:?} is not key=value"))
}

fn config(args: &Args) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &args.bootstrap);
    for (k, v) in &args.properties {
        c.set(k, v);
    }
    c
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.every.is_nan() || args.every <= 0.0 || args.window_secs == 0 {
        bail!("--every and --window-secs must be positive");
    }
    let mut consumer_config = config(&args);
    // A group id is required to build a consumer; the job never joins or commits to it.
    consumer_config.set("group.id", "fleet-stream").set("enable.auto.commit", "false");
    consumer_config.set("queued.max.messages.kbytes", "16384");
    let consumer: StreamConsumer = consumer_config.create().context("Kafka consumer")?;
    let consumer = Arc::new(consumer);
    let assignment = {
        let (consumer, topic) = (consumer.clone(), args.input_topic.clone());
        tokio::task::spawn_blocking(move || live_end(&consumer, &topic)).await.context("metadata task")??
    };
    consumer.assign(&assignment).context("assigning partitions")?;
    let producer: FutureProducer = config(&args)
        .set("queue.buffering.max.messages", "1000")
        .set("message.timeout.ms", "10000")
        .create()
        .context("Kafka producer")?;
    println!(
        "fleet-stream: {} ({} partitions) → {} as {} every {}s, window {}s",
        args.input_topic,
        assignment.count(),
        args.output_topic,
        args.mqtt_topic,
        args.every,
        args.window_secs
    );

    let mut window = DirectionWindow::new(args.window_secs * 1000, args.max_trucks);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(args.every));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut read, mut since, mut bad) = (0u64, Instant::now(), 0u64);
    loop {
        tokio::select! {
            m = consumer.recv() => match m {
                Ok(m) => {
                    read += 1;
                    match m.payload().map(serde_json::from_slice::<TruckReport>) {
                        Some(Ok(report)) => window.observe(&report, now_ms()),
                        _ => bad += 1,
                    }
                }
                Err(e) => eprintln!("fleet-stream: reading {}: {e}", args.input_topic),
            },
            _ = tick.tick() => {
                let counts = window.counts(now_ms());
                let stats = DirectionStats {
                    window_seconds: args.window_secs,
                    directions: counts.directions,
                    parked: counts.parked,
                    trucks: counts.trucks,
                    messages_per_second: (read as f64 / since.elapsed().as_secs_f64().max(0.001) * 10.0).round() / 10.0,
                    connections: connections(&args.metrics).await,
                    timestamp: now_ms(),
                };
                (read, since) = (0, Instant::now());
                if bad > 0 {
                    eprintln!("fleet-stream: {bad} records were not truck reports");
                    bad = 0;
                }
                produce(&producer, &args, &stats).await;
            }
            r = tokio::signal::ctrl_c() => {
                r.context("waiting for Ctrl-C")?;
                println!("fleet-stream: stopping");
                return Ok(());
            }
        }
    }
}

/// Every partition of `topic` at its high watermark (the live end), once the topic exists.
fn live_end(consumer: &StreamConsumer, topic: &str) -> anyhow::Result<TopicPartitionList> {
    let started = Instant::now();
    loop {
        let partitions = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .and_then(|md| md.topics().first().filter(|t| t.error().is_none()).map(|t| t.partitions().len()))
            .unwrap_or(0);
        if partitions > 0 {
            let mut tpl = TopicPartitionList::new();
            for p in 0..partitions as i32 {
                let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5)).context("watermarks")?;
                tpl.add_partition_offset(topic, p, Offset::Offset(high)).context("assignment")?;
            }
            return Ok(tpl);
        }
        if started.elapsed() > TOPIC_WAIT {
            bail!(
                "Kafka topic {topic} does not exist after {TOPIC_WAIT:?} (is a broker with the fleet mapping running?)"
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Produces `stats` as a JSON MQTT message in the broker's record format (key = MQTT topic,
/// value = payload, `mqtt.*` headers, written by the broker's own `Message::to_headers`); logs
/// (and skips) a failure.
async fn produce(producer: &FutureProducer, args: &Args, stats: &DirectionStats) {
    let Ok(payload) = serde_json::to_vec(stats) else { return };
    let msg = MqttMessage {
        topic: args.mqtt_topic.clone(),
        payload: payload.into(),
        qos: QoS::AtMostOnce,
        retain: false,
        publisher: None,
        publish_id: None,
        properties: MessageProperties {
            payload_format: Some(1),
            content_type: Some("application/json".into()),
            ..MessageProperties::default()
        },
    };
    let record =
        FutureRecord::to(&args.output_topic).key(&msg.topic).payload(&msg.payload[..]).headers(msg.to_headers());
    if let Err((e, _)) = producer.send(record, Duration::from_secs(5)).await {
        eprintln!("fleet-stream: producing to {}: {e}", args.output_topic);
    }
}

/// The sum of `tributary_connections` over the brokers at `admins`; `None` when none answers.
async fn connections(admins: &[String]) -> Option<u64> {
    let mut total = None;
    for addr in admins {
        if let Ok(Ok(n)) = tokio::time::timeout(SCRAPE_TIMEOUT, scrape(addr)).await {
            *total.get_or_insert(0) += n;
        }
    }
    total
}

/// `tributary_connections` of the broker whose admin listener is `addr`.
async fn scrape(addr: &str) -> anyhow::Result<u64> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await?;
    let mut body = Vec::new();
    // Bounded: the metrics page is a few kilobytes.
    s.take(1 << 20).read_to_end(&mut body).await?;
    let text = String::from_utf8_lossy(&body);
    let line =
        text.lines().find_map(|l| l.strip_prefix("tributary_connections ")).context("no tributary_connections")?;
    Ok(line.trim().parse::<f64>()? as u64)
}
