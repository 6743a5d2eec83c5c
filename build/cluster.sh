#!/usr/bin/env bash
# The docker compose topology as local processes, for machines without Docker (make cluster):
# Redis (AOF, noeviction), RabbitMQ with its management UI, the gateway, WORKERS chat workers and one
# embedding worker, built in Release. Everything lives under .cluster/ (git-ignored): data, logs, PIDs.
#
#   build/cluster.sh up       start (WORKERS=N, BROKER=rabbitmq|redis, ports below; provider settings from the environment)
#                             RABBITMQ_NODES=3: a RabbitMQ cluster of that many nodes (ports counted up from the ones
#                             below) with quorum work queues; REDIS_CLUSTER=1: a Redis Cluster of 3 masters with a
#                             replica each (ports REDIS_PORT to REDIS_PORT+5) instead of one Redis
#   build/cluster.sh status   which recorded processes run, worker health, the gateway's health, the RabbitMQ nodes
#                             and the work queues' type, the Redis Cluster's state, masters and replicas
#   build/cluster.sh down     stop exactly the processes `up` recorded
#   build/cluster.sh clean    remove .cluster/ (data, logs) when nothing of it runs
#
# Needs the .NET SDK, redis-server and rabbitmq-server (Debian: make cluster installs them), curl, and root or
# sudo (rabbitmq-server runs as the rabbitmq user, which must own its folders).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=${CLUSTER_DIR:-$root/.cluster}
WORKERS=${WORKERS:-2}
BROKER=${BROKER:-rabbitmq}
CONFIGURATION=${CONFIGURATION:-Release}
GATEWAY_PORT=${GATEWAY_PORT:-8007}
GATEWAY_HOST=${GATEWAY_HOST:-127.0.0.1}
REDIS_PORT=${REDIS_PORT:-6379}
RABBITMQ_PORT=${RABBITMQ_PORT:-5672}
RABBITMQ_UI_PORT=${RABBITMQ_UI_PORT:-15672}
RABBITMQ_DIST_PORT=${RABBITMQ_DIST_PORT:-$((RABBITMQ_PORT + 20000))}
RABBITMQ_NODES=${RABBITMQ_NODES:-1}
REDIS_CLUSTER=${REDIS_CLUSTER:-0}
node="llmstream-cluster-${RABBITMQ_PORT}@localhost"
# Node i (from 1) of a RabbitMQ cluster: its name and ports. Node 1 is the single node of the default topology.
node_name() { printf 'llmstream-cluster-%s@localhost' "$((RABBITMQ_PORT + $1 - 1))"; }
redis_nodes() { if [ "$REDIS_CLUSTER" = 1 ]; then echo 6; else echo 1; fi; }
logs=$dir/logs
pids=$dir/pids
# status and down use what up used, whatever the environment says now.
if [ "${1:-}" != up ] && [ -f "$dir/settings" ]; then
  # shellcheck disable=SC1091
  . "$dir/settings"
fi

as_root=""
[ "$(id -u)" -eq 0 ] || as_root="sudo"

say() { printf '%s\n' "$*"; }
fail() { printf 'cluster: %s\n' "$*" >&2; exit 1; }

# A recorded process is ours only while its command line still contains what we started (PIDs get reused).
alive() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"; }

