//! The entity catalogue: one entry per entity of the unified model (its name, ids, page sizes,
//! role in a sync, exact shape and JSON schema). The model, the mapping engine, the sync
//! engine, the routes and the OpenAPI document all read this table, so adding an entity is
//! one entry here, its unified type and a mapping file per system.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::entities::{Item, Location, PurchaseOrder, Vendor};
use crate::fleet::{
    DispatchRoute, Driver, DriverBehaviorEvent, FuelEvent, Vehicle, VehicleLocation,
};
use crate::warehouse::{
    DockAppointment, InventoryLevel, InventoryTransaction, OutboundOrder, Receipt, Shipment,
};

/// An entity of the unified model: a handle on its catalogue entry. Compared and hashed by
/// name; serialized as its name (`purchase_order`).
#[derive(Clone, Copy)]
pub struct Entity(&'static EntitySpec);

/// How an entity takes part in a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntityRole {
    /// Master data other records refer to (vendors, items): the first sync reads all of it,
    /// whatever its age.
    Reference,
    /// Business documents (purchase orders): the first sync reads the connection's history
    /// window (90 days by default).
    Transactional,
    /// Append-only observations (vehicle locations): read from a history window, never
    /// changed or swept as deleted afterwards.
    TimeSeries,
}

/// Where an entity's records are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// As records (unified body, raw payload, content hash): every entity but points.
    Records,
    /// As points of a time series in their own append-only, time-ordered storage, with a
    /// retention (vehicle locations): no raw payload, no custom fields, no updates. One
    /// point per series and instant: `series` names the unified field holding the series
    /// (`vehicle_id`), `at` the one holding the instant (`recorded_at`).
    Points {
        /// The field naming the series.
        series: &'static str,
        /// The field holding the instant.
        at: &'static str,
    },
}

/// A nested list of an entity's records (purchase-order lines), with ids of its own.
#[derive(Debug)]
pub struct ListSpec {
    /// The unified field holding the list (`line_items`).
    pub field: &'static str,
    /// Prefix of the elements' ids (`pol`).
    pub id_prefix: &'static str,
    /// What the elements' ids are derived under (`purchase_order_line`); never changes, or
    /// every stored id would.
    pub id_scope: &'static str,
    /// The element's fields, in output order.
    pub fields: &'static [&'static str],
}

/// The JSON schema of an entity's unified type, as functions of its `ToSchema` impl.
#[derive(Debug, Clone, Copy)]
pub struct SchemaOf {
    /// The schema's component name (`PurchaseOrder`).
    pub name: fn() -> Cow<'static, str>,
    /// The schema itself.
    pub schema: fn() -> RefOr<Schema>,
    /// The schemas it refers to, added to `out`.
    pub schemas: fn(&mut Vec<(String, RefOr<Schema>)>),
    /// Whether a JSON record is a valid value of the type (the serde decoding's error else).
    pub decodes: fn(serde_json::Value) -> Result<(), String>,
}

fn decodes<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<(), String> {
    serde_json::from_value::<T>(value)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl SchemaOf {
    /// The schema functions of `T`.
    pub const fn of<T: ToSchema + serde::de::DeserializeOwned>() -> SchemaOf {
        SchemaOf {
            name: <T as ToSchema>::name,
            schema: <T as PartialSchema>::schema,
            schemas: <T as ToSchema>::schemas,
            decodes: decodes::<T>,
        }
    }
}

/// One entry of the catalogue.
#[derive(Debug)]
pub struct EntitySpec {
    /// Name in snake case, as stored and shown (`purchase_order`).
    pub name: &'static str,
    /// Plural in snake case (`purchase_orders`): operation ids; the URL path is the same
    /// with dashes (`/v1/purchase-orders`).
    pub plural: &'static str,
    /// The entity for people, in a sentence (`purchase order`).
    pub label: &'static str,
    /// Heading of its API section (`Purchase orders`).
    pub title: &'static str,
    /// What the API section serves.
    pub description: &'static str,
    /// Prefix of its ids (`po`).
    pub id_prefix: &'static str,
    /// Page size when the client gives none.
    pub default_page_size: u32,
    /// Largest page a client may ask for.
    pub max_page_size: u32,
    /// Its part in a sync.
    pub role: EntityRole,
    /// Where its records are kept.
    pub storage: Storage,
    /// The unified body's fields, in output order (the envelope fields come first when
    /// rendered). A test checks them against the schema.
    pub fields: &'static [&'static str],
    /// Nested lists with ids of their own.
    pub lists: &'static [ListSpec],
    /// The unified type's schema.
    pub schema: SchemaOf,
}

