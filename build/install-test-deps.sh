#!/usr/bin/env bash
# Installs what the tests need on a Debian machine, when missing: RabbitMQ and Redis servers, Node.js and npm,
# docker-compose (v1) when no `docker compose` is there, strace, chromium for the browser tests (driven by
# Microsoft.Playwright; Playwright's own browser download is never used), and for the compose spec a Docker engine
# (Debian's docker.io, started here when none answers) and debootstrap (build/standin-images.sh).
# With --servers (make cluster): only the RabbitMQ and Redis servers.
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
  # A Docker engine of any kind that answers will do; without one, Debian's.
  docker info >/dev/null 2>&1 || command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Start the engine when none answers (a fresh machine, or one whose dockerd stopped); it runs until the machine stops.
if [ "${1:-}" != "--servers" ] && ! docker info >/dev/null 2>&1 && command -v dockerd >/dev/null 2>&1; then
  echo "starting dockerd (log: /var/log/llmstream-dockerd.log)"
  $sudo sh -c 'setsid nohup dockerd >/var/log/llmstream-dockerd.log 2>&1 < /dev/null &'
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || echo "dockerd did not answer within 30 s: the compose spec will say it skipped (see /var/log/llmstream-dockerd.log)"
fi
