//! NetSuite REST web services emulator (target-systems.md §1): record API, SuiteQL, OAuth 2.0 M2M and TBA.

pub mod auth;
pub mod errors;
pub mod qfilter;
pub mod records;
pub mod render;
pub mod sqlval;
pub mod suiteql;
pub mod timezone;
pub mod writes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::common::admin::{self, AdminState};
use crate::common::gate::{Gate, gate};
use crate::common::{Core, SystemHooks, patch_struct, rotated_secret};
use timezone::TimeZone;

/// Switches. Documented behaviour is the default; `[I]` marks inferred behaviour that can be changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Account id, e.g. `1234567` or `123456_SB1`; also the realm of auth errors.
    pub account_id: String,
    /// The user's date-format preference used by `q` filters and SuiteQL output:
    /// `M/D/YYYY` (default), `D/M/YYYY`, `YYYY-MM-DD`, `D.M.YYYY`.
    pub date_format: String,
    /// The time zone of the integration user's preferences (an IANA name: most accounts are
    /// not in UTC, so the default is NetSuite's own Pacific time). SuiteQL shows datetimes,
    /// and reads datetime literals, in it; `q` dates are days there. The record API's
    /// datetimes stay UTC whatever it is (documented).
    pub time_zone: String,
    /// Refuse an `offset` that is not a multiple of `limit` on lists and SuiteQL [I: clients
    /// report it, Oracle's paging docs speak only of pages].
    pub require_offset_multiple_of_limit: bool,
    /// Account-wide concurrency limit (service tier base 15; +10 per SuiteCloud Plus licence).
    pub concurrency_limit: u32,
    /// `o:errorCode` of the 429 sent over the concurrency limit [I].
    pub concurrency_error_code: String,
    /// Accept RS256 client assertions (older Oracle samples); the current docs allow only PS*/ES*.
    pub allow_rs256: bool,
    /// Token response `expires_in` as the string "3600" (true) or the number 3600 [I].
    pub token_expires_in_as_string: bool,
    /// Lifetime of issued access tokens (seconds), 3600 in NetSuite.
    pub token_lifetime_secs: i64,
    /// Status of a successful create: 204 (documented) or 201 (one doc page).
    pub create_status: u16,
    /// `o:errorCode` for an unknown record id [I].
    pub not_found_code: String,
    /// Reject edits of closed (status H) purchase orders [I].
    pub reject_closed_order_edits: bool,
    /// Record types (`vendor`, `inventoryItem`, `purchaseOrder`, case-insensitive) the
    /// integration's role lacks the permission to create, edit or delete: writes of them are
    /// answered 403 `INSUFFICIENT_PERMISSION`, as a role without the permission is.
    pub denied_record_types: Vec<String>,
    /// SuiteQL: every scalar as a string [I, observed].
    pub suiteql_values_as_strings: bool,
    /// SuiteQL: leave NULL columns out of the row [I, observed].
    pub suiteql_omit_nulls: bool,
    /// SuiteQL: datetime columns shown as the date only (in the user's format), as NetSuite does without TO_CHAR [I].
    pub suiteql_datetime_as_date: bool,
    /// SuiteQL: refuse requests without `Prefer: transient` [I].
    pub suiteql_require_prefer_transient: bool,
    /// SuiteQL: answer single-table queries from the sorted indexes where the planner can prove the
    /// same result (not a NetSuite behaviour: off runs every query through the full evaluation, so
    /// tests can compare the two).
    pub suiteql_use_indexes: bool,
    /// OAuth 2.0 client-credentials (M2M) integrations and their certificates.
    pub m2m_clients: Vec<M2mClient>,
    /// Token-based authentication (OAuth 1.0a) credentials, for TBA clients; `None` disables TBA.
    pub tba: Option<TbaCredentials>,
}

/// One mapping under "OAuth 2.0 Client Credentials (M2M) Setup".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct M2mClient {
    /// Integration record's client ID (the assertion's `iss`).
    pub client_id: String,
    /// The Certificate ID NetSuite shows after upload (the assertion's `kid`).
    pub certificate_id: String,
    /// PEM: an X.509 certificate or a public key (RSA or EC).
    pub certificate_pem: String,
    /// Revoked certificates fail with `invalid_grant`.
    #[serde(default)]
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TbaCredentials {
    pub consumer_key: String,
    pub consumer_secret: String,
    pub token_id: String,
    pub token_secret: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            account_id: "1234567".into(),
            date_format: "M/D/YYYY".into(),
            time_zone: "America/Los_Angeles".into(),
            require_offset_multiple_of_limit: true,
            concurrency_limit: 15,
            concurrency_error_code: "CONCURRENCY_LIMIT_EXCEEDED".into(),
            allow_rs256: false,
            token_expires_in_as_string: true,
            token_lifetime_secs: 3600,
            create_status: 204,
            not_found_code: "NONEXISTENT_ID".into(),
            reject_closed_order_edits: true,
            denied_record_types: Vec::new(),
            suiteql_values_as_strings: true,
            suiteql_omit_nulls: true,
            suiteql_datetime_as_date: true,
            suiteql_require_prefer_transient: false,
            suiteql_use_indexes: true,
            m2m_clients: Vec::new(),
            tba: Some(TbaCredentials {
                consumer_key: "emulator-consumer-key".into(),
                consumer_secret: "emulator-consumer-secret".into(),
                token_id: "emulator-token-id".into(),
                token_secret: "emulator-token-secret".into(),
            }),
        }
    }
}

