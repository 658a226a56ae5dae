//! Samsara REST API v2 emulator (target-systems.md §4.2, sources in docs/emulators/samsara.md):
//! bearer tokens, cursor pagination, vehicles and drivers, GPS locations and vehicle stats as
//! snapshots, history and feeds over a fleet that moves with the emulator's clock, safety
//! events, dispatch routes, fuel purchases, and per-token rate limits answered with a
//! fractional `Retry-After`.

pub mod api;
pub mod dispatch;
pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::common::admin::{self, AdminState};
use crate::common::fleet::Fleet;
use crate::common::gate::{Gate, SystemErrors, Throttle, gate};
use crate::common::{Core, SystemHooks, patch_struct, rotated_secret};

/// Which clock refills the rate-limit buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateClock {
    /// Real time (what a client really experiences; the default).
    Wall,
    /// The emulator's clock (deterministic tests move it instead of sleeping).
    Emulator,
}

/// Switches; documented behaviour by default, `[I]` marks inferred behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// API tokens the organization has issued (each has its own rate budget).
    pub tokens: Vec<String>,
    /// Drivers in the fleet (0: as many as vehicles plus a tenth); fixed at start.
    pub drivers: u64,
    /// Seconds between two GPS points of a vehicle; fixed at start.
    pub point_interval_secs: i64,
    /// Non-GPS stats (fuel, odometers) are reported every this many GPS points [I].
    pub stat_every_points: i64,
    /// Requests per second per token (documented: 150).
    pub rate_per_token: f64,
    /// Requests per second per organization, all tokens together (documented: 200).
    pub rate_per_org: f64,
    /// Endpoint tiers: `GET /fleet/routes` 5/s, `GET /fleet/routes/{id}` 25/s, route and
    /// fuel-purchase writes 100/min (as each endpoint's documentation states).
    pub endpoint_limits: bool,
    pub rate_clock: RateClock,
    /// Safety events may carry behaviour labels newer than the SDK's enum [I].
    pub new_behavior_labels: bool,
    /// Points per page of history and feed answers [I].
    pub page_points: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            tokens: vec![DEFAULT_TOKEN.into()],
            drivers: 0,
            point_interval_secs: 30,
            stat_every_points: 10,
            rate_per_token: 150.0,
            rate_per_org: 200.0,
            endpoint_limits: true,
            rate_clock: RateClock::Wall,
            new_behavior_labels: true,
            page_points: 2000,
        }
    }
}

/// The token the emulator accepts unless configured otherwise.
pub const DEFAULT_TOKEN: &str = "samsara_api_emulator_token";

impl Settings {
    fn validate(&self) -> Result<(), String> {
        if self.tokens.is_empty() || self.tokens.iter().any(|t| t.trim().is_empty()) {
            return Err("tokens must hold at least one non-empty token".into());
        }
        if self.drivers > 2_000_000 {
            return Err("drivers must be at most 2,000,000".into());
        }
        if !(1..=3600).contains(&self.point_interval_secs) {
            return Err("point_interval_secs must be between 1 and 3600".into());
        }
        if !(1..=1000).contains(&self.stat_every_points) {
            return Err("stat_every_points must be between 1 and 1000".into());
        }
        if !(self.rate_per_token > 0.0 && self.rate_per_org > 0.0) {
            return Err("rate_per_token and rate_per_org must be positive".into());
        }
        if !(1..=100_000).contains(&self.page_points) {
            return Err("page_points must be between 1 and 100,000".into());
        }
        Ok(())
    }
}

/// A token bucket: `capacity` requests at once, refilled at `rate` per second.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: f64,
}

/// The emulated organization's state.
pub struct SamsaraState {
    /// Clock, faults, request log and credential state shared with the admin API.
    pub core: Arc<Core>,
    /// The switches, changeable through `PATCH /__emulator/settings`.
    pub settings: RwLock<Settings>,
    /// The generated fleet every read endpoint computes from.
    pub fleet: Fleet,
    /// Dispatch routes created through the API.
    pub routes: Mutex<dispatch::Routes>,
    /// Fuel purchases posted through the API, as received plus their `uuid`.
    pub fuel_purchases: Mutex<Vec<Value>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    started: Instant,
    request_ids: AtomicU64,
}

