//! The unified fleet model v1: vehicles, drivers, vehicle locations (GPS points), driver
//! behaviour events, fuel events and dispatch routes, identical for every telematics system
//! (Samsara, NexTraq; Geotab's `Device`/`LogRecord`/`ExceptionEvent` and Motive's vehicles,
//! locations and performance events fit the same fields, `docs/fleet.md`).
//!
//! Measurements are JSON numbers in metric units (km/h, metres, litres, degrees), converted
//! by each system's mapping; instants are RFC 3339 UTC. A source's own label for an event is
//! kept beside the unified one, and a label no mapping knows reads as `other`, never an error.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::entities::RecordCommon;
use crate::timestamp::Timestamp;

/// Whether a vehicle or driver is in service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FleetStatus {
    /// In service.
    Active,
    /// Retired, deactivated or archived.
    Inactive,
    /// The source does not say.
    Unknown,
}

/// A vehicle (or other tracked asset) of the fleet.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Vehicle {
    /// Fields common to every record.
    #[serde(flatten)]
    pub common: RecordCommon,
    /// The name people use (`Truck A7`).
    pub name: Option<String>,
    /// Vehicle identification number.
    pub vin: Option<String>,
    /// Licence plate.
    pub license_plate: Option<String>,
    /// Manufacturer.
    pub make: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Model year.
    pub year: Option<i64>,
    /// Serial of the telematics device installed in it.
    pub device_serial: Option<String>,
    /// In service or not.
    pub status: FleetStatus,
    /// The driver assigned to it (`drv_…`), where the source assigns one.
    pub driver_id: Option<String>,
    /// The fleet, group or tag it belongs to.
    pub group_name: Option<String>,
}

/// A driver.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Driver {
    /// Fields common to every record.
    #[serde(flatten)]
    pub common: RecordCommon,
    /// Full name.
    pub name: Option<String>,
    /// Given name, where the source keeps it apart.
    pub first_name: Option<String>,
    /// Family name, where the source keeps it apart.
    pub last_name: Option<String>,
    /// Login name in the source.
    pub username: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Driving licence number.
    pub license_number: Option<String>,
    /// State or country that issued the licence.
    pub license_state: Option<String>,
    /// Active or not.
    pub status: FleetStatus,
    /// The vehicle assigned to the driver (`vhc_…`), where the source assigns one.
    pub vehicle_id: Option<String>,
    /// The fleet, group or tag the driver belongs to.
    pub group_name: Option<String>,
}

/// One GPS point of a vehicle. Points are append-only and high-volume, so they are kept in
/// their own time-ordered storage (not as records): one point per vehicle and instant,
/// de-duplicated, purged after the retention period. They carry no `custom_fields` or
/// `remote_data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VehicleLocation {
    /// The point's id (`vlc_…`), derived from its vehicle and time.
    pub id: String,
    /// The vehicle (`vhc_…`).
    pub vehicle_id: String,
    /// The vehicle's id in the source system.
    pub vehicle_remote_id: String,
    /// The driver at the wheel (`drv_…`), where the source says.
    pub driver_id: Option<String>,
    /// When the position was recorded.
    pub recorded_at: Timestamp,
    /// Latitude, in degrees (WGS 84).
    pub latitude: f64,
    /// Longitude, in degrees (WGS 84).
    pub longitude: f64,
    /// Speed over ground, in km/h.
    pub speed_kph: Option<f64>,
    /// Heading, in degrees clockwise from north (0–360).
    pub heading_degrees: Option<f64>,
    /// Odometer, in metres, where the source reports it with the point.
    pub odometer_meters: Option<f64>,
    /// The address the source geocoded the point to.
    pub address: Option<String>,
    /// When Ironbridge stored the point.
    pub created_at: Timestamp,
}

/// The unified kind of a driver behaviour event. The source's own label is in
/// `remote_type`; a label no mapping knows is `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BehaviorEventType {
    /// Harsh braking.
    HarshBraking,
    /// Harsh acceleration.
    HarshAcceleration,
    /// Harsh cornering.
    HarshTurn,
    /// Over the speed limit.
    Speeding,
    /// A collision or near collision.
    Crash,
    /// A stop sign not fully stopped at.
    RollingStop,
    /// Too close to the vehicle ahead.
    FollowingDistance,
    /// Phone use, eating, or looking away.
    DistractedDriving,
    /// No seat belt.
    NoSeatBelt,
    /// Signs of drowsiness.
    Drowsiness,
    /// Anything else (the label is in `remote_type`).
    Other,
}

