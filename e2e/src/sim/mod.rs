//! `tributary-load sim`: a fleet of simulated devices against one or more brokers.
//!
//! The parent process splits the devices over worker processes (each a `tributary-load sim
//! --worker K` of its own, so that no process needs more than ~18,000 sockets of the 20,000
//! open files a process may have here) and over 127.0.0.x source addresses (a source address
//! has ~28,000 ephemeral ports). Each worker prints one JSON line a second ([`stats::Snapshot`])
//! and, at the end, what its devices sent ([`device::Ledger`]); the parent prints a progress
//! line a second, can kill a broker process at a given second, and ends with a report in text
//! and JSON and, given the Kafka topic, a check of every message against Kafka.

pub mod device;
pub mod stats;
pub mod verify;

use anyhow::Context;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;
use tributary_broker::codec::QoS;

use device::{Ledger, Plan};
use stats::{Counters, Latencies, Snapshot, Stats};

/// Devices per worker process at most (each holds one socket, plus subscribers and spares).
const DEVICES_PER_WORKER: u64 = 18_000;

/// Options of `tributary-load sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Brokers (host:port), comma-separated; devices start on them round robin and move to the
    /// next one when their connection is lost.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:1883")]
    pub brokers: Vec<String>,
    /// Devices (one MQTT connection each).
    #[arg(long, default_value_t = 1000)]
    pub devices: u64,
    /// Worker processes; 0: one per 18,000 devices.
    #[arg(long, default_value_t = 0)]
    pub processes: u64,
    /// Source addresses 127.0.0.1 … 127.0.0.N, devices spread over them.
    #[arg(long, default_value_t = 1)]
    pub sources: u8,
    /// New connections per second while the fleet starts, over all workers.
    #[arg(long, default_value_t = 1000)]
    pub ramp: u64,
    /// Seconds between two messages of a device.
    #[arg(long, default_value_t = 10.0)]
    pub interval: f64,
    /// Smallest payload in bytes.
    #[arg(long, default_value_t = 400)]
    pub payload_min: usize,
    /// Largest payload in bytes.
    #[arg(long, default_value_t = 600)]
    pub payload_max: usize,
    /// QoS of the messages and subscriptions: 0 or 1.
    #[arg(long, default_value_t = 0)]
    pub qos: u8,
    /// Topic of each device; `{id}` is its index.
    #[arg(long, default_value = "vehicles/{id}/telemetry")]
    pub topic: String,
    /// Client ids are `{prefix}{index}`.
    #[arg(long, default_value = "sim-")]
    pub prefix: String,
    /// Persistent sessions (cleanSession=0): a reconnect should find its session.
    #[arg(long)]
    pub persistent: bool,
    /// Subscribers (clean sessions) of `--subscribe`, measuring publish → deliver.
    #[arg(long, default_value_t = 0)]
    pub subscribers: u64,
    /// The subscribers' filter.
    #[arg(long, default_value = "vehicles/+/telemetry")]
    pub subscribe: String,
    /// Share of devices (0..1) that disconnect and reconnect every `--flap-every` seconds.
    #[arg(long, default_value_t = 0.0)]
    pub flap: f64,
    /// Seconds between a flapping device's reconnects.
    #[arg(long, default_value_t = 30.0)]
    pub flap_every: f64,
    /// Seconds to run once the ramp is over.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Kill this process (a broker) with SIGKILL at `--kill-at` seconds after the start.
    #[arg(long)]
    pub kill_pid: Option<u32>,
    /// Seconds after the start at which `--kill-pid` is killed.
    #[arg(long, default_value_t = 0.0)]
    pub kill_at: f64,
    /// Kafka bootstrap servers: at the end, read `--kafka-topic` and check every message.
    #[arg(long)]
    pub kafka: Option<String>,
    /// The Kafka topic the devices' messages land in (the broker's mapping decides).
    #[arg(long, default_value = "mqtt-messages")]
    pub kafka_topic: String,
    /// Write the final report as JSON to this file too.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Internal: run as worker K of the parent's processes.
    #[arg(long, hide = true)]
    pub worker: Option<u64>,
    /// Internal: the run's id, set by the parent for its workers.
    #[arg(long, hide = true, default_value_t = 0)]
    pub run: u64,
}

impl SimArgs {
    fn processes(&self) -> u64 {
        if self.processes > 0 {
            self.processes
        } else {
            self.devices.div_ceil(DEVICES_PER_WORKER).max(1)
        }
    }

