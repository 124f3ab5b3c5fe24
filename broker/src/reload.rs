//! Applies edits of the configuration file to a running broker, without a restart.
//!
//! The operator renders the file into a ConfigMap mounted in the pod. Only the sections
//! [`Config::restart_relevant`] resets (the topic mapping, `topics.mappings` and
//! `topics.default`, and `authorization`) are applied live, to operations that start
//! afterwards; anything else needs a restart, which the operator does by rolling the
//! Deployment, so here it is only logged.
//!
//! A new file is judged exactly like at startup (same parsing, validation, command-line and
//! environment overrides). A file that would not start the broker is logged and ignored,
//! and so is one that also changes a section that needs a restart: the running broker
//! always runs one whole version of the file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::broker::Broker;
use crate::config::{Config, Overrides};
use crate::shutdown::Shutdown;

/// How often the file is re-read. Polling rather than inotify: Kubernetes updates a mounted
/// ConfigMap by swapping a `..data` symlink, which file watches miss or see as a deletion.
/// Reading a small file every 2 s costs nothing, and the kubelet's own sync delay (up to a
/// minute) dwarfs it.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// How a new configuration differs from the running one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing that matters changed (e.g. only comments or formatting).
    None,
    /// Only sections applied at run time changed; names them.
    Hot(Vec<&'static str>),
    /// Some section needs a restart; names those (hot sections that changed too are not listed).
    NeedsRestart(Vec<&'static str>),
}

/// Compares two validated configurations. Whether a restart is needed is
/// [`Config::restart_relevant`]'s decision, the one the operator's restart hash makes too.
pub fn classify(old: &Config, new: &Config) -> Change {
    let (was, will) = (old.restart_relevant(), new.restart_relevant());
    if was != will {
        // Hot sections are equal once reset, so only the restart sections are named.
        return Change::NeedsRestart(was.changed_sections(&will));
    }
    let hot = old.changed_sections(new);
    if hot.is_empty() {
        Change::None
    } else {
        Change::Hot(hot)
    }
}

/// Watches the configuration file at `path` until `shutdown`, applying hot changes to
/// `broker`. `overrides` are the command-line overrides the broker started with. Never fails:
/// every problem is logged and the running configuration is kept.
pub(crate) async fn run(path: PathBuf, overrides: Overrides, broker: Arc<Broker>, mut shutdown: Shutdown) {
    let mut watcher = Watcher { path, overrides, running: broker.config.clone(), seen: None, broker };
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.recv() => return,
            _ = tick.tick() => watcher.poll().await,
        }
    }
}

/// State of the reload loop.
struct Watcher {
    path: PathBuf,
    overrides: Overrides,
    broker: Arc<Broker>,
    /// The configuration in force: the startup one plus the hot changes applied since.
    running: Config,
    /// The file content last dealt with (applied, rejected or logged), or the read error last
    /// logged; so that each version of the file is judged, and logged about, once.
    seen: Option<Result<String, String>>,
}

impl Watcher {
    async fn poll(&mut self) {
        // Content, not mtime: a symlink swap can leave the mtime unchanged or even older.
        let read = tokio::fs::read_to_string(&self.path).await.map_err(|e| e.to_string());
        if self.seen.as_ref() == Some(&read) {
            return;
        }
        let text = match &read {
            Ok(text) => text.clone(),
            Err(error) => {
                tracing::warn!(file = %self.path.display(), %error, "cannot read configuration file; keeping the running configuration");
                self.seen = Some(read);
                return;
            }
        };
        if self.consider(&text).await {
            self.seen = Some(read);
        }
    }

