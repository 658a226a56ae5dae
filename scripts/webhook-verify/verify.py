"""Verifies Ironbridge's real webhook deliveries with the public Standard Webhooks library
(`standardwebhooks` on PyPI), not with Ironbridge's own code.

Starts `ironbridge --config <tmp toml> serve` on a free loopback port with a fresh temporary
data directory (loopback receivers allowed through `[webhooks] allowed_networks`), creates an
organization with `ironbridge org create --json` on the same database, runs an HTTP receiver on
127.0.0.1 that records every request's raw body and headers and answers 204, points a webhook
endpoint at it, then runs numbered checks: test ping, sync.completed from a sandbox connection,
tampered copies, secret rotation with and without overlap, payload shape. Prints one line per
check and ends with "N passed, N failed"; exits 1 if any check failed. The server is stopped in
every case (SIGTERM, then kill). Usage: verify.py PATH_TO_IRONBRIDGE_BINARY
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

HOST = "127.0.0.1"
READY_TIMEOUT = 60.0  # first start migrates a fresh database
EVENT_TIMEOUT = 10.0  # the dispatcher polls every 100 ms
HTTP_TIMEOUT = 60.0

# Only loopback traffic: never through a proxy, whatever the environment says.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def child_env():
    """The environment for ironbridge processes: no proxies (webhooks go to 127.0.0.1 directly)
    and no IRONBRIDGE_* variables, so the TOML file alone configures them."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().endswith("_PROXY") and not k.startswith("IRONBRIDGE_")
    }
    env["NO_PROXY"] = env["no_proxy"] = "*"
    return env


# ---------------------------------------------------------------------------------------------
# The receiver