    fn plan(&self) -> anyhow::Result<Plan> {
        let mut brokers = Vec::new();
        for b in &self.brokers {
            brokers.push(b.to_socket_addrs().with_context(|| format!("broker {b}"))?.next().context("no address")?);
        }
        anyhow::ensure!(!brokers.is_empty(), "--brokers is empty");
        anyhow::ensure!(self.interval > 0.0 && self.duration >= 0.0, "--interval must be positive");
        anyhow::ensure!(self.payload_min <= self.payload_max, "--payload-min is above --payload-max");
        let qos = match self.qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            q => anyhow::bail!("--qos {q}: 0 or 1"),
        };
        let interval = Duration::from_secs_f64(self.interval);
        Ok(Plan {
            brokers,
            prefix: self.prefix.clone(),
            topic: self.topic.clone(),
            qos,
            persistent: self.persistent,
            interval,
            payload: (self.payload_min, self.payload_max),
            flap_every: (self.flap > 0.0).then(|| Duration::from_secs_f64(self.flap_every)),
            keep_alive: (interval * 3).max(Duration::from_secs(60)),
            run: self.run,
        })
    }

    /// Seconds from the start to the end of the run.
    fn total(&self) -> f64 {
        self.devices as f64 / self.ramp.max(1) as f64 + self.duration
    }
}

/// Runs the simulator: as the parent, or as one worker.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    match args.worker {
        Some(k) => worker(args, k).await,
        None => parent(args).await,
    }
}

/// Source address of device `index`.
fn source(args: &SimArgs, index: u64) -> Option<IpAddr> {
    (args.sources > 1).then(|| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (index % u64::from(args.sources)) as u8)))
}

/// A worker: the devices with index ≡ k (mod processes), ramped at its share of the rate.
async fn worker(args: SimArgs, k: u64) -> anyhow::Result<()> {
    let plan = Arc::new(args.plan()?);
    let processes = args.processes();
    let stats = Arc::new(Stats::default());
    let (stop_tx, stop) = watch::channel(false);
    let mut subscribers = Vec::new();
    for s in (k..args.subscribers).step_by(processes as usize) {
        let sub =
            device::subscriber(plan.clone(), s, args.subscribe.clone(), source(&args, s), stats.clone(), stop.clone());
        subscribers.push(tokio::spawn(sub));
    }
    let mut devices = Vec::new();
    let mut rng = tributary_demo::rng::Rng::new(k);
    let per_second = (args.ramp as f64 / processes as f64).max(1.0);
    let start = tokio::time::Instant::now();
    let mut report = tokio::time::interval(Duration::from_secs(1));
    let mut next = k;
    let mut flapping = 0u64;
    let end = start + Duration::from_secs_f64(args.total());
    loop {
        let due = start + Duration::from_secs_f64(devices.len() as f64 / per_second);
        tokio::select! {
            _ = tokio::time::sleep_until(due), if next < args.devices => {
                let flaps = rng.unit() < args.flap;
                flapping += u64::from(flaps);
                let d = device::device(plan.clone(), next, source(&args, next), flaps, stats.clone(), stop.clone());
                devices.push((next, tokio::spawn(d)));
                next += processes;
            }
            _ = report.tick() => println!("{}", serde_json::to_string(&stats.take())?),
            _ = tokio::time::sleep_until(end) => break,
        }
    }
    stop_tx.send_replace(true);
    let mut ledgers: HashMap<u64, Ledger> = HashMap::new();
    for (index, d) in devices {
        ledgers.insert(index, d.await.unwrap_or_default());
    }
    for s in subscribers {
        let _ = s.await;
    }
    println!("{}", serde_json::to_string(&stats.take())?);
    println!("{}", serde_json::json!({ "ledgers": ledgers, "flapping": flapping }));
    Ok(())
}

/// The counters of all workers, from the latest report of each.
fn counters(latest: &HashMap<u64, Counters>) -> Counters {
    let mut all = Counters::default();
    for c in latest.values() {
        all.add(c);
    }
    all
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{:.1}ms", d.as_secs_f64() * 1000.0))
}

