//! State shared by every connection of a broker process, and the publish path into Kafka.

use arc_swap::ArcSwap;
use futures::future::{self, BoxFuture, FutureExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::acl::Acl;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::delivery::router::Router;
use crate::kafka::admin::{ensure_topics, AdminError};
use crate::kafka::offsets::Offsets;
use crate::kafka::producer::{Delivered, ProduceError, Producer};
use crate::kafka::tailer::{RecordSink, StartAt, Tailer, TailerError};
use crate::mapping::TopicMapping;
use crate::message::Message;
use crate::metrics::{inc, Metrics};
use crate::registry::Registry;
use crate::retained::RetainedStore;
use crate::session::Sessions;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Topics could not be created.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The producer could not be created.
    #[error("kafka producer: {0}")]
    Producer(#[from] rdkafka::error::KafkaError),
    /// The retained or sessions topic could not be read.
    #[error(transparent)]
    Retained(#[from] TailerError),
    /// The topic mapping is invalid.
    #[error("topic mapping: {0}")]
    Mapping(String),
    /// The password file is unusable.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// The first heartbeat could not be written to the sessions topic.
    #[error("sessions topic: {0}")]
    Sessions(#[from] crate::session::SessionError),
}

/// Shared broker state.
pub struct Broker {
    /// Checks CONNECT credentials (password file reloaded when it changes).
    pub auth: Arc<Authenticator>,
    /// Access rules in force (replaced by a config reload, like the mapping).
    acl: ArcSwap<Acl>,
    /// The configuration the broker started with. Its `topics.mappings`, `topics.default` and
    /// `authorization` are the startup values: those sections are reloaded at run time (see
    /// [`crate::reload`]), so read the mapping through [`Broker::mapping`]. The rest never changes.
    pub config: Config,
    /// MQTT topic → Kafka topic rules in force. An `ArcSwap` (the `arc-swap` crate) because
    /// every publish reads it and a reload replaces it: reads are lock-free and never wait for
    /// a writer, and a replacement is one atomic pointer swap.
    mapping: ArcSwap<TopicMapping>,
    /// The shared producer.
    pub producer: Producer,
    /// Subscriptions and the tailers feeding them.
    pub router: Arc<Router>,
    /// Retained messages.
    pub retained: Arc<RetainedStore>,
    /// Connected client ids.
    pub registry: Arc<Registry>,
    /// Persistent sessions and cross-broker fencing.
    pub sessions: Arc<Sessions>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Metadata and watermark queries (QoS 2 recovery).
    pub offsets: Arc<Offsets>,
    ready: AtomicBool,
    _retained_tailer: Tailer,
}

/// Resolves when a publish is durable in Kafka.
pub type PublishAck = BoxFuture<'static, Result<Delivered, ProduceError>>;

impl Broker {
    /// Creates missing topics, loads retained messages and returns a broker ready to serve.
    pub async fn start(config: Config) -> Result<Arc<Broker>, StartError> {
        let mapping = config.mapping().map_err(|e| StartError::Mapping(e.to_string()))?;
        let auth = Arc::new(Authenticator::load(&config.authentication)?);
        let created = ensure_topics(&config, &mapping.all_kafka_topics()).await?;
        if !created.is_empty() {
            tracing::info!(?created, "created missing kafka topics");
        }
        let producer = Producer::new(&config.kafka)?;
        let offsets = Offsets::new(&config.kafka)?;
        let metrics = Arc::new(Metrics::default());
        let router = Router::new(config.kafka.clone(), metrics.clone());
        let retained = Arc::new(RetainedStore::new());
        let sink: Arc<dyn RecordSink> = retained.clone();
        let tailer = Tailer::start(&config.kafka, &config.topics.retained, StartAt::Beginning, sink).await?;
        tailer.caught_up().await;
        tracing::info!(retained = retained.len(), "retained messages loaded");
        let registry = Arc::new(Registry::default());
        let sessions = Sessions::start(&config, producer.clone(), registry.clone(), metrics.clone()).await?;
        // Before serving: other brokers must not take this one's first sessions for orphans.
        sessions.heartbeat().await?;
        tokio::spawn(crate::auth::watch(Arc::downgrade(&auth)));
        let broker = Broker {
            acl: ArcSwap::from_pointee(Acl::new(&config.authorization)),
            auth,
            config,
            mapping: ArcSwap::from_pointee(mapping),
            producer,
            router,
            retained,
            registry,
            sessions,
            metrics,
            offsets,
            ready: AtomicBool::new(true),
            _retained_tailer: tailer,
        };
        let broker = Arc::new(broker);
        crate::session::reaper::start(Arc::downgrade(&broker));
        Ok(broker)
    }

    /// The topic mapping in force now. Costs one reference-count increment; hold it for the
    /// duration of one operation, so the operation sees one mapping throughout.
    pub fn mapping(&self) -> Arc<TopicMapping> {
        self.mapping.load_full()
    }

    /// Makes `mapping` the one new operations use. Publishes after this go to the new Kafka
    /// topics; existing subscriptions keep tailing the Kafka topics chosen when they were
    /// made (a client re-subscribes to pick up the new mapping). The caller creates the new
    /// mapping's Kafka topics first.
    pub fn set_mapping(&self, mapping: TopicMapping) {
        self.mapping.store(Arc::new(mapping));
    }

    /// The access rules in force now.
    pub fn acl(&self) -> Arc<Acl> {
        self.acl.load_full()
    }

    /// Makes `acl` the rules new operations are checked against.
    pub fn set_acl(&self, acl: Acl) {
        self.acl.store(Arc::new(acl));
    }

    /// True while the broker accepts work (for the readiness probe).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Marks the broker as draining: readiness fails so the load balancer stops sending clients.
    pub fn set_draining(&self) {
        self.ready.store(false, Ordering::Relaxed);
    }

    /// Publishes the Last Will of `client_id` and waits until Kafka has it.
    pub async fn publish_will(&self, client_id: &str, msg: Message) -> Result<(), ProduceError> {
        let result = match self.publish(msg).await {
            Ok(ack) => ack.await.map(|_| ()),
            Err(e) => Err(e),
        };
        if result.is_err() {
            inc(&self.metrics.produce_failed);
        } else {
            inc(&self.metrics.wills_published);
            tracing::debug!(client = %client_id, "last will published");
        }
        result
    }

    /// Produces `msg` to its mapped Kafka topic (and, when retained, to the retained topic).
    /// Waits while the producer queue is full; the returned future resolves once Kafka has
    /// acknowledged every record.
    pub async fn publish(&self, msg: Message) -> Result<PublishAck, ProduceError> {
        // An owned `Arc`, not an `arc_swap::Guard`: `enqueue` may wait on a full queue, and
        // guards are meant to be short-lived.
        let mapping = self.mapping();
        let main = self.producer.enqueue(mapping.kafka_topic_for(&msg.topic), &msg, false).await?;
        if !msg.retain {
            return Ok(main.boxed());
        }
        // An empty retained payload deletes: a null value is a tombstone for compaction.
        let retained_ack = self.producer.enqueue(&self.config.topics.retained, &msg, msg.payload.is_empty()).await?;
        let store = self.retained.clone();
        Ok(async move {
            let (main, retained) = future::join(main, retained_ack).await;
            let r = retained?;
            // Our own write is visible to local subscribers at once, before the tail sees it.
            store.apply(r.partition, r.offset, msg, false);
            main
        }
        .boxed())
    }
}
