//! A raw MQTT client on a blocking socket, built on the broker's codec, for tests that need
//! control a library client does not give: when to read, packets no library sends (an unknown
//! protocol level), and a QoS 2 receiver whose state survives a reconnect to another broker
//! (rumqttc forgets it).

use bytes::BytesMut;
use socket2::{Domain, Socket, Type};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;
use tributary_broker::codec::{
    decode, encode, Connect, Packet, ProtocolVersion, PubResp, QoS, Subscribe, SubscriptionOptions,
};

/// A connected raw client.
pub struct RawClient {
    stream: TcpStream,
    buf: BytesMut,
    /// The protocol version packets are encoded and decoded in.
    version: ProtocolVersion,
    /// The CONNACK's session-present flag.
    pub session_present: bool,
    /// Bytes read from the broker so far.
    pub received: usize,
}

impl RawClient {
    /// Connects with cleanSession = `clean`, keep-alive off.
    pub fn connect(addr: &str, id: &str, clean: bool) -> std::io::Result<RawClient> {
        let mut c = RawClient::dial(addr, ProtocolVersion::V311)?;
        c.send(&Packet::Connect(Connect {
            protocol: ProtocolVersion::V311,
            clean_start: clean,
            keep_alive: 0,
            client_id: id.into(),
            will: None,
            username: None,
            password: None,
            properties: Default::default(),
        }))?;
        match c.recv()? {
            Packet::ConnAck(a) if a.reason == 0 => c.session_present = a.session_present,
            other => return Err(std::io::Error::other(format!("expected CONNACK, got {other:?}"))),
        }
        Ok(c)
    }

    /// A TCP connection on which nothing was sent yet; packets are read as `version`.
    pub fn dial(addr: &str, version: ProtocolVersion) -> std::io::Result<RawClient> {
        RawClient::over(TcpStream::connect(addr)?, version)
    }

    /// Like [`RawClient::dial`], from the local address `source` (e.g. `127.0.0.2`), for tests of
    /// what the broker counts per source address.
    pub fn dial_from(addr: &str, source: IpAddr, version: ProtocolVersion) -> std::io::Result<RawClient> {
        let to: SocketAddr = addr.parse().map_err(std::io::Error::other)?;
        let socket = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
        socket.bind(&SocketAddr::new(source, 0).into())?;
        socket.connect(&to.into())?;
        RawClient::over(socket.into(), version)
    }

    fn over(stream: TcpStream, version: ProtocolVersion) -> std::io::Result<RawClient> {
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(RawClient { stream, buf: BytesMut::new(), version, session_present: false, received: 0 })
    }

