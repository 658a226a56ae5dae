"""Drives the SAP emulator with SAP's own `pyodata` client: it loads `$metadata`, reads purchase orders
(filter, expand, count, paging), deep-inserts one after the CSRF handshake, and sends a `$batch` with a
read and a changeset of two creates, as real clients send deep changes."""

import sys

import pyodata
import requests

BASE = sys.argv[1].rstrip("/")
SERVICE = f"{BASE}/sap/opu/odata/sap/API_PURCHASEORDER_PROCESS_SRV/"

session = requests.Session()
session.auth = ("COMM_USER", "Emulator-Pa55word")

client = pyodata.Client(SERVICE, session)
orders = client.entity_sets.A_PurchaseOrder

page = orders.get_entities().top(5).execute()
assert len(page) == 5, page
assert page[0].PurchaseOrder == "4500000001"
assert page[0].LastChangeDateTime is not None

count = orders.get_entities().count().execute()
assert count > 5, count

recent = (
    orders.get_entities()
    .filter("LastChangeDateTime gt datetimeoffset'2023-01-01T00:00:00Z'")
    .order_by("LastChangeDateTime")
    .expand("to_PurchaseOrderItem")
    .top(3)
    .execute()
)
assert len(recent) == 3
items = recent[0].to_PurchaseOrderItem
assert len(items) >= 1 and items[0].PurchaseOrderItem == "10", items

one = orders.get_entity(PurchaseOrder="4500000002").execute()
assert one.Supplier.startswith("1030")
lines = one.nav("to_PurchaseOrderItem").get_entities().execute()
assert len(lines) >= 1

# pyodata leaves CSRF to the caller: fetch the token on the session, as SAP's docs describe.
token = session.head(SERVICE, headers={"x-csrf-token": "Fetch"}).headers["x-csrf-token"]
session.headers["x-csrf-token"] = token
created = (
    orders.create_entity()
    .set(
        CompanyCode="1710",
        PurchaseOrderType="NB",
        Supplier="10300002",
        PurchasingOrganization="1710",
        PurchasingGroup="001",
        DocumentCurrency="USD",
        to_PurchaseOrderItem=[
            {"Material": "ITEM-00003", "Plant": "1710", "OrderQuantity": "4", "NetPriceAmount": "12.50"}
        ],
    )
    .execute()
)
assert created.PurchaseOrder.startswith("45"), created

# A batch: one read outside any changeset, and a changeset whose two creates apply together.
new_order = dict(
    CompanyCode="1710",
    PurchaseOrderType="NB",
    Supplier="10300002",
    PurchasingOrganization="1710",
    PurchasingGroup="001",
    DocumentCurrency="USD",
    to_PurchaseOrderItem=[
        {"Material": "ITEM-00003", "Plant": "1710", "OrderQuantity": "2", "NetPriceAmount": "3.00"}
    ],
)
batch = client.create_batch()
batch.add_request(orders.get_entity(PurchaseOrder="4500000002"))
changeset = client.create_changeset()
changeset.add_request(orders.create_entity().set(**new_order))
changeset.add_request(orders.create_entity().set(**new_order))
batch.add_request(changeset)
read, made = batch.execute()
assert read.PurchaseOrder == "4500000002", read
assert len(made) == 2 and all(m.PurchaseOrder.startswith("45") for m in made), made
assert made[0].PurchaseOrder != made[1].PurchaseOrder

try:
    orders.create_entity().set(CompanyCode="1710", Supplier="10300002").execute()
    raise AssertionError("missing purchasing group accepted")
except pyodata.exceptions.HttpError as e:
    assert "Enter Purchasing Group" in e.response.text

print("sap (pyodata 1.12, with $batch): OK")
