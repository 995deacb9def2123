#!/usr/bin/env bash
# Detection quality over several simulated populations, pooled (docs/quality.md):
#   scripts/quality-report.sh [--tags N] [--days D] [--config FILE] [SEED…] [-- TAGSIM_OPTION…]
# For each seed: tagsim generates N tags × D days (default 1,000 × 7), tagstream replays them with
# their crime batches (--final), and one report pooled over every seed is printed, per alert type
# and by output, with the hub's burden. Options after `--` go to `tagsim generate` (e.g. raised
# rates for the rare types: see BENCHMARKS.md). --config gives replay a server config's [pipeline]
# and [rules] (e.g. clock_partitions). Work files go to target/quality/.
set -euo pipefail
cd "$(dirname "$0")/.."

tags=1000
days=7
config=()
seeds=()
sim_args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --) shift; sim_args=("$@"); break ;;
    --tags) tags="$2"; shift 2 ;;
    --days) days="$2"; shift 2 ;;
    --config) config=(--config "$2"); shift 2 ;;
    -h | --help) sed -n '2,8p' "$0"; exit 0 ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    *) seeds+=("$1"); shift ;;
    esac
done
# The five seeds of BENCHMARKS.md's quality report (20261206 was held out of all tuning).
[ ${#seeds[@]} -gt 0 ] || seeds=(9731 11 22 33 20261206)

cargo build --release --locked --workspace --bins
bin="${CARGO_TARGET_DIR:-target}/release"
start=2026-03-02T00:00:00Z
until=$(date -u -d "2026-03-02 + $days days" +%Y-%m-%dT%H:%M:%SZ)
args=()
for seed in "${seeds[@]}"; do
    variant="$tags-$days-$seed${sim_args[*]:+-$(echo "${sim_args[*]}" | md5sum | cut -c1-8)}"
    pop="target/quality/pop-$variant"
    out="target/quality/out-$variant"
    rm -rf "$pop" "$out"
    echo "seed $seed: generating $tags tags × $days days, replaying" >&2
    "$bin/tagsim" generate --tags "$tags" --days "$days" --seed "$seed" --start "$start" \
        "${sim_args[@]}" --out "$pop" >/dev/null
    "$bin/tagstream" replay --orders "$pop/orders.json" --readings "$pop/readings.bin" \
        --crimes "$pop"/crimes/* --out "$out" --final "${config[@]}" >/dev/null
    args+=(--truth "$pop/truth.jsonl" --outputs "$out" --orders "$pop/orders.json")
done
"$bin/tagstream" score "${args[@]}" --from "$start" --until "$until"
