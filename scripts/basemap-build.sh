#!/usr/bin/env bash
# Rebuilds the synthetic street basemap the console shows in the demo and the tests:
#   scripts/basemap-build.sh [--seed N]
# `tagsim basemap` draws a made-up street network around the simulated area's centre (Bristol)
# into PNG tiles, zooms 11–16, and packs them into fixtures/basemap/demo-streets.mbtiles, which is
# checked in: the demo and the tests never run this. The archive says it is synthetic (metadata
# `synthetic = true`, and its attribution); it is not real geography and never evidence.
set -euo pipefail
cd "$(dirname "$0")/.."

seed=1
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) seed="$2"; shift 2 ;;
    -h | --help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (--seed N)" >&2; exit 2 ;;
  esac
done

cargo build -p tagsim --bin tagsim --locked -q
mkdir -p fixtures/basemap
"${CARGO_TARGET_DIR:-target}/debug/tagsim" basemap --seed "$seed" --out fixtures/basemap/demo-streets.mbtiles
