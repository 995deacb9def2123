#!/usr/bin/env bash
# Installs the API contract checkers into a venv under target/ (pinned versions, from PyPI):
# openapi-spec-validator (is docs/openapi.json a valid OpenAPI 3.1 document?), schemathesis (a
# schema-driven fuzzer run against the real server) and prometheus-client (its exposition-format
# parser reads /metrics); and xmllint (Debian's libxml2-utils), with which tests/export_formats.rs
# validates GPX and KML exports against their XML schemas. Idempotent: what is there is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v xmllint >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq libxml2-utils >/dev/null
fi

VENV="${API_CHECK_VENV:-target/api-check-venv}"
PINS=(
  "openapi-spec-validator==0.9.0"
  "schemathesis==4.32.5"
  "prometheus-client==0.26.0"
)
STAMP="$VENV/.pins"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "${PINS[*]}" ]]; then
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
echo "${PINS[*]}" >"$STAMP"
