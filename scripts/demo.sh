#!/usr/bin/env bash
# The main job: tagstream serving a simulated population, on an embedded store in ./demo-data.
#   ./scripts/demo.sh [--tags N] [--days D] [--speed X] [--teltonika]
# Builds release binaries, installs the web console's npm packages, generates people, orders and
# tags (Bristol, Avon and Somerset), starts the server (API and web console), creates demo users
# (tokens printed), streams the tags in at X times real time and prints alerts as they happen.
# --teltonika: every tag is a Teltonika tracker instead (Codec 8 on 127.0.0.1:5027, a loopback
# listener declared private; each IMEI bound to its tag through the API first). A tracker sends
# GPS fixes and battery events only: RF and alcohol readings are not sent.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

TAGS=200 DAYS=3 SPEED=600 SEED=42 TELTONIKA=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tags) TAGS="$2"; shift 2 ;;
    --days) DAYS="$2"; shift 2 ;;
    --speed) SPEED="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    --teltonika) TELTONIKA=1; shift ;;
    *) echo "unknown option $1 (--tags N --days D --speed X --seed S --teltonika)" >&2; exit 2 ;;
  esac
done

for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "installing $tool"; apt-get update -qq && apt-get install -y -qq "$tool" >/dev/null; }
done

echo "== building (release; the first build takes several minutes)"
cargo build --release --workspace --locked -q
./scripts/console-setup.sh
BIN="${CARGO_TARGET_DIR:-target}/release"

DEMO=demo-data
rm -rf "$DEMO"
mkdir -p "$DEMO"
SIM=(--tags "$TAGS" --days "$DAYS" --seed "$SEED")

echo "== simulating $TAGS tags over $DAYS days (orders, crimes, ground truth in $DEMO/sim)"
"$BIN/tagsim" generate "${SIM[@]}" --out "$DEMO/sim" >/dev/null

DATA="$DEMO/server"
mkdir -p "$DATA"
caseload=$(jq -r '[.people[:5][].id] | join(",")' "$DEMO/sim/orders.json")
token() { "$BIN/tagstream" users add --data-dir "$DATA" "$@" | jq -r .token; }
HUB=$(token --name demo-hub --role hub)
PRACTITIONER=$(token --name demo-practitioner --role practitioner --caseload "$caseload")
POLICE=$(token --name demo-police --role police --force AvonSomerset)
ADMIN=$(token --name demo-admin --role admin)

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

CONFIG=()
if [ "$TELTONIKA" = 1 ]; then
  # Loopback only: the one network where "private" is true by construction.
  printf '[teltonika]\nlisten = "127.0.0.1:5027"\nprivate_network = true\n' > "$DEMO/teltonika.toml"
  CONFIG=(--config "$DEMO/teltonika.toml")
fi

# Street tiles from the checked-in synthetic archive (scripts/basemap-build.sh): made-up streets.
"$BIN/tagstream" serve "${CONFIG[@]}" --data-dir "$DATA" --orders "$DEMO/sim/orders.json" \
  --tile-archive fixtures/basemap/demo-streets.mbtiles \
  --ingest-addr 127.0.0.1:7700 --http-addr 127.0.0.1:7800 > "$DEMO/serve.out" 2> "$DEMO/serve.log" &
pids+=($!)
for _ in $(seq 1 100); do grep -q listening "$DEMO/serve.out" 2>/dev/null && break; sleep 0.1; done
grep -q listening "$DEMO/serve.out" || { echo "the server did not start; see $DEMO/serve.log" >&2; exit 1; }

API=http://127.0.0.1:7800
cat <<TXT

== tagstream is running
  web console:    $API/   (open it in a browser and sign in with a token below)
  API:            $API   (OpenAPI description: $API/openapi.json, metrics: $API/metrics)
  tag ingest:     127.0.0.1:7700 (native protocol, docs/protocol.md)
  data:           $DATA (durable log, metadata.sqlite3, alerts.sqlite3)
  demo tokens (console sign-in, or Authorization: Bearer … for the API):
    hub           $HUB
    practitioner  $PRACTITIONER   (caseload: $caseload)
    police        $POLICE   (crime batches: $DEMO/sim/crimes/*.csv, uploaded below)
    admin         $ADMIN
  try:
    curl -s -H "Authorization: Bearer $HUB" -H "X-Purpose: demo" "$API/v1/alerts/count"
    curl -s -H "Authorization: Bearer $PRACTITIONER" -H "X-Purpose: demo" "$API/v1/people"
    curl -N -H "Authorization: Bearer $HUB" -H "X-Purpose: demo" "$API/v1/alerts/stream"

== police upload the simulated crime batches (hits are found live as the trails arrive):
TXT
for batch in "$DEMO"/sim/crimes/*.csv; do
  "$BIN/tagstream" crimes import --server "$API" --token "$POLICE" "$batch" |
    jq -r '"  \(.source): \(.status), \(.imported) of \(.rows) rows imported, \(.errors | length) rejected (see the police page)"'
done
CONNECT=(--connect 127.0.0.1:7700)
if [ "$TELTONIKA" = 1 ]; then
  echo
  echo "== binding each tag's Teltonika IMEI ($DEMO/sim/devices.json) through the API"
  jq -c '.[]' "$DEMO/sim/devices.json" | while read -r device; do
    imei=$(jq -r .device <<<"$device")
    curl -sf -X PUT -H "Authorization: Bearer $ADMIN" -H "X-Purpose: demo fitting" \
      -H "Content-Type: application/json" -d "$(jq -c '{tag}' <<<"$device")" \
      "$API/v1/devices/teltonika/$imei" >/dev/null
  done
  echo "  $(jq length "$DEMO/sim/devices.json") trackers bound; they connect to 127.0.0.1:5027"
  CONNECT=(--connect 127.0.0.1:5027 --protocol teltonika)
fi
cat <<TXT

== streaming the simulated tags at ${SPEED}x real time; alerts as they happen:
TXT

"$BIN/tagsim" stream "${SIM[@]}" "${CONNECT[@]}" --key-file "$DATA/tag.key" \
  --speed "$SPEED" --progress-s 30 2> "$DEMO/tagsim.log" &
pids+=($!)

# Follow the hub's live alert stream: one line per alert raised or updated by the rules.
. scripts/follow-alerts.sh
# In the background and waited for: bash runs a trap only once the foreground command ends, so
# a follower in the foreground would keep a TERM (kill, timeout) from stopping the demo.
follow_alerts "$API" "$HUB" &
pids+=($!)
wait "$!"
