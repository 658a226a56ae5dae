"""Drives the NexTraq emulator the way the one public NexTraq integration (McKenneysRCXdev/NextraqData,
`NextraqDataPull.py`) drives the real web app, with `requests` (NexTraq has no client library): a session
cookie, vehicle ids read from the map page's `.checkboxIndent` inputs, one trail request per vehicle and day
with the same query string, 403 answers skipped, 401 meaning "get a new cookie"."""

import json
import re
import sys
import urllib.request

import requests

BASE = sys.argv[1].rstrip("/")


def admin(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{BASE}/__emulator{path}", data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        text = r.read()
        return json.loads(text) if text else None


creds = admin("GET", "/credentials")
session = requests.Session()
login = session.post(f"{BASE}/j_security_check",
                     data={"j_username": creds["username"], "j_password": creds["password"]})
assert login.status_code == 200 and login.url.endswith("/instaview/map.html"), (login.status_code, login.url)
assert "JSESSIONID" in session.cookies

# The integration's console snippet: every `.checkboxIndent input`, the id after its last `-`.
ids = re.findall(r'class="checkboxIndent"><input type="checkbox" id="[^"]*-(\d+)"', login.text)
assert len(ids) >= 10, len(ids)
listed = session.get(f"{BASE}/json/mobiles").json()["data"]["mobiles"]
assert sorted(str(m["mobileId"]) for m in listed) == sorted(ids)


def trail(vehicle, date):
    url = (f"{BASE}/json/mobiles/trail?lastThirty=false&date={date}&startTime=0&endTime=86340000"
           f"&mobileId={vehicle}&calcDistance=true&includeEvents=true&rnd=1552582940908")
    return session.get(url)


rows = 0
for vehicle in ids[:5]:
    for date in ["12/29/2025", "12/30/2025"]:
        r = trail(vehicle, date)
        assert r.status_code == 200, (vehicle, date, r.status_code)
        for t in r.json()["data"]["tracks"]:
            # The columns the integration writes to its CSV.
            row = [t["dateDisplay"], t["address"]["street"], t["address"]["city"], t["address"]["zip"],
                   t["address"]["county"], t["address"]["postedSpeedMph"], t["mobile"]["primaryFleet"]["name"],
                   t["mobile"]["name"], t["mobile"]["mobileId"], t["speedDisplay"], t["lon"], t["lat"],
                   t["heading"], t["calculatedMileage"]]
            assert len(row) == 14 and str(row[8]) == vehicle
            rows += 1
assert rows >= 5 * 2 * 1439, rows

# A vehicle the user may not see is a 403 the integration skips.
hidden = next(100000 + n for n in range(1, 100) if str(100000 + n) not in ids)
assert trail(hidden, "12/30/2025").status_code == 403

# Once the session has been idle too long, 401: the integration's "Get New Cookie".
admin("POST", "/clock", {"advance_seconds": 3600})
assert trail(ids[0], "12/30/2025").status_code == 401

print(f"nextraq (requests, cookie session): {len(ids)} vehicles from the map page, {rows} trail rows, 403 and 401 seen")
