# Two commands for a newcomer: `make run` and `make test` (see README.md).
.PHONY: run test deps build lint fmt crds bench clean

CARGO ?= cargo

## Start a local Kafka (tansu) and one broker on 127.0.0.1:1883. Ctrl-C stops both.
run:
	./scripts/run-local.sh

## Install what is missing (mosquitto-clients, tansu), then run every test of the workspace,
## including the end-to-end tests against a real Kafka-protocol server.
test: deps
	$(CARGO) build --workspace --bins
	TANSU_BIN="$$(./scripts/ensure-tansu.sh)" $(CARGO) test --workspace -- --test-threads=2

deps:
	./scripts/install-deps.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Regenerate the CRD YAML from the Rust types.
crds:
	$(CARGO) run -q -p tributary-operator -- crd > crds/mqttbroker.yaml
	cp crds/mqttbroker.yaml charts/tributary/crds/mqttbroker.yaml
	cp crds/mqttbroker.yaml deploy/operator/crd.yaml

## Benchmarks (figures recorded in BENCHMARKS.md).
bench: deps
	./scripts/bench.sh

clean:
	$(CARGO) clean
	rm -rf .run
