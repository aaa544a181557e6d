# s3clone: `make demo` shows a real clone on local servers; `make test` runs every test;
# `make deploy-check` creates the CloudFormation stack on moto and checks it (make test runs it too).
# Tools are installed into .tools/ at pinned versions; nothing is needed beyond Go and Node.js.

VERSITYGW_VERSION := v1.8.0
TOOLS             := $(CURDIR)/.tools
VERSITYGW         := $(TOOLS)/bin/versitygw
VERSITYGW_STAMP   := $(TOOLS)/versitygw-$(VERSITYGW_VERSION)
SQSD_MODULES      := test/sqsd/node_modules/.package-lock.json
TOXIPROXY_VERSION := v2.5.0
TOXIPROXY_STAMP   := $(TOOLS)/toxiproxy-$(TOXIPROXY_VERSION)
S5CMD_VERSION     := v2.3.0
S5CMD_STAMP       := $(TOOLS)/s5cmd-$(S5CMD_VERSION)
RCLONE_VERSION    := v1.76.0
RCLONE_STAMP      := $(TOOLS)/rclone-$(RCLONE_VERSION)
GO_TEST_FLAGS     ?= -race -count=1 -timeout 20m
# The toolchain every build and test uses (go1.26.8's standard library has
# known vulnerabilities; govulncheck below fails the build on the next one).
# The Go command fetches it through the module proxy on first use.
export GOTOOLCHAIN := go1.27.3
STATICCHECK_VERSION := v0.8.2
GOVULNCHECK_VERSION := v1.9.0
# The Go vulnerability database as a module: its OSV files are indexed into
# a local database, as govulncheck's online one cannot be reached here.
VULNDB_VERSION    := v0.0.0-20261105234957-e22db6528018
VULNDB            := $(TOOLS)/vulndb-$(VULNDB_VERSION)

.PHONY: all help build tools bench-tools lint test test-unit test-e2e deploy-check demo bench bench-scale clean fmt vet image

all: build

# make help lists the targets with a line of help (the "##" comments).
help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

# What --version prints: the checkout's tag or revision.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)

build: ## build bin/planner and bin/worker
	go build -ldflags "-X github.com/s3clone/s3clone/internal/cli.version=$(VERSION)" -o bin/ ./cmd/planner ./cmd/worker

tools: $(VERSITYGW_STAMP) $(SQSD_MODULES) ## install the local S3 and SQS servers, pinned, into .tools/ and test/sqsd/

$(VERSITYGW_STAMP):
	@echo "installing versitygw $(VERSITYGW_VERSION) (first build takes a couple of minutes)"
	GOBIN=$(TOOLS)/bin go install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)
	touch $@

# toxiproxy adds network latency for benchmarks (this kernel has no netem);
# s5cmd and rclone are the peers measured against (the aws CLI is preinstalled).
bench-tools: tools $(TOXIPROXY_STAMP) $(S5CMD_STAMP) $(RCLONE_STAMP) ## and toxiproxy, s5cmd and rclone for the benchmarks

# The module proxy cannot list s5cmd's versions, so go install refuses it;
# the module itself downloads, and builds from a writable copy.
$(S5CMD_STAMP):
	rm -rf $(TOOLS)/src/s5cmd && mkdir -p $(TOOLS)/src $(TOOLS)/peers
	cp -r "$$(go mod download -json github.com/peak/s5cmd/v2@$(S5CMD_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p')" $(TOOLS)/src/s5cmd
	chmod -R u+w $(TOOLS)/src/s5cmd
	cd $(TOOLS)/src/s5cmd && go build -mod=mod -o $(TOOLS)/peers/s5cmd .
	touch $@

$(RCLONE_STAMP):
	@echo "building rclone $(RCLONE_VERSION) (a few minutes)"
	GOBIN=$(TOOLS)/peers go install github.com/rclone/rclone@$(RCLONE_VERSION)
	touch $@

$(TOXIPROXY_STAMP):
	GOBIN=$(TOOLS)/toxiproxy go install github.com/Shopify/toxiproxy/v2/cmd/server@$(TOXIPROXY_VERSION)
	touch $@

$(SQSD_MODULES): test/sqsd/package.json test/sqsd/package-lock.json
	cd test/sqsd && npm ci --no-audit --no-fund
	touch $@

$(VULNDB)/index/db.json:
	rm -rf $(VULNDB) && mkdir -p $(TOOLS)
	go run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) -out $(VULNDB) \
	  -vulns "$$(go mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p')/data/osv"

# staticcheck, and govulncheck over the code and the toolchain's standard
# library: a known vulnerability reachable from s3clone fails the build.
lint: $(VULNDB)/index/db.json ## staticcheck and govulncheck, pinned
	go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	go run golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION) -db file://$(VULNDB) ./...