mod specs {
    use super::*;

    pub static VENDOR: EntitySpec = EntitySpec {
        name: "vendor",
        plural: "vendors",
        label: "vendor",
        title: "Vendors",
        description: "Unified vendors.",
        id_prefix: "vnd",
        default_page_size: 50,
        max_page_size: 500,
        role: EntityRole::Reference,
        storage: Storage::Records,
        fields: &[
            "code",
            "name",
            "status",
            "email",
            "phone",
            "tax_id",
            "currency",
            "payment_terms",
            "address",
            "custom_fields",
        ],
        lists: &[],
        schema: SchemaOf::of::<Vendor>(),
    };

    pub static ITEM: EntitySpec = EntitySpec {
        name: "item",
        plural: "items",
        label: "item",
        title: "Items",
        description: "Unified items.",
        id_prefix: "itm",
        default_page_size: 50,
        max_page_size: 500,
        role: EntityRole::Reference,
        storage: Storage::Records,
        fields: &[
            "code",
            "name",
            "description",
            "item_type",
            "status",
            "unit_of_measure",
            "unit_cost",
            "quantity_on_hand",
            "quantity_available",
            "custom_fields",
        ],
        lists: &[],
        schema: SchemaOf::of::<Item>(),
    };

    pub static LOCATION: EntitySpec = EntitySpec {
        name: "location",
        plural: "locations",
        label: "location",
        title: "Locations",
        description: "Unified locations.",
        id_prefix: "loc",
        default_page_size: 50,
        max_page_size: 500,
        role: EntityRole::Reference,
        storage: Storage::Records,
        fields: &[
            "code",
            "name",
            "location_type",
            "status",
            "address",
            "custom_fields",
        ],
        lists: &[],
        schema: SchemaOf::of::<Location>(),
    };

    pub static PURCHASE_ORDER: EntitySpec = EntitySpec {
        name: "purchase_order",
        plural: "purchase_orders",
        label: "purchase order",
        title: "Purchase orders",
        description: "Unified purchase orders with their lines.",
        id_prefix: "po",
        default_page_size: 50,
        // Orders carry their lines, so their pages are smaller.
        max_page_size: 200,
        role: EntityRole::Transactional,
        storage: Storage::Records,
        fields: &[
            "number",
            "status",
            "remote_status",
            "vendor_id",
            "location_id",
            "currency",
            "order_date",
            "expected_delivery_date",
            "subtotal",
            "tax_amount",
            "total_amount",
            "memo",
            "custom_fields",
            "line_items",
        ],
        lists: &[ListSpec {
            field: "line_items",
            id_prefix: "pol",
            id_scope: "purchase_order_line",
            fields: &[
                "id",
                "remote_id",
                "line_number",
                "item_id",
                "description",
                "quantity",
                "quantity_received",
                "unit_of_measure",
                "unit_price",
                "total_amount",
                "expected_delivery_date",
                "custom_fields",
            ],
        }],
        schema: SchemaOf::of::<PurchaseOrder>(),
    };
    pub static INVENTORY_LEVEL: EntitySpec = EntitySpec {
        name: "inventory_level",
        plural: "inventory_levels",
        label: "inventory level",
        title: "Inventory levels",
        description: "Unified stock levels per facility, item and lot (warehouse model).",
        id_prefix: "inv",
        default_page_size: 100,
        max_page_size: 1000,
        // A snapshot: read whole whatever its age, vanished levels swept as deleted.
        role: EntityRole::Reference,
        storage: Storage::Records,
        fields: &[
            "location_id",
            "location_code",
            "item_id",
            "item_code",
            "lot_number",
            "expiration_date",
            "bin_location",
            "owner_code",
            "unit_of_measure",
            "quantity_on_hand",
            "quantity_allocated",
            "quantity_on_hold",
            "quantity_available",
            "catch_weight",
            "unit_cost",
            "as_of",
            "custom_fields",
        ],
        lists: &[],
        schema: SchemaOf::of::<InventoryLevel>(),
    };

