#!/usr/bin/env bash
# Installs what the tests need on a Debian machine, when missing: RabbitMQ and Redis servers, Node.js and npm,
# and chromium for the browser tests (driven by Microsoft.Playwright; Playwright's own browser download is never used).
set -euo pipefail
missing=()
command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
# LLMSTREAM_CHROMIUM names another browser to use instead.
[ -n "${LLMSTREAM_CHROMIUM:-}" ] || [ -x /usr/bin/chromium ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
