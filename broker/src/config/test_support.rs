//! Helpers shared by the configuration tests (and those of the reload, `crate::reload`).

use super::Config;

/// The smallest valid file: only the required key.
pub(crate) const MINIMAL: &str = "kafka:\n  bootstrapServers: kafka:9092\n";

/// The minimal config with `extra` appended, which must be valid.
pub(crate) fn config_with(extra: &str) -> Config {
    Config::from_yaml_str(&format!("{MINIMAL}{extra}")).expect("config")
}

/// The error message for `yaml`, which must fail.
pub(crate) fn error(yaml: &str) -> String {
    match Config::from_yaml_str(yaml) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e) => e.to_string(),
    }
}

/// The error message for the minimal config with `extra` appended.
pub(crate) fn error_with(extra: &str) -> String {
    error(&format!("{MINIMAL}{extra}"))
}

/// Asserts that `message` starts with `prefix`, showing both when not.
pub(crate) fn assert_starts_with(message: &str, prefix: &str) {
    assert!(message.starts_with(prefix), "{message:?} should start with {prefix:?}");
}
