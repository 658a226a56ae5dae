"""Drives the Samsara emulator with Samsara's own Python SDK (`samsara-api`, Fern-generated), unmodified,
pointed at the emulator with `base_url`: pages through vehicles and drivers with the SDK's pager, reads
location history and safety events, follows the vehicle stats feed across a clock advance, creates,
patches and lists a dispatch route, posts a fuel purchase, sees an injected 429 retried by the SDK and a
bad token raised as an `ApiError` with Samsara's error body."""

import datetime
import json
import sys
import urllib.request

from samsara import (
    CreateRouteStopWithOrdersRequestObjectRequestBody,
    PostFuelPurchaseRequestBodyPriceRequestBody,
    RoutesSingleUseAddressObjectRequestBody,
    Samsara,
    UpdateRoutesStopRequestObjectRequestBody,
)
from samsara.errors import UnauthorizedError

BASE = sys.argv[1].rstrip("/")
TOKEN = "samsara_api_emulator_token"


def admin(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{BASE}/__emulator{path}", data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        text = r.read()
        return json.loads(text) if text else None


client = Samsara(token=TOKEN, base_url=BASE)

# Vehicles: the SDK's pager follows `endCursor` until it is empty.
pager = client.vehicles.list(limit=50)
vehicles = list(pager)
ids = {v.id for v in vehicles}
assert len(vehicles) == len(ids) and len(vehicles) >= 100, len(vehicles)
assert all(v.vin and v.name for v in vehicles)
pages = sum(1 for _ in client.vehicles.list(limit=50).iter_pages())
assert pages == -(-len(vehicles) // 50), pages

drivers = list(client.drivers.list(limit=100))
assert drivers and all(d.driver_activation_status == "active" for d in drivers)
assert vehicles[0].static_assigned_driver.id in {d.id for d in drivers}

# Location history of two vehicles over an hour that has passed.
admin("POST", "/clock", {"advance_seconds": 2 * 3600})
history = client.vehicle_locations.get_vehicle_locations_history(
    start_time="2026-01-01T00:00:00Z", end_time="2026-01-01T01:00:00Z",
    vehicle_ids=[vehicles[0].id, vehicles[1].id])
assert [v.id for v in history.data] == [vehicles[0].id, vehicles[1].id]
assert all(len(v.locations) in (120, 121) for v in history.data)
assert history.pagination.has_next_page is False

# The stats feed: latest values first, then only what is new after the clock moves.
first = client.vehicle_stats.get_vehicle_stats_feed(types=["gps", "fuelPercents"], vehicle_ids=[vehicles[0].id])
assert len(first.data) == 1 and len(first.data[0].gps) == 1 and first.data[0].fuel_percents[0].value > 0
cursor = first.pagination.end_cursor
assert cursor and first.pagination.has_next_page is False
same = client.vehicle_stats.get_vehicle_stats_feed(types=["gps", "fuelPercents"], vehicle_ids=[vehicles[0].id], after=cursor)
assert same.data == [] and same.pagination.end_cursor == cursor
admin("POST", "/clock", {"advance_seconds": 300})
news = client.vehicle_stats.get_vehicle_stats_feed(types=["gps", "fuelPercents"], vehicle_ids=[vehicles[0].id], after=cursor)
assert len(news.data[0].gps) == 10, len(news.data[0].gps)
assert all(p.time > first.data[0].gps[0].time for p in news.data[0].gps)

# Safety events through the legacy endpoint, labels the SDK may not know included.
events = client.legacy_ap_is.get_safety_events(start_time="2026-01-01T00:00:00Z", end_time="2026-01-01T02:00:00Z")
assert events.pagination is not None
assert all(e.behavior_labels[0].label for e in events.data)

# A route: created, patched (JSON merge patch), listed.
now = datetime.datetime(2026, 1, 1, 3, 0, tzinfo=datetime.timezone.utc)
route = client.routes.create_route(
    name="SDK route",
    vehicle_id=vehicles[0].id,
    stops=[
        CreateRouteStopWithOrdersRequestObjectRequestBody(address_id="71000", scheduled_departure_time=now),
        CreateRouteStopWithOrdersRequestObjectRequestBody(
            name="Customer", scheduled_arrival_time=now + datetime.timedelta(hours=1),
            single_use_location=RoutesSingleUseAddressObjectRequestBody(latitude=33.8, longitude=-84.4)),
    ],
).data
assert [s.state for s in route.stops] == ["scheduled", "scheduled"], route.stops
patched = client.routes.patch_route(
    route.id, name="SDK route, changed",
    stops=[UpdateRoutesStopRequestObjectRequestBody(id=route.stops[0].id)]).data
assert patched.name == "SDK route, changed" and len(patched.stops) == 1
listed = client.routes.fetch_routes(start_time="2026-01-01T00:00:00Z", end_time="2026-01-02T00:00:00Z")
assert [r.id for r in listed.data] == [route.id]

purchase = client.fuel_and_energy.post_fuel_purchase(
    fuel_quantity_liters="95.2", transaction_location="1 Main St, Atlanta, GA",
    transaction_price=PostFuelPurchaseRequestBodyPriceRequestBody(amount="180.10", currency="usd"),
    transaction_reference="R-77", transaction_time="2026-01-01T02:30:00Z", vehicle_id=vehicles[0].id)
assert len(purchase.data.uuid_) == 36  # the SDK names the `uuid` member `uuid_`

# An injected 429 is retried by the SDK after its Retry-After; the call still succeeds.
admin("PUT", "/faults", {"rate_limit": {"count": 1, "retry_after_secs": 1}})
assert len(client.vehicles.list(limit=5).items) == 5
admin("DELETE", "/faults")

# A bad token is the SDK's UnauthorizedError (an ApiError) carrying Samsara's error body.
try:
    Samsara(token="wrong", base_url=BASE).vehicles.list()
    raise AssertionError("a bad token was accepted")
except UnauthorizedError as e:
    assert e.status_code == 401 and set(e.body) == {"message", "requestId"}, e.body

print(f"samsara-api: {len(vehicles)} vehicles in {pages} pages, feed caught up, route {route.id} created and patched")