impl Settings {
    fn validate(&self) -> Result<(), String> {
        if qfilter::DateFormat::parse(&self.date_format).is_none() {
            return Err(format!(
                "date_format {:?} is not one of M/D/YYYY, D/M/YYYY, YYYY-MM-DD, D.M.YYYY",
                self.date_format
            ));
        }
        if TimeZone::parse(&self.time_zone).is_none() {
            return Err(format!(
                "time_zone {:?} is not one of {}",
                self.time_zone,
                TimeZone::names().collect::<Vec<_>>().join(", ")
            ));
        }
        if self.concurrency_limit == 0 {
            return Err("concurrency_limit must be at least 1".into());
        }
        if self.create_status != 204 && self.create_status != 201 {
            return Err("create_status must be 204 or 201".into());
        }
        if !(1..=315_360_000).contains(&self.token_lifetime_secs) {
            return Err("token_lifetime_secs must be between 1 and 315,360,000 (ten years)".into());
        }
        Ok(())
    }

    /// The time zone (validated at start and on every change; UTC if somehow unknown).
    pub fn zone(&self) -> TimeZone {
        TimeZone::parse(&self.time_zone).unwrap_or(TimeZone::UTC)
    }

    /// Account id as it appears in hosts: lowercase, `_` → `-`.
    pub fn account_slug(&self) -> String {
        self.account_id.to_lowercase().replace('_', "-")
    }
}

/// An issued access token.
#[derive(Debug, Clone)]
pub struct Token {
    pub client_id: String,
    pub expires_ms: i64,
    pub generation: u64,
}

/// (query text, data version, resulting keys in order).
pub type CachedQuery = (String, u64, Arc<Vec<u64>>);

pub struct NetSuite {
    pub core: Arc<Core>,
    pub settings: RwLock<Settings>,
    pub tokens: Mutex<HashMap<String, Token>>,
    /// One cached query result (ids in result order), keyed by query text and data version.
    pub cache: Mutex<Option<CachedQuery>>,
}

impl NetSuite {
    pub fn settings(&self) -> Settings {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

pub type Ns = Arc<NetSuite>;

struct Hooks(Ns);

impl SystemHooks for Hooks {
    fn settings(&self) -> Value {
        serde_json::to_value(self.0.settings()).unwrap_or(Value::Null)
    }

    fn patch_settings(&self, patch: Value) -> Result<Value, String> {
        let mut guard = self.0.settings.write().unwrap_or_else(|e| e.into_inner());
        let next: Settings = patch_struct(&*guard, &patch)?;
        next.validate()?;
        *guard = next;
        serde_json::to_value(&*guard).map_err(|e| e.to_string())
    }

    fn credentials(&self) -> Value {
        let s = self.0.settings();
        let g = self.0.core.auth.generation();
        serde_json::json!({
            "revoked": self.0.core.auth.revoked(),
            "generation": g,
            "m2m_clients": s.m2m_clients.iter().map(|c| serde_json::json!({
                "client_id": c.client_id, "certificate_id": c.certificate_id, "revoked": c.revoked,
            })).collect::<Vec<_>>(),
            "tba": s.tba.map(|t| serde_json::json!({
                "consumer_key": t.consumer_key,
                "consumer_secret": t.consumer_secret,
                "token_id": t.token_id,
                "token_secret": rotated_secret(&t.token_secret, g),
            })),
        })
    }
}

pub fn app(core: Arc<Core>, settings: Settings) -> anyhow::Result<Router> {
    settings.validate().map_err(anyhow::Error::msg)?;
    let ns: Ns = Arc::new(NetSuite {
        core: core.clone(),
        settings: RwLock::new(settings),
        tokens: Mutex::new(HashMap::new()),
        cache: Mutex::new(None),
    });
    let gate_state = Gate::new(core.clone(), Arc::new(errors::NsErrors(ns.clone())));
    let api = Router::new()
        .route("/services/rest/auth/oauth2/v1/token", post(auth::token))
        .route("/services/rest/query/v1/suiteql", post(suiteql::handler))
        .route(
            "/services/rest/record/v1/{rtype}",
            get(records::list).post(writes::create),
        )
        .route(
            "/services/rest/record/v1/{rtype}/{id}",
            get(records::get_one)
                .patch(writes::update)
                .put(writes::upsert)
                .delete(writes::delete),
        )
        .route(
            "/services/rest/record/v1/{rtype}/{id}/{sublist}",
            get(records::sublist),
        )
        .route(
            "/services/rest/record/v1/{rtype}/{id}/{sublist}/{line}",
            get(records::sublist_line),
        )
        .fallback(errors::not_found_route)
        .with_state(ns.clone())
        .layer(from_fn_with_state(gate_state, gate));
    let admin_state = AdminState {
        core,
        hooks: Arc::new(Hooks(ns.clone())),
        system: "netsuite",
    };
    let extra = Router::new()
        .route(
            &format!("{}/netsuite/m2m-clients", admin::PREFIX),
            post(auth::register_client),
        )
        .with_state(ns);
    Ok(admin::router(admin_state).merge(extra).merge(api))
}
