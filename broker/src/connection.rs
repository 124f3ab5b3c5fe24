//! Reads MQTT packets from and writes them to one byte stream (mini-redis style `Connection`).
//!
//! Buffers start small and are given back after bursts: an idle connection should cost a few
//! hundred bytes, not the size of the largest packet it ever sent.

use bytes::BytesMut;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::codec::{self, DecodeError, EncodeError, Packet, ProtocolVersion};
use crate::metrics::Metrics;
use crate::read_budget::{ReadBudget, SMALL_PACKET};

/// Initial read buffer: enough for a typical small packet in one read.
const INITIAL_READ: usize = 256;
/// Buffers larger than this are released once empty.
const KEEP_CAPACITY: usize = 8 * 1024;

/// Why reading or writing failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectionError {
    /// Socket error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent bytes that are not a valid packet.
    #[error("bad packet: {0}")]
    Decode(#[from] DecodeError),
    /// The peer closed the stream in the middle of a packet.
    #[error("connection closed mid-packet")]
    Truncated,
    /// A large packet found the process's budget for packets being received spent.
    #[error("no room for a {0}-byte packet in the budget of packets being received")]
    OverBudget(usize),
}

/// A framed MQTT stream.
pub(crate) struct Connection<S> {
    stream: S,
    read_buf: BytesMut,
    write_buf: BytesMut,
    /// Protocol version, known once CONNECT was read.
    pub version: Option<ProtocolVersion>,
    /// Largest packet we accept.
    max_incoming: u32,
    /// Largest packet the client accepts (MQTT 5 Maximum Packet Size).
    pub max_outgoing: u32,
    /// Protocol level of a CONNECT that failed to decode (the decoder may consume its bytes).
    failed_connect_level: Option<u8>,
    /// Bytes reserved in `budget` for the large packet being received (0: none).
    reserved: u32,
    budget: Arc<ReadBudget>,
    /// Bytes read and written are counted here.
    metrics: Arc<Metrics>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wraps a stream; packets larger than `max_incoming` bytes are refused, and large packets
    /// being received take their size from `budget` until they are complete; traffic is counted
    /// in `metrics`.
    pub(crate) fn new(stream: S, max_incoming: u32, budget: Arc<ReadBudget>, metrics: Arc<Metrics>) -> Self {
        Connection {
            stream,
            read_buf: BytesMut::with_capacity(INITIAL_READ),
            write_buf: BytesMut::new(),
            version: None,
            max_incoming,
            max_outgoing: u32::MAX,
            failed_connect_level: None,
            reserved: 0,
            budget,
            metrics,
        }
    }

    /// Reads the next packet; `Ok(None)` when the peer closed cleanly between packets.
    /// Cancel-safe: a partial packet stays in the buffer for the next call.
    pub(crate) async fn read_packet(&mut self) -> Result<Option<Packet>, ConnectionError> {
        loop {
            // Decoding happens in a separate sync call so that no packet value is held across the
            // read below: that keeps this future (part of every idle connection) small.
            if let Some(p) = self.buffered_packet()? {
                return Ok(Some(p));
            }
            if self.read_buf.capacity() - self.read_buf.len() < INITIAL_READ {
                self.read_buf.reserve(INITIAL_READ);
            }
            let read = self.stream.read_buf(&mut self.read_buf).await?;
            if read == 0 {
                return if self.read_buf.is_empty() { Ok(None) } else { Err(ConnectionError::Truncated) };
            }
            self.metrics.bytes_received.inc_by(read as u64);
        }
    }

    /// A packet already complete in the read buffer, without reading the socket.
    pub(crate) fn buffered_packet(&mut self) -> Result<Option<Packet>, ConnectionError> {
        let level = if self.version.is_none() { self.connect_level() } else { None };
        let decoded = codec::decode(&mut self.read_buf, self.version, self.max_incoming);
        match &decoded {
            Err(_) => self.failed_connect_level = level,
            Ok(Some(_)) => {
                self.give_back();
                if self.read_buf.is_empty() && self.read_buf.capacity() > KEEP_CAPACITY {
                    self.read_buf = BytesMut::with_capacity(INITIAL_READ);
                }
            }
            // Incomplete: a large packet must have room in the budget before more of it is read.
            Ok(None) => self.reserve_for_next()?,
        }
        Ok(decoded?)
    }