    pub static RECEIPT: EntitySpec = EntitySpec {
        name: "receipt",
        plural: "receipts",
        label: "receipt",
        title: "Receipts",
        description: "Unified receipts: quantities received per order line, lot and license plate (warehouse model).",
        id_prefix: "rcp",
        default_page_size: 100,
        max_page_size: 1000,
        role: EntityRole::Transactional,
        storage: Storage::Records,
        fields: &[
            "receipt_number",
            "receipt_type",
            "remote_type",
            "location_id",
            "location_code",
            "purchase_order_number",
            "purchase_order_release",
            "purchase_order_line_number",
            "vendor_code",
            "item_id",
            "item_code",
            "vendor_item_code",
            "quantity",
            "quantity_on_hold",
            "unit_of_measure",
            "lot_number",
            "expiration_date",
            "license_plate",
            "bin_location",
            "received_at",
            "received_by",
            "closes_order",
            "custom_fields",
        ],
        lists: &[],
        schema: SchemaOf::of::<Receipt>(),
    };

    pub static OUTBOUND_ORDER: EntitySpec = EntitySpec {
        name: "outbound_order",
        plural: "outbound_orders",
        label: "outbound order",
        title: "Outbound orders",
        description: "Unified customer (outbound) orders with their lines and warehouse status (warehouse model).",
        id_prefix: "obo",
        default_page_size: 50,
        // Orders carry their lines, so their pages are smaller.
        max_page_size: 200,
        role: EntityRole::Transactional,
        storage: Storage::Records,
        fields: &[
            "number",
            "status",
            "remote_status",
            "order_type",
            "location_id",
            "location_code",
            "customer_code",
            "customer_po_number",
            "sales_order_number",
            "ship_to",
            "carrier",
            "service_level",
            "requested_ship_date",
            "must_arrive_by",
            "scheduled_ship_at",
            "priority",
            "custom_fields",
            "line_items",
        ],
        lists: &[ListSpec {
            field: "line_items",
            id_prefix: "obol",
            id_scope: "outbound_order_line",
            fields: &[
                "id",
                "remote_id",
                "line_number",
                "item_id",
                "item_code",
                "quantity_ordered",
                "quantity_shipped",
                "unit_of_measure",
                "requested_lot",
                "unit_price",
                "custom_fields",
            ],
        }],
        schema: SchemaOf::of::<OutboundOrder>(),
    };

    pub static SHIPMENT: EntitySpec = EntitySpec {
        name: "shipment",
        plural: "shipments",
        label: "shipment",
        title: "Shipments",
        description: "Unified shipments with picks, containers, serials and packages (warehouse model).",
        id_prefix: "shp",
        default_page_size: 50,
        max_page_size: 200,
        role: EntityRole::Transactional,
        storage: Storage::Records,
        fields: &[
            "number",
            "status",
            "outbound_order_id",
            "outbound_order_number",
            "location_id",
            "location_code",
            "customer_code",
            "customer_po_number",
            "sales_order_number",
            "carrier",
            "service_level",
            "pro_number",
            "freight_cost",
            "shipped_at",
            "shipped_by",
            "custom_fields",
            "picks",
            "containers",
            "serials",
            "packages",
        ],
        lists: &[
            ListSpec {
                field: "picks",
                id_prefix: "shpk",
                id_scope: "shipment_pick",
                fields: &[
                    "id",
                    "remote_id",
                    "line_number",
                    "item_code",
                    "lot_number",
                    "quantity_ordered",
                    "quantity_shipped",
                    "unit_of_measure",
                    "picked_by",
                    "extended_price",
                    "custom_fields",
                ],
            },
            ListSpec {
                field: "containers",
                id_prefix: "shpc",
                id_scope: "shipment_container",
                fields: &[
                    "id",
                    "remote_id",
                    "container_id",
                    "container_type",
                    "weight",
                    "custom_fields",
                ],
            },
            ListSpec {
                field: "serials",
                id_prefix: "shps",
                id_scope: "shipment_serial",
                fields: &[
                    "id",
                    "remote_id",
                    "line_number",
                    "item_code",
                    "lot_number",
                    "serial_number",
                    "quantity",
                    "custom_fields",
                ],
            },
            ListSpec {
                field: "packages",
                id_prefix: "shpp",
                id_scope: "shipment_package",
                fields: &[
                    "id",
                    "remote_id",
                    "package_id",
                    "tracking_number",
                    "carrier",
                    "service_level",
                    "weight",
                    "freight_cost",
                    "shipped_at",
                    "custom_fields",
                ],
            },
        ],
        schema: SchemaOf::of::<Shipment>(),
    };

