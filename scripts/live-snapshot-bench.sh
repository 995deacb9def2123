#!/usr/bin/env bash
# Rough cost of a live snapshot round (docs/cluster.md, "Snapshots: restarting and joining"):
#   scripts/live-snapshot-bench.sh [--days D]
# Streams 500 tags x D days (default 7) into one node on a local NATS server (R1) with
# [snapshots] live_interval_s = 15, stops it, removes its scratch directory
# (DATA/snapshot-follower), starts it again and imports one crime batch (the next round reads
# the whole stream), then another (a round reading one record). Prints each round's time and
# records read (from /metrics) and the node's RSS before and at most during it. Work files go
# to target/livesnap-bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
days=7
while [ $# -gt 0 ]; do
    case "$1" in
    --days) days="$2"; shift 2 ;;
    -h | --help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
cargo build --release --locked --workspace --bins
bin="${CARGO_TARGET_DIR:-target}/release"
./scripts/nats-setup.sh >/dev/null
work=target/livesnap-bench
rm -rf "$work"; mkdir -p "$work"
sim=(--tags 500 --days "$days" --seed 1)
"$bin/tagsim" generate "${sim[@]}" --out "$work/sim" >/dev/null
ingest=127.0.0.1:7763; http=127.0.0.1:7863
.tools/nats-server/nats-server -a 127.0.0.1 -p 4297 -js -sd "$work/nats" > "$work/nats.log" 2>&1 &
nats_pid=$!
pid=
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null; kill $nats_pid 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/4297) 2>/dev/null && break; sleep 0.1; done
printf '[snapshots]\nlive_interval_s = 15\nlive_records = 0\n\n[log]\nbackend = "jetstream"\n\n[log.jetstream]\nurls = ["nats://127.0.0.1:4297"]\nreplicas = 1\n' > "$work/node.toml"
start() {
  "$bin/tagstream" serve --data-dir "$work/data" --ingest-addr "$ingest" --http-addr "$http" \
     --config "$work/node.toml" "$@" > "$work/serve.out" 2>> "$work/serve.log" &
  pid=$!
  for _ in $(seq 1 6000); do grep -q listening "$work/serve.out" 2>/dev/null && break; sleep 0.01; done
}
metric() { curl -s "http://$http/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
rss() { awk '/VmRSS/ {print $2}' /proc/$pid/status; }
# Waits for the next uploaded round; prints RSS before and the max during it.
watch_round() {
  local before n0 max r
  n0=$(metric 'tagstream_live_snapshots_total{outcome="uploaded"}')
  before=$(rss); max=$before
  for _ in $(seq 1 2400); do
    r=$(rss); [ "$r" -gt "$max" ] && max=$r
    [ "$(metric 'tagstream_live_snapshots_total{outcome="uploaded"}')" != "$n0" ] && break
    sleep 0.25
  done
  echo "$1: round $(metric tagstream_live_snapshot_round_seconds) s, $(metric tagstream_live_snapshot_round_records) records read, record $(metric tagstream_live_snapshot_record); node RSS before ${before} KiB, max during ${max} KiB"
}
start --orders "$work/sim/orders.json"
t0=$(date +%s)
"$bin/tagsim" stream "${sim[@]}" --connect "$ingest" --key-file "$work/data/tag.key" --speed 0 2> "$work/tagsim.log"
echo "streamed in $(( $(date +%s) - t0 )) s; stream end $(metric tagstream_committed_batches_total) batches"
grep "live snapshot uploaded" "$work/serve.log" | sed 's/\x1b\[[0-9;]*m//g' | sed 's/.*uploaded to the cluster//' | tail -20 || true
kill -TERM $pid; wait $pid || true; pid=
rm -rf "$work/data/snapshot-follower"
start
echo "restarted; checkpoint record $(metric tagstream_startup_checkpoint_record)"
token=$(cat "$work/data/admin.token")
crimes=("$work"/sim/crimes/*)
"$bin/tagstream" crimes import --server "http://$http" --token "$token" "${crimes[0]}" > /dev/null
watch_round "whole stream (scratch removed)"
"$bin/tagstream" crimes import --server "http://$http" --token "$token" "${crimes[1]}" > /dev/null
watch_round "incremental (one record after the last)"
du -sh "$work/data/snapshot-follower" "$work/nats"
