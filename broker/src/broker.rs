//! State shared by every connection of a broker process.

use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::acl::Acl;
use crate::admission::Admission;
use crate::auth::Authenticator;
use crate::config::{Config, Rebalance};
use crate::delivery::router::Router;
use crate::delivery::share::Shares;
use crate::kafka::admin::AdminError;
use crate::kafka::kafka_log::KafkaLog;
use crate::kafka::log::Log;
use crate::kafka::offsets::Offsets;
use crate::kafka::tailer::{RecordSink, StartAt, Tailer, TailerError};
use crate::metrics::Metrics;
use crate::publisher::Publisher;
use crate::read_budget::ReadBudget;
use crate::registry::Registry;
use crate::retained::RetainedStore;
use crate::session::Sessions;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Topics could not be created.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The Kafka clients could not be created.
    #[error("kafka client: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
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
    /// Rebalancing settings in force (replaced by a config reload).
    rebalance: ArcSwap<Rebalance>,
    /// The configuration the broker started with. Its `topics.mappings`, `topics.default`,
    /// `authorization` and `rebalance` are the startup values: those sections are reloaded at run time (see
    /// [`crate::reload`]), so read the mapping through [`Publisher::mapping`], the rules
    /// through [`Broker::acl`] and `rebalance` through [`Broker::rebalance`]. The rest never changes.
    pub config: Config,
    /// The only code that decides where records go: mapping, producer, retained writes.
    pub publisher: Arc<Publisher>,
    /// Subscriptions and the tailers feeding them.
    pub router: Arc<Router>,
    /// Shared subscriptions and their Kafka consumer groups.
    pub shares: Arc<Shares>,
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
    /// Bytes of packets being received, over all connections (`limits.maxPendingBytes`).
    pub(crate) read_budget: Arc<ReadBudget>,
    /// CONNECT rate and connections per source address.
    pub(crate) admission: Arc<Admission>,
    /// The log everything is kept in (Kafka, or an in-memory log in tests).
    pub log: Arc<dyn Log>,
    ready: AtomicBool,
    retained_tailer: Tailer,
}

impl Broker {
    /// Connects to the Kafka of `config`, creates missing topics, loads retained messages and
    /// returns a broker ready to serve.
    pub async fn start(config: Config) -> Result<Arc<Broker>, StartError> {
        let log = Arc::new(KafkaLog::new(&config.kafka)?);
        Broker::start_on(config, log).await
    }

    /// [`Broker::start`] on `log` (several brokers on one log behave as pods on one cluster).
    pub async fn start_on(config: Config, log: Arc<dyn Log>) -> Result<Arc<Broker>, StartError> {
        let mapping = config.mapping().map_err(|e| StartError::Mapping(e.to_string()))?;
        let auth = Arc::new(Authenticator::load(&config.authentication)?);
        let created = log.ensure_topics(&config, &mapping.all_kafka_topics()).await?;
        if !created.is_empty() {
            tracing::info!(?created, "created missing kafka topics");
        }
        let offsets = Offsets::new(log.clone());
        let metrics = Arc::new(Metrics::default());
        let router = Router::new(log.clone(), metrics.clone());
        let max_share_groups = usize::try_from(config.limits.max_share_groups).unwrap_or(usize::MAX);
        let shares = Shares::new(log.clone(), metrics.clone(), max_share_groups);
        let retained = Arc::new(RetainedStore::new());
        let sink: Arc<dyn RecordSink> = retained.clone();
        let tailer = log.tail(&config.topics.retained, StartAt::Beginning, sink).await?;
        tailer.caught_up().await;
        tracing::info!(retained = retained.len(), "retained messages loaded");
        let registry = Arc::new(Registry::default());
        let sessions = Sessions::start(&config, log.clone(), registry.clone(), metrics.clone()).await?;
        // Before serving: other brokers must not take this one's first sessions for orphans.
        sessions.heartbeat().await?;
        tokio::spawn(crate::auth::watch(Arc::downgrade(&auth)));
        let publisher =
            Arc::new(Publisher::new(&config, mapping, log.clone(), retained.clone(), offsets.clone(), metrics.clone()));
        crate::session::reaper::start(Arc::downgrade(&sessions), Arc::downgrade(&publisher));
        let read_budget = Arc::new(ReadBudget::new(config.limits.max_pending_bytes));
        let admission = Admission::new(&config.limits);
        let broker = Broker {
            admission,
            acl: ArcSwap::from_pointee(Acl::new(&config.authorization)),
            rebalance: ArcSwap::from_pointee(config.rebalance.clone()),
            auth,
            config,
            publisher,
            router,
            shares,
            retained,
            registry,
            sessions,
            metrics,
            offsets,
            read_budget,
            log,
            ready: AtomicBool::new(true),
            retained_tailer: tailer,
        };
        Ok(Arc::new(broker))
    }

    /// The access rules in force now.
    pub fn acl(&self) -> Arc<Acl> {
        self.acl.load_full()
    }

    /// Makes `acl` the rules new operations are checked against.
    pub fn set_acl(&self, acl: Acl) {
        self.acl.store(Arc::new(acl));
    }

    /// The rebalancing settings in force now.
    pub fn rebalance(&self) -> Arc<Rebalance> {
        self.rebalance.load_full()
    }

    /// Makes `settings` the rebalancing settings in force.
    pub fn set_rebalance(&self, settings: Rebalance) {
        self.rebalance.store(Arc::new(settings));
    }

    /// True while the broker accepts work (for the readiness probe).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Marks the broker as draining: readiness fails so the load balancer stops sending clients.
    pub fn set_draining(&self) {
        self.ready.store(false, Ordering::Relaxed);
        self.metrics.draining.set(1);
    }

    /// Brings the metrics that are state, not events, up to date (called at each scrape):
    /// retained messages held and how far behind each tailed Kafka topic is. Never waits.
    pub fn observe(&self) {
        self.metrics.retained_messages.set(i64::try_from(self.retained.len()).unwrap_or(i64::MAX));
        let mut lags = self.router.lags().unwrap_or_default();
        lags.push((self.config.topics.retained.clone(), self.retained_tailer.lag()));
        lags.push((self.config.topics.sessions.clone(), self.sessions.lag()));
        self.metrics.set_lags(lags);
    }
}
