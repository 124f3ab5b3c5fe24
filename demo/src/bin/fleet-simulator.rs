//! `fleet-simulator`: a fleet of trucks, each its own MQTT connection, driving between Italian
//! cities and publishing a JSON position report (`demo::report::TruckReport`) to
//! `fleet/trucks/<plate>` every `--interval` seconds (QoS 0).
//!
//! Connections are opened at `--connect-rate` per second and spread round-robin over
//! `--brokers`; a lost connection is retried with a growing, jittered delay. Each truck has a
//! request queue of 4: a report that does not fit (connection down) is dropped and counted,
//! never buffered without bound. The process needs one file descriptor per truck: it refuses to
//! start when the open-files limit is lower.

use anyhow::{bail, Context};
use clap::Parser;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tributary_demo::plate::plate;
use tributary_demo::report::now_ms;
use tributary_demo::rng::Rng;
use tributary_demo::roads::RoadGraph;
use tributary_demo::truck::Truck;

/// File descriptors kept free for everything but the trucks' sockets.
const SPARE_FDS: u64 = 64;
/// Requests a truck's client may have queued before reports are dropped.
const QUEUE: usize = 4;

#[derive(Parser, Debug)]
#[command(about = "Simulated trucks publishing their positions over MQTT")]
struct Args {
    /// MQTT brokers (host:port), comma-separated; trucks are spread over them round-robin.
    #[arg(long, env = "BROKERS", value_delimiter = ',', default_value = "127.0.0.1:1883,127.0.0.1:1884")]
    brokers: Vec<String>,
    /// Number of trucks (one MQTT connection each).
    #[arg(long, env = "TRUCKS", default_value_t = 15_000)]
    trucks: u64,
    /// MQTT user name of the simulator (allowed to publish on `fleet/trucks/#` only).
    #[arg(long, env = "FLEET_SIM_USER", default_value = "simulator")]
    username: String,
    /// Its password.
    #[arg(long, env = "FLEET_SIM_PASSWORD")]
    password: String,
    /// Seconds between two reports of a truck.
    #[arg(long, env = "FLEET_INTERVAL", default_value_t = 5.0)]
    interval: f64,
    /// Simulated seconds per real second (60: a truck at 80 km/h covers 1.3 km a second).
    #[arg(long, env = "FLEET_TIME_SCALE", default_value_t = 60.0)]
    time_scale: f64,
    /// New connections per second while the fleet starts.
    #[arg(long, env = "FLEET_CONNECT_RATE", default_value_t = 500)]
    connect_rate: u32,
    /// Seed of the trucks' random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Client ids are `<prefix>-<plate>`.
    #[arg(long, default_value = "truck")]
    client_prefix: String,
}

/// Fleet-wide counters, printed every few seconds.
#[derive(Default)]
struct Counters {
    connected: AtomicI64,
    published: AtomicU64,
    dropped: AtomicU64,
    connection_errors: AtomicU64,
    first_error_logged: AtomicBool,
}

/// The soft limit on open files of this process (`/proc/self/limits`), if it can be read.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.brokers.is_empty() || args.trucks == 0 {
        bail!("need at least one broker and one truck");
    }
    if args.interval.is_nan()
        || args.interval <= 0.0
        || args.time_scale.is_nan()
        || args.time_scale <= 0.0
        || args.connect_rate == 0
    {
        bail!("--interval, --time-scale and --connect-rate must be positive");
    }
    if let Some(limit) = open_files_limit() {
        if args.trucks + SPARE_FDS > limit {
            bail!(
                "{} trucks need {} open files, the limit is {limit}: raise it (ulimit -n) or run fewer trucks per process",
                args.trucks,
                args.trucks + SPARE_FDS
            );
        }
    }
    let mut hosts = Vec::new();
    for b in &args.brokers {
        let (host, port) = b.rsplit_once(':').with_context(|| format!("broker {b:?} is not host:port"))?;
        let port: u16 = port.parse().with_context(|| format!("broker {b:?}: bad port"))?;
        hosts.push((host.to_owned(), port));
    }
    let graph = Arc::new(RoadGraph::shipped()?);
    let counters = Arc::new(Counters::default());
    let args = Arc::new(args);
    println!(
        "fleet-simulator: {} trucks on {} roads between {} cities, brokers {}",
        args.trucks,
        graph.roads.len(),
        graph.cities.len(),
        args.brokers.join(", ")
    );
    tokio::spawn(report_progress(counters.clone(), args.trucks));

    // Ramp: a batch of connections every 50 ms.
    let per_batch = (u64::from(args.connect_rate) / 20).max(1);
    let mut ramp = tokio::time::interval(Duration::from_millis(50));
    let mut n = 0;
    let ramp_up = async {
        while n < args.trucks {
            ramp.tick().await;
            for _ in 0..per_batch.min(args.trucks - n) {
                let (host, port) = hosts[(n % hosts.len() as u64) as usize].clone();
                let truck = Truck::new(plate(n), &graph, args.seed.wrapping_mul(1_000_003).wrapping_add(n));
                tokio::spawn(drive(truck, host, port, args.clone(), graph.clone(), counters.clone()));
                n += 1;
            }
        }
        println!("fleet-simulator: all {} trucks started", args.trucks);
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = ramp_up => {}
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
    }
    println!("fleet-simulator: stopping");
    Ok(())
}

