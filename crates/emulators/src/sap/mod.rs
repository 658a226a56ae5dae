//! SAP S/4HANA emulator (target-systems.md §2): `API_PURCHASEORDER_PROCESS_SRV` (OData V2) with
//! `A_Supplier` and `A_BusinessPartner` (`API_BUSINESS_PARTNER`) and `A_Product`
//! (`API_PRODUCT_SRV`), Basic and OAuth auth, CSRF.

pub mod atom;
pub mod auth;
pub mod batch;
pub mod errors;
pub mod metadata;
pub mod model;
pub mod numbers;
pub mod service;
pub mod writes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{any, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::common::admin::{self, AdminState};
use crate::common::gate::{Gate, gate};
use crate::common::{Core, SystemHooks, patch_struct, rotated_secret};

/// Switches; `[I]` marks inferred behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `sap-client` (also part of the session cookie name).
    pub sap_client: String,
    /// System id shown in cookies and realm.
    pub system_id: String,
    /// Communication user for Basic auth.
    pub user: String,
    pub password: String,
    /// OAuth 2.0 client credentials (`/sap/bc/sec/oauth2/token`).
    pub oauth_client_id: String,
    pub oauth_client_secret: String,
    pub token_lifetime_secs: i64,
    /// Server-driven paging: `None` returns everything when `$top` is missing (CDS A2X services) [I];
    /// `Some(n)` caps each response at n entities with a `__next` link (RAP services: 100 default, 5,000 max).
    pub server_page_size: Option<u32>,
    /// Emit `__metadata.etag` / `ETag` on purchase orders and enforce `If-Match` on writes [I].
    pub etag: bool,
    /// Custom (extension) fields `YY1_*` on header and item.
    pub custom_fields: bool,
    /// A failed Basic login answers with SAP's HTML logon page (true) or a JSON error [I].
    pub auth_failure_html: bool,
    /// Writes need a CSRF token fetched with `x-csrf-token: Fetch`.
    pub csrf_required: bool,
    /// Optional throttling (none is documented for S/4HANA) [I].
    pub rate_limit_per_minute: Option<u32>,
    pub retry_after_secs: Option<u64>,
    /// Entity sets (`A_BusinessPartner`, `A_Supplier`, `A_Product`, `A_PurchaseOrder`, ...)
    /// the communication user lacks the authorization to create, change or delete: writes
    /// are answered 403 with SAP's error body [I: the message code].
    pub denied_entity_sets: Vec<String>,
    /// Every how many seeded purchase orders one has a null `LastChangeDateTime`, as orders
    /// in recorded sandbox payloads have until something changes them (0: none). Fixed when
    /// the emulator starts: it shapes the seeded data.
    pub null_change_time_every: u64,
    /// How decimals are written: by unit of measure and currency (`unit`, S/4HANA Cloud) or
    /// padded to the declared scale (`scale`, as some on-premise releases show quantities).
    pub decimal_format: numbers::DecimalFormat,
    /// A write that sets a property `sap:creatable`/`sap:updatable="false"`: `ignore` it (the
    /// Gateway's usual answer, which lets clients PUT back what they read) or `reject` it
    /// with 400 (as some APIs do: "Update of the read-only property X not possible").
    pub read_only_properties: ReadOnlyProperties,
}

/// What a write of a read-only property does (`read_only_properties`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadOnlyProperties {
    #[default]
    Ignore,
    Reject,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            sap_client: "100".into(),
            system_id: "EMU".into(),
            user: "COMM_USER".into(),
            password: "Emulator-Pa55word".into(),
            oauth_client_id: "emulator-client".into(),
            oauth_client_secret: "Emulator-Pa55word".into(),
            token_lifetime_secs: 3600,
            server_page_size: None,
            etag: false,
            custom_fields: true,
            auth_failure_html: true,
            csrf_required: true,
            rate_limit_per_minute: None,
            retry_after_secs: Some(60),
            denied_entity_sets: Vec::new(),
            null_change_time_every: 10,
            decimal_format: numbers::DecimalFormat::Unit,
            read_only_properties: ReadOnlyProperties::Ignore,
        }
    }
}

impl Settings {
    fn validate(&self) -> Result<(), String> {
        if self.server_page_size == Some(0) || self.server_page_size.is_some_and(|n| n > 5000) {
            return Err("server_page_size must be between 1 and 5000".into());
        }
        if !(1..=315_360_000).contains(&self.token_lifetime_secs) {
            return Err("token_lifetime_secs must be between 1 and 315,360,000 (ten years)".into());
        }
        Ok(())
    }

    pub fn cookie_name(&self) -> String {
        format!("SAP_SESSIONID_{}_{}", self.system_id, self.sap_client)
    }
}

#[derive(Debug, Clone)]
pub struct BearerToken {
    pub expires_ms: i64,
    pub generation: u64,
}

pub struct SapState {
    pub core: Arc<Core>,
    pub settings: RwLock<Settings>,
    /// Session id (cookie) → CSRF token.
    pub sessions: Mutex<HashMap<String, String>>,
    pub tokens: Mutex<HashMap<String, BearerToken>>,
    /// (query key, data version, packed result keys).
    pub cache: Mutex<Option<crate::netsuite::CachedQuery>>,
}

impl SapState {
    pub fn settings(&self) -> Settings {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

pub type Sap = Arc<SapState>;

struct Hooks(Sap);

impl SystemHooks for Hooks {
    fn settings(&self) -> Value {
        serde_json::to_value(self.0.settings()).unwrap_or(Value::Null)
    }

    fn patch_settings(&self, patch: Value) -> Result<Value, String> {
        let mut g = self.0.settings.write().unwrap_or_else(|e| e.into_inner());
        let next: Settings = patch_struct(&*g, &patch)?;
        next.validate()?;
        if next.null_change_time_every != g.null_change_time_every {
            return Err(
                "null_change_time_every is fixed when the emulator starts (it shapes the seeded data)"
                    .into(),
            );
        }
        *g = next;
        serde_json::to_value(&*g).map_err(|e| e.to_string())
    }

    fn credentials(&self) -> Value {
        let s = self.0.settings();
        let g = self.0.core.auth.generation();
        json!({
            "revoked": self.0.core.auth.revoked(),
            "generation": g,
            "user": s.user,
            "password": rotated_secret(&s.password, g),
            "oauth_client_id": s.oauth_client_id,
            "oauth_client_secret": rotated_secret(&s.oauth_client_secret, g),
        })
    }
}

pub fn app(core: Arc<Core>, settings: Settings) -> anyhow::Result<Router> {
    settings.validate().map_err(anyhow::Error::msg)?;
    let sap: Sap = Arc::new(SapState {
        core: core.clone(),
        settings: RwLock::new(settings),
        sessions: Mutex::new(HashMap::new()),
        tokens: Mutex::new(HashMap::new()),
        cache: Mutex::new(None),
    });
    let gate_state = Gate::new(core.clone(), Arc::new(errors::SapErrors(sap.clone())));
    let api = Router::new()
        .route("/sap/bc/sec/oauth2/token", post(auth::token))
        .route("/sap/opu/odata/sap/{service}", any(service::root))
        .route("/sap/opu/odata/sap/{service}/", any(service::root))
        .route(
            "/sap/opu/odata/sap/{service}/{*rest}",
            any(service::dispatch),
        )
        .fallback(service::unknown)
        .with_state(sap.clone())
        .layer(from_fn_with_state(gate_state, gate));
    let admin_state = AdminState {
        core,
        hooks: Arc::new(Hooks(sap)),
        system: "sap",
    };
    Ok(admin::router(admin_state).merge(api))
}
