//! Samsara (REST API v2): vehicles and drivers read whole; GPS points back-filled from the
//! locations history by time window, then followed through the locations feed with its
//! cursor (stored as points, de-duplicated by vehicle and instant); fuel levels from the
//! stats history and safety events by time window; dispatch routes by schedule, and written
//! back (`routes`); bearer API tokens; Samsara's cursor pages (`after`,
//! `pagination.endCursor`, `hasNextPage`) and its 429 with a fractional `Retry-After`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ironbridge_core::Clock;
use ironbridge_core::connector::{Connector, ConnectorError, RawPage, ReadWindow, Source};
use ironbridge_core::netguard::Egress;
use ironbridge_core::system::{
    AuthOption, FEED_CURSOR_PREFIX, FieldSpec, Limits, Mappings, Payload, ReadSpec,
    SystemDescriptor,
};
use ironbridge_model::api::{DeletionDetection, FieldFormat, ReadKind, SystemId};
use ironbridge_model::{Entity, Timestamp};
use serde_json::{Value, json};

use crate::client::UpstreamClient;
use crate::common::{
    Authorize, Fields, Secret, SourceClock, authorized_call, limited_client, unexpected, upstream,
};
use crate::sleeper::Sleeper;

mod routes;

/// Samsara's id.
pub const ID: SystemId = SystemId::from_static("samsara");

const fn read(entity: Entity, kind: ReadKind, deletions: DeletionDetection) -> ReadSpec {
    ReadSpec {
        entity,
        kind,
        deletions,
        payload: Payload::Whole,
        follows_feed: false,
    }
}

/// Samsara through its REST API v2.
pub static DESCRIPTOR: SystemDescriptor = SystemDescriptor {
    id: ID,
    name: "Samsara",
    auth: &[AuthOption {
        id: "api_token",
        name: "API token",
        description: "An API token of the organization (Settings > API Tokens) with read access to vehicles, drivers, vehicle statistics (locations, fuel) and safety events, and read and write access to routes.",
        fields: &[FieldSpec::text(
            "api_token",
            "API token",
            "Sent as `Authorization: Bearer <token>`.",
        )
        .secret()],
    }],
    settings: &[
        FieldSpec::text(
            "base_url",
            "API URL",
            "`https://api.samsara.com` (EU: `https://api.eu.samsara.com`).",
        )
        .format(FieldFormat::Url),
        FieldSpec::text(
            "page_size",
            "Page size",
            "Vehicles, drivers or events per page, 1 to 512 (default 512).",
        )
        .optional(),
    ],
    reads: &[
        read(
            Entity::DRIVER,
            ReadKind::Whole,
            DeletionDetection::Reconciliation,
        ),
        read(
            Entity::VEHICLE,
            ReadKind::Whole,
            DeletionDetection::Reconciliation,
        ),
        ReadSpec {
            // Back-filled from the history, then the feed: late uploads (a vehicle out of
            // coverage) arrive through the feed whatever their time.
            follows_feed: true,
            ..read(
                Entity::VEHICLE_LOCATION,
                ReadKind::TimeSeries,
                DeletionDetection::Flagged,
            )
        },
        read(
            Entity::DRIVER_BEHAVIOR_EVENT,
            ReadKind::TimeSeries,
            DeletionDetection::Flagged,
        ),
        read(
            Entity::FUEL_EVENT,
            ReadKind::TimeSeries,
            DeletionDetection::Flagged,
        ),
        read(
            Entity::DISPATCH_ROUTE,
            ReadKind::Windowed,
            DeletionDetection::Reconciliation,
        ),
    ],
    writes: routes::WRITES,
    limits: Limits {
        concurrency: 4,
        // A quarter of the organization's budget: a history page carries up to a few
        // thousand points, so 25 a second capped a back-fill at about 44,000 points a second.
        per_second: 50.0,
        burst: 50,
        description: "Samsara allows 150 requests a second per token and 200 per organization, and answers 429 with a Retry-After (fractional seconds) beyond; Ironbridge keeps to 4 calls at once and 50 a second, a quarter of the organization's budget, leaving the rest to its other integrations.",
    },
    // Location history back-filled on the first sync: 500 vehicles over 7 days is about
    // 10 million points at one every 30 s.
    history_days: Some(7),
    mappings: Mappings::new(&[
        include_str!("../../mappings/samsara/driver.json"),
        include_str!("../../mappings/samsara/vehicle.json"),
        include_str!("../../mappings/samsara/vehicle_location.json"),
        include_str!("../../mappings/samsara/driver_behavior_event.json"),
        include_str!("../../mappings/samsara/fuel_event.json"),
        include_str!("../../mappings/samsara/dispatch_route.json"),
    ]),
    build: |ctx| {
        Ok(Arc::new(SamsaraConnector::new(
            ctx.settings,
            ctx.credentials,
            ctx.clock.clone(),
            ctx.sleeper.clone(),
            ctx.egress.clone(),
        )?))
    },
};

