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

/// The examples users apply (`deploy/`, the chart's values) ask for nothing the broker refuses
/// to start with yet: `deploy/tls-acl.yaml`, with its `wss` listener, was refused until
/// WebSocket listeners were served.
#[test]
fn every_example_starts() {
    for (origin, spec) in common::all_specs().into_iter().filter(|(o, _)| o != "minimal" && o != "full") {
        if let Err(e) = broker_config(&spec).validate() {
            panic!("{origin}: the broker would refuse to start: {e}");
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