/// Prints the fleet's connection count and publish rate every 5 seconds.
async fn report_progress(c: Arc<Counters>, trucks: u64) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut last = (Instant::now(), 0);
    loop {
        tick.tick().await;
        let published = c.published.load(Ordering::Relaxed);
        let rate = (published - last.1) as f64 / last.0.elapsed().as_secs_f64().max(0.001);
        last = (Instant::now(), published);
        println!(
            "fleet-simulator: {}/{trucks} connected, {rate:.0} reports/s, {published} published, {} dropped, {} connection errors",
            c.connected.load(Ordering::Relaxed),
            c.dropped.load(Ordering::Relaxed),
            c.connection_errors.load(Ordering::Relaxed),
        );
    }
}

/// One truck: its MQTT connection and its driving, until the process ends.
async fn drive(mut truck: Truck, host: String, port: u16, args: Arc<Args>, graph: Arc<RoadGraph>, c: Arc<Counters>) {
    let mut rng = Rng::new(truck.plate.bytes().fold(args.seed, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))));
    let mut opts = MqttOptions::new(format!("{}-{}", args.client_prefix, truck.plate), host, port);
    opts.set_credentials(args.username.clone(), args.password.clone());
    opts.set_keep_alive(Duration::from_secs(60));
    opts.set_clean_session(true);
    opts.set_max_packet_size(4096, 4096);
    opts.set_inflight(4);
    let (client, mut events) = AsyncClient::new(opts, QUEUE);
    let topic = format!("fleet/trucks/{}", truck.plate);
    let period = Duration::from_secs_f64(args.interval);
    // Reports of the fleet spread evenly over the interval.
    let mut tick = interval_at(Instant::now() + period.mul_f64(rng.unit()), period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let (mut connected, mut backoff, mut last) = (false, 1.0_f64, Instant::now());
    loop {
        tokio::select! {
            event = events.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) if ack.code == ConnectReturnCode::Success => {
                    if !connected {
                        c.connected.fetch_add(1, Ordering::Relaxed);
                    }
                    connected = true;
                    backoff = 1.0;
                }
                Ok(_) => {}
                Err(e) => {
                    if connected {
                        c.connected.fetch_sub(1, Ordering::Relaxed);
                    }
                    connected = false;
                    c.connection_errors.fetch_add(1, Ordering::Relaxed);
                    if !c.first_error_logged.swap(true, Ordering::Relaxed) {
                        eprintln!("fleet-simulator: {}: {e} (retrying; later errors are only counted)", truck.plate);
                    }
                    tokio::time::sleep(Duration::from_secs_f64(backoff * rng.range(1.0, 2.0))).await;
                    backoff = (backoff * 2.0).min(30.0);
                }
            },
            _ = tick.tick() => {
                let now = Instant::now();
                truck.advance(&graph, (now - last).as_secs_f64() * args.time_scale);
                last = now;
                if !connected {
                    continue;
                }
                let payload = match serde_json::to_vec(&truck.report(&graph, now_ms())) {
                    Ok(p) => p,
                    Err(_) => continue,
                };
                match client.try_publish(topic.clone(), QoS::AtMostOnce, false, payload) {
                    Ok(()) => c.published.fetch_add(1, Ordering::Relaxed),
                    Err(_) => c.dropped.fetch_add(1, Ordering::Relaxed),
                };
            }
        }
    }
}