/// A driver behaviour (safety) event: harsh braking, speeding, a crash.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DriverBehaviorEvent {
    /// Fields common to every record.
    #[serde(flatten)]
    pub common: RecordCommon,
    /// The vehicle (`vhc_…`).
    pub vehicle_id: Option<String>,
    /// The driver (`drv_…`), where known.
    pub driver_id: Option<String>,
    /// When it happened.
    pub occurred_at: Option<Timestamp>,
    /// The unified kind.
    pub event_type: BehaviorEventType,
    /// The source's own label (`Braking`, `hard_brake`), kept whatever it is.
    pub remote_type: Option<String>,
    /// Latitude where it happened.
    pub latitude: Option<f64>,
    /// Longitude where it happened.
    pub longitude: Option<f64>,
    /// Speed at the time, in km/h.
    pub speed_kph: Option<f64>,
    /// Peak acceleration, in g.
    pub max_g_force: Option<f64>,
    /// Review or coaching state in the source (`needsReview`, `coached`).
    pub review_status: Option<String>,
    /// Link to the source's video of the event.
    pub video_url: Option<String>,
}

/// What a fuel event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FuelEventType {
    /// A tank level reading.
    Level,
    /// A purchase (fuel card transaction).
    Purchase,
    /// Anything else.
    Other,
}

/// A fuel level reading or fuel purchase.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FuelEvent {
    /// Fields common to every record.
    #[serde(flatten)]
    pub common: RecordCommon,
    /// The vehicle (`vhc_…`).
    pub vehicle_id: Option<String>,
    /// The driver (`drv_…`), where known.
    pub driver_id: Option<String>,
    /// Level or purchase.
    pub event_type: FuelEventType,
    /// When it was read or bought.
    pub occurred_at: Option<Timestamp>,
    /// Tank level, in percent.
    pub fuel_level_percent: Option<f64>,
    /// Volume bought, in litres.
    pub volume_liters: Option<f64>,
    /// Amount paid, as a decimal string.
    #[schema(value_type = Option<String>, example = "182.40")]
    pub cost: Option<Decimal>,
    /// ISO 4217 currency of `cost`.
    pub currency: Option<String>,
    /// Where it was bought.
    pub merchant: Option<String>,
    /// Odometer at the time, in metres.
    pub odometer_meters: Option<f64>,
}

/// Where a dispatch route stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DispatchRouteStatus {
    /// Planned, not started.
    Scheduled,
    /// Under way.
    InProgress,
    /// Every stop done.
    Completed,
    /// Called off.
    Cancelled,
    /// The source's status is not one of these.
    Unknown,
}

/// Where a stop of a route stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DispatchStopStatus {
    /// Not reached yet.
    Scheduled,
    /// The vehicle is on its way to it.
    EnRoute,
    /// The vehicle is there.
    Arrived,
    /// The vehicle has left it.
    Departed,
    /// Passed over.
    Skipped,
    /// The source's status is not one of these.
    Unknown,
}

/// A dispatch route (job): stops for a vehicle and driver to visit, in order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DispatchRoute {
    /// Fields common to every record.
    #[serde(flatten)]
    pub common: RecordCommon,
    /// The route's name.
    pub name: Option<String>,
    /// Unified status.
    pub status: DispatchRouteStatus,
    /// The status exactly as the source names it.
    pub remote_status: Option<String>,
    /// The vehicle assigned (`vhc_…`).
    pub vehicle_id: Option<String>,
    /// The driver assigned (`drv_…`).
    pub driver_id: Option<String>,
    /// When it is planned to start.
    pub scheduled_start_at: Option<Timestamp>,
    /// When it is planned to end.
    pub scheduled_end_at: Option<Timestamp>,
    /// When it really started.
    pub actual_start_at: Option<Timestamp>,
    /// When it really ended.
    pub actual_end_at: Option<Timestamp>,
    /// Free-text note.
    pub notes: Option<String>,
    /// The stops, in visiting order.
    pub stops: Vec<DispatchStop>,
}

