#!/usr/bin/env python3
"""Reads beside five concurrent full syncs: a load benchmark for any `ironbridge` binary.

It starts five emulated ERPs and `ironbridge serve` (both from the binary given), on a fresh
SQLite file or a fresh PostgreSQL database, connects the five through the API, loads them with
one full sync each, then runs four phases:

  A  capacity        readers unpaced (closed loop): the unloaded capacity, req/s
  B  paced reads     an offered rate (half the capacity) on a fixed schedule, no syncs
  C  syncs alone     back-to-back full syncs on all five connections, no reads
  D  reads + syncs   B and C at once

and checks at the end that the store is exact (each connection's purchase orders, read through
the API, are the emulator's orders). Throughout, it samples the server's memory and, on SQLite,
the size of the `-wal` file. It prints a JSON summary and a markdown table row; targets are
columns of that row (pass/FAIL), never the exit code: it exits non-zero only when the harness
itself could not run (a child would not start, the server died, an HTTP call failed in setup).

Latency in the paced phases is open loop: measured from each request's scheduled send time,
so a server that stalls shows up in the percentiles instead of slowing the clients down.

Only the standard library (threads + http.client). See scripts/load/README.md.

    python3 scripts/load/reads_under_syncs.py --binary ./target/release/ironbridge --backend sqlite
    python3 scripts/load/reads_under_syncs.py --binary /work/bin/ironbridge-before --backend postgres
"""

import argparse
import ctypes
import datetime
import http.client
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

# The read mix, as weights per request. Cursor walks follow `next_cursor` a few pages from the
# first page or from a cursor met in setup; `modified_after` asks for changes since now (an
# empty page) or since before the first sync (a full page).
MIX = (
    ("po_page", 40),
    ("po_get", 30),
    ("vendors", 10),
    ("items", 10),
    ("modified_after_now", 5),
    ("modified_after_all", 5),
)
WALK_PAGES = 5
PAGE_SIZE = 50
DEFAULT_SYSTEMS = "netsuite,sap,business-central,sap,business-central"
WAL_LIMIT_MB = 256.0


class HarnessError(Exception):
    """The harness could not do its job (as opposed to a target being missed)."""


def log(msg):
    sys.stderr.write(time.strftime("%H:%M:%S ") + msg + "\n")
    sys.stderr.flush()


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    k = max(0, math.ceil(p * len(sorted_values)) - 1)
    return sorted_values[min(k, len(sorted_values) - 1)]


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def free_port():
    """A port free right now on 127.0.0.1 (the kernel picks it: bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    """Children get SIGKILL if the harness dies without cleaning up (Linux only)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


# ---------------------------------------------------------------------------------------------
# HTTP


class Client:
    """One keep-alive HTTP connection with a timeout on every call; reconnects after errors."""

    def __init__(self, base, timeout):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port or 80
        self.timeout = timeout
        self.conn = None

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None

    def request(self, method, path, token=None, body=None):
        """(status, body bytes). Raises OSError / http.client errors on transport failures."""
        headers = {"Accept": "application/json"}
        data = None
        if token:
            headers["Authorization"] = "Bearer " + token
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                res = self.conn.getresponse()
                payload = res.read()
                if res.getheader("Connection", "").lower() == "close":
                    self.close()
                return res.status, payload
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A kept-alive connection the server closed meanwhile: one fresh try.
                self.close()
                if attempt == 1:
                    raise
            except Exception:
                self.close()
                raise
        raise HarnessError("unreachable")

    def json(self, method, path, token=None, body=None, ok=(200, 201, 202, 204)):
        try:
            status, payload = self.request(method, path, token, body)
        except Exception as e:
            raise HarnessError(f"{method} {path}: {e!r}") from e
        if status not in ok:
            raise HarnessError(f"{method} {path} answered {status}: {payload[:500]!r}")
        try:
            return json.loads(payload) if payload.strip() else None
        except ValueError as e:
            raise HarnessError(f"{method} {path}: not JSON: {payload[:200]!r}") from e


NEXT_CURSOR = re.compile(rb'"next_cursor":(null|"([^"]*)")')


def next_cursor_of(body):
    """`next_cursor` of a list page without parsing the page (it follows `data`)."""
    i = body.rfind(b'"next_cursor":')
    if i < 0:
        return None
    m = NEXT_CURSOR.match(body, i)
    if not m or m.group(2) is None:
        return None
    return m.group(2).decode()


# ---------------------------------------------------------------------------------------------
# Child processes


class Children:
    """Every process the harness starts, stopped on exit (SIGTERM, then SIGKILL)."""

    def __init__(self):
        self.procs = []
        self.lock = threading.Lock()

    def start(self, name, argv, log_path, env=None, stdout_path=None):
        out = open(stdout_path or log_path, "ab")
        err = open(log_path, "ab") if stdout_path else out
        try:
            p = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        except OSError as e:
            raise HarnessError(f"cannot start {name} ({argv[0]}): {e}") from e
        finally:
            out.close()
            if err is not out:
                err.close()
        with self.lock:
            self.procs.append((name, p))
        return p

    def stop_all(self):
        with self.lock:
            procs = list(reversed(self.procs))
            self.procs = []
        for _, p in procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + 15
        for _, p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


def tail(path, lines=30):
    try:
        with open(path, "rb") as f:
            data = f.read()[-8000:].decode(errors="replace")
        return "\n".join(data.splitlines()[-lines:])
    except OSError:
        return "(no log)"


def psql(args, sql, db="postgres"):
    argv = ["psql", "-h", args.pg_host, "-p", str(args.pg_port), "-U", args.pg_user, "-d", db,
            "-v", "ON_ERROR_STOP=1", "-Atqc", sql]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise HarnessError(f"psql failed: {e}") from e
    if r.returncode != 0:
        raise HarnessError(f"psql {sql!r}: {r.stderr.strip()}")
    return r.stdout.strip()


def lsn_bytes(lsn):
    hi, lo = lsn.split("/")
    return (int(hi, 16) << 32) + int(lo, 16)