/// The parent: starts the workers, merges their reports, kills the broker when told, reports.
async fn parent(args: SimArgs) -> anyhow::Result<()> {
    args.plan()?;
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let exe = std::env::current_exe().context("own executable")?;
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let (line_tx, mut lines) = tokio::sync::mpsc::channel::<(u64, String)>(1024);
    let mut children = Vec::new();
    for k in 0..args.processes() {
        let mut child = tokio::process::Command::new(&exe)
            .args(&raw)
            .args(["--worker", &k.to_string(), "--run", &run.to_string()])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting a worker")?;
        let out = child.stdout.take().context("worker stdout")?;
        let tx = line_tx.clone();
        tokio::spawn(async move {
            let mut out = tokio::io::BufReader::new(out).lines();
            while let Ok(Some(line)) = out.next_line().await {
                if tx.send((k, line)).await.is_err() {
                    return;
                }
            }
        });
        children.push(child);
    }
    drop(line_tx);
    println!(
        "sim: {} devices over {} process(es), {} source address(es), brokers {}, ramp {}/s, one {}–{} B message every {} s at QoS {}{}",
        args.devices,
        args.processes(),
        args.sources.max(1),
        args.brokers.join(","),
        args.ramp,
        args.payload_min,
        args.payload_max,
        args.interval,
        args.qos,
        if args.persistent { ", persistent sessions" } else { "" }
    );
    let start = Instant::now();
    // Counters: each worker's latest. Latencies: since the last progress line, and in all.
    let mut latest: HashMap<u64, Counters> = HashMap::new();
    let mut window = Latencies::default();
    let mut all = Latencies::default();
    let mut ledgers: HashMap<u64, Ledger> = HashMap::new();
    let mut flapping = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut killed: Option<Instant> = None;
    let mut all_resumed_at: Option<f64> = None;
    let mut last_sent = 0;
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some((k, line)) = line else { break };
                if let Ok(snapshot) = serde_json::from_str::<Snapshot>(&line) {
                    window.merge(&snapshot.latencies);
                    latest.insert(k, snapshot.counters);
                } else if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if let Some(l) = v.get("ledgers") {
                        let part: HashMap<u64, Ledger> = serde_json::from_value(l.clone())?;
                        ledgers.extend(part);
                        flapping += v.get("flapping").and_then(|f| f.as_u64()).unwrap_or(0);
                    }
                }
            }
            _ = tick.tick() => {
                let now = counters(&latest);
                let lat = std::mem::take(&mut window);
                all.merge(&lat);
                let t = start.elapsed().as_secs_f64();
                if let (Some(pid), None) = (args.kill_pid, killed) {
                    if t >= args.kill_at {
                        let status = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
                        println!("sim: t={t:.0}s killed process {pid} ({status:?})");
                        killed = Some(Instant::now());
                    }
                }
                if let (Some(at), None) = (killed, all_resumed_at) {
                    if now.lost > 0 && now.connected as u64 == args.devices && (!args.persistent || now.resumed >= now.lost) {
                        all_resumed_at = Some(at.elapsed().as_secs_f64());
                        println!("sim: every device connected again {:.1} s after the kill", at.elapsed().as_secs_f64());
                    }
                }
                println!(
                    "t={t:.0}s connected={} failed={} lost={} resumed={} msg/s={} ack p50={} p99={} deliver p50={} p99={} ({} delivered)",
                    now.connected, now.failed, now.lost, now.resumed, now.sent - last_sent,
                    ms(lat.ack.percentile(0.5)), ms(lat.ack.percentile(0.99)),
                    ms(lat.deliver.percentile(0.5)), ms(lat.deliver.percentile(0.99)), now.delivered
                );
                last_sent = now.sent;
            }
        }
    }
    for mut c in children {
        let status = c.wait().await?;
        anyhow::ensure!(status.success(), "a worker failed: {status}");
    }
    all.merge(&window);
    let end = counters(&latest);
    let verdict = match &args.kafka {
        Some(bootstrap) => {
            let (bootstrap, topic, qos1) = (bootstrap.clone(), args.kafka_topic.clone(), args.qos > 0);
            let ledgers = ledgers.clone();
            Some(tokio::task::spawn_blocking(move || verify::check(&bootstrap, &topic, run, &ledgers, qos1)).await??)
        }
        None => None,
    };
    let pct = |h: &stats::Histogram| {
        serde_json::json!({
            "count": h.count(),
            "p50_ms": h.percentile(0.5).map(|d| d.as_secs_f64() * 1000.0),
            "p99_ms": h.percentile(0.99).map(|d| d.as_secs_f64() * 1000.0),
            "max_ms": h.percentile(1.0).map(|d| d.as_secs_f64() * 1000.0),
        })
    };
    let report = serde_json::json!({
        "devices": args.devices, "processes": args.processes(), "flapping": flapping,
        "connects": end.connects, "failed": end.failed, "lost": end.lost, "resumed": end.resumed,
        "sent": end.sent, "acked": end.acked, "delivered": end.delivered,
        "publish_to_ack": pct(&all.ack), "publish_to_deliver": pct(&all.deliver), "reconnect": pct(&all.reconnect),
        "all_reconnected_after_kill_s": all_resumed_at,
        "kafka": verdict,
        "seconds": start.elapsed().as_secs_f64(),
    });
    println!(
        "sim: report: {} sent, {} acked, {} delivered; connects {} failed {} lost {} resumed {}; publish→ack p50 {} p99 {}; publish→deliver p50 {} p99 {}; reconnect p50 {} p99 {}",
        end.sent, end.acked, end.delivered, end.connects, end.failed, end.lost, end.resumed,
        ms(all.ack.percentile(0.5)), ms(all.ack.percentile(0.99)),
        ms(all.deliver.percentile(0.5)), ms(all.deliver.percentile(0.99)),
        ms(all.reconnect.percentile(0.5)), ms(all.reconnect.percentile(0.99)),
    );
    if let Some(v) = report.get("kafka").filter(|v| !v.is_null()) {
        println!("sim: kafka: {v}");
    }
    println!("sim: json: {report}");
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if report.pointer("/kafka/acked_missing").and_then(|v| v.as_u64()).is_some_and(|n| n > 0) {
        anyhow::bail!("acknowledged messages are missing from Kafka");
    }
    Ok(())
}
