#!/usr/bin/env bash
# Installs what `make image` and `make image-test` need from Debian's packages, once: buildah
# (assembles the images), podman (runs them), skopeo (OCI archives, pushing), runc (the OCI
# runtime: crun refuses hosts with hybrid cgroups v1/v2, as on the development VMs),
# ca-certificates (copied into the images), binutils (strip) and docker-registry (a registry on
# 127.0.0.1 that image-test pushes the OCI archives to).
set -euo pipefail
declare -A pkg=([buildah]=buildah [podman]=podman [skopeo]=skopeo [runc]=runc [strip]=binutils
  [docker-registry]=docker-registry)
missing=()
for cmd in "${!pkg[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg[$cmd]}")
done
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "installing ${missing[*]} ..." >&2
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
    || { $SUDO apt-get update -qq >&2 && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; }
fi
