#!/usr/bin/env bash
# Runs public client libraries of NetSuite, SAP, Business Central and Samsara against the emulators
# (and, NexTraq having no client library, its one public integration's raw requests):
# creates a venv under /tmp, installs the clients from PyPI, starts the emulators with
# `ironbridge emulate` (Business Central twice: once over https for MSAL), runs one script per
# client and exits non-zero if any of them fails.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
venv="${EMULATOR_CLIENTS_VENV:-/tmp/ironbridge-emulator-clients-venv}"
records="${EMULATOR_CLIENTS_RECORDS:-200}"

python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"

(cd "$root" && cargo build --quiet --locked -p ironbridge)
bin="$target/debug/ironbridge"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

free_port() {
  "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Starts an emulator in this shell (not a subshell, so cleanup can stop it) and sets $base.
# With a second argument `tls`, it serves https and its authority's certificate is in $ca.
start() {
  local port scheme=http log="/tmp/ironbridge-emulator-$1${2:+-$2}.log"
  local extra=()
  port="$(free_port)"
  if [ "${2:-}" = tls ]; then
    scheme=https
    ca="/tmp/ironbridge-emulator-$1-$port-ca.pem"
    # MSAL signs its assertions with the machine's time: the emulator's clock follows it.
    extra=(--tls --tls-ca-out "$ca" --real-time)
  fi
  "$bin" emulate "$1" --port "$port" --seed 1 --records "$records" "${extra[@]}" >"$log" 2>&1 &
  pids+=("$!")
  base="$scheme://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    if "$venv/bin/python" -c "
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2]) if sys.argv[2] else None
urllib.request.urlopen(sys.argv[1], context=ctx)" "$base/__emulator" "${ca:-}" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "emulator $1 did not start; see $log" >&2
  return 1
}

start netsuite
ns="$base"
start sap
sap="$base"
start business-central
bc="$base"
ca=""
start business-central tls
bc_tls="$base"
bc_ca="$ca"
ca=""
start samsara
samsara="$base"
start nextraq
nextraq="$base"

failed=0
passed=0
run() {
  if env ${3:+REQUESTS_CA_BUNDLE="$3"} "$venv/bin/python" -W ignore "$here/$1" "$2"; then
    passed=$((passed + 1))
  else
    echo "FAILED: $1 against $2" >&2
    failed=$((failed + 1))
  fi
}
run netsuite_client.py "$ns"
run netsuite_m2m.py "$ns"
run sap_pyodata.py "$sap"
run bc_odata.py "$bc"
run bc_msal.py "$bc_tls" "$bc_ca"
run samsara_sdk.py "$samsara"
run nextraq_requests.py "$nextraq"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
