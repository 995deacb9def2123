#!/usr/bin/env bash
# Installs what the web console needs, if missing: its npm packages (Leaflet; playwright-core for
# the browser tests), pinned by web/package-lock.json. With --browser, also Debian's Chromium for
# the browser tests. Used by scripts/demo.sh and scripts/test.sh; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "$@" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$@" >/dev/null; }
}

command -v npm >/dev/null || { echo "installing Node.js and npm"; apt_install nodejs npm; }
# npm ci only when the installed packages are older than the lock file (or absent).
if [ ! web/node_modules/.package-lock.json -nt web/package-lock.json ]; then
  echo "installing the console's npm packages (web/package-lock.json)"
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ "${1:-}" = --browser ] && ! command -v chromium >/dev/null; then
  echo "installing Debian's chromium for the browser tests"
  apt_install chromium
fi
