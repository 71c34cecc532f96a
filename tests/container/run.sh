#!/usr/bin/env bash
# The collector image end to end (make e2e-container; `make image` builds the image): runs it
# with podman, non-root, the certificate directory mounted read-only and rotated from outside
# by the kubelet's own atomic writer; the served serial must follow, no export may fail.
#   bash tests/container/run.sh [IMAGE] [-workdir DIR] [-rotations N]
# Prints "e2e-container: N passed, N failed"; stops by itself (hard limit 5 min).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GO="${GO:-go}"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n 1)"
IMAGE="localhost/otelcol-certstore:$VERSION"
if [[ $# -gt 0 && $1 != -* ]]; then IMAGE=$1; shift; fi
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/tests/container/containers.conf}"

if ! command -v podman >/dev/null; then
	echo "e2e-container: podman is not installed (apt-get install podman runc)" >&2
	echo "e2e-container: 0 passed, 1 failed"
	exit 2
fi

mkdir -p "$ROOT/build/e2e"
# k8s.io/kubernetes is a large module graph: the first build takes a few minutes.
(cd "$ROOT/tests/container" && "$GO" build -o "$ROOT/build/e2e/e2e-container" .)

# The container outlives a killed test program otherwise (it runs detached).
name="certstore-e2e-$$"
trap 'podman --runtime runc --cgroup-manager=cgroupfs rm --force --ignore "$name" >/dev/null 2>&1 || true' EXIT
rc=0
timeout --kill-after=10s 300s "$ROOT/build/e2e/e2e-container" -image "$IMAGE" -name "$name" "$@" || rc=$?
if [[ $rc -eq 124 || $rc -eq 137 ]]; then
	echo "e2e-container: timed out after 300s: 0 passed, 1 failed"
fi
exit $rc
