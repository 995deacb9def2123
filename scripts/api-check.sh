#!/usr/bin/env bash
# The API against its contract, with outside tools (installed by scripts/api-check-setup.sh):
#   1. openapi-spec-validator: docs/openapi.json is a valid OpenAPI 3.1 document;
#   2. the running server (debug `tagstream serve` on a fresh data directory with the health
#      fixture's orders, users made with `tagstream users add`): /metrics read by
#      prometheus-client's exposition parser, every family with HELP and TYPE, summaries with
#      _sum and _count;
#   3. schemathesis fuzzes every operation (but the endless SSE stream) from the document, as a
#      police, practitioner, hub and admin user in turn, checking: no 5xx, every status and
#      content type documented, every JSON answer valid against its schema.
# Any finding fails the script. Bounded: API_CHECK_EXAMPLES cases per operation and phase
# (default 12), API_CHECK_MAX_TIME seconds per role at most (default 35; about 3 minutes in all).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET="${CARGO_TARGET_DIR:-target}"
VENV="${API_CHECK_VENV:-target/api-check-venv}"
EXAMPLES="${API_CHECK_EXAMPLES:-12}"
MAX_TIME="${API_CHECK_MAX_TIME:-35}"
export API_CHECK_VENV="$VENV"

./scripts/api-check-setup.sh
VENV="$(cd "$VENV" && pwd)"
ROOT="$(pwd)"
PY="$VENV/bin/python"

echo "== openapi-spec-validator docs/openapi.json"
"$VENV/bin/openapi-spec-validator" docs/openapi.json

cargo build --locked --bin tagstream --quiet
BIN="$TARGET/debug/tagstream"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tagstream-api-check.XXXXXX")"
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

DATA="$WORK/data"
mkdir -p "$DATA"
token() { "$BIN" users add --data-dir "$DATA" "$@" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"])'; }
HUB="$(token --name api-hub --role hub)"
POLICE="$(token --name api-police --role police --force AvonSomerset)"
PRACTITIONER="$(token --name api-practitioner --role practitioner --caseload P1,P2)"
ADMIN="$(token --name api-admin --role admin)"

TAGSTREAM_TAG_KEY="api-check-tag-key-of-at-least-32-bytes" TAGSTREAM_ADMIN_TOKEN="api-check-bootstrap-$$" RUST_LOG=warn \
  "$BIN" serve --data-dir "$DATA" --orders fixtures/health/orders.json \
  --http-addr 127.0.0.1:0 --ingest-addr 127.0.0.1:0 >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER_PID=$!
for _ in $(seq 1 100); do
  [[ -s "$WORK/serve.out" ]] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.err" >&2; exit 1; }
  sleep 0.1
done
ADDR="$("$PY" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["http_addr"])' "$WORK/serve.out")"
URL="http://$ADDR"
for _ in $(seq 1 100); do
  curl -fsS "$URL/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

echo "== /metrics through prometheus-client's parser"
curl -fsS "$URL/metrics" >"$WORK/metrics.txt"
"$PY" - "$WORK/metrics.txt" <<'EOF'
import re, sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
families = list(text_string_to_metric_families(text))
assert families, "no metric families"
helped = set(re.findall(r"^# HELP (\S+) ", text, re.M))
typed = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
problems = []
for f in families:
    if f.name not in helped and f.name + "_total" not in helped:
        problems.append(f"{f.name}: no HELP")
    if f.name not in typed and f.name + "_total" not in typed:
        problems.append(f"{f.name}: no TYPE")
    if f.type == "summary":
        names = {s.name for s in f.samples}
        for suffix in ("_sum", "_count"):
            if f.name + suffix not in names:
                problems.append(f"summary {f.name}: no {suffix}")
if problems:
    sys.exit("\n".join(problems))
print(f"{len(families)} families, all with HELP and TYPE; summaries with _sum and _count")
EOF

# Something to read besides the fixture's people and orders: the police fixture batches (one
# clean, one with rejected rows), so batch lists, reports and crimes are checked against their
# schemas with real content.
# (the clean one is Avon and Somerset's, sent by its police user; the other the Met's, by the hub).
for upload in "clean $POLICE" "mixed $HUB"; do
  read -r batch who <<<"$upload"
  curl -fsS -X POST -H "Authorization: Bearer $who" -H "Content-Type: text/csv" \
    --data-binary "@fixtures/crimes/$batch.csv" "$URL/v1/crimes/batches?filename=$batch.csv" >/dev/null
done

FAILED=0
for role in police practitioner hub admin; do
  case "$role" in
    police) TOKEN="$POLICE" ;;
    practitioner) TOKEN="$PRACTITIONER" ;;
    hub) TOKEN="$HUB" ;;
    admin) TOKEN="$ADMIN" ;;
  esac
  echo "== schemathesis as $role"
  # From the scratch directory: schemathesis keeps state in ./.schemathesis.
  if ! (cd "$WORK" && "$VENV/bin/st" run "$ROOT/docs/openapi.json" --url "$URL" \
    -H "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --exclude-path /v1/alerts/stream \
    --max-examples "$EXAMPLES" --max-time "$MAX_TIME" --request-timeout 20 \
    --seed 7 --generation-database none --no-color --output-truncate true \
    --warnings off); then
    FAILED=1
  fi
done
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "the server died during the run" >&2
  cat "$WORK/serve.err" >&2
  exit 1
fi
if [[ "$FAILED" != 0 ]]; then
  echo "api-check: schemathesis found problems (above)" >&2
  exit 1
fi
echo "api-check: the document is valid and the server keeps to it"