# pids/NAME holds "PID SIGNATURE".
record() { printf '%s %s\n' "$2" "$3" >"$pids/$1"; }
recorded() { [ -f "$pids/$1" ] && read -r pid sig <"$pids/$1" && alive "$pid" "$sig"; }
running_any() {
  local f
  for f in "$pids"/*; do
    if [ -e "$f" ] && recorded "$(basename "$f")"; then return 0; fi
  done
  return 1
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.5 s
  local seconds=$1 what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}

start_dotnet() { # start_dotnet NAME DLL [VAR=value...]
  local name=$1 dll=$2; shift 2
  nohup env "$@" dotnet "$dll" >"$logs/$name.log" 2>&1 &
  record "$name" $! "$(basename "$dll")"
}

declare -A was_running=()

stop_pid() { # stop_pid NAME SECONDS: SIGTERM, then SIGKILL after SECONDS
  local name=$1 seconds=$2 pid sig
  [ -f "$pids/$name" ] || return 0
  read -r pid sig <"$pids/$name"
  if alive "$pid" "$sig"; then
    $as_root kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + seconds))
    while alive "$pid" "$sig" && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
    if alive "$pid" "$sig"; then
      say "  $name ($pid) did not stop in ${seconds}s: SIGKILL"
      $as_root kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  if [ -n "${was_running[$name]:-}" ]; then say "  stopped $name ($pid)"; else say "  $name ($pid) was not running"; fi
  rm -f "$pids/$name"
}

down() {
  [ -d "$pids" ] || { say "no cluster recorded in $dir"; return 0; }
  say "stopping the cluster recorded in $dir"
  local f pid sig
  for f in "$pids"/*; do
    if [ -e "$f" ] && recorded "$(basename "$f")"; then was_running[$(basename "$f")]=1; fi
  done
  # Services first (they drain and hand unfinished messages back), all asked at once; then the broker and Redis.
  for f in "$pids"/chat-worker-* "$pids"/embedding-worker-* "$pids"/gateway; do
    if [ -e "$f" ]; then
      read -r pid sig <"$f"
      if alive "$pid" "$sig"; then $as_root kill -TERM "$pid" 2>/dev/null || true; fi
    fi
  done
  for f in "$pids"/chat-worker-* "$pids"/embedding-worker-* "$pids"/gateway; do
    if [ -e "$f" ]; then stop_pid "$(basename "$f")" 40; fi
  done
  local i
  for i in $(seq "$RABBITMQ_NODES" -1 1); do
    local suffix="" folder=rabbitmq
    if [ "$i" -gt 1 ]; then suffix="-$i"; folder="rabbitmq-$i"; fi
    if [ -f "$pids/rabbitmq-node$suffix" ]; then
      read -r pid sig <"$pids/rabbitmq-node$suffix"
      if alive "$pid" "$sig"; then
        # Stops exactly our node (by its name) and waits for its process to end.
        timeout 60 $as_root rabbitmqctl -q -n "$(node_name "$i")" stop "$dir/$folder/rabbitmq.pid" >/dev/null 2>&1 || true
      fi
      stop_pid "rabbitmq-node$suffix" 20
    fi
    stop_pid "rabbitmq$suffix" 20
  done
  stop_pid redis 20
  for i in $(seq 2 "$(redis_nodes)"); do stop_pid "redis-$i" 20; done
  rmdir "$pids" 2>/dev/null || true
  say "cluster stopped (data and logs kept in $dir; make clean removes them)"
}

status() {
  [ -d "$pids" ] || { say "no cluster recorded in $dir (make cluster starts one)"; return 1; }
  local f name pid sig state
  for f in "$pids"/*; do
    [ -e "$f" ] || continue
    name=$(basename "$f"); read -r pid sig <"$f"
    if alive "$pid" "$sig"; then state="running"; else state="NOT RUNNING"; fi
    local health=""
    if [ -e "$dir/run/$name.healthy" ]; then
      local age=$(( $(date +%s) - $(stat -c %Y "$dir/run/$name.healthy") ))
      if [ $age -lt 30 ]; then health=", healthy (${age}s ago)"; else health=", UNHEALTHY (last sign ${age}s ago)"; fi
    fi
    printf '  %-20s pid %-8s %s%s\n' "$name" "$pid" "$state" "$health"
  done
  if [ "$BROKER" = rabbitmq ]; then
    local i
    say "  RabbitMQ nodes (running as seen by $(node_name 1)):"
    $as_root rabbitmqctl -q -n "$(node_name 1)" eval 'rabbit_nodes:all_running().' 2>/dev/null \
      | tr -d "[]' \n" | tr ',' '\n' | sort | sed 's/^/    /' || say "    $(node_name 1) does not answer"
    for i in $(seq 2 "$RABBITMQ_NODES"); do
      recorded "rabbitmq-node-$i" || say "    $(node_name "$i") is not running"
    done
    say "  work queues (name, type, leader, members online):"
    $as_root rabbitmqctl -q -n "$(node_name 1)" list_queues --no-table-headers name type leader online 2>/dev/null | sed 's/^/    /' \
      || say "    (no answer)"
  fi
  if [ "$REDIS_CLUSTER" = 1 ]; then
    local p nodes="" state="no node answers" down=""
    for p in $(seq "$REDIS_PORT" $((REDIS_PORT + 5))); do
      if redis-cli -p "$p" ping >/dev/null 2>&1; then
        if [ -z "$nodes" ]; then
          nodes=$(redis-cli -p "$p" cluster nodes 2>/dev/null || true)
          state="$(redis-cli -p "$p" cluster info 2>/dev/null | grep -E '^cluster_state' | tr -d '\r') (as 127.0.0.1:$p sees it)"
        fi
      else
        down="$down    127.0.0.1:$p      DOWN (does not answer)"$'\n'
      fi
    done
    say "  Redis Cluster: $state"
    printf '%s' "$down"
    # CLUSTER NODES: <id> <ip:port@bus> <flags> <master id> ... <slot ranges>: each node, its role, its slots or master.
    printf '%s\n' "$nodes" | awk 'NF >= 8 { split($2, a, "@"); addr[$1] = a[1]; line[NR] = $0 }
      END { for (n in line) { split(line[n], f, " "); split(f[2], a, "@"); flags = f[3]; sub(/myself,/, "", flags); sub(/slave/, "replica", flags)
        if (flags ~ /master/) { slots = ""; for (i = 9; i <= split(line[n], g, " "); i++) slots = slots " " g[i]
          printf "    %-16s %-14s slots%s\n", a[1], flags, slots }
        else printf "    %-16s %-14s of %s\n", a[1], flags, addr[f[4]] } }' | sort
  fi
  local url="http://127.0.0.1:$GATEWAY_PORT"
  for path in /health/full /health; do
    local code
    code=$(curl -s -o "$dir/health.out" -w '%{http_code}' --max-time 5 "$url$path" || true)
    if [ "$code" != "404" ]; then
      say "  gateway $path: HTTP ${code:-none} $(head -c 600 "$dir/health.out" 2>/dev/null)"
      break
    fi
  done
  rm -f "$dir/health.out"
}

start_rabbitmq_node() { # start_rabbitmq_node I: node I (from 1); nodes after the first join the first
  local i=$1 suffix="" folder=rabbitmq
  if [ "$i" -gt 1 ]; then suffix="-$i"; folder="rabbitmq-$i"; fi
  local name amqp=$((RABBITMQ_PORT + i - 1)) ui=$((RABBITMQ_UI_PORT + i - 1)) dist=$((RABBITMQ_DIST_PORT + i - 1))
  name=$(node_name "$i")
  say "starting RabbitMQ node $name on 127.0.0.1:$amqp, management UI on $ui"
  local r=$dir/$folder
  mkdir -p "$r/mnesia" "$r/log"
  printf '[rabbitmq_management].\n' >"$r/enabled_plugins"
  { printf 'listeners.tcp.default = 127.0.0.1:%s\nmanagement.tcp.port = %s\nmanagement.tcp.ip = 127.0.0.1\n' \
      "$amqp" "$ui"; cat "$root/deploy/rabbitmq/llmstream.conf"; } >"$r/rabbitmq.conf"
  rm -f "$r/rabbitmq.pid"
  # rabbitmq-server drops to the rabbitmq user, which must own (and reach) every folder it is given.
  $as_root chown -R rabbitmq:rabbitmq "$r"
  if ! $as_root su rabbitmq -s /bin/sh -c "test -w '$r/mnesia'" 2>/dev/null; then
    fail "the rabbitmq user cannot reach $r (a parent folder is private): run with CLUSTER_DIR=/var/tmp/llmstream-cluster"
  fi
  nohup $as_root env RABBITMQ_NODENAME="$name" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_DIST_PORT="$dist" RABBITMQ_MNESIA_BASE="$r/mnesia" RABBITMQ_LOG_BASE="$r/log" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$r/enabled_plugins" RABBITMQ_CONFIG_FILE="$r/rabbitmq.conf" \
    RABBITMQ_PID_FILE="$r/rabbitmq.pid" rabbitmq-server >"$logs/rabbitmq$suffix.log" 2>&1 &
  record "rabbitmq$suffix" $! rabbitmq-server
  if ! wait_for 90 RabbitMQ curl -sf -u guest:guest "http://127.0.0.1:$ui/api/overview"; then
    tail -n 30 "$logs/rabbitmq$suffix.log" >&2
    false
  fi
  # The Erlang VM itself, so that `down` can make sure it ended.
  if [ -s "$r/rabbitmq.pid" ]; then record "rabbitmq-node$suffix" "$(tr -d '[:space:]' <"$r/rabbitmq.pid")" beam; fi
  if [ "$i" -gt 1 ] && ! $as_root rabbitmqctl -q -n "$name" cluster_status 2>/dev/null | grep -qF "$(node_name 1)"; then
    say "  joining it to $(node_name 1)"
    $as_root rabbitmqctl -q -n "$name" stop_app >/dev/null
    $as_root rabbitmqctl -q -n "$name" join_cluster "$(node_name 1)" >/dev/null
    $as_root rabbitmqctl -q -n "$name" start_app >/dev/null
  fi
}

up() {
  [[ "$WORKERS" =~ ^[0-9]+$ ]] || fail "WORKERS must be a number of chat workers, not '$WORKERS'"
  case "$BROKER" in rabbitmq|redis) ;; *) fail "BROKER must be rabbitmq or redis for a cluster, not '$BROKER'" ;; esac
  [[ "$RABBITMQ_NODES" =~ ^[1-9]$ ]] || fail "RABBITMQ_NODES must be a number of RabbitMQ nodes from 1 to 9, not '$RABBITMQ_NODES'"
  case "$REDIS_CLUSTER" in 0|1) ;; *) fail "REDIS_CLUSTER must be 1 (a Redis Cluster of 3 masters and 3 replicas) or 0, not '$REDIS_CLUSTER'" ;; esac
  if running_any; then fail "a cluster is already running from $dir (make cluster-status; make cluster-down)"; fi
  command -v dotnet >/dev/null || fail "the .NET SDK (dotnet) is not installed"
  command -v redis-server >/dev/null || fail "redis-server is not installed (make cluster installs it on Debian)"
  command -v curl >/dev/null || fail "curl is not installed"
  if [ "$BROKER" = rabbitmq ]; then
    command -v rabbitmq-server >/dev/null || fail "rabbitmq-server is not installed (make cluster installs it on Debian)"
  fi
  local port
  local ports=("$GATEWAY_PORT") i
  for i in $(seq 0 $(($(redis_nodes) - 1))); do ports+=("$((REDIS_PORT + i))"); done
  if [ "$BROKER" = rabbitmq ]; then
    for i in $(seq 0 $((RABBITMQ_NODES - 1))); do ports+=("$((RABBITMQ_PORT + i))" "$((RABBITMQ_UI_PORT + i))" "$((RABBITMQ_DIST_PORT + i))"); done
  fi
  for port in "${ports[@]}"; do
    port_free "$port" || fail "port $port is in use (set GATEWAY_PORT, REDIS_PORT, RABBITMQ_PORT, RABBITMQ_UI_PORT or RABBITMQ_DIST_PORT)"
  done

  say "building the services ($CONFIGURATION)"
  # The gateway project references both workers, so this builds all three.
  dotnet build Gateway/LlmStream.Gateway.csproj -c "$CONFIGURATION" -nologo -v quiet >/dev/null \
    || { dotnet build Gateway/LlmStream.Gateway.csproj -c "$CONFIGURATION" -nologo -v quiet; fail "build failed"; }
  local bin="net10.0"
  local gateway_dll=$root/Gateway/bin/$CONFIGURATION/$bin/LlmStream.Gateway.dll
  local chat_dll=$root/ChatWorker/bin/$CONFIGURATION/$bin/LlmStream.ChatWorker.dll
  local embedding_dll=$root/EmbeddingWorker/bin/$CONFIGURATION/$bin/LlmStream.EmbeddingWorker.dll

  mkdir -p "$logs" "$pids" "$dir/redis" "$dir/run"
  printf 'node=%q\nGATEWAY_PORT=%q\nBROKER=%q\nRABBITMQ_PORT=%q\nRABBITMQ_NODES=%q\nREDIS_PORT=%q\nREDIS_CLUSTER=%q\n' \
    "$node" "$GATEWAY_PORT" "$BROKER" "$RABBITMQ_PORT" "$RABBITMQ_NODES" "$REDIS_PORT" "$REDIS_CLUSTER" >"$dir/settings"
  rm -f "$dir"/run/*.healthy
  # Whatever makes the start fail from here on, stop what was started.
  cluster_started=""
  trap 'if [ -z "$cluster_started" ]; then say "start failed: stopping what was started" >&2; down >&2 || true; fi' EXIT

  local redis_url="redis://127.0.0.1:$REDIS_PORT/0"
  if [ "$REDIS_CLUSTER" = 1 ]; then
    say "starting a Redis Cluster on 127.0.0.1:$REDIS_PORT-$((REDIS_PORT + 5)): 3 masters, a replica each (AOF, noeviction)"
    local seeds=() name
    for i in $(seq 1 6); do
      port=$((REDIS_PORT + i - 1)); name=redis; [ "$i" -gt 1 ] && name="redis-$i"
      mkdir -p "$dir/$name"
      nohup redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/$name" --save "" --cluster-enabled yes \
        --cluster-config-file nodes.conf --cluster-node-timeout 5000 --cluster-require-full-coverage no \
        --appendonly yes --appendfsync everysec --maxmemory-policy noeviction >"$logs/$name.log" 2>&1 &
      record "$name" $! redis-server
      wait_for 120 Redis sh -c "redis-cli -p $port ping | grep -qx PONG" || { tail -n 20 "$logs/$name.log" >&2; false; }
      seeds+=("127.0.0.1:$port")
    done
    redis-cli --cluster create "${seeds[@]}" --cluster-replicas 1 --cluster-yes >"$logs/redis-cluster-create.log" 2>&1 \
      || { tail -n 20 "$logs/redis-cluster-create.log" >&2; false; }
    wait_for 30 "the Redis Cluster" sh -c "redis-cli -p $REDIS_PORT cluster info | grep -q cluster_state:ok" \
      || fail "the Redis Cluster did not reach cluster_state:ok"
    redis_url="redis://$(IFS=,; echo "${seeds[*]}")"
  else
    say "starting Redis on 127.0.0.1:$REDIS_PORT (AOF, noeviction)"
    nohup redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir/redis" --save "" \
      --appendonly yes --appendfsync everysec --maxmemory-policy noeviction >"$logs/redis.log" 2>&1 &
    record redis $! redis-server
    # PONG, not LOADING: a large append-only file takes a while to load, and the services need Redis answering.
    wait_for 120 Redis sh -c "redis-cli -p $REDIS_PORT ping | grep -qx PONG" || { tail -n 20 "$logs/redis.log" >&2; false; }
  fi

  local rabbitmq_url=""
  local queue_type=classic
  if [ "$BROKER" = rabbitmq ]; then
    local nodes=()
    for i in $(seq 1 "$RABBITMQ_NODES"); do
      start_rabbitmq_node "$i"
      nodes+=("127.0.0.1:$((RABBITMQ_PORT + i - 1))")
    done
    if [ "$RABBITMQ_NODES" -gt 1 ]; then queue_type=quorum; fi
    # Lazy work queues hold POST /chat's p99 while a backlog grows (README "Benchmarks"); a policy reaches queues
    # that already exist, so the services declare them as before. RabbitMQ 3.12 and later ignore the setting, and
    # quorum queues keep their messages on disk anyway.
    local refused
    refused=$(curl -sS --fail-with-body -u guest:guest -X PUT -H 'content-type: application/json' \
      --data @"$root/deploy/rabbitmq/lazy-queues.policy.json" \
      "http://127.0.0.1:$RABBITMQ_UI_PORT/api/policies/%2F/llmstream-lazy" 2>&1) \
      || fail "RabbitMQ refused the lazy-queue policy (deploy/rabbitmq/lazy-queues.policy.json): $refused"
    rabbitmq_url="amqp://guest:guest@$(IFS=,; echo "${nodes[*]}")/"
  fi

  local common=(BROKER="$BROKER" RABBITMQ_URL="$rabbitmq_url" RABBITMQ_QUEUE_TYPE="$queue_type" REDIS_URL="$redis_url")
  say "starting the gateway on $GATEWAY_HOST:$GATEWAY_PORT"
  start_dotnet gateway "$gateway_dll" "${common[@]}" PORT="$GATEWAY_PORT" HOST="$GATEWAY_HOST" \
    OTEL_SERVICE_NAME=llmstream-gateway
  local i
  say "starting $WORKERS chat worker(s) and an embedding worker"
  for i in $(seq 1 "$WORKERS"); do
    start_dotnet "chat-worker-$i" "$chat_dll" "${common[@]}" HEALTH_FILE="$dir/run/chat-worker-$i.healthy" \
      OTEL_SERVICE_NAME=llmstream-chat-worker
  done
  start_dotnet embedding-worker-1 "$embedding_dll" "${common[@]}" HEALTH_FILE="$dir/run/embedding-worker-1.healthy" \
    OTEL_SERVICE_NAME=llmstream-embedding-worker

  local deadline=$((SECONDS + 60))
  until curl -sf -o /dev/null "http://127.0.0.1:$GATEWAY_PORT/health"; do
    if ! recorded gateway || [ $SECONDS -ge $deadline ]; then
      say "the gateway did not come up:" >&2
      tail -n 30 "$logs/gateway.log" >&2
      false
    fi
    sleep 0.5
  done
  sleep 2
  local f
  for f in "$pids"/*; do
    if ! recorded "$(basename "$f")"; then
      say "$(basename "$f") exited:" >&2
      tail -n 30 "$logs/$(basename "$f").log" >&2 2>/dev/null || true
      false
    fi
  done
  cluster_started=1

  say ""
  say "LlmStream cluster running ($BROKER broker, $WORKERS chat worker(s), 1 embedding worker):"
  say "  gateway and chat page  http://localhost:$GATEWAY_PORT/   (API reference: /docs)"
  if [ "$BROKER" = rabbitmq ]; then
    say "  RabbitMQ management UI http://localhost:$RABBITMQ_UI_PORT/   (guest / guest, from this machine only)"
    say "  RabbitMQ               $rabbitmq_url   ($RABBITMQ_NODES node(s), $queue_type work queues)"
  fi
  say "  Redis                  $redis_url"
  if [ "$BROKER" = rabbitmq ]; then say "  logs                   $logs/   (RabbitMQ's own log: $dir/rabbitmq/log/)"; else say "  logs                   $logs/"; fi
  say "  make cluster-status | make cluster-down"
}

clean() {
  if running_any; then say "a cluster is running from $dir: kept (make cluster-down first)"; return 0; fi
  [ -d "$dir" ] || return 0
  $as_root rm -rf "$dir"
  say "removed $dir"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  clean) clean ;;
  *) fail "usage: build/cluster.sh up|down|status|clean" ;;
esac
