#!/usr/bin/env bash
# `make image`: the broker and operator container images, built without pulling any base image.
#
# Each image is a minimal root filesystem assembled here: the stripped release binary in
# /usr/local/bin, exactly the shared libraries it links (found with ldd: glibc, libgcc_s, zlib),
# /etc/passwd and /etc/group with the non-root user 65532 (the uid the operator and chart run
# as), CA certificates, an empty /tmp, and the Debian copyright files of those libraries. No
# shell, no package manager, no build tool. buildah commits it from `scratch` into podman's
# local store as localhost/tributary-broker:VERSION and localhost/tributary-operator:VERSION
# (VERSION = the workspace version) and writes OCI archives to target/images/, which
# `skopeo copy oci-archive:FILE docker://REGISTRY/NAME:VERSION` pushes.
#
# Reuses the release build of `make run` (target/release). Runs as root (as on the development
# machines and CI); the tools come from scripts/ensure-podman.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
"$root/scripts/ensure-podman.sh"

version="$("$root/scripts/version.sh")"
[[ -n "$version" ]] || { echo "error: could not read the workspace version" >&2; exit 1; }
target="${CARGO_TARGET_DIR:-$root/target}"
out="$root/target/images"
mkdir -p "$out"
# File times and the image creation date are the last commit's: same sources, same layers.
epoch="$(git log -1 --format=%ct 2>/dev/null || date +%s)"

start=$(date +%s)
cargo build --release --locked -p tributary-broker -p tributary-operator
echo "release build: $(( $(date +%s) - start ))s" >&2

ctr=""
trap '[[ -z "$ctr" ]] || buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT

# rootfs DIR BINARY: the minimal root filesystem for one binary.
rootfs() {
  local dir="$1" bin="$2" lib real pkgs=()
  rm -rf "$dir"
  mkdir -p "$dir"/{usr/local/bin,etc/ssl/certs,tmp,home/nonroot,usr/share/doc}
  install -m 0755 "$bin" "$dir/usr/local/bin/"
  strip --strip-unneeded "$dir/usr/local/bin/$(basename "$bin")"
  # Every library the dynamic loader resolves, plus the loader itself, at the paths ldd reports.
  while read -r lib; do
    [[ -n "$lib" ]] || continue
    real="$(readlink -f "$lib")"
    mkdir -p "$dir$(dirname "$lib")"
    cp "$real" "$dir$lib"
    pkgs+=("$({ dpkg -S "$lib" 2>/dev/null || dpkg -S "$real" 2>/dev/null || true; } | head -n1 | cut -d: -f1)")
  done < <(ldd "$bin" | grep -oE '/[^ ]+\.so[^ ]*')
  if ldd "$bin" | grep -q 'not found'; then
    echo "error: $bin links a library that is not installed:" >&2; ldd "$bin" >&2; exit 1
  fi
  # The licences of what was copied (glibc's LGPL, libgcc's GPL exception, zlib).
  for p in $(printf '%s\n' "${pkgs[@]}" | sort -u); do
    if [[ -f "/usr/share/doc/$p/copyright" ]]; then
      install -D -m 0644 "/usr/share/doc/$p/copyright" "$dir/usr/share/doc/$p/copyright"
    fi
  done
  cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$dir/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$dir/etc/nsswitch.conf"
  chmod 1777 "$dir/tmp"
  chown 65532:65532 "$dir/home/nonroot"
}

# image NAME DESCRIPTION [buildah config args...]
image() {
  local name="$1" description="$2"; shift 2
  local ref="localhost/$name:$version" dir="$out/rootfs-$name" old new
  rootfs "$dir" "$target/release/$name"
  # One layer: a tar keeps modes and owners (65532 for /home/nonroot, 1777 for /tmp).
  tar --numeric-owner -C "$dir" -cf "$dir.tar" .
  old="$(podman image inspect --format '{{.Id}}' "$ref" 2>/dev/null || true)"
  ctr="$(buildah from --quiet scratch)"
  buildah add --quiet "$ctr" "$dir.tar" / >/dev/null
  buildah config --os linux --arch "$(dpkg --print-architecture)" --user 65532:65532 --workingdir /home/nonroot \
    --env PATH=/usr/local/bin --entrypoint "[\"/usr/local/bin/$name\"]" \
    --label org.opencontainers.image.title="$name" \
    --label org.opencontainers.image.description="$description" \
    --label org.opencontainers.image.version="$version" \
    --label org.opencontainers.image.licenses=Apache-2.0 \
    --label org.opencontainers.image.revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    "$@" "$ctr"
  buildah commit --quiet --format oci --timestamp "$epoch" --rm "$ctr" "$ref" >/dev/null
  ctr=""
  new="$(podman image inspect --format '{{.Id}}' "$ref")"
  # The image this build replaced, if nothing else uses it.
  [[ -n "$old" && "$old" != "$new" ]] && podman rmi "$old" >/dev/null 2>&1 || true
  rm -f "$out/$name-$version.oci.tar"
  skopeo copy --quiet "containers-storage:$ref" "oci-archive:$out/$name-$version.oci.tar:$ref" \
    2> >(grep -v 'using prior storage driver' >&2)
  rm -rf "$dir" "$dir.tar"
  printf '%-45s %6s MiB uncompressed, archive %s\n' "$ref" \
    "$(( $(podman image inspect --format '{{.Size}}' "$ref") / 1048576 ))" "target/images/$name-$version.oci.tar"
}

image tributary-broker "Tributary, a Kafka-native MQTT broker" --port 1883 --port 9090
image tributary-operator "Tributary's Kubernetes operator (MqttBroker CRD)"
echo "make image: $(( $(date +%s) - start ))s" >&2
