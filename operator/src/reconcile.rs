//! The controller: validate, render the desired children, server-side apply them under one
//! field manager, probe Kafka, read the pods' connection counts, write status, record events.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{debug, info, warn};

use crate::crd::{MqttBroker, MqttBrokerStatus};
use crate::desired::{self, Children, Owner};
use crate::error::Error;
use crate::kafka::{self, KafkaCheck};
use crate::labels::{selector_string, ADMIN_PORT, CONFIG_KEY, MANAGED_BY_LABEL, MANAGER};
use crate::metrics::scrape_connections;
use crate::status::{self, ConditionUpdate, Rollout, KAFKA_REACHABLE, READY};
use crate::validate::validate;

/// Tunables of the controller.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Broker image used when `spec.image` is not set.
    pub default_image: String,
    /// Timeout of the TCP connect to each Kafka bootstrap server.
    pub kafka_timeout: Duration,
    /// Timeout of creating the missing topics (an admin client connects, reads metadata and
    /// waits for the creations).
    pub topics_timeout: Duration,
    /// Create the missing Kafka topics (never alters or deletes any); off, only reachability
    /// is checked and the brokers create topics at start.
    pub create_topics: bool,
    /// Read `tributary_connections` from the ready pods (needs pod network access).
    pub scrape_metrics: bool,
    /// Timeout of one pod's metrics request.
    pub scrape_timeout: Duration,
    /// Requeue interval of a healthy broker (refreshes connections and endpoints).
    pub resync: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_image: crate::labels::default_image(),
            kafka_timeout: Duration::from_secs(3),
            topics_timeout: Duration::from_secs(15),
            create_topics: true,
            scrape_metrics: true,
            scrape_timeout: Duration::from_secs(2),
            resync: Duration::from_secs(60),
        }
    }
}

/// Shared state of the reconciler.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Publishes events on MqttBrokers.
    pub recorder: Recorder,
    /// Tunables.
    pub settings: Settings,
    /// Consecutive failures per `namespace/name`, for the error backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context reporting events as `tributary-operator` (instance from `POD_NAME` if set).
    pub fn new(client: Client, settings: Settings) -> Self {
        let reporter = Reporter { controller: MANAGER.to_string(), instance: std::env::var("POD_NAME").ok() };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one more failure for `key` and returns the count.
    fn record_failure(&self, key: &str) -> u32 {
        let mut failures = self.failures();
        let count = failures.entry(key.to_string()).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    fn reset_failures(&self, key: &str) {
        self.failures().remove(key);
    }
}

/// Requeue delay after `failures` consecutive errors: 5s doubling up to 5 minutes.
pub fn backoff_delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(6);
    Duration::from_secs((5u64 << exponent).min(300))
}

fn key_of(broker: &MqttBroker) -> String {
    format!("{}/{}", broker.namespace().unwrap_or_default(), broker.name_any())
}

/// Reconciles one MqttBroker. A spec failing validation only updates the status (nothing
/// already running is touched); a valid one is applied in full.
pub async fn reconcile(broker: Arc<MqttBroker>, ctx: Arc<Context>) -> Result<Action, Error> {
    let owner = Owner::of(&broker)?;
    let api: Api<MqttBroker> = Api::namespaced(ctx.client.clone(), &owner.namespace);
    let previous = broker.status.clone().unwrap_or_default();
    let generation = broker.metadata.generation;

    let errors = validate(&broker.spec);
    if !errors.is_empty() {
        info!(broker = %key_of(&broker), ?errors, "invalid spec; children left unchanged");
        let updates = status::invalid_spec_conditions(&errors);
        let conditions = status::merge_conditions(&previous.conditions, &updates, generation, Timestamp::now());
        let new_status = MqttBrokerStatus { observed_generation: generation, conditions, ..previous.clone() };
        patch_status(&api, &owner.name, &new_status).await?;
        publish_transitions(&ctx, &broker, &previous.conditions, &new_status.conditions).await;
        ctx.reset_failures(&key_of(&broker));
        return Ok(Action::requeue(ctx.settings.resync * 5));
    }

    let children = desired::children(&broker, &ctx.settings.default_image)?;
    let (deployment, service) = apply_children(&ctx.client, &owner.namespace, &children).await?;

    let kafka = check_kafka(&ctx, &broker, &owner.namespace, &children).await?;
    let rollout = Rollout::of(&deployment);
    let connections = if ctx.settings.scrape_metrics { pod_connections(&ctx, &owner).await? } else { None };
    let updates: Vec<ConditionUpdate> = status::applied_conditions(&rollout, &kafka);
    let conditions = status::merge_conditions(&previous.conditions, &updates, generation, Timestamp::now());
    let new_status = status::applied_status(
        &owner.name,
        &rollout,
        conditions,
        generation,
        connections,
        status::endpoints(&broker.spec, &service),
    );
    if new_status != previous {
        patch_status(&api, &owner.name, &new_status).await?;
    }
    publish_transitions(&ctx, &broker, &previous.conditions, &new_status.conditions).await;
    ctx.reset_failures(&key_of(&broker));

    if rollout.in_progress() || !kafka.healthy() {
        Ok(Action::requeue(ctx.settings.resync / 4))
    } else {
        Ok(Action::requeue(ctx.settings.resync))
    }
}

