# LlmStream: `make run` starts the product; `make test` installs the test services and runs every test.
SHELL := /bin/bash
CONFIGURATION ?= Release
PORT ?= 8007
DOTNET := dotnet

.PHONY: run build test test-deps bench clean

## run: the single-process default on http://localhost:$(PORT) (in-memory bus, simulated model unless a provider is configured)
run:
	$(DOTNET) build Gateway/LlmStream.Gateway.csproj -c $(CONFIGURATION) -nologo -v quiet
	PORT=$(PORT) $(DOTNET) Gateway/bin/$(CONFIGURATION)/net10.0/LlmStream.Gateway.dll

## build: every project, warnings as errors
build:
	$(DOTNET) build LlmStream.sln -c $(CONFIGURATION) -warnaserror -nologo

## test-deps: RabbitMQ and Redis from Debian packages when missing; the openai npm client from its lock file
test-deps:
	./build/install-test-deps.sh
	npm ci --prefix tests/node --no-audit --no-fund --loglevel=error

## test: build, run every test against real RabbitMQ, Redis and processes, print the summary line
test: test-deps build
	rm -rf TestResults
	$(DOTNET) test LlmStream.sln -c $(CONFIGURATION) --no-build --logger "trx" --results-directory TestResults \
		--filter "TestCategory!=Benchmark" --blame-hang-timeout 10m -- NUnit.DefaultTimeout=600000 ; status=$$? ; \
	./build/test-summary.sh TestResults ; summary=$$? ; \
	[ $$status -eq 0 ] && [ $$summary -eq 0 ]

## bench: throughput of each broker end to end, stream latency and memory per open stream (TestResults/bench-*.md)
bench: test-deps build
	mkdir -p TestResults && rm -f TestResults/bench-*.md
	$(DOTNET) test tests/LlmStream.Tests -c $(CONFIGURATION) --no-build --filter "TestCategory=Benchmark" \
		--logger "console;verbosity=normal" -- NUnit.DefaultTimeout=1800000
	@echo "| broker | requests | POST /chat per s | completed chats per s |"; cat TestResults/bench-brokers.md
	@cat TestResults/bench-streams.md

clean:
	$(DOTNET) clean LlmStream.sln -nologo -v quiet
	rm -rf TestResults */bin */obj tests/*/bin tests/*/obj
