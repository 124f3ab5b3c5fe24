//! The Service exposing the MQTT listeners (LoadBalancer by default). The admin port is not
//! exposed: it is scraped per pod.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::configmap::effective_listeners;
use super::Owner;
use crate::crd::MqttBrokerSpec;
use crate::labels::selector_labels;

/// The listeners' Service.
pub fn service(owner: &Owner, spec: &MqttBrokerSpec) -> Service {
    let settings = spec.service.clone().unwrap_or_default();
    let mut metadata = owner.meta(owner.name.clone());
    if !settings.annotations.is_empty() {
        metadata.annotations = Some(settings.annotations);
    }
    let ports = effective_listeners(spec)
        .into_iter()
        .map(|l| ServicePort {
            name: Some(l.name.clone()),
            port: l.port,
            protocol: Some("TCP".to_string()),
            target_port: Some(IntOrString::String(l.name)),
            ..ServicePort::default()
        })
        .collect();
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(settings.type_.unwrap_or_default().as_str().to_string()),
            load_balancer_class: settings.load_balancer_class,
            selector: Some(selector_labels(&owner.name)),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
