#!/usr/bin/env bash
# How long a node takes to start with and without its checkpoint (docs/snapshots.md, "Node
# checkpoints"; BENCHMARKS.md, session 10):
#   scripts/checkpoint-bench.sh [--tags N] [--days D] [--cluster]
# Streams a simulated population (default 500 tags × 7 days) into a server, stops it, and times
# from exec to the listening line: (1) the start that replays the whole log and writes the
# checkpoint, (2) a start from that checkpoint, (3) a copy of the same data directory started
# with [snapshots] enabled = false. With --cluster the log is a JetStream stream on one local
# NATS server (R1), and two more starts are timed: (4) a node joining on an empty data directory
# from the snapshot start (1) uploaded, (5) one on an empty directory with snapshots off, which
# reads the whole stream. Each start's checkpoint record and records replayed are read from
# /metrics. Work files go to target/checkpoint-bench/.
set -euo pipefail
cd "$(dirname "$0")/.."

tags=500
days=7
cluster=
while [ $# -gt 0 ]; do
    case "$1" in
    --cluster) cluster=1; shift ;;
    --tags) tags="$2"; shift 2 ;;
    --days) days="$2"; shift 2 ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

cargo build --release --locked --workspace --bins
bin="${CARGO_TARGET_DIR:-target}/release"
work=target/checkpoint-bench
rm -rf "$work"
mkdir -p "$work"
sim=(--tags "$tags" --days "$days" --seed 1)
"$bin/tagsim" generate "${sim[@]}" --out "$work/sim" >/dev/null
ingest=127.0.0.1:7761
http=127.0.0.1:7861

pid=
nats_pid=
stop() { [ -z "$pid" ] || { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; }; }
finish() { stop; [ -z "$nats_pid" ] || { kill "$nats_pid" 2>/dev/null || true; wait "$nats_pid" 2>/dev/null || true; }; }
trap finish EXIT INT TERM

# Every start gets this configuration (the log's backend); the "off" one adds snapshots off.
config="$work/node.toml"
: > "$config"
if [ -n "$cluster" ]; then
    ./scripts/nats-setup.sh >/dev/null
    .tools/nats-server/nats-server -a 127.0.0.1 -p 4299 -js -sd "$work/nats" > "$work/nats.log" 2>&1 &
    nats_pid=$!
    for _ in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/4299) 2>/dev/null && break; sleep 0.1; done
    printf '[log]\nbackend = "jetstream"\n\n[log.jetstream]\nurls = ["nats://127.0.0.1:4299"]\nreplicas = 1\n' > "$config"
fi
cp "$config" "$work/off.toml"
printf '\n[snapshots]\nenabled = false\n' >> "$work/off.toml"

# Starts a server on data directory $1 (extra arguments after it) and waits for its listening
# line; `elapsed` is the seconds that took.
elapsed=
start() {
    local data="$1"
    shift
    local t0 t1
    t0=$(date +%s.%N)
    "$bin/tagstream" serve --data-dir "$data" --ingest-addr "$ingest" --http-addr "$http" \
        --config "${start_config:-$config}" "$@" \
        > "$work/serve.out" 2>> "$work/serve.log" &
    pid=$!
    for _ in $(seq 1 6000); do
        grep -q listening "$work/serve.out" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || { echo "the server stopped; see $work/serve.log" >&2; exit 1; }
        sleep 0.01
    done
    t1=$(date +%s.%N)
    elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}

metric() {
    curl -s "http://$http/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}

echo "streaming $tags tags × $days days into a server" >&2
start "$work/data" --orders "$work/sim/orders.json"
"$bin/tagsim" stream "${sim[@]}" --connect "$ingest" --key-file "$work/data/tag.key" --speed 0 \
    2> "$work/tagsim.log"
stop
cp -a "$work/data" "$work/data-full"

report() {
    printf '%-42s %6s s   checkpoint record %s, records replayed %s\n' "$1" "$elapsed" \
        "$(metric tagstream_startup_checkpoint_record)" \
        "$(metric tagstream_startup_records_replayed)"
}
start "$work/data"
report "whole log replayed, checkpoint written"
stop
start "$work/data"
report "from the checkpoint"
stop
start_config="$work/off.toml" start "$work/data-full"
report "whole log replayed, checkpoints off"
stop
if [ -n "$cluster" ]; then
    start "$work/data-joined"
    report "empty directory, joined from the snapshot"
    stop
    start_config="$work/off.toml" start "$work/data-empty"
    report "empty directory, whole stream read"
    stop
fi
if [ -n "$cluster" ]; then
    echo "stream (NATS store): $(du -sh "$work/nats" | cut -f1), checkpoint: $(du -sh "$work/data/node.checkpoint" | cut -f1)"
else
    echo "log: $(du -sh "$work/data/log" | cut -f1), checkpoint: $(du -sh "$work/data/node.checkpoint" | cut -f1)"
fi