    /// Reserves the declared size of a large packet at the front of the read buffer, once.
    fn reserve_for_next(&mut self) -> Result<(), ConnectionError> {
        if self.reserved != 0 {
            return Ok(());
        }
        let Some(size) = declared_size(&self.read_buf).filter(|s| *s > SMALL_PACKET) else { return Ok(()) };
        // The decoder refused anything above `max_incoming` (a u32) already.
        let bytes = u32::try_from(size).map_err(|_| ConnectionError::OverBudget(size))?;
        if !self.budget.reserve(u64::from(bytes)) {
            return Err(ConnectionError::OverBudget(size));
        }
        self.reserved = bytes;
        Ok(())
    }

    fn give_back(&mut self) {
        if self.reserved != 0 {
            self.budget.release(u64::from(self.reserved));
            self.reserved = 0;
        }
    }

    /// The protocol level of a CONNECT that could not be decoded, if its header showed one: lets
    /// the server answer in the client's own protocol version.
    pub(crate) fn failed_connect_level(&self) -> Option<u8> {
        self.failed_connect_level
    }

    /// The protocol level byte of a CONNECT at the front of the read buffer, if one is there.
    fn connect_level(&self) -> Option<u8> {
        let b = &self.read_buf;
        if b.first()? >> 4 != 1 {
            return None;
        }
        // Skip the remaining-length varint (1..=4 bytes), then the 2-byte length of "MQTT".
        let len_bytes = b.iter().skip(1).take(4).position(|x| x & 0x80 == 0)? + 1;
        let name_len = u16::from_be_bytes([*b.get(1 + len_bytes)?, *b.get(2 + len_bytes)?]) as usize;
        b.get(3 + len_bytes + name_len).copied()
    }

    /// Encodes a packet into the write buffer. A packet larger than the client accepts goes
    /// without its Reason String and User Properties when that makes it fit (MQTT-3.2.2-19/20);
    /// otherwise `Ok(false)`, nothing queued (MQTT-3.1.2-25: the server must then drop it).
    pub(crate) fn queue(&mut self, packet: &Packet) -> Result<bool, EncodeError> {
        if self.queue_within_limit(packet)? {
            return Ok(true);
        }
        let mut plain = packet.clone();
        if !plain.strip_diagnostics() {
            return Ok(false);
        }
        self.queue_within_limit(&plain)
    }

    /// Encodes `packet` if it fits the client's Maximum Packet Size; `Ok(false)` leaves nothing.
    fn queue_within_limit(&mut self, packet: &Packet) -> Result<bool, EncodeError> {
        let version = self.version.unwrap_or(ProtocolVersion::V311);
        let start = self.write_buf.len();
        codec::encode(packet, version, &mut self.write_buf)?;
        if (self.write_buf.len() - start) as u64 > u64::from(self.max_outgoing) {
            self.write_buf.truncate(start);
            return Ok(false);
        }
        Ok(true)
    }

    /// Drops everything queued and not yet written.
    pub(crate) fn discard_writes(&mut self) {
        self.write_buf.clear();
    }

    /// Writes everything queued.
    pub(crate) async fn flush(&mut self) -> std::io::Result<()> {
        if !self.write_buf.is_empty() {
            self.stream.write_all(&self.write_buf).await?;
            self.stream.flush().await?;
            self.metrics.bytes_sent.inc_by(self.write_buf.len() as u64);
            self.write_buf.clear();
            if self.write_buf.capacity() > KEEP_CAPACITY {
                self.write_buf = BytesMut::new();
            }
        }
        Ok(())
    }

    /// Queues, flushes and shuts the stream down (best effort: the peer may already be gone).
    /// A partial packet's reservation is given back.
    pub(crate) async fn close_with(&mut self, last: Option<&Packet>) {
        if let Some(p) = last {
            let _ = self.queue(p);
        }
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
        self.give_back();
    }
}

impl<S> Drop for Connection<S> {
    fn drop(&mut self) {
        if self.reserved != 0 {
            self.budget.release(u64::from(self.reserved));
        }
    }
}

