#!/usr/bin/env bash
# Drives Ironbridge's MCP server with the official Python `mcp` client: creates a venv under
# /tmp, installs the pinned SDK from PyPI, builds the debug binary, and runs client.py, which
# starts `ironbridge serve` on a temporary database, creates sandbox connections through the
# REST API and checks the tools over Streamable HTTP (`/mcp`) and stdio (`ironbridge mcp
# --stdio`). Exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac  # cargo resolves it from $root
venv="${MCP_CLIENT_VENV:-/tmp/ironbridge-mcp-client-venv}"

python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"

(cd "$root" && cargo build --quiet --locked -p ironbridge)

"$venv/bin/python" -W ignore "$here/client.py" "$target/debug/ironbridge"
