# Developer entry points; `make help` lists them. CI runs `make test` through .ci/run.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)

FUZZTIME ?= 10s
TEST_PG_DSN ?= postgres://adtracker:adtracker@127.0.0.1:$(or $(PG_PORT),5432)/adtracker?sslmode=disable
TEST_CH_ADDR ?= 127.0.0.1:$(or $(CH_TCP_PORT),9000)

.PHONY: help services down build run test vet fmt-check chdb-check compose-check bench lint fuzz chaos cluster cluster-check cluster-down

# Debian's nginx (in /usr/sbin, which a non-root PATH may lack): make test runs the cluster's nginx.conf with it, compose-check checks
# the file; apt_install keeps the packaged service from starting.
NEED_NGINX = command -v nginx >/dev/null || test -x /usr/sbin/nginx || bash -c 'source scripts/lib.sh && apt_install nginx-light'

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

services: ## start local Postgres and ClickHouse (installs them when missing)
	scripts/services.sh up

down: ## stop the local Postgres and ClickHouse started by `make services`, and the loopback cluster if it runs
	scripts/services.sh down
	scripts/cluster.sh down

build: ## build bin/adtracker
	go build -o bin/adtracker ./cmd/adtracker

# run: the binary gets the DSN and address of the servers `services` started (scripts/services.sh env), so with PG_PORT /
# CH_TCP_PORT set it migrates, seeds and writes into those, never into another server on the default ports.
run: services build ## migrate, seed and serve in the foreground against the local services (PG_PORT, CH_TCP_PORT, CH_HTTP_PORT move them)
	@eval "$$(scripts/services.sh env)"; export ADTRACKER_POSTGRES_DSN ADTRACKER_CLICKHOUSE_ADDR; \
		echo "postgres $$ADTRACKER_POSTGRES_DSN, clickhouse $$ADTRACKER_CLICKHOUSE_ADDR"; \
		bin/adtracker migrate --log-format console; \
		bin/adtracker seed --log-format console; \
		exec bin/adtracker serve --log-format console

vet: ## go vet ./...
	go vet ./...

fmt-check: ## fail listing the Go files gofmt would change
	@if git rev-parse --git-dir >/dev/null 2>&1; then src="$$(git ls-files -co --exclude-standard '*.go')"; \
	else src="$$(find . -name '*.go' -not -path './.*')"; fi; \
	files="$$(gofmt -l $$src)"; \
	if [ -n "$$files" ]; then echo "gofmt needed on:"; echo "$$files"; exit 1; fi

test: services cluster vet fmt-check lint ## vet, gofmt, golangci-lint, go test -race against the local services and the loopback cluster, chdb and compose checks
	@# promtool lints the /metrics output in server/full_test.go; apt_install keeps the packaged Prometheus from starting.
	@command -v promtool >/dev/null || bash -c 'source scripts/lib.sh && apt_install prometheus'
	@# jq: scripts/bench_report_test.go runs bench.sh --report, which reads the results with it.
	@command -v jq >/dev/null || bash -c 'source scripts/lib.sh && apt_install jq'
	@# Debian's chromium drives the dashboard's browser test (web/browser_test.go); no browser is downloaded at test time.
	@test -x /usr/bin/chromium || bash -c 'source scripts/lib.sh && apt_install chromium'
	@# The real web VAST client (npm, into .tools/vast-client) and ffmpeg, for cmd/adtracker/vast_*_test.go; quick when present.
	@scripts/vast-client/install.sh
	@# nginx runs the cluster's load balancer config in front of a test node (cmd/adtracker/nginx_e2e_test.go).
	@$(NEED_NGINX)
	@# systemd-analyze verifies deploy/systemd/adtracker.service (cmd/adtracker/systemd_test.go); no systemd needs to run.
	@command -v systemd-analyze >/dev/null || bash -c 'source scripts/lib.sh && apt_install systemd'
	ADTRACKER_TEST_PG_DSN='$(TEST_PG_DSN)' ADTRACKER_TEST_CH_ADDR='$(TEST_CH_ADDR)' ADTRACKER_REQUIRE_PROMTOOL=1 ADTRACKER_REQUIRE_CHROMIUM=1 ADTRACKER_REQUIRE_VAST_CLIENT=1 ADTRACKER_REQUIRE_NGINX=1 \
	ADTRACKER_TEST_CLUSTER_ADDRS="$$(scripts/cluster.sh env | sed -n 's/^CLUSTER_CH_ADDRS=//p')" \
		go test -race -count=1 -timeout 12m ./...
	scripts/chdb-check.sh
	$(MAKE) --no-print-directory compose-check

chdb-check: ## run migrations and shipped queries on a current ClickHouse engine (chdb)
	scripts/chdb-check.sh

compose-check: ## validate docker-compose.yml and the cluster's nginx.conf (installs Debian's docker-compose and nginx-light when missing)
	@command -v docker-compose >/dev/null || bash -c 'source scripts/lib.sh && apt_install docker-compose'
	docker-compose -f docker-compose.yml config -q
	docker-compose -f docker-compose.cluster.yml config -q
	@echo "docker-compose.yml and docker-compose.cluster.yml OK"
	@$(NEED_NGINX)
	@# The compose service names do not resolve here: nginx -t checks the file with the nodes at 127.0.0.1.
	@t=$$(mktemp -d) && sed 's/adtracker-[12]:8080/127.0.0.1:8080/' deploy/cluster/compose/nginx.conf >"$$t/nginx.conf" && \
		PATH="$$PATH:/usr/sbin" nginx -q -t -e stderr -p "$$t" -c "$$t/nginx.conf"; rc=$$?; rm -rf "$$t"; exit $$rc
	@echo "deploy/cluster/compose/nginx.conf OK (nginx -t)"

bench: ## benchmarks (scripts/bench.sh, then the cluster line: scripts/bench-cluster.sh) into BENCHMARKS.md, ~20 min (BENCH_QUICK=1: ~7)
	scripts/bench.sh
	scripts/bench-cluster.sh

lint: ## golangci-lint with .golangci.yml (installs v2.15.0 into .tools/bin on first use)
	scripts/lint.sh

fuzz: ## run every fuzz target for FUZZTIME each (default 10s; scripts/fuzz.sh)
	scripts/fuzz.sh $(FUZZTIME)

SOAK ?=
chaos: services ## fault-injection suite (≤15 min): ClickHouse killed/frozen/committing late, SIGTERM/SIGKILL, quotas, Postgres down, disk full, corrupt spill, hostile clients and bodies, network faults on both sides (Toxiproxy), slow reads; SOAK=10m soaks
	ADTRACKER_TEST_PG_DSN='$(TEST_PG_DSN)' ADTRACKER_TEST_CH_ADDR='$(TEST_CH_ADDR)' CHAOS_SOAK='$(SOAK)' CHAOS_REPORT=$(CURDIR)/.data/chaos-report.txt \
		go test -tags chaos -count=1 -v -timeout 30m -run 'Chaos' ./cmd/adtracker 2>&1 | grep -v '^ *{' 
	@cat .data/chaos-report.txt
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(or $(CHAOS_FUZZTIME),10s)

cluster: ## start the loopback ClickHouse cluster (ZooKeeper + 2 shards x 2 replicas of 18.16) for scale-out work
	scripts/cluster.sh up

cluster-check: ## verify replication, ON CLUSTER DDL and Distributed inserts on the loopback cluster (docs/scaling.md)
	scripts/cluster.sh up
	scripts/cluster.sh verify

cluster-down: ## stop the loopback cluster
	scripts/cluster.sh down
