//! The read service of points (entities stored as time series, such as vehicle locations):
//! cursor pages filtered by series and time, and the newest point of each series, rendered as
//! the unified type with an id derived from the series and the instant.

use ironbridge_model::fleet::VehicleLocation;
use ironbridge_model::{Entity, Timestamp};
use serde_json::Value;

use crate::crypto::Keys;
use crate::pagination::{PageSize, Pager};
use crate::service::ServiceError;
use crate::store::{ConnId, PointQuery, Store, StoredPoint};

/// Which vehicle locations to list.
#[derive(Debug, Clone, Default)]
pub struct LocationQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Points per page.
    pub page_size: Option<u32>,
    /// Only this vehicle's (`vhc_…`).
    pub vehicle_id: Option<String>,
    /// Recorded at or after this instant.
    pub recorded_after: Option<Timestamp>,
    /// Recorded before this instant.
    pub recorded_before: Option<Timestamp>,
}

/// Reads a connection's points.
pub struct PointReader<'a> {
    /// The store.
    pub store: &'a dyn Store,
    /// The cursor keys.
    pub keys: &'a Keys,
}

impl PointReader<'_> {
    /// A page of a connection's vehicle locations, oldest first.
    pub async fn locations(
        &self,
        conn: &ConnId,
        q: &LocationQuery,
    ) -> Result<(Vec<VehicleLocation>, Option<String>), ServiceError> {
        let entity = Entity::VEHICLE_LOCATION;
        let size = page_size(entity).resolve(q.page_size)?;
        // An empty range (the same instant twice) is a range with no point, not an error;
        // a reversed one is a mistake worth naming.
        if let (Some(a), Some(b)) = (q.recorded_after, q.recorded_before)
            && b < a
        {
            return Err(ServiceError::BadQuery {
                param: "recorded_before".into(),
                message: "`recorded_before` must not be before `recorded_after`.".into(),
            });
        }
        check_vehicle(q.vehicle_id.as_deref())?;
        let pager = Pager::new(
            self.keys,
            &conn.0,
            &[
                ("list", "vehicle_locations".into()),
                ("vehicle_id", q.vehicle_id.clone().unwrap_or_default()),
                (
                    "after",
                    q.recorded_after.map(|t| t.to_rfc3339()).unwrap_or_default(),
                ),
                (
                    "before",
                    q.recorded_before
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default(),
                ),
            ],
        );
        let after = match pager.position(q.cursor.as_deref())? {
            None => None,
            Some(position) => Some(decode_position(&position)?),
        };
        let rows = self
            .store
            .list_points(
                conn,
                &PointQuery {
                    entity,
                    series_id: q.vehicle_id.clone(),
                    from: q.recorded_after,
                    until: q.recorded_before,
                    after,
                    limit: size + 1,
                },
            )
            .await?;
        let (rows, next) = pager.page_by(rows, size, |p| {
            format!("{}|{}", p.recorded_at.micros(), p.series_id)
        });
        Ok((rows.iter().map(|p| render(conn, p)).collect(), next))
    }

    /// The newest location of each vehicle (or of one), by vehicle id.
    pub async fn latest(
        &self,
        conn: &ConnId,
        vehicle_id: Option<&str>,
        cursor: Option<&str>,
        page_size_asked: Option<u32>,
    ) -> Result<(Vec<VehicleLocation>, Option<String>), ServiceError> {
        let entity = Entity::VEHICLE_LOCATION;
        let size = page_size(entity).resolve(page_size_asked)?;
        check_vehicle(vehicle_id)?;
        let pager = Pager::new(
            self.keys,
            &conn.0,
            &[
                ("list", "vehicle_locations_latest".into()),
                ("vehicle_id", vehicle_id.unwrap_or_default().to_string()),
            ],
        );
        let after = pager.position(cursor)?;
        let rows = self
            .store
            .latest_points(conn, entity, vehicle_id, after.as_deref(), size + 1)
            .await?;
        let (rows, next) = pager.page(rows, size, |p| p.series_id.as_str());
        Ok((rows.iter().map(|p| render(conn, p)).collect(), next))
    }
}

fn page_size(entity: Entity) -> PageSize {
    PageSize {
        default: entity.default_page_size(),
        max: entity.max_page_size(),
    }
}

fn check_vehicle(id: Option<&str>) -> Result<(), ServiceError> {
    match id {
        Some(v) if Entity::from_id(v) != Some(Entity::VEHICLE) => Err(ServiceError::BadQuery {
            param: "vehicle_id".into(),
            message: "`vehicle_id` is a vehicle id (`vhc_…`).".into(),
        }),
        _ => Ok(()),
    }
}

/// A position written by the pager: `<micros>|<series>`.
fn decode_position(position: &str) -> Result<(Timestamp, String), ServiceError> {
    position
        .split_once('|')
        .and_then(|(t, s)| Some((Timestamp(t.parse().ok()?), s.to_string())))
        .ok_or_else(|| ServiceError::BadQuery {
            param: "cursor".into(),
            message: "The cursor is not valid for this list.".into(),
        })
}

/// A stored point as the API shows it. A body that does not read as a point (it cannot,
/// since the store writes only mapped points) still answers, with its series and time.
fn render(conn: &ConnId, p: &StoredPoint) -> VehicleLocation {
    let data: serde_json::Map<String, Value> = serde_json::from_str(&p.data).unwrap_or_default();
    let text = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_string);
    let number = |k: &str| data.get(k).and_then(Value::as_f64);
    VehicleLocation {
        id: crate::ids::record_id(
            &conn.0,
            Entity::VEHICLE_LOCATION,
            &format!("{}|{}", p.series_id, p.recorded_at.micros()),
        ),
        vehicle_id: p.series_id.clone(),
        vehicle_remote_id: text("vehicle_remote_id").unwrap_or_default(),
        driver_id: text("driver_id"),
        recorded_at: p.recorded_at,
        latitude: number("latitude").unwrap_or_default(),
        longitude: number("longitude").unwrap_or_default(),
        speed_kph: number("speed_kph"),
        heading_degrees: number("heading_degrees"),
        odometer_meters: number("odometer_meters"),
        address: text("address"),
        created_at: p.created_at,
    }
}
