"""Drives the Business Central emulator: Entra client-credentials token with `requests` (over plain
http; `bc_msal.py` drives Microsoft's MSAL over https), then the public OData V4 client
`python-odata`, which reflects entity types from `$metadata` and pages by following
`@odata.nextLink`."""

import json
import sys
import urllib.request

import requests
from odata import ODataService

BASE = sys.argv[1].rstrip("/")

with urllib.request.urlopen(f"{BASE}/__emulator/credentials") as r:
    creds = json.load(r)
tenant, company = creds["tenant_id"], creds["company_id"]

tok = requests.post(
    f"{BASE}/{tenant}/oauth2/v2.0/token",
    data={
        "grant_type": "client_credentials",
        "client_id": creds["client_id"],
        "client_secret": creds["client_secret"],
        "scope": "https://api.businesscentral.dynamics.com/.default",
    },
)
tok.raise_for_status()
assert tok.json()["token_type"] == "Bearer"

# Business Central's $metadata declares enums whose members python-odata 0.8 cannot load: it
# builds Python enums, which reserve names like `_x0020_` (the blank member of vendorBlocked).
# Against a real tenant the same reflection fails; the emulator declares those properties as
# strings for this client (values are still member names, checked below).
requests.patch(f"{BASE}/__emulator/settings", json={"metadata_enum_types": False}).raise_for_status()

session = requests.Session()
session.headers["Authorization"] = f"Bearer {tok.json()['access_token']}"
session.headers["Prefer"] = "odata.maxpagesize=7"

root = f"{BASE}/v2.0/{tenant}/production/api/v2.0/"
api = f"{root}companies({company})/"
# Entity sets live under the company, $metadata at the API root: reflect from there.
service = ODataService(api, session=session, reflect_entities=False, quiet_progress=True)
service.metadata_url = service.metadata.url = root + "$metadata"
_, service.entities, service.types = service.metadata.get_entity_sets(base=service.Entity)
PurchaseOrder = service.entities["purchaseOrders"]

orders = list(service.query(PurchaseOrder))
total = requests.get(api + "purchaseOrders?$count=true&$top=0", headers=dict(session.headers)).json()["@odata.count"]
assert len(orders) == total, (len(orders), total)
# Enum members by name, as API v2.0 serves them (python-odata may give enum members).
assert all(str(getattr(o.status, "name", o.status)) in ("Draft", "In_x0020_Review", "Open") for o in orders), {str(o.status) for o in orders}

# Raw V4 checks the client library does not cover: ETag-guarded PATCH.
r = session.post(api + "purchaseOrders", json={"vendorNumber": "V00002", "purchaseOrderLines": [{"lineObjectNumber": "ITEM-00003", "quantity": 2}]})
assert r.status_code == 201, r.text
created = r.json()
r = session.patch(api + f"purchaseOrders({created['id']})", json={"orderDate": "2026-01-05"}, headers={"If-Match": created["@odata.etag"]})
assert r.status_code == 200 and r.json()["orderDate"] == "2026-01-05", r.text
r = session.patch(api + f"purchaseOrders({created['id']})", json={"orderDate": "2026-01-06"}, headers={"If-Match": created["@odata.etag"]})
assert r.json()["error"]["code"] == "Request_EntityChanged", r.text

print(f"business-central (python-odata 0.8, {len(orders)} orders over {(len(orders) + 6) // 7} pages): OK")