    pub static INVENTORY_TRANSACTION: EntitySpec = EntitySpec {
        name: "inventory_transaction",
        plural: "inventory_transactions",
        label: "inventory transaction",
        title: "Inventory transactions",
        description: "Unified stock movements and adjustments (warehouse model).",
        id_prefix: "itx",
        default_page_size: 100,
        max_page_size: 1000,
        // Events: never changed once recorded.
        role: EntityRole::TimeSeries,
        storage: Storage::Records,
        fields: &[
            "transaction_type",
            "remote_type",
            "reason_code",
            "location_id",
            "location_code",
            "warehouse_zone",
            "item_id",
            "item_code",
            "lot_number",
            "expiration_date",
            "license_plate",
            "quantity",
            "unit_of_measure",
            "from_bin",
            "to_bin",
            "order_number",
            "order_line_number",
            "reference",
            "owner_code",
            "unit_cost",
            "occurred_at",
            "performed_by",
            "memo",
            "custom_fields",
        ],
        lists: &[],
        schema: SchemaOf::of::<InventoryTransaction>(),
    };

    pub static DOCK_APPOINTMENT: EntitySpec = EntitySpec {
        name: "dock_appointment",
        plural: "dock_appointments",
        label: "dock appointment",
        title: "Dock appointments",
        description: "Unified dock door appointments (warehouse model).",
        id_prefix: "dap",
        default_page_size: 100,
        max_page_size: 500,
        role: EntityRole::Transactional,
        storage: Storage::Records,
        fields: &[
            "location_id",
            "location_code",
            "dock",
            "direction",
            "appointment_type",
            "remote_type",
            "reference_number",
            "status",
            "remote_status",
            "scheduled_start",
            "duration_minutes",
            "carrier",
            "partner_code",
            "partner_name",
            "percent_complete",
            "required_date",
            "custom_fields",
        ],
        lists: &[],
        schema: SchemaOf::of::<DockAppointment>(),
    };

    pub static VEHICLE: EntitySpec = EntitySpec {
        name: "vehicle",
        plural: "vehicles",
        label: "vehicle",
        title: "Vehicles",
        description: "Unified vehicles and tracked assets (fleet model).",
        id_prefix: "vhc",
        default_page_size: 100,
        max_page_size: 500,
        role: EntityRole::Reference,
        storage: Storage::Records,
        fields: &[
            "name",
            "vin",
            "license_plate",
            "make",
            "model",
            "year",
            "device_serial",
            "status",
            "driver_id",
            "group_name",
            "custom_fields",
        ],
        lists: &[],
        schema: SchemaOf::of::<Vehicle>(),
    };

    pub static DRIVER: EntitySpec = EntitySpec {
        name: "driver",
        plural: "drivers",
        label: "driver",
        title: "Drivers",
        description: "Unified drivers (fleet model).",
        id_prefix: "drv",
        default_page_size: 100,
        max_page_size: 500,
        role: EntityRole::Reference,
        storage: Storage::Records,
        fields: &[
            "name",
            "first_name",
            "last_name",
            "username",
            "phone",
            "license_number",
            "license_state",
            "status",
            "vehicle_id",
            "group_name",
            "custom_fields",
        ],
        lists: &[],
        schema: SchemaOf::of::<Driver>(),
    };

