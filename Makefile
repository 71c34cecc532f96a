# certstore — build, install, test, bench, demo, image. `make test` is what CI runs.
SHELL := /bin/bash
CARGO ?= cargo
GO ?= go
CC ?= gcc
PODMAN ?= podman

# Where `make install` puts the library (GNU conventions); DESTDIR stages an install for a
# package build: `make install DESTDIR=$PWD/stage PREFIX=/usr`.
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR ?=

RELEASE_DIR := $(or $(CARGO_TARGET_DIR),target)/release
# The library's version is the crate's ([workspace.package] in Cargo.toml). Its SONAME is
# libcertstore.so.<ABI version>: crates/certstore-ffi/src/abi.rs sets it (build.rs) and the
# header carries it as CERTSTORE_ABI_VERSION; `make build` checks the built library's SONAME
# against the header. The installed file is libcertstore.so.<ABI version>.<version>.
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n 1)
ABI_VERSION := $(shell sed -n 's/^\#define CERTSTORE_ABI_VERSION \([0-9]*\)$$/\1/p' include/certstore.h)
SONAME := libcertstore.so.$(ABI_VERSION)
# What a static link needs besides libcertstore.a (`rustc --print native-static-libs`).
NATIVE_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl
PC_IN := crates/certstore-ffi/certstore.pc.in

# The uninstalled library: build/lib holds exactly what `make install` installs and
# build/pkgconfig the .pc files pointing into the tree, so the Go package, the tests and the
# examples link through pkg-config as an installed user's program does.
LIB_DIR := $(CURDIR)/build/lib
PC_DIR := $(CURDIR)/build/pkgconfig
# Go through the uninstalled .pc; the shared library (the default link) is found at run time
# through LD_LIBRARY_PATH. The go command's build cache keys a cgo package on its #cgo lines
# and CGO_* variables, not on what pkg-config printed nor on headers outside the package: a
# package compiled against another tree's paths or an older certstore.h would be reused.
# CGO_CFLAGS carries an ID of the tree and the header so that such a change rebuilds it.
CGO_ID := $(shell { echo $(CURDIR); cat include/certstore.h $(PC_IN); } | sha256sum | cut -c1-16)
GO_ENV := PKG_CONFIG_PATH=$(PC_DIR) LD_LIBRARY_PATH=$(LIB_DIR) CGO_CFLAGS="-O2 -g -DCERTSTORE_CGO_ID=$(CGO_ID)"
# go-bindings is a workspace of two modules (go.work); `./...` does not span modules there.
GO_PKGS := ./certstore/... ./certstoreextension/...
# mdatagen, pinned in go-bindings/certstoreextension/internal/tools/go.mod, writes the
# extension's generated status, telemetry, tests and documentation from its metadata.yaml.
MDATAGEN := build/bin/mdatagen
IMAGE ?= localhost/otelcol-certstore:$(VERSION)

.PHONY: all build install uninstall header header-check setup check-prereqs test test-rules test-rust test-c test-go lint generate \
        bench bench-rust bench-go soak fuzz fuzz-short collector e2e image e2e-container demo \
        example-c clean

all: build

# $(call write_pc,FILE,NAME,LIBS,LIBS_PRIVATE,PREFIX,LIBDIR,INCLUDEDIR)
define write_pc
sed -e 's|@NAME@|$(2)|' -e 's|@LIBS@|$(3)|' -e 's|@LIBS_PRIVATE@|$(4)|' -e 's|@PREFIX@|$(5)|' \
    -e 's|@LIBDIR@|$(6)|' -e 's|@INCLUDEDIR@|$(7)|' -e 's|@VERSION@|$(VERSION)|' \
    -e '/^#/d' $(PC_IN) > $(1)
endef
# certstore: the shared library (Libs.private for `pkg-config --static`); certstore-static:
# always libcertstore.a, which a plain -lcertstore would not pick when the .so is beside it.
define write_pcs
$(call write_pc,$(1)/certstore.pc,certstore,-lcertstore,$(NATIVE_LIBS),$(2),$(3),$(4))
$(call write_pc,$(1)/certstore-static.pc,certstore-static,-l:libcertstore.a $(NATIVE_LIBS),,$(2),$(3),$(4))
endef

