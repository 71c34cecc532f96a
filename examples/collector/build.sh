#!/usr/bin/env bash
# Builds the collector with the OpenTelemetry Collector Builder (ocb) from
# examples/collector/builder-config.yaml the way a user without a clone does:
#   1. the C library is installed on the build host: `make install PREFIX=build/prefix`;
#   2. the extension comes from its Go module by version: this tree's modules are packed into
#      a file-based module proxy (build/goproxy, packaging/modproxy) that stands in for the
#      tagged release, and ocb resolves them through GOPROXY=file://...,<your GOPROXY> with
#      GONOSUMDB for our module path only;
#   3. ocb builds both link modes:
#        dist/otelcol-certstore         links libcertstore.so.1 (rpath build/prefix/lib, so it
#                                       runs from this tree; elsewhere install the library)
#        dist/otelcol-certstore-static  build_tags: certstore_static, needs only glibc
#
#   make collector      # runs `make build` first; or: bash examples/collector/build.sh
#
# ocb is installed at the pinned version into build/bin/ (not on your PATH) when missing.
set -euo pipefail

OCB_VERSION="${OCB_VERSION:-v0.165.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GO="${GO:-go}"
MAKE="${MAKE:-make}"
BIN_DIR="$ROOT/build/bin"
OCB="$BIN_DIR/ocb-$OCB_VERSION"
PREFIX="$ROOT/build/prefix"
PROXY="$ROOT/build/goproxy"
WORK="$ROOT/build/collector"
CONFIG="$ROOT/examples/collector/builder-config.yaml"
MODULE_ROOT=github.com/certstore-dev/certstore
EXTENSION_MODULE=$MODULE_ROOT/go-bindings/certstoreextension

die() { echo "build.sh: $*" >&2; exit 1; }

[[ -f "$ROOT/build/lib/libcertstore.a" ]] || die "the library is not built: run 'make build' first (or use 'make collector')"
command -v "$GO" >/dev/null || die "Go is not installed (collector $OCB_VERSION needs Go >= 1.26)"
command -v pkg-config >/dev/null || die "pkg-config is not installed (apt-get install pkg-config)"

# The Go modules are released at the crate's version (one version for the library and its
# bindings); the manifest must ask for that version.
version="v$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n 1)"
grep -q "gomod: $EXTENSION_MODULE $version\$" "$CONFIG" ||
	die "$CONFIG must name '$EXTENSION_MODULE $version' (the version in Cargo.toml)"

if [[ ! -x "$OCB" ]]; then
	echo "build.sh: installing ocb $OCB_VERSION into $BIN_DIR"
	mkdir -p "$BIN_DIR"
	tmp="$(mktemp -d)"
	GOBIN="$tmp" "$GO" install "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION"
	mv "$tmp/builder" "$OCB"
	rmdir "$tmp"
fi

# One build at a time per tree: a second one would remove the prefix, the proxy and the
# module cache entries under the first one's feet.
mkdir -p "$ROOT/build"
exec 9>"$ROOT/build/.collector.lock"
flock 9

start=$SECONDS
echo "build.sh: installing libcertstore into $PREFIX"
rm -rf "$PREFIX"
"$MAKE" -s -C "$ROOT" install PREFIX="$PREFIX" DESTDIR=

echo "build.sh: packing the Go modules at $version into $PROXY"
rm -rf "$PROXY"
(cd "$ROOT/packaging/modproxy" && "$GO" build -o "$BIN_DIR/modproxy" .)
"$BIN_DIR/modproxy" -out "$PROXY" -version "$version" \
	"$ROOT/go-bindings/certstore" "$ROOT/go-bindings/certstoreextension"

# The module cache keeps the first copy of a version forever; ours is re-packed from the
# working tree on every build, so drop our own modules (only those) from the cache.
modcache="$("$GO" env GOMODCACHE)"
for dir in "$modcache/$MODULE_ROOT/go-bindings" "$modcache/cache/download/$MODULE_ROOT/go-bindings"; do
	if [[ -d "$dir" ]]; then
		chmod -R u+w "$dir"
		rm -rf "$dir"
	fi
done

# The go command also keeps an index of each module version's files in its build cache, keyed
# by path and version only: a re-packed version with new files would be read through the old
# index (files missing). Read our modules' files directly.
export GODEBUG="${GODEBUG:+$GODEBUG,}goindex=0"
export GOPROXY="file://$PROXY,$("$GO" env GOPROXY)"
export GONOSUMDB="$MODULE_ROOT"
export GOWORK=off
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
# The go command's build cache does not see pkg-config's output or the installed header (see
# the Makefile's CGO_ID): an ID of both in CGO_CFLAGS makes a changed install rebuild the
# cgo package instead of reusing one compiled against another prefix or header.
CGO_CFLAGS="-O2 -g -DCERTSTORE_CGO_ID=$(cat "$PREFIX/include/certstore.h" "$PREFIX"/lib/pkgconfig/*.pc | sha256sum | cut -c1-16)"
export CGO_CFLAGS

# build MODE NAME: runs ocb on a copy of builder-config.yaml with its own output path (and,
# for the static mode, the build tag the manifest's comment shows).
build() {
	local mode=$1 name=$2 dir="$WORK/$1"
	rm -rf "$dir" && mkdir -p "$dir"
	sed -e "s|^  output_path: .*|  output_path: $dir/src|" "$CONFIG" >"$dir/builder-config.yaml"
	if [[ $mode == static ]]; then
		sed -i -e 's|^  # build_tags: certstore_static$|  build_tags: certstore_static|' "$dir/builder-config.yaml"
		grep -q '^  build_tags: certstore_static$' "$dir/builder-config.yaml" ||
			die "$CONFIG: the '# build_tags: certstore_static' line the static build enables is missing"
	fi
	local t=$SECONDS
	echo "build.sh: ocb $OCB_VERSION, $mode link -> dist/$name"
	(cd "$dir" && "$OCB" --config builder-config.yaml >"$dir/ocb.log" 2>&1) || {
		tail -n 40 "$dir/ocb.log" >&2
		die "ocb failed ($mode link); full log: $dir/ocb.log"
	}
	mkdir -p "$ROOT/dist"
	install -m 0755 "$dir/src/otelcol-certstore" "$ROOT/dist/$name"
	echo "build.sh: built dist/$name in $((SECONDS - t))s"
}

# The shared build finds libcertstore.so.1 in build/prefix at run time, as a collector
# deployed next to an installed library finds it in /usr/local/lib.
CGO_LDFLAGS="-Wl,-rpath,$PREFIX/lib" build shared otelcol-certstore
build static otelcol-certstore-static

echo "build.sh: done in $((SECONDS - start))s"
"$ROOT/dist/otelcol-certstore" --version
"$ROOT/dist/otelcol-certstore-static" --version
