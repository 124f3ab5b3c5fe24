//! PUBLISH from the client into Kafka: topic aliases, QoS 1/2 acknowledgement after the Kafka
//! ack, QoS 2 duplicate suppression, and the Last Will.

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};
use tokio::io::{AsyncRead, AsyncWrite};

use super::connect::TOPIC_ALIAS_MAX;
use super::{Client, End};
use crate::broker::Broker;
use crate::codec::{reason, Packet, Properties, ProtocolVersion, PubResp, Publish, QoS};
use crate::kafka::producer::ProduceError;
use crate::message::{now_ms, Message, MessageProperties};
use crate::metrics::inc;

/// A Last Will, kept until the connection ends.
pub(super) struct Will {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// Kept raw: the expiry interval counts from when the Will is published.
    pub properties: Properties,
}

/// Result of one publish handed to Kafka: (packet id, QoS, outcome).
pub(super) type InboundAck = BoxFuture<'static, (Option<u16>, QoS, Result<(), ProduceError>)>;

fn resp(packet_id: u16, reason: u8) -> PubResp {
    PubResp { packet_id, reason, properties: Properties::default() }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Client<S> {
    pub(super) async fn on_publish(&mut self, mut p: Publish) -> Result<(), End> {
        inc(&self.broker.metrics.publish_received);
        self.resolve_alias(&mut p)?;
        if p.qos == QoS::ExactlyOnce {
            let id = p.packet_id.ok_or(End::Protocol(reason::PROTOCOL_ERROR))?;
            match self.qos2.get(&id) {
                // Produced and acknowledged: the client missed our PUBREC (MQTT-4.3.3-?).
                Some(true) => return self.send(&Packet::PubRec(resp(id, reason::SUCCESS))),
                // Still waiting for Kafka: the PUBREC follows the ack.
                Some(false) => return Ok(()),
                None => {}
            }
        }
        if p.qos != QoS::AtMostOnce && self.version == ProtocolVersion::V5 {
            let in_flight = self.pending.len() + self.qos2.values().filter(|released| **released).count();
            if in_flight >= usize::from(self.broker.config.limits.max_inflight) {
                return Err(End::Protocol(reason::RECEIVE_MAXIMUM_EXCEEDED));
            }
        }
        let msg = Message {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            publisher: Some(self.client_id.to_string()),
            properties: MessageProperties::from_publish(&p.properties, now_ms()),
        };
        let track = p.qos != QoS::AtMostOnce || msg.retain;
        let ack = match self.broker.publish(msg).await {
            Ok(ack) => ack,
            Err(e) => return self.produce_failed(p.packet_id, p.qos, e),
        };
        if p.qos == QoS::ExactlyOnce {
            if let Some(id) = p.packet_id {
                self.qos2.insert(id, false);
            }
        }
        if track {
            let (id, qos) = (p.packet_id, p.qos);
            self.pending.push_back(async move { (id, qos, ack.await.map(|_| ())) }.boxed());
        }
        Ok(())
    }

    /// Replaces a topic alias by its topic, or records a new alias (MQTT 5 §3.3.2.3.4).
    fn resolve_alias(&mut self, p: &mut Publish) -> Result<(), End> {
        let Some(alias) = p.properties.topic_alias else {
            return if p.topic.is_empty() { Err(End::Protocol(reason::PROTOCOL_ERROR)) } else { Ok(()) };
        };
        if alias == 0 || alias > TOPIC_ALIAS_MAX {
            return Err(End::Protocol(reason::TOPIC_ALIAS_INVALID));
        }
        let slot = usize::from(alias - 1);
        if self.aliases.len() <= slot {
            self.aliases.resize(slot + 1, None);
        }
        if p.topic.is_empty() {
            match &self.aliases[slot] {
                Some(topic) => p.topic = topic.to_string(),
                None => return Err(End::Protocol(reason::PROTOCOL_ERROR)),
            }
        } else {
            self.aliases[slot] = Some(p.topic.as_str().into());
        }
        p.properties.topic_alias = None;
        Ok(())
    }

    /// Kafka acknowledged (or refused) a publish: answer the client in arrival order.
    pub(super) fn on_kafka_ack(
        &mut self,
        (id, qos, result): (Option<u16>, QoS, Result<(), ProduceError>),
    ) -> Result<(), End> {
        if let Err(e) = result {
            return self.produce_failed(id, qos, e);
        }
        match (qos, id) {
            (QoS::AtLeastOnce, Some(id)) => self.send(&Packet::PubAck(resp(id, reason::SUCCESS))),
            (QoS::ExactlyOnce, Some(id)) => {
                self.qos2.insert(id, true);
                self.send(&Packet::PubRec(resp(id, reason::SUCCESS)))
            }
            _ => Ok(()),
        }
    }

    /// Kafka refused a record. MQTT 5 clients are told in the acknowledgement; 3.1.1 has no way
    /// to say it, so the connection is closed and the client's retry gets another chance.
    fn produce_failed(&mut self, id: Option<u16>, qos: QoS, e: ProduceError) -> Result<(), End> {
        inc(&self.broker.metrics.produce_failed);
        tracing::warn!(client = %self.client_id, error = %e, "publish not accepted by kafka");
        match (self.version, qos, id) {
            (_, QoS::AtMostOnce, _) => Ok(()),
            (ProtocolVersion::V5, QoS::AtLeastOnce, Some(id)) => {
                self.send(&Packet::PubAck(resp(id, reason::UNSPECIFIED_ERROR)))
            }
            (ProtocolVersion::V5, QoS::ExactlyOnce, Some(id)) => {
                self.qos2.remove(&id);
                self.send(&Packet::PubRec(resp(id, reason::UNSPECIFIED_ERROR)))
            }
            _ => Err(End::Kafka),
        }
    }

    pub(super) fn on_pubrel(&mut self, r: PubResp) -> Result<(), End> {
        let code = match self.qos2.get(&r.packet_id) {
            Some(true) => {
                self.qos2.remove(&r.packet_id);
                reason::SUCCESS
            }
            // PUBREL before our PUBREC is a protocol violation.
            Some(false) => return Err(End::Protocol(reason::PROTOCOL_ERROR)),
            None => reason::PACKET_IDENTIFIER_NOT_FOUND,
        };
        self.send(&Packet::PubComp(resp(r.packet_id, code)))
    }
}

impl Will {
    /// Publishes the Will and waits for Kafka's ack, so a Will is not lost when the task ends.
    pub(super) async fn publish(self, broker: &Broker, client_id: &str) {
        let will = self;
        let msg = Message {
            topic: will.topic,
            payload: will.payload,
            qos: will.qos,
            retain: will.retain,
            publisher: Some(client_id.to_owned()),
            properties: MessageProperties::from_publish(&will.properties, now_ms()),
        };
        let result = match broker.publish(msg).await {
            Ok(ack) => ack.await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            inc(&broker.metrics.produce_failed);
            tracing::warn!(client = %client_id, error = %e, "last will not published");
        }
    }
}
