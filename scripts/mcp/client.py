"""Drives Ironbridge's MCP server with the official Python `mcp` client, over Streamable HTTP
(`/mcp` of `ironbridge serve`) and over stdio (`ironbridge mcp --stdio`).

Starts `ironbridge --config <tmp toml> serve` on a free loopback port with a fresh temporary
database, creates an organization (`ironbridge org create --json`) and, through the REST API,
sandbox connections with read-only and read-write MCP access and a second organization. Then
checks: initialize, list tools, list and page purchase orders, get one, a write with an
idempotency key replayed once, a bad argument, a read-only token refused a write, another
tenant's token unable to see the record; the stdio transport the same way. Prints
"N passed, N failed" and exits 1 if any check failed. The server is always stopped.
"""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

HOST = "127.0.0.1"
READY_TIMEOUT = 120.0
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def child_env():
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY") and not k.startswith("IRONBRIDGE_")}
    env["NO_PROXY"] = env["no_proxy"] = "*"
    return env


class Server:
    """`ironbridge serve` on a temporary database; always stopped by stop()."""

    def __init__(self, binary, workdir):
        self.binary = binary
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        self.config = os.path.join(workdir, "ironbridge.toml")
        self.log_path = os.path.join(workdir, "server.log")
        with open(self.config, "w") as f:
            f.write(f'listen = "{HOST}:{self.port}"\ndata_dir = {json.dumps(os.path.join(workdir, "data"))}\nlog_level = "info"\n')
        self.proc = None
        self.log = None

    def start(self):
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [self.binary, "--config", self.config, "serve"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, env=child_env(),
        )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ironbridge serve exited with {self.proc.returncode}:\n{self.tail()}")
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
            stdin=subprocess.DEVNULL, capture_output=True, env=child_env(), timeout=120,
        )
        if out.returncode != 0:
            raise RuntimeError(f"org create failed: {out.stderr.decode(errors='replace')}")
        return json.loads(out.stdout.decode().strip().splitlines()[-1])

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


def rest(base, token, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with _opener.open(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    async def run(self, name, coro):
        try:
            await coro
            self.passed += 1
            print(f"ok    {name}")
        except Exception as e:  # noqa: BLE001 - every failure is reported, then counted
            self.failed += 1
            while isinstance(e, BaseExceptionGroup) and e.exceptions:
                e = e.exceptions[0]
            print(f"FAIL  {name}: {type(e).__name__}: {e}")


def expect(cond, message):
    if not cond:
        raise AssertionError(message)


def tool_error(result):
    """The REST error object a tool error carries as its text."""
    expect(result.is_error, f"expected a tool error, got {result}")
    return json.loads(result.content[0].text)["error"]


def http_client(url, token):
    return Client(streamable_http_client(url, http_client=create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})))


def stdio_client(binary, config, token):
    env = child_env()
    env["IRONBRIDGE_MCP_TOKEN"] = token
    return Client(StdioServerParameters(command=binary, args=["--config", config, "mcp", "--stdio"], env=env))


