//! The broker Deployment.
//!
//! Configuration reaches the pods through one projected volume at `/etc/tributary` (the
//! ConfigMap's `broker.yaml`, TLS Secrets under `tls/<listener>/`, the password file under
//! `auth/`). Projected volumes are updated in place by the kubelet, so topic mappings and ACL
//! edits reach running brokers without a restart; everything else the broker cannot hot-reload
//! is covered by the config hash annotation and rolls the pods.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapProjection, Container, ContainerPort, EmptyDirVolumeSource, EnvFromSource,
    HTTPGetAction, KeyToPath, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ProjectedVolumeSource, ResourceRequirements, SeccompProfile, SecretEnvSource, SecretProjection, SecurityContext,
    Sysctl, TopologySpreadConstraint, Volume, VolumeMount, VolumeProjection, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::configmap::effective_listeners;
use super::Owner;
use crate::crd::MqttBrokerSpec;
use crate::labels::{
    selector_labels, standard_labels, ADMIN_PORT, CONFIG_DIR, CONFIG_FILE, CONFIG_HASH_ANNOTATION, CONFIG_KEY,
    JWT_JWKS, JWT_PUBLIC_KEY, JWT_SECRET,
};
use tributary_broker::config::{Config, KAFKA_ENV_PREFIX};

/// Name of the broker container.
pub const CONTAINER_NAME: &str = "broker";
/// Seconds a terminating pod gets beyond its drain window (`limits.drainSeconds`): for the
/// connections' last session saves, the stopped heartbeat and the producer's flush, which the
/// broker bounds at 10 + 5 + 10 s.
pub const TERMINATION_GRACE_BEYOND_DRAIN: i64 = 30;
/// UID the broker runs as.
pub const BROKER_UID: i64 = 65532;
/// Secret key read for the password file when `passwordSecretRef.key` is not set.
pub const DEFAULT_PASSWORD_KEY: &str = "passwords";

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("admin".to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("250m".to_string())),
            ("memory".to_string(), Quantity("256Mi".to_string())),
        ])),
        limits: Some(BTreeMap::from([("memory".to_string(), Quantity("512Mi".to_string()))])),
        ..ResourceRequirements::default()
    }
}

/// Preferred spreading of broker pods across nodes.
fn default_affinity(instance: &str) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![WeightedPodAffinityTerm {
                weight: 100,
                pod_affinity_term: PodAffinityTerm {
                    label_selector: Some(LabelSelector {
                        match_labels: Some(selector_labels(instance)),
                        ..LabelSelector::default()
                    }),
                    topology_key: "kubernetes.io/hostname".to_string(),
                    ..PodAffinityTerm::default()
                },
            }]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    }
}

/// Best-effort spreading of broker pods across zones.
fn default_spread(instance: &str) -> Vec<TopologySpreadConstraint> {
    vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "topology.kubernetes.io/zone".to_string(),
        when_unsatisfiable: "ScheduleAnyway".to_string(),
        label_selector: Some(LabelSelector {
            match_labels: Some(selector_labels(instance)),
            ..LabelSelector::default()
        }),
        ..TopologySpreadConstraint::default()
    }]
}

fn key(key: &str, path: String) -> KeyToPath {
    KeyToPath { key: key.to_string(), path, ..KeyToPath::default() }
}

