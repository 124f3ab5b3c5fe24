//! Real MQTT clients (rumqttc) for tests: connect, then read events from a channel.

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish};
use std::time::Duration;
use tokio::sync::mpsc;

/// Incoming packets of a client whose event loop runs on its own task, in arrival order.
pub struct Events<P> {
    rx: mpsc::UnboundedReceiver<P>,
    task: tokio::task::JoinHandle<()>,
}

impl<P: std::fmt::Debug> Events<P> {
    /// Wraps the receiving end of a pump task.
    pub fn new(rx: mpsc::UnboundedReceiver<P>, task: tokio::task::JoinHandle<()>) -> Self {
        Events { rx, task }
    }

    /// Waits for the next packet matching `pick`, skipping others, or panics after `timeout`.
    pub async fn next<T>(&mut self, timeout: Duration, mut pick: impl FnMut(P) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(p)) => {
                    if let Some(v) = pick(p) {
                        return v;
                    }
                }
                Ok(None) => panic!("client event loop ended"),
                Err(_) => panic!("timed out after {timeout:?}"),
            }
        }
    }

    /// Waits until the event loop ends (the connection closed), skipping packets; false when it
    /// is still open after `timeout`.
    pub async fn closed(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(_)) => {}
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }

    /// Stops the event loop: the connection drops without DISCONNECT.
    pub fn abort(self) {
        self.task.abort();
    }
}

/// An MQTT 3.1.1 client whose event loop runs on its own task.
pub struct Client {
    /// The client handle.
    pub client: AsyncClient,
    /// The CONNACK the broker answered with.
    pub connack: rumqttc::ConnAck,
    events: Events<Packet>,
}

/// Options for a 3.1.1 client on 127.0.0.1:`port`.
pub fn options(port: u16, id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(1 << 20, 1 << 20);
    o
}

impl Client {
    /// Connects with `opts` and waits for CONNACK.
    pub async fn connect(opts: MqttOptions) -> Client {
        let (client, eventloop) = AsyncClient::new(opts, 1000);
        let (tx, rx) = mpsc::unbounded_channel();
        let mut events = Events::new(rx, tokio::spawn(pump(eventloop, tx)));
        let connack = events
            .next(Duration::from_secs(10), |p| match p {
                Packet::ConnAck(a) => Some(a),
                other => panic!("expected CONNACK, got {other:?}"),
            })
            .await;
        assert_eq!(connack.code, rumqttc::ConnectReturnCode::Success, "CONNACK refused");
        Client { client, connack, events }
    }

    /// Waits for the next packet matching `pick`, skipping others, or panics after `timeout`.
    pub async fn next<T>(&mut self, timeout: Duration, pick: impl FnMut(Packet) -> Option<T>) -> T {
        self.events.next(timeout, pick).await
    }

    /// Waits for the next PUBLISH.
    pub async fn publish_received(&mut self, timeout: Duration) -> Publish {
        self.next(timeout, |p| match p {
            Packet::Publish(p) => Some(p),
            _ => None,
        })
        .await
    }

    /// Subscribes and waits for the SUBACK; returns its return codes.
    pub async fn subscribe(&mut self, filter: &str, qos: rumqttc::QoS) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client.subscribe(filter, qos).await.unwrap_or_else(|e| panic!("subscribe: {e}"));
        self.next(Duration::from_secs(15), |p| match p {
            Packet::SubAck(a) => Some(a.return_codes),
            _ => None,
        })
        .await
    }

    /// Waits until the broker closed the connection; false if still open after `timeout`.
    pub async fn closed(&mut self, timeout: Duration) -> bool {
        self.events.closed(timeout).await
    }

    /// Drops the connection without DISCONNECT (an ungraceful close: the Will fires).
    pub fn abort(self) {
        self.events.abort();
    }
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
            // Connection ended (or failed): tests observe that as a closed channel.
            Err(_) => return,
        }
    }
}
