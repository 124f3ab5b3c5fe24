//! `tributary-load`: the load simulator behind BENCHMARKS.md.
//!
//! - `idle`: opens N MQTT 3.1.1 connections (rumqttc, over TCP or WebSocket) and holds them, for
//!   memory per connection.
//! - `publish`: P publishers send M messages each of S bytes at a QoS, as fast as the broker
//!   acknowledges; prints messages per second.
//! - `kafka`: the same records written straight to Kafka with rdkafka, the baseline for `publish`.
//! - `sessions`: writes N stored sessions straight into the sessions topic, in the broker's own
//!   format (its record types and partitioner), for startup time and memory per stored session.
//! - `connect-latency`: connects one client at a time (raw TCP, CONNECT encoded by the broker's
//!   codec) and measures CONNECT sent → CONNACK received; prints percentiles.
//! - `sim`: a fleet of devices over several processes and source addresses, publishing at an
//!   interval, with subscribers, flapping, a broker kill and a check against Kafka
//!   (`tributary_e2e::sim`).

use anyhow::{bail, Context};
use bytes::BytesMut;
use clap::{Parser, Subcommand};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tributary_broker::codec;
use tributary_broker::session_record::{
    partition_for, SessionState, StoredSubscription, StoredWill, NEVER_EXPIRES, VERSION,
};

#[derive(Parser)]
#[command(about = "Tributary load simulator")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// A fleet of simulated devices (see `tributary_e2e::sim`).
    Sim(tributary_e2e::sim::SimArgs),
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
        /// Connect with TLS (an `mqtts` listener), trusting this CA file: raw MQTT 3.1.1
        /// CONNECT/CONNACK over tokio-rustls instead of rumqttc.
        #[arg(long)]
        tls_ca: Option<std::path::PathBuf>,
        /// Connect over WebSocket (a `ws` listener) at this HTTP path, e.g. `/mqtt`.
        #[arg(long, conflicts_with = "tls_ca")]
        ws_path: Option<String>,
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
    /// Write stored sessions straight into the sessions topic (broker's format and partitioner).
    Sessions {
        /// Bootstrap servers.
        #[arg(long)]
        bootstrap: String,
        /// The broker's `topics.sessions`.
        #[arg(long, default_value = "mqtt-sessions")]
        topic: String,
        /// Sessions to write; client ids `{prefix}{i}`.
        #[arg(long, default_value_t = 100_000)]
        count: usize,
        /// Subscriptions per session: `devices/{i}/cmd`, `fleet/+/broadcast`, then `extra/{k}/#`.
        #[arg(long, default_value_t = 2)]
        subscriptions: usize,
        /// Client id prefix.
        #[arg(long, default_value = "bench-session-")]
        prefix: String,
        /// Partitions when the topic has to be created (compacted, like the broker creates it).
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        /// Write the sessions as still connected on a broker that is gone (no claim, no
        /// heartbeat), each with a Will on `wills/{i}`: a broker starting on them adopts
        /// every one and publishes the Wills.
        #[arg(long)]
        orphaned: bool,
    },
    /// Connect one client at a time and measure CONNECT → CONNACK.
    ConnectLatency {
        /// Broker host.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Broker port.
        #[arg(long, default_value_t = 1883)]
        port: u16,
        /// Client id prefix of the stored sessions (`--persistent`).
        #[arg(long, default_value = "bench-session-")]
        prefix: String,
        /// Connections measured.
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// How many stored sessions there are: the ids used are spread evenly over them.
        #[arg(long, default_value_t = 100_000)]
        stored: usize,
        /// Resume stored sessions: cleanSession=0, and CONNACK must say session present.
        #[arg(long, conflicts_with = "clean")]
        persistent: bool,
        /// Fresh client ids with cleanSession=1 (the comparison).
        #[arg(long)]
        clean: bool,
        /// Connections made first and not counted (producer and connection warm-up).
        #[arg(long, default_value_t = 5)]
        warmup: usize,
        /// Also print every connection slower than 1.5 × the median, with when it started.
        #[arg(long)]
        verbose: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().cmd {
        Cmd::Sim(args) => tributary_e2e::sim::run(args).await,
        Cmd::Idle { host, port, connections, keep_alive, hold_secs, prefix, tls_ca: Some(ca), .. } => {
            idle_tls(&host, port, connections, keep_alive, hold_secs, &prefix, &ca).await
        }
        Cmd::Idle { host, port, connections, keep_alive, hold_secs, prefix, tls_ca: None, ws_path } => {
            let run = IdleRun { host: &host, port, ws_path: ws_path.as_deref(), keep_alive, prefix: &prefix };
            idle(run, connections, hold_secs).await
        }
        Cmd::Publish { host, port, publishers, messages, size, qos, bootstrap, topic } => {
            let kafka = bootstrap.as_deref().map(|b| (b, topic.as_str()));
            publish(&host, port, publishers, messages, size, qos, kafka).await
        }
        Cmd::Kafka { bootstrap, topic, records, size, keys } => kafka(&bootstrap, &topic, records, size, keys).await,
        Cmd::Sessions { bootstrap, topic, count, subscriptions, prefix, partitions, orphaned } => {
            sessions(&bootstrap, &topic, count, subscriptions, &prefix, partitions, orphaned).await
        }
        Cmd::ConnectLatency { host, port, prefix, count, stored, persistent, clean, warmup, verbose } => {
            if persistent == clean {
                bail!("give exactly one of --persistent and --clean");
            }
            let run = LatencyRun { host: &host, port, prefix: &prefix, count, stored, persistent, warmup, verbose };
            connect_latency(run).await
        }
    }
}