/// The projected config volume: broker.yaml, TLS material, password file.
fn config_volume(owner: &Owner, spec: &MqttBrokerSpec) -> Volume {
    let mut sources = vec![VolumeProjection {
        config_map: Some(ConfigMapProjection {
            name: owner.name.clone(),
            items: Some(vec![key(CONFIG_KEY, CONFIG_KEY.to_string())]),
            optional: Some(false),
        }),
        ..VolumeProjection::default()
    }];
    for listener in effective_listeners(spec) {
        let Some(secret) = listener.tls_secret_ref.as_ref() else {
            continue;
        };
        let dir = format!("tls/{}", listener.name);
        let mut items = vec![key("tls.crt", format!("{dir}/tls.crt")), key("tls.key", format!("{dir}/tls.key"))];
        if listener.require_client_cert == Some(true) {
            items.push(key("ca.crt", format!("{dir}/ca.crt")));
        }
        sources.push(VolumeProjection {
            secret: Some(SecretProjection { name: secret.name.clone(), items: Some(items), optional: Some(false) }),
            ..VolumeProjection::default()
        });
    }
    // Secret files of authentication: (reference, default key, path in the volume). Projected
    // Secrets are updated in place when rotated, and the broker re-reads them.
    let authn = spec.authentication.as_ref();
    let jwt = authn.and_then(|a| a.jwt.as_ref());
    let secret_files = [
        (authn.and_then(|a| a.password_secret_ref.as_ref()), DEFAULT_PASSWORD_KEY, "auth/passwords"),
        (jwt.and_then(|j| j.secret_ref.as_ref()), "secret", JWT_SECRET),
        (jwt.and_then(|j| j.public_key_ref.as_ref()), "key.pem", JWT_PUBLIC_KEY),
        (jwt.and_then(|j| j.jwks_ref.as_ref()), "jwks.json", JWT_JWKS),
    ];
    for (secret, default_key, path) in secret_files {
        let Some(secret) = secret else { continue };
        let secret_key = secret.key.as_deref().unwrap_or(default_key);
        sources.push(VolumeProjection {
            secret: Some(SecretProjection {
                name: secret.name.clone(),
                items: Some(vec![key(secret_key, path.to_string())]),
                optional: Some(false),
            }),
            ..VolumeProjection::default()
        });
    }
    Volume {
        name: "config".to_string(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(sources),
            default_mode: Some(0o440),
            ..ProjectedVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// The broker Deployment for the rendered `config`. `config_hash` is
/// [`super::configmap::restart_hash`] of it. Without autoscaling `spec.replicas` (default 1) is set; with autoscaling the
/// field is left to the HPA.
pub fn deployment(
    owner: &Owner,
    spec: &MqttBrokerSpec,
    config: &Config,
    default_image: &str,
    config_hash: &str,
) -> Deployment {
    let overrides = spec.pod_template.clone().unwrap_or_default();
    let listeners = effective_listeners(spec);

    let mut pod_labels = overrides.labels.clone();
    pod_labels.extend(standard_labels(&owner.name));
    let mut pod_annotations = overrides.annotations.clone();
    pod_annotations.extend([
        (CONFIG_HASH_ANNOTATION.to_string(), config_hash.to_string()),
        ("prometheus.io/scrape".to_string(), "true".to_string()),
        ("prometheus.io/port".to_string(), ADMIN_PORT.to_string()),
        ("prometheus.io/path".to_string(), "/metrics".to_string()),
    ]);

    let mut ports: Vec<ContainerPort> = listeners
        .iter()
        .map(|l| ContainerPort {
            name: Some(l.name.clone()),
            container_port: l.port,
            protocol: Some("TCP".to_string()),
            ..ContainerPort::default()
        })
        .collect();
    ports.push(ContainerPort {
        name: Some("admin".to_string()),
        container_port: ADMIN_PORT,
        protocol: Some("TCP".to_string()),
        ..ContainerPort::default()
    });

    let env_from = spec.kafka.credentials_secret_ref.as_ref().map(|secret| {
        vec![EnvFromSource {
            prefix: Some(KAFKA_ENV_PREFIX.to_string()),
            secret_ref: Some(SecretEnvSource { name: secret.name.clone(), optional: Some(false) }),
            ..EnvFromSource::default()
        }]
    });

    let container = Container {
        name: CONTAINER_NAME.to_string(),
        image: Some(spec.image.clone().unwrap_or_else(|| default_image.to_string())),
        args: Some(vec!["--config".to_string(), CONFIG_FILE.to_string()]),
        ports: Some(ports),
        env_from,
        resources: Some(spec.resources.clone().unwrap_or_else(default_resources)),
        startup_probe: Some(http_probe("/healthz", 2, 60)),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "config".to_string(),
                mount_path: CONFIG_DIR.to_string(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount { name: "tmp".to_string(), mount_path: "/tmp".to_string(), ..VolumeMount::default() },
        ]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_string()]), ..Capabilities::default() }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };

    // A non-root broker may bind ports below 1024 only with this (namespaced, safe) sysctl.
    let sysctls = listeners
        .iter()
        .any(|l| l.port < 1024)
        .then(|| vec![Sysctl { name: "net.ipv4.ip_unprivileged_port_start".to_string(), value: "0".to_string() }]);

    let pod_spec = PodSpec {
        service_account_name: Some(owner.name.clone()),
        automount_service_account_token: Some(false),
        // The broker's drain window (of the rendered config, so the default is the broker's).
        termination_grace_period_seconds: Some(i64::from(config.limits.drain_seconds) + TERMINATION_GRACE_BEYOND_DRAIN),
        containers: vec![container],
        volumes: Some(vec![
            config_volume(owner, spec),
            Volume { name: "tmp".to_string(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Volume::default() },
        ]),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(BROKER_UID),
            run_as_group: Some(BROKER_UID),
            fs_group: Some(BROKER_UID),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".to_string(), ..SeccompProfile::default() }),
            sysctls,
            ..PodSecurityContext::default()
        }),
        node_selector: (!overrides.node_selector.is_empty()).then_some(overrides.node_selector),
        tolerations: (!overrides.tolerations.is_empty()).then_some(overrides.tolerations),
        affinity: Some(overrides.affinity.unwrap_or_else(|| default_affinity(&owner.name))),
        topology_spread_constraints: Some(if overrides.topology_spread_constraints.is_empty() {
            default_spread(&owner.name)
        } else {
            overrides.topology_spread_constraints
        }),
        ..PodSpec::default()
    };

    Deployment {
        metadata: owner.meta(owner.name.clone()),
        spec: DeploymentSpec {
            replicas: if spec.autoscaling.is_some() { None } else { Some(spec.replicas.unwrap_or(1)) },
            selector: LabelSelector { match_labels: Some(selector_labels(&owner.name)), ..LabelSelector::default() },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_string()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}
