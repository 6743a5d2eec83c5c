#!/usr/bin/env bash
# The cost-per-request benchmark of docs/benchmarks.md ("Cost per request"), on `make cluster` and on the
# single-process default, against the fake provider the issue set: 50 ms to the first token, then 20 ms per token,
# 5-token answers, rate limits off. Prints a markdown table (every row with its command) and writes it to
# TestResults/bench-cluster.md. CPU is read per process from /proc (the load generators are not counted).
#
#   build/bench-cluster.sh            everything (about 8 minutes)
#
# Runs its own cluster under .cluster-bench/ on other ports (gateway 18007, Redis 16379, RabbitMQ 15679/25679), so a
# `make cluster` of yours is left alone. Needs wrk and hey (installed from Debian when missing), make cluster's needs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/TestResults/bench-cluster.md
mkdir -p "$root/TestResults"
export CLUSTER_DIR=$root/.cluster-bench GATEWAY_PORT=18007 REDIS_PORT=16379 RABBITMQ_PORT=15679 RABBITMQ_UI_PORT=25679
FAKE_PORT=19100
EMBEDDED_PORT=18008
gw=http://127.0.0.1:$GATEWAY_PORT
body='{"message":"TOKENS=5 hi","priority":0}'

for tool in wrk hey bc; do
  command -v $tool >/dev/null || { echo "installing $tool"; ${SUDO:-$( [ "$(id -u)" -eq 0 ] || echo sudo)} apt-get install -y -q $tool >/dev/null; }
done
printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' "'$body'" >"$CLUSTER_DIR.post.lua"
post_lua=$CLUSTER_DIR.post.lua

