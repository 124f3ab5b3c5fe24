//! One simulated device or subscriber: an MQTT 3.1.1 connection over raw TCP from a chosen
//! 127.0.0.x source address, packets encoded and decoded by the broker's own codec (no client
//! library state per connection, so tens of thousands fit in one process).

use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tributary_broker::codec::{self, Packet, ProtocolVersion, QoS};

use super::stats::Stats;
use tributary_demo::rng::Rng;

const V311: ProtocolVersion = ProtocolVersion::V311;
/// A CONNECT without CONNACK after this counts as failed.
const CONNACK_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a stopping device waits for the PUBACKs of what it sent.
const DRAIN: Duration = Duration::from_secs(5);

/// What every device of a run does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Brokers; a device starts on one (round robin by index) and moves to the next when its
    /// connection is lost or refused.
    pub brokers: Vec<SocketAddr>,
    /// Client ids are `{prefix}{index}`.
    pub prefix: String,
    /// Topic template: `{id}` is replaced by the device index.
    pub topic: String,
    /// QoS of the devices' PUBLISHes (0 or 1) and of the subscriptions.
    pub qos: QoS,
    /// cleanSession=0: the session outlives the connection.
    pub persistent: bool,
    /// Between two PUBLISHes of a device.
    pub interval: Duration,
    /// Payload size range in bytes.
    pub payload: (usize, usize),
    /// Flapping devices disconnect and reconnect this often (`None`: none flaps).
    pub flap_every: Option<Duration>,
    /// Keep-alive announced in CONNECT.
    pub keep_alive: Duration,
    /// This run's id, in every payload: the Kafka check counts only the run's own records.
    pub run: u64,
}

/// What a device has sent, for the check against Kafka.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Ledger {
    /// PUBLISHes sent: sequence numbers 0..sent.
    pub sent: u64,
    /// QoS 1 sequence numbers whose PUBACK never came (the connection was lost first): Kafka
    /// may or may not hold them.
    pub unacked: Vec<u64>,
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// What a payload says: which run, device and message, and when it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The run's id.
    pub run: u64,
    /// The device's index.
    pub device: u64,
    /// The message's sequence number at its device.
    pub seq: u64,
    /// When it was sent (Unix µs).
    pub sent_us: u64,
}

/// The payload of message `seq` of device `index` in run `run`: `run:index:seq:sent-µs:` then
/// padding to `size`.
pub fn payload(run: u64, index: u64, seq: u64, size: usize) -> Bytes {
    let mut p = format!("{run}:{index}:{seq}:{}:", now_us()).into_bytes();
    p.resize(size.max(p.len()), b'x');
    Bytes::from(p)
}

/// The stamp of a payload made by [`payload`].
pub fn parse_payload(p: &[u8]) -> Option<Stamp> {
    let mut parts = p.splitn(5, |b| *b == b':');
    let mut num = || std::str::from_utf8(parts.next()?).ok()?.parse::<u64>().ok();
    Some(Stamp { run: num()?, device: num()?, seq: num()?, sent_us: num()? })
}

/// An open MQTT connection: the socket and what was read but not decoded yet.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    /// Connects from `source` (port chosen by the system) to `broker`, CONNECT → CONNACK;
    /// returns the connection and whether the session was present.
    async fn open(
        broker: SocketAddr,
        source: Option<IpAddr>,
        client_id: &str,
        plan: &Plan,
    ) -> anyhow::Result<(Conn, bool)> {
        let socket = TcpSocket::new_v4()?;
        if let Some(source) = source {
            socket.bind(SocketAddr::new(source, 0))?;
        }
        let stream = tokio::time::timeout(CONNACK_TIMEOUT, socket.connect(broker)).await??;
        stream.set_nodelay(true)?;
        let mut conn = Conn { stream, buf: BytesMut::with_capacity(256) };
        let connect = Packet::Connect(codec::Connect {
            protocol: V311,
            clean_start: !plan.persistent,
            keep_alive: u16::try_from(plan.keep_alive.as_secs()).unwrap_or(u16::MAX),
            client_id: client_id.to_owned(),
            will: None,
            username: None,
            password: None,
            properties: Default::default(),
        });
        conn.send(&connect).await?;
        match tokio::time::timeout(CONNACK_TIMEOUT, conn.recv()).await?? {
            Packet::ConnAck(ack) if ack.reason == 0 => Ok((conn, ack.session_present)),
            Packet::ConnAck(ack) => anyhow::bail!("CONNACK {:#04x}", ack.reason),
            other => anyhow::bail!("expected CONNACK, got {other:?}"),
        }
    }

    async fn send(&mut self, p: &Packet) -> anyhow::Result<()> {
        let mut out = BytesMut::new();
        codec::encode(p, V311, &mut out)?;
        self.stream.write_all(&out).await?;
        Ok(())
    }

    /// The next packet; cancel-safe (bytes read stay in the buffer).
    async fn recv(&mut self) -> anyhow::Result<Packet> {
        loop {
            if let Some(p) = codec::decode(&mut self.buf, Some(V311), u32::MAX)? {
                return Ok(p);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                anyhow::bail!("closed by the broker");
            }
        }
    }
}