const SETTINGS: &[&str] = &["base_url", "page_size"];
const CREDENTIALS: &[&str] = &["api_token"];

/// The Samsara connector of one connection.
pub struct SamsaraConnector {
    base: String,
    token: Secret,
    page_size: u64,
    client: UpstreamClient,
    source_clock: SourceClock,
}

impl std::fmt::Debug for SamsaraConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamsaraConnector")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl SamsaraConnector {
    /// A connector from a connection's settings and credentials.
    pub fn new(
        settings: &serde_json::Map<String, Value>,
        credentials: Option<&serde_json::Map<String, Value>>,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
        egress: Egress,
    ) -> Result<Self, ConnectorError> {
        let s = Fields::new(Some(settings), "settings", SETTINGS)?;
        let c = Fields::new(credentials, "credentials", CREDENTIALS)?;
        let base = s.url("base_url", true)?.unwrap_or_default();
        let page_size = s.num("page_size", 1..=512)?.unwrap_or(512);
        let client = limited_client(
            &DESCRIPTOR.limits,
            Duration::from_secs(60),
            clock,
            sleeper,
            egress,
        )?;
        Ok(SamsaraConnector {
            base,
            token: Secret(c.req("api_token")?),
            page_size,
            client,
            source_clock: SourceClock::default(),
        })
    }

    /// `GET {base}{path}` with `query`, answered 200 with JSON (401: `Unauthorized`).
    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ConnectorError> {
        self.get_refusing(path, query, false).await
    }

    /// [`Self::get`]; with `cursor_sent`, a 400 says the cursor is refused (Samsara answers
    /// 400 to a cursor it does not take), not that the request is malformed.
    async fn get_refusing(
        &self,
        path: &str,
        query: &[(&str, String)],
        cursor_sent: bool,
    ) -> Result<Value, ConnectorError> {
        let url = format!("{}{path}", self.base);
        let response = authorized_call(
            &self.client,
            self,
            &self.source_clock,
            |http| http.get(&url).query(query),
            upstream,
        )
        .await?;
        match response.status {
            200 => crate::common::json_page(path, &response).await,
            // A token without the scope: the connection's token needs more access, which a
            // retry cannot give.
            403 => Err(ConnectorError::Upstream(format!(
                "Samsara refused {path} to this token (HTTP 403): give the token read access to it"
            ))),
            400 if cursor_sent => Err(ConnectorError::PositionRefused(format!(
                "Samsara refused the cursor of {path} (HTTP 400)"
            ))),
            _ => Err(unexpected(path, &response)),
        }
    }

    /// One page of the locations feed after `after` (`""`: open the feed, whose first pages
    /// are every vehicle's latest point). A feed caught up (`hasNextPage` false) says where
    /// the next poll goes on; Samsara may answer an empty `endCursor` then, and the cursor
    /// sent stays valid.
    async fn feed_page(&self, after: &str) -> Result<RawPage, ConnectorError> {
        const PATH: &str = "/fleet/vehicles/locations/feed";
        let query: Vec<(&str, String)> = if after.is_empty() {
            Vec::new()
        } else {
            vec![("after", after.to_string())]
        };
        let answer = self.get_refusing(PATH, &query, !after.is_empty()).await?;
        let Value::Object(mut answer) = answer else {
            return Err(ConnectorError::Upstream(format!("{PATH}: not an object")));
        };
        let Some(Value::Array(vehicles)) = answer.remove("data") else {
            return Err(ConnectorError::Upstream(format!("{PATH}: no `data` list")));
        };
        let pagination = answer.remove("pagination").unwrap_or(Value::Null);
        let end = pagination["endCursor"]
            .as_str()
            .filter(|c| !c.is_empty())
            .unwrap_or(after);
        let mut page = RawPage::from_values(locations_of(vehicles), None);
        let cursor = format!("{FEED_CURSOR_PREFIX}{end}");
        if pagination["hasNextPage"].as_bool() == Some(true) && end != after {
            page.next_cursor = Some(cursor);
        } else {
            page.resume = Some(cursor);
        }
        Ok(page)
    }

    /// One page of a list: its `data` and the cursor of the next page, if any.
    async fn page(
        &self,
        path: &str,
        mut query: Vec<(&str, String)>,
        cursor: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), ConnectorError> {
        if let Some(after) = cursor.filter(|c| !c.is_empty()) {
            query.push(("after", after.to_string()));
        }
        let answer = self.get(path, &query).await?;
        let Value::Object(mut answer) = answer else {
            return Err(ConnectorError::Upstream(format!("{path}: not an object")));
        };
        let data = match answer.remove("data") {
            Some(Value::Array(rows)) => rows,
            _ => return Err(ConnectorError::Upstream(format!("{path}: no `data` list"))),
        };
        let pagination = answer.remove("pagination").unwrap_or(Value::Null);
        let next = pagination["endCursor"]
            .as_str()
            .filter(|c| !c.is_empty() && pagination["hasNextPage"].as_bool() != Some(false))
            .map(str::to_string);
        Ok((data, next))
    }
}