    /// Sends bytes as they are (packets the codec refuses to encode).
    pub fn send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Whether the broker closed the connection (end of stream, nothing else read first).
    pub fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0))
    }

    /// Subscribes one filter and waits for the SUBACK; returns its reason code.
    pub fn subscribe(&mut self, filter: &str, qos: QoS) -> std::io::Result<u8> {
        let options = SubscriptionOptions { qos, ..Default::default() };
        self.send(&Packet::Subscribe(Subscribe {
            packet_id: 1,
            properties: Default::default(),
            filters: vec![(filter.into(), options)],
        }))?;
        match self.recv()? {
            Packet::SubAck(a) => a.reasons.first().copied().ok_or_else(|| std::io::Error::other("empty SUBACK")),
            other => Err(std::io::Error::other(format!("expected SUBACK, got {other:?}"))),
        }
    }

    /// Sends a packet.
    pub fn send(&mut self, p: &Packet) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        encode(p, self.version, &mut out).map_err(std::io::Error::other)?;
        self.stream.write_all(&out)
    }

    /// The next packet from the broker.
    pub fn recv(&mut self) -> std::io::Result<Packet> {
        loop {
            if let Some(p) = decode(&mut self.buf, Some(self.version), u32::MAX).map_err(std::io::Error::other)? {
                return Ok(p);
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.received += n;
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The receiving side of QoS 1 and 2 as a client keeps it for its session: acknowledges, and
/// hands each QoS 2 message to the application once even when the broker sends it again.
#[derive(Default)]
pub struct Receiver {
    /// QoS 2 packet ids received and not yet released (PUBREL).
    unreleased: HashSet<u16>,
}

impl Receiver {
    /// Handles one packet; returns the payload when it is a new application message.
    pub fn handle(&mut self, c: &mut RawClient, p: Packet) -> std::io::Result<Option<bytes::Bytes>> {
        let ack = |packet_id| PubResp { packet_id, reason: 0, properties: Default::default() };
        match p {
            Packet::Publish(p) => match (p.qos, p.packet_id) {
                (QoS::AtLeastOnce, Some(id)) => {
                    c.send(&Packet::PubAck(ack(id)))?;
                    Ok(Some(p.payload))
                }
                (QoS::ExactlyOnce, Some(id)) => {
                    let new = self.unreleased.insert(id);
                    if let Err(e) = c.send(&Packet::PubRec(ack(id))) {
                        // Not handed to the application, so not received either: the broker
                        // has no PUBREC and sends it again (DUP, same id, after a reconnect),
                        // and that copy is the one that counts. Keeping the id would take it
                        // for a duplicate and lose the message.
                        if new {
                            self.unreleased.remove(&id);
                        }
                        return Err(e);
                    }
                    Ok(new.then_some(p.payload))
                }
                _ => Ok(Some(p.payload)),
            },
            Packet::PubRel(r) => {
                self.unreleased.remove(&r.packet_id);
                c.send(&Packet::PubComp(ack(r.packet_id)))?;
                Ok(None)
            }
            _ => Ok(None),
        }
    }
}

/// The sending side of QoS 2 as a client keeps it for its session: after a reconnect, messages
/// without PUBREC are sent again with DUP set and the same packet id, and PUBREL again for the
/// others (MQTT-4.4.0-1). rumqttc 0.25 can resend a PUBLISH it already completed, which a
/// broker must then take as a new message, so exactly-once tests use this instead.
#[derive(Default)]
pub struct Sender {
    next_id: u16,
    unacknowledged: std::collections::BTreeMap<u16, (String, bytes::Bytes)>,
    released: std::collections::BTreeSet<u16>,
}

impl Sender {
    /// Messages sent and not completed yet.
    pub fn in_flight(&self) -> usize {
        self.unacknowledged.len() + self.released.len()
    }

    /// Sends a new QoS 2 message.
    pub fn publish(&mut self, c: &mut RawClient, topic: &str, payload: bytes::Bytes) -> std::io::Result<()> {
        loop {
            self.next_id = self.next_id.wrapping_add(1).max(1);
            if !self.unacknowledged.contains_key(&self.next_id) && !self.released.contains(&self.next_id) {
                break;
            }
        }
        self.unacknowledged.insert(self.next_id, (topic.to_owned(), payload.clone()));
        c.send(&Self::publish_packet(self.next_id, topic, payload, false))
    }

    fn publish_packet(id: u16, topic: &str, payload: bytes::Bytes, dup: bool) -> Packet {
        Packet::Publish(tributary_broker::codec::Publish {
            dup,
            qos: QoS::ExactlyOnce,
            retain: false,
            topic: topic.to_owned(),
            packet_id: Some(id),
            properties: Default::default(),
            payload,
        })
    }

    /// After reconnecting: everything in flight again.
    pub fn resume(&mut self, c: &mut RawClient) -> std::io::Result<()> {
        for (id, (topic, payload)) in &self.unacknowledged {
            c.send(&Self::publish_packet(*id, topic, payload.clone(), true))?;
        }
        for id in &self.released {
            c.send(&Packet::PubRel(PubResp { packet_id: *id, reason: 0, properties: Default::default() }))?;
        }
        Ok(())
    }

    /// Handles an acknowledgement; returns true when a message completed.
    pub fn handle(&mut self, c: &mut RawClient, p: Packet) -> std::io::Result<bool> {
        match p {
            Packet::PubRec(r) => {
                if self.unacknowledged.remove(&r.packet_id).is_some() {
                    self.released.insert(r.packet_id);
                }
                c.send(&Packet::PubRel(PubResp { packet_id: r.packet_id, reason: 0, properties: Default::default() }))?;
                Ok(false)
            }
            Packet::PubComp(r) => Ok(self.released.remove(&r.packet_id)),
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Shutdown, TcpListener};

    /// A client on a fresh loopback connection, and the server side, kept open.
    fn connected() -> (RawClient, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}")).to_string();
        let c = RawClient::dial(&addr, ProtocolVersion::V311).unwrap_or_else(|e| panic!("{e}"));
        let (server, _) = listener.accept().unwrap_or_else(|e| panic!("{e}"));
        (c, server)
    }

    /// The broker died between sending a QoS 2 PUBLISH and reading its PUBREC (the kill -9 of
    /// `exactly_once.rs`): the PUBREC cannot be sent, and the broker resuming the session sends
    /// the message again with DUP. That copy must reach the application, once.
    #[test]
    fn a_qos2_message_whose_pubrec_failed_is_received_from_its_retransmission() {
        let mut receiver = Receiver::default();
        let payload = bytes::Bytes::from_static(b"m");
        let (mut dying, _server) = connected();
        // Every write fails from here on, as on a socket whose peer is gone.
        dying.stream.shutdown(Shutdown::Write).unwrap_or_else(|e| panic!("{e}"));
        let first = Sender::publish_packet(7, "t", payload.clone(), false);
        assert!(receiver.handle(&mut dying, first).is_err(), "the PUBREC cannot go out");

        let (mut resumed, _server) = connected();
        let again = Sender::publish_packet(7, "t", payload.clone(), true);
        let got = receiver.handle(&mut resumed, again).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, Some(payload.clone()), "the retransmission is the message");
        let duplicate = Sender::publish_packet(7, "t", payload, true);
        let got = receiver.handle(&mut resumed, duplicate).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, None, "acknowledged now: a further DUP is a duplicate");
    }
}