# ---------------------------------------------------------------------------------------------
# Measurements


class Sampler(threading.Thread):
    """Every 0.5 s: the server's resident memory and, on SQLite, the WAL file's size; the
    maximum of each is kept per phase and over the whole run."""

    def __init__(self, pid, wal_path):
        super().__init__(daemon=True)
        self.pid, self.wal_path = pid, wal_path
        self.phase = "setup"
        self.stats = {}
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.hwm_kb = 0

    def set_phase(self, name):
        with self.lock:
            self.phase = name
        self.sample()

    def sample(self):
        rss = hwm = None
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        hwm = int(line.split()[1])
        except OSError:
            pass
        wal = None
        if self.wal_path:
            try:
                wal = os.path.getsize(self.wal_path)
            except OSError:
                wal = 0
        with self.lock:
            s = self.stats.setdefault(self.phase, {"rss_max_kb": 0, "wal_max_bytes": 0, "samples": 0,
                                                   # The WAL file never shrinks by itself: its
                                                   # size at the phase's start shows what the
                                                   # phase added.
                                                   "wal_first_bytes": wal})
            s["samples"] += 1
            if rss:
                s["rss_max_kb"] = max(s["rss_max_kb"], rss)
            if wal is not None:
                s["wal_max_bytes"] = max(s["wal_max_bytes"], wal)
            if hwm:
                self.hwm_kb = max(self.hwm_kb, hwm)

    def run(self):
        while not self.stop_event.wait(0.5):
            self.sample()

    def snapshot(self, phase):
        with self.lock:
            return dict(self.stats.get(phase, {"rss_max_kb": 0, "wal_max_bytes": 0, "samples": 0}))