impl SamsaraState {
    /// A copy of the current switches.
    pub fn settings(&self) -> Settings {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A fresh `requestId` for an error body.
    pub fn request_id(&self) -> String {
        wire::request_id(&self.core, &self.request_ids)
    }

    /// Tokens valid now (rotation appends a suffix; revocation refuses them all).
    fn token_ok(&self, token: &str) -> bool {
        let generation = self.core.auth.generation();
        !self.core.auth.revoked()
            && self
                .settings()
                .tokens
                .iter()
                .any(|t| rotated_secret(t, generation) == token)
    }

    /// Takes one request from every bucket that applies, or says how long to wait.
    fn take(&self, token: &str, tier: Option<(&'static str, f64, f64)>) -> Result<(), f64> {
        let s = self.settings();
        let now = match s.rate_clock {
            RateClock::Wall => self.started.elapsed().as_secs_f64() * 1000.0,
            RateClock::Emulator => self.core.clock.now_ms() as f64,
        };
        // (key, requests per second, capacity)
        let mut limits = vec![
            (
                format!("token:{token}"),
                s.rate_per_token,
                s.rate_per_token.max(1.0),
            ),
            ("org".to_string(), s.rate_per_org, s.rate_per_org.max(1.0)),
        ];
        if let Some((name, rate, capacity)) = tier
            && s.endpoint_limits
        {
            limits.push((format!("{name}:{token}"), rate, capacity));
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait: f64 = 0.0;
        let mut refilled = Vec::with_capacity(limits.len());
        for (key, rate, capacity) in &limits {
            let b = buckets.get(key).copied().unwrap_or(Bucket {
                tokens: *capacity,
                at_ms: now,
            });
            let elapsed = ((now - b.at_ms) / 1000.0).max(0.0);
            let tokens = (b.tokens + elapsed * rate).min(*capacity);
            // A hair of tolerance: refills are sums of float fractions.
            if tokens < 1.0 - 1e-9 {
                wait = wait.max((1.0 - tokens) / rate);
            }
            refilled.push((key.clone(), tokens));
        }
        // All or nothing: a refused request uses no budget.
        for (key, tokens) in refilled {
            let left = if wait > 0.0 {
                tokens
            } else {
                (tokens - 1.0).max(0.0)
            };
            buckets.insert(
                key,
                Bucket {
                    tokens: left,
                    at_ms: now,
                },
            );
        }
        if wait > 0.0 { Err(wait) } else { Ok(()) }
    }
}

/// The shared state handlers receive.
pub type Sam = Arc<SamsaraState>;

struct Hooks(Sam);

impl SystemHooks for Hooks {
    fn settings(&self) -> Value {
        serde_json::to_value(self.0.settings()).unwrap_or(Value::Null)
    }

    fn patch_settings(&self, patch: Value) -> Result<Value, String> {
        let mut g = self.0.settings.write().unwrap_or_else(|e| e.into_inner());
        let next: Settings = patch_struct(&*g, &patch)?;
        next.validate()?;
        if (next.drivers, next.point_interval_secs) != (g.drivers, g.point_interval_secs) {
            return Err("drivers and point_interval_secs are fixed at start".into());
        }
        *g = next;
        serde_json::to_value(&*g).map_err(|e| e.to_string())
    }

    fn credentials(&self) -> Value {
        let g = self.0.core.auth.generation();
        let tokens: Vec<String> = self
            .0
            .settings()
            .tokens
            .iter()
            .map(|t| rotated_secret(t, g))
            .collect();
        json!({
            "revoked": self.0.core.auth.revoked(),
            "generation": g,
            "tokens": tokens,
        })
    }
}

/// Injected throttling and server errors in Samsara's error body.
struct SamsaraErrors(Sam);

impl SystemErrors for SamsaraErrors {
    fn too_many_requests(&self, _why: Throttle, retry_after_secs: Option<u64>) -> Response {
        wire::too_many(&self.0, retry_after_secs.map(|s| s as f64))
    }

    fn server_error(&self, status: StatusCode) -> Response {
        let message = match status.as_u16() {
            502 => "Bad Gateway",
            503 => "Service unavailable",
            504 => "Gateway timeout",
            _ => "An internal server error occurred",
        };
        wire::error(&self.0, status, message)
    }
}

/// The endpoint tier of a request: `(name, requests per second, burst)`.
fn tier(method: &axum::http::Method, path: &str) -> Option<(&'static str, f64, f64)> {
    let write = *method != axum::http::Method::GET;
    if path == "/fuel-purchase" || (path.starts_with("/fleet/routes") && write) {
        return Some(("write-100-per-min", 100.0 / 60.0, 100.0));
    }
    if path == "/fleet/routes" {
        return Some(("routes-list-5-per-s", 5.0, 5.0));
    }
    if path.starts_with("/fleet/routes/") {
        return Some(("route-25-per-s", 25.0, 25.0));
    }
    None
}

/// Bearer token, then the token's, the organization's and the endpoint's rate budgets.
async fn guard(State(sam): State<Sam>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_string())
        });
    let Some(token) = token.filter(|t| sam.token_ok(t)) else {
        return wire::error(&sam, StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    if let Err(wait) = sam.take(&token, tier(req.method(), req.uri().path())) {
        return wire::too_many(&sam, Some(wait));
    }
    next.run(req).await
}

/// `GET /__emulator/samsara/fuel-purchases`: what `POST /fuel-purchase` recorded.
async fn fuel_purchases(State(sam): State<Sam>) -> Response {
    let v = sam
        .fuel_purchases
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    axum::Json(json!({ "data": v })).into_response()
}

/// Builds the emulator for a fleet of `vehicles` vehicles.
pub fn app(core: Arc<Core>, settings: Settings, vehicles: u64) -> anyhow::Result<Router> {
    settings.validate().map_err(anyhow::Error::msg)?;
    if !(1..=1_000_000).contains(&vehicles) {
        anyhow::bail!("a Samsara fleet has between 1 and 1,000,000 vehicles");
    }
    let mut settings = settings;
    if settings.drivers == 0 {
        settings.drivers = vehicles + vehicles / 10;
    }
    let fleet = Fleet {
        seed: core.seed,
        vehicles,
        drivers: settings.drivers,
        interval_ms: settings.point_interval_secs * 1000,
        origin_ms: core.clock.now_ms(),
    };
    let sam: Sam = Arc::new(SamsaraState {
        core: core.clone(),
        settings: RwLock::new(settings),
        fleet,
        routes: Mutex::new(dispatch::Routes::default()),
        fuel_purchases: Mutex::new(Vec::new()),
        buckets: Mutex::new(HashMap::new()),
        started: Instant::now(),
        request_ids: AtomicU64::new(0),
    });
    let gate_state = Gate::new(core.clone(), Arc::new(SamsaraErrors(sam.clone())));
    let api = Router::new()
        .route("/fleet/vehicles", get(api::vehicles))
        .route("/fleet/vehicles/{id}", get(api::vehicle))
        .route("/fleet/drivers", get(api::drivers))
        .route("/fleet/drivers/{id}", get(api::driver))
        .route("/fleet/vehicles/locations", get(api::locations))
        .route(
            "/fleet/vehicles/locations/history",
            get(api::locations_history),
        )
        .route("/fleet/vehicles/locations/feed", get(api::locations_feed))
        .route("/fleet/vehicles/stats", get(api::stats))
        .route("/fleet/vehicles/stats/history", get(api::stats_history))
        .route("/fleet/vehicles/stats/feed", get(api::stats_feed))
        .route("/fleet/safety-events", get(api::safety_events))
        .route(
            "/fleet/routes",
            get(dispatch::list_routes).post(dispatch::create_route),
        )
        .route(
            "/fleet/routes/{id}",
            get(dispatch::get_route)
                .patch(dispatch::patch_route)
                .delete(dispatch::delete_route),
        )
        .route(
            "/fuel-purchase",
            axum::routing::post(dispatch::fuel_purchase),
        )
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(sam.clone())
        .layer(from_fn_with_state(sam.clone(), guard))
        .layer(from_fn_with_state(gate_state, gate));
    let extra = Router::new()
        .route("/__emulator/samsara/fuel-purchases", get(fuel_purchases))
        .with_state(sam.clone());
    let admin_state = AdminState {
        core,
        hooks: Arc::new(Hooks(sam)),
        system: "samsara",
    };
    Ok(admin::router(admin_state).merge(extra).merge(api))
}

/// Query parameters; list parameters may be comma-separated, repeated, or both.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses a raw query string (`None`: no parameters).
    pub fn parse(raw: Option<&str>) -> Self {
        Query(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, if given and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, split at commas.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}