    pub static VEHICLE_LOCATION: EntitySpec = EntitySpec {
        name: "vehicle_location",
        plural: "vehicle_locations",
        label: "vehicle location",
        title: "Vehicle locations",
        description: "GPS points of the fleet's vehicles, in their own time-ordered storage (fleet model).",
        id_prefix: "vlc",
        default_page_size: 500,
        max_page_size: 5000,
        role: EntityRole::TimeSeries,
        storage: Storage::Points {
            series: "vehicle_id",
            at: "recorded_at",
        },
        fields: &[
            "vehicle_id",
            "vehicle_remote_id",
            "driver_id",
            "recorded_at",
            "latitude",
            "longitude",
            "speed_kph",
            "heading_degrees",
            "odometer_meters",
            "address",
        ],
        lists: &[],
        schema: SchemaOf::of::<VehicleLocation>(),
    };

    pub static DRIVER_BEHAVIOR_EVENT: EntitySpec = EntitySpec {
        name: "driver_behavior_event",
        plural: "driver_behavior_events",
        label: "driver behavior event",
        title: "Driver behavior events",
        description: "Unified driver safety events: harsh braking, speeding, crashes (fleet model).",
        id_prefix: "dbe",
        default_page_size: 100,
        max_page_size: 1000,
        role: EntityRole::TimeSeries,
        storage: Storage::Records,
        fields: &[
            "vehicle_id",
            "driver_id",
            "occurred_at",
            "event_type",
            "remote_type",
            "latitude",
            "longitude",
            "speed_kph",
            "max_g_force",
            "review_status",
            "video_url",
            "custom_fields",
        ],
        lists: &[],
        schema: SchemaOf::of::<DriverBehaviorEvent>(),
    };

    pub static FUEL_EVENT: EntitySpec = EntitySpec {
        name: "fuel_event",
        plural: "fuel_events",
        label: "fuel event",
        title: "Fuel events",
        description: "Unified fuel level readings and fuel purchases (fleet model).",
        id_prefix: "fue",
        default_page_size: 100,
        max_page_size: 1000,
        role: EntityRole::TimeSeries,
        storage: Storage::Records,
        fields: &[
            "vehicle_id",
            "driver_id",
            "event_type",
            "occurred_at",
            "fuel_level_percent",
            "volume_liters",
            "cost",
            "currency",
            "merchant",
            "odometer_meters",
            "custom_fields",
        ],
        lists: &[],
        schema: SchemaOf::of::<FuelEvent>(),
    };

    pub static DISPATCH_ROUTE: EntitySpec = EntitySpec {
        name: "dispatch_route",
        plural: "dispatch_routes",
        label: "dispatch route",
        title: "Dispatch routes",
        description: "Unified dispatch routes (jobs) with their stops (fleet model).",
        id_prefix: "dsr",
        default_page_size: 100,
        max_page_size: 500,
        role: EntityRole::Transactional,
        storage: Storage::Records,
        fields: &[
            "name",
            "status",
            "remote_status",
            "vehicle_id",
            "driver_id",
            "scheduled_start_at",
            "scheduled_end_at",
            "actual_start_at",
            "actual_end_at",
            "notes",
            "stops",
            "custom_fields",
        ],
        lists: &[ListSpec {
            field: "stops",
            id_prefix: "dst",
            id_scope: "dispatch_stop",
            fields: &[
                "id",
                "remote_id",
                "sequence",
                "name",
                "address",
                "latitude",
                "longitude",
                "scheduled_arrival_at",
                "scheduled_departure_at",
                "actual_arrival_at",
                "actual_departure_at",
                "status",
                "remote_status",
                "notes",
                "custom_fields",
            ],
        }],
        schema: SchemaOf::of::<DispatchRoute>(),
    };
}

