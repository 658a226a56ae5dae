#!/usr/bin/env bash
# Verifies Ironbridge's real webhook deliveries with the public Standard Webhooks library for
# Python: creates a venv under /tmp, installs the library from PyPI, builds the binary, and runs
# verify.py, which starts `ironbridge serve` on a temporary database with a loopback receiver
# and checks signatures, tampering, secret rotation and payloads. Exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac  # cargo resolves it from $root
venv="${WEBHOOK_VERIFY_VENV:-/tmp/ironbridge-webhook-verify-venv}"

python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"

(cd "$root" && cargo build --quiet --locked -p ironbridge)
bin="$target/debug/ironbridge"

# verify.py stops the server it starts in every case (SIGTERM, then kill) and prints
# "N passed, N failed"; it exits non-zero if any check failed.
"$venv/bin/python" -W ignore "$here/verify.py" "$bin"