# Every integration test runs: with S3CLONE_REQUIRE_TESTBED set, a package
# whose servers cannot start fails instead of skipping. go test ./... includes
# deploy-check's tests (./test/stack), so make test runs them too.
test: tools lint ## every test against real local servers, lint, vet and cfn-lint (what CI runs)
	go vet ./...
	cfn-lint deploy/s3clone.yaml
	S3CLONE_REQUIRE_TESTBED=1 go test $(GO_TEST_FLAGS) ./...

# The unit tests alone: no server started, installed or not (every
# integration test skips), and not the packages that are only integration
# tests (test/e2e, test/bench, test/stack) or serve only them
# (test/testbed/stackbed, which would build the SDK's EC2, IAM,
# CloudWatch, SNS and EventBridge clients for nothing). go test's own vet
# is off: on an empty build cache it vets the standard library and every
# dependency for facts, about a tenth of the time; make vet (and make
# test) vets everything. Seconds once built.
test-unit: ## the unit tests alone: no servers, no tools
	S3CLONE_UNIT_ONLY=1 go test -count=1 -vet=off $$(go list ./... | grep -Ev '/test/(e2e|bench|stack|testbed/stackbed)$$')

# The end-to-end tests of the binaries against the local servers; one of
# them: make test-e2e RUN=TestCutover
RUN ?= .
test-e2e: tools ## the binaries end to end against the local servers (RUN=TestName for some)
	S3CLONE_REQUIRE_TESTBED=1 go test $(GO_TEST_FLAGS) -run '$(RUN)' ./test/e2e/

# The stack on moto (moto_server 5.2.1, preinstalled): deploy/s3clone.yaml is
# created from the embedded template in three variants of its parameters, every
# resource and output checked against moto's services, the fleet driven a
# little (desired count, suspended scale-in, the planner task, logs), the stack
# deleted and what it keeps checked; then the roles' credentials on a moto that
# enforces IAM; and the template read with goformation's resource types.
# Every test of test/stack. What moto does not do as AWS does is listed, and
# checked, in test/stack/moto_test.go (motoSkips, motoGaps); the test bed
# that makes the stack whole is test/testbed/stackbed. Fails, not skips,
# without moto.
deploy-check: ## create the CloudFormation stack on moto and check it
	S3CLONE_REQUIRE_TESTBED=1 go test -count=1 -v ./test/stack

demo: tools build ## a real clone on local servers, verified
	./scripts/demo.sh

# Benchmarks (speed and memory targets live here, not in timed tests).
# BENCH_FLAGS picks some: make bench BENCH_FLAGS='-bench Diff'
BENCH_FLAGS ?= -bench .
bench: bench-tools ## the benchmarks (BENCH_FLAGS='-bench Name' for some)
	go test -run '^$$' $(BENCH_FLAGS) -benchtime 1x -timeout 60m ./...

# The seed's bucket at its real size: a million objects behind 20 ms, seeded,
# cloned by a planner and two workers, diffed, cut over and verified (about
# 25 minutes on two cores; needs some 10 GB of disk). Results in bench/results/scale-*.md.
# Then, as root, an unchanged diff with the page cache warm and emptied
# (about 10 minutes more; bench/results/listing-cold-*.md). First, planner
# follow's window at 100,000 and at a million objects: seeded, followed from
# before the bulk copy while a writer changes 1% of the source, cut over
# with --follow and verified (about 20 minutes; bench/results/follow-*.md).
bench-scale: tools $(TOXIPROXY_STAMP) ## the seed's bucket at a million objects (about an hour)
	S3CLONE_BENCH_SCALE=1 go test -run '^$$' -bench '^Benchmark(FollowCutover|Scale|ListingCold)$$' -benchtime 1x -timeout 240m ./test/bench/

# The worker/planner image (needs a Docker engine): IMAGE=repo/s3clone:tag make image
# PLATFORM is the image's: the stack's tasks run X86_64 unless CpuArchitecture
# says ARM64 (then PLATFORM=linux/arm64). Without it an ARM laptop (Apple
# silicon, Graviton) builds an arm64 image, which an X86_64 task cannot run.
IMAGE ?= s3clone:dev
PLATFORM ?= linux/amd64
image: ## the worker/planner image (needs a Docker engine)
	docker build --platform $(PLATFORM) -f deploy/Dockerfile --build-arg VERSION=$(VERSION) -t $(IMAGE) .

vet: ## go vet ./... (make test runs it; make test-unit does not)
	go vet ./...

fmt: ## gofmt every Go file
	gofmt -w $$(git ls-files '*.go')

clean: ## remove bin/ and demo/
	rm -rf bin demo