impl Entity {
    /// Suppliers.
    pub const VENDOR: Entity = Entity(&specs::VENDOR);
    /// Items (products, materials, services) that can be purchased or stocked.
    pub const ITEM: Entity = Entity(&specs::ITEM);
    /// Warehouses, plants, stores and other places goods are received.
    pub const LOCATION: Entity = Entity(&specs::LOCATION);
    /// Purchase orders with their lines.
    pub const PURCHASE_ORDER: Entity = Entity(&specs::PURCHASE_ORDER);
    /// Stock per facility, item and lot (warehouse).
    pub const INVENTORY_LEVEL: Entity = Entity(&specs::INVENTORY_LEVEL);
    /// Quantities received per order line, lot and license plate (warehouse).
    pub const RECEIPT: Entity = Entity(&specs::RECEIPT);
    /// Customer orders with their lines and warehouse status (warehouse).
    pub const OUTBOUND_ORDER: Entity = Entity(&specs::OUTBOUND_ORDER);
    /// Goods shipped for outbound orders (warehouse).
    pub const SHIPMENT: Entity = Entity(&specs::SHIPMENT);
    /// Stock movements and adjustments (warehouse).
    pub const INVENTORY_TRANSACTION: Entity = Entity(&specs::INVENTORY_TRANSACTION);
    /// Dock door appointments (warehouse).
    pub const DOCK_APPOINTMENT: Entity = Entity(&specs::DOCK_APPOINTMENT);
    /// Vehicles.
    pub const VEHICLE: Entity = Entity(&specs::VEHICLE);
    /// Drivers.
    pub const DRIVER: Entity = Entity(&specs::DRIVER);
    /// Vehicle GPS points (stored as points, not records).
    pub const VEHICLE_LOCATION: Entity = Entity(&specs::VEHICLE_LOCATION);
    /// Driver behaviour events.
    pub const DRIVER_BEHAVIOR_EVENT: Entity = Entity(&specs::DRIVER_BEHAVIOR_EVENT);
    /// Fuel readings and purchases.
    pub const FUEL_EVENT: Entity = Entity(&specs::FUEL_EVENT);
    /// Dispatch routes.
    pub const DISPATCH_ROUTE: Entity = Entity(&specs::DISPATCH_ROUTE);

    /// The catalogue: every entity, in the order a sync loads them (referenced records
    /// first).
    pub const ALL: &'static [Entity] = &[
        Entity::VENDOR,
        Entity::ITEM,
        Entity::LOCATION,
        Entity::PURCHASE_ORDER,
        Entity::INVENTORY_LEVEL,
        Entity::RECEIPT,
        Entity::OUTBOUND_ORDER,
        Entity::SHIPMENT,
        Entity::INVENTORY_TRANSACTION,
        Entity::DOCK_APPOINTMENT,
        Entity::DRIVER,
        Entity::VEHICLE,
        Entity::VEHICLE_LOCATION,
        Entity::DRIVER_BEHAVIOR_EVENT,
        Entity::FUEL_EVENT,
        Entity::DISPATCH_ROUTE,
    ];

    /// The entity's catalogue entry.
    pub fn spec(self) -> &'static EntitySpec {
        self.0
    }

    /// Name in snake case, as stored and shown in the API.
    pub fn as_str(self) -> &'static str {
        self.0.name
    }

    /// Parses the snake-case name.
    pub fn parse(name: &str) -> Option<Self> {
        Entity::ALL.iter().copied().find(|e| e.as_str() == name)
    }

    /// Prefix of this entity's ids (`po_…`).
    pub fn id_prefix(self) -> &'static str {
        self.0.id_prefix
    }

    /// Finds the entity from an id's prefix.
    pub fn from_id(id: &str) -> Option<Self> {
        let prefix = id.split_once('_')?.0;
        Entity::ALL
            .iter()
            .copied()
            .find(|e| e.id_prefix() == prefix)
    }

    /// Page size used when the client gives none.
    pub fn default_page_size(self) -> u32 {
        self.0.default_page_size
    }

    /// Largest page a client may ask for.
    pub fn max_page_size(self) -> u32 {
        self.0.max_page_size
    }

    /// Its part in a sync.
    pub fn role(self) -> EntityRole {
        self.0.role
    }

    /// The URL path of its collection (`/v1/purchase-orders`).
    pub fn collection_path(self) -> String {
        format!("/v1/{}", self.0.plural.replace('_', "-"))
    }

    /// The nested list stored under `field`, if the entity has one.
    pub fn list(self, field: &str) -> Option<&'static ListSpec> {
        self.0.lists.iter().find(|l| l.field == field)
    }
}

impl PartialEq for Entity {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0) || self.0.name == other.0.name
    }
}

impl Eq for Entity {}

impl std::hash::Hash for Entity {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

impl PartialOrd for Entity {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entity {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.name.cmp(other.0.name)
    }
}

impl std::fmt::Debug for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name)
    }
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name)
    }
}

impl Serialize for Entity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.name)
    }
}

