//! tributary-operator: reconciles `MqttBroker` resources into Tributary broker deployments.
#![warn(missing_docs)]

pub mod crd;
pub mod desired;
pub mod error;
pub mod kafka;
pub mod labels;
pub mod metrics;
pub mod reconcile;
pub mod status;
pub mod validate;

use kube::CustomResourceExt;

/// The MqttBroker CustomResourceDefinition as YAML (the content of `crds/mqttbroker.yaml`).
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&crd::MqttBroker::crd())
}