# Release artefacts are stripped (Cargo.toml [profile.release]); the static archive also
# carries the debug info of the C parts (aws-lc) and of std, removed here. `install -C`
# replaces a file only when it changed, and by a new inode: a running program that has the old
# library mapped is never written into.
build:
	$(CARGO) build --release -p certstore-ffi
	$(CARGO) build --release -p certstore-cli   # target/release/certstore; its own run keeps tls12 out of the library
	mkdir -p $(LIB_DIR) $(PC_DIR)
	set -e; soname=$$(objdump -p $(RELEASE_DIR)/libcertstore.so | awk '$$1 == "SONAME" {print $$2}'); \
	  test "$$soname" = $(SONAME) || { echo "build: $(RELEASE_DIR)/libcertstore.so has SONAME '$$soname' but include/certstore.h says CERTSTORE_ABI_VERSION $(ABI_VERSION) ($(SONAME)): run make header" >&2; exit 1; }; \
	  real=$$soname.$(VERSION); \
	  find $(LIB_DIR) -name 'libcertstore.so*' ! -name "$$real" -delete; \
	  install -C -m 0755 $(RELEASE_DIR)/libcertstore.so $(LIB_DIR)/$$real; \
	  ln -sfn $$real $(LIB_DIR)/$$soname; ln -sfn $$soname $(LIB_DIR)/libcertstore.so
	strip --strip-debug -o $(LIB_DIR)/libcertstore.a.tmp $(RELEASE_DIR)/libcertstore.a
	install -C -m 0644 $(LIB_DIR)/libcertstore.a.tmp $(LIB_DIR)/libcertstore.a && rm $(LIB_DIR)/libcertstore.a.tmp
	$(call write_pcs,$(PC_DIR),$(CURDIR)/build,$(LIB_DIR),$(CURDIR)/include)

install:
	@test -f $(LIB_DIR)/libcertstore.a || { echo "make install: run 'make build' first" >&2; exit 1; }
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	set -e; cd $(LIB_DIR); real=$$(find . -name '$(SONAME).*' -printf '%f'); \
	  soname=$$(readlink libcertstore.so); \
	  install -m 0755 $$real $(DESTDIR)$(LIBDIR)/$$real; \
	  ln -sfn $$real $(DESTDIR)$(LIBDIR)/$$soname; ln -sfn $$soname $(DESTDIR)$(LIBDIR)/libcertstore.so
	install -m 0644 $(LIB_DIR)/libcertstore.a $(DESTDIR)$(LIBDIR)/libcertstore.a
	install -m 0644 include/certstore.h $(DESTDIR)$(INCLUDEDIR)/certstore.h
	$(call write_pcs,$(DESTDIR)$(PKGCONFIGDIR),$(PREFIX),$(LIBDIR),$(INCLUDEDIR))

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libcertstore.so $(DESTDIR)$(LIBDIR)/libcertstore.so.* \
	  $(DESTDIR)$(LIBDIR)/libcertstore.a $(DESTDIR)$(INCLUDEDIR)/certstore.h \
	  $(DESTDIR)$(PKGCONFIGDIR)/certstore.pc $(DESTDIR)$(PKGCONFIGDIR)/certstore-static.pc

# Regenerate include/certstore.h with cbindgen (the header test compares it otherwise).
header:
	CERTSTORE_BLESS_HEADER=1 $(CARGO) test -q -p certstore-ffi --test header

header-check:
	$(CARGO) test -q -p certstore-ffi --test header

# Everything `make test` needs is listed once, in tests/setup.sh: `make setup` installs it
# (Debian packages through apt-get, as root or with sudo; rustfmt, clippy; the pinned
# cargo-fuzz), and `make test` first checks it, so that a missing tool stops the run in
# seconds, named, with the command that installs it, not minutes later in the middle.
setup:
	bash tests/setup.sh

check-prereqs:
	@bash tests/setup.sh --check

# check-prereqs first: make runs a target's prerequisites in order (without -j).
test: check-prereqs lint test-rules test-rust fuzz-short test-c test-go e2e e2e-container

