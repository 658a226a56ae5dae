#!/usr/bin/env bash
# Runs every check CI runs, on a fresh machine as on a developer's: makes sure PostgreSQL is
# up with a fresh test database, then formatting, clippy, every test suite on SQLite and on
# PostgreSQL, the scripted checks against public clients and the OpenAPI document, and the
# browser suite of Link and the dashboard (it installs Debian's chromium when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

PG_HOST=127.0.0.1
PG_PORT=5432
PG_USER=postgres
TEST_DB=ironbridge_test
export DATABASE_URL="postgres://${PG_USER}@${PG_HOST}:${PG_PORT}/${TEST_DB}"

log() { printf '\n==> %s\n' "$*"; }

pg_up() { pg_isready -h "$PG_HOST" -p "$PG_PORT" -q 2>/dev/null; }

ensure_postgres() {
  if ! command -v pg_isready >/dev/null 2>&1; then
    log "PostgreSQL is not installed: installing it from Debian's packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  if ! pg_up; then
    log "Starting PostgreSQL"
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$version" ]; then
      local hba="/etc/postgresql/$version/main/pg_hba.conf"
      # The suites connect as postgres over TCP without a password (trust, as on our machines).
      if [ -f "$hba" ] && ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
        sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
      fi
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    fi
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
  pg_up || { echo "PostgreSQL is not reachable on ${PG_HOST}:${PG_PORT}" >&2; exit 1; }
  log "Creating a fresh test database ${TEST_DB}"
  psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -qtc "DROP DATABASE IF EXISTS ${TEST_DB} WITH (FORCE)" >/dev/null
  psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -qtc "CREATE DATABASE ${TEST_DB}" >/dev/null
}

ensure_postgres

log "Formatting"
cargo fmt --all -- --check

log "Clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "Tests on SQLite (and the store contract suite on PostgreSQL too)"
cargo test --workspace --locked

log "Integration suites again, the API's on PostgreSQL"
# Same package selection as above, so nothing is rebuilt with other features.
TEST_BACKEND=postgres cargo test --workspace --locked --test it

log "Public client libraries of NetSuite, SAP and Business Central against the emulators"
bash scripts/emulator-clients/run.sh

log "The official Python MCP client against /mcp and ironbridge mcp --stdio"
bash scripts/mcp/run.sh

log "Standard Webhooks library (Python) against real deliveries"
bash scripts/webhook-verify/run.sh

log "The HTTP API against its own OpenAPI document (schemathesis, fixed seed)"
bash scripts/schemathesis/run.sh

log "Link and the dashboard in headless Chromium (screenshots in target/screenshots)"
bash scripts/browser/run.sh

log "All checks passed"
