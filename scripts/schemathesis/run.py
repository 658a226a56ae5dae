#!/usr/bin/env python3
"""Property-based tests of Ironbridge's HTTP API against its own OpenAPI document, with
schemathesis.

Starts `ironbridge --config <tmp toml> serve` on a free loopback port with a fresh temporary
data directory (no rate limit: the run sends thousands of requests), creates an organization
with `ironbridge org create --json` and a sandbox connection through the API, then runs
`schemathesis run` on `/openapi.json` with the admin key and `X-Connection-Id` (which every
operation accepts: management operations ignore the header). The checks fail on a 5xx, on an
answer whose status or body the document does not describe, on a request the document allows
that the server refuses, and on one it forbids that the server accepts. The seed is fixed, so
a run is repeatable. The server is stopped in every case (SIGTERM, then kill).

Usage: run.py PATH_TO_IRONBRIDGE_BINARY PATH_TO_SCHEMATHESIS"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HOST = "127.0.0.1"
READY_TIMEOUT = 60.0
SEED = int(os.environ.get("SCHEMATHESIS_SEED", "20261123"))
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))

# Only loopback traffic: never through a proxy, whatever the environment says.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def child_env():
    """No proxies and no IRONBRIDGE_* variables, so the TOML file alone configures the server."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().endswith("_PROXY") and not k.startswith("IRONBRIDGE_")
    }
    env["NO_PROXY"] = env["no_proxy"] = "*"
    return env


def request(method, url, key, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with _opener.open(req, timeout=60) as r:
        return json.loads(r.read())


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    binary, schemathesis = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = tempfile.mkdtemp(prefix="ironbridge-schemathesis-")
    port = free_port()
    base = f"http://{HOST}:{port}"
    config = os.path.join(workdir, "ironbridge.toml")
    with open(config, "w") as f:
        f.write(
            f'listen = "{HOST}:{port}"\n'
            f"data_dir = {json.dumps(os.path.join(workdir, 'data'))}\n"
            'log_level = "warn"\n'
            "\n[rate_limit]\nper_second = 0\nburst = 0\n"
        )
    log_path = os.path.join(workdir, "server.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [binary, "--config", config, "serve"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=child_env(),
    )
    ok = False
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"ironbridge serve exited with {proc.returncode}")
            try:
                with _opener.open(base + "/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("ironbridge serve was not ready in time")
            time.sleep(0.1)
        out = subprocess.run(
            [binary, "--config", config, "org", "create", "--name", "Schemathesis",
             "--credits", "100000", "--json"],
            stdin=subprocess.DEVNULL, capture_output=True, env=child_env(), timeout=120, check=True,
        )
        key = json.loads(out.stdout.decode().strip().splitlines()[-1])["api_key"]
        created = request("POST", base + "/v1/connections", key,
                          {"system": "sandbox", "name": "Schemathesis", "settings": {"purchase_orders": 5}})
        connection = created["connection"]["id"]
        here = os.path.dirname(os.path.abspath(__file__))
        cmd = [
            schemathesis, "--config-file", os.path.join(here, "schemathesis.toml"),
            "run", base + "/openapi.json",
            "--phases", "examples,coverage,fuzzing",
            "--max-examples", str(MAX_EXAMPLES),
            "--seed", str(SEED),
            # One worker: CPython 3.11's ast.parse, which Hypothesis calls to describe filters,
            # can fail when two threads parse at once ("AST constructor recursion depth
            # mismatch"); one worker also keeps the order of requests the same from run to run.
            "--workers", "1",
            "--no-shrink",
            "--request-timeout", "30",
            "-H", f"Authorization: Bearer {key}",
            "-H", f"X-Connection-Id: {connection}",
        ]
        print(f"schemathesis against {base} (seed {SEED}, {MAX_EXAMPLES} examples per operation)", flush=True)
        env = child_env()
        # schemathesis.toml names its hooks file through this variable.
        env["SCHEMATHESIS_SCRIPT_DIR"] = here
        ok = subprocess.run(cmd, env=env, cwd=workdir).returncode == 0
        return 0 if ok else 1
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        log.close()
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"(server log and data kept in {workdir})", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
