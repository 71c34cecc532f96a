#!/usr/bin/env bash
# Builds the collector image from packaging/Containerfile: assembles build/image-rootfs from
# dist/otelcol-certstore-static (make collector), the runtime libraries ldd resolves for it,
# /etc/passwd and /etc/group with the non-root user 65532, and the example config, then runs
# `podman build` (CONTAINER_TOOL=docker works the same).
#   bash packaging/build-image.sh [IMAGE]     # default localhost/otelcol-certstore:<version>
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n 1)"
IMAGE="${1:-localhost/otelcol-certstore:$VERSION}"
TOOL="${CONTAINER_TOOL:-podman}"
BIN="$ROOT/dist/otelcol-certstore-static"
ROOTFS="$ROOT/build/image-rootfs"

[[ -x "$BIN" ]] || { echo "build-image.sh: $BIN not found: run 'make collector' first" >&2; exit 1; }
if ldd "$BIN" | grep -q libcertstore; then
	echo "build-image.sh: $BIN loads libcertstore at run time; the image takes the static build" >&2
	exit 1
fi

rm -rf "$ROOTFS"
mkdir -p "$ROOTFS/usr/bin" "$ROOTFS/etc/otelcol" "$ROOTFS/tmp" "$ROOTFS/certs"
chmod 1777 "$ROOTFS/tmp"
install -m 0755 "$BIN" "$ROOTFS/usr/bin/otelcol-certstore"
install -m 0644 "$ROOT/examples/collector/config.yaml" "$ROOTFS/etc/otelcol/config.yaml"

# Each library at the path the loader resolved on this host (the loader itself included), so
# the binary finds them in the image exactly as it does here.
ldd "$BIN" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
	mkdir -p "$ROOTFS$(dirname "$lib")"
	cp -L "$lib" "$ROOTFS$lib"
done

printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
	'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$ROOTFS/etc/passwd"
printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' >"$ROOTFS/etc/group"
echo 'hosts: files dns' >"$ROOTFS/etc/nsswitch.conf"

if [[ "$TOOL" == podman ]]; then
	# podman's defaults fail in some sandboxes (crun on hybrid cgroups, default ulimits):
	# see tests/container/containers.conf.
	export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/tests/container/containers.conf}"
	set -- --runtime runc --cgroup-manager=cgroupfs
else
	set --
fi
"$TOOL" "$@" build --quiet --file "$ROOT/packaging/Containerfile" --tag "$IMAGE" \
	--label "org.opencontainers.image.version=$VERSION" "$ROOTFS" >/dev/null
echo "build-image.sh: built $IMAGE ($(du -sh "$ROOTFS" | cut -f1) uncompressed)"
"$TOOL" "$@" image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$IMAGE"