/// Why a connection ended.
enum End {
    /// The run is over.
    Stop,
    /// A flapping device's own disconnect.
    Flap,
    /// Lost: refused, closed or broken.
    Lost,
}

/// Runs device `index` until `stop`: connects, publishes every interval, reconnects (to the
/// next broker) when the connection is lost. Returns what it sent.
pub async fn device(
    plan: Arc<Plan>,
    index: u64,
    source: Option<IpAddr>,
    flaps: bool,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) -> Ledger {
    let client_id = format!("{}{index}", plan.prefix);
    let topic = plan.topic.replace("{id}", &index.to_string());
    let mut rng = Rng::new(index.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let mut broker = index as usize % plan.brokers.len();
    let mut ledger = Ledger::default();
    let mut lost_at: Option<Instant> = None;
    let mut backoff = Duration::from_millis(500);
    while !*stop.borrow() {
        let (mut conn, present) = match Conn::open(plan.brokers[broker], source, &client_id, &plan).await {
            Ok(c) => c,
            Err(_) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                broker = (broker + 1) % plan.brokers.len();
                let wait = backoff.mul_f64(1.0 + rng.unit());
                backoff = (backoff * 2).min(Duration::from_secs(10));
                tokio::select! { _ = tokio::time::sleep(wait) => {}, _ = stop.changed() => {} }
                continue;
            }
        };
        backoff = Duration::from_millis(500);
        stats.connects.fetch_add(1, Ordering::Relaxed);
        stats.connected.fetch_add(1, Ordering::Relaxed);
        if let Some(at) = lost_at.take() {
            Stats::time(&stats.reconnect, at.elapsed());
            if present {
                stats.resumed.fetch_add(1, Ordering::Relaxed);
            }
        }
        let end = publish_loop(&mut conn, &plan, index, &topic, flaps, &mut rng, &mut ledger, &stats, &mut stop).await;
        stats.connected.fetch_sub(1, Ordering::Relaxed);
        match end {
            End::Stop => break,
            End::Flap => {}
            End::Lost => {
                stats.lost.fetch_add(1, Ordering::Relaxed);
                lost_at = Some(Instant::now());
                broker = (broker + 1) % plan.brokers.len();
            }
        }
    }
    ledger
}

