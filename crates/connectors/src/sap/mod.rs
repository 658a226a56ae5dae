//! SAP S/4HANA over OData V2: `API_PURCHASEORDER_PROCESS_SRV` (purchase orders with items),
//! `API_BUSINESS_PARTNER` (`A_Supplier`) and `API_PRODUCT_SRV` (`A_Product`). Basic or OAuth 2.0
//! client-credentials auth; reads page by keyset on `(LastChangeDateTime, key)` through
//! `$filter`, so records changed between pages are neither skipped nor repeated; writes use
//! the CSRF handshake (token + session cookies) and a deep insert.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ironbridge_core::Clock;
use ironbridge_core::connector::{
    Connector, ConnectorError, CreateRecords, Extent, OrderWriter, PurchaseOrderLineWrite,
    PurchaseOrderUpdate, PurchaseOrderWrite, RawPage, ReadWindow, Source, SourceRecord,
    UnifiedWrite, UpdateRecords,
};
use ironbridge_core::netguard::Egress;
use ironbridge_core::system::{
    AuthOption, FieldSpec, Limits, Mappings, ReadSpec, SystemDescriptor,
};
use ironbridge_model::api::{DeletionDetection, FieldFormat, ReadKind, SystemId};
use ironbridge_model::{Entity, Timestamp};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Map, Value, json};

pub mod fields;

use crate::client::{UpstreamClient, UpstreamResponse};
use crate::common::{
    Authorize, Fields, Secret, SourceClock, authorized, json_body, json_page, limited_client,
    make_cursor, odata_v2_page, parse_cursor, unexpected, upstream,
};
use crate::sleeper::Sleeper;
use crate::token::{AccessToken, TokenCache};

/// SAP S/4HANA's id.
pub const ID: SystemId = SystemId::from_static("sap_s4hana");

const fn read(entity: Entity, kind: ReadKind) -> ReadSpec {
    ReadSpec {
        entity,
        kind,
        // OData V2 entity sets forget deleted records.
        deletions: DeletionDetection::Reconciliation,
        payload: ironbridge_core::system::Payload::Whole,
        follows_feed: false,
    }
}

const fn optional(name: &'static str, label: &'static str, description: &'static str) -> FieldSpec {
    FieldSpec::text(name, label, description).optional()
}

/// SAP S/4HANA over OData V2.
pub static DESCRIPTOR: SystemDescriptor = SystemDescriptor {
    id: ID,
    name: "SAP S/4HANA",
    auth: &[
        AuthOption {
            id: "basic",
            name: "Basic (communication user)",
            description: "A communication user of a communication arrangement that exposes API_PURCHASEORDER_PROCESS_SRV, API_BUSINESS_PARTNER and API_PRODUCT_SRV (SAP_COM_0053, SAP_COM_0008, SAP_COM_0009 in the cloud editions).",
            fields: &[
                FieldSpec::text("username", "User", "The communication user's name."),
                FieldSpec::text("password", "Password", "The communication user's password.")
                    .secret(),
            ],
        },
        AuthOption {
            id: "oauth_client_credentials",
            name: "OAuth 2.0 client credentials",
            description: "An OAuth 2.0 client of the communication arrangement; Ironbridge fetches tokens at the token URL.",
            fields: &[
                FieldSpec::text("client_id", "Client ID", "The OAuth client's id."),
                FieldSpec::text(
                    "client_secret",
                    "Client secret",
                    "The OAuth client's secret.",
                )
                .secret(),
                FieldSpec::text("token_url", "Token URL", "The token endpoint.")
                    .format(FieldFormat::Url),
            ],
        },
    ],
    settings: &[
        FieldSpec::text(
            "base_url",
            "Base URL",
            "The system's HTTPS root (`https://my123456-api.s4hana.cloud.sap`).",
        )
        .format(FieldFormat::Url),
        optional(
            "sap_client",
            "Client",
            "The SAP client (`sap-client`), when not the default.",
        ),
        FieldSpec::text(
            "page_size",
            "Page size",
            "Records per page, 1 to 5000 (default 500).",
        )
        .optional()
        .format(FieldFormat::Integer),
        optional(
            "purchasing_group",
            "Purchasing group",
            "Of orders Ironbridge creates (default 001).",
        ),
        optional(
            "purchasing_organization",
            "Purchasing organization",
            "Of orders Ironbridge creates.",
        ),
        optional(
            "company_code",
            "Company code",
            "Of orders Ironbridge creates.",
        ),
        optional(
            "purchase_order_type",
            "Order type",
            "Of orders Ironbridge creates (default NB).",
        ),
        optional(
            "business_partner_grouping",
            "Business partner grouping",
            "Of suppliers Ironbridge creates (`BusinessPartnerGrouping`; the system's default when absent).",
        ),
    ],
    reads: &[
        // `A_Supplier` has no change time to filter on.
        read(Entity::VENDOR, ReadKind::Whole),
        read(Entity::ITEM, ReadKind::Windowed),
        read(Entity::PURCHASE_ORDER, ReadKind::Windowed),
    ],
    writes: fields::WRITES,
    limits: Limits {
        concurrency: 4,
        per_second: 0.0,
        burst: 10,
        description: "None are documented for on-premise or private cloud Gateway systems (fair use): at most four calls at once, each a large page, and no separate rate.",
    },
    history_days: Some(90),
    mappings: Mappings::new(&[
        include_str!("../../mappings/sap_s4hana/vendor.json"),
        include_str!("../../mappings/sap_s4hana/item.json"),
        include_str!("../../mappings/sap_s4hana/purchase_order.json"),
    ]),
    build: |ctx| {
        Ok(Arc::new(SapConnector::new(
            ctx.settings,
            ctx.credentials,
            ctx.clock.clone(),
            ctx.sleeper.clone(),
            ctx.egress.clone(),
        )?))
    },
};

const PO_SRV: &str = "/sap/opu/odata/sap/API_PURCHASEORDER_PROCESS_SRV";
const BP_SRV: &str = "/sap/opu/odata/sap/API_BUSINESS_PARTNER";
const PRODUCT_SRV: &str = "/sap/opu/odata/sap/API_PRODUCT_SRV";
const DEFAULT_PAGE_SIZE: u64 = 500;

