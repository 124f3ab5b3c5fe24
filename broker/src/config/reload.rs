//! Which sections a running broker applies live and which need a restart. The broker's reload
//! loop and the operator's restart hash (a pod-template annotation whose change rolls the
//! pods) both decide with [`Config::restart_relevant`], so they agree by construction.

use super::{Authorization, Config, Rebalance, Topics};

impl Config {
    /// This configuration with the sections applied at run time (`topics.mappings`,
    /// `topics.default`, `authorization` and `rebalance`) reset to their defaults. Two configurations whose
    /// `restart_relevant()` are equal differ only in hot sections: a running broker takes the
    /// new one without a restart.
    pub fn restart_relevant(&self) -> Config {
        let neutral = Topics::default();
        let mut config = self.clone();
        config.topics.mappings = neutral.mappings;
        config.topics.default = neutral.default;
        config.authorization = Authorization::default();
        config.rebalance = Rebalance::default();
        config
    }

    /// Names of the sections (top-level keys, and the keys of `topics`) that differ between
    /// `self` and `other`, in file order. For logging; which of them need a restart is
    /// [`restart_relevant`](Self::restart_relevant)'s decision.
    pub fn changed_sections(&self, other: &Config) -> Vec<&'static str> {
        // Destructured so that a new field fails to compile here until it is listed.
        let Config {
            listeners,
            admin,
            kafka,
            topics,
            limits,
            authentication,
            authorization,
            logging,
            tracing,
            rebalance,
        } = self;
        let Topics { mappings, default, retained, sessions, partitions, replication_factor } = topics;
        let t = &other.topics;
        [
            ("listeners", *listeners != other.listeners),
            ("admin", *admin != other.admin),
            ("kafka", *kafka != other.kafka),
            ("topics.mappings", *mappings != t.mappings),
            ("topics.default", *default != t.default),
            ("topics.retained", *retained != t.retained),
            ("topics.sessions", *sessions != t.sessions),
            ("topics.partitions", *partitions != t.partitions),
            ("topics.replicationFactor", *replication_factor != t.replication_factor),
            ("limits", *limits != other.limits),
            ("authentication", *authentication != other.authentication),
            ("authorization", *authorization != other.authorization),
            ("logging", *logging != other.logging),
            ("tracing", *tracing != other.tracing),
            ("rebalance", *rebalance != other.rebalance),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::config_with as config;

    #[test]
    fn hot_sections_are_reset_and_nothing_else() {
        let base = config("");
        let hot = config(
            "topics:\n  default: other\n  mappings:\n    - {kafkaTopic: cars, mqttTopics: ['cars/#']}\nauthorization: {defaultEffect: deny}\nrebalance: {enabled: true}\n",
        );
        assert_ne!(hot, base);
        assert_eq!(hot.restart_relevant(), base.restart_relevant());
        assert_eq!(base.changed_sections(&hot), ["topics.mappings", "topics.default", "authorization", "rebalance"]);

        let cold = config("topics: {retained: r2}\nlimits: {maxInflight: 4}\n");
        assert_ne!(cold.restart_relevant(), base.restart_relevant());
        assert_eq!(base.restart_relevant().changed_sections(&cold.restart_relevant()), ["topics.retained", "limits"]);
    }
}
