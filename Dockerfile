# Container images of Tributary built with cargo inside the build, for machines that can pull
# base images from Docker Hub (BuildKit or podman/buildah, for the cache mounts):
#
#   docker build --target broker   -t tributary-broker:0.1.0 .
#   docker build --target operator -t tributary-operator:0.1.0 .
#
# Both run as the non-root user 65532 (the uid the operator and the Helm chart run them as) with
# the binary as entrypoint: `docker run tributary-broker:0.1.0 --config /etc/tributary/broker.yaml`,
# `docker run tributary-operator:0.1.0 crd`. Without access to a registry of base images, `make image`
# builds equivalent, smaller images from this machine's own files (README.md, "Container images").

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# librdkafka is compiled in (rdkafka-sys); zlib comes from the image's zlib1g-dev.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p tributary-broker -p tributary-operator \
 && mkdir /out \
 && cp target/release/tributary-broker target/release/tributary-operator /out/ \
 && strip --strip-unneeded /out/*

# The runtime: Debian slim (glibc, libgcc, zlib) plus CA certificates; no compiler, no cargo.
FROM docker.io/library/debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --home-dir /home/nonroot --create-home --shell /usr/sbin/nologin nonroot
USER 65532:65532
WORKDIR /home/nonroot

FROM runtime AS operator
COPY --from=build /out/tributary-operator /usr/local/bin/tributary-operator
ENTRYPOINT ["/usr/local/bin/tributary-operator"]

# Last, so a plain `docker build .` gives the broker.
FROM runtime AS broker
COPY --from=build /out/tributary-broker /usr/local/bin/tributary-broker
EXPOSE 1883 9090
ENTRYPOINT ["/usr/local/bin/tributary-broker"]
