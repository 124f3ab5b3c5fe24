//! PUBLISH from the client into Kafka: topic aliases, QoS 1/2 acknowledgement after the Kafka
//! ack, QoS 2 duplicate suppression.

use futures::future::{BoxFuture, FutureExt};
use tokio::io::{AsyncRead, AsyncWrite};

use super::connect::TOPIC_ALIAS_MAX;
use super::intents::Search;
use super::{Client, End};
use crate::acl::Request;
use crate::codec::{reason, Packet, Properties, ProtocolVersion, PubResp, Publish, QoS};
use crate::kafka::offsets::OffsetsError;
use crate::kafka::producer::ProduceError;
use crate::message::{now_ms, Message, MessageProperties, HEADER_PUBLISH_ID};
use crate::publisher::Placement;
use crate::session::record::StoredIntent;
use crate::topic::within;
use std::collections::HashSet;

/// Result of one publish handed to Kafka: (packet id, QoS, outcome).
pub(super) type InboundAck = BoxFuture<'static, (Option<u16>, QoS, Result<(), ProduceError>)>;

fn resp(packet_id: u16, reason: u8) -> PubResp {
    PubResp { packet_id, reason, properties: Properties::default() }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Client<S> {
    pub(super) async fn on_publish(&mut self, mut p: Publish) -> Result<(), End> {
        self.broker.metrics.received(p.qos as u8);
        if !p.properties.subscription_identifiers.is_empty() {
            let rule = "PUBLISH from a client carries a Subscription Identifier (MQTT-3.3.4-6)";
            return Err(End::Violation(reason::PROTOCOL_ERROR, rule.into()));
        }
        self.resolve_alias(&mut p)?;
        if p.qos == QoS::ExactlyOnce {
            let id = p.packet_id.ok_or(End::Protocol(reason::PROTOCOL_ERROR))?;
            tracing::trace!(client = %self.client_id, id, dup = p.dup, known = ?self.qos2.get(&id), "qos 2 publish");
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
        let limits = &self.broker.config.limits;
        if !within(&p.topic, limits.max_topic_length, limits.max_topic_levels) {
            self.broker.metrics.limits_exceeded.inc();
            return self.refuse_long_topic(p.qos, p.packet_id);
        }
        if !self.allowed(Request::Publish, &p.topic) {
            return self.refuse_publish(p.qos, p.packet_id);
        }
        let msg = Message {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            publisher: Some(self.client_id.to_string()),
            publish_id: None,
            properties: MessageProperties::from_publish(&p.properties, now_ms()),
        };
        match (p.qos, p.packet_id, self.persist.as_ref().is_some_and(|p| p.durable())) {
            (QoS::ExactlyOnce, Some(id), true) => self.publish_exactly_once(id, msg).await,
            (qos, id, _) => self.produce(id, qos, msg, None).await,
        }
    }

    /// Answers a PUBLISH the access rules refuse: nothing is produced. MQTT 5 clients get
    /// reason 0x87 in PUBACK/PUBREC; MQTT 3.1.1 has no negative acknowledgement, so the flow
    /// completes normally and the message is dropped (as other brokers do).
    fn refuse_publish(&mut self, qos: QoS, packet_id: Option<u16>) -> Result<(), End> {
        let code = if self.version == ProtocolVersion::V5 { reason::NOT_AUTHORIZED } else { reason::SUCCESS };
        match (qos, packet_id) {
            (QoS::AtLeastOnce, Some(id)) => self.send(&Packet::PubAck(resp(id, code))),
            (QoS::ExactlyOnce, Some(id)) => {
                // A refusal ends an MQTT 5 flow; 3.1.1 goes on to PUBREL/PUBCOMP.
                if code == reason::SUCCESS {
                    self.qos2.insert(id, true);
                }
                self.send(&Packet::PubRec(resp(id, code)))
            }
            _ => Ok(()),
        }
    }

    /// Answers a PUBLISH whose topic is longer or deeper than `limits` allow: MQTT 5 QoS 1/2
    /// clients get 0x90 Topic Name invalid in PUBACK/PUBREC and go on; otherwise (QoS 0, or
    /// MQTT 3.1.1, which cannot say why) the connection is closed rather than the message
    /// silently dropped.
    fn refuse_long_topic(&mut self, qos: QoS, packet_id: Option<u16>) -> Result<(), End> {
        let v5 = self.version == ProtocolVersion::V5;
        let code = reason::TOPIC_NAME_INVALID;
        match (qos, packet_id) {
            (QoS::AtLeastOnce, Some(id)) if v5 => self.send(&Packet::PubAck(resp(id, code))),
            (QoS::ExactlyOnce, Some(id)) if v5 => self.send(&Packet::PubRec(resp(id, code))),
            _ => Err(End::Violation(code, "the topic is longer or has more levels than this broker allows".into())),
        }
    }

    /// For a resumed session: finds out which stored QoS 2 intents already have their record in
    /// Kafka (one read per partition, from the lowest bound), before the client retransmits.
    pub(super) async fn resolve_intents(&mut self) -> Result<(), OffsetsError> {
        let Some(p) = self.persist.as_ref() else { return Ok(()) };
        let mut found = HashSet::new();
        for search in p.intents().searches() {
            let offsets = &self.broker.offsets;
            let Search { topic, partition, from, publish_ids } = search;
            found.extend(offsets.find_headers(&topic, partition, from, HEADER_PUBLISH_ID, publish_ids).await?);
        }
        if let Some(p) = self.persist.as_mut() {
            p.recovered(&found);
        }
        Ok(())
    }

    /// Hands a publication to Kafka, to `placement` when it was placed in advance (QoS 2
    /// intents), else where the mapping in force puts it; the client is answered when Kafka
    /// acknowledges.
    pub(super) async fn produce(
        &mut self,
        id: Option<u16>,
        qos: QoS,
        msg: Message,
        placement: Option<&Placement>,
    ) -> Result<(), End> {
        let track = qos != QoS::AtMostOnce || msg.retain;
        // Open until Kafka acknowledges the record (the client's acknowledgement follows), or
        // until it is queued when nothing waits for the acknowledgement (QoS 0).
        let span = tracing::info_span!(
            "mqtt.publish",
            topic = %msg.topic,
            qos = qos as u8,
            kafka.partition = tracing::field::Empty,
            kafka.offset = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let publisher = &self.broker.publisher;
        let enqueued = match placement {
            Some(placement) => publisher.publish_placed(msg, placement).await,
            None => publisher.publish(msg).await,
        };
        let ack = match enqueued {
            Ok(ack) => ack,
            Err(e) => {
                span.record("otel.status_code", "ERROR");
                return self.produce_failed(id, qos, e);
            }
        };
        if let (QoS::ExactlyOnce, Some(id)) = (qos, id) {
            self.qos2.insert(id, false);
        }
        if track {
            self.pending.push_back(
                async move {
                    let acked = ack.await;
                    match &acked {
                        Ok(d) => {
                            span.record("kafka.partition", d.partition);
                            span.record("kafka.offset", d.offset);
                        }
                        Err(_) => {
                            span.record("otel.status_code", "ERROR");
                        }
                    }
                    (id, qos, acked.map(|_| ()))
                }
                .boxed(),
            );
        }
        Ok(())
    }

    /// QoS 2 for a persistent session, exactly once even when the session moves to another
    /// broker mid-flow: the publication's intent (its publish id and where its record will be)
    /// is saved before the record is produced; a broker that finds an intent for a retransmitted
    /// packet id looks in Kafka for the record before producing it. See docs/design.md.
    async fn publish_exactly_once(&mut self, id: u16, mut msg: Message) -> Result<(), End> {
        let stored = self.persist.as_ref().and_then(|p| p.intents().get(id).map(|(i, found)| (i.clone(), found)));
        if let Some((intent, found)) = stored {
            // A publication the previous connection took: `resolve_intents` looked for it.
            tracing::trace!(client = %self.client_id, id, ?found, "retransmission of a stored intent");
            return match found {
                Some(true) => {
                    self.qos2.insert(id, true);
                    self.send(&Packet::PubRec(resp(id, reason::SUCCESS)))
                }
                _ => {
                    msg.publish_id = Some(intent.publish_id);
                    let placement = Placement { topic: intent.topic, partition: intent.partition };
                    self.produce(Some(id), QoS::ExactlyOnce, msg, Some(&placement)).await
                }
            };
        }
        let publisher = &self.broker.publisher;
        let located = async {
            let placement = publisher.place(&msg).await?;
            let from = publisher.offset_floor(&placement).await?;
            Ok::<_, OffsetsError>((placement, from))
        };
        let (placement, from) = match located.await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(client = %self.client_id, error = %e, "cannot locate a QoS 2 publication");
                return Err(End::Kafka);
            }
        };
        let (client_id, epoch) = (self.client_id.clone(), self.epoch);
        let Some(p) = self.persist.as_mut() else { return Ok(()) };
        let publish_id = p.publish_id(&client_id, epoch);
        msg.publish_id = Some(publish_id.clone());
        let (topic, partition) = (placement.topic.clone(), placement.partition);
        p.park(StoredIntent { packet_id: id, publish_id, topic, partition, from }, msg, placement);
        self.qos2.insert(id, false);
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
            // Grown once per new highest alias (at most TOPIC_ALIAS_MAX times).
            let mut grown = std::mem::take(&mut self.aliases).into_vec();
            grown.resize(slot + 1, None);
            self.aliases = grown.into_boxed_slice();
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
        self.broker.metrics.produce_failed.inc();
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
        let id = r.packet_id;
        tracing::trace!(client = %self.client_id, id, known = ?self.qos2.get(&id), "pubrel");
        if self.qos2.get(&id) == Some(&false) {
            // PUBREL before our PUBREC is a protocol violation.
            return Err(End::Protocol(reason::PROTOCOL_ERROR));
        }
        // A persistent session's release is saved before PUBCOMP leaves (write-ahead): after
        // PUBCOMP the client may reuse the packet id for a new message.
        let had_intent = self.persist.as_mut().is_some_and(|p| p.release(id));
        let code = match self.qos2.remove(&id) {
            Some(_) => reason::SUCCESS,
            // Released on another broker's PUBREC: the record is in Kafka.
            None if had_intent => reason::SUCCESS,
            None => reason::PACKET_IDENTIFIER_NOT_FOUND,
        };
        self.send(&Packet::PubComp(resp(id, code)))
    }
}