const SETTINGS: &[&str] = &[
    "base_url",
    "sap_client",
    "sap-client",
    "page_size",
    "purchasing_group",
    "purchasing_organization",
    "company_code",
    "purchase_order_type",
    "business_partner_grouping",
];
const CREDENTIALS: &[&str] = &[
    "username",
    "password",
    "client_id",
    "client_secret",
    "token_url",
];

enum Auth {
    Basic {
        username: String,
        password: Secret,
    },
    OAuth {
        client_id: String,
        client_secret: Secret,
        token_url: String,
        cache: TokenCache,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"***")
                .finish(),
            Auth::OAuth {
                client_id,
                token_url,
                ..
            } => f
                .debug_struct("OAuth")
                .field("client_id", client_id)
                .field("client_secret", &"***")
                .field("token_url", token_url)
                .finish(),
        }
    }
}

/// Session cookies and the CSRF token that goes with them.
#[derive(Clone)]
struct Csrf {
    token: String,
    cookies: String,
}

/// The SAP S/4HANA connector of one connection.
pub struct SapConnector {
    base_url: String,
    sap_client: Option<String>,
    page_size: u64,
    purchasing_group: String,
    purchasing_organization: Option<String>,
    company_code: Option<String>,
    purchase_order_type: String,
    business_partner_grouping: Option<String>,
    auth: Auth,
    client: UpstreamClient,
    clock: Arc<dyn Clock>,
    csrf: tokio::sync::Mutex<Option<Csrf>>,
    source_clock: SourceClock,
}

impl std::fmt::Debug for SapConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SapConnector")
            .field("base_url", &self.base_url)
            .field("sap_client", &self.sap_client)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

fn odata_ms(v: &Value) -> Option<i64> {
    let s = v.as_str()?.strip_prefix("/Date(")?.strip_suffix(")/")?;
    let end = s.get(1..)?.find(['+', '-']).map_or(s.len(), |i| i + 1);
    s[..end].parse().ok()
}

fn literal(ms: i64) -> String {
    format!(
        "datetimeoffset'{}'",
        Timestamp(ms.saturating_mul(1000)).to_rfc3339()
    )
}

/// Where a windowed read continues with the records that have no change time (SAP leaves
/// `LastChangeDateTime` null on orders nothing has changed since they were created, as
/// recorded sandbox payloads show): `n1|`, then `n1|<last key read>`.
const UNSET_PHASE: &str = "n1|";

/// How long after its creation date a record without a change time counts as changed: a
/// window of change times `[a, b]` reads those created `[a - UNSET_LAG, b - UNSET_LAG]`, so
/// the slices of a pass share them out without overlap, and a record created late on its
/// date in a zone far west of UTC is already there when its window is read (two days cover
/// every zone).
const UNSET_LAG_MICROS: i64 = 2 * 86_400_000_000;

/// A `datetime'…'` literal of `CreationDate` (a date, compared as its midnight) for the
/// instant `at` minus the lag, in whole seconds rounded up (a lower bound) or down.
fn creation_bound(at: Timestamp, up: bool) -> String {
    const SECOND: i64 = 1_000_000;
    let t = at.micros().saturating_sub(UNSET_LAG_MICROS);
    let secs = if up {
        t.div_euclid(SECOND) + i64::from(t.rem_euclid(SECOND) != 0)
    } else {
        t.div_euclid(SECOND)
    };
    let text = Timestamp(secs.saturating_mul(SECOND)).to_rfc3339();
    format!("datetime'{}'", &text[..19])
}

struct Spec {
    service: &'static str,
    set: &'static str,
    key: &'static str,
    time: Option<&'static str>,
    expand: Option<&'static str>,
}

fn spec(entity: Entity) -> Option<Spec> {
    Some(if entity == Entity::PURCHASE_ORDER {
        Spec {
            service: PO_SRV,
            set: "A_PurchaseOrder",
            key: "PurchaseOrder",
            time: Some("LastChangeDateTime"),
            expand: Some("to_PurchaseOrderItem"),
        }
    } else if entity == Entity::VENDOR {
        Spec {
            service: BP_SRV,
            set: "A_Supplier",
            key: "Supplier",
            time: None,
            expand: None,
        }
    } else if entity == Entity::ITEM {
        Spec {
            service: PRODUCT_SRV,
            set: "A_Product",
            key: "Product",
            time: Some("LastChangeDateTime"),
            expand: Some("to_Description"),
        }
    } else {
        return None;
    })
}

/// The purchase-order field a create's reference is written to and found by: "Your
/// Reference" (`EKKO-IHREZ`), `Edm.String` of `MaxLength` 12, filterable.
const REFERENCE_FIELD: &str = "CorrespncExternalReference";

fn quote(key: &str) -> String {
    format!("'{}'", key.replace('\'', "''"))
}

/// The SAP error body's code and message (`{"error":{"code","message":{"value"}}}`).
fn sap_error(body: &[u8]) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = v.get("error")?;
    let code = e.get("code")?.as_str()?.to_string();
    let message = e
        .pointer("/message/value")
        .or_else(|| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Some((code, message))
}

fn decimal_text(d: &rust_decimal::Decimal) -> String {
    d.normalize().to_string()
}

impl SapConnector {
    fn new(
        settings: &Map<String, Value>,
        credentials: Option<&Map<String, Value>>,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
        egress: Egress,
    ) -> Result<Self, ConnectorError> {
        let s = Fields::new(Some(settings), "settings", SETTINGS)?;
        let base_url = s.url("base_url", true)?.unwrap_or_default();
        let sap_client = match s.opt("sap_client")? {
            Some(c) => Some(c),
            None => s.opt("sap-client")?,
        };
        let page_size = s.num("page_size", 1..=5000)?.unwrap_or(DEFAULT_PAGE_SIZE);
        let c = Fields::new(credentials, "credentials", CREDENTIALS)?;
        let auth = if c.has("client_id") || c.has("client_secret") || c.has("token_url") {
            if c.has("username") || c.has("password") {
                return Err(c.invalid(
                    "username",
                    "give either username/password or client_id/client_secret/token_url",
                ));
            }
            Auth::OAuth {
                client_id: c.req("client_id")?,
                client_secret: Secret(c.req("client_secret")?),
                token_url: c.url("token_url", true)?.unwrap_or_default(),
                cache: TokenCache::default(),
            }
        } else {
            Auth::Basic {
                username: c.req("username")?,
                password: Secret(c.req("password")?),
            }
        };
        let client = limited_client(
            &DESCRIPTOR.limits,
            Duration::from_secs(120),
            clock.clone(),
            sleeper,
            egress,
        )?;
        Ok(SapConnector {
            base_url,
            sap_client,
            page_size,
            purchasing_group: s.opt("purchasing_group")?.unwrap_or_else(|| "001".into()),
            purchasing_organization: s.opt("purchasing_organization")?,
            company_code: s.opt("company_code")?,
            purchase_order_type: s.opt("purchase_order_type")?.unwrap_or_else(|| "NB".into()),
            business_partner_grouping: s.opt("business_partner_grouping")?,
            auth,
            client,
            clock,
            csrf: tokio::sync::Mutex::new(None),
            source_clock: SourceClock::default(),
        })
    }

