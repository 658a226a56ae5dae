#!/usr/bin/env bash
# Drives Link and the dashboard in a real browser: headless Chromium (Debian's `chromium` and
# `chromium-driver`, installed when missing) through Selenium from PyPI in a venv under /tmp.
# Builds the binary, then browse.py starts `ironbridge serve` on a temporary database and the
# emulated systems with `ironbridge emulate`, and walks every flow, writing a screenshot of
# each page to the directory given (default: target/screenshots). Exits non-zero on a failure.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac  # cargo resolves it from $root
shots="${1:-$target/screenshots}"
venv="${BROWSER_TEST_VENV:-/tmp/ironbridge-browser-venv}"

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "Chromium is not installed: installing chromium and chromium-driver from Debian's packages"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"

(cd "$root" && cargo build --quiet --locked -p ironbridge)
mkdir -p "$shots"
"$venv/bin/python" -W ignore "$here/browse.py" "$target/debug/ironbridge" "$shots"
