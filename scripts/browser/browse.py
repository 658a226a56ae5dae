"""Drives Link and the dashboard in headless Chromium, as an end customer and a developer would.

Starts `ironbridge --config <tmp toml> serve` on a free loopback port with a fresh temporary
data directory (loopback connections and webhooks allowed), the six emulated systems with
`ironbridge emulate`, an organization (`org create --json`) with a dashboard account
(`org add-user`), and a loopback receiver for webhooks and Link's redirect. Then, in the
browser: a Link for the sandbox with a failed credential check and its message, the systems
page, a Link for each emulated system, NetSuite's two certificate options (Ironbridge's
certificate downloaded and registered; the customer's own made with the openssl command the
page shows), the re-authorization of a connection whose credentials were revoked, sign-in,
every dashboard page, sync now, a custom field added on the mappings page (then read
from the API), and the replay of a webhook delivery. Every page is saved as a
screenshot. Prints one line per check and "N passed, N failed"; exits 1 if any failed. Every
process started is stopped. Usage: browse.py PATH_TO_IRONBRIDGE_BINARY SCREENSHOT_DIR
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
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

HOST = "127.0.0.1"
READY_TIMEOUT = 90.0
PASSWORD = "browser-test-password-1"
EMAIL = "developer@browser.example"
EMULATED = ["netsuite", "sap", "business-central", "asctrac", "samsara", "nextraq"]

# Only loopback traffic: never through a proxy, whatever the environment says.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def child_env(extra=None):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().endswith("_PROXY") and not k.startswith("IRONBRIDGE_")
    }
    env["NO_PROXY"] = env["no_proxy"] = "*"
    env.update(extra or {})
    return env


def http(method, url, body=None, token=None, expect=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with _opener.open(req, timeout=60) as r:
            status, raw, headers = r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        status, raw, headers = e.code, e.read(), dict(e.headers)
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    if expect is not None and status != expect:
        raise AssertionError(f"{method} {url} answered {status}: {parsed}")
    return status, parsed, headers


def wait_ready(url, proc, what, log_path):
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; see {log_path}")
        try:
            with _opener.open(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} was not ready within {READY_TIMEOUT:.0f} s; see {log_path}")


class Processes:
    """Every process this run started; stop() ends them all (SIGTERM, then kill)."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def start(self, name, args, ready_url, env=None):
        log_path = os.path.join(self.workdir, f"{name}.log")
        log = open(log_path, "wb")
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=child_env(env))
        self.procs.append((proc, log))
        wait_ready(ready_url, proc, name, log_path)
        return proc

    def stop(self):
        for proc, log in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=15)
            log.close()


def start_receiver():
    """Answers webhooks with 204 and Link's redirect with a small page."""
    got = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            got.append(self.rfile.read(length) if length else b"")
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            body = b"<!doctype html><title>Back at the organization</title><h1>Back at the organization's app</h1>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((HOST, 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, got


