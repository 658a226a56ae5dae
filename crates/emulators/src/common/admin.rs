//! Admin API under `/__emulator` (a prefix no real system uses): clock, data changes, faults, request log,
//! credentials and switches. It bypasses the gate, so faults never block the test driving them.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::clock::{iso_millis, parse_rfc3339};
use super::datagen::{PurchaseOrder, Vendor};
use super::faults::{FaultConfig, OfflineMode};
use super::table::{Record, Table};
use super::{Core, DeletedThrough, RecordKind, SystemHooks, patch_struct};

#[derive(Clone)]
pub struct AdminState {
    pub core: Arc<Core>,
    pub hooks: Arc<dyn SystemHooks>,
    pub system: &'static str,
}

pub const PREFIX: &str = "/__emulator";

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/__emulator", get(info))
        .route("/__emulator/clock", get(clock_get).post(clock_set))
        .route(
            "/__emulator/faults",
            get(faults_get)
                .put(faults_put)
                .patch(faults_patch)
                .delete(faults_clear),
        )
        .route("/__emulator/requests", get(requests).delete(requests_clear))
        .route("/__emulator/requests/count", get(requests_count))
        .route("/__emulator/settings", get(settings).patch(settings_patch))
        .route("/__emulator/credentials", get(credentials))
        .route("/__emulator/credentials/{action}", post(credentials_action))
        .route("/__emulator/records/{kind}", post(record_create))
        .route(
            "/__emulator/records/{kind}/{id}",
            get(record_get).patch(record_patch).delete(record_delete),
        )
        .route("/__emulator/records/{kind}/{id}/touch", post(record_touch))
        .with_state(state)
}

/// Admin errors are plain JSON: they are ours, not the emulated system's.
fn bad(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into() }))).into_response()
}

async fn info(State(s): State<AdminState>) -> Json<Value> {
    let d = s.core.read();
    Json(json!({
        "system": s.system,
        "seed": s.core.seed,
        "now": iso_millis(s.core.clock.now_ms()),
        "counts": {
            "purchase_orders": d.purchase_orders.len(),
            "vendors": d.vendors.len(),
            "items": d.items.len(),
            "locations": d.locations.len(),
        },
    }))
}