/// `startTime`/`endTime` of a window (RFC 3339; Samsara's end is inclusive, a point at the
/// window's end is read again by the next window and stored once); `None` for a window that
/// ends before it starts (nothing to read: Samsara refuses such a range with a 400).
fn window_query(window: &ReadWindow, now: Timestamp) -> Option<Vec<(&'static str, String)>> {
    let start = window.modified_since.unwrap_or(Timestamp(0));
    let end = window.modified_until.unwrap_or(now).min(now);
    (start < end).then(|| {
        vec![
            ("startTime", start.to_rfc3339()),
            ("endTime", end.to_rfc3339()),
        ]
    })
}

/// One record per point, carrying its vehicle (history and feed answers nest points under
/// their vehicle).
fn locations_of(vehicles: Vec<Value>) -> Vec<Value> {
    let mut points = Vec::new();
    for mut v in vehicles {
        let vehicle = json!({"id": v["id"], "name": v["name"]});
        if let Some(Value::Array(locations)) = v.get_mut("locations").map(Value::take) {
            for mut l in locations {
                l["vehicle"] = vehicle.clone();
                points.push(l);
            }
        }
    }
    points
}

/// One record per fuel level reading (`fuelPercents: [{time, value}]` under each vehicle),
/// keyed by vehicle and time: a reading is never changed, so the key is stable.
fn fuel_levels_of(vehicles: Vec<Value>) -> Vec<Value> {
    let mut readings = Vec::new();
    for mut v in vehicles {
        let vehicle = json!({"id": v["id"], "name": v["name"]});
        let Some(Value::Array(levels)) = v.get_mut("fuelPercents").map(Value::take) else {
            continue;
        };
        for mut level in levels {
            let Some(time) = level["time"].as_str() else {
                continue;
            };
            level["key"] = json!(format!(
                "{}:{time}",
                vehicle["id"].as_str().unwrap_or_default()
            ));
            level["vehicle"] = vehicle.clone();
            readings.push(level);
        }
    }
    readings
}