class Run:
    def __init__(self, binary, shots):
        self.binary = binary
        self.shots = shots
        self.shot_n = 0
        self.passed = 0
        self.failed = 0
        self.workdir = tempfile.mkdtemp(prefix="ironbridge-browser-")
        self.procs = Processes(self.workdir)
        self.driver = None
        self.receiver = None

    # -- setup -------------------------------------------------------------------------------

    def setup(self):
        port = free_port()
        self.base = f"http://{HOST}:{port}"
        self.config = os.path.join(self.workdir, "ironbridge.toml")
        with open(self.config, "w") as f:
            f.write(
                f'listen = "{HOST}:{port}"\n'
                f"data_dir = {json.dumps(os.path.join(self.workdir, 'data'))}\n"
                'log_level = "info"\n'
                "\n[webhooks]\n"
                'allowed_networks = ["127.0.0.1/32"]\n'
                "\n[rate_limit]\n"
                # One browser walks every flow from one address, faster than people do.
                "anonymous_per_minute = 600\n"
                "anonymous_burst = 200\n"
                "\n[connections]\n"
                'allowed_private_networks = ["127.0.0.1/32"]\n'
            )
        self.procs.start("server", [self.binary, "--config", self.config, "serve"], self.base + "/readyz")
        self.emulators = {}
        for name in EMULATED:
            eport = free_port()
            url = f"http://{HOST}:{eport}"
            self.procs.start(name, [self.binary, "emulate", name, "--port", str(eport)], url + "/__emulator")
            self.emulators[name] = url
        out = subprocess.run(
            [self.binary, "--config", self.config, "org", "create", "--name", "Acme Procurement", "--json"],
            capture_output=True, env=child_env(), timeout=120, check=True,
        )
        org = json.loads(out.stdout.decode().strip().splitlines()[-1])
        self.key, self.org = org["api_key"], org["organization_id"]
        subprocess.run(
            [self.binary, "--config", self.config, "org", "add-user", "--org", self.org, "--email", EMAIL],
            capture_output=True, env=child_env({"IRONBRIDGE_DASHBOARD_PASSWORD": PASSWORD}), timeout=120, check=True,
        )
        self.receiver, self.hooks = start_receiver()
        self.receiver_base = f"http://{HOST}:{self.receiver.server_address[1]}"
        http("POST", self.base + "/v1/webhook-endpoints", {"url": self.receiver_base + "/hooks"}, self.key, 201)
        _, systems, _ = http("GET", self.base + "/v1/systems", None, self.key, 200)
        self.systems = {s["system"]: s for s in systems["data"]}
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000", "--no-proxy-server"]:
            options.add_argument(arg)
        self.driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
        self.driver.set_page_load_timeout(120)

    def stop(self):
        if self.driver is not None:
            self.driver.quit()
        if self.receiver is not None:
            self.receiver.shutdown()
        self.procs.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------------

    def check(self, name, fn):
        try:
            fn()
            self.passed += 1
            print(f"ok    {name}", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported, then the next check runs
            self.failed += 1
            print(f"FAIL  {name}: {type(e).__name__}: {e}", flush=True)
            self.shot(f"failed-{name}")

    def shot(self, name):
        self.shot_n += 1
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:80]
        self.driver.save_screenshot(os.path.join(self.shots, f"{self.shot_n:02d}-{safe}.png"))

    def open(self, url):
        self.driver.get(url)

    def text(self):
        # The page may be replaced while it is read (after a click): read it again then.
        for _ in range(5):
            try:
                return self.driver.find_element(By.TAG_NAME, "body").text
            except StaleElementReferenceException:
                time.sleep(0.1)
        return ""

    def fill(self, fields):
        for name, value in fields.items():
            el = self.driver.find_element(By.NAME, name)
            el.clear()
            el.send_keys(str(value))

    def submit(self, selector="main form button[type=submit]"):
        self.driver.find_element(By.CSS_SELECTOR, selector).click()

    def wait(self, pred, what, timeout=60):
        WebDriverWait(self.driver, timeout).until(lambda d: pred(d), message=what)

    def link(self, systems=None, connection_id=None):
        body = {
            "end_user": {"id": "cust-browser", "name": "Globex Manufacturing"},
            "redirect_url": self.receiver_base + "/done",
            "brand": {"name": "Acme Procurement", "colour": "#0b5fff"},
        }
        if systems is not None:
            body["systems"] = systems
        if connection_id is not None:
            body["connection_id"] = connection_id
        _, out, _ = http("POST", self.base + "/v1/link-tokens", body, self.key, 201)
        return self.base + out["url"]

    def finished(self, name):
        """Waits for Link to send the browser back, and exchanges the public token."""
        self.wait(lambda d: d.current_url.startswith(self.receiver_base + "/done"), f"{name}: back at the redirect URL", timeout=120)
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.driver.current_url).query)
        public = query["public_token"][0]
        _, out, _ = http("POST", self.base + "/v1/link-tokens/exchange", {"public_token": public}, self.key, 200)
        assert out["connection"]["id"] == query["connection_id"][0], out
        return out

    def option_for(self, system, credentials):
        for option in self.systems[system]["credentials"]:
            names = {f["name"] for f in option["fields"]}
            if set(credentials) <= names:
                return option["id"]
        raise AssertionError(f"no credential option of {system} takes {sorted(credentials)}")

    def admin(self, emulator, method, path, body=None):
        status, out, _ = http(method, self.emulators[emulator] + "/__emulator" + path, body)
        assert 200 <= status < 300, f"{emulator} {path}: {status} {out}"
        return out

    def connect(self, system, settings, credentials, label):
        """Fills and sends a system's form on a fresh single-system link."""
        option = self.option_for(system, credentials)
        url = self.link([system])
        self.open(f"{url}/systems/{system}?option={option}")
        self.shot(f"link-{label}-form")
        fields = {f"settings.{k}": v for k, v in settings.items()}
        fields.update({f"credentials.{k}": v for k, v in credentials.items()})
        self.fill(fields)
        self.submit()
        out = self.finished(label)
        self.shot(f"link-{label}-done")
        assert out["connection"]["system"] == system, out
        return out

    # -- the flows ---------------------------------------------------------------------------

    def sandbox_with_a_failed_check(self):
        url = self.link(["sandbox"])
        self.open(url)
        self.wait(lambda d: "/systems/sandbox" in d.current_url, "straight to the sandbox form")
        assert "Acme Procurement" in self.text()
        self.shot("link-sandbox-form")
        self.fill({"credentials.api_key": "revoked", "settings.purchase_orders": "12"})
        self.submit()
        self.wait(lambda d: "refused these credentials" in self.text(), "the refusal is shown")
        assert self.driver.find_element(By.NAME, "credentials.api_key").get_attribute("value") == "", "the secret is not shown back"
        assert self.driver.find_element(By.NAME, "settings.purchase_orders").get_attribute("value") == "12"
        self.shot("link-sandbox-failed-check")
        self.fill({"credentials.api_key": "sandbox-key"})
        self.submit()
        out = self.finished("sandbox")
        self.shot("link-sandbox-back-at-the-organization")
        assert out["token"].startswith("ibc_"), out
        self.sandbox = out

    def systems_page(self):
        url = self.link()
        self.open(url)
        body = self.text()
        for s in self.systems.values():
            assert s["name"] in body, f"{s['name']} is not offered"
        self.shot("link-systems")
        self.driver.find_element(By.PARTIAL_LINK_TEXT, self.systems["netsuite"]["name"]).click()
        self.wait(lambda d: "option=certificate_generated" in d.page_source, "NetSuite's options")
        self.shot("link-netsuite-options")

    def sap(self):
        creds = self.admin("sap", "GET", "/credentials")
        self.sap_connection = self.connect("sap_s4hana", {"base_url": self.emulators["sap"], "sap_client": "100"}, {"username": creds["user"], "password": creds["password"]}, "sap")

    def business_central(self):
        c = self.admin("business-central", "GET", "/credentials")
        base = self.emulators["business-central"]
        self.connect("business_central", {"base_url": base, "login_url": base, "tenant_id": c["tenant_id"], "environment": c["environment"]}, {"client_id": c["client_id"], "client_secret": c["client_secret"]}, "business-central")

    def asctrac(self):
        c = self.admin("asctrac", "GET", "/credentials")
        self.connect("asctrac", {"base_url": self.emulators["asctrac"], "time_zone": "America/New_York", "facilities": "01,02,03", "docks": "D1,D2"}, {"client_id": c["client_id"], "client_secret": c["client_secret"]}, "asctrac")

    def samsara(self):
        c = self.admin("samsara", "GET", "/credentials")
        self.connect("samsara", {"base_url": self.emulators["samsara"]}, {"api_token": c["tokens"][0]}, "samsara")

    def nextraq(self):
        c = self.admin("nextraq", "GET", "/credentials")
        zone = self.admin("nextraq", "GET", "/settings")["time_zone"]
        self.connect("nextraq", {"base_url": self.emulators["nextraq"], "time_zone": zone}, {"username": c["username"], "password": c["password"]}, "nextraq")

    def netsuite_option_a(self):
        url = self.link(["netsuite"])
        self.open(f"{url}/systems/netsuite?option=certificate_generated")
        self.wait(lambda d: "Download the certificate" in self.text(), "the certificate step")
        self.shot("link-netsuite-option-a")
        href = self.driver.find_element(By.PARTIAL_LINK_TEXT, "Download the certificate").get_attribute("href")
        with _opener.open(href, timeout=60) as r:
            pem = r.read().decode()
        assert pem.startswith("-----BEGIN CERTIFICATE-----"), pem[:40]
        self.admin("netsuite", "POST", "/netsuite/m2m-clients", {"client_id": "browser-a", "certificate_id": "cert-a", "certificate_pem": pem})
        self.fill({"settings.base_url": self.emulators["netsuite"], "credentials.account_id": "1234567_SB1", "credentials.client_id": "browser-a", "credentials.certificate_id": "cert-a"})
        self.submit()
        out = self.finished("netsuite-a")
        self.shot("link-netsuite-option-a-done")
        assert out["connection"]["system"] == "netsuite"

    def netsuite_option_b(self):
        url = self.link(["netsuite"])
        self.open(f"{url}/systems/netsuite?option=certificate_own")
        command = self.driver.find_element(By.CSS_SELECTOR, "#openssl pre").text
        assert command.startswith("openssl req -x509"), command
        self.shot("link-netsuite-option-b")
        keys = os.path.join(self.workdir, "own-key")
        os.makedirs(keys, exist_ok=True)
        # The command exactly as the page shows it, run in a shell.
        subprocess.run(["bash", "-c", command], cwd=keys, check=True, capture_output=True, timeout=120)
        with open(os.path.join(keys, "cert.pem")) as f:
            cert = f.read()
        with open(os.path.join(keys, "key.pem")) as f:
            key = f.read()
        self.admin("netsuite", "POST", "/netsuite/m2m-clients", {"client_id": "browser-b", "certificate_id": "cert-b", "certificate_pem": cert})
        self.fill({"settings.base_url": self.emulators["netsuite"], "credentials.account_id": "1234567_SB1", "credentials.client_id": "browser-b", "credentials.certificate_id": "cert-b", "credentials.private_key_pem": key})
        self.submit()
        out = self.finished("netsuite-b")
        assert out["connection"]["system"] == "netsuite"

    def reauthorization(self):
        conn = self.sap_connection["connection"]["id"]
        token = self.sap_connection["token"]
        self.admin("sap", "POST", "/credentials/rotate")
        http("POST", self.base + "/v1/sync", {}, token, 202)
        deadline = time.monotonic() + 90
        while True:
            _, c, _ = http("GET", f"{self.base}/v1/connections/{conn}", None, self.key, 200)
            if c["status"] == "reauthorization_required":
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"still {c['status']}")
            time.sleep(0.5)
        fresh = self.admin("sap", "GET", "/credentials")
        url = self.link(connection_id=conn)
        self.open(url)
        self.wait(lambda d: "/systems/sap_s4hana" in d.current_url, "straight to the connection's system")
        option = self.option_for("sap_s4hana", {"username": 1, "password": 1})
        if "?option=" not in self.driver.current_url and "option=" in self.driver.page_source:
            self.shot("link-reauthorization-options")
            self.open(f"{url}/systems/sap_s4hana?option={option}")
        self.wait(lambda d: "Reconnect" in self.text(), "the renewal form")
        self.shot("link-reauthorization-form")
        self.fill({"credentials.username": fresh["user"], "credentials.password": fresh["password"]})
        self.submit()
        out = self.finished("reauthorization")
        assert out["reauthorized"] is True and out["token"] is None, out
        assert out["connection"]["id"] == conn
        _, c, _ = http("GET", f"{self.base}/v1/connections/{conn}", None, self.key, 200)
        assert c["status"] in ("online", "syncing"), c["status"]

    def sign_in(self):
        self.open(self.base + "/dashboard")
        self.wait(lambda d: d.current_url.endswith("/dashboard/sign-in"), "sent to the sign-in page")
        self.shot("dashboard-sign-in")
        self.fill({"email": EMAIL, "password": "not the password"})
        self.submit()
        self.wait(lambda d: "Wrong e-mail address or password" in self.text(), "a wrong password is refused")
        self.fill({"email": EMAIL, "password": PASSWORD})
        self.submit()
        self.wait(lambda d: d.current_url.endswith("/dashboard"), "signed in")
        assert "Connections" in self.text()

    def dashboard_pages(self):
        body = self.text()
        assert "Globex Manufacturing" in body and "online" in body, body[:500]
        self.shot("dashboard-connections")
        conn = self.sandbox["connection"]["id"]
        self.open(f"{self.base}/dashboard/connections/{conn}")
        assert "Sync history per entity" in self.text()
        self.shot("dashboard-connection")
        self.driver.find_element(By.XPATH, "//button[text()='Sync now']").click()
        self.wait(lambda d: "A sync was queued" in self.text(), "sync now")
        self.shot("dashboard-sync-queued")
        self.open(self.base + "/dashboard/events")
        assert "connection.created" in self.text()
        self.shot("dashboard-events")
        _, _, headers = http("GET", self.base + "/v1/organization", None, self.key, 200)
        request_id = headers.get("x-request-id") or headers.get("X-Request-Id")
        self.open(self.base + "/dashboard/requests")
        self.fill({"request_id": request_id})
        self.driver.find_element(By.XPATH, "//button[text()='Find']").click()
        self.wait(lambda d: request_id in self.text() and "/v1/organization" in self.text(), "the request found by its id")
        self.shot("dashboard-requests")

    def custom_field(self):
        conn = self.sandbox["connection"]["id"]
        _, fields, _ = http("GET", f"{self.base}/v1/connections/{conn}/remote-fields?entity=purchase_order", None, self.key, 200)
        # A text field every stored order has, so the first order shows it.
        path = next(
            f["path"]
            for f in fields["data"]
            if f["scope"] == "record" and f["type"] == "text" and f["records_with_value"] == fields["records_sampled"]
        )
        self.open(f"{self.base}/dashboard/connections/{conn}")
        self.driver.find_element(By.PARTIAL_LINK_TEXT, "add custom fields").click()
        self.wait(lambda d: "Add a custom field" in self.text(), "the mappings page")
        self.driver.find_element(By.LINK_TEXT, "purchase_order").click()
        self.wait(lambda d: "Source fields of purchase_order" in self.text(), "the orders' source fields")
        self.shot("dashboard-field-mappings")
        Select(self.driver.find_element(By.NAME, "entity")).select_by_value("purchase_order")
        self.fill({"name": "from_the_browser", "source_path": path})
        self.driver.find_element(By.XPATH, "//button[text()='Preview']").click()
        self.wait(lambda d: "nothing was saved" in self.text(), "the preview")
        self.shot("dashboard-field-mapping-preview")
        self.driver.find_element(By.XPATH, "//button[text()='Add the field']").click()
        self.wait(lambda d: "it is in API answers now" in self.text(), "the field is added")
        _, orders, _ = http("GET", self.base + "/v1/purchase-orders", None, self.sandbox["token"], 200)
        assert "from_the_browser" in orders["data"][0]["custom_fields"], orders["data"][0]["custom_fields"]

    def replay(self):
        self.open(self.base + "/dashboard/webhooks")
        self.shot("dashboard-webhooks")
        self.driver.find_element(By.PARTIAL_LINK_TEXT, self.receiver_base).click()
        self.wait(lambda d: "status-succeeded" in d.page_source, "a delivered webhook in the log", timeout=60)
        self.shot("dashboard-deliveries")
        before = len(self.hooks)
        self.driver.find_element(By.XPATH, "//button[text()='Replay']").click()
        self.wait(lambda d: "queued again" in self.text(), "the replay is queued")
        deadline = time.monotonic() + 30
        while len(self.hooks) <= before:
            if time.monotonic() > deadline:
                raise AssertionError("the replayed delivery did not arrive")
            time.sleep(0.2)
        self.shot("dashboard-replayed")

    def sign_out(self):
        self.open(self.base + "/dashboard")
        self.driver.find_element(By.XPATH, "//button[text()='Sign out']").click()
        self.wait(lambda d: d.current_url.endswith("/dashboard/sign-in"), "signed out")
        self.open(self.base + "/dashboard")
        self.wait(lambda d: d.current_url.endswith("/dashboard/sign-in"), "the session ended")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    binary, shots = sys.argv[1], sys.argv[2]
    os.makedirs(shots, exist_ok=True)
    run = Run(binary, shots)
    try:
        run.setup()
        for name, fn in [
            ("link: the sandbox, after a failed credential check", run.sandbox_with_a_failed_check),
            ("link: the systems page and NetSuite's options", run.systems_page),
            ("link: SAP S/4HANA", run.sap),
            ("link: Business Central", run.business_central),
            ("link: ASCTrac", run.asctrac),
            ("link: Samsara", run.samsara),
            ("link: NexTraq", run.nextraq),
            ("link: NetSuite option A (Ironbridge's certificate)", run.netsuite_option_a),
            ("link: NetSuite option B (the customer's own key pair)", run.netsuite_option_b),
            ("link: re-authorizing a revoked connection", run.reauthorization),
            ("dashboard: sign-in", run.sign_in),
            ("dashboard: connections, a connection, sync now, events, requests", run.dashboard_pages),
            ("dashboard: a custom field added with a preview, then in the API", run.custom_field),
            ("dashboard: webhooks, deliveries and replay", run.replay),
            ("dashboard: sign-out", run.sign_out),
        ]:
            run.check(name, fn)
    finally:
        run.stop()
    print(f"{run.passed} passed, {run.failed} failed; screenshots in {shots}")
    return 1 if run.failed else 0


if __name__ == "__main__":
    sys.exit(main())