/// The system's clock (`now`), the reference time `set` and `advance` move, and the offset
/// between them.
async fn clock_get(State(s): State<AdminState>) -> Json<Value> {
    let clock = &s.core.clock;
    let now = clock.now_ms();
    Json(json!({
        "now": iso_millis(now),
        "now_ms": now,
        "reference_ms": clock.reference_ms(),
        "offset_ms": clock.offset_ms(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockChange {
    advance_ms: Option<i64>,
    advance_seconds: Option<i64>,
    set: Option<String>,
    set_ms: Option<i64>,
    offset_ms: Option<i64>,
    offset_seconds: Option<i64>,
}

async fn clock_set(State(s): State<AdminState>, body: Option<Json<ClockChange>>) -> Response {
    let Some(Json(c)) = body else {
        return bad(
            StatusCode::BAD_REQUEST,
            "expected JSON {advance_ms|advance_seconds|set|set_ms|offset_ms|offset_seconds}",
        );
    };
    if let Some(ms) = c.offset_ms {
        s.core.clock.set_offset_ms(ms);
    }
    if let Some(secs) = c.offset_seconds {
        s.core.clock.set_offset_ms(secs.saturating_mul(1000));
    }
    if let Some(t) = c.set {
        match parse_rfc3339(&t) {
            Some(ms) => s.core.clock.set_ms(ms),
            None => return bad(StatusCode::BAD_REQUEST, "set must be RFC 3339"),
        }
    }
    if let Some(ms) = c.set_ms {
        s.core.clock.set_ms(ms);
    }
    if let Some(d) = c.advance_ms {
        s.core.clock.advance_ms(d);
    }
    if let Some(d) = c.advance_seconds {
        s.core.clock.advance_ms(d.saturating_mul(1000));
    }
    clock_get(State(s)).await.into_response()
}

fn current_faults(core: &Core) -> FaultConfig {
    let mut cfg = core.faults.config();
    if core.faults.offline_mode() == OfflineMode::Online {
        cfg.offline = None;
    }
    cfg
}

async fn faults_get(State(s): State<AdminState>) -> Json<FaultConfig> {
    Json(current_faults(&s.core))
}

async fn faults_put(State(s): State<AdminState>, body: Option<Json<FaultConfig>>) -> Response {
    let Some(Json(cfg)) = body else {
        return bad(StatusCode::BAD_REQUEST, "expected a fault configuration");
    };
    match s.core.faults.set(cfg) {
        Ok(()) => Json(current_faults(&s.core)).into_response(),
        Err(e) => bad(StatusCode::BAD_REQUEST, e),
    }
}

async fn faults_patch(State(s): State<AdminState>, body: Option<Json<Value>>) -> Response {
    let Some(Json(patch)) = body else {
        return bad(StatusCode::BAD_REQUEST, "expected a JSON merge patch");
    };
    let cfg = match patch_struct(&current_faults(&s.core), &patch) {
        Ok(c) => c,
        Err(e) => return bad(StatusCode::BAD_REQUEST, e),
    };
    match s.core.faults.set(cfg) {
        Ok(()) => Json(current_faults(&s.core)).into_response(),
        Err(e) => bad(StatusCode::BAD_REQUEST, e),
    }
}

async fn faults_clear(State(s): State<AdminState>) -> StatusCode {
    let _ = s.core.faults.set(FaultConfig::default());
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Since {
    since: Option<u64>,
}

async fn requests(State(s): State<AdminState>, Query(q): Query<Since>) -> Json<Value> {
    Json(json!({
        "total": s.core.log.total(),
        "entries": s.core.log.entries(q.since.unwrap_or(0)),
    }))
}

async fn requests_count(State(s): State<AdminState>) -> Json<Value> {
    Json(json!({ "total": s.core.log.total(), "by_path": s.core.log.counts() }))
}

async fn requests_clear(State(s): State<AdminState>) -> StatusCode {
    s.core.log.clear();
    StatusCode::NO_CONTENT
}

async fn settings(State(s): State<AdminState>) -> Json<Value> {
    Json(s.hooks.settings())
}

async fn settings_patch(State(s): State<AdminState>, body: Option<Json<Value>>) -> Response {
    let Some(Json(patch)) = body else {
        return bad(StatusCode::BAD_REQUEST, "expected a JSON merge patch");
    };
    match s.hooks.patch_settings(patch) {
        Ok(v) => Json(v).into_response(),
        Err(e) => bad(StatusCode::BAD_REQUEST, e),
    }
}

async fn credentials(State(s): State<AdminState>) -> Json<Value> {
    Json(s.hooks.credentials())
}

async fn credentials_action(State(s): State<AdminState>, Path(action): Path<String>) -> Response {
    match action.as_str() {
        "revoke" => s.core.auth.revoke(),
        "restore" => s.core.auth.restore(),
        "rotate" => {
            s.core.auth.rotate();
        }
        _ => {
            return bad(
                StatusCode::NOT_FOUND,
                "action must be revoke, restore or rotate",
            );
        }
    }
    Json(s.hooks.credentials()).into_response()
}

/// Record kinds the admin API edits, in the canonical (system-neutral) JSON shape.
fn with_table<T>(
    core: &Core,
    kind: &str,
    f_po: impl FnOnce(&mut Table<PurchaseOrder>, Stamp) -> T,
    f_vendor: impl FnOnce(&mut Table<Vendor>, Stamp) -> T,
    f_item: impl FnOnce(&mut Table<super::datagen::Item>, Stamp) -> T,
) -> Option<T> {
    let stamp = Stamp {
        now: core.clock.now_ms(),
        resolution_ms: core.clock.resolution_ms(),
    };
    let mut d = core.write();
    match kind {
        "purchase_orders" => Some(f_po(&mut d.purchase_orders, stamp)),
        "vendors" => Some(f_vendor(&mut d.vendors, stamp)),
        "items" => Some(f_item(&mut d.items, stamp)),
        _ => None,
    }
}

/// The time an admin change is stamped with, and the resolution the system stores times at:
/// a `last_modified` given explicitly is rounded down to it (NetSuite keeps whole seconds).
#[derive(Debug, Clone, Copy)]
struct Stamp {
    now: i64,
    resolution_ms: i64,
}

type AdminResult = Result<Value, (StatusCode, String)>;

fn create_in<R: Record + serde::Serialize + serde::de::DeserializeOwned>(
    t: &mut Table<R>,
    stamp: Stamp,
    body: &Value,
) -> AdminResult {
    let now = stamp.now;
    // New records start from seeded record 1 so unspecified fields still look realistic.
    let template = t
        .get(1)
        .or_else(|| t.ids().first().and_then(|&i| t.get(i)))
        .ok_or((StatusCode::CONFLICT, "no template record".to_string()))?;
    let mut r: R = patch_struct(&template, body).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    r.set_last_modified(now);
    let mut v = serde_json::to_value(&r).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    v["created"] = json!(now);
    let mut r: R =
        serde_json::from_value(v).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    let id = t.insert(r.clone());
    r.set_id(id);
    let mut v = serde_json::to_value(&r).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    // Numbers follow the id so they stay unique.
    if let Some(n) = v.get("number").and_then(Value::as_str) {
        let prefix: String = n.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
        v["number"] = json!(format!("{prefix}{id:06}"));
        let r2: R = serde_json::from_value(v.clone())
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
        t.replace(r2);
    }
    Ok(v)
}

fn patch_in<R: Record + serde::Serialize + serde::de::DeserializeOwned>(
    t: &mut Table<R>,
    stamp: Stamp,
    id: u64,
    body: &Value,
) -> AdminResult {
    let cur = t
        .get(id)
        .ok_or((StatusCode::NOT_FOUND, "no such record".to_string()))?;
    let mut r: R = patch_struct(&cur, body).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    r.set_id(id);
    // Every change bumps last-modified, as the real systems do, unless the caller sets it
    // explicitly; a time given is kept at the precision the system stores.
    if body.get("last_modified").is_none() {
        r.set_last_modified(stamp.now);
    } else {
        let given = r.last_modified();
        r.set_last_modified(given - given.rem_euclid(stamp.resolution_ms.max(1)));
    }
    t.replace(r.clone());
    serde_json::to_value(&r).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))
}

fn to_response(r: Option<AdminResult>, ok: StatusCode) -> Response {
    match r {
        None => bad(
            StatusCode::NOT_FOUND,
            "kind must be purchase_orders, vendors or items",
        ),
        Some(Ok(v)) => (ok, Json(v)).into_response(),
        Some(Err((s, m))) => bad(s, m),
    }
}

async fn record_create(
    State(s): State<AdminState>,
    Path(kind): Path<String>,
    body: Option<Json<Value>>,
) -> Response {
    let body = body.map(|b| b.0).unwrap_or_else(|| json!({}));
    let r = with_table(
        &s.core,
        &kind,
        |t, stamp| create_in(t, stamp, &body),
        |t, stamp| create_in(t, stamp, &body),
        |t, stamp| create_in(t, stamp, &body),
    );
    to_response(r, StatusCode::CREATED)
}

async fn record_get(
    State(s): State<AdminState>,
    Path((kind, id)): Path<(String, u64)>,
) -> Response {
    let r = with_table(
        &s.core,
        &kind,
        |t, _| get_in(t, id),
        |t, _| get_in(t, id),
        |t, _| get_in(t, id),
    );
    to_response(r, StatusCode::OK)
}

fn get_in<R: Record + serde::Serialize>(t: &mut Table<R>, id: u64) -> AdminResult {
    let r = t
        .get(id)
        .ok_or((StatusCode::NOT_FOUND, "no such record".to_string()))?;
    serde_json::to_value(&r).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn record_patch(
    State(s): State<AdminState>,
    Path((kind, id)): Path<(String, u64)>,
    body: Option<Json<Value>>,
) -> Response {
    let body = body.map(|b| b.0).unwrap_or_else(|| json!({}));
    let r = with_table(
        &s.core,
        &kind,
        |t, stamp| patch_in(t, stamp, id, &body),
        |t, stamp| patch_in(t, stamp, id, &body),
        |t, stamp| patch_in(t, stamp, id, &body),
    );
    to_response(r, StatusCode::OK)
}

async fn record_touch(
    State(s): State<AdminState>,
    Path((kind, id)): Path<(String, u64)>,
) -> Response {
    let body = json!({});
    let r = with_table(
        &s.core,
        &kind,
        |t, stamp| patch_in(t, stamp, id, &body),
        |t, stamp| patch_in(t, stamp, id, &body),
        |t, stamp| patch_in(t, stamp, id, &body),
    );
    to_response(r, StatusCode::OK)
}

async fn record_delete(
    State(s): State<AdminState>,
    Path((kind, id)): Path<(String, u64)>,
) -> Response {
    let kind = match kind.as_str() {
        "purchase_orders" => RecordKind::PurchaseOrder,
        "vendors" => RecordKind::Vendor,
        "items" => RecordKind::Item,
        _ => {
            return bad(
                StatusCode::NOT_FOUND,
                "kind must be purchase_orders, vendors or items",
            );
        }
    };
    let now = s.core.clock.now_ms();
    // Logged as a person's deletion: the admin API stands for the system's own UI.
    if s.core
        .write()
        .delete(kind, id, now, DeletedThrough::UserInterface)
    {
        StatusCode::NO_CONTENT.into_response()
    } else {
        bad(StatusCode::NOT_FOUND, "no such record")
    }
}
