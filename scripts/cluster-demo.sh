#!/usr/bin/env bash
# Cluster mode on one machine: three NATS servers (JetStream, one stream replicated three times)
# and three tagstream nodes on loopback, the simulated tags streaming into all three nodes.
#   ./scripts/cluster-demo.sh [--tags N] [--days D] [--speed X] [--seed S] [--debug] [--duration S]
#                             [--partitioned]
# Installs nats-server if missing (scripts/nats-setup.sh), builds the binaries (release; --debug
# uses the debug build), writes each node's config and data under demo-data/cluster, creates demo
# users through the API, uploads the simulated crime batches, streams the tags with failover
# (`tagsim stream --connect a,b,c`) and follows node 1's live alerts. Kill a node or a NATS
# server (commands printed) to watch the tags move to the survivors. --partitioned: nodes 1 and 2
# run the rules of partitions 0-31 and 32-63 and node 3 none, every node serving the alerts
# from the outputs stream (docs/cluster.md, "Partitioned processing"). Ctrl-C (or --duration)
# stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

TAGS=60 DAYS=3 SPEED=600 SEED=42 PROFILE=release DURATION= PARTITIONED=
while [ $# -gt 0 ]; do
  case "$1" in
    --tags) TAGS="$2"; shift 2 ;;
    --days) DAYS="$2"; shift 2 ;;
    --speed) SPEED="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    --debug) PROFILE=debug; shift ;;
    --duration) DURATION="$2"; shift 2 ;;
    --partitioned) PARTITIONED=1; shift ;;
    *) echo "unknown option $1 (--tags N --days D --speed X --seed S --debug --duration S --partitioned)" >&2; exit 2 ;;
  esac
done

for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "installing $tool"; apt-get update -qq && apt-get install -y -qq "$tool" >/dev/null; }
done
./scripts/nats-setup.sh >/dev/null
NATS=.tools/nats-server/nats-server

echo "== building ($PROFILE; a first release build takes several minutes)"
if [ "$PROFILE" = release ]; then
  cargo build --release --workspace --bins --locked -q
else
  cargo build --workspace --bins --locked -q
fi
./scripts/console-setup.sh
BIN="${CARGO_TARGET_DIR:-target}/$PROFILE"

DEMO=demo-data/cluster
rm -rf "$DEMO"
mkdir -p "$DEMO"
SIM=(--tags "$TAGS" --days "$DAYS" --seed "$SEED")
echo "== simulating $TAGS tags over $DAYS days (orders, crimes, ground truth in $DEMO/sim)"
"$BIN/tagsim" generate "${SIM[@]}" --out "$DEMO/sim" >/dev/null

# One tag key and one bootstrap admin token for every node: a tag's secret must work on any node.
TAGSTREAM_TAG_KEY="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
TAGSTREAM_ADMIN_TOKEN="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export TAGSTREAM_TAG_KEY TAGSTREAM_ADMIN_TOKEN
# For starting a node again by hand: `. demo-data/cluster/env`.
printf 'export TAGSTREAM_TAG_KEY=%s TAGSTREAM_ADMIN_TOKEN=%s\n' "$TAGSTREAM_TAG_KEY" "$TAGSTREAM_ADMIN_TOKEN" > "$DEMO/env"
chmod 600 "$DEMO/env"

