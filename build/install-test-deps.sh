#!/usr/bin/env bash
# Installs what the tests need on a Debian machine, when missing: RabbitMQ and Redis servers, Node.js and npm,
# docker-compose (v1, which validates deploy/docker-compose.yml without a Docker engine) when no `docker compose`
# is there, strace, and chromium for the browser tests (driven by Microsoft.Playwright; Playwright's own browser download is
# never used). With --servers (make cluster): only the RabbitMQ and Redis servers.
set -euo pipefail
missing=()
command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ "${1:-}" != "--servers" ]; then
  command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
  docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  # LLMSTREAM_CHROMIUM names another browser to use instead.
  [ -n "${LLMSTREAM_CHROMIUM:-}" ] || [ -x /usr/bin/chromium ] || missing+=(chromium)
  # strace: a test records every connection the services open (nothing may leave the machine unasked).
  command -v strace >/dev/null 2>&1 || missing+=(strace)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