/// Where and how `idle` connects.
struct IdleRun<'a> {
    host: &'a str,
    port: u16,
    /// Over WebSocket at this path, else plain TCP.
    ws_path: Option<&'a str>,
    keep_alive: u64,
    prefix: &'a str,
}

impl IdleRun<'_> {
    fn options(&self, i: usize) -> MqttOptions {
        let id = format!("{}-{i}", self.prefix);
        let mut o = match self.ws_path {
            Some(path) => {
                // rumqttc takes the URL as the host for WebSocket connections.
                let mut o = MqttOptions::new(id, format!("ws://{}:{}{path}", self.host, self.port), self.port);
                o.set_transport(rumqttc::Transport::Ws);
                o
            }
            None => MqttOptions::new(id, self.host, self.port),
        };
        o.set_keep_alive(Duration::from_secs(self.keep_alive));
        o
    }
}

async fn idle(run: IdleRun<'_>, n: usize, hold: u64) -> anyhow::Result<()> {
    let connected = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let o = run.options(i);
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

/// Like [`idle`] over TLS: each connection is a TLS session carrying one MQTT 3.1.1 CONNECT,
/// held without traffic (keep-alive longer than the hold).
async fn idle_tls(
    host: &str,
    port: u16,
    n: usize,
    keep_alive: u64,
    hold: u64,
    prefix: &str,
    ca: &std::path::Path,
) -> anyhow::Result<()> {
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let server_name = rustls::pki_types::ServerName::try_from(host.to_owned())?;
    let start = Instant::now();
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let tcp = TcpStream::connect((host, port)).await?;
        let mut tls = connector.connect(server_name.clone(), tcp).await.context("TLS handshake")?;
        let keep_alive = u16::try_from(keep_alive).unwrap_or(u16::MAX);
        tls.write_all(&connect_packet(&format!("{prefix}-{i}"), true, keep_alive)?).await?;
        let mut connack = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(15), tls.read_exact(&mut connack)).await.context("no CONNACK")??;
        if connack != [0x20, 2, 0, 0] {
            bail!("connection {i}: unexpected CONNACK {connack:02x?}");
        }
        held.push(tls);
    }
    println!("connected {n} over TLS in {:.1}s", start.elapsed().as_secs_f64());
    println!("READY");
    tokio::time::sleep(Duration::from_secs(hold)).await;
    println!("still connected: {}", held.len());
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