/// One stop of a dispatch route.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DispatchStop {
    /// Ironbridge's id for the stop (`dst_…`), stable across resyncs.
    pub id: String,
    /// The stop's key in the source system.
    pub remote_id: String,
    /// Its place in the route, from 1.
    pub sequence: Option<i64>,
    /// The stop's name (a customer, a site).
    pub name: Option<String>,
    /// Its address, as one line.
    pub address: Option<String>,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
    /// When the vehicle is due there.
    pub scheduled_arrival_at: Option<Timestamp>,
    /// When the vehicle is due to leave.
    pub scheduled_departure_at: Option<Timestamp>,
    /// When it arrived.
    pub actual_arrival_at: Option<Timestamp>,
    /// When it left.
    pub actual_departure_at: Option<Timestamp>,
    /// Where the stop stands.
    pub status: DispatchStopStatus,
    /// The status exactly as the source names it.
    pub remote_status: Option<String>,
    /// Instructions for the driver.
    pub notes: Option<String>,
    /// Source fields outside the standard model.
    #[schema(value_type = Object)]
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
}

/// Body of `POST /v1/dispatch-routes`. Which fields a connection's system takes, requires or
/// sets itself is in `GET /v1/meta/dispatch-routes`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispatchRouteIn {
    /// The route's name.
    #[serde(default)]
    #[schema(example = "Atlanta deliveries, Monday")]
    pub name: Option<String>,
    /// The vehicle to assign (`vhc_…`).
    #[serde(default)]
    pub vehicle_id: Option<String>,
    /// The driver to assign (`drv_…`).
    #[serde(default)]
    pub driver_id: Option<String>,
    /// When the route is planned to start (RFC 3339): the first stop's departure unless it
    /// sets its own times.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_start_at: Option<String>,
    /// When the route is planned to end (RFC 3339): the last stop's arrival unless it sets
    /// its own times.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_end_at: Option<String>,
    /// Free-text note for the driver.
    #[serde(default)]
    pub notes: Option<String>,
    /// The stops, in visiting order.
    #[serde(default)]
    pub stops: Option<Vec<DispatchStopIn>>,
}

/// One stop of a dispatch route to write.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispatchStopIn {
    /// In an update, the stop's key in the source (`remote_id` of a read): that stop is kept,
    /// with its progress, and changed by the other fields given. Left out: a new stop.
    #[serde(default)]
    pub remote_id: Option<String>,
    /// The stop's name (a customer, a site).
    #[serde(default)]
    pub name: Option<String>,
    /// Its address, as one line.
    #[serde(default)]
    pub address: Option<String>,
    /// Latitude, in degrees (WGS 84), -90 to 90.
    #[serde(default)]
    #[schema(example = 33.749, minimum = -90, maximum = 90)]
    pub latitude: Option<f64>,
    /// Longitude, in degrees (WGS 84), -180 to 180.
    #[serde(default)]
    #[schema(example = -84.388, minimum = -180, maximum = 180)]
    pub longitude: Option<f64>,
    /// When the vehicle is due there (RFC 3339).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_arrival_at: Option<String>,
    /// When the vehicle is due to leave (RFC 3339).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_departure_at: Option<String>,
    /// Instructions for the driver.
    #[serde(default)]
    pub notes: Option<String>,
}

/// Body of `PATCH /v1/dispatch-routes/{id}`: a JSON merge patch. Fields left out stay
/// unchanged; `null` clears the fields the system lets an update clear (`vehicle_id`,
/// `driver_id`, `notes` on Samsara); `stops` replaces the list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispatchRoutePatch {
    /// A new name.
    #[serde(default)]
    pub name: Option<String>,
    /// Another vehicle (`vhc_…`); `null` unassigns it.
    #[serde(default)]
    pub vehicle_id: Option<String>,
    /// Another driver (`drv_…`); `null` unassigns them.
    #[serde(default)]
    pub driver_id: Option<String>,
    /// A new planned start (RFC 3339).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_start_at: Option<String>,
    /// A new planned end (RFC 3339).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_end_at: Option<String>,
    /// A new note; `null` removes it.
    #[serde(default)]
    pub notes: Option<String>,
    /// The stops, in visiting order: the whole list. A stop naming the `remote_id` of one of
    /// the route's stops keeps it; one without is added; stops left out are removed.
    #[serde(default)]
    pub stops: Option<Vec<DispatchStopIn>>,
}

/// A page of vehicle locations.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VehicleLocationList {
    /// The points of this page, oldest first (the points of one instant in a fixed order of
    /// their vehicles; by vehicle id for the latest positions).
    pub data: Vec<VehicleLocation>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}
