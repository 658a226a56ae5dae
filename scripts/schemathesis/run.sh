#!/usr/bin/env bash
# Property-based tests of the HTTP API against its own OpenAPI document with schemathesis
# (PyPI): creates a venv under /tmp with pinned versions, builds the binary, and runs run.py,
# which starts `ironbridge serve` on a temporary data directory with an organization and a
# sandbox connection and runs schemathesis with a fixed seed. Exits non-zero on any finding:
# a 5xx, an answer the document does not describe, a request the document allows that the
# server refuses, or one it forbids that the server accepts.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac  # cargo resolves it from $root
venv="${SCHEMATHESIS_VENV:-/tmp/ironbridge-schemathesis-venv}"

# A fresh Debian machine may lack the venv module (python3-venv); install it as test.sh
# installs PostgreSQL.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"

(cd "$root" && cargo build --quiet --locked -p ironbridge)
bin="$target/debug/ironbridge"

# About a minute on two cores (2,400 requests); bounded at five. run.py always stops the
# server it starts.
timeout --signal=TERM 300 "$venv/bin/python" -W ignore "$here/run.py" "$bin" "$venv/bin/schemathesis"