# The alert rules (deploy/prometheus): syntax, promtool unit tests, the PrometheusRule form
# generated from the rules file; the Grafana dashboard queries only metrics of metadata.yaml.
test-rules:
	promtool check rules deploy/prometheus/certstore.rules.yaml
	promtool test rules deploy/prometheus/tests/*.yaml
	bash deploy/prometheus/generate.sh --check
	bash deploy/grafana/check.sh

test-rust:
	$(CARGO) test --workspace

lint: $(MDATAGEN)
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	test -z "$$(gofmt -l go-bindings packaging tests/container)" || { gofmt -l go-bindings packaging tests/container; exit 1; }
	cd packaging/modproxy && $(GO) vet ./...
	$(MAKE) build
	cd go-bindings && $(GO_ENV) $(GO) vet $(GO_PKGS)
	cd go-bindings && $(GO_ENV) $(GO) vet -tags certstore_static $(GO_PKGS)
	cd go-bindings && CGO_ENABLED=0 $(GO) vet $(GO_PKGS)
	bash go-bindings/certstoreextension/internal/tools/check-generated.sh $(MDATAGEN)

$(MDATAGEN): go-bindings/certstoreextension/internal/tools/go.mod
	cd go-bindings/certstoreextension/internal/tools && GOWORK=off $(GO) build -o $(CURDIR)/$(MDATAGEN) go.opentelemetry.io/collector/cmd/mdatagen

generate: $(MDATAGEN)
	cd go-bindings/certstoreextension && PATH="$(CURDIR)/build/bin:$$PATH" $(GO) generate .

# The C harness against an installed copy (DESTDIR staging, found through pkg-config with
# PKG_CONFIG_SYSROOT_DIR), linked to the shared and to the static library; and the frozen-v1
# program against it and against a library whose structs grew (feature abi-test-v2: a debug
# build, which reuses test-rust's dependencies instead of a second release build of them).
STAGE := $(CURDIR)/build/stage
ABI_V2_LIBDIR := $(CURDIR)/build/abi-v2
test-c: build
	rm -rf $(STAGE)
	$(MAKE) install DESTDIR=$(STAGE) PREFIX=/usr
	bash tests/c/check-install.sh $(STAGE) /usr $(VERSION)
	$(CARGO) build -p certstore-ffi --features abi-test-v2
	rm -rf $(ABI_V2_LIBDIR)
	install -D -m 0755 $(or $(CARGO_TARGET_DIR),target)/debug/libcertstore.so $(ABI_V2_LIBDIR)/$(SONAME)
	PKG_CONFIG_SYSROOT_DIR=$(STAGE) PKG_CONFIG_PATH= PKG_CONFIG_LIBDIR=$(STAGE)/usr/lib/pkgconfig \
	  $(MAKE) -C tests/c test ABI_V2_LIBDIR=$(ABI_V2_LIBDIR)
	$(MAKE) uninstall DESTDIR=$(STAGE) PREFIX=/usr
	@left=$$(find $(STAGE) ! -type d); test -z "$$left" || { echo "make uninstall left: $$left" >&2; exit 1; }
	$(MAKE) -C examples/c

example-c: build
	$(MAKE) -C examples/c

# -race with the shared library (the default link); the static link (the certstore_static
# tag) once more without -race; and without cgo, where both packages still build and the
# tests named *WithoutCgo check the error that says how to turn cgo on.
test-go: build
	cd go-bindings && $(GO_ENV) $(GO) test -race -count=1 $(GO_PKGS)
	cd go-bindings && $(GO_ENV) $(GO) test -count=1 -tags certstore_static ./certstore/...
	cd go-bindings && CGO_ENABLED=0 $(GO) build $(GO_PKGS)
	cd go-bindings && CGO_ENABLED=0 $(GO) test -count=1 -run WithoutCgo $(GO_PKGS)

bench: bench-rust bench-go soak

# 10,000 kubelet rotations against one store: RSS, descriptors and threads every 1,000 rotations
# (flat is the target) and the publish latency distribution.
soak:
	$(CARGO) bench -p certstore --bench soak

# The fuzz targets (crates/certstore/fuzz: validate, validate_der; cargo-fuzz on the stable
# compiler) from the generated seed corpus; the corpus they grow stays in build/fuzz/corpus for
# the next run. `make test` runs each briefly; `make fuzz` for FUZZ_SECONDS (10 minutes) each.
FUZZ_SECONDS ?= 600
FUZZ_SHORT_SECONDS ?= 45
fuzz:
	bash crates/certstore/fuzz/run.sh $(FUZZ_SECONDS)

fuzz-short:
	bash crates/certstore/fuzz/run.sh $(FUZZ_SHORT_SECONDS)

bench-rust:
	$(CARGO) bench -p certstore-ffi --bench get_current
	$(CARGO) bench -p certstore --bench rotation

bench-go: build
	cd go-bindings && $(GO_ENV) $(GO) test -run '^$$' -bench . -benchmem -count=1 ./certstore/

# Both link modes, built by ocb from gomod: (no path) through a local module proxy, against
# the library installed into build/prefix: dist/otelcol-certstore ($(SONAME)) and
# dist/otelcol-certstore-static.
collector: build
	bash examples/collector/build.sh

# The e2e against each collector build (and ldd: which libcertstore each one loads).
e2e: collector
	bash tests/e2e/run.sh

# The OCI image of the static collector (packaging/Containerfile), built from this machine's
# runtime libraries: no base image is pulled.
image: collector
	bash packaging/build-image.sh $(IMAGE)

# The image run with podman: Secret-like read-only mount rotated by the kubelet's own writer.
e2e-container: image
	bash tests/container/run.sh $(IMAGE)

demo: collector
	bash examples/demo.sh

clean:
	$(CARGO) clean
	rm -rf build dist
