//! Settings from outside the file: command-line flags and `TRIBUTARY_KAFKA_*` environment
//! variables, applied on top of the parsed file before it is validated.

use std::net::SocketAddr;

use super::{invalid, Config, ConfigError, Protocol};

/// Prefix of environment variables that set librdkafka properties
/// (`TRIBUTARY_KAFKA_SASL_PASSWORD` sets `sasl.password`).
pub const KAFKA_ENV_PREFIX: &str = "TRIBUTARY_KAFKA_";

impl Config {
    /// Applies `TRIBUTARY_KAFKA_<KEY>=value` variables from `vars` (normally
    /// `std::env::vars()`) as librdkafka properties: `<KEY>` is lower-cased and
    /// `_` becomes `.`, so `TRIBUTARY_KAFKA_SASL_PASSWORD` sets `sasl.password`.
    /// They override `kafka.properties` from the file, because that is how the
    /// operator injects credentials from a Secret without putting them in the
    /// ConfigMap. Other variables are ignored.
    ///
    /// Returns the property names that were set, for logging (the values may be
    /// secrets and are not returned).
    pub fn apply_env_overrides(&mut self, vars: impl Iterator<Item = (String, String)>) -> Vec<String> {
        let mut set = Vec::new();
        for (name, value) in vars {
            let Some(key) = name.strip_prefix(KAFKA_ENV_PREFIX) else {
                continue;
            };
            if key.is_empty() {
                continue;
            }
            let property = key.to_lowercase().replace('_', ".");
            self.kafka.properties.insert(property.clone(), value);
            set.push(property);
        }
        set
    }
}

/// Command-line settings that replace values from the file (`tributary-broker --listen ...`).
///
/// Startup and the config reload both go through [`Overrides::resolve`], so a reloaded file is
/// judged exactly as a restart would judge it.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replaces the address of the first `mqtt` listener.
    pub listen: Option<String>,
    /// Replaces `kafka.bootstrapServers`.
    pub kafka_bootstrap: Option<String>,
    /// Replaces `admin.address`.
    pub admin: Option<String>,
}

impl Overrides {
    /// Turns a parsed file into the configuration the broker runs with: applies these
    /// overrides and the `TRIBUTARY_KAFKA_*` variables of the process environment, validates
    /// the result and refuses what this version does not support yet.
    pub fn resolve(&self, config: Config) -> Result<Config, ConfigError> {
        self.resolve_with_env(config, std::env::vars())
    }

    /// [`resolve`](Self::resolve) with the environment given as `vars`.
    pub fn resolve_with_env(
        &self,
        mut config: Config,
        vars: impl Iterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        if let Some(listen) = &self.listen {
            let l = config
                .listeners
                .iter_mut()
                .find(|l| l.protocol == Protocol::Mqtt)
                .ok_or_else(|| invalid("--listen", "given but the configuration has no mqtt listener"))?;
            l.address = parse_override_addr("--listen", listen)?;
        }
        if let Some(b) = &self.kafka_bootstrap {
            config.kafka.bootstrap_servers.clone_from(b);
        }
        if let Some(a) = &self.admin {
            config.admin.address = parse_override_addr("--admin", a)?;
        }
        config.apply_env_overrides(vars);
        config.validate()?;
        Ok(config)
    }
}

fn parse_override_addr(flag: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| invalid(flag, format!("invalid address {value:?}: expected an IP address and port")))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::test_support::{assert_starts_with, MINIMAL};
    use super::super::*;

    #[test]
    fn env_overrides_set_kafka_properties() {
        let mut config = Config::from_yaml_str(
            "kafka:\n  bootstrapServers: k:9092\n  properties: {sasl.password: from-file, acks: all}\n",
        )
        .expect("config");
        let vars = [
            ("TRIBUTARY_KAFKA_SASL_PASSWORD", "s3cret"),
            ("TRIBUTARY_KAFKA_SASL_USERNAME", "broker"),
            ("TRIBUTARY_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("TRIBUTARY_KAFKA_", "ignored: no key"),
            ("TRIBUTARY_OTHER", "ignored"),
            ("PATH", "/usr/bin"),
            ("tributary_kafka_lower", "ignored: prefix is case-sensitive"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let set = config.apply_env_overrides(vars);
        assert_eq!(set, ["sasl.password", "sasl.username", "security.protocol"]);
        let expected: BTreeMap<String, String> = [
            ("acks", "all"),
            ("sasl.password", "s3cret"),
            ("sasl.username", "broker"),
            ("security.protocol", "SASL_SSL"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(config.kafka.properties, expected);
        assert_eq!(config.validate().map_err(|e| e.to_string()), Ok(()));
    }

    #[test]
    fn overrides_apply_then_validate() {
        let overrides = Overrides {
            listen: Some("127.0.0.1:1884".into()),
            kafka_bootstrap: Some("other:9092".into()),
            admin: Some("127.0.0.1:9091".into()),
        };
        let env = || [("TRIBUTARY_KAFKA_ACKS".to_owned(), "1".to_owned())].into_iter();
        let config = overrides.resolve_with_env(Config::from_yaml_str(MINIMAL).expect("config"), env()).expect("ok");
        assert_eq!(config.listeners[0].address, "127.0.0.1:1884".parse().expect("addr"));
        assert_eq!(config.kafka.bootstrap_servers, "other:9092");
        assert_eq!(config.admin.address.port(), 9091);
        assert_eq!(config.kafka.properties.get("acks").map(String::as_str), Some("1"));

        let bad = Overrides { listen: Some("nope".into()), ..Overrides::default() };
        let err = bad.resolve_with_env(Config::from_yaml_str(MINIMAL).expect("config"), env()).expect_err("bad");
        assert_starts_with(&err.to_string(), "--listen: invalid address \"nope\"");
        let empty = Overrides { kafka_bootstrap: Some(" ".into()), ..Overrides::default() };
        let err = empty.resolve_with_env(Config::from_yaml_str(MINIMAL).expect("config"), env()).expect_err("bad");
        assert_eq!(err.to_string(), "kafka.bootstrapServers: must not be empty");

        let acl = |principal: &str| {
            Config::from_yaml_str(&format!(
                "{MINIMAL}authorization:\n  rules:\n    - {{principal: '{principal}', action: all, topic: '#', effect: deny}}\n"
            ))
            .expect("config")
        };
        assert!(Overrides::default().resolve_with_env(acl("*"), env()).is_ok(), "rules are enforced");
        assert!(Overrides::default().resolve_with_env(acl("cn:device"), env()).is_ok(), "cn: rules are enforced");

        let tls =
            "listeners:\n  - {name: s, protocol: mqtts, address: '127.0.0.1:8883', tls: {certFile: c, keyFile: k}}\n";
        let mqtts = Config::from_yaml_str(&format!("{MINIMAL}{tls}")).expect("config");
        assert!(Overrides::default().resolve_with_env(mqtts, env()).is_ok(), "mqtts is served");
        let ws = "listeners:\n  - {name: w, protocol: ws, address: '127.0.0.1:80'}\n";
        let ws = Config::from_yaml_str(&format!("{MINIMAL}{ws}")).expect("config");
        assert!(Overrides::default().resolve_with_env(ws, env()).is_ok(), "ws is served");
    }
}
