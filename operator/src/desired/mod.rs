//! Pure desired-state functions: an `MqttBroker` in, the child objects out. No I/O here, so
//! every field can be tested without a cluster.

pub mod configmap;
pub mod deployment;
pub mod hpa;
pub mod pdb;
pub mod service;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::crd::MqttBroker;
use crate::error::Error;
use crate::labels::standard_labels;

/// The MqttBroker that owns the children: name, namespace and controller owner reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Owner {
    /// MqttBroker name, also the name of every child.
    pub name: String,
    /// Namespace of the MqttBroker and its children.
    pub namespace: String,
    /// Controller owner reference, so children are garbage-collected with the MqttBroker.
    pub owner_ref: OwnerReference,
}

impl Owner {
    /// Extracts the owner; fails when the object lacks server-set metadata.
    pub fn of(broker: &MqttBroker) -> Result<Self, Error> {
        let namespace = broker.namespace().ok_or(Error::MissingMetadata("namespace"))?;
        let owner_ref = broker.controller_owner_ref(&()).ok_or(Error::MissingMetadata("uid"))?;
        Ok(Owner { name: broker.name_any(), namespace, owner_ref })
    }

    /// Metadata for a child: name, namespace, standard labels, owner reference.
    pub fn meta(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(standard_labels(&self.name)),
            owner_references: Some(vec![self.owner_ref.clone()]),
            ..ObjectMeta::default()
        }
    }
}

/// Every child object of one MqttBroker.
#[derive(Debug, Clone, PartialEq)]
pub struct Children {
    /// Identity the broker pods run as (no API token mounted).
    pub service_account: ServiceAccount,
    /// `broker.yaml`.
    pub config_map: ConfigMap,
    /// The broker pods.
    pub deployment: Deployment,
    /// The listeners' Service.
    pub service: Service,
    /// Keeps at most one broker pod voluntarily disrupted.
    pub pod_disruption_budget: PodDisruptionBudget,
    /// Present when `spec.autoscaling` is set; otherwise any existing HPA is deleted.
    pub horizontal_pod_autoscaler: Option<HorizontalPodAutoscaler>,
}

/// Builds all children of a validated MqttBroker. `default_image` is used when `spec.image`
/// is not set.
pub fn children(broker: &MqttBroker, default_image: &str) -> Result<Children, Error> {
    let owner = Owner::of(broker)?;
    let spec = &broker.spec;
    let config = configmap::broker_config(spec);
    let hash = configmap::restart_hash(&config)?;
    Ok(Children {
        service_account: ServiceAccount {
            metadata: owner.meta(owner.name.clone()),
            automount_service_account_token: Some(false),
            ..ServiceAccount::default()
        },
        config_map: configmap::config_map(&owner, &config)?,
        deployment: deployment::deployment(&owner, spec, &config, default_image, &hash),
        service: service::service(&owner, spec),
        pod_disruption_budget: pdb::pod_disruption_budget(&owner),
        horizontal_pod_autoscaler: hpa::horizontal_pod_autoscaler(&owner, spec),
    })
}
