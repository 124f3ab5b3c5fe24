//! Status of an `MqttBroker` (Strimzi conventions): conditions `Ready`, `Reconciling` and
//! `KafkaReachable`, replica counts, selector, connections and endpoints.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::{MqttBrokerSpec, MqttBrokerStatus};
use crate::desired::configmap::effective_listeners;
use crate::kafka::KafkaCheck;
use crate::labels::selector_string;
use crate::validate::FieldError;

/// Condition type: the broker serves clients.
pub const READY: &str = "Ready";
/// Condition type: the operator is converging the children (rollout, scaling).
pub const RECONCILING: &str = "Reconciling";
/// Condition type: a Kafka bootstrap server accepted a TCP connection and, unless topic
/// creation is disabled, the brokers' topics exist.
pub const KAFKA_REACHABLE: &str = "KafkaReachable";
/// Reason used when the spec fails validation.
pub const INVALID_SPEC: &str = "InvalidSpec";

/// A condition's new state, before timestamps are settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionUpdate {
    /// Condition type.
    pub type_: &'static str,
    /// `True` or `False` (or `Unknown`).
    pub status: &'static str,
    /// CamelCase reason.
    pub reason: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl ConditionUpdate {
    fn new(type_: &'static str, ok: bool, reason: &'static str, message: String) -> Self {
        ConditionUpdate { type_, status: if ok { "True" } else { "False" }, reason, message }
    }
}

/// Turns updates into conditions; `lastTransitionTime` is kept from `previous` unless the
/// status changed. Conditions not named in `updates` are kept as they were.
pub fn merge_conditions(
    previous: &[Condition],
    updates: &[ConditionUpdate],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let mut out: Vec<Condition> =
        previous.iter().filter(|c| !updates.iter().any(|u| u.type_ == c.type_)).cloned().collect();
    for update in updates {
        let old = previous.iter().find(|c| c.type_ == update.type_);
        let last_transition_time = match old {
            Some(old) if old.status == update.status => old.last_transition_time.clone(),
            _ => Time(now),
        };
        out.push(Condition {
            type_: update.type_.to_string(),
            status: update.status.to_string(),
            reason: update.reason.to_string(),
            message: update.message.clone(),
            observed_generation: generation,
            last_transition_time,
        });
    }
    let order = |t: &str| [READY, RECONCILING, KAFKA_REACHABLE].iter().position(|x| *x == t);
    out.sort_by_key(|c| order(&c.type_).unwrap_or(usize::MAX));
    out
}

/// Conditions for a spec that failed validation: `Ready=False/InvalidSpec` naming the fields.
pub fn invalid_spec_conditions(errors: &[FieldError]) -> Vec<ConditionUpdate> {
    let message = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    vec![
        ConditionUpdate::new(
            READY,
            false,
            INVALID_SPEC,
            format!("invalid spec, running pods left unchanged: {message}"),
        ),
        ConditionUpdate::new(RECONCILING, false, INVALID_SPEC, message),
    ]
}

/// Replica counts of the applied Deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rollout {
    /// Pods the Deployment asks for.
    pub desired: i32,
    /// Pods that exist.
    pub replicas: i32,
    /// Pods that are ready.
    pub ready: i32,
    /// Pods running the current template.
    pub updated: i32,
    /// The Deployment controller has seen the latest template.
    pub observed: bool,
}

impl Rollout {
    /// Reads the counts from a Deployment as returned by the API server.
    pub fn of(deployment: &Deployment) -> Self {
        let status = deployment.status.clone().unwrap_or_default();
        let desired = deployment.spec.replicas.unwrap_or(1);
        Rollout {
            desired,
            replicas: status.replicas.unwrap_or(0),
            ready: status.ready_replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            observed: status.observed_generation >= deployment.metadata.generation,
        }
    }

    /// The rollout or scaling is still in progress.
    pub fn in_progress(&self) -> bool {
        !self.observed || self.updated < self.desired || self.ready < self.desired || self.replicas > self.desired
    }
}

/// Conditions for a valid, applied spec.
pub fn applied_conditions(rollout: &Rollout, kafka: &KafkaCheck) -> Vec<ConditionUpdate> {
    let ready = if rollout.desired == 0 {
        ConditionUpdate::new(READY, false, "ScaledToZero", "spec.replicas is 0".to_string())
    } else if rollout.ready >= 1 {
        ConditionUpdate::new(
            READY,
            true,
            "BrokersReady",
            format!("{}/{} broker pods ready", rollout.ready, rollout.desired),
        )
    } else {
        ConditionUpdate::new(READY, false, "NoBrokerReady", format!("0/{} broker pods ready", rollout.desired))
    };
    let reconciling = if rollout.in_progress() {
        ConditionUpdate::new(
            RECONCILING,
            true,
            "RollingOut",
            format!("{} updated, {} ready of {} desired", rollout.updated, rollout.ready, rollout.desired),
        )
    } else {
        ConditionUpdate::new(RECONCILING, false, "Reconciled", "all children match the spec".to_string())
    };
    let reason = match (kafka.reachable, kafka.topics_ready) {
        (false, _) => "Unreachable",
        (true, Some(false)) => "TopicsNotCreated",
        (true, Some(true)) => "TopicsReady",
        (true, None) => "Connected",
    };
    let kafka = ConditionUpdate::new(KAFKA_REACHABLE, kafka.healthy(), reason, kafka.message.clone());
    vec![ready, reconciling, kafka]
}

/// Client endpoints from the Service's load balancer ingress, one per listener and address.
pub fn endpoints(spec: &MqttBrokerSpec, service: &Service) -> Vec<String> {
    let ingress = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .cloned()
        .unwrap_or_default();
    let listeners = effective_listeners(spec);
    ingress
        .iter()
        .filter_map(|i| i.hostname.clone().or_else(|| i.ip.clone()))
        .flat_map(|addr| {
            listeners.iter().map(move |l| {
                let host = if addr.contains(':') { format!("[{addr}]") } else { addr.clone() };
                format!("{}://{host}:{}", l.protocol.as_str(), l.port)
            })
        })
        .collect()
}

/// The full status of a valid, applied spec.
pub fn applied_status(
    name: &str,
    rollout: &Rollout,
    conditions: Vec<Condition>,
    generation: Option<i64>,
    connections: Option<i64>,
    endpoints: Vec<String>,
) -> MqttBrokerStatus {
    MqttBrokerStatus {
        observed_generation: generation,
        conditions,
        replicas: Some(rollout.replicas),
        ready_replicas: Some(rollout.ready),
        selector: Some(selector_string(name)),
        connections,
        endpoints,
    }
}