/// The stored state of session `i`, as a broker writes it for a disconnected MQTT 3.1.1
/// persistent session whose claims were cleaned up: epoch 0, never expires. `orphaned`: still
/// connected, with a Will, as a killed broker leaves it.
fn stored_session(i: usize, subscriptions: usize, now_ms: u64, orphaned: bool) -> SessionState {
    let options = codec::SubscriptionOptions {
        qos: codec::QoS::AtLeastOnce,
        no_local: false,
        retain_as_published: false,
        retain_handling: 0,
    };
    let filter = |k: usize| match k {
        0 => format!("devices/{i}/cmd"),
        1 => "fleet/+/broadcast".to_owned(),
        k => format!("extra/{k}/#"),
    };
    SessionState {
        v: VERSION,
        epoch: 0,
        expiry_secs: NEVER_EXPIRES,
        disconnected_at_ms: (!orphaned).then_some(now_ms),
        subscriptions: (0..subscriptions).map(|k| StoredSubscription::new(&filter(k), options, None)).collect(),
        cursors: Default::default(),
        in_flight: Vec::new(),
        inbound_qos2: Vec::new(),
        will: orphaned.then(|| {
            Box::new(StoredWill {
                topic: format!("wills/{i}"),
                payload: bytes::Bytes::from_static(b"offline"),
                qos: 1,
                retain: false,
                delay_secs: 0,
                properties: Default::default(),
            })
        }),
    }
}