async def scenario(checks, label, connect, fixtures):
    """The same checks over one transport; `connect(token)` opens a client."""
    reader, writer, other, order = fixtures["reader"], fixtures["writer"], fixtures["other"], fixtures["order"]
    state = {}

    async def initialize_and_list():
        async with connect(reader) as client:
            expect(client.server_info is not None and client.server_info.name == "ironbridge", f"server {client.server_info}")
            names = {t.name for t in (await client.list_tools()).tools}
            for want in ("list_purchase_orders", "get_purchase_order", "connection_status", "describe_entity", "trigger_sync"):
                expect(want in names, f"{want} not in {sorted(names)}")
            expect("create_purchase_order" not in names, "a read-only token lists a write tool")
        async with connect(writer) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            expect("create_purchase_order" in names, f"write tools missing: {sorted(names)}")

    async def list_and_page():
        async with connect(reader) as client:
            first = await client.call_tool("list_purchase_orders", {"page_size": 10})
            expect(not first.is_error, f"{first}")
            page = first.structured_content
            expect(len(page["data"]) == 10 and page["next_cursor"], f"first page {page}")
            second = await client.call_tool("list_purchase_orders", {"page_size": 10, "cursor": page["next_cursor"]})
            ids = [r["id"] for r in page["data"]] + [r["id"] for r in second.structured_content["data"]]
            expect(len(set(ids)) == 20, "pages repeat records")
            default = await client.call_tool("list_purchase_orders", {})
            expect(len(default.structured_content["data"]) == 25, "default page is not 25")
            state["po"] = page["data"][0]["id"]

    async def get_one():
        async with connect(reader) as client:
            got = await client.call_tool("get_purchase_order", {"id": state["po"]})
            expect(not got.is_error and got.structured_content["id"] == state["po"], f"{got}")
            expect("remote_data" not in got.structured_content, "raw payload included unasked")

    async def write_replayed():
        key = f"mcp-{label}-{time.time_ns()}"
        async with connect(writer) as client:
            first = await client.call_tool("create_purchase_order", {**order, "idempotency_key": key})
            expect(not first.is_error, f"{first}")
            again = await client.call_tool("create_purchase_order", {**order, "idempotency_key": key})
            expect(again.structured_content == first.structured_content, "the replay differs")
            expect("Replayed" in again.content[0].text, f"not marked replayed: {again.content[0].text}")

    async def bad_argument():
        async with connect(reader) as client:
            result = await client.call_tool("list_purchase_orders", {"page_size": 1000})
            err = tool_error(result)
            expect(err["code"] == "INVALID_REQUEST" and err["param"] == "page_size", f"{err}")
            expect(err["request_id"].startswith("req_"), f"{err}")

    async def read_only_refused():
        async with connect(reader) as client:
            result = await client.call_tool("create_purchase_order", {**order, "idempotency_key": f"ro-{label}"})
            err = tool_error(result)
            expect(err["code"] == "PERMISSION_DENIED", f"{err}")

    async def other_tenant_blind():
        async with connect(other) as client:
            err = tool_error(await client.call_tool("get_purchase_order", {"id": state["po"]}))
            expect(err["code"] == "NOT_FOUND", f"{err}")

    for name, check in [
        ("initialize and list tools", initialize_and_list),
        ("list and page purchase orders", list_and_page),
        ("get one purchase order", get_one),
        ("a write with an idempotency key, replayed", write_replayed),
        ("a bad argument is a tool error with code and request id", bad_argument),
        ("a read-only token is refused a write", read_only_refused),
        ("another tenant cannot see the record", other_tenant_blind),
    ]:
        await checks.run(f"[{label}] {name}", check())


def fixtures(server):
    org = server.create_org("MCP client")
    other_org = server.create_org("Another tenant")
    key, other_key = org["api_key"], other_org["api_key"]

    def connect(k, access):
        status, body = rest(server.base, k, "POST", "/v1/connections", {"system": "sandbox", "name": "ERP", "mcp_access": access})
        expect(status == 201, f"connection: {status} {body}")
        return body["token"]

    reader = connect(key, "read")
    writer = connect(key, "read_write")
    other = connect(other_key, "read")
    _, vendors = rest(server.base, writer, "GET", "/v1/vendors?page_size=50")
    vendor = next(v["id"] for v in vendors["data"] if v["status"] == "active")
    _, items = rest(server.base, writer, "GET", "/v1/items?page_size=50")
    item = next(i["id"] for i in items["data"] if i["status"] == "active" and i.get("quantity_available") not in ("0", None))
    order = {"vendor_id": vendor, "line_items": [{"item_id": item, "quantity": "2"}]}
    return {"reader": reader, "writer": writer, "other": other, "order": order}


async def main(binary):
    checks = Checks()
    workdir = tempfile.mkdtemp(prefix="ironbridge-mcp-")
    server = Server(binary, workdir)
    try:
        server.start()
        fx = fixtures(server)
        url = server.base + "/mcp"
        await scenario(checks, "http", lambda token: http_client(url, token), fx)
        await scenario(checks, "stdio", lambda token: stdio_client(binary, server.config, token), fx)
    finally:
        server.stop()
    print(f"{checks.passed} passed, {checks.failed} failed")
    if checks.failed:
        print(f"--- server log ({server.log_path}) ---\n{server.tail()}", file=sys.stderr)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(asyncio.run(main(sys.argv[1])))
