//! Every broker.yaml the operator renders (fixtures and all examples) is accepted by the
//! broker's own configuration parser: the contract of docs/config-contract.md, checked against
//! its implementation rather than a copy.

mod common;

use tributary_broker::config::Config;
use tributary_operator::desired::children;
use tributary_operator::desired::configmap::broker_config;

#[test]
fn rendered_broker_yaml_is_accepted_by_the_broker() {
    let specs = common::all_specs();
    assert!(specs.len() >= 7);
    for (origin, spec) in specs {
        let rendered = children(&common::broker("contract", spec), "img").expect("renders");
        let data = rendered.config_map.data.expect("ConfigMap data");
        let yaml = &data["broker.yaml"];
        if let Err(e) = Config::from_yaml_str(yaml) {
            panic!("{origin}: the broker rejects the rendered config: {e}\n{yaml}");
        }
    }
}

#[test]
fn rendered_broker_yaml_parses_back_to_the_rendered_config() {
    for (origin, spec) in common::all_specs() {
        let rendered = children(&common::broker("contract", spec.clone()), "img").expect("renders");
        let data = rendered.config_map.data.expect("ConfigMap data");
        let parsed = Config::from_yaml_str(&data["broker.yaml"]).expect("the broker accepts it");
        assert_eq!(parsed, broker_config(&spec), "{origin}: the YAML and the rendered Config differ");
    }
}