impl<'de> Deserialize<'de> for Entity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = Cow::<'de, str>::deserialize(deserializer)?;
        Entity::parse(&name).ok_or_else(|| {
            let known: Vec<&str> = Entity::ALL.iter().map(|e| e.as_str()).collect();
            serde::de::Error::custom(format!(
                "unknown entity `{name}`, expected one of {}",
                known.join(", ")
            ))
        })
    }
}

impl PartialSchema for Entity {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("An entity of the unified model."))
            .enum_values(Some(Entity::ALL.iter().map(|e| e.as_str())))
            .into()
    }
}

impl ToSchema for Entity {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_prefixes_and_paths_are_unique() {
        let mut seen = HashSet::new();
        for e in Entity::ALL {
            assert!(seen.insert(e.as_str()), "{e}");
            assert!(seen.insert(e.id_prefix()), "{e} prefix");
            assert!(seen.insert(e.spec().plural), "{e} plural");
            for list in e.spec().lists {
                assert!(seen.insert(list.id_prefix), "{e} list prefix");
            }
            assert!(e.default_page_size() <= e.max_page_size());
            assert_eq!(Entity::parse(e.as_str()), Some(*e));
        }
        assert_eq!(
            Entity::PURCHASE_ORDER.collection_path(),
            "/v1/purchase-orders"
        );
        assert_eq!(Entity::from_id("po_abc"), Some(Entity::PURCHASE_ORDER));
        assert_eq!(Entity::from_id("zz_abc"), None);
    }

    #[test]
    fn entities_serialize_as_their_names() {
        let json = serde_json::to_string(&Entity::PURCHASE_ORDER).unwrap();
        assert_eq!(json, "\"purchase_order\"");
        let back: Entity = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Entity::PURCHASE_ORDER);
        let err = serde_json::from_str::<Entity>("\"truck\"").unwrap_err();
        assert!(err.to_string().contains("unknown entity `truck`"), "{err}");
    }
}

#[cfg(test)]
mod schema_tests {
    use super::*;
    use serde_json::Value;

    /// Property names of a schema, following `allOf` and `$ref` through `schemas`.
    fn properties(schema: &Value, schemas: &serde_json::Map<String, Value>) -> Vec<String> {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let name = r.trim_start_matches("#/components/schemas/");
            return properties(&schemas[name], schemas);
        }
        let mut out = Vec::new();
        for part in schema["allOf"].as_array().into_iter().flatten() {
            out.extend(properties(part, schemas));
        }
        if let Some(p) = schema["properties"].as_object() {
            out.extend(p.keys().cloned());
        }
        out
    }

    /// The catalogue's field lists name exactly the unified types' fields, in order.
    #[test]
    fn field_lists_match_the_schemas() {
        let envelope = [
            "id",
            "remote_id",
            "created_at",
            "modified_at",
            "remote_created_at",
            "remote_updated_at",
            "remote_was_deleted",
            "custom_fields",
            "remote_data",
        ];
        for e in Entity::ALL {
            let spec = e.spec();
            let mut refs = Vec::new();
            (spec.schema.schemas)(&mut refs);
            let schemas: serde_json::Map<String, Value> = refs
                .into_iter()
                .map(|(n, s)| (n, serde_json::to_value(s).unwrap()))
                .collect();
            let own = serde_json::to_value((spec.schema.schema)()).unwrap();
            let props = properties(&own, &schemas);
            let body: Vec<&str> = props
                .iter()
                .map(String::as_str)
                .filter(|p| !envelope.contains(p))
                .collect();
            let expected: Vec<&str> = spec
                .fields
                .iter()
                .copied()
                .filter(|f| *f != "custom_fields")
                .collect();
            assert_eq!(body, expected, "{e}");
            // Points carry no custom fields; every record does.
            assert_eq!(
                spec.fields.contains(&"custom_fields"),
                spec.storage == Storage::Records,
                "{e}"
            );
            for list in spec.lists {
                let items = &own["allOf"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find_map(|p| p["properties"].get(list.field))
                    .unwrap_or_else(|| panic!("{e}.{}", list.field))["items"];
                let line = properties(items, &schemas);
                assert_eq!(line, list.fields, "{e}.{}", list.field);
            }
        }
    }
}
