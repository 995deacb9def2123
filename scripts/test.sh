#!/usr/bin/env bash
# The whole test suite: every crate's unit and integration tests, including the end-to-end tests
# that start the real server, then the web console's browser tests (headless Chromium against the
# real server). Installs nothing by hand: whatever a test needs is installed here.
set -euo pipefail
cd "$(dirname "$0")/.."

# Lean debug test builds on a 2-core machine.
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
# A clean checkout gains nothing from incremental caches, which would double the disk a build takes.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# Every binary first: some tests drive the simulator binary against the server binary.
cargo build --workspace --locked --bins
./scripts/api-check-setup.sh # xmllint (GPX/KML schema tests) and the API checkers' venv
./scripts/nats-setup.sh # the NATS server (JetStream) the cluster tests start
./scripts/documents-setup.sh # poppler-utils and qpdf: the document tests read the PDFs
cargo test --workspace --locked "$@"
./scripts/api-check.sh # OpenAPI validator, /metrics parser, schemathesis against the server

# The console: npm packages and Debian's Chromium, then the browser tests against
# target/debug/tagstream (screenshots in target/browser-artifacts/).
./scripts/console-setup.sh --browser
rm -rf "${CARGO_TARGET_DIR:-target}/browser-artifacts" # this run's screenshots only
node --test tests/browser/
