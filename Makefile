# banger: see README.md. `make demo` sets up and runs the main job; `make test`
# installs what the tests need and runs every test.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null)
BUILT_AT ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -s -w -X banger/internal/buildinfo.Version=$(VERSION) -X banger/internal/buildinfo.Commit=$(COMMIT) -X banger/internal/buildinfo.BuiltAt=$(BUILT_AT)

.PHONY: all build deps demo test unit e2e bench clean nomad-driver

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/banger ./cmd/banger
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/bangerd ./cmd/bangerd
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/banger-agent ./cmd/banger-agent

# The Nomad task driver: its own module (nomad-driver/), so Nomad stays out
# of the main module's dependencies. Copy it into the Nomad client's plugin_dir.
nomad-driver:
	@mkdir -p $(BIN)
	cd nomad-driver && GOWORK=off $(GO) build -trimpath -o $(BIN)/banger-nomad-driver ./cmd/banger-nomad-driver

# System packages banger and its tests use (Debian/Ubuntu).
deps:
	scripts/install-deps.sh

demo: deps build
	scripts/demo.sh

test: deps build
	scripts/test.sh

unit: build
	$(GO) test -count=1 -short ./...

e2e: build
	$(GO) test -count=1 -timeout 60m ./test/e2e/...

bench: deps build
	scripts/bench.sh

clean:
	rm -rf $(BIN)