async fn sessions(
    bootstrap: &str,
    topic: &str,
    count: usize,
    subscriptions: usize,
    prefix: &str,
    create_partitions: i32,
    orphaned: bool,
) -> anyhow::Result<()> {
    // Create the topic as the broker would when it is missing (compacted).
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().context("kafka admin client")?;
    let new = NewTopic::new(topic, create_partitions, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for r in admin.create_topics([&new], &opts).await? {
        match r {
            Ok(_) => println!("created topic {topic} with {create_partitions} partitions"),
            Err((_, rdkafka::error::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => bail!("creating topic {t}: {code}"),
        }
    }
    // Broker producer settings, with larger batches: tansu/sqlite commits once per request.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()?;
    let md = producer.client().fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions = md.topics().iter().find(|t| t.name() == topic).map_or(0, |t| t.partitions().len());
    if partitions == 0 {
        bail!("topic {topic} has no partitions");
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
    let start = Instant::now();
    let mut pending = Vec::with_capacity(count);
    let mut bytes = 0usize;
    for i in 0..count {
        let cid = format!("{prefix}{i}");
        let value = serde_json::to_vec(&stored_session(i, subscriptions, now, orphaned))?;
        bytes += cid.len() + value.len();
        let record = FutureRecord::to(topic).partition(partition_for(&cid, partitions)).key(&cid).payload(&value);
        match producer.send_result(record) {
            Ok(f) => pending.push(f),
            Err((e, _)) => bail!("enqueue session {i}: {e}"),
        }
    }
    let mut failed = 0;
    for f in pending {
        if !matches!(f.await, Ok(Ok(_))) {
            failed += 1;
        }
    }
    producer.flush(Duration::from_secs(30))?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sessions written={count} subscriptions={subscriptions} partitions={partitions} bytes={bytes} \
         ({:.0} B/record) time={secs:.2}s rate={:.0} rec/s failed={failed}",
        bytes as f64 / count.max(1) as f64,
        count as f64 / secs
    );
    if failed > 0 {
        bail!("{failed} sessions were not acknowledged");
    }
    Ok(())
}

/// One `connect-latency` run.
struct LatencyRun<'a> {
    host: &'a str,
    port: u16,
    prefix: &'a str,
    count: usize,
    stored: usize,
    persistent: bool,
    warmup: usize,
    verbose: bool,
}

async fn connect_latency(run: LatencyRun<'_>) -> anyhow::Result<()> {
    let LatencyRun { host, port, prefix, count, stored, persistent, warmup, verbose } = run;
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let pid = std::process::id();
    let id = |k: usize| {
        if persistent {
            // Spread over the stored sessions; warm-up ids come from the other end of the range.
            let n = stored.max(1);
            let i = if k < warmup { n - 1 - k % n } else { ((k - warmup) * n / count.max(1)) % n };
            format!("{prefix}{i}")
        } else {
            format!("bench-clean-{pid}-{k}")
        }
    };
    let mut samples = Vec::with_capacity(count);
    let mut timeline = Vec::with_capacity(count);
    let start = Instant::now();
    for k in 0..warmup + count {
        let cid = id(k);
        let at = start.elapsed();
        let rtt =
            connect_once(host, port, &cid, !persistent).await.with_context(|| format!("connection {k} ({cid})"))?;
        if k >= warmup {
            samples.push(rtt);
            timeline.push((at, rtt));
        }
    }
    samples.sort();
    if verbose {
        // Outliers with when they started, to spot periodic causes (a scan every 5 s, say).
        let slow = samples[samples.len() / 2] * 3 / 2;
        for (at, rtt) in timeline.iter().filter(|(_, rtt)| *rtt > slow) {
            println!("slow: at {:.3}s took {:.2}ms", at.as_secs_f64(), rtt.as_secs_f64() * 1000.0);
        }
    }
    let pct = |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = samples.iter().sum::<Duration>() / samples.len().max(1) as u32;
    println!(
        "connect-latency {} n={} p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms mean={:.2}ms",
        if persistent { "persistent(session present)" } else { "clean" },
        samples.len(),
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(samples[samples.len() - 1]),
        ms(mean)
    );
    Ok(())
}

/// An MQTT 3.1.1 CONNECT without Will or credentials, encoded by the broker's own codec.
fn connect_packet(client_id: &str, clean: bool, keep_alive: u16) -> anyhow::Result<BytesMut> {
    let connect = codec::Packet::Connect(codec::Connect {
        protocol: codec::ProtocolVersion::V311,
        clean_start: clean,
        keep_alive,
        client_id: client_id.to_owned(),
        will: None,
        username: None,
        password: None,
        properties: Default::default(),
    });
    let mut buf = BytesMut::new();
    codec::encode(&connect, codec::ProtocolVersion::V311, &mut buf)?;
    Ok(buf)
}

/// One MQTT 3.1.1 connection: CONNECT → CONNACK (timed), check, DISCONNECT.
async fn connect_once(host: &str, port: u16, client_id: &str, clean: bool) -> anyhow::Result<Duration> {
    let mut stream = TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    let buf = connect_packet(client_id, clean, 60)?;
    let start = Instant::now();
    stream.write_all(&buf).await?;
    // CONNACK in 3.1.1: 0x20, remaining length 2, flags (bit 0 = session present), return code.
    let mut connack = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(15), stream.read_exact(&mut connack)).await.context("no CONNACK")??;
    let rtt = start.elapsed();
    if connack[0] != 0x20 || connack[1] != 2 {
        bail!("not a CONNACK: {connack:02x?}");
    }
    if connack[3] != 0 {
        bail!("CONNACK return code {}", connack[3]);
    }
    let present = connack[2] & 1 == 1;
    if present == clean {
        bail!("session present = {present}, expected {}", !clean);
    }
    stream.write_all(&[0xe0, 0x00]).await?;
    // Wait for the broker to close, so the session is stored again before the next one.
    let mut rest = [0u8; 16];
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut rest)).await;
    Ok(rtt)
}
