//! Errors of the reconciler. An invalid spec is not an error: it becomes a status condition.

/// Everything that makes a reconcile fail and requeue with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API refused or failed a request.
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// The broker configuration could not be rendered to YAML.
    #[error("rendering broker.yaml failed: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// The rendered broker.yaml is refused by the broker's parser (an operator bug: the contract
    /// tests parse every rendering).
    #[error("{0}")]
    RenderedConfig(String),
    /// An object could not be converted to or from JSON.
    #[error("JSON conversion failed: {0}")]
    Json(#[from] serde_json::Error),
    /// The MqttBroker object lacks metadata the API server always sets (name, namespace, uid).
    #[error("MqttBroker object has no metadata.{0}")]
    MissingMetadata(&'static str),
}
