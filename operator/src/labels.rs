//! Names, labels and paths shared by every child object.

use std::collections::BTreeMap;

/// Value of `app.kubernetes.io/name` on every child.
pub const APP_NAME: &str = "tributary";
/// Field manager for server-side apply and value of `app.kubernetes.io/managed-by`.
pub const MANAGER: &str = "tributary-operator";
/// Label holding the application name.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// Label holding the MqttBroker name.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// Label naming the managing controller.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Pod annotation carrying the hash of the configuration the broker cannot hot-reload.
pub const CONFIG_HASH_ANNOTATION: &str = "tributary.io/config-hash";

/// Admin HTTP port of the broker (/healthz, /readyz, /metrics): the broker's default, as an
/// `i32` like every port in the Kubernetes API (the cast widens, it cannot truncate).
pub const ADMIN_PORT: i32 = tributary_broker::config::DEFAULT_ADMIN_PORT as i32;
/// Directory the broker configuration volume is mounted at.
pub const CONFIG_DIR: &str = "/etc/tributary";
/// The broker configuration file, key `broker.yaml` of the ConfigMap.
pub const CONFIG_FILE: &str = "/etc/tributary/broker.yaml";
/// ConfigMap key holding the broker configuration.
pub const CONFIG_KEY: &str = "broker.yaml";
/// Path of the password file inside the config volume.
pub const PASSWORD_FILE: &str = "/etc/tributary/auth/passwords";
/// Paths of the JWT key files inside the config volume (`jwt.secretRef`, `publicKeyRef`,
/// `jwksRef`), relative to [`CONFIG_DIR`].
pub const JWT_SECRET: &str = "auth/jwt-secret";
/// See [`JWT_SECRET`].
pub const JWT_PUBLIC_KEY: &str = "auth/jwt-public-key.pem";
/// See [`JWT_SECRET`].
pub const JWT_JWKS: &str = "auth/jwks.json";

/// Labels selecting the pods of one MqttBroker.
pub fn selector_labels(instance: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(NAME_LABEL.to_string(), APP_NAME.to_string()), (INSTANCE_LABEL.to_string(), instance.to_string())])
}

/// The standard labels every child carries.
pub fn standard_labels(instance: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(instance);
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGER.to_string());
    labels
}

/// The pod selector as a label selector string (`status.selector`, pod listing).
pub fn selector_string(instance: &str) -> String {
    selector_labels(instance).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// Directory a listener's TLS Secret is mounted at.
pub fn tls_dir(listener: &str) -> String {
    format!("{CONFIG_DIR}/tls/{listener}")
}

/// The default broker image: the broker release matching this operator's version, as `make image`
/// names it. Clusters pulling from a registry set `--broker-image` (Helm value `brokerImage`).
pub fn default_image() -> String {
    format!("localhost/tributary-broker:{}", env!("CARGO_PKG_VERSION"))
}

/// 64-bit FNV-1a hash, stable across Rust releases (used for the config hash annotation).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}
