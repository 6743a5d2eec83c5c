# LlmStream: `make run` starts the product; `make test` installs the test services and runs every test.
# Deployment: `make up` (docker compose) or `make cluster` (the same services as local processes, no Docker).
SHELL := /bin/bash
CONFIGURATION ?= Release
PORT ?= 8007
DOTNET := dotnet

# docker compose v2 when its plugin is there, else docker-compose v1; decided when a recipe is expanded (test-deps may install v1).
COMPOSE_CMD = $(shell if docker compose version >/dev/null 2>&1; then echo docker compose; else echo docker-compose; fi)
COMPOSE_PROJECT ?= llmstream
COMPOSE = $(COMPOSE_CMD) -p $(COMPOSE_PROJECT) -f deploy/docker-compose.yml
# Commands that must see every service, the monitoring profile's too (down, logs, status, clean).
COMPOSE_ALL = COMPOSE_PROFILES=monitoring $(COMPOSE)
WORKERS ?= 2
RABBITMQ_NODES ?= 1
REDIS_CLUSTER ?= 0
GATEWAY_PORT ?= 8007

# `make scale 4` and `make logs gateway`: the words after these targets are their arguments, not targets.
ifneq ($(filter scale logs,$(firstword $(MAKECMDGOALS))),)
  ARGS := $(wordlist 2,$(words $(MAKECMDGOALS)),$(MAKECMDGOALS))
  ifneq ($(ARGS),)
    $(eval $(ARGS):;@:)
  endif
endif
N ?= $(if $(filter scale,$(firstword $(MAKECMDGOALS))),$(firstword $(ARGS)))
svc ?= $(if $(filter logs,$(firstword $(MAKECMDGOALS))),$(ARGS))