fake_pids=()
embedded_pid=""
cleanup() {
  for p in "${fake_pids[@]}" $embedded_pid; do kill "$p" 2>/dev/null || true; done
  ./build/cluster.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT

start_fake() { # start_fake PORT TOKENS
  dotnet tests/FakeOpenAI/bin/Release/net10.0/LlmStream.FakeOpenAI.dll --port "$1" --token-delay-ms 20 \
    --first-token-delay-ms 50 --reply-tokens "$2" >"$CLUSTER_DIR.fake-$1.log" 2>&1 &
  fake_pids+=($!)
  until grep -q FAKE_OPENAI_LISTENING "$CLUSTER_DIR.fake-$1.log" 2>/dev/null; do sleep 0.2; done
}

# CPU ticks (utime + stime) and RSS of a process.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_mb() { awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$1/status" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)
declare -A pid_of=()
read_pids() {
  local f pid sig
  pid_of=()
  for f in "$CLUSTER_DIR"/pids/*; do
    case $(basename "$f") in rabbitmq) continue ;; esac
    read -r pid sig <"$f"
    pid_of[$(basename "$f")]=$pid
  done
}
declare -A t0=()
cpu_start() { local k; t0=(); for k in "${!pid_of[@]}"; do t0[$k]=$(ticks "${pid_of[$k]}"); done; }
cpu_of() { echo "scale=3; ($(ticks "${pid_of[$1]}") - ${t0[$1]}) / $hz" | bc; }
cpu_all() { local k s=0; for k in "${!pid_of[@]}"; do s=$(echo "$s + $(cpu_of "$k")" | bc); done; echo "$s"; }

stats() { curl -s "$1/stats" | python3 -c "import json,sys; d=json.load(sys.stdin); print(d['tasks']['completed'], sum(q['waiting'] for q in d['queues']))"; }
drain() { # waits until nothing waits or runs at $1
  local i
  for i in $(seq 900); do
    [ "$(curl -s "$1/stats" | python3 -c "import json,sys; d=json.load(sys.stdin); print(sum(q['waiting'] + q['in_flight'] for q in d['queues']))")" = 0 ] && return 0
    sleep 1
  done
}
wrk_field() { # wrk_field OUTPUT: "req/s p50 p99"
  echo "$1" | awk '/Requests\/sec/ {r=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} END {print r, p50, p99}'
}

rows=()
row() { rows+=("| $1 | \`$2\` | $3 |"); printf '  %s: %s\n' "$1" "$3"; }

echo "building (Release)"
dotnet build LlmStream.sln -c Release -nologo -v q >/dev/null
start_fake $FAKE_PORT 5
export OPENAI_BASE_URL=http://127.0.0.1:$FAKE_PORT/v1 OPENAI_API_KEY=sk-bench LLM_RPM=0 LLM_TPM=0

# --- make cluster (RabbitMQ, Redis, gateway, 2 chat workers) ---------------------------------------------------------
./build/cluster.sh down >/dev/null 2>&1 || true
sudo_rm=""; [ "$(id -u)" -eq 0 ] || sudo_rm=sudo
$sudo_rm rm -rf "$CLUSTER_DIR"
echo "starting the cluster under $CLUSTER_DIR"
WORKERS=2 ./build/cluster.sh up >"$CLUSTER_DIR.up.log" 2>&1 || { cat "$CLUSTER_DIR.up.log"; exit 1; }
read_pids

# The first chats after the start, one after another: POST answered, then queued -> started -> finished.
first=""
for i in 1 2 3; do
  reply=$(curl -s -w ' %{time_total}' -XPOST "$gw/chat" -H 'content-type: application/json' -d "$body")
  id=$(echo "$reply" | sed 's/.*"task_id":"\([0-9a-f]*\)".*/\1/')
  for j in $(seq 250); do s=$(curl -s "$gw/chat/$id"); echo "$s" | grep -q '"status":"completed"' && break; sleep 0.02; done
  first+=$(echo "$s" | python3 -c "
import json,sys,datetime
d=json.load(sys.stdin); f=lambda k: datetime.datetime.fromisoformat(d[k])
print('%.0f ms; ' % ((f('finished_at')-f('created_at')).total_seconds()*1000 + $(echo "$reply" | awk '{print $NF}')*1000), end='')")
done
row "first three chats after the cluster started: POST sent to generation finished, each" \
  "curl -XPOST $gw/chat ... then GET /chat/{id} until completed" "${first%; }"

echo "wrk POST /chat, 20 connections, three runs"
c20=()
for run in 1 2 3; do
  drain "$gw"
  cpu_start
  o=$(wrk -t2 -c20 -d10s --latency -s "$post_lua" "$gw/chat")
  read -r rate p50 p99 <<<"$(wrk_field "$o")"
  n=$(echo "$o" | awk '/requests in/ {print $1}')
  g=$(cpu_of gateway)
  read -r _ waiting <<<"$(stats "$gw")"
  c20+=("$(printf '%.0f/s, p50 %s, p99 %s, gateway %.3f CPU-ms per request, %s waiting at the end' "$rate" "$p50" "$p99" "$(echo "$g * 1000 / $n" | bc -l)" "$waiting")")
done
row "POST /chat, wrk c20, runs 1 / 2 / 3" "wrk -t2 -c20 -d10s --latency -s post.lua $gw/chat" "$(IFS=';'; echo "${c20[*]}" | sed 's/;/ · /g')"

# The backlog the last run left, drained: completed chats per second.
read -r done0 waiting0 <<<"$(stats "$gw")"
start=$(date +%s.%N)
drain "$gw"
read -r done1 _ <<<"$(stats "$gw")"
row "rate at which that backlog drained" "GET $gw/stats (tasks.completed) until nothing waits" \
  "$(printf '%.0f completed chats/s (%s chats)' "$(echo "($done1 - $done0) / ($(date +%s.%N) - $start)" | bc -l)" "$((done1 - done0))")"

cpu_start
o=$(wrk -t1 -c1 -d10s --latency -s "$post_lua" "$gw/chat")
read -r rate p50 p99 <<<"$(wrk_field "$o")"
n=$(echo "$o" | awk '/requests in/ {print $1}')
row "POST /chat serially, the workers generating what it posts" "wrk -t1 -c1 -d10s --latency -s post.lua $gw/chat" \
  "$(printf '%.0f/s, p50 %s, p99 %s, gateway %.3f CPU-ms per request' "$rate" "$p50" "$p99" "$(echo "$(cpu_of gateway) * 1000 / $n" | bc -l)")"
drain "$gw"
o=$(wrk -t1 -c1 -d5s --latency "$gw/health/live")
read -r rate p50 p99 <<<"$(wrk_field "$o")"
row "a trivial endpoint serially" "wrk -t1 -c1 -d5s --latency $gw/health/live" "$(printf '%.0f/s, p50 %s, p99 %s' "$rate" "$p50" "$p99")"

# Open-loop arrivals (hey: 50 clients, each at RATE/50 per second), 20 s per rate, up until the backlog grows.
echo "arrival-rate search"
best=0; best_cpu=""
for rate in 200 400 600 800 1000 1200; do
  drain "$gw"
  read -r d0 w0 <<<"$(stats "$gw")"
  cpu_start
  o=$(hey -z 20s -c 50 -q "$(echo "$rate / 50" | bc -l)" -m POST -T application/json -d "$body" "$gw/chat")
  total=$(cpu_all)
  read -r d1 w1 <<<"$(stats "$gw")"
  accepted=$(echo "$o" | awk '/\[202\]/ {print $2}')
  p50=$(echo "$o" | awk '/50% in/ {print $3 * 1000}'); p99=$(echo "$o" | awk '/99% in/ {print $3 * 1000}')
  flat=yes; [ "$w1" -gt $((rate / 2)) ] && flat=no
  row "arrivals at $rate/s for 20 s" "hey -z 20s -c 50 -q $((rate / 50)) -m POST -T application/json -d '$body' $gw/chat" \
    "$(printf 'accepted %s, completed %.0f/s, waiting %s -> %s (%s), POST p50 %s ms, p99 %s ms, all processes %.2f CPU-s per 1,000 chats' \
      "$accepted" "$(echo "($d1 - $d0) / 20" | bc -l)" "$w0" "$w1" "$([ $flat = yes ] && echo flat || echo growing)" "$p50" "$p99" \
      "$(echo "$total * 1000 / ($d1 - $d0 + 1)" | bc -l)")"
  [ $flat = yes ] || break
  best=$rate
done
row "highest arrival rate with the backlog flat" "the rows above" "$best chats/s"

mem=""
for k in gateway chat-worker-1 chat-worker-2 rabbitmq-node redis; do mem+="$k $(rss_mb "${pid_of[$k]}") MB, "; done
read -r total_done _ <<<"$(stats "$gw")"
row "memory (RSS) after $total_done chats" "grep VmRSS /proc/PID/status" "${mem%, }"
./build/cluster.sh down >/dev/null 2>&1

# --- the single-process default (make run) ----------------------------------------------------------------------------
echo "the single-process default"
PORT=$EMBEDDED_PORT dotnet Gateway/bin/Release/net10.0/LlmStream.Gateway.dll >"$CLUSTER_DIR.embedded.log" 2>&1 &
embedded_pid=$!
egw=http://127.0.0.1:$EMBEDDED_PORT
until curl -sf -o /dev/null "$egw/health/live"; do sleep 0.3; done
pid_of=([gateway]=$embedded_pid)
runs=()
for run in 1 2 3; do
  cpu_start
  o=$(wrk -t2 -c20 -d10s --latency -s "$post_lua" "$egw/chat")
  read -r rate p50 p99 <<<"$(wrk_field "$o")"
  runs+=("$(printf '%.0f/s, p50 %s, p99 %s, %.2f CPU-s per 1,000' "$rate" "$p50" "$p99" "$(echo "$(cpu_of gateway) * 1000 / $(echo "$o" | awk '/requests in/ {print $1}')" | bc -l)")")
  drain "$egw"
done
row "make run: POST /chat, wrk c20, runs 1 / 2 / 3" "wrk -t2 -c20 -d10s --latency -s post.lua $egw/chat" "$(IFS=';'; echo "${runs[*]}" | sed 's/;/ · /g')"
held=$(curl -s "$egw/stats" | python3 -c "import json,sys; d=json.load(sys.stdin)['finished_streams']; print(d['held'], 'of', d['limit'])")
read -r total_done _ <<<"$(stats "$egw")"
row "make run: memory and finished streams held after $total_done chats" "grep VmRSS /proc/PID/status; GET /stats finished_streams" \
  "$(rss_mb "$embedded_pid") MB, $held finished streams held"
kill "$embedded_pid"; wait "$embedded_pid" 2>/dev/null || true

# A burst of 50 chats of 50 tokens: time from each POST to its first token over SSE.
start_fake $((FAKE_PORT + 1)) 50
OPENAI_BASE_URL=http://127.0.0.1:$((FAKE_PORT + 1))/v1 PORT=$EMBEDDED_PORT dotnet Gateway/bin/Release/net10.0/LlmStream.Gateway.dll >"$CLUSTER_DIR.embedded.log" 2>&1 &
embedded_pid=$!
until curl -sf -o /dev/null "$egw/health/live"; do sleep 0.3; done
burst() {
  python3 - "$egw" <<'EOF'
import http.client, json, sys, threading, time, urllib.parse
base = urllib.parse.urlparse(sys.argv[1]); firsts = []; lock = threading.Lock(); go = threading.Event()
def chat():
    c = http.client.HTTPConnection(base.hostname, base.port, timeout=60)
    go.wait(); t0 = time.perf_counter()
    c.request("POST", "/chat", json.dumps({"message": "burst"}), {"Content-Type": "application/json"})
    session = json.loads(c.getresponse().read())["session_id"]
    c.request("GET", "/stream/" + session); r = c.getresponse()
    for line in r:
        if line.startswith(b"event: token"):
            with lock: firsts.append((time.perf_counter() - t0) * 1000)
            break
    c.close()
threads = [threading.Thread(target=chat) for _ in range(50)]
for t in threads: t.start()
time.sleep(0.5); go.set()
for t in threads: t.join()
firsts.sort()
print("p50 %.0f ms, p99 %.0f ms (%d of 50)" % (firsts[len(firsts) // 2], firsts[min(len(firsts) - 1, int(len(firsts) * 0.99))], len(firsts)))
EOF
}
burst >/dev/null # warm-up
drain "$egw"
row "make run: a burst of 50 chats × 50 tokens, POST to first token over SSE" "python3 (50 threads: POST /chat, GET /stream, first token event)" "$(burst)"

{
  echo "| measure | command | measured |"
  echo "|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$out"
