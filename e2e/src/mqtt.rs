//! Real MQTT clients (rumqttc) for tests: connect, then read events from a channel.

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish};
use std::time::Duration;
use tokio::sync::mpsc;

/// An MQTT 3.1.1 client whose event loop runs on its own task.
pub struct Client {
    /// The client handle.
    pub client: AsyncClient,
    /// Incoming packets (publishes, acks...) in arrival order.
    pub events: mpsc::UnboundedReceiver<Packet>,
    task: tokio::task::JoinHandle<()>,
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
        let (tx, mut events) = mpsc::unbounded_channel();
        let task = tokio::spawn(pump(eventloop, tx));
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(Packet::ConnAck(a))) => assert_eq!(a.code, rumqttc::ConnectReturnCode::Success),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        Client { client, events, task }
    }

    /// Waits for the next packet matching `pick`, skipping others, or panics after `timeout`.
    pub async fn next<T>(&mut self, timeout: Duration, mut pick: impl FnMut(Packet) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
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

    /// Drops the connection without DISCONNECT (an ungraceful close: the Will fires).
    pub fn abort(self) {
        self.task.abort();
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
