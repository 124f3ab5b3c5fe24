//! The operator's Kafka step against a real Kafka-protocol server: it creates the topics an
//! MqttBroker's brokers need (state topics compacted, configured partitions) from the very
//! broker.yaml it renders, reports them in the `KafkaReachable` condition's message, and leaves
//! existing topics exactly as they are.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use tributary_e2e::KafkaServer;
use tributary_operator::crd::{MqttBroker, MqttBrokerSpec};
use tributary_operator::desired::children;
use tributary_operator::kafka::{broker_config, prepare};

const T: Duration = Duration::from_secs(20);

fn rendered_config(kafka: &KafkaServer) -> tributary_broker::config::Config {
    let yaml = format!(
        "kafka: {{ bootstrapServers: '{}', properties: {{ {} }} }}
topics:
  partitions: 3
  default: fleet-default
  retained: fleet-retained
  sessions: fleet-sessions
  mappings:
    - {{ kafkaTopic: fleet-speed, mqttTopics: ['cars/speed/+'] }}
    - {{ kafkaTopic: fleet-cars, mqttTopics: ['cars/#'] }}",
        kafka.bootstrap,
        tributary_e2e::TANSU_FETCH
    );
    let spec: MqttBrokerSpec = serde_yaml::from_str(&yaml).expect("spec parses");
    let broker = MqttBroker {
        metadata: ObjectMeta {
            name: Some("fleet".into()),
            namespace: Some("iot".into()),
            uid: Some("7f6c1e2a-0000-4000-8000-000000000002".into()),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    };
    let rendered = children(&broker, "example/broker:test").expect("children render");
    let data = rendered.config_map.data.expect("ConfigMap data");
    // The Secret's keys become librdkafka properties, as the broker pods' environment does.
    let credentials = [("CLIENT_ID".to_string(), "tributary-operator-test".to_string())];
    let config = broker_config(&data["broker.yaml"], credentials.into_iter()).expect("rendered config parses");
    assert_eq!(config.kafka.properties.get("client.id").map(String::as_str), Some("tributary-operator-test"));
    config
}

/// Partition count of every topic Kafka knows.
fn partitions(bootstrap: &str) -> BTreeMap<String, usize> {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("metadata client");
    let metadata = consumer.fetch_metadata(None, T).expect("metadata");
    metadata.topics().iter().map(|t| (t.name().to_string(), t.partitions().len())).collect()
}

async fn cleanup_policy(admin: &AdminClient<DefaultClientContext>, topic: &str) -> Option<String> {
    let results = admin.describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new()).await.ok()?;
    let resource = results.into_iter().next()?.ok()?;
    resource.get("cleanup.policy").and_then(|e| e.value.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_creates_missing_topics_and_never_alters_existing_ones() {
    let kafka = KafkaServer::start();
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &kafka.bootstrap).create().expect("admin");
    // One topic exists already, with fewer partitions than the spec asks for.
    let existing = NewTopic::new("fleet-cars", 1, TopicReplication::Fixed(1));
    let created = admin.create_topics([&existing], &AdminOptions::new()).await.expect("create");
    assert!(created.iter().all(Result::is_ok), "{created:?}");

    let config = rendered_config(&kafka);
    let check = prepare(&config, Duration::from_secs(3), T).await;
    assert!(check.reachable && check.topics_ready == Some(true), "{check:?}");
    assert!(check.healthy());
    assert!(check.message.contains("topics ready: fleet-speed, fleet-cars, fleet-default"), "{}", check.message);
    for topic in ["fleet-speed", "fleet-default", "fleet-retained", "fleet-sessions"] {
        assert!(check.message.contains(topic), "{}", check.message);
    }
    let created_part = check.message.split("(created ").nth(1).expect("created list");
    assert!(!created_part.contains("fleet-cars"), "an existing topic is not reported created: {}", check.message);

    let counts = partitions(&kafka.bootstrap);
    for topic in ["fleet-speed", "fleet-default", "fleet-retained", "fleet-sessions"] {
        assert_eq!(counts.get(topic), Some(&3), "{topic}: {counts:?}");
    }
    assert_eq!(counts.get("fleet-cars"), Some(&1), "the existing topic keeps its partitions");
    for topic in ["fleet-retained", "fleet-sessions"] {
        assert_eq!(cleanup_policy(&admin, topic).await.as_deref(), Some("compact"), "{topic}");
    }
    // "delete" is Kafka's default: a server may leave the entry out for a data topic.
    let data_policy = cleanup_policy(&admin, "fleet-speed").await;
    assert!(matches!(data_policy.as_deref(), None | Some("delete")), "{data_policy:?}");

    // A second pass creates nothing and is still healthy.
    let again = prepare(&config, Duration::from_secs(3), T).await;
    assert_eq!(again.topics_ready, Some(true), "{again:?}");
    assert!(!again.message.contains("(created"), "{}", again.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_kafka_reports_without_trying_to_create() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let config = tributary_broker::config::Config::from_yaml_str(&format!("kafka: {{ bootstrapServers: '{addr}' }}"))
        .expect("config");
    let check = prepare(&config, Duration::from_secs(2), T).await;
    assert!(!check.reachable && check.topics_ready.is_none() && !check.healthy(), "{check:?}");
    assert!(check.message.contains(&addr), "{}", check.message);
}
