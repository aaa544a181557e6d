# s3clone: `make demo` shows a real clone on local servers; `make test` runs every test.
# Tools are installed into .tools/ at pinned versions; nothing is needed beyond Go and Node.js.

VERSITYGW_VERSION := v1.8.0
TOOLS             := $(CURDIR)/.tools
VERSITYGW         := $(TOOLS)/bin/versitygw
VERSITYGW_STAMP   := $(TOOLS)/versitygw-$(VERSITYGW_VERSION)
SQSD_MODULES      := test/sqsd/node_modules/.package-lock.json
TOXIPROXY_VERSION := v2.5.0
TOXIPROXY_STAMP   := $(TOOLS)/toxiproxy-$(TOXIPROXY_VERSION)
GO_TEST_FLAGS     ?= -race -count=1 -timeout 20m

.PHONY: all build tools bench-tools test demo bench clean fmt vet

all: build

build:
	go build -o bin/ ./cmd/planner ./cmd/worker

tools: $(VERSITYGW_STAMP) $(SQSD_MODULES)

$(VERSITYGW_STAMP):
	@echo "installing versitygw $(VERSITYGW_VERSION) (first build takes a couple of minutes)"
	GOBIN=$(TOOLS)/bin go install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)
	touch $@

# toxiproxy adds network latency for benchmarks (this kernel has no netem).
bench-tools: tools $(TOXIPROXY_STAMP)

$(TOXIPROXY_STAMP):
	GOBIN=$(TOOLS)/toxiproxy go install github.com/Shopify/toxiproxy/v2/cmd/server@$(TOXIPROXY_VERSION)
	touch $@

$(SQSD_MODULES): test/sqsd/package.json test/sqsd/package-lock.json
	cd test/sqsd && npm ci --no-audit --no-fund
	touch $@

test: tools
	go vet ./...
	go test $(GO_TEST_FLAGS) ./...

demo: tools build
	./scripts/demo.sh

# Benchmarks (speed and memory targets live here, not in timed tests).
# BENCH_FLAGS picks some: make bench BENCH_FLAGS='-bench Diff'
BENCH_FLAGS ?= -bench .
bench: bench-tools
	go test -run '^$$' $(BENCH_FLAGS) -benchtime 1x -timeout 60m ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin demo