/// Checks Kafka and, when enabled, creates the brokers' missing topics from the rendered
/// configuration and the credentials Secret. Kafka trouble is a condition, not an error; only a
/// failing Kubernetes request is.
async fn check_kafka(
    ctx: &Context,
    broker: &MqttBroker,
    namespace: &str,
    children: &Children,
) -> Result<KafkaCheck, Error> {
    let timeout = ctx.settings.kafka_timeout;
    if !ctx.settings.create_topics {
        return Ok(kafka::check_bootstrap(&broker.spec.kafka.bootstrap_servers, timeout).await);
    }
    let mut credentials = Vec::new();
    if let Some(secret_ref) = &broker.spec.kafka.credentials_secret_ref {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
        // A missing Secret, or RBAC without `get secrets` (an operator upgraded without its
        // new role), is a condition on the MqttBroker, not a failed reconcile.
        let why = match secrets.get_opt(&secret_ref.name).await {
            Ok(Some(secret)) => {
                for (key, value) in secret.data.unwrap_or_default() {
                    credentials.push((key, String::from_utf8_lossy(&value.0).into_owned()));
                }
                None
            }
            Ok(None) => Some(format!("secret {} not found", secret_ref.name)),
            Err(e) => Some(format!("cannot read secret {}: {e}", secret_ref.name)),
        };
        if let Some(why) = why {
            let mut check = kafka::check_bootstrap(&broker.spec.kafka.bootstrap_servers, timeout).await;
            check.topics_ready = Some(false);
            check.message.push_str(&format!("; cannot create topics: spec.kafka.credentialsSecretRef: {why}"));
            return Ok(check);
        }
    }
    let yaml = children.config_map.data.as_ref().and_then(|d| d.get(CONFIG_KEY)).map(String::as_str).unwrap_or("");
    match kafka::broker_config(yaml, credentials.into_iter()) {
        Ok(config) => Ok(kafka::prepare(&config, timeout, ctx.settings.topics_timeout).await),
        Err(e) => Err(Error::RenderedConfig(e)),
    }
}

/// Requeues a failed reconcile with exponential backoff.
pub fn error_policy(broker: Arc<MqttBroker>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = key_of(&broker);
    let failures = ctx.record_failure(&key);
    let delay = backoff_delay(failures);
    warn!(broker = %key, %error, failures, ?delay, "reconcile failed; retrying");
    Action::requeue(delay)
}

/// Server-side applies `object` under the operator's field manager.
async fn apply<K>(client: &Client, namespace: &str, object: &K) -> Result<K, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + DeserializeOwned + Serialize,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply(MANAGER).force();
    Ok(api.patch(&object.name_any(), &params, &Patch::Apply(object)).await?)
}

