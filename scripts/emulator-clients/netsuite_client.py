"""Drives the NetSuite emulator with the public `netsuite` client (jacobsvante, PyPI) using TBA.

The client hard-codes the NetSuite host in `_make_url`; as target-systems.md §1.10 says, a subclass
overrides it so only the base URL differs. Everything else (OAuth 1.0a HMAC-SHA256 signing, JSON
parsing, SuiteQL paging parameters, `X-NetSuite-PropertyNameValidation: error`) is the client's own.
"""

import asyncio
import json
import sys
import urllib.request

from netsuite import Config, NetSuite, TokenAuth
from netsuite.exceptions import NetsuiteAPIRequestError
from netsuite.rest_api import NetSuiteRestApi

BASE = sys.argv[1].rstrip("/")


class EmulatorRestApi(NetSuiteRestApi):
    def _make_url(self, subpath: str):
        return f"{BASE}/services/rest{subpath}"


def admin(path):
    with urllib.request.urlopen(f"{BASE}/__emulator{path}") as r:
        return json.load(r)


async def main():
    creds = admin("/credentials")["tba"]
    config = Config(
        account="1234567",
        auth=TokenAuth(
            consumer_key=creds["consumer_key"],
            consumer_secret=creds["consumer_secret"],
            token_id=creds["token_id"],
            token_secret=creds["token_secret"],
        ),
    )
    ns = NetSuite(config)
    api = EmulatorRestApi(config)

    page = await api.get("/record/v1/purchaseOrder", params={"limit": 5})
    assert page["count"] == 5 and page["hasMore"] is True, page
    first = page["items"][0]["id"]

    po = await api.get(f"/record/v1/purchaseOrder/{first}", params={"expandSubResources": "true"})
    assert po["id"] == first and po["item"]["items"], po
    assert abs(sum(l["amount"] for l in po["item"]["items"]) - po["total"]) < 0.01

    q = 'lastModifiedDate ON_OR_AFTER "1/1/2023"'
    filtered = await api.get("/record/v1/purchaseOrder", params={"q": q, "limit": 1000})
    assert filtered["totalResults"] > 0

    rows = await api.suiteql(
        "SELECT id, tranid, trandate, status, lastmodifieddate FROM transaction "
        "WHERE type = 'PurchOrd' ORDER BY id",
        limit=3,
        offset=0,
    )
    assert [r["id"] for r in rows["items"]] == ["1", "2", "3"], rows
    assert rows["items"][0]["tranid"] == (await api.get("/record/v1/purchaseOrder/1"))["tranId"]

    # A create returns 204 with Location; the client gets None back.
    created = await api.post(
        "/record/v1/purchaseOrder",
        json={"entity": {"id": "2"}, "item": {"items": [{"item": {"id": "3"}, "quantity": 2, "rate": 10}]}},
    )
    assert created is None

    try:
        await api.post("/record/v1/purchaseOrder", json={"entity": {"id": "999999"}, "item": {"items": [{"item": {"id": "3"}}]}})
        raise AssertionError("invalid vendor accepted")
    except NetsuiteAPIRequestError as e:
        body = json.loads(e.response_text)
        assert body["o:errorDetails"][0]["o:errorCode"] == "INVALID_CONTENT", body

    _ = ns  # the high-level facade builds the same NetSuiteRestApi
    print("netsuite (jacobsvante/netsuite 0.12, TBA): OK")


asyncio.run(main())