    async fn fetch_token(
        &self,
        client_id: &str,
        secret: &Secret,
        token_url: &str,
    ) -> Result<AccessToken, ConnectorError> {
        let response = self
            .client
            .send(|http| {
                http.post(token_url)
                    .basic_auth(client_id, Some(&secret.0))
                    .form(&[("grant_type", "client_credentials")])
            })
            .await
            .map_err(upstream)?;
        match response.status {
            200 => {}
            400 | 401 | 403 => return Err(ConnectorError::Unauthorized),
            _ => return Err(unexpected("token endpoint", &response)),
        }
        let body = json_body("token endpoint", &response)?;
        let value = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| ConnectorError::Upstream("token endpoint: no access_token".into()))?;
        let expires_in = body
            .get("expires_in")
            .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
            .unwrap_or(3600);
        Ok(AccessToken {
            value: value.to_string(),
            expires_at: self.clock.now().plus_secs(expires_in),
        })
    }

    /// The `Authorization` header value.
    async fn authorization(&self) -> Result<String, ConnectorError> {
        match &self.auth {
            Auth::Basic { username, password } => {
                use base64::Engine;
                let raw = format!("{username}:{}", password.0);
                Ok(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                ))
            }
            Auth::OAuth {
                client_id,
                client_secret,
                token_url,
                cache,
            } => {
                let token = cache
                    .get(self.clock.as_ref(), || {
                        self.fetch_token(client_id, client_secret, token_url)
                    })
                    .await?;
                Ok(format!("Bearer {}", token.value))
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Sends one call with auth, `sap-client`, JSON and optional CSRF (see
    /// `authorized_call`). A `POST` creates something, so it is never sent again once it may
    /// have reached SAP (`authorized_write`).
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        headers: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<UpstreamResponse, ConnectorError> {
        let url = self.url(path);
        let write = method == Method::POST;
        authorized(
            &self.client,
            self,
            &self.source_clock,
            |http| {
                let mut r = http
                    .request(method.clone(), &url)
                    .header("accept", "application/json");
                let mut q: Vec<(&str, &str)> =
                    query.iter().map(|(k, v)| (*k, v.as_str())).collect();
                if let Some(c) = &self.sap_client {
                    q.push(("sap-client", c.as_str()));
                }
                if !q.is_empty() {
                    r = r.query(&q);
                }
                for (k, v) in headers {
                    r = r.header(*k, v);
                }
                if let Some(b) = body {
                    r = r.json(b);
                }
                r
            },
            upstream,
            write,
        )
        .await
    }

    async fn get_json(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Value, ConnectorError> {
        let response = self.call(Method::GET, path, query, &[], None).await?;
        match response.status {
            200 => json_page(path, &response).await,
            404 => Err(ConnectorError::NotFound),
            _ => Err(self.error(&response, None)),
        }
    }

    /// One page of `spec`'s set: the records `filters` (all of them) select in `orderby`
    /// order, expanded as the spec says.
    async fn read_page(
        &self,
        spec: &Spec,
        filters: &[String],
        orderby: String,
    ) -> Result<(Vec<SourceRecord>, bool), ConnectorError> {
        let mut query = vec![
            ("$orderby", orderby),
            ("$top", self.page_size.to_string()),
            ("$format", "json".to_string()),
        ];
        if !filters.is_empty() {
            query.push(("$filter", filters.join(" and ")));
        }
        if let Some(e) = spec.expand {
            query.push(("$expand", e.to_string()));
        }
        self.get_page(&format!("{}/{}", spec.service, spec.set), &query)
            .await
    }

    /// A page of records, cut out of the answer as its text, and whether more follow (a
    /// next link, or a full page).
    async fn get_page(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<(Vec<SourceRecord>, bool), ConnectorError> {
        let response = self.call(Method::GET, path, query, &[], None).await?;
        if response.status != 200 {
            return Err(match response.status {
                404 => ConnectorError::NotFound,
                _ => self.error(&response, None),
            });
        }
        let (records, next) = odata_v2_page(path, &response)
            .await?
            .ok_or_else(|| ConnectorError::Upstream("SAP answer without `d`".into()))?;
        let more = next || records.len() as u64 >= self.page_size;
        Ok((records, more))
    }

    /// Maps an error answer. `write` gives the lines of a write, to place item errors.
    fn error(
        &self,
        response: &UpstreamResponse,
        write: Option<&[PurchaseOrderLineWrite]>,
    ) -> ConnectorError {
        let Some((code, message)) = sap_error(&response.body) else {
            return unexpected("SAP", response);
        };
        let param = match code.as_str() {
            "ME/045" | "ME/046" | "ME/081" => Some("vendor_id".to_string()),
            "ME/062" => write.and_then(|lines| {
                lines
                    .iter()
                    .position(|l| message.contains(&format!("Material {} ", l.item_remote_id)))
                    .map(|i| format!("line_items[{i}].item_id"))
            }),
            "ME/069" => Some("line_items".into()),
            "ME/039" => Some("location_id".into()),
            "ME/702" => Some("line_items".into()),
            _ => None,
        };
        match (response.status, code.as_str()) {
            (404, _) => ConnectorError::NotFound,
            // The communication user lacks an authorization (the CSRF refusal, also a 403,
            // never reaches here: `modify` fetches a new token for it).
            (403, _) => ConnectorError::Forbidden {
                remote_code: code,
                message,
            },
            (_, "06/028") | (412, _) | (428, _) => ConnectorError::State {
                remote_code: code,
                message,
            },
            (400, _) => ConnectorError::BusinessRule {
                remote_code: code,
                message,
                param,
            },
            _ => ConnectorError::Upstream(format!("SAP answered {} {code}", response.status)),
        }
    }

    /// Fetches a CSRF token and session cookies (or reuses the ones held).
    async fn csrf(&self, refresh: bool) -> Result<Csrf, ConnectorError> {
        let mut held = self.csrf.lock().await;
        if !refresh && let Some(c) = held.as_ref() {
            return Ok(c.clone());
        }
        let path = format!("{PO_SRV}/");
        let response = self
            .call(
                Method::GET,
                &path,
                &[],
                &[("x-csrf-token", "Fetch".to_string())],
                None,
            )
            .await?;
        if response.status != 200 {
            return Err(unexpected("CSRF token fetch", &response));
        }
        let token = response
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .filter(|t| !t.eq_ignore_ascii_case("required"))
            .ok_or_else(|| ConnectorError::Upstream("SAP gave no CSRF token".into()))?
            .to_string();
        let cookies = cookie_header(&response.headers);
        let csrf = Csrf { token, cookies };
        *held = Some(csrf.clone());
        Ok(csrf)
    }

    /// A modifying call with the CSRF token; a 403 `Required` fetches a new token once.
    async fn modify(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<UpstreamResponse, ConnectorError> {
        let mut refresh = false;
        loop {
            let csrf = self.csrf(refresh).await?;
            let mut headers = vec![("x-csrf-token", csrf.token.clone())];
            if !csrf.cookies.is_empty() {
                headers.push(("cookie", csrf.cookies.clone()));
            }
            let response = self.call(method.clone(), path, &[], &headers, body).await?;
            let required = response.status == 403
                && response
                    .headers
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.eq_ignore_ascii_case("required"));
            if required && !refresh {
                refresh = true;
                continue;
            }
            if required {
                return Err(ConnectorError::Upstream(
                    "SAP refused the CSRF token twice".into(),
                ));
            }
            return Ok(response);
        }
    }

    fn item_body(&self, line: &PurchaseOrderLineWrite, plant: Option<&str>) -> Value {
        let mut item = Map::new();
        item.insert("Material".into(), json!(line.item_remote_id));
        item.insert("OrderQuantity".into(), json!(decimal_text(&line.quantity)));
        if let Some(p) = &line.unit_price {
            item.insert("NetPriceAmount".into(), json!(decimal_text(p)));
        }
        if let Some(d) = &line.description {
            item.insert("PurchaseOrderItemText".into(), json!(d));
        }
        if let Some(u) = &line.unit_of_measure {
            item.insert("PurchaseOrderQuantityUnit".into(), json!(u));
        }
        if let Some(p) = plant {
            item.insert("Plant".into(), json!(p));
        }
        Value::Object(item)
    }

    /// A refused supplier or product write, on unified field names.
    fn record_error(&self, entity: Entity, response: &UpstreamResponse) -> ConnectorError {
        match self.error(response, None) {
            ConnectorError::BusinessRule {
                remote_code,
                message,
                ..
            } => ConnectorError::BusinessRule {
                param: record_param(entity, &remote_code, &message),
                remote_code,
                message,
            },
            other => other,
        }
    }

    /// A modifying call that must answer `ok` (else the refusal, on unified names).
    async fn modify_record(
        &self,
        entity: Entity,
        method: Method,
        path: &str,
        body: Option<&Value>,
        ok: &[u16],
    ) -> Result<UpstreamResponse, ConnectorError> {
        let response = self.modify(method, path, body).await?;
        if ok.contains(&response.status) {
            Ok(response)
        } else {
            Err(self.record_error(entity, &response))
        }
    }

    /// One supplier as a sync reads it.
    async fn read_supplier(&self, key: &str) -> Result<Value, ConnectorError> {
        let path = format!("{BP_SRV}/A_Supplier({})", quote(key));
        let v = self.get_json(&path, &[]).await?;
        v.get("d")
            .cloned()
            .ok_or_else(|| ConnectorError::Upstream("SAP answer without `d`".into()))
    }

    /// One product as a sync reads it (with its descriptions).
    async fn read_product(&self, key: &str) -> Result<Value, ConnectorError> {
        let path = format!("{PRODUCT_SRV}/A_Product({})", quote(key));
        let v = self
            .get_json(&path, &[("$expand", "to_Description".into())])
            .await?;
        v.get("d")
            .cloned()
            .ok_or_else(|| ConnectorError::Upstream("SAP answer without `d`".into()))
    }

    /// The product properties of a write: the read mapping run backwards (the name, read
    /// from the first description, is written to `to_Description` by the caller), flags as
    /// booleans.
    fn product_body(write: &UnifiedWrite) -> Result<Map<String, Value>, ConnectorError> {
        let mut fields = write.fields.clone();
        fields.remove("name");
        let def = DESCRIPTOR
            .mapping(Entity::ITEM)
            .ok_or_else(|| ConnectorError::Unsupported("SAP has no product mapping".into()))?;
        let reversed = def.reverse(&fields);
        if let Some(left) = reversed.left.first() {
            return Err(ConnectorError::Unsupported(format!(
                "Ironbridge cannot write `{left}` to an SAP product"
            )));
        }
        let mut body = reversed.source;
        if let Some(Value::String(flag)) = body.get("IsMarkedForDeletion") {
            let flag = flag == "true";
            body.insert("IsMarkedForDeletion".into(), Value::Bool(flag));
        }
        Ok(body)
    }

    /// Creates a product with its English description in one deep insert.
    async fn create_product(&self, write: &UnifiedWrite) -> Result<Value, ConnectorError> {
        let mut body = Self::product_body(write)?;
        let key = write.text("code").unwrap_or_default();
        if let Some(name) = write.text("name") {
            body.insert(
                "to_Description".into(),
                json!([{"Product": key, "Language": "EN", "ProductDescription": name}]),
            );
        }
        let body = Value::Object(body);
        self.modify_record(
            Entity::ITEM,
            Method::POST,
            &format!("{PRODUCT_SRV}/A_Product"),
            Some(&body),
            &[201],
        )
        .await?;
        // Created: a failed read-back leaves the caller without the record, not the write.
        self.read_product(&key).await.map_err(|e| {
            ConnectorError::OutcomeUnknown(format!(
                "SAP created product {key} but reading it back failed: {e}"
            ))
        })
    }

    /// Updates a product's properties and its English description.
    async fn update_product(
        &self,
        key: &str,
        write: &UnifiedWrite,
    ) -> Result<Value, ConnectorError> {
        let body = Self::product_body(write)?;
        let product = format!("{PRODUCT_SRV}/A_Product({})", quote(key));
        if !body.is_empty() {
            let body = Value::Object(body);
            self.modify_record(
                Entity::ITEM,
                Method::PATCH,
                &product,
                Some(&body),
                &[200, 204],
            )
            .await?;
        }
        if let Some(name) = write.text("name") {
            let path = format!(
                "{PRODUCT_SRV}/A_ProductDescription(Product={},Language='EN')",
                quote(key)
            );
            let body = json!({"ProductDescription": name});
            self.modify_record(Entity::ITEM, Method::PATCH, &path, Some(&body), &[200, 204])
                .await?;
        }
        self.read_product(key).await
    }

    /// Creates a supplier: a business partner (an organization) in the supplier roles, with
    /// its supplier data, in one deep insert of `A_BusinessPartner`.
    async fn create_supplier(&self, write: &UnifiedWrite) -> Result<Value, ConnectorError> {
        let mut body = Map::new();
        body.insert("BusinessPartnerCategory".into(), json!("2"));
        if let Some(g) = &self.business_partner_grouping {
            body.insert("BusinessPartnerGrouping".into(), json!(g));
        }
        if let Some(name) = write.text("name") {
            body.insert("OrganizationBPName1".into(), json!(name));
        }
        body.insert(
            "to_BusinessPartnerRole".into(),
            json!([{"BusinessPartnerRole": "FLVN00"}, {"BusinessPartnerRole": "FLVN01"}]),
        );
        let mut supplier = Map::new();
        if let Some(status) = write.text("status") {
            supplier.insert("PurchasingIsBlocked".into(), json!(status == "inactive"));
        }
        body.insert("to_Supplier".into(), Value::Object(supplier));
        let body = Value::Object(body);
        let response = self
            .modify_record(
                Entity::VENDOR,
                Method::POST,
                &format!("{BP_SRV}/A_BusinessPartner"),
                Some(&body),
                &[201],
            )
            .await?;
        let created = json_body("create", &response).map_err(|_| {
            ConnectorError::OutcomeUnknown(
                "SAP created the business partner; its answer is unreadable".into(),
            )
        })?;
        let key = created
            .pointer("/d/Supplier")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .or_else(|| {
                created
                    .pointer("/d/BusinessPartner")
                    .and_then(Value::as_str)
            })
            .ok_or_else(|| {
                ConnectorError::OutcomeUnknown(
                    "SAP created the business partner without a key".into(),
                )
            })?
            .to_string();
        self.read_supplier(&key).await.map_err(|e| {
            ConnectorError::OutcomeUnknown(format!(
                "SAP created supplier {key} but reading it back failed: {e}"
            ))
        })
    }

    /// Updates a supplier: its purchasing block on `A_Supplier`, its name on the business
    /// partner that carries it.
    async fn update_supplier(
        &self,
        key: &str,
        write: &UnifiedWrite,
    ) -> Result<Value, ConnectorError> {
        if let Some(name) = write.text("name") {
            let found = self
                .get_json(
                    &format!("{BP_SRV}/A_BusinessPartner"),
                    &[
                        ("$filter", format!("Supplier eq {}", quote(key))),
                        ("$select", "BusinessPartner".into()),
                        ("$top", "1".into()),
                        ("$format", "json".into()),
                    ],
                )
                .await?;
            let partner = found
                .pointer("/d/results/0/BusinessPartner")
                .and_then(Value::as_str)
                .ok_or(ConnectorError::NotFound)?
                .to_string();
            let body = json!({"OrganizationBPName1": name});
            self.modify_record(
                Entity::VENDOR,
                Method::PATCH,
                &format!("{BP_SRV}/A_BusinessPartner({})", quote(&partner)),
                Some(&body),
                &[200, 204],
            )
            .await?;
        }
        if let Some(status) = write.text("status") {
            let body = json!({"PurchasingIsBlocked": status == "inactive"});
            self.modify_record(
                Entity::VENDOR,
                Method::PATCH,
                &format!("{BP_SRV}/A_Supplier({})", quote(key)),
                Some(&body),
                &[200, 204],
            )
            .await?;
        }
        self.read_supplier(key).await
    }

    async fn read_order(&self, key: &str) -> Result<Value, ConnectorError> {
        let path = format!("{PO_SRV}/A_PurchaseOrder({})", quote(key));
        let v = self
            .get_json(&path, &[("$expand", "to_PurchaseOrderItem".into())])
            .await?;
        v.get("d")
            .cloned()
            .ok_or_else(|| ConnectorError::Upstream("SAP answer without `d`".into()))
    }
}

/// The unified field a supplier or product error names: a property quoted in the message
/// (`Property 'BaseUnit' is invalid`) through the read mapping, or the key for a duplicate.
fn record_param(entity: Entity, code: &str, message: &str) -> Option<String> {
    if DUPLICATE_CODES.contains(&code) {
        return Some("code".into());
    }
    let property = message.split('\'').nth(1)?;
    match property {
        "OrganizationBPName1" | "BusinessPartnerFullName" => return Some("name".into()),
        "ProductDescription" => return Some("name".into()),
        _ => {}
    }
    DESCRIPTOR
        .mapping(entity)?
        .fields
        .iter()
        .find(|(_, rule)| rule.path.as_deref() == Some(property))
        .map(|(name, _)| name.clone())
}

/// Codes of "already exists" answers of the product and business-partner APIs.
const DUPLICATE_CODES: &[&str] = &["M3/351", "R11/124"];

/// `name=value` pairs of every `Set-Cookie`, as a `Cookie` header.
fn cookie_header(headers: &HeaderMap) -> String {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::trim)
        .filter(|v| v.contains('='))
        .collect::<Vec<_>>()
        .join("; ")
}

#[async_trait]
impl Authorize for SapConnector {
    async fn authorization(&self) -> Result<String, ConnectorError> {
        self.authorization().await
    }

    async fn refused(&self) -> bool {
        match &self.auth {
            // A cached token may have been revoked early: one more try with a fresh one.
            Auth::OAuth { cache, .. } => {
                cache.invalidate().await;
                true
            }
            Auth::Basic { .. } => false,
        }
    }
}

impl Connector for SapConnector {
    fn descriptor(&self) -> &'static SystemDescriptor {
        &DESCRIPTOR
    }

    fn circuit_state(&self) -> ironbridge_model::api::CircuitState {
        self.client.breaker().state()
    }

    fn creates(&self) -> Option<&dyn CreateRecords> {
        Some(self)
    }

    fn updates(&self) -> Option<&dyn UpdateRecords> {
        Some(self)
    }
}

impl SapConnector {
    /// The records of a window that have no change time, by key: those whose creation date
    /// falls in the window shifted back by [`UNSET_LAG_MICROS`] (no lower bound when the
    /// window has none). The slices of a pass partition them as they partition the others,
    /// and a new one is read by the first sync whose window reaches two days past its date.
    async fn fetch_unset(
        &self,
        spec: &Spec,
        tp: &str,
        window: &ReadWindow,
        after: Option<&str>,
    ) -> Result<RawPage, ConnectorError> {
        let mut filters = vec![format!("{tp} eq null")];
        if let Some(since) = window.modified_since {
            filters.push(format!("CreationDate ge {}", creation_bound(since, true)));
        }
        if let Some(until) = window.modified_until {
            filters.push(format!("CreationDate le {}", creation_bound(until, false)));
        }
        if let Some(key) = after {
            filters.push(format!("{} gt {}", spec.key, quote(key)));
        }
        let (records, more) = self.read_page(spec, &filters, spec.key.to_string()).await?;
        let next_cursor = match records.last() {
            Some(last) if more => {
                let (key, _) = position(spec, None, last)?;
                Some(format!("{UNSET_PHASE}{key}"))
            }
            _ => None,
        };
        Ok(RawPage::new(records, next_cursor))
    }
}

/// The key and (with `time`) the change time in milliseconds of a page's last record: the
/// keyset cursor's position. Only this record is parsed.
fn position(
    spec: &Spec,
    time: Option<&str>,
    last: &SourceRecord,
) -> Result<(String, Option<i64>), ConnectorError> {
    let record = last
        .parse()
        .map_err(|_| ConnectorError::Upstream("SAP record is not JSON".into()))?;
    let key = record
        .get(spec.key)
        .and_then(Value::as_str)
        .ok_or_else(|| ConnectorError::Upstream("SAP record without key".into()))?;
    let t = match time {
        Some(tp) => Some(
            record
                .get(tp)
                .and_then(odata_ms)
                .ok_or_else(|| ConnectorError::Upstream(format!("SAP record without {tp}")))?,
        ),
        None => None,
    };
    Ok((key.to_string(), t))
}

#[async_trait]
impl Source for SapConnector {
    /// The service's `$metadata`: the entity type's properties (a purchase order's items
    /// under `line_items`), at the top of each stored record as OData V2 sends them.
    async fn describe_fields(
        &self,
        entity: Entity,
    ) -> Result<Option<Vec<ironbridge_core::connector::DescribedField>>, ConnectorError> {
        let Some(spec) = spec(entity) else {
            return Ok(None);
        };
        let response = self
            .call(
                Method::GET,
                &format!("{}/$metadata", spec.service),
                &[],
                &[],
                None,
            )
            .await?;
        if response.status != 200 {
            return Err(self.error(&response, None));
        }
        let xml = String::from_utf8_lossy(&response.body);
        let mut fields = crate::edmx::properties(&xml, &format!("{}Type", spec.set), "record");
        if entity == Entity::PURCHASE_ORDER {
            fields.extend(crate::edmx::properties(
                &xml,
                "A_PurchaseOrderItemType",
                "line_items",
            ));
        }
        Ok(Some(fields))
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        self.get_json(
            &format!("{PO_SRV}/A_PurchaseOrder"),
            &[("$top", "1".into()), ("$select", "PurchaseOrder".into())],
        )
        .await
        .map(|_| ())
    }

    async fn fetch_page(
        &self,
        entity: Entity,
        window: &ReadWindow,
        cursor: Option<&str>,
    ) -> Result<RawPage, ConnectorError> {
        let Some(spec) = spec(entity) else {
            return Err(ConnectorError::Unsupported(format!(
                "SAP S/4HANA has no {entity} read"
            )));
        };
        if let (Some(tp), Some(rest)) =
            (spec.time, cursor.and_then(|c| c.strip_prefix(UNSET_PHASE)))
        {
            let after = (!rest.is_empty()).then_some(rest);
            return self.fetch_unset(&spec, tp, window, after).await;
        }
        let after = cursor.map(parse_cursor).transpose()?;
        let mut filters = Vec::new();
        if let Some(tp) = spec.time {
            if window.modified_since.is_none() {
                // Records without a change time are read after the others (`fetch_unset`):
                // a keyset on the change time cannot hold them.
                filters.push(format!("{tp} ne null"));
            }
            if let Some(since) = window.modified_since {
                // Whole milliseconds: round the lower bound up so nothing before it is read.
                let ms = since.micros().div_euclid(1000)
                    + i64::from(since.micros().rem_euclid(1000) != 0);
                filters.push(format!("{tp} ge {}", literal(ms)));
            }
            if let Some(until) = window.modified_until {
                filters.push(format!(
                    "{tp} le {}",
                    literal(until.micros().div_euclid(1000))
                ));
            }
            if let Some((t, key)) = &after {
                let t = t.ok_or_else(|| ConnectorError::InvalidSettings {
                    param: "cursor".into(),
                    message: "the cursor is not one this connector issued".into(),
                })?;
                filters.push(format!(
                    "({tp} gt {lit} or ({tp} eq {lit} and {k} gt {q}))",
                    lit = literal(t),
                    k = spec.key,
                    q = quote(key)
                ));
            }
        } else if let Some((_, key)) = &after {
            filters.push(format!("{} gt {}", spec.key, quote(key)));
        }
        let orderby = match spec.time {
            Some(tp) => format!("{tp},{}", spec.key),
            None => spec.key.to_string(),
        };
        let (records, more) = self.read_page(&spec, &filters, orderby).await?;
        let next_cursor = match records.last() {
            Some(last) if more => {
                let (key, t) = position(&spec, spec.time, last)?;
                Some(make_cursor(t, &key))
            }
            // The records with a change time are read: those without one follow.
            _ if spec.time.is_some() => Some(UNSET_PHASE.to_string()),
            _ => None,
        };
        Ok(RawPage::new(records, next_cursor))
    }

    /// Our clock corrected by the offset the source's last `Date` showed.
    async fn source_time(&self) -> Result<Option<Timestamp>, ConnectorError> {
        Ok(self.source_clock.at(self.clock.now()))
    }

    /// Pages are keysets on `(LastChangeDateTime, key)` bounded by the window each request
    /// is given.
    fn cursor_position(&self, entity: Entity, cursor: &str) -> Option<Timestamp> {
        spec(entity)?.time?;
        if cursor.starts_with(UNSET_PHASE) {
            // Records without a change time have no position in the window.
            return None;
        }
        let (ms, _) = parse_cursor(cursor).ok()?;
        Some(Timestamp(ms?.checked_mul(1000)?))
    }

    /// The oldest change and, by `$inlinecount=allpages` in the same request, how many
    /// records have one (those without are read by key after them).
    async fn extent(&self, entity: Entity) -> Result<Extent, ConnectorError> {
        let Some(Spec {
            service,
            set,
            time: Some(tp),
            ..
        }) = spec(entity)
        else {
            return Ok(Extent::default());
        };
        let body = self
            .get_json(
                &format!("{service}/{set}"),
                &[
                    ("$filter", format!("{tp} ne null")),
                    ("$orderby", tp.to_string()),
                    ("$top", "1".into()),
                    ("$select", tp.to_string()),
                    ("$inlinecount", "allpages".into()),
                    ("$format", "json".into()),
                ],
            )
            .await?;
        Ok(Extent {
            oldest: body
                .pointer("/d/results/0")
                .and_then(|r| r.get(tp))
                .and_then(odata_ms)
                .map(|ms| Timestamp(ms.saturating_mul(1000))),
            // OData V2 sends the count as a string.
            pages: body
                .pointer("/d/__count")
                .and_then(Value::as_str)
                .and_then(|n| n.parse::<u64>().ok())
                .map(|n| n.div_ceil(self.page_size)),
        })
    }
}

#[async_trait]
impl OrderWriter for SapConnector {
    /// Creates an order with its items in one deep insert; the reference goes in
    /// `CorrespncExternalReference` ("Your Reference").
    async fn create_order(
        &self,
        order: &PurchaseOrderWrite,
        unified: &UnifiedWrite,
    ) -> Result<Value, ConnectorError> {
        let mut body = Map::new();
        body.insert("PurchaseOrderType".into(), json!(self.purchase_order_type));
        body.insert("Supplier".into(), json!(order.vendor_remote_id));
        body.insert("PurchasingGroup".into(), json!(self.purchasing_group));
        if let Some(o) = &self.purchasing_organization {
            body.insert("PurchasingOrganization".into(), json!(o));
        }
        if let Some(c) = &self.company_code {
            body.insert("CompanyCode".into(), json!(c));
        }
        if let Some(c) = &order.currency {
            body.insert("DocumentCurrency".into(), json!(c));
        }
        if let Some(d) = &order.order_date {
            let at = Timestamp::parse_rfc3339(&format!("{d}T00:00:00Z")).ok_or_else(|| {
                ConnectorError::BusinessRule {
                    remote_code: "INVALID_DATE".into(),
                    message: format!("order date {d} is not a YYYY-MM-DD date"),
                    param: Some("order_date".into()),
                }
            })?;
            body.insert(
                "PurchaseOrderDate".into(),
                json!(format!("/Date({})/", at.micros() / 1000)),
            );
        }
        if let Some(n) = &order.number {
            body.insert("PurchaseOrder".into(), json!(n));
        }
        for (k, v) in &order.custom_fields {
            body.insert(k.clone(), v.clone());
        }
        // After the custom fields: the reference is what the order is found by.
        if let Some(r) = &unified.reference {
            body.insert(REFERENCE_FIELD.into(), json!(r));
        }
        let plant = order.location_remote_id.as_deref();
        let items: Vec<Value> = order
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let mut item = self.item_body(l, plant);
                if let Value::Object(m) = &mut item {
                    m.insert(
                        "PurchaseOrderItem".into(),
                        json!(((i + 1) * 10).to_string()),
                    );
                }
                item
            })
            .collect();
        body.insert("to_PurchaseOrderItem".into(), Value::Array(items));
        let body = Value::Object(body);
        let response = self
            .modify(
                Method::POST,
                &format!("{PO_SRV}/A_PurchaseOrder"),
                Some(&body),
            )
            .await?;
        if response.status != 201 {
            return Err(self.error(&response, Some(&order.lines)));
        }
        // Created: an answer that cannot be read leaves the caller without the record, not
        // without the write, so it is reconciled by its reference rather than written again.
        json_body("create", &response)
            .ok()
            .and_then(|created| created.get("d").cloned())
            .ok_or_else(|| {
                ConnectorError::OutcomeUnknown(
                    "SAP created the order; its answer is unreadable".into(),
                )
            })
    }

    /// The order whose `CorrespncExternalReference` is the reference: one filtered read with
    /// its items, the oldest first if a person typed the same text into another order.
    async fn find_order(&self, reference: &str) -> Result<Option<Value>, ConnectorError> {
        let body = self
            .get_json(
                &format!("{PO_SRV}/A_PurchaseOrder"),
                &[
                    (
                        "$filter",
                        format!("{REFERENCE_FIELD} eq {}", quote(reference)),
                    ),
                    ("$expand", "to_PurchaseOrderItem".into()),
                    ("$orderby", "PurchaseOrder".into()),
                    ("$top", "1".into()),
                    ("$format", "json".into()),
                ],
            )
            .await?;
        Ok(body.pointer("/d/results/0").cloned())
    }

    /// Creates a supplier (a business partner in the supplier roles) or a product.
    async fn create_record(
        &self,
        entity: Entity,
        write: &UnifiedWrite,
    ) -> Result<Value, ConnectorError> {
        if entity == Entity::VENDOR {
            self.create_supplier(write).await
        } else if entity == Entity::ITEM {
            self.create_product(write).await
        } else {
            Err(ConnectorError::Unsupported(format!(
                "SAP S/4HANA cannot create {} records through Ironbridge",
                entity.spec().label
            )))
        }
    }

    /// Updates a supplier or a product.
    async fn update_record(
        &self,
        entity: Entity,
        remote_id: &str,
        changes: &UnifiedWrite,
    ) -> Result<Value, ConnectorError> {
        if entity == Entity::VENDOR {
            self.update_supplier(remote_id, changes).await
        } else if entity == Entity::ITEM {
            self.update_product(remote_id, changes).await
        } else {
            Err(ConnectorError::Unsupported(format!(
                "SAP S/4HANA cannot update {} records through Ironbridge",
                entity.spec().label
            )))
        }
    }

    /// Updates an order: custom fields on the header; replacement lines added before the old
    /// ones are deleted.
    async fn update_order(
        &self,
        remote_id: &str,
        update: &PurchaseOrderUpdate,
    ) -> Result<Value, ConnectorError> {
        if update.memo.is_some() || update.expected_delivery_date.is_some() {
            return Err(ConnectorError::Unsupported(
                "SAP S/4HANA's purchase-order API has no header note or delivery date to update"
                    .into(),
            ));
        }
        if update.location_remote_id.is_some() && update.lines.is_none() {
            return Err(ConnectorError::Unsupported(
                "on SAP S/4HANA the plant is set per item: send the lines with the new location"
                    .into(),
            ));
        }
        let current = self.read_order(remote_id).await?;
        let header = format!("{PO_SRV}/A_PurchaseOrder({})", quote(remote_id));
        if !update.custom_fields.is_empty() {
            let body = Value::Object(update.custom_fields.clone());
            let response = self.modify(Method::PATCH, &header, Some(&body)).await?;
            if response.status != 204 && response.status != 200 {
                return Err(self.error(&response, None));
            }
        }
        if let Some(lines) = &update.lines {
            // Replacement: new items are added first (so a rejected line leaves the order as
            // it was), then the old open ones get their deletion code.
            let old: Vec<String> = current
                .pointer("/to_PurchaseOrderItem/results")
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter(|i| {
                            i.get("PurchasingDocumentDeletionCode")
                                .and_then(Value::as_str)
                                .is_none_or(str::is_empty)
                        })
                        .filter_map(|i| i.get("PurchaseOrderItem")?.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let plant = update.location_remote_id.as_deref().or_else(|| {
                current
                    .pointer("/to_PurchaseOrderItem/results/0/Plant")
                    .and_then(Value::as_str)
            });
            for (i, line) in lines.iter().enumerate() {
                let body = self.item_body(line, plant);
                let response = self
                    .modify(
                        Method::POST,
                        &format!("{header}/to_PurchaseOrderItem"),
                        Some(&body),
                    )
                    .await?;
                if response.status != 201 {
                    let err = self.error(&response, Some(std::slice::from_ref(line)));
                    return Err(match err {
                        ConnectorError::BusinessRule {
                            remote_code,
                            message,
                            param,
                        } => ConnectorError::BusinessRule {
                            remote_code,
                            message,
                            param: param
                                .map(|p| p.replace("line_items[0]", &format!("line_items[{i}]"))),
                        },
                        other => other,
                    });
                }
            }
            for item in old {
                let path = format!(
                    "{PO_SRV}/A_PurchaseOrderItem(PurchaseOrder={},PurchaseOrderItem={})",
                    quote(remote_id),
                    quote(&item)
                );
                let response = self.modify(Method::DELETE, &path, None).await?;
                if response.status != 204 {
                    return Err(self.error(&response, None));
                }
            }
        }
        self.read_order(remote_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odata_dates_parse_with_and_without_offset() {
        assert_eq!(
            odata_ms(&json!("/Date(1700000000123)/")),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            odata_ms(&json!("/Date(1700000000123+0000)/")),
            Some(1_700_000_000_123)
        );
        assert_eq!(odata_ms(&json!("/Date(-5)/")), Some(-5));
        assert_eq!(odata_ms(&json!("x")), None);
        assert_eq!(literal(0), "datetimeoffset'1970-01-01T00:00:00Z'");
    }

    #[test]
    fn settings_are_validated_and_secrets_hidden() {
        let clock: Arc<dyn Clock> = Arc::new(ironbridge_core::SystemClock);
        let sleeper: Arc<dyn Sleeper> = Arc::new(crate::sleeper::TokioSleeper);
        let settings = json!({"base_url": "http://sap.local", "colour": "red"});
        let err = SapConnector::new(
            settings.as_object().unwrap(),
            None,
            clock.clone(),
            sleeper.clone(),
            Egress::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, ConnectorError::InvalidSettings { ref param, .. } if param == "settings.colour")
        );
        let settings = json!({"base_url": "http://sap.local"});
        let err = SapConnector::new(
            settings.as_object().unwrap(),
            None,
            clock.clone(),
            sleeper.clone(),
            Egress::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, ConnectorError::InvalidSettings { ref param, .. } if param == "credentials.username")
        );
        let creds = json!({"client_id": "c", "client_secret": "s3cret"});
        let err = SapConnector::new(
            settings.as_object().unwrap(),
            creds.as_object(),
            clock.clone(),
            sleeper.clone(),
            Egress::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, ConnectorError::InvalidSettings { ref param, .. } if param == "credentials.token_url")
        );
        let creds = json!({"username": "u", "password": "s3cret"});
        let c = SapConnector::new(
            settings.as_object().unwrap(),
            creds.as_object(),
            clock,
            sleeper,
            Egress::default(),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
