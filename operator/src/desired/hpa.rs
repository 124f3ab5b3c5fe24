//! The `autoscaling/v2` HorizontalPodAutoscaler scaling on connections per pod.
//!
//! The Pods metric `tributary_connections` reaches the HPA through the custom metrics API
//! (prometheus-adapter; the Helm chart documents the rule).

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricIdentifier, MetricSpec, MetricTarget,
    PodsMetricSource, ResourceMetricSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::Owner;
use crate::crd::MqttBrokerSpec;

/// Name of the per-pod connection gauge the broker exports.
pub const CONNECTIONS_METRIC: &str = "tributary_connections";
/// Connections per pod the HPA aims for when `targetConnectionsPerPod` is not set.
pub const DEFAULT_TARGET_CONNECTIONS: i64 = 1000;
/// Seconds the HPA waits before acting on lower load (avoids reconnect storms).
pub const SCALE_DOWN_STABILIZATION_SECONDS: i32 = 300;

/// The HPA when `spec.autoscaling` is set.
pub fn horizontal_pod_autoscaler(owner: &Owner, spec: &MqttBrokerSpec) -> Option<HorizontalPodAutoscaler> {
    let autoscaling = spec.autoscaling.as_ref()?;
    let target = autoscaling.target_connections_per_pod.unwrap_or(DEFAULT_TARGET_CONNECTIONS);
    let mut metrics = vec![MetricSpec {
        type_: "Pods".to_string(),
        pods: Some(PodsMetricSource {
            metric: MetricIdentifier { name: CONNECTIONS_METRIC.to_string(), selector: None },
            target: MetricTarget {
                type_: "AverageValue".to_string(),
                average_value: Some(Quantity(target.to_string())),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    }];
    if let Some(cpu) = autoscaling.target_cpu_utilization {
        metrics.push(MetricSpec {
            type_: "Resource".to_string(),
            resource: Some(ResourceMetricSource {
                name: "cpu".to_string(),
                target: MetricTarget {
                    type_: "Utilization".to_string(),
                    average_utilization: Some(cpu),
                    ..MetricTarget::default()
                },
            }),
            ..MetricSpec::default()
        });
    }
    Some(HorizontalPodAutoscaler {
        metadata: owner.meta(owner.name.clone()),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_string()),
                kind: "Deployment".to_string(),
                name: owner.name.clone(),
            },
            min_replicas: Some(autoscaling.min_replicas.unwrap_or(1)),
            max_replicas: autoscaling.max_replicas,
            metrics: Some(metrics),
            behavior: Some(HorizontalPodAutoscalerBehavior {
                // Scaling down disconnects clients: one pod per minute, after 5 minutes of calm.
                scale_down: Some(HPAScalingRules {
                    stabilization_window_seconds: Some(SCALE_DOWN_STABILIZATION_SECONDS),
                    policies: Some(vec![HPAScalingPolicy { type_: "Pods".to_string(), value: 1, period_seconds: 60 }]),
                    ..HPAScalingRules::default()
                }),
                scale_up: None,
            }),
        },
        ..HorizontalPodAutoscaler::default()
    })
}
