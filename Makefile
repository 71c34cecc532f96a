# certstore — build, test, bench, demo. `make test` is what CI runs.
SHELL := /bin/bash
CARGO ?= cargo
GO ?= go
CC ?= gcc
RELEASE_DIR := target/release
LIB_STATIC := $(RELEASE_DIR)/libcertstore.a
LIB_SHARED := $(RELEASE_DIR)/libcertstore.so
C_BUILD := build/c

.PHONY: all build header header-check test test-rust test-c test-go lint bench bench-rust bench-go \
        collector e2e demo example-c clean

all: build

build:
	$(CARGO) build --release -p certstore-ffi
	$(CARGO) build --release -p certstore-cli   # target/release/certstore; its own run keeps tls12 out of the library
	ln -sf libcertstore.so $(RELEASE_DIR)/libcertstore.so.0   # the SONAME the linker records

# Regenerate include/certstore.h with cbindgen (the header test compares it otherwise).
header:
	CERTSTORE_BLESS_HEADER=1 $(CARGO) test -q -p certstore-ffi --test header

header-check:
	$(CARGO) test -q -p certstore-ffi --test header

test: lint test-rust test-c test-go e2e

test-rust:
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cd go-bindings && test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }
	$(MAKE) build
	cd go-bindings && $(GO) vet ./...

test-c: build
	$(MAKE) -C tests/c test
	$(MAKE) -C examples/c

example-c: build
	$(MAKE) -C examples/c

test-go: build
	cd go-bindings && $(GO) test -race -count=1 ./...

bench: bench-rust bench-go

bench-rust:
	$(CARGO) bench -p certstore-ffi --bench get_current
	$(CARGO) bench -p certstore --bench rotation

bench-go: build
	cd go-bindings && $(GO) test -run '^$$' -bench . -benchmem -count=1 ./certstore/

collector: build
	bash examples/collector/build.sh

e2e: collector
	bash tests/e2e/run.sh

demo: collector
	bash examples/demo.sh

clean:
	$(CARGO) clean
	rm -rf build dist