pids=()
cleanup() {
  trap - EXIT INT TERM
  echo
  echo "== stopping the nodes, the simulator and the NATS servers"
  # The pid files hold what runs now (a node restarted by hand included).
  for f in "$DEMO"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

NATS_PORTS=(4222 4223 4224) ROUTE_PORTS=(6222 6223 6224)
ROUTES="nats://127.0.0.1:6222,nats://127.0.0.1:6223,nats://127.0.0.1:6224"
URLS="\"nats://127.0.0.1:4222\", \"nats://127.0.0.1:4223\", \"nats://127.0.0.1:4224\""
start_nats() { # index
  local i="$1"
  "$NATS" -a 127.0.0.1 -p "${NATS_PORTS[$i]}" -js -n "n$i" -sd "$DEMO/nats/n$i" \
    --cluster_name tagstream-demo --cluster "nats://127.0.0.1:${ROUTE_PORTS[$i]}" --routes "$ROUTES" \
    > "$DEMO/nats-n$i.log" 2>&1 &
  echo $! > "$DEMO/nats-n$i.pid"
}
echo "== starting three NATS servers (ports ${NATS_PORTS[*]}, one JetStream cluster)"
for i in 0 1 2; do start_nats "$i"; done

INGEST=(7701 7702 7703) HTTP=(7801 7802 7803) OWNS=("0-31" "32-63" "none")
for i in 0 1 2; do
  mkdir -p "$DEMO/node$i"
  {
    [ -n "$PARTITIONED" ] && printf '[pipeline]\nclock_partitions = 64\n\n'
    cat <<TOML
[log]
backend = "jetstream"

[log.jetstream]
urls = [$URLS]
replicas = 3
TOML
    [ -n "$PARTITIONED" ] && printf 'own_partitions = "%s"\n' "${OWNS[$i]}"
    true
  } > "$DEMO/node$i.toml"
done
[ -n "$PARTITIONED" ] && echo "== partitioned: node 1 runs the rules of partitions 0-31, node 2 of 32-63, node 3 none"
true
start_node() { # index [orders]
  local i="$1"; shift
  "$BIN/tagstream" serve --config "$DEMO/node$i.toml" --data-dir "$DEMO/node$i" \
    --ingest-addr "127.0.0.1:${INGEST[$i]}" --http-addr "127.0.0.1:${HTTP[$i]}" "$@" \
    > "$DEMO/node$i.out" 2>> "$DEMO/node$i.log" &
  echo $! > "$DEMO/node$i.pid"
}
wait_listening() { # index: 0 when the node is up, 1 when it exited
  local i="$1"
  for _ in $(seq 1 600); do
    grep -q listening "$DEMO/node$i.out" 2>/dev/null && return 0
    kill -0 "$(cat "$DEMO/node$i.pid")" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
# Node 0 first (it imports the orders into the stream); it refuses to start until the three
# servers have elected a leader and the stream exists, so try again for a while.
echo "== starting node 0 (imports the orders), then nodes 1 and 2"
for attempt in $(seq 1 30); do
  start_node 0 --orders "$DEMO/sim/orders.json"
  wait_listening 0 && break
  [ "$attempt" = 30 ] && { echo "node 0 did not start; see $DEMO/node0.log" >&2; exit 1; }
  sleep 1
done
for i in 1 2; do
  start_node "$i"
  wait_listening "$i" || { echo "node $i did not start; see $DEMO/node$i.log" >&2; exit 1; }
done

API=http://127.0.0.1:7802
caseload=$(jq -c '[.people[:5][].id]' "$DEMO/sim/orders.json")
user() { # name role [extra JSON fields]
  curl -sf -X POST "$API/v1/users" -H "Authorization: Bearer $TAGSTREAM_ADMIN_TOKEN" \
    -H "Content-Type: application/json" -d "{\"name\":\"$1\",\"role\":\"$2\"${3:+,$3}}" | jq -r .token
}
HUB=$(user demo-hub hub)
PRACTITIONER=$(user demo-practitioner practitioner "\"caseload\":$caseload")
POLICE=$(user demo-police police '"force":"AvonSomerset"')
ADMIN=$(user demo-admin admin)

cat <<TXT

== tagstream cluster is running: three nodes on one JetStream stream (R3 on three NATS servers)
  node 0: console http://127.0.0.1:7801/   tag ingest 127.0.0.1:7701   log $DEMO/node0.log
  node 1: console http://127.0.0.1:7802/   tag ingest 127.0.0.1:7702   log $DEMO/node1.log
  node 2: console http://127.0.0.1:7803/   tag ingest 127.0.0.1:7703   log $DEMO/node2.log
  NATS:   nats://127.0.0.1:4222, :4223, :4224 (stores in $DEMO/nats)
  Every node serves the same alerts, people and trails: sign in to any console with a token.
  demo tokens (console sign-in, or Authorization: Bearer … for the API), valid on every node:
    hub           $HUB
    practitioner  $PRACTITIONER   (caseload: $caseload)
    police        $POLICE
    admin         $ADMIN
  compare the nodes:
    for p in 7801 7802 7803; do curl -s -H "Authorization: Bearer $HUB" -H "X-Purpose: demo" http://127.0.0.1:\$p/v1/alerts/export | sha256sum; done
  watch failover (the simulator's tags move to the next node; its summary times it):
    kill -9 \$(cat $DEMO/node0.pid)        # a node dies; its tags go to nodes 1 and 2
    kill -9 \$(cat $DEMO/nats-n2.pid)      # a NATS server dies; two of three keep the stream
  bring a node back (same data and ports; it reads on from the stream):
    (. $DEMO/env; $BIN/tagstream serve --config $DEMO/node0.toml --data-dir $DEMO/node0 \\
      --ingest-addr 127.0.0.1:7701 --http-addr 127.0.0.1:7801 >> $DEMO/node0.out 2>> $DEMO/node0.log & echo \$! > $DEMO/node0.pid)
  (a NATS server comes back with the same command as in this script: see $DEMO/nats-n2.log)

== police upload the simulated crime batches through node 1 (every node matches them):
TXT
for batch in "$DEMO"/sim/crimes/*.csv; do
  "$BIN/tagstream" crimes import --server "$API" --token "$POLICE" "$batch" |
    jq -r '"  \(.source): \(.status), \(.imported) of \(.rows) rows imported, \(.errors | length) rejected"'
done

echo
echo "== streaming the simulated tags into all three nodes at ${SPEED}x (log: $DEMO/tagsim.log)"
"$BIN/tagsim" stream "${SIM[@]}" --connect 127.0.0.1:7701,127.0.0.1:7702,127.0.0.1:7703 \
  --speed "$SPEED" --progress-s 30 > "$DEMO/tagsim.out" 2> "$DEMO/tagsim.log" &
sim_pid=$!
pids+=("$sim_pid")
# When the simulator ends, its summary: batches acknowledged, reconnects, failover times.
( while kill -0 "$sim_pid" 2>/dev/null; do sleep 1; done
  echo "== the simulator finished:"; sed 's/^/  /' "$DEMO/tagsim.out" "$DEMO/tagsim.log" | tail -n 3 ) &
pids+=($!)
echo "== node 1's alerts as they happen (Ctrl-C stops everything):"

# Follow node 1's live alert stream: one line per alert raised or updated by the rules.
. scripts/follow-alerts.sh
follow() { follow_alerts "$API" "$HUB"; }
if [ -n "$DURATION" ]; then
  follow &
  pids+=($!)
  sleep "$DURATION"
  echo "== --duration $DURATION s passed; the simulator's last progress line:"
  tail -n 1 "$DEMO/tagsim.log" 2>/dev/null || true
else
  # Waited for in the background, so a TERM runs the cleanup at once (see scripts/demo.sh).
  follow &
  pids+=($!)
  wait "$!"
fi