#[async_trait]
impl Authorize for SamsaraConnector {
    async fn authorization(&self) -> Result<String, ConnectorError> {
        Ok(format!("Bearer {}", self.token.0))
    }

    async fn refused(&self) -> bool {
        // A static token: nothing to refresh.
        false
    }
}

impl Connector for SamsaraConnector {
    fn descriptor(&self) -> &'static SystemDescriptor {
        &DESCRIPTOR
    }

    fn circuit_state(&self) -> ironbridge_model::api::CircuitState {
        self.client.breaker().state()
    }

    fn creates(&self) -> Option<&dyn ironbridge_core::connector::CreateRecords> {
        Some(self)
    }

    fn updates(&self) -> Option<&dyn ironbridge_core::connector::UpdateRecords> {
        Some(self)
    }
}

#[async_trait]
impl Source for SamsaraConnector {
    async fn check(&self) -> Result<(), ConnectorError> {
        self.get("/fleet/vehicles", &[("limit", "1".into())])
            .await
            .map(|_| ())
    }

    async fn fetch_page(
        &self,
        entity: Entity,
        window: &ReadWindow,
        cursor: Option<&str>,
    ) -> Result<RawPage, ConnectorError> {
        let limit = ("limit", self.page_size.to_string());
        if entity == Entity::VEHICLE {
            let (rows, next) = self.page("/fleet/vehicles", vec![limit], cursor).await?;
            Ok(RawPage::from_values(rows, next))
        } else if entity == Entity::DRIVER {
            // Active drivers, then deactivated ones (a whole read must list both, or a
            // deactivated driver would be marked deleted). The cursor says which.
            let (status, after) = match cursor.and_then(|c| c.split_once(':')) {
                Some(("d", after)) => ("deactivated", Some(after)),
                Some((_, after)) => ("active", Some(after)),
                None => ("active", None),
            };
            let query = vec![limit, ("driverActivationStatus", status.to_string())];
            let (rows, next) = self.page("/fleet/drivers", query, after).await?;
            let next = match (next, status) {
                (Some(n), "active") => Some(format!("a:{n}")),
                (Some(n), _) => Some(format!("d:{n}")),
                (None, "active") => Some("d:".to_string()),
                (None, _) => None,
            };
            Ok(RawPage::from_values(rows, next))
        } else if entity == Entity::VEHICLE_LOCATION {
            if let Some(after) = cursor.and_then(|c| c.strip_prefix(FEED_CURSOR_PREFIX)) {
                return self.feed_page(after).await;
            }
            let Some(query) = window_query(window, self.client.now()) else {
                return Ok(RawPage::default());
            };
            let (vehicles, next) = self
                .page("/fleet/vehicles/locations/history", query, cursor)
                .await?;
            Ok(RawPage::from_values(locations_of(vehicles), next))
        } else if entity == Entity::FUEL_EVENT {
            let Some(mut query) = window_query(window, self.client.now()) else {
                return Ok(RawPage::default());
            };
            query.push(("types", "fuelPercents".to_string()));
            let (vehicles, next) = self
                .page("/fleet/vehicles/stats/history", query, cursor)
                .await?;
            Ok(RawPage::from_values(fuel_levels_of(vehicles), next))
        } else if entity == Entity::DRIVER_BEHAVIOR_EVENT {
            let Some(mut query) = window_query(window, self.client.now()) else {
                return Ok(RawPage::default());
            };
            query.push(limit);
            let (rows, next) = self.page("/fleet/safety-events", query, cursor).await?;
            Ok(RawPage::from_values(rows, next))
        } else if entity == Entity::DISPATCH_ROUTE {
            self.fetch_routes(window, cursor).await
        } else {
            Err(ConnectorError::Unsupported(format!(
                "Samsara does not serve {} records",
                entity.spec().label
            )))
        }
    }

    async fn source_time(&self) -> Result<Option<Timestamp>, ConnectorError> {
        Ok(self.source_clock.at(self.client.now()))
    }
}