# MONITORING=1 turns the monitoring profile on and points OTLP export at its collector; unset, it follows
# whether that collector is already running (so `make scale` keeps export on); MONITORING=0 turns it off.
define monitoring_env
mon="$(MONITORING)"; \
if [ -z "$$mon" ] && $(COMPOSE_ALL) ps --services --filter status=running 2>/dev/null | grep -qx otel-collector; then mon=1; fi; \
if [ "$$mon" = 1 ]; then export COMPOSE_PROFILES=monitoring OTEL_EXPORTER_OTLP_ENDPOINT=$${OTEL_EXPORTER_OTLP_ENDPOINT:-http://otel-collector:4317}; fi
endef

.PHONY: run build build-dotnet images test test-deps compose-check bench bench-cluster clean \
	up down logs status scale docker-engine cluster cluster-down cluster-status

## run: the single-process default on http://localhost:$(PORT) (in-memory bus, simulated model unless a provider is configured)
run:
	@echo "building LlmStream (the first build restores packages and takes about a minute)..."
	@$(DOTNET) build Gateway/LlmStream.Gateway.csproj -c $(CONFIGURATION) -nologo -v minimal -clp:NoSummary
	@echo "starting the gateway on port $(PORT) (Ctrl+C stops it)"
	PORT=$(PORT) $(DOTNET) Gateway/bin/$(CONFIGURATION)/net10.0/LlmStream.Gateway.dll

## build: every .NET project (warnings as errors), then the container images when a Docker engine answers
build: build-dotnet
	@if docker info >/dev/null 2>&1; then $(MAKE) --no-print-directory images; \
	else echo "no Docker engine here: container images not built (make cluster runs the services without Docker)"; fi

## build-dotnet: every project, warnings as errors (what the tests need; no Docker involved)
build-dotnet:
	$(DOTNET) build LlmStream.sln -c $(CONFIGURATION) -warnaserror -nologo

## images: the gateway, chat worker, embedding worker and web images (deploy/Dockerfile)
images: docker-engine
	$(COMPOSE) build

## test-deps: RabbitMQ, Redis, chromium, a Docker engine (started when none answers), docker-compose and debootstrap from Debian packages when missing; the openai npm client from its lock file
test-deps:
	./build/install-test-deps.sh
	npm ci --prefix tests/node --no-audit --no-fund --loglevel=error

## compose-check: deploy/docker-compose.yml is valid, with and without the monitoring profile (no engine needed); the cluster script parses
compose-check:
	@echo "validating deploy/docker-compose.yml with $(COMPOSE_CMD) config"
	@$(COMPOSE) config -q
	@COMPOSE_PROFILES=monitoring $(COMPOSE) config -q
	@bash -n build/cluster.sh
	@echo "deploy/docker-compose.yml is valid"

## test: build, run every test against real RabbitMQ, Redis and processes, print the summary line
test: test-deps compose-check build-dotnet
	rm -rf TestResults
	$(DOTNET) test LlmStream.sln -c $(CONFIGURATION) --no-build --logger "trx" --results-directory TestResults \
		--filter "TestCategory!=Benchmark" --blame-hang-timeout 10m -- NUnit.DefaultTimeout=600000 ; status=$$? ; \
	./build/test-summary.sh TestResults ; summary=$$? ; \
	[ $$status -eq 0 ] && [ $$summary -eq 0 ]

## bench: the issue-10 targets (enqueue latency and CPU, added time to first token, token events/s), throughput per broker, stream latency and memory per open stream, one node against clusters and wake-ups per gateway, then the cost per request on make cluster and make run (build/bench-cluster.sh) (TestResults/bench-*.md)
bench: test-deps build-dotnet
	mkdir -p TestResults && rm -f TestResults/bench-*.md
	$(DOTNET) test tests/LlmStream.Tests -c $(CONFIGURATION) --no-build --filter "TestCategory=Benchmark" \
		--logger "console;verbosity=normal" -- NUnit.DefaultTimeout=1800000
	@echo "| measure | target | measured |"; echo "|---|---|---|"; cat TestResults/bench-targets.md
	@echo "| broker | requests | POST /chat per s | completed chats per s |"; cat TestResults/bench-brokers.md
	@cat TestResults/bench-streams.md
	@echo "| short chats (time to first token) | p50 ms | p99 ms | max ms |"; echo "|---|---|---|---|"; cat TestResults/bench-hostile.md
	@cat TestResults/bench-clusters.md
	./build/bench-cluster.sh

## bench-cluster: only the cost per request on make cluster and make run, with wrk and hey (TestResults/bench-cluster.md)
bench-cluster: build-dotnet
	./build/install-test-deps.sh --servers
	./build/bench-cluster.sh

## clean: build outputs and test results; with a Docker engine also the compose containers, network and volumes (down -v)
clean:
	$(DOTNET) clean LlmStream.sln -nologo -v quiet
	rm -rf TestResults */bin */obj tests/*/bin tests/*/obj
	@if docker info >/dev/null 2>&1; then $(COMPOSE_ALL) down -v --remove-orphans; fi
	./build/cluster.sh clean

# --- docker compose (deploy/docker-compose.yml) -------------------------------------------------

docker-engine:
	@docker info >/dev/null 2>&1 || { echo "no Docker engine answers here: make cluster runs the same services as local processes (README, Deployment)" >&2; exit 1; }
	@$(COMPOSE_CMD) version >/dev/null 2>&1 || { echo "neither docker compose nor docker-compose is installed" >&2; exit 1; }

## up: build and start everything in the background, WORKERS chat workers (default 2); MONITORING=1 adds Prometheus, the collector and Jaeger
up: docker-engine
	@$(monitoring_env); set -x; $(COMPOSE) up -d --build --scale chat-worker=$(WORKERS)
	@echo "gateway http://localhost:$(GATEWAY_PORT)  chat page http://localhost:$${WEB_PORT:-3000}  RabbitMQ UI http://localhost:$${RABBITMQ_UI_PORT:-15672} (guest/guest unless RABBITMQ_USER/PASS)"

## down: stop and remove the containers (volumes, and so queued work and streams, are kept)
down: docker-engine
	$(COMPOSE_ALL) down --remove-orphans

## logs: follow the logs of every service, or of one: make logs gateway (or make logs svc=gateway)
logs: docker-engine
	$(COMPOSE_ALL) logs -f --tail=200 $(svc)

## status: the containers and their health, then the gateway's /health/full
status: docker-engine
	$(COMPOSE_ALL) ps
	@curl -sS --max-time 5 -w '\n(HTTP %{http_code})\n' http://localhost:$(GATEWAY_PORT)/health/full || echo "gateway not answering on port $(GATEWAY_PORT)"

## scale: run N chat workers: make scale 4 (or make scale N=4)
scale: docker-engine
	@[[ "$(N)" =~ ^[0-9]+$$ ]] || { echo "usage: make scale 4   (the number of chat workers)" >&2; exit 1; }
	@$(monitoring_env); set -x; $(COMPOSE) up -d --no-recreate --scale chat-worker=$(N)

# --- the same topology as local processes, for machines without Docker (build/cluster.sh) ------------

## cluster: RabbitMQ, Redis, the gateway on 8007, WORKERS chat workers (default 2) and an embedding worker as local processes under .cluster/;
##   RABBITMQ_NODES=3 for a RabbitMQ cluster with quorum work queues, REDIS_CLUSTER=1 for a Redis Cluster (3 masters, 3 replicas)
cluster:
	./build/install-test-deps.sh --servers
	WORKERS=$(WORKERS) RABBITMQ_NODES=$(RABBITMQ_NODES) REDIS_CLUSTER=$(REDIS_CLUSTER) ./build/cluster.sh up

## cluster-down: stop exactly the processes make cluster started
cluster-down:
	./build/cluster.sh down

## cluster-status: which of them run, worker health, the gateway's health, the RabbitMQ nodes and queue types, the Redis Cluster's masters and replicas
cluster-status:
	./build/cluster.sh status
