# Two commands for a newcomer: `make run` and `make test` (see README.md).
.PHONY: run demo test deps build lint fmt crds bench fuzz clean image image-test helm-test

CARGO ?= cargo

## Start a local Kafka (tansu) and one broker on 127.0.0.1:1883. Ctrl-C stops both.
run:
	./scripts/run-local.sh

## The fleet demo (README "Demo"): tansu, two brokers, the truck simulator, the stream job and the
## map UI; prints its URL. Ctrl-C stops everything.
demo:
	./scripts/demo.sh

## Install what is missing (mosquitto-clients, tansu, helm), then run every test of the workspace,
## including the end-to-end tests against a real Kafka-protocol server, and the Helm chart checks.
test: deps helm-test
	$(CARGO) build --workspace --bins
	TANSU_BIN="$$(./scripts/ensure-tansu.sh)" $(CARGO) test --workspace -- --test-threads=2

## Render the chart with real helm (default and charts/tributary/ci/*.yaml values) and the
## kustomization with kubectl; validate every object offline (Kubernetes schemas, CRD schema).
helm-test:
	./scripts/helm-test.sh

## Container images localhost/tributary-{broker,operator}:<version> in podman's store, and OCI
## archives in target/images/ (README.md, "Container images"). No base image is pulled.
image:
	./scripts/build-images.sh

## Build the images, push the archives to a local registry, run the broker image under podman
## against tansu with MQTT clients and the operator image's `crd` (run by CI after `make test`).
image-test: deps
	./scripts/image-test.sh

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

## Coverage-guided fuzzing of the codec, topic and config parsers (cargo-fuzz, installed into
## .tools/), FUZZ_SECONDS (default 60) per target; not part of `make test`, which only replays
## the committed corpus (fuzz/corpus/). Figures in BENCHMARKS.md ("Fuzzing").
fuzz:
	./scripts/fuzz.sh

clean:
	$(CARGO) clean
	rm -rf .run