/// The total size of the packet whose fixed header starts `buf`, once the header is complete.
fn declared_size(buf: &[u8]) -> Option<usize> {
    let mut remaining = 0usize;
    for (i, b) in buf.iter().skip(1).take(4).enumerate() {
        remaining |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Some(1 + (i + 1) + remaining);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Disconnect, Properties, Publish, QoS};

    fn connection(max_outgoing: u32) -> Connection<tokio::io::DuplexStream> {
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut conn = Connection::new(ours, 1024, Arc::new(ReadBudget::new(1 << 20)), Arc::new(Metrics::new()));
        conn.version = Some(ProtocolVersion::V5);
        conn.max_outgoing = max_outgoing;
        conn
    }

    /// The head of a QoS 0 PUBLISH to topic `t` whose payload is `payload` bytes long: fixed
    /// header, topic; the payload is sent apart.
    fn publish_head(payload: usize) -> Vec<u8> {
        let mut head = vec![0x30];
        let mut remaining = 3 + payload;
        loop {
            let byte = (remaining % 128) as u8;
            remaining /= 128;
            head.push(if remaining > 0 { byte | 0x80 } else { byte });
            if remaining == 0 {
                break;
            }
        }
        head.extend_from_slice(&[0, 1, b't']);
        head
    }

    #[tokio::test]
    async fn a_large_packet_holds_its_size_in_the_budget_until_complete() {
        use tokio::io::AsyncWriteExt;
        let budget = Arc::new(ReadBudget::new(20_000));
        let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
        let mut conn = Connection::new(ours, 1 << 20, budget.clone(), Arc::new(Metrics::new()));
        conn.version = Some(ProtocolVersion::V311);
        let head = publish_head(10_000);
        theirs.write_all(&head).await.unwrap_or_else(|e| panic!("{e}"));
        theirs.write_all(&[7u8; 5_000]).await.unwrap_or_else(|e| panic!("{e}"));
        let read = tokio::time::timeout(std::time::Duration::from_millis(50), conn.read_packet()).await;
        assert!(read.is_err(), "incomplete: still reading");
        assert_eq!(budget.held(), (head.len() + 10_000) as u64, "the declared size is reserved");
        theirs.write_all(&[7u8; 5_000]).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(conn.read_packet().await, Ok(Some(Packet::Publish(_)))));
        assert_eq!(budget.held(), 0, "given back once complete");
    }

    #[tokio::test]
    async fn a_large_packet_without_room_in_the_budget_is_refused_and_small_ones_never_ask() {
        use tokio::io::AsyncWriteExt;
        let budget = Arc::new(ReadBudget::new(20_000));
        assert!(budget.reserve(15_000), "others hold most of it");
        let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
        let mut conn = Connection::new(ours, 1 << 20, budget.clone(), Arc::new(Metrics::new()));
        conn.version = Some(ProtocolVersion::V311);
        let mut small = publish_head(100);
        small.extend_from_slice(&[1u8; 100]);
        theirs.write_all(&small).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(conn.read_packet().await, Ok(Some(Packet::Publish(_)))), "small packets pass");
        theirs.write_all(&publish_head(10_000)).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(conn.read_packet().await, Err(ConnectionError::OverBudget(_))));
        assert_eq!(budget.held(), 15_000, "nothing taken by the refused packet");
    }

    #[tokio::test]
    async fn a_connection_dropped_mid_packet_gives_its_reservation_back() {
        use tokio::io::AsyncWriteExt;
        let budget = Arc::new(ReadBudget::new(1 << 20));
        let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
        let mut conn = Connection::new(ours, 1 << 20, budget.clone(), Arc::new(Metrics::new()));
        conn.version = Some(ProtocolVersion::V311);
        theirs.write_all(&publish_head(100_000)).await.unwrap_or_else(|e| panic!("{e}"));
        let _ = tokio::time::timeout(std::time::Duration::from_millis(50), conn.read_packet()).await;
        assert!(budget.held() > 100_000);
        drop(conn);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn reason_strings_give_way_to_the_clients_maximum_packet_size() {
        let properties = Properties {
            reason_string: Some("a long explanation of what went wrong".into()),
            user_properties: vec![("k".into(), "v".into())],
            ..Properties::default()
        };
        let disconnect = Packet::Disconnect(Disconnect { reason: 0x82, properties });
        let mut roomy = connection(1024);
        assert_eq!(roomy.queue(&disconnect), Ok(true));
        assert!(roomy.write_buf.len() > 40, "sent whole when it fits");
        let mut tight = connection(8);
        assert_eq!(tight.queue(&disconnect), Ok(true), "sent without them, not dropped");
        assert_eq!(&tight.write_buf[..], &[0xE0, 2, 0x82, 0][..]);
    }

    #[test]
    fn a_publish_too_large_is_dropped() {
        let publish = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "t".into(),
            packet_id: None,
            properties: Properties { user_properties: vec![("k".into(), "v".repeat(32))], ..Properties::default() },
            payload: bytes::Bytes::from_static(b"x"),
        });
        let mut tight = connection(16);
        assert_eq!(tight.queue(&publish), Ok(false));
        assert!(tight.write_buf.is_empty(), "nothing queued");
    }
}
