#!/usr/bin/env bash
# What `make test` needs, in one list: `make setup` (this script) installs it, `make
# check-prereqs` (this script with --check, the first step of `make test`) names what is
# missing in a few seconds and prints the one command that installs it.
#
#   bash tests/setup.sh           install what is missing: Debian packages with apt-get (as root,
#                                 or through sudo), the rustfmt and clippy components, the
#                                 pinned cargo-fuzz
#   bash tests/setup.sh --check   only check; exit 1 naming each missing tool
#
# `make setup` runs exactly the first form; it is also the way in where make itself is missing.
# Go and Rust themselves are not installed here (Debian's are older than the project needs).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

CARGO_FUZZ_VERSION=0.13.2
# The minimum versions are the project's own declarations: go.work's `go` line and Cargo.toml's
# rust-version.
GO_MIN=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$ROOT/go-bindings/go.work")
RUST_MIN=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml")

# Commands from Debian packages (command -> package), and what needs them.
declare -A DEBIAN=(
	[gcc]=gcc                  # the C harness, the examples, cgo
	[make]=make
	[objdump]=binutils         # make build: the library's SONAME; tests/c/check-install.sh
	[strip]=binutils           # make build: libcertstore.a without debug info
	[pkg-config]=pkg-config    # the C harness and the Go package link through it
	[openssl]=openssl          # test fixtures, e2e certificates
	[valgrind]=valgrind        # make test-c
	[podman]=podman            # make image, make e2e-container (with --runtime runc)
	[runc]=runc
	[promtool]=prometheus      # the alert rules' unit tests
	[prometheus]=prometheus    # the e2e against a real Prometheus server
	[jq]=jq                    # make test-rules: the dashboard check
)

# "VERSION >= MIN" for dotted versions.
version_at_least() {
	[[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" == "$2" ]]
}

missing_tools=()      # "TOOL (Debian package PACKAGE)"
missing_packages=()   # the Debian packages that provide them
missing_rust=()       # what `make setup` installs through rustup and cargo
toolchain=()          # Go and Rust themselves: installed by hand

check() {
	missing_tools=() missing_packages=() missing_rust=() toolchain=()
	local tool
	for tool in $(printf '%s\n' "${!DEBIAN[@]}" | sort); do
		command -v "$tool" >/dev/null && continue
		missing_tools+=("$tool (Debian package ${DEBIAN[$tool]})")
		[[ " ${missing_packages[*]} " == *" ${DEBIAN[$tool]} "* ]] || missing_packages+=("${DEBIAN[$tool]}")
	done

	if ! command -v go >/dev/null; then
		toolchain+=("go: Go >= $GO_MIN is not on PATH (install it from https://go.dev/dl/)")
	else
		local go_version
		go_version=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
		version_at_least "${go_version:-0}" "$GO_MIN" ||
			toolchain+=("go: Go ${go_version:-of unknown version} is older than $GO_MIN (install it from https://go.dev/dl/)")
	fi
	if ! command -v cargo >/dev/null || ! command -v rustc >/dev/null; then
		toolchain+=("cargo: Rust >= $RUST_MIN is not on PATH (install it with rustup: https://rustup.rs)")
	else
		local rust_version
		rust_version=$(rustc --version | awk '{print $2}')
		version_at_least "$rust_version" "$RUST_MIN" ||
			toolchain+=("rustc: Rust $rust_version is older than $RUST_MIN (rustup update stable)")
		cargo fmt --version >/dev/null 2>&1 || missing_rust+=(rustfmt)
		cargo clippy --version >/dev/null 2>&1 || missing_rust+=(clippy)
		local fuzz_version
		fuzz_version=$(cargo fuzz --version 2>/dev/null | awk '{print $2}') || true
		[[ "$fuzz_version" == "$CARGO_FUZZ_VERSION" ]] ||
			missing_rust+=("cargo-fuzz $CARGO_FUZZ_VERSION${fuzz_version:+ (found $fuzz_version)}")
	fi
}

report() {
	local item
	for item in "${missing_tools[@]}" "${missing_rust[@]}"; do echo "missing: $item" >&2; done
	for item in "${toolchain[@]}"; do echo "missing: $item" >&2; done
}

if [[ "${1:-}" == --check ]]; then
	check
	if [[ ${#missing_packages[@]} -eq 0 && ${#missing_rust[@]} -eq 0 && ${#toolchain[@]} -eq 0 ]]; then
		exit 0
	fi
	report
	if [[ ${#missing_packages[@]} -gt 0 || ${#missing_rust[@]} -gt 0 ]]; then
		echo "check-prereqs: run 'make setup' to install what is missing${missing_packages:+ (it runs apt-get through sudo when not root)}" >&2
	fi
	if [[ ${#toolchain[@]} -gt 0 ]]; then
		echo "check-prereqs: Go and Rust themselves are installed by hand, as said above" >&2
	fi
	exit 1
elif [[ $# -gt 0 ]]; then
	echo "usage: bash tests/setup.sh [--check]" >&2
	exit 2
fi

start=$SECONDS
check
if [[ ${#missing_packages[@]} -gt 0 ]]; then
	if ! command -v apt-get >/dev/null; then
		report
		echo "setup: no apt-get here: install the packages above with the system's package manager" >&2
		exit 1
	fi
	sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null || {
			echo "setup: run as root: apt-get install -y ${missing_packages[*]}" >&2
			exit 1
		}
		sudo=(sudo)
	fi
	echo "setup: apt-get install ${missing_packages[*]}"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_packages[@]}" >/dev/null
fi
if command -v rustup >/dev/null; then
	# Quiet: the check below names anything that did not get installed.
	rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi
if command -v cargo >/dev/null; then
	fuzz_version=$(cargo fuzz --version 2>/dev/null | awk '{print $2}') || true
	if [[ "$fuzz_version" != "$CARGO_FUZZ_VERSION" ]]; then
		# From source (about 100 s of CPU); it builds with the stable compiler.
		echo "setup: cargo install cargo-fuzz $CARGO_FUZZ_VERSION"
		cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --force --quiet
	fi
fi
# ocb (the collector builder) is installed at its pinned version by examples/collector/build.sh.
check
if [[ ${#missing_packages[@]} -gt 0 || ${#missing_rust[@]} -gt 0 || ${#toolchain[@]} -gt 0 ]]; then
	report
	echo "setup: still missing after $((SECONDS - start))s (see above)" >&2
	exit 1
fi
echo "setup: everything make test needs is installed ($((SECONDS - start))s)"
