//! Business Central API v2.0 emulator (target-systems.md §3): Entra ID client-credentials tokens
//! (secret or certificate), companies, purchase orders with lines, vendors, items, limits and errors.

pub mod api;
pub mod auth;
pub mod errors;
pub mod model;
pub mod writes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{any, get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::common::admin::{self, AdminState};
use crate::common::gate::{Gate, gate, log_only};
use crate::common::{Core, SystemHooks, patch_struct, rotated_secret};

/// Switches; `[I]` marks inferred behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub tenant_id: String,
    pub environment: String,
    pub client_id: String,
    pub client_secret: String,
    /// PEM certificate (or public key) accepted for `client_assertion` JWTs.
    pub certificate_pem: Option<String>,
    pub company_name: String,
    pub token_lifetime_secs: i64,
    /// Requests running at once; the rest queue (5 per environment).
    pub max_concurrent: u32,
    /// Queued requests beyond which the API answers 429 (95).
    pub queue_size: u32,
    /// Requests per emulator-clock minute (600 production, 300 sandbox).
    pub requests_per_minute: u32,
    /// `Retry-After` on 429 (undocumented: sent by default, `null` to omit) [I].
    pub retry_after_secs: Option<u64>,
    /// Largest page the server returns (20,000).
    pub max_page_size: u32,
    /// Stale `If-Match` answers 409 (true) or 412 [I].
    pub entity_changed_status_409: bool,
    /// Lines of released (`Open`) orders cannot be changed, as BC requires status Open (draft) for edits [I].
    pub released_orders_read_only: bool,
    /// API pages (`vendors`, `items`, `purchaseOrders`, `purchaseOrderLines`) whose tables the
    /// app's permission sets may not insert, modify or delete in: writes are answered 403
    /// "Sorry, the current permissions prevented the action", as Business Central answers.
    pub denied_sets: Vec<String>,
    /// `$metadata` declares the enums (`EnumType`, members by AL name encoded: `_x0020_`,
    /// `In_x0020_Review`) and types the properties with them, as API v2.0 does. Off, the
    /// properties are declared `Edm.String` (values are member names either way): for
    /// clients that cannot load such members (python-odata builds Python enums, which
    /// reserve names like `_x0020_`).
    pub metadata_enum_types: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            tenant_id: "7e3c1b2a-4d5f-4a6b-9c8d-0e1f2a3b4c5d".into(),
            environment: "production".into(),
            client_id: "3f2a9c4e-1b7d-4e8a-9f6c-5d4e3b2a1c0f".into(),
            client_secret: "emulator~client~secret".into(),
            certificate_pem: None,
            company_name: "CRONUS USA, Inc.".into(),
            token_lifetime_secs: 3599,
            max_concurrent: 5,
            queue_size: 95,
            requests_per_minute: 600,
            retry_after_secs: Some(30),
            max_page_size: 20_000,
            entity_changed_status_409: true,
            released_orders_read_only: true,
            denied_sets: Vec::new(),
            metadata_enum_types: true,
        }
    }
}

impl Settings {
    fn validate(&self) -> Result<(), String> {
        if self.max_concurrent == 0 || self.requests_per_minute == 0 || self.max_page_size == 0 {
            return Err(
                "max_concurrent, requests_per_minute and max_page_size must be at least 1".into(),
            );
        }
        if !(1..=315_360_000).contains(&self.token_lifetime_secs) {
            return Err("token_lifetime_secs must be between 1 and 315,360,000 (ten years)".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct AccessToken {
    pub expires_ms: i64,
    pub generation: u64,
}

pub struct BcState {
    pub core: Arc<Core>,
    pub settings: RwLock<Settings>,
    pub tokens: Mutex<HashMap<String, AccessToken>>,
    pub cache: Mutex<Option<crate::netsuite::CachedQuery>>,
}

impl BcState {
    pub fn settings(&self) -> Settings {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

pub type Bc = Arc<BcState>;

struct Hooks(Bc);

impl SystemHooks for Hooks {
    fn settings(&self) -> Value {
        serde_json::to_value(self.0.settings()).unwrap_or(Value::Null)
    }

    fn patch_settings(&self, patch: Value) -> Result<Value, String> {
        let mut g = self.0.settings.write().unwrap_or_else(|e| e.into_inner());
        let next: Settings = patch_struct(&*g, &patch)?;
        next.validate()?;
        *g = next;
        serde_json::to_value(&*g).map_err(|e| e.to_string())
    }

    fn credentials(&self) -> Value {
        let s = self.0.settings();
        let g = self.0.core.auth.generation();
        json!({
            "revoked": self.0.core.auth.revoked(),
            "generation": g,
            "tenant_id": s.tenant_id,
            "environment": s.environment,
            "client_id": s.client_id,
            "client_secret": rotated_secret(&s.client_secret, g),
            "company_id": model::guid(self.0.core.seed, model::Kind::Company, 1),
        })
    }
}

/// Runs report 499 "Delete Invoiced Purch. Orders" as a user would from the client:
/// `{"deleted": n}`.
async fn delete_invoiced_orders(
    axum::extract::State(bc): axum::extract::State<Bc>,
) -> axum::Json<Value> {
    let now = bc.core.clock.now_ms();
    let deleted = writes::delete_invoiced_orders(&mut bc.core.write(), now);
    axum::Json(json!({ "deleted": deleted }))
}

pub fn app(core: Arc<Core>, settings: Settings) -> anyhow::Result<Router> {
    settings.validate().map_err(anyhow::Error::msg)?;
    let bc: Bc = Arc::new(BcState {
        core: core.clone(),
        settings: RwLock::new(settings),
        tokens: Mutex::new(HashMap::new()),
        cache: Mutex::new(None),
    });
    let gate_state = Gate::new(core.clone(), Arc::new(errors::BcErrors(bc.clone())));
    // Entra ID is another host in reality: logged, but not subject to BC's API limits or faults.
    let login = Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(auth::token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(auth::discovery),
        )
        .route("/common/discovery/instance", get(auth::instance_discovery))
        .route(
            "/__emulator/business-central/delete-invoiced-orders",
            post(delete_invoiced_orders),
        )
        .with_state(bc.clone())
        .layer(from_fn_with_state(core.clone(), log_only));
    let api = Router::new()
        .route("/v2.0/{*rest}", any(api::dispatch))
        .fallback(api::unknown)
        .with_state(bc.clone())
        .layer(from_fn_with_state(gate_state, gate));
    let admin_state = AdminState {
        core,
        hooks: Arc::new(Hooks(bc)),
        system: "business-central",
    };
    Ok(admin::router(admin_state).merge(login).merge(api))
}