    /// Judges and applies one version of the file. Returns false when it should be tried
    /// again at the next poll (Kafka could not create the new topics).
    async fn consider(&mut self, text: &str) -> bool {
        let new = match Config::from_yaml_str(text).and_then(|c| self.overrides.resolve(c)) {
            Ok(new) => new,
            Err(error) => {
                tracing::error!(file = %self.path.display(), %error, "invalid configuration file; keeping the running configuration");
                return true;
            }
        };
        match classify(&self.running, &new) {
            Change::None => true,
            Change::NeedsRestart(sections) => {
                tracing::warn!(
                    file = %self.path.display(),
                    sections = ?sections,
                    "configuration change needs a restart; not applied, keeping the running configuration"
                );
                true
            }
            Change::Hot(sections) => self.apply(new, sections).await,
        }
    }

    async fn apply(&mut self, new: Config, sections: Vec<&'static str>) -> bool {
        // Cannot fail on a validated configuration, but a reload must never panic.
        let mapping = match new.mapping() {
            Ok(m) => m,
            Err(error) => {
                tracing::error!(%error, "invalid topic mapping; keeping the running configuration");
                return true;
            }
        };
        // Create the new Kafka topics before any publish can be routed to them.
        match self.broker.log.ensure_topics(&new, &mapping.all_kafka_topics()).await {
            Ok(created) if !created.is_empty() => tracing::info!(?created, "created kafka topics of the new mapping"),
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "cannot create kafka topics of the new mapping; will retry");
                return false;
            }
        }
        self.broker.publisher.set_mapping(mapping);
        self.broker.set_acl(crate::acl::Acl::new(&new.authorization));
        self.broker.set_rebalance(new.rebalance.clone());
        self.running = new;
        tracing::info!(changed = ?sections, "config reloaded");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::config_with as config;

    #[test]
    fn unchanged_or_reformatted_is_no_change() {
        let a = config("topics:\n  mappings:\n    - {kafkaTopic: cars, mqttTopics: ['cars/#']}\n");
        let b = config("# comment\ntopics:\n  mappings:\n  - kafkaTopic: cars\n    mqttTopics:\n    - cars/#\n");
        assert_eq!(classify(&a, &b), Change::None);
    }

    #[test]
    fn mapping_default_and_authorization_are_hot() {
        let old = config("");
        assert_eq!(
            classify(&old, &config("topics:\n  mappings:\n    - {kafkaTopic: cars, mqttTopics: ['cars/#']}\n")),
            Change::Hot(vec!["topics.mappings"])
        );
        assert_eq!(
            classify(&old, &config("topics: {default: other}\nauthorization: {defaultEffect: deny}\n")),
            Change::Hot(vec!["topics.default", "authorization"])
        );
    }

    #[test]
    fn everything_else_needs_a_restart() {
        let old = config("");
        let cases = [
            ("listeners:\n  - {name: m, protocol: mqtt, address: '0.0.0.0:1884'}\n", "listeners"),
            ("admin: {address: '0.0.0.0:9091'}\n", "admin"),
            ("topics: {retained: r2}\n", "topics.retained"),
            ("topics: {sessions: s2}\n", "topics.sessions"),
            ("topics: {partitions: 3}\n", "topics.partitions"),
            ("topics: {replicationFactor: 3}\n", "topics.replicationFactor"),
            ("limits: {maxInflight: 4}\n", "limits"),
            ("authentication: {passwordFile: /p}\n", "authentication"),
        ];
        for (extra, section) in cases {
            assert_eq!(classify(&old, &config(extra)), Change::NeedsRestart(vec![section]), "{extra}");
        }
        let mut kafka = old.clone();
        kafka.kafka.properties.insert("linger.ms".into(), "5".into());
        assert_eq!(classify(&old, &kafka), Change::NeedsRestart(vec!["kafka"]));
    }

    #[test]
    fn a_restart_section_wins_over_hot_ones() {
        let new = config("topics:\n  partitions: 3\n  mappings:\n    - {kafkaTopic: cars, mqttTopics: ['cars/#']}\nlimits: {maxKeepAlive: 60}\n");
        assert_eq!(classify(&config(""), &new), Change::NeedsRestart(vec!["topics.partitions", "limits"]));
    }
}
