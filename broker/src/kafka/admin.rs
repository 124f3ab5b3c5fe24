//! Creates the Kafka topics the broker needs when they are missing. Existing topics are left
//! exactly as they are: the broker never alters or deletes Kafka topics.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::time::Duration;

use crate::config::Config;

/// Why topics could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The admin client could not be created or the request failed as a whole.
    #[error("kafka admin request failed: {0}")]
    Kafka(#[from] KafkaError),
    /// One topic was refused by Kafka.
    #[error("could not create kafka topic {topic}: {code}")]
    Topic {
        /// The topic name.
        topic: String,
        /// Kafka's error code.
        code: RDKafkaErrorCode,
    },
}

/// Creates the data topics (mapped and default, `delete` policy) and the retained and sessions
/// topics (compacted) the configuration names, skipping those that exist. Returns the topics it
/// created (the broker at start and the operator both call this, so both create alike).
pub async fn ensure_topics(config: &Config, data_topics: &[String]) -> Result<Vec<String>, AdminError> {
    let admin: AdminClient<DefaultClientContext> =
        super::client_config(&config.kafka.bootstrap_servers, &config.kafka.properties, &[]).create()?;
    let partitions = config.topics.partitions;
    let rf = config.topics.replication_factor;
    let state_topics = [config.topics.retained.clone(), config.topics.sessions.clone()];
    let mut new_topics: Vec<NewTopic<'_>> =
        data_topics.iter().map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(rf))).collect();
    new_topics.extend(
        state_topics
            .iter()
            .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(rf)).set("cleanup.policy", "compact")),
    );
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let mut created = Vec::new();
    for result in admin.create_topics(&new_topics, &opts).await? {
        match result {
            Ok(topic) => created.push(topic),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(AdminError::Topic { topic, code }),
        }
    }
    Ok(created)
}