/// Applies every child; returns the Deployment and Service as the API server answered.
pub async fn apply_children(
    client: &Client,
    namespace: &str,
    children: &Children,
) -> Result<(Deployment, Service), Error> {
    apply(client, namespace, &children.service_account).await?;
    apply(client, namespace, &children.config_map).await?;
    let deployment = apply(client, namespace, &children.deployment).await?;
    let service = apply(client, namespace, &children.service).await?;
    apply(client, namespace, &children.pod_disruption_budget).await?;
    match &children.horizontal_pod_autoscaler {
        Some(hpa) => {
            apply(client, namespace, hpa).await?;
        }
        None => {
            let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), namespace);
            match api.delete(&children.deployment.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok((deployment, service))
}

async fn patch_status(api: &Api<MqttBroker>, name: &str, status: &MqttBrokerStatus) -> Result<(), Error> {
    let patch = serde_json::json!({
        "apiVersion": MqttBroker::api_version(&()),
        "kind": MqttBroker::kind(&()),
        "status": status,
    });
    api.patch_status(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}

/// Sums `tributary_connections` over the ready pods. `None` when no ready pod answered.
async fn pod_connections(ctx: &Context, owner: &Owner) -> Result<Option<i64>, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &owner.namespace);
    let list = pods.list(&ListParams::default().labels(&selector_string(&owner.name))).await?;
    let ips: Vec<String> = list
        .items
        .iter()
        .filter(|pod| is_ready(pod))
        .filter_map(|pod| pod.status.as_ref().and_then(|s| s.pod_ip.clone()))
        .collect();
    if ips.is_empty() {
        return Ok(Some(0));
    }
    let timeout = ctx.settings.scrape_timeout;
    let results =
        futures::future::join_all(ips.iter().map(|ip| scrape_connections(ip, ADMIN_PORT as u16, timeout))).await;
    let mut total = None;
    for (ip, result) in ips.iter().zip(results) {
        match result {
            Ok(n) => total = Some(total.unwrap_or(0) + n),
            Err(e) => debug!(pod_ip = %ip, error = %e, "could not read connections"),
        }
    }
    Ok(total)
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Records an event for each change of `Ready` or `KafkaReachable` (status or reason).
/// Event failures are logged, never fatal.
async fn publish_transitions(ctx: &Context, broker: &MqttBroker, previous: &[Condition], current: &[Condition]) {
    for type_ in [READY, KAFKA_REACHABLE] {
        let Some(new) = current.iter().find(|c| c.type_ == type_) else {
            continue;
        };
        let old = previous.iter().find(|c| c.type_ == type_);
        if old.is_some_and(|o| o.status == new.status && o.reason == new.reason) {
            continue;
        }
        let warning = new.status == "False" && new.reason != "ScaledToZero";
        let mut note = format!("{}={}: {}", new.type_, new.status, new.message);
        if note.len() > 1000 {
            let mut cut = 1000;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
        }
        let event = Event {
            type_: if warning { EventType::Warning } else { EventType::Normal },
            reason: new.reason.clone(),
            note: Some(note),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &broker.object_ref(&())).await {
            warn!(broker = %key_of(broker), error = %e, "could not record event");
        }
    }
}

/// Runs the controller until SIGTERM/SIGINT. Watches MqttBrokers in `namespace` (all
/// namespaces when `None`) and the Deployments, Services and ConfigMaps they own.
pub async fn run(client: Client, settings: Settings, namespace: Option<String>) -> Result<(), Error> {
    fn api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let brokers: Api<MqttBroker> = api(&client, &namespace);
    // Fail early with a clear error when the CRD is not installed or RBAC is missing.
    brokers.list(&ListParams::default().limit(1)).await?;
    let owned = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));
    let ctx = Arc::new(Context::new(client.clone(), settings));
    info!(namespace = namespace.as_deref().unwrap_or("<all>"), "controller started");
    Controller::new(brokers, watcher::Config::default())
        .owns(api::<Deployment>(&client, &namespace), owned.clone())
        .owns(api::<Service>(&client, &namespace), owned.clone())
        .owns(api::<ConfigMap>(&client, &namespace), owned)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => debug!(broker = %object.name, "reconciled"),
                Err(e) => warn!(error = %e, "reconcile error"),
            }
        })
        .await;
    info!("controller stopped");
    Ok(())
}