class Received:
    """Every request the receiver got: raw body bytes and headers as sent."""

    def __init__(self):
        self.requests = []
        self.cond = threading.Condition()

    def add(self, req):
        with self.cond:
            self.requests.append(req)
            self.cond.notify_all()

    def wait_for(self, pred, timeout):
        """The first recorded request matching `pred`, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for r in self.requests:
                    if pred(r):
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def count(self):
        with self.cond:
            return len(self.requests)


def make_receiver(received):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            received.add(
                {
                    "path": self.path,
                    # As sent (the library lower-cases names itself).
                    "headers": {k: v for k, v in self.headers.items()},
                    "body": body,
                    "at": time.time(),
                }
            )
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((HOST, 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def header(req, name):
    """A received header by case-insensitive name."""
    for k, v in req["headers"].items():
        if k.lower() == name:
            return v
    return None


def with_header(headers, name, value):
    """A copy of `headers` with `name` (any case) replaced by `value`."""
    out = {k: v for k, v in headers.items() if k.lower() != name}
    out[name] = value
    return out


# ---------------------------------------------------------------------------------------------
# Ironbridge


class Api:
    def __init__(self, base, key):
        self.base = base
        self.key = key

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.key}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with _opener.open(req, timeout=HTTP_TIMEOUT) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")

    def expect(self, method, path, body=None, status=200):
        got, answer = self.call(method, path, body)
        if got != status:
            raise AssertionError(f"{method} {path} answered {got}, expected {status}: {answer}")
        return answer


class Server:
    """`ironbridge serve` on a temporary database; always stopped by stop()."""

    def __init__(self, binary, workdir):
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        self.config = os.path.join(workdir, "ironbridge.toml")
        self.log_path = os.path.join(workdir, "server.log")
        data_dir = os.path.join(workdir, "data")
        with open(self.config, "w") as f:
            f.write(
                f'listen = "{HOST}:{self.port}"\n'
                f"data_dir = {json.dumps(data_dir)}\n"
                'log_level = "info"\n'
                "\n[webhooks]\n"
                'allowed_networks = ["127.0.0.1/32"]\n'
            )
        self.proc = None
        self.log = None

    def start(self):
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [self.binary, "--config", self.config, "serve"],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=child_env(),
        )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ironbridge serve exited with {self.proc.returncode}; see {self.log_path}:\n{self.tail()}")
            try:
                with _opener.open(self.base + "/readyz", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"ironbridge serve was not ready within {READY_TIMEOUT:.0f} s:\n{self.tail()}")

    def create_org(self, name):
        out = subprocess.run(
            [self.binary, "--config", self.config, "org", "create", "--name", name, "--json"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=child_env(),
            timeout=120,
        )
        if out.returncode != 0:
            raise RuntimeError(f"org create failed ({out.returncode}): {out.stderr.decode(errors='replace')}")
        # The JSON is the last line of stdout (logs go to stderr).
        line = out.stdout.decode().strip().splitlines()[-1]
        return json.loads(line)

    def tail(self, lines=30):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        if self.log is not None:
            self.log.close()


# ---------------------------------------------------------------------------------------------
# Checks


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.n = 0

    def run(self, name, fn):
        self.n += 1
        try:
            detail = fn()
        except Exception as e:  # a check failing for any reason is a FAIL, never a crash
            self.failed += 1
            print(f"FAIL {self.n}. {name}: {type(e).__name__}: {e}", flush=True)
            return
        self.passed += 1
        print(f"PASS {self.n}. {name}" + (f": {detail}" if detail else ""), flush=True)


def verifies(secret, body, headers):
    """Whether the library accepts the delivery with `secret` (any exception is a refusal)."""
    try:
        Webhook(secret).verify(body, headers)
        return True, None
    except WebhookVerificationError as e:
        return False, f"WebhookVerificationError: {e}"


def must_refuse(secret, body, headers, what):
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError as e:
        return str(e)
    raise AssertionError(f"{what}: the library accepted it")


def signatures(req):
    return (header(req, "webhook-signature") or "").split(" ")


def main():
    if len(sys.argv) != 2:
        print("usage: verify.py PATH_TO_IRONBRIDGE_BINARY", file=sys.stderr)
        return 2
    binary = os.path.abspath(sys.argv[1])
    # SIGTERM (e.g. from a CI timeout) unwinds through `finally`, which stops the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    workdir = tempfile.mkdtemp(prefix="ironbridge-webhook-verify-")
    server = Server(binary, workdir)
    received = Received()
    receiver = None
    checks = Checks()
    ok = False
    try:
        receiver = make_receiver(received)
        hook_url = f"http://{HOST}:{receiver.server_address[1]}/hooks/ironbridge"
        server.start()
        org = server.create_org("Webhook verify")
        api = Api(server.base, org["api_key"])
        created = api.expect(
            "POST",
            "/v1/webhook-endpoints",
            {"url": hook_url, "description": "standardwebhooks conformance"},
            status=201,
        )
        ep_id = created["endpoint"]["id"]
        state = {"secret": created["secret"]}

        def ping():
            """Sends a test ping; returns its delivery and the request the receiver got."""
            before = received.count()
            d = api.expect("POST", f"/v1/webhook-endpoints/{ep_id}/test")
            req = received.wait_for(
                lambda r: header(r, "webhook-id") == d["message_id"], EVENT_TIMEOUT
            )
            if req is None:
                raise AssertionError(
                    f"the receiver got no request with webhook-id {d['message_id']} "
                    f"({received.count() - before} other requests); delivery: {d}"
                )
            return d, req

        # 1 ------------------------------------------------------------------------------------
        def test_ping():
            d, req = ping()
            if d["status"] != "succeeded":
                raise AssertionError(f"delivery status {d['status']!r}, last_error {d.get('last_error')!r}")
            log = d.get("attempt_log") or []
            if not log or log[0]["outcome"] != "succeeded" or log[0]["status_code"] != 204:
                raise AssertionError(f"attempt_log does not show a 204 success: {log}")
            state["ping"] = req
            payload = Webhook(state["secret"]).verify(req["body"], req["headers"])
            if payload.get("type") != "webhook.test":
                raise AssertionError(f"payload type {payload.get('type')!r}, expected 'webhook.test'")
            return f"{d['message_id']} verified, {len(req['body'])} body bytes"

        checks.run("test ping arrives, succeeds and verifies with the library", test_ping)

        # 2 ------------------------------------------------------------------------------------
        def sync_completed():
            conn = api.expect(
                "POST", "/v1/connections", {"system": "sandbox", "name": "x"}, status=201
            )
            conn_id = (conn.get("connection") or conn).get("id")

            def is_sync(r):
                try:
                    return json.loads(r["body"]).get("type") == "sync.completed"
                except ValueError:
                    return False

            req = received.wait_for(is_sync, EVENT_TIMEOUT)
            if req is None:
                raise AssertionError(
                    f"no sync.completed delivery within {EVENT_TIMEOUT:.0f} s "
                    f"(connection {conn_id}; received {received.count()} requests)"
                )
            state["sync"] = req
            payload = Webhook(state["secret"]).verify(req["body"], req["headers"])
            if conn_id and payload.get("connection_id") != conn_id:
                raise AssertionError(f"connection_id {payload.get('connection_id')!r}, expected {conn_id!r}")
            return f"{header(req, 'webhook-id')} for {payload.get('connection_id')} verified"

        checks.run("sandbox connection's sync.completed delivery verifies with the library", sync_completed)

        # 3 ------------------------------------------------------------------------------------
        def tampering():
            req = state.get("sync") or state.get("ping")
            if req is None:
                raise AssertionError("no delivery was received to tamper with")
            secret = state["secret"]
            body, headers = req["body"], req["headers"]
            ok, why = verifies(secret, body, headers)
            if not ok:
                raise AssertionError(f"the untampered delivery does not verify: {why}")
            # One byte of the body: the first letter flips case (stays valid UTF-8 and JSON).
            i = next(i for i, b in enumerate(body) if chr(b).isalpha())
            tampered_body = body[:i] + bytes([body[i] ^ 0x20]) + body[i + 1 :]
            msg_id = header(req, "webhook-id")
            ts = header(req, "webhook-timestamp")
            cases = [
                ("body changed by one byte", tampered_body, headers),
                ("webhook-id changed", body, with_header(headers, "webhook-id", msg_id[:-1] + ("0" if msg_id[-1] != "0" else "1"))),
                # One second later: within the tolerance, so only the signature can refuse it.
                ("webhook-timestamp changed", body, with_header(headers, "webhook-timestamp", str(int(ts) + 1))),
            ]
            problems, reasons = [], []
            for what, b, h in cases:
                try:
                    reasons.append(f"{what}: {must_refuse(secret, b, h, what)}")
                except AssertionError as e:
                    problems.append(str(e))
            if problems:
                raise AssertionError("; ".join(problems))
            return "; ".join(reasons)

        checks.run("tampered copies are refused by the library", tampering)

        # 4 ------------------------------------------------------------------------------------
        def rotation():
            first = state["secret"]
            rotated = api.expect(
                "POST", f"/v1/webhook-endpoints/{ep_id}/secret/rotate", {"overlap_secs": 3600}
            )
            second = rotated["secret"]
            if second == first:
                raise AssertionError("rotation returned the same secret")
            if not rotated.get("previous_secret_expires_at"):
                raise AssertionError(f"no previous_secret_expires_at after a 3600 s overlap: {rotated}")
            state["secret"] = second
            d, req = ping()
            sigs = signatures(req)
            if len(sigs) != 2 or not all(s.startswith("v1,") for s in sigs):
                raise AssertionError(f"during the overlap expected two v1 signatures, got {sigs}")
            for name, s in (("new", second), ("old", first)):
                ok, why = verifies(s, req["body"], req["headers"])
                if not ok:
                    raise AssertionError(f"overlap delivery does not verify with the {name} secret: {why}")
            # Each signature alone verifies with exactly one of the two secrets.
            for sig in sigs:
                alone = with_header(req["headers"], "webhook-signature", sig)
                matches = [n for n, s in (("new", second), ("old", first)) if verifies(s, req["body"], alone)[0]]
                if len(matches) != 1:
                    raise AssertionError(f"signature {sig[:12]}... verifies with {matches or 'neither'} secret")

            rotated = api.expect(
                "POST", f"/v1/webhook-endpoints/{ep_id}/secret/rotate", {"overlap_secs": 0}
            )
            third = rotated["secret"]
            if third in (first, second):
                raise AssertionError("rotation returned an earlier secret")
            if rotated.get("previous_secret_expires_at"):
                raise AssertionError(f"previous_secret_expires_at set after a 0 s overlap: {rotated}")
            state["secret"] = third
            d, req = ping()
            sigs = signatures(req)
            if len(sigs) != 1 or not sigs[0].startswith("v1,"):
                raise AssertionError(f"after a 0 s overlap expected one v1 signature, got {sigs}")
            ok, why = verifies(third, req["body"], req["headers"])
            if not ok:
                raise AssertionError(f"delivery after the 0 s rotation does not verify with the newest secret: {why}")
            for name, s in (("previous", second), ("first", first)):
                if verifies(s, req["body"], req["headers"])[0]:
                    raise AssertionError(f"delivery after the 0 s rotation verifies with the {name} secret")
            return "overlap: 2 signatures, old and new verify; no overlap: 1 signature, only the newest verifies"

        checks.run("secret rotation: both secrets during the overlap, only the newest without", rotation)

        # 5 ------------------------------------------------------------------------------------
        def payload_shape():
            req = state.get("sync")
            if req is None:
                raise AssertionError("no sync.completed delivery was received (see check 2)")
            payload = json.loads(req["body"])
            msg_id = header(req, "webhook-id")
            problems = []
            if payload.get("id") != msg_id:
                problems.append(f"webhook-id {msg_id!r} differs from the body's id {payload.get('id')!r}")
            if not str(payload.get("id", "")).startswith("evt_"):
                problems.append(f"body id {payload.get('id')!r} is not an event id (evt_...)")
            for field in ("type", "timestamp", "data"):
                if field not in payload:
                    problems.append(f"body has no {field!r}")
            if payload.get("type") != "sync.completed":
                problems.append(f"type {payload.get('type')!r}")
            if not isinstance(payload.get("data"), dict):
                problems.append(f"data is not an object: {payload.get('data')!r}")
            try:
                datetime.fromisoformat(str(payload.get("timestamp")).replace("Z", "+00:00"))
            except ValueError:
                problems.append(f"timestamp {payload.get('timestamp')!r} is not RFC 3339")
            if problems:
                raise AssertionError("; ".join(problems))
            return f"id {msg_id}, data keys {sorted(payload['data'])}"

        checks.run("sync.completed: webhook-id is the event id; body has type, timestamp, data", payload_shape)
        ok = checks.failed == 0
    except Exception as e:
        checks.failed += 1
        print(f"FAIL setup: {type(e).__name__}: {e}", flush=True)
        print(f"--- server log ({server.log_path}) ---\n{server.tail()}", file=sys.stderr)
    finally:
        # Cleanup is bounded (at most 30 s): a second SIGTERM must not cut it short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        server.stop()
        if receiver is not None:
            receiver.shutdown()
            receiver.server_close()
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"(server log and data kept in {workdir})", file=sys.stderr)
        print(f"{checks.passed} passed, {checks.failed} failed", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
