# tasker-sim. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
GOLANGCI_VERSION := v2.15.0
GOBIN ?= $(shell $(GO) env GOPATH)/bin
GOLANGCI := $(GOBIN)/golangci-lint

.PHONY: help build test test-race lint fmt vet demo bench bench-throughput bench-floor bench-soak bench-telemetry docs clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## build bin/orchestrator, bin/worker and bin/taskerctl
	$(GO) build -o bin/ ./cmd/orchestrator ./cmd/worker ./cmd/taskerctl

test: vet ## run every test against real PostgreSQL (a throwaway local cluster, or TASKER_TEST_DATABASE_URL)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) test -count=1 -timeout 10m ./...

test-race: ## the tests under the race detector (slower)
	$(GO) test -count=1 -race -timeout 20m ./...

vet: ## go vet
	$(GO) vet ./...

lint: $(GOLANGCI) ## golangci-lint with the curated set in .golangci.yml
	$(GOLANGCI) run ./...

$(GOLANGCI):
	GOBIN=$(GOBIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)

fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')

demo: build ## throwaway Postgres + orchestrator + worker as processes, a burst of every shape, a summary
	@ENSURE_DEPS_URL_VARS="TASKER_DATABASE_URL TASKER_TEST_DATABASE_URL" bash scripts/ensure-deps.sh postgres
	bin/taskerctl demo

bench: build ## mathematical_sequence latency, create -> complete, over 200 sequential tasks
	bin/taskerctl bench --tasks 200

bench-throughput: build ## steps/s of a 2000-task burst against pgbench TPS on the same server (goal: ratio >= 0.5); ARGS adds flags
	bin/taskerctl bench throughput $(ARGS)

bench-floor: build ## steps/s and one task's time when pgbench writes a task's rows with no engine: what the goals can reach here; ARGS adds flags
	bin/taskerctl bench floor $(ARGS)

bench-soak: build ## database CPU per step at 1k and 100k finished tasks (goal: x <= 1.5), RSS growth over 10 min of load (goal: <= 20 %); ARGS adds flags
	bin/taskerctl bench soak $(ARGS)

bench-telemetry: ## throughput with telemetry off and on, reported as a ratio (goal: on/off >= 0.95)
	$(GO) test ./e2e -run '^$$' -bench TelemetryOverhead -benchtime 1x -timeout 20m

docs: ## regenerate docs/metrics.md and deploy/ (dashboards, alert rules) from the telemetry catalog (tests fail when stale)
	$(GO) run ./cmd/metricsdoc docs/metrics.md
	$(GO) run ./cmd/dashboards .

clean: ## remove build output
	rm -rf bin