/// One connection's life: PUBLISH every interval, PUBACKs timed, PINGREQ at half the keep-alive.
#[allow(clippy::too_many_arguments)]
async fn publish_loop(
    conn: &mut Conn,
    plan: &Plan,
    index: u64,
    topic: &str,
    flaps: bool,
    rng: &mut Rng,
    ledger: &mut Ledger,
    stats: &Stats,
    stop: &mut watch::Receiver<bool>,
) -> End {
    let phase = plan.interval.mul_f64(rng.unit());
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + phase, plan.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut ping = tokio::time::interval(plan.keep_alive / 2);
    ping.tick().await;
    let flap_every = plan.flap_every.filter(|_| flaps);
    let first_flap = flap_every.unwrap_or(Duration::from_secs(86_400)).mul_f64(0.5 + rng.unit());
    let flap = tokio::time::sleep(first_flap);
    tokio::pin!(flap);
    // Packet id → (sequence number, sent at).
    let mut in_flight: HashMap<u16, (u64, Instant)> = HashMap::new();
    let mut next_id: u16 = 0;
    let mut stopping: Option<tokio::time::Instant> = None;
    let lost = |in_flight: &mut HashMap<u16, (u64, Instant)>, ledger: &mut Ledger| {
        never_acknowledged(in_flight, ledger);
        End::Lost
    };
    loop {
        if stopping.is_some() && in_flight.is_empty() {
            let _ =
                conn.send(&Packet::Disconnect(codec::Disconnect { reason: 0, properties: Default::default() })).await;
            return End::Stop;
        }
        let drain_over = async {
            match stopping {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tick.tick(), if stopping.is_none() => {
                let size = plan.payload.0 + rng.below(plan.payload.1 - plan.payload.0 + 1);
                let seq = ledger.sent;
                let packet_id = (plan.qos != QoS::AtMostOnce).then(|| {
                    next_id = next_id.checked_add(1).unwrap_or(1);
                    next_id
                });
                let publish = Packet::Publish(codec::Publish {
                    dup: false,
                    qos: plan.qos,
                    retain: false,
                    topic: topic.to_owned(),
                    packet_id,
                    properties: Default::default(),
                    payload: payload(plan.run, index, seq, size),
                });
                if conn.send(&publish).await.is_err() {
                    return lost(&mut in_flight, ledger);
                }
                ledger.sent += 1;
                stats.sent.fetch_add(1, Ordering::Relaxed);
                if let Some(id) = packet_id {
                    in_flight.insert(id, (seq, Instant::now()));
                }
            }
            _ = ping.tick() => {
                if conn.send(&Packet::PingReq).await.is_err() {
                    return lost(&mut in_flight, ledger);
                }
            }
            packet = conn.recv() => match packet {
                Ok(Packet::PubAck(ack)) => {
                    if let Some((_, at)) = in_flight.remove(&ack.packet_id) {
                        stats.acked.fetch_add(1, Ordering::Relaxed);
                        Stats::time(&stats.ack, at.elapsed());
                    }
                }
                Ok(_) => {}
                Err(_) => return lost(&mut in_flight, ledger),
            },
            _ = &mut flap, if flap_every.is_some() && stopping.is_none() => {
                if in_flight.is_empty() {
                    let _ = conn.send(&Packet::Disconnect(codec::Disconnect { reason: 0, properties: Default::default() })).await;
                    return End::Flap;
                }
                // Acknowledgements first: look again shortly.
                flap.as_mut().reset(tokio::time::Instant::now() + Duration::from_millis(100));
            }
            _ = stop.changed(), if stopping.is_none() => stopping = Some(tokio::time::Instant::now() + DRAIN),
            _ = drain_over => {
                never_acknowledged(&mut in_flight, ledger);
                return End::Stop;
            }
        }
    }
}

/// Moves what is still in flight into the ledger as never acknowledged.
fn never_acknowledged(in_flight: &mut HashMap<u16, (u64, Instant)>, ledger: &mut Ledger) {
    ledger.unacked.extend(in_flight.drain().map(|(_, (seq, _))| seq));
}

/// Runs a subscriber of `filter` until `stop`: counts deliveries and times them from the send
/// time in their payload; reconnects (clean session) to the next broker when lost.
pub async fn subscriber(
    plan: Arc<Plan>,
    index: u64,
    filter: String,
    source: Option<IpAddr>,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) {
    let client_id = format!("{}sub-{index}", plan.prefix);
    let sub_plan = Plan { persistent: false, ..(*plan).clone() };
    let mut broker = index as usize % plan.brokers.len();
    while !*stop.borrow() {
        let Ok((mut conn, _)) = Conn::open(plan.brokers[broker], source, &client_id, &sub_plan).await else {
            broker = (broker + 1) % plan.brokers.len();
            tokio::select! { _ = tokio::time::sleep(Duration::from_secs(1)) => {}, _ = stop.changed() => {} }
            continue;
        };
        let options = codec::SubscriptionOptions {
            qos: plan.qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: 0,
        };
        let subscribe = Packet::Subscribe(codec::Subscribe {
            packet_id: 1,
            properties: Default::default(),
            filters: vec![(filter.clone(), options)],
        });
        if conn.send(&subscribe).await.is_err() {
            continue;
        }
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                packet = conn.recv() => match packet {
                    Ok(Packet::Publish(p)) => {
                        if let Some(stamp) = parse_payload(&p.payload).filter(|s| s.run == plan.run) {
                            stats.delivered.fetch_add(1, Ordering::Relaxed);
                            Stats::time(&stats.deliver, Duration::from_micros(now_us().saturating_sub(stamp.sent_us)));
                        }
                        if let Some(packet_id) = p.packet_id {
                            let ack = Packet::PubAck(codec::PubResp { packet_id, reason: 0, properties: Default::default() });
                            if conn.send(&ack).await.is_err() {
                                break;
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                },
            }
        }
        broker = (broker + 1) % plan.brokers.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_device_sequence_and_send_time_and_have_their_size() {
        let p = payload(3, 42, 7, 500);
        assert_eq!(p.len(), 500);
        let stamp = parse_payload(&p);
        assert_eq!(stamp.map(|s| (s.run, s.device, s.seq)), Some((3, 42, 7)));
        assert!(stamp.is_some_and(|s| s.sent_us > 0 && s.sent_us <= now_us()));
        assert_eq!(parse_payload(b"garbage"), None);
    }
}