def cpu_seconds(pid):
    """User + system CPU seconds of a process (None if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class Reader(threading.Thread):
    """One API client issuing the read mix, unpaced or on a fixed schedule."""

    def __init__(self, index, n_readers, base, conns, since_all, timeout, seed):
        super().__init__(daemon=True)
        self.index, self.n = index, n_readers
        self.client = Client(base, timeout)
        self.conns = conns
        self.since_all = since_all
        self.rng = random.Random(seed)
        self.kinds = [k for k, _ in MIX]
        self.weights = [w for _, w in MIX]
        self.walk = None  # (conn, cursor, pages left)
        self.mode = None
        # (kind, latency seconds, status, service seconds); status 0 = a transport error.
        # Latency counts from the scheduled time in paced phases; service from the send.
        self.results = []
        self.missed = 0
        self.last_done = None

    def configure(self, mode, start, stop_event, rate=None, record_after=None, drain=10.0):
        self.mode, self.start_at, self.stop_event = mode, start, stop_event
        self.rate, self.record_after, self.drain = rate, record_after, drain
        self.results, self.missed, self.last_done = [], 0, None

    def one_request(self):
        kind = self.rng.choices(self.kinds, self.weights)[0]
        if kind == "po_page":
            if self.walk is None:
                c = self.rng.choice(self.conns)
                start = self.rng.choice([None] + c["cursors"]) if c["cursors"] else None
                self.walk = [c, start, WALK_PAGES]
            c, cursor, left = self.walk
            path = f"/v1/purchase-orders?page_size={PAGE_SIZE}"
            if cursor:
                path += "&cursor=" + urllib.parse.quote(cursor, safe="")
            token = c["token"]
        else:
            c = self.rng.choice(self.conns)
            token = c["token"]
            if kind == "po_get":
                path = "/v1/purchase-orders/" + urllib.parse.quote(self.rng.choice(c["ids"]), safe="")
            elif kind == "vendors":
                path = f"/v1/vendors?page_size={PAGE_SIZE}"
            elif kind == "items":
                path = f"/v1/items?page_size={PAGE_SIZE}"
            elif kind == "modified_after_now":
                path = f"/v1/purchase-orders?page_size={PAGE_SIZE}&modified_after=" + urllib.parse.quote(rfc3339(time.time()))
            else:
                path = f"/v1/purchase-orders?page_size={PAGE_SIZE}&modified_after=" + urllib.parse.quote(self.since_all)
        try:
            status, body = self.client.request("GET", path, token)
        except Exception:
            status, body = 0, b""
        if kind == "po_page":
            nxt = next_cursor_of(body) if status == 200 else None
            left -= 1
            self.walk = None if (nxt is None or left <= 0) else [c, nxt, left]
        return kind, status

    def run(self):
        try:
            if self.mode == "closed":
                self.run_closed()
            else:
                self.run_paced()
        finally:
            self.client.close()

    def run_closed(self):
        while not self.stop_event.is_set():
            t = time.monotonic()
            kind, status = self.one_request()
            done = time.monotonic()
            if t >= self.record_after:
                self.results.append((kind, done - t, status, done - t))
                self.last_done = done

    def run_paced(self):
        """Slots k = index, index + n, ... of a global schedule t0 + k / rate. A reader behind
        schedule sends at once; its latency still counts from the slot's time. After the stop
        (`stop_event.stop_time`), slots scheduled before it are still sent for `drain`
        seconds; the rest are missed."""
        k = self.index
        interval = 1.0 / self.rate
        stop_time = None
        while True:
            slot = self.start_at + k * interval
            if stop_time is None and self.stop_event.is_set():
                stop_time = self.stop_event.stop_time
            if stop_time is not None:
                if slot >= stop_time:
                    break
                if time.monotonic() > stop_time + self.drain:
                    # Everything left before the stop is counted as missed.
                    self.missed += int(math.ceil((stop_time - slot) / (interval * self.n)))
                    break
            wait = slot - time.monotonic()
            if wait > 0:
                if self.stop_event.wait(wait) and stop_time is None:
                    stop_time = self.stop_event.stop_time
                    if slot >= stop_time:
                        break
            sent = time.monotonic()
            kind, status = self.one_request()
            done = time.monotonic()
            self.results.append((kind, done - slot, status, done - sent))
            self.last_done = done
            k += self.n


def read_stats(readers, start, seconds_scheduled, offered):
    results = [r for rd in readers for r in rd.results]
    missed = sum(rd.missed for rd in readers)
    ok = sorted(lat for _, lat, st, _ in results if st == 200)
    service = sorted(sv for _, _, st, sv in results if st == 200)
    lasts = [rd.last_done for rd in readers if rd.last_done]
    span = max(seconds_scheduled, (max(lasts) - start) if lasts else 0) or 1e-9
    statuses = {}
    for _, _, st, _ in results:
        statuses[str(st)] = statuses.get(str(st), 0) + 1
    by_kind = {}
    for kind, _ in MIX:
        lat = sorted(l for k, l, st, _ in results if k == kind and st == 200)
        by_kind[kind] = {
            "n": len(lat),
            "p50_ms": ms(percentile(lat, 0.5)),
            "p99_ms": ms(percentile(lat, 0.99)),
        }
    return {
        "requests": len(results),
        "ok": len(ok),
        "missed": missed,
        "statuses": statuses,
        "errors_5xx": sum(n for s, n in statuses.items() if s.startswith("5")),
        "transport_errors": statuses.get("0", 0),
        "other_non_200": sum(n for s, n in statuses.items() if s not in ("200", "0") and not s.startswith("5")),
        "offered_rps": offered,
        "held_rps": len(ok) / span,
        "p50_ms": ms(percentile(ok, 0.5)),
        "p90_ms": ms(percentile(ok, 0.9)),
        "p99_ms": ms(percentile(ok, 0.99)),
        "max_ms": ms(ok[-1] if ok else None),
        "service_p50_ms": ms(percentile(service, 0.5)),
        "service_p99_ms": ms(percentile(service, 0.99)),
        "by_kind": by_kind,
    }


def ms(seconds):
    return None if seconds is None else round(seconds * 1000.0, 2)


class SyncDriver(threading.Thread):
    """Back-to-back full syncs of one connection through `POST /v1/sync {"full": true}`,
    each followed to its end: records read (from its `sync.completed` event) over its job's
    time."""

    def __init__(self, conn, base, admin_key, timeout, sync_timeout, stop_event, counters):
        super().__init__(daemon=True)
        self.conn = conn
        self.client = Client(base, timeout)
        self.admin_key = admin_key
        self.sync_timeout = sync_timeout
        self.stop_event = stop_event
        self.counters = counters
        self.results = []
        self.error = None

    def call(self, method, path, token, body=None):
        """A call of the sync's own traffic. A 5xx or a transport error is counted and tried
        again (queueing a sync twice returns the queued one), up to 5 times."""
        for attempt in range(6):
            try:
                status, payload = self.client.request(method, path, token, body)
            except Exception as e:
                if attempt == 5:
                    raise HarnessError(f"{method} {path}: {e!r}") from e
                self.counters.add_transport_error(1)
                time.sleep(1)
                continue
            if status >= 500:
                self.counters.add_5xx(1)
                if attempt < 5:
                    time.sleep(1)
                    continue
            if status not in (200, 202):
                raise HarnessError(f"{method} {path} answered {status}: {payload[:300]!r}")
            return json.loads(payload)
        raise HarnessError(f"{method} {path}: no answer")

    def run(self):
        try:
            while not self.stop_event.is_set():
                self.results.append(run_full_sync(self, self.conn, self.sync_timeout))
        except Exception as e:
            self.error = f"{self.conn['name']}: {e}"
        finally:
            self.client.close()


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.fivexx = 0
        self.transport_errors = 0

    def add_5xx(self, n):
        with self.lock:
            self.fivexx += n

    def add_transport_error(self, n):
        with self.lock:
            self.transport_errors += n


def list_events(driver, conn, event_type):
    """Every event of one type of a connection so far (admin key), oldest first."""
    events, cursor = [], None
    for _ in range(1000):
        path = (f"/v1/events?type={event_type}&page_size=500&connection_id="
                + urllib.parse.quote(conn["id"]))
        if cursor:
            path += "&cursor=" + urllib.parse.quote(cursor, safe="")
        page = driver.call("GET", path, driver.admin_key)
        events.extend(page.get("data") or [])
        cursor = page.get("next_cursor")
        if not page.get("data") or not cursor:
            break
    return events


def run_full_sync(driver, conn, sync_timeout, full=True):
    """Queues a sync and follows its job to the end; returns what it did."""
    seen = {e["id"] for e in conn.setdefault("_events", [])}
    seen_failed = {e["id"] for e in conn.setdefault("_failed", [])}
    posted = time.monotonic()
    queued = driver.call("POST", "/v1/sync", conn["token"], {"full": full} if full else {})
    job = queued["job"]
    deadline = posted + sync_timeout
    while job["status"] not in ("succeeded", "failed"):
        if time.monotonic() > deadline:
            raise HarnessError(f"sync job {job['id']} of {conn['name']} still {job['status']} after {sync_timeout} s")
        time.sleep(0.25)
        job = driver.call("GET", f"/v1/sync/jobs/{job['id']}", conn["token"])
    finished = time.monotonic()
    out = {
        "connection": conn["name"],
        "job": job["id"],
        "full": job.get("full"),
        "already_queued": queued.get("already_queued"),
        "status": job["status"],
        "attempts": job.get("attempts"),
        "failed_attempts": job.get("failed_attempts"),
        "last_error": job.get("last_error"),
        "client_seconds": round(finished - posted, 3),
        # From the job's creation to its end, as the server recorded them: the wait for a
        # worker, every attempt and the pauses between attempts.
        "job_seconds": job_seconds(job),
        "posted": posted,
        "finished": finished,
        "records": None,
        "last_attempt_ms": None,
    }
    if job["status"] == "succeeded":
        # The event is written in the sync's last transaction, before the job is marked done.
        events = list_events(driver, conn, "sync.completed")
        conn["_events"] = events
        new = [e for e in events if e["id"] not in seen]
        if new:
            data = new[-1].get("data") or {}
            ents = data.get("entities") or []
            # The counts cover the whole run, every attempt; `duration_ms` only the last.
            out["records"] = sum((e.get("added") or 0) + (e.get("updated") or 0) + (e.get("unchanged") or 0) for e in ents)
            out["written"] = sum((e.get("added") or 0) + (e.get("updated") or 0) + (e.get("deleted") or 0) for e in ents)
            out["last_attempt_ms"] = data.get("duration_ms")
            out["full"] = data.get("full", out["full"])
    if job.get("failed_attempts"):
        # What each failed attempt reported: the entity, the error and how long it ran.
        failed = list_events(driver, conn, "sync.failed")
        conn["_failed"] = failed
        out["failures"] = [
            {"entity": (e.get("data") or {}).get("entity"), "error": (e.get("data") or {}).get("error"),
             "after_ms": (e.get("data") or {}).get("duration_ms")}
            for e in failed if e["id"] not in seen_failed
        ]
    return out


def parse_ts(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def job_seconds(job):
    try:
        return round(parse_ts(job["updated_at"]) - parse_ts(job["created_at"]), 3)
    except (KeyError, ValueError, TypeError):
        return None


def sync_stats(results, wall_start):
    """Per connection: records read by its completed full syncs over their jobs' time
    (creation to end, retries included); the phase's rate is the connections' rates added."""
    per_conn = {}
    done = [r for r in results if r["status"] == "succeeded" and r["full"] and r["records"]]
    for r in done:
        c = per_conn.setdefault(r["connection"], {"syncs": 0, "records": 0, "seconds": 0.0, "written": 0,
                                                  "attempts": 0, "failed_attempts": 0})
        c["syncs"] += 1
        c["records"] += r["records"]
        c["written"] += r.get("written") or 0
        c["seconds"] += r["job_seconds"] if r["job_seconds"] else r["client_seconds"]
        c["attempts"] += r.get("attempts") or 0
        c["failed_attempts"] += r.get("failed_attempts") or 0
    for c in per_conn.values():
        c["records_per_s"] = c["records"] / c["seconds"] if c["seconds"] else None
    last = max((r["finished"] for r in results), default=wall_start)
    return {
        "syncs_started": len(results),
        "full_syncs_done": len(done),
        "failed": sum(1 for r in results if r["status"] != "succeeded"),
        "failed_attempts": sum(r.get("failed_attempts") or 0 for r in results),
        "errors": sorted({r["last_error"] for r in results if r.get("last_error")})[:10],
        "per_connection": per_conn,
        "records_per_s": sum(c["records_per_s"] or 0 for c in per_conn.values()),
        "wall_seconds": last - wall_start,
        # Another view of the same: every record the phase's syncs read over the phase's time.
        "records_per_wall_s": sum(c["records"] for c in per_conn.values()) / max(1e-9, last - wall_start),
        "records": sum(c["records"] for c in per_conn.values()),
        "syncs": [{k: r.get(k) for k in ("connection", "job", "status", "attempts", "failed_attempts", "job_seconds",
                                         "client_seconds", "last_attempt_ms", "records", "written", "last_error",
                                         "failures")}
                  for r in results],
    }


# ---------------------------------------------------------------------------------------------
# The run


class Run:
    def __init__(self, args):
        self.args = args
        self.children = Children()
        self.tmp = tempfile.mkdtemp(prefix="ib-load-")
        self.db_name = None
        self.server = None
        self.counters = Counters()
        self.summary = {}

    # -- setup -----------------------------------------------------------------------------

    def start_emulator(self, i, system):
        a = self.args
        out = os.path.join(self.tmp, f"emulator-{i}.out")
        errlog = os.path.join(self.tmp, f"emulator-{i}.log")
        env = dict(os.environ, RUST_LOG="warn")
        p = self.children.start(
            f"{system} emulator",
            [a.binary, "emulate", system, "--port", "0", "--records", str(a.orders),
             "--seed", str(i + 1), "--real-time"],
            errlog, env=env, stdout_path=out,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with open(out) as f:
                    m = re.search(r"listening on (http://\S+)", f.read())
            except OSError:
                m = None
            if m:
                return {"system": system, "url": m.group(1).rstrip(","), "proc": p}
            if p.poll() is not None:
                raise HarnessError(f"the {system} emulator exited ({p.returncode}):\n{tail(errlog)}")
            time.sleep(0.05)
        raise HarnessError(f"the {system} emulator did not start within 60 s:\n{tail(errlog)}")

    def write_config(self):
        a = self.args
        data_dir = os.path.join(self.tmp, "data")
        lines = [
            f'data_dir = "{data_dir}"',
            'log_level = "warn"',
            f"worker_max_jobs = {a.worker_max_jobs}",
            "worker_drain_secs = 5",
        ]
        if a.backend == "postgres":
            self.db_name = f"ib_load_{os.getpid()}_{int(time.time())}"
            psql(a, f'CREATE DATABASE "{self.db_name}"')
            url = f"postgres://{a.pg_user}@{a.pg_host}:{a.pg_port}/{self.db_name}"
            lines.append(f'database_url = "{url}"')
            self.wal_path = None
        else:
            self.wal_path = os.path.join(data_dir, "ironbridge.db-wal")
        lines += [
            "",
            "[rate_limit]",
            "per_second = 0",
            "anonymous_per_minute = 0",
            "",
            "[connections]",
            # The emulators run on this machine.
            'allowed_private_networks = ["127.0.0.1/32"]',
        ]
        path = os.path.join(self.tmp, "ironbridge.toml")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def server_env(self):
        env = dict(os.environ)
        for kv in self.args.serve_env:
            k, _, v = kv.partition("=")
            env[k] = v
        return env

    def start_server(self, config):
        a = self.args
        r = subprocess.run([a.binary, "--config", config, "org", "create", "--name", "load", "--json"],
                           capture_output=True, text=True, timeout=120, env=self.server_env())
        if r.returncode != 0:
            raise HarnessError(f"org create failed: {r.stderr.strip()[-2000:]}")
        try:
            self.admin_key = json.loads(r.stdout.strip().splitlines()[-1])["api_key"]
        except (ValueError, KeyError, IndexError) as e:
            raise HarnessError(f"org create printed no key: {r.stdout!r}") from e
        errlog = os.path.join(self.tmp, "serve.log")
        for attempt in range(3):
            port = free_port()
            p = self.children.start("serve", [a.binary, "--config", config, "serve", "--listen", f"127.0.0.1:{port}"],
                                    errlog, env=self.server_env())
            base = f"http://127.0.0.1:{port}"
            c = Client(base, 5)
            deadline = time.time() + 90
            while time.time() < deadline:
                if p.poll() is not None:
                    break
                try:
                    status, _ = c.request("GET", "/readyz")
                    if status == 200:
                        c.close()
                        self.server, self.base = p, base
                        return
                except Exception:
                    pass
                time.sleep(0.2)
            c.close()
            if p.poll() is None:
                raise HarnessError(f"serve did not become ready within 90 s:\n{tail(errlog)}")
            log_text = tail(errlog)
            if "cannot listen" in log_text and attempt < 2:
                log(f"port {port} was taken; trying another")
                continue
            raise HarnessError(f"serve exited ({p.returncode}):\n{log_text}")

    def connect(self, i, emu):
        c = Client(self.base, self.args.http_timeout)
        e = Client(emu["url"], self.args.http_timeout)
        system, url = emu["system"], emu["url"]
        name = f"{system}-{i + 1}"
        if system == "netsuite":
            cert = c.json("POST", "/v1/certificates", self.admin_key,
                          {"system": "netsuite", "common_name": f"Load {i + 1}"})
            client_id, cert_id = f"load-{i + 1}", f"load-cert-{i + 1}"
            e.json("POST", "/__emulator/netsuite/m2m-clients", None,
                   {"client_id": client_id, "certificate_id": cert_id, "certificate_pem": cert["certificate_pem"]})
            body = {"system": "netsuite", "settings": {"base_url": url},
                    "credentials": {"account_id": "1234567", "client_id": client_id,
                                    "certificate_id": cert_id, "ironbridge_certificate": cert["id"]}}
        elif system == "sap":
            cr = e.json("GET", "/__emulator/credentials")
            body = {"system": "sap_s4hana", "settings": {"base_url": url},
                    "credentials": {"username": cr["user"], "password": cr["password"]}}
        else:
            cr = e.json("GET", "/__emulator/credentials")
            body = {"system": "business_central",
                    "settings": {"base_url": url, "login_url": url, "tenant_id": cr["tenant_id"],
                                 "environment": cr["environment"]},
                    "credentials": {"client_id": cr["client_id"], "client_secret": cr["client_secret"]}}
        body["name"] = name
        created = c.json("POST", "/v1/connections", self.admin_key, body)
        c.close()
        e.close()
        return {"name": name, "system": system, "id": created["connection"]["id"],
                "token": created["token"], "emulator": emu}

    def walk(self, conn, page_size, keep):
        """Every purchase order of a connection through the API: (ids, cursors met)."""
        c = Client(self.base, self.args.http_timeout)
        ids, cursors, cursor = [], [], None
        while True:
            path = f"/v1/purchase-orders?page_size={page_size}"
            if cursor:
                path += "&cursor=" + urllib.parse.quote(cursor, safe="")
            page = c.json("GET", path, conn["token"], ok=(200,))
            ids.extend(r["id"] for r in page["data"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
            if keep:
                cursors.append(cursor)
        c.close()
        return ids, cursors

    def parallel(self, fn, items):
        """fn(item) for each item on its own thread; the first error is raised."""
        out, errors = [None] * len(items), []

        def work(i, item):
            try:
                out[i] = fn(item)
            except Exception as e:
                errors.append(e)

        threads = [threading.Thread(target=work, args=(i, it), daemon=True) for i, it in enumerate(items)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0] if isinstance(errors[0], HarnessError) else HarnessError(repr(errors[0]))
        return out

    def one_sync_each(self, full):
        def go(conn):
            d = SyncDriver(conn, self.base, self.admin_key, self.args.http_timeout, self.args.sync_timeout,
                           threading.Event(), self.counters)
            try:
                return run_full_sync(d, conn, self.args.sync_timeout, full=full)
            finally:
                d.client.close()

        results = self.parallel(go, self.conns)
        bad = [r for r in results if r["status"] != "succeeded"]
        if bad:
            raise HarnessError(f"syncs failed: {[(r['connection'], r['last_error']) for r in bad]}")
        return results

    def check_alive(self):
        if self.server.poll() is not None:
            raise HarnessError(f"serve exited ({self.server.returncode}) during the run:\n{tail(os.path.join(self.tmp, 'serve.log'))}")

    # -- phases -----------------------------------------------------------------------------

    def new_readers(self):
        a = self.args
        return [Reader(i, a.readers, self.base, self.conns, self.since_all, a.http_timeout, a.seed * 1000 + i)
                for i in range(a.readers)]

    def phase_begin(self, name):
        self.check_alive()
        self.sampler.set_phase(name)
        info = {"server_cpu": cpu_seconds(self.server.pid), "harness_cpu": sum(os.times()[:2]),
                "t": time.monotonic()}
        if self.args.backend == "postgres":
            # The cluster's WAL position: other databases of the same server count too.
            info["lsn"] = lsn_bytes(psql(self.args, "SELECT pg_current_wal_lsn()"))
        log(f"phase {name}")
        return info

    def phase_end(self, name, begin):
        self.sampler.sample()
        end_cpu = cpu_seconds(self.server.pid)
        out = self.sampler.snapshot(name)
        out["seconds"] = time.monotonic() - begin["t"]
        out["server_cpu_s"] = (end_cpu - begin["server_cpu"]) if end_cpu is not None and begin["server_cpu"] is not None else None
        out["harness_cpu_s"] = sum(os.times()[:2]) - begin["harness_cpu"]
        if "lsn" in begin:
            out["pg_wal_written_mb"] = (lsn_bytes(psql(self.args, "SELECT pg_current_wal_lsn()")) - begin["lsn"]) / 1e6
        self.check_alive()
        return out

    def run_readers(self, mode, seconds, rate=None, warmup=0.0, drivers_stop=None, drivers=()):
        """Readers for `seconds` (plus, with drivers, until their last sync ends)."""
        readers = self.new_readers()
        stop = threading.Event()
        start = time.monotonic() + 0.2
        for r in readers:
            r.configure(mode, start, stop, rate=rate, record_after=start + warmup, drain=self.args.drain_secs)
            r.start()
        for d in drivers:
            d.start()
        time.sleep(max(0.0, start + warmup + seconds - time.monotonic()))
        if drivers:
            drivers_stop.set()
            self.wait_drivers(drivers)
        # One stop time for every reader (one busy in a long request sees the stop late).
        stop.stop_time = time.monotonic()
        stop.set()
        scheduled = time.monotonic() - start - warmup
        for r in readers:
            r.join(timeout=self.args.drain_secs + self.args.http_timeout + 5)
        return readers, start + warmup, scheduled

    def wait_drivers(self, drivers):
        deadline = time.monotonic() + self.args.sync_timeout + 30
        for d in drivers:
            d.join(timeout=max(1.0, deadline - time.monotonic()))
            if d.is_alive():
                raise HarnessError(f"the sync driver of {d.conn['name']} did not finish")
            if d.error:
                raise HarnessError(f"sync driver: {d.error}")

    def new_drivers(self):
        stop = threading.Event()
        return stop, [SyncDriver(c, self.base, self.admin_key, self.args.http_timeout, self.args.sync_timeout,
                                 stop, self.counters) for c in self.conns]

    def main(self):
        a = self.args
        t_start = time.time()
        machine = {"nproc": os.cpu_count(), "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                   # Other work on the machine shows here: the run's figures are only as
                   # quiet as the machine was.
                   "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}
        version = subprocess.run([a.binary, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
        log(f"{version}; backend {a.backend}; {len(a.systems)} connections of {a.orders} orders; {a.readers} readers; temp {self.tmp}")
        # Before any record exists: `modified_after` this instant matches every record.
        self.since_all = rfc3339(time.time() - 60)

        emus = [self.start_emulator(i, s) for i, s in enumerate(a.systems)]
        config = self.write_config()
        self.start_server(config)
        self.sampler = Sampler(self.server.pid, self.wal_path)
        self.sampler.start()
        log(f"serve at {self.base} (pid {self.server.pid}); connecting {len(emus)} emulators")
        self.conns = [self.connect(i, e) for i, e in enumerate(emus)]

        # Setup: the initial syncs (queued by the API, the last 90 days of orders), then one
        # full sync each, which stores every order: the phases' full syncs then find them all.
        setup = self.phase_begin("setup")
        t = time.monotonic()
        self.one_sync_each(full=False)
        initial_s = time.monotonic() - t
        log(f"initial syncs done in {initial_s:.1f} s; loading with one full sync each")
        t = time.monotonic()
        load = self.one_sync_each(full=True)
        load_s = time.monotonic() - t
        log(f"loaded in {load_s:.1f} s; collecting ids and cursors")
        walked = self.parallel(lambda c: self.walk(c, PAGE_SIZE, True), self.conns)
        for c, (ids, cursors) in zip(self.conns, walked):
            if not ids:
                raise HarnessError(f"{c['name']} has no purchase orders after its full sync")
            c["ids"], c["cursors"] = ids, cursors
        setup_out = self.phase_end("setup", setup)
        setup_out.update({"initial_syncs_s": initial_s, "load_full_syncs_s": load_s,
                          "load": sync_stats(load, t), "orders_after_load": {c["name"]: len(c["ids"]) for c in self.conns}})

        # A: capacity, unpaced.
        b = self.phase_begin("A")
        readers, start, _ = self.run_readers("closed", a.capacity_secs, warmup=a.warmup_secs)
        cap = read_stats(readers, start, a.capacity_secs, None)
        cap["capacity_rps"] = cap["ok"] / a.capacity_secs
        cap.update(self.phase_end("A", b))
        rate = a.rate or max(1.0, cap["capacity_rps"] * a.offered_fraction)
        log(f"capacity {cap['capacity_rps']:.1f} req/s (p50 {cap['p50_ms']} ms, p99 {cap['p99_ms']} ms); offered rate {rate:.1f} req/s")

        # B: paced reads, no syncs.
        b = self.phase_begin("B")
        readers, start, sched = self.run_readers("paced", a.paced_secs, rate=rate)
        paced = read_stats(readers, start, sched, rate)
        paced.update(self.phase_end("B", b))
        log(f"paced: held {paced['held_rps']:.1f} req/s, p50 {paced['p50_ms']} ms, p99 {paced['p99_ms']} ms, 5xx {paced['errors_5xx']}")

        # C: syncs alone.
        b = self.phase_begin("C")
        stop, drivers = self.new_drivers()
        t = time.monotonic()
        for d in drivers:
            d.start()
        time.sleep(a.syncs_secs)
        stop.set()
        self.wait_drivers(drivers)
        alone = sync_stats([r for d in drivers for r in d.results], t)
        alone.update(self.phase_end("C", b))
        log(f"syncs alone: {alone['records_per_s']:.0f} records/s over {alone['full_syncs_done']} full syncs")

        # D: paced reads and back-to-back full syncs at once. New syncs start until the phase's
        # time is up; the reads go on until the last of them ends, so every counted sync ran
        # entirely beside reads.
        b = self.phase_begin("D")
        stop, drivers = self.new_drivers()
        t = time.monotonic()
        readers, start, sched = self.run_readers("paced", a.mixed_secs, rate=rate, drivers_stop=stop, drivers=drivers)
        mixed = read_stats(readers, start, sched, rate)
        mixed["syncs"] = sync_stats([r for d in drivers for r in d.results], t)
        mixed.update(self.phase_end("D", b))
        log(f"reads under syncs: held {mixed['held_rps']:.1f} req/s, p50 {mixed['p50_ms']} ms, p99 {mixed['p99_ms']} ms, "
            f"5xx {mixed['errors_5xx']}; syncs {mixed['syncs']['records_per_s']:.0f} records/s")

        # End: is the store exact?
        b = self.phase_begin("check")
        exact = {}
        counts = self.parallel(lambda c: Client(c["emulator"]["url"], a.http_timeout).json("GET", "/__emulator"), self.conns)
        walked = self.parallel(lambda c: self.walk(c, 200, False), self.conns)
        for c, emu, (ids, _) in zip(self.conns, counts, walked):
            want = emu["counts"]["purchase_orders"]
            exact[c["name"]] = {"emulator": want, "api": len(ids), "distinct": len(set(ids)),
                                "exact": len(ids) == want and len(set(ids)) == want}
        check = self.phase_end("check", b)
        hwm_kb = self.sampler.hwm_kb
        machine["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        self.summary = self.summarize(machine, version, t_start, setup_out, cap, rate, paced, alone, mixed, exact, check, hwm_kb)
        return self.summary

    def summarize(self, machine, version, t_start, setup, cap, rate, paced, alone, mixed, exact, check, hwm_kb):
        a = self.args
        phases = {"setup": setup, "A": cap, "B": paced, "C": alone, "D": mixed, "check": check}
        wal_max = max((p.get("wal_max_bytes") or 0) for p in phases.values()) / 2**20 if a.backend == "sqlite" else None
        rss_max = max((p.get("rss_max_kb") or 0) for p in phases.values()) / 1024
        fivexx = paced["errors_5xx"] + mixed["errors_5xx"] + cap["errors_5xx"] + self.counters.fivexx
        p99_ratio = (mixed["p99_ms"] / paced["p99_ms"]) if mixed["p99_ms"] and paced["p99_ms"] else None
        sync_ratio = (mixed["syncs"]["records_per_s"] / alone["records_per_s"]) if alone["records_per_s"] else None
        per_conn_ratios = {}
        for name, c in alone["per_connection"].items():
            m = mixed["syncs"]["per_connection"].get(name)
            if m and c["records_per_s"] and m["records_per_s"]:
                per_conn_ratios[name] = round(m["records_per_s"] / c["records_per_s"], 3)
        store_exact = all(v["exact"] for v in exact.values())
        held = min(paced["held_rps"], mixed["held_rps"])
        targets = {
            "read_p99_under_syncs_at_most_2x": p99_ratio is not None and p99_ratio <= 2.0,
            "offered_rate_held": held >= a.held_fraction * rate and paced["missed"] == 0 and mixed["missed"] == 0,
            "sync_speed_under_reads_at_least_half": sync_ratio is not None and sync_ratio >= 0.5,
            "sqlite_wal_under_256_mb": None if wal_max is None else wal_max < WAL_LIMIT_MB,
            "no_5xx": fivexx == 0,
            "store_exact": store_exact,
        }
        return {
            "label": a.label,
            "binary": os.path.abspath(a.binary),
            "version": version,
            "backend": a.backend,
            "machine": machine,
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "orders_per_connection": a.orders,
            "connections": [c["name"] for c in self.conns],
            "readers": a.readers,
            "seconds": round(time.time() - t_start, 1),
            "capacity_rps": round(cap["capacity_rps"], 1),
            "offered_rps": round(rate, 1),
            "reads_unpaced": {"p50_ms": cap["p50_ms"], "p99_ms": cap["p99_ms"]},
            "reads_idle": {"p50_ms": paced["p50_ms"], "p99_ms": paced["p99_ms"], "held_rps": round(paced["held_rps"], 1),
                           "service_p50_ms": paced["service_p50_ms"], "service_p99_ms": paced["service_p99_ms"]},
            "reads_under_syncs": {"p50_ms": mixed["p50_ms"], "p99_ms": mixed["p99_ms"], "held_rps": round(mixed["held_rps"], 1),
                                  "service_p50_ms": mixed["service_p50_ms"], "service_p99_ms": mixed["service_p99_ms"]},
            "read_p99_ratio": None if p99_ratio is None else round(p99_ratio, 2),
            "sync_records_per_s_alone": round(alone["records_per_s"], 1),
            "sync_records_per_s_under_reads": round(mixed["syncs"]["records_per_s"], 1),
            "sync_speed_ratio": None if sync_ratio is None else round(sync_ratio, 3),
            "sync_speed_ratio_per_connection": per_conn_ratios,
            "sqlite_wal_max_mb": None if wal_max is None else round(wal_max, 1),
            "server_rss_max_mib": round(rss_max, 1),
            "server_peak_rss_mib": round(hwm_kb / 1024, 1),
            "errors_5xx": fivexx,
            "transport_errors": cap["transport_errors"] + paced["transport_errors"] + mixed["transport_errors"]
            + self.counters.transport_errors,
            "store": exact,
            "store_exact": store_exact,
            "targets": targets,
            "phases": phases,
        }


TABLE_HEADER = (
    "| Run | Backend | Capacity → offered (req/s) | Reads p50 / p99 idle | Reads p50 / p99 under syncs | p99 ratio (≤ 2) "
    "| Held idle / under syncs (req/s) | Sync records/s alone → under reads | Ratio (≥ 0.5) | SQLite WAL max (< 256 MB) | Peak RSS | 5xx | Store exact |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def fmt_ms(v):
    if v is None:
        return "–"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def fmt_ratio(v):
    if v is None:
        return "–"
    return f"{v:,.0f}×" if v >= 10 else f"{v:.2f}×"


def table_row(s):
    def pf(ok):
        return "n/a" if ok is None else ("pass" if ok else "FAIL")

    t = s["targets"]
    wal = "n/a" if s["sqlite_wal_max_mb"] is None else f"{s['sqlite_wal_max_mb']:.0f} MB {pf(t['sqlite_wal_under_256_mb'])}"
    return (
        f"| {s['label']} | {s['backend']} | {s['capacity_rps']:.0f} → {s['offered_rps']:.0f} "
        f"| {fmt_ms(s['reads_idle']['p50_ms'])} / {fmt_ms(s['reads_idle']['p99_ms'])} ms "
        f"| {fmt_ms(s['reads_under_syncs']['p50_ms'])} / {fmt_ms(s['reads_under_syncs']['p99_ms'])} ms "
        f"| {fmt_ratio(s['read_p99_ratio'])} {pf(t['read_p99_under_syncs_at_most_2x'])} "
        f"| {s['reads_idle']['held_rps']:.0f} / {s['reads_under_syncs']['held_rps']:.0f} {pf(t['offered_rate_held'])} "
        f"| {s['sync_records_per_s_alone']:,.0f} → {s['sync_records_per_s_under_reads']:,.0f} "
        f"| {fmt_ratio(s['sync_speed_ratio'])} {pf(t['sync_speed_under_reads_at_least_half'])} "
        f"| {wal} "
        f"| {s['server_peak_rss_mib']:,.0f} MiB | {s['errors_5xx']} {pf(t['no_5xx'])} | {pf(t['store_exact'])} |"
    )


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--binary", required=True, help="the ironbridge binary to measure")
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--orders", type=int, default=10000, help="purchase orders in each emulator")
    p.add_argument("--systems", default=DEFAULT_SYSTEMS,
                   help="one emulator process and connection per entry (netsuite, sap, business-central)")
    p.add_argument("--readers", type=int, default=12, help="concurrent API clients")
    p.add_argument("--warmup-secs", type=float, default=3.0, help="unrecorded start of phase A")
    p.add_argument("--capacity-secs", type=float, default=15.0, help="phase A: unpaced reads")
    p.add_argument("--paced-secs", type=float, default=30.0, help="phase B: paced reads, no syncs")
    p.add_argument("--syncs-secs", type=float, default=40.0,
                   help="phase C: new full syncs start for this long (the last ones then finish)")
    p.add_argument("--mixed-secs", type=float, default=40.0,
                   help="phase D: paced reads with new full syncs starting for this long; reads go on until the last sync ends")
    p.add_argument("--duration", type=float, default=None,
                   help="shorthand: sets --paced-secs, --syncs-secs and --mixed-secs to this and --capacity-secs to half of it")
    p.add_argument("--offered-fraction", type=float, default=0.5, help="offered rate as a fraction of the capacity")
    p.add_argument("--rate", type=float, default=None,
                   help="offered rate in req/s (instead of the fraction), e.g. to compare two binaries at the same rate")
    p.add_argument("--held-fraction", type=float, default=0.95,
                   help="the offered rate counts as held when at least this fraction of it was served, none missed")
    p.add_argument("--drain-secs", type=float, default=10.0,
                   help="after a paced phase, how long readers behind schedule may still send; what is left is missed")
    p.add_argument("--worker-max-jobs", type=int, default=8, help="worker_max_jobs of the server (at least 5)")
    p.add_argument("--serve-env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra environment for org create and serve, e.g. IRONBRIDGE_LOG_LEVEL=info (repeatable)")
    p.add_argument("--http-timeout", type=float, default=60.0, help="seconds for any one HTTP call")
    p.add_argument("--sync-timeout", type=float, default=900.0, help="seconds one sync may take")
    p.add_argument("--seed", type=int, default=1, help="seed of the readers' choices")
    p.add_argument("--label", default="run", help="first column of the table row")
    p.add_argument("--json-out", default=None, help="also write the JSON summary to this file")
    p.add_argument("--keep", action="store_true", help="keep the temp directory (logs, SQLite file) and the PostgreSQL database")
    p.add_argument("--pg-host", default="127.0.0.1")
    p.add_argument("--pg-port", type=int, default=5432)
    p.add_argument("--pg-user", default="postgres")
    p.add_argument("--table-header", action="store_true", help="print the markdown table's header before the row")
    a = p.parse_args(argv)
    a.systems = [s.strip() for s in a.systems.split(",") if s.strip()]
    for s in a.systems:
        if s not in ("netsuite", "sap", "business-central"):
            p.error(f"--systems: unknown system {s!r}")
    if a.duration is not None:
        a.paced_secs = a.syncs_secs = a.mixed_secs = a.duration
        a.capacity_secs = max(2.0, a.duration / 2)
    if a.worker_max_jobs < len(a.systems):
        p.error("--worker-max-jobs must be at least the number of connections, so their syncs run at once")
    if not (os.path.isfile(a.binary) and os.access(a.binary, os.X_OK)):
        p.error(f"--binary {a.binary} is not an executable file")
    if a.orders < 10:
        p.error("--orders must be at least 10")
    return a


def _interrupt(signum, frame):
    raise KeyboardInterrupt()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # SIGTERM ends the run like Ctrl-C: children stopped, temp files and database removed.
    signal.signal(signal.SIGTERM, _interrupt)
    run = Run(args)
    code = 0
    try:
        summary = run.main()
        text = json.dumps(summary, indent=2, default=str)
        print(text)
        if args.json_out:
            with open(args.json_out, "w") as f:
                f.write(text + "\n")
        if args.table_header:
            print(TABLE_HEADER)
        print(table_row(summary))
    except HarnessError as e:
        log(f"error: {e}")
        code = 2
    except KeyboardInterrupt:
        log("interrupted")
        code = 130
    finally:
        try:
            run.children.stop_all()
        finally:
            if run.db_name and not args.keep:
                try:
                    psql(args, f'DROP DATABASE IF EXISTS "{run.db_name}" WITH (FORCE)')
                except HarnessError as e:
                    log(f"could not drop database {run.db_name}: {e}")
            if args.keep:
                log(f"kept {run.tmp}" + (f" and database {run.db_name}" if run.db_name else ""))
            else:
                shutil.rmtree(run.tmp, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
