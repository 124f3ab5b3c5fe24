//! A real MQTT 5 client (rumqttc's v5 module) for tests.

use rumqttc::v5::mqttbytes::v5::{
    ConnAck, ConnectReturnCode, Disconnect, DisconnectProperties, DisconnectReasonCode, Filter, Packet, PubAckReason,
    Publish, SubAck, SubscribeProperties,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, StateError};
use std::time::Duration;
use tokio::sync::mpsc;

use crate::mqtt::Events;

/// An MQTT 5 client whose event loop runs on its own task.
pub struct Client5 {
    /// The client handle.
    pub client: AsyncClient,
    /// The CONNACK the broker answered with.
    pub connack: ConnAck,
    events: Events<Packet>,
}

/// Options for an MQTT 5 client on 127.0.0.1:`port`.
pub fn options5(port: u16, id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o
}

impl Client5 {
    /// Connects and waits for a successful CONNACK.
    pub async fn connect(opts: MqttOptions) -> Client5 {
        let c = Client5::try_connect(opts).await;
        assert_eq!(c.connack.code, ConnectReturnCode::Success);
        c
    }

    /// Connects and waits for the CONNACK, whatever its reason code.
    pub async fn try_connect(opts: MqttOptions) -> Client5 {
        let (client, eventloop) = AsyncClient::new(opts, 1000);
        let (tx, rx) = mpsc::unbounded_channel();
        let mut events = Events::new(rx, tokio::spawn(pump(eventloop, tx)));
        let connack = events
            .next(Duration::from_secs(10), |p| match p {
                Packet::ConnAck(a) => Some(a),
                other => panic!("expected CONNACK, got {other:?}"),
            })
            .await;
        Client5 { client, connack, events }
    }

    /// Subscribes one filter with options and an optional subscription identifier; waits for SUBACK.
    pub async fn subscribe(&mut self, filter: Filter, id: Option<usize>) {
        let props = SubscribeProperties { id, user_properties: Vec::new() };
        self.client.subscribe_many_with_properties([filter], props).await.unwrap_or_else(|e| panic!("subscribe: {e}"));
        self.events.next(Duration::from_secs(15), |p| matches!(p, Packet::SubAck(_)).then_some(())).await;
    }

    /// Subscribes one filter with SUBSCRIBE user properties; returns the SUBACK.
    pub async fn subscribe_with(&mut self, filter: Filter, user_properties: Vec<(String, String)>) -> SubAck {
        let props = SubscribeProperties { id: None, user_properties };
        self.client.subscribe_many_with_properties([filter], props).await.unwrap_or_else(|e| panic!("subscribe: {e}"));
        self.events
            .next(Duration::from_secs(15), |p| match p {
                Packet::SubAck(a) => Some(a),
                _ => None,
            })
            .await
    }

    /// Waits for the next PUBLISH.
    pub async fn publish_received(&mut self, timeout: Duration) -> Publish {
        self.events
            .next(timeout, |p| match p {
                Packet::Publish(p) => Some(p),
                _ => None,
            })
            .await
    }

    /// Waits for a DISCONNECT from the broker and returns its reason.
    pub async fn disconnected(&mut self, timeout: Duration) -> DisconnectReasonCode {
        self.disconnect_packet(timeout).await.reason_code
    }

    /// Waits for a DISCONNECT from the broker (its reason code and Reason String).
    pub async fn disconnect_packet(&mut self, timeout: Duration) -> Disconnect {
        self.events
            .next(timeout, |p| match p {
                Packet::Disconnect(d) => Some(d),
                _ => None,
            })
            .await
    }

    /// Waits until the connection closed (skipping packets); false when still open after `timeout`.
    pub async fn closed(&mut self, timeout: Duration) -> bool {
        self.events.closed(timeout).await
    }

    /// Drops the connection without DISCONNECT (an ungraceful close: the Will is due).
    pub fn abort(self) {
        self.events.abort();
    }

    /// Waits for the next PUBACK; returns its reason.
    pub async fn puback(&mut self) -> PubAckReason {
        self.events
            .next(Duration::from_secs(15), |p| match p {
                Packet::PubAck(a) => Some(a.reason),
                _ => None,
            })
            .await
    }
}

/// A filter with every MQTT 5 option spelled out.
pub fn filter(path: &str, qos: QoS, no_local: bool, retain_as_published: bool) -> Filter {
    let mut f = Filter::new(path, qos);
    f.nolocal = no_local;
    f.preserve_retain = retain_as_published;
    f
}

async fn pump(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Packet>) {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(p)) => {
                if tx.send(p).is_err() {
                    return;
                }
            }
            Ok(Event::Outgoing(_)) => {}
            // rumqttc reports a server DISCONNECT as an error; tests see it as the packet.
            Err(ConnectionError::MqttState(StateError::ServerDisconnect { reason_code, reason_string })) => {
                let properties = reason_string.map(|r| DisconnectProperties {
                    session_expiry_interval: None,
                    reason_string: Some(r),
                    user_properties: Vec::new(),
                    server_reference: None,
                });
                let _ = tx.send(Packet::Disconnect(Disconnect { reason_code, properties }));
                return;
            }
            // A refusal: tests see the CONNACK with its reason code (rumqttc keeps no properties).
            Err(ConnectionError::ConnectionRefused(code)) => {
                let _ = tx.send(Packet::ConnAck(ConnAck { session_present: false, code, properties: None }));
                return;
            }
            Err(_) => return,
        }
    }
}
