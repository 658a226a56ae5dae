//! Microsoft Dynamics 365 Business Central over API v2.0 (OData V4): purchase orders with
//! their lines, vendors and items of one company. Microsoft Entra ID client credentials
//! (client secret), token cached single-flight; server-driven paging through
//! `@odata.nextLink` with `Prefer: odata.maxpagesize`; writes with deep insert and `If-Match`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ironbridge_core::Clock;
use ironbridge_core::connector::{
    Closed, Connector, ConnectorError, CreateRecords, Extent, OrderWriter, PurchaseOrderLineWrite,
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
use serde_json::{Map, Value, json};

pub mod fields;

use crate::client::{UpstreamClient, UpstreamResponse};
use crate::common::{
    Authorize, Fields, Secret, SourceClock, authorized, json_body, json_page, limited_client,
    odata_v4_page, unexpected, upstream,
};
use crate::sleeper::Sleeper;
use crate::token::{AccessToken, TokenCache};

/// Business Central's id.
pub const ID: SystemId = SystemId::from_static("business_central");

const CLIENT_ID: FieldSpec = FieldSpec::text(
    "client_id",
    "Application (client) ID",
    "Of the Microsoft Entra app registration granted API.ReadWrite.All on Business Central (and registered on the Microsoft Entra Applications page in Business Central).",
);

const fn read(entity: Entity) -> ReadSpec {
    ReadSpec {
        entity,
        kind: ReadKind::Windowed,
        // API v2.0 pages forget deleted records.
        deletions: DeletionDetection::Reconciliation,
        payload: ironbridge_core::system::Payload::Whole,
        follows_feed: false,
    }
}

/// Microsoft Dynamics 365 Business Central over API v2.0.
pub static DESCRIPTOR: SystemDescriptor = SystemDescriptor {
    id: ID,
    name: "Microsoft Dynamics 365 Business Central",
    auth: &[
        AuthOption {
            id: "client_secret",
            name: "Microsoft Entra ID client credentials (client secret)",
            description: "Service-to-service auth with a client secret of the app registration.",
            fields: &[
                CLIENT_ID,
                FieldSpec::text(
                    "client_secret",
                    "Client secret",
                    "A secret of the app registration.",
                )
                .secret(),
            ],
        },
        AuthOption {
            id: "client_certificate",
            name: "Microsoft Entra ID client credentials (certificate)",
            description: "Service-to-service auth with a certificate uploaded to the app registration: Ironbridge signs client assertions with its key.",
            fields: &[
                CLIENT_ID,
                FieldSpec::text(
                    "certificate_pem",
                    "Certificate",
                    "The X.509 certificate uploaded to the app registration, in PEM.",
                )
                .format(FieldFormat::Pem),
                FieldSpec::text(
                    "private_key_pem",
                    "Private key",
                    "The certificate's RSA private key in PEM.",
                )
                .secret()
                .format(FieldFormat::Pem),
            ],
        },
    ],
    settings: &[
        FieldSpec::text(
            "tenant_id",
            "Tenant ID",
            "The customer's Microsoft Entra tenant (directory) id or domain.",
        ),
        FieldSpec::text(
            "environment",
            "Environment",
            "The Business Central environment's name (`Production`).",
        ),
        FieldSpec::text(
            "company_id",
            "Company ID",
            "The company's GUID (default: the environment's first company).",
        )
        .optional(),
        FieldSpec::text(
            "page_size",
            "Page size",
            "Records per page, 1 to 20000 (default 1000).",
        )
        .optional()
        .format(FieldFormat::Integer),
        FieldSpec::text(
            "base_url",
            "API URL",
            "Overrides https://api.businesscentral.dynamics.com.",
        )
        .optional()
        .format(FieldFormat::Url),
        FieldSpec::text(
            "login_url",
            "Login URL",
            "Overrides https://login.microsoftonline.com.",
        )
        .optional()
        .format(FieldFormat::Url),
    ],
    reads: &[
        read(Entity::VENDOR),
        read(Entity::ITEM),
        read(Entity::PURCHASE_ORDER),
    ],
    writes: fields::WRITES,
    limits: Limits {
        concurrency: 5,
        per_second: 9.0,
        burst: 10,
        description: "Business Central's operational limits: 5 requests at once per environment and 600 a minute in production (300 in a sandbox). Ironbridge keeps to the 5 and 90 % of the production rate (540 a minute); a sandbox's lower budget answers 429 with Retry-After, which is honoured.",
    },
    history_days: Some(90),
    mappings: Mappings::new(&[
        include_str!("../../mappings/business_central/vendor.json"),
        include_str!("../../mappings/business_central/item.json"),
        include_str!("../../mappings/business_central/purchase_order.json"),
    ]),
    build: |ctx| {
        Ok(Arc::new(BcConnector::new(
            ctx.settings,
            ctx.credentials,
            ctx.clock.clone(),
            ctx.sleeper.clone(),
            ctx.egress.clone(),
        )?))
    },
};

const DEFAULT_BASE_URL: &str = "https://api.businesscentral.dynamics.com";
const DEFAULT_LOGIN_URL: &str = "https://login.microsoftonline.com";
const SCOPE: &str = "https://api.businesscentral.dynamics.com/.default";
const DEFAULT_PAGE_SIZE: u64 = 1000;

const SETTINGS: &[&str] = &[
    "base_url",
    "login_url",
    "tenant_id",
    "environment",
    "company_id",
    "page_size",
];
const CREDENTIALS: &[&str] = &[
    "client_id",
    "client_secret",
    "certificate_pem",
    "private_key_pem",
];

/// How the app proves itself to Entra ID.
enum Credential {
    /// A client secret.
    Secret(Secret),
    /// A certificate: a signed client assertion (PS256) naming the certificate by thumbprint.
    Certificate {
        key: jsonwebtoken::EncodingKey,
        x5t: String,
        x5t_s256: String,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Secret(_) => f.write_str("Secret(***)"),
            Credential::Certificate { x5t_s256, .. } => f
                .debug_struct("Certificate")
                .field("x5t#S256", x5t_s256)
                .field("key", &"***")
                .finish(),
        }
    }
}

/// The DER of the first certificate in a PEM text.
fn certificate_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let start = pem.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = start + pem[start..].find("-----END CERTIFICATE-----")?;
    let body: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

fn certificate_credential(
    c: &Fields<'_>,
    certificate_pem: &str,
) -> Result<Credential, ConnectorError> {
    use base64::Engine;
    let der = certificate_der(certificate_pem)
        .ok_or_else(|| c.invalid("certificate_pem", "expected an X.509 certificate in PEM"))?;
    let key_pem = c.req("private_key_pem")?;
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.as_bytes()).map_err(|_| {
        c.invalid(
            "private_key_pem",
            "expected an RSA private key in PEM (PKCS#8 or PKCS#1)",
        )
    })?;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let sha1 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
    let sha256 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
    Ok(Credential::Certificate {
        key,
        x5t: b64.encode(sha1.as_ref()),
        x5t_s256: b64.encode(sha256.as_ref()),
    })
}

/// The Business Central connector of one connection.
pub struct BcConnector {
    api_root: String,
    token_url: String,
    company_id: Option<String>,
    page_size: u64,
    client_id: String,
    credential: Credential,
    tokens: TokenCache,
    company: tokio::sync::OnceCell<String>,
    client: UpstreamClient,
    clock: Arc<dyn Clock>,
    source_clock: SourceClock,
}

impl std::fmt::Debug for BcConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BcConnector")
            .field("api_root", &self.api_root)
            .field("company_id", &self.company_id)
            .field("client_id", &self.client_id)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

/// A BC error body: `{"error":{"code","message"}}`; the message loses its correlation id.
fn bc_error(body: &[u8]) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = v.get("error")?;
    let code = e.get("code")?.as_str()?.to_string();
    let message = e.get("message").and_then(Value::as_str).unwrap_or("");
    let message = message
        .split("  CorrelationId:")
        .next()
        .unwrap_or(message)
        .trim()
        .to_string();
    Some((code, message))
}

/// The API page an entity is read from, and what it expands.
fn set_of(entity: Entity) -> Option<(&'static str, Option<&'static str>)> {
    if entity == Entity::PURCHASE_ORDER {
        Some(("purchaseOrders", Some("purchaseOrderLines")))
    } else if entity == Entity::VENDOR {
        Some(("vendors", None))
    } else if entity == Entity::ITEM {
        Some(("items", None))
    } else {
        None
    }
}

/// The purchase-order field a create's reference is written to and found by. API v2.0's
/// `purchaseOrders` exposes no reference field ("Your Reference" and "Vendor Order No." are not
/// on the page, which is not extensible): `shipToContact` (Text[100]) is the free-text header
/// field a create can set and a `$filter` can find.
const REFERENCE_FIELD: &str = "shipToContact";

/// A vendor or item body: the read mapping run backwards, with the API's JSON types.
fn record_body(entity: Entity, write: &UnifiedWrite) -> Result<Value, ConnectorError> {
    let def = DESCRIPTOR.mapping(entity).ok_or_else(|| {
        ConnectorError::Unsupported(format!("Business Central has no mapping of {entity}"))
    })?;
    let reversed = def.reverse(&write.fields);
    if let Some(left) = reversed.left.first() {
        return Err(ConnectorError::Unsupported(format!(
            "Ironbridge cannot write `{left}` to a Business Central {}",
            entity.spec().label
        )));
    }
    let mut body = reversed.source;
    // Items' `blocked` is a boolean (vendors' is an enum: `_x0020_`, `Payment`, `All`).
    if entity == Entity::ITEM
        && let Some(Value::String(b)) = body.get("blocked")
    {
        let blocked = b == "true";
        body.insert("blocked".into(), Value::Bool(blocked));
    }
    for key in ["unitCost"] {
        if let Some(Value::String(text)) = body.get(key) {
            let d: rust_decimal::Decimal =
                text.parse().map_err(|_| ConnectorError::InvalidSettings {
                    param: "unit_cost".into(),
                    message: "`unit_cost` is not a decimal".into(),
                })?;
            body.insert(key.into(), number(&d));
        }
    }
    Ok(Value::Object(body))
}

/// The unified field a property named in a Business Central message maps from.
fn record_param(entity: Entity, code: &str, message: &str) -> Option<String> {
    if code == "Internal_EntityWithSameKeyExists" {
        return Some("code".into());
    }
    let property = message.split('\'').nth(1)?;
    let def = DESCRIPTOR.mapping(entity)?;
    fn find(
        rules: &[(String, ironbridge_core::mapping::FieldRule)],
        property: &str,
        prefix: &str,
    ) -> Option<String> {
        for (name, rule) in rules {
            if rule.path.as_deref() == Some(property) {
                return Some(format!("{prefix}{name}"));
            }
            if let Some(nested) = &rule.fields
                && let Some(found) = find(nested, property, &format!("{prefix}{name}."))
            {
                return Some(found);
            }
        }
        None
    }
    find(&def.fields, property, "")
}

fn number(d: &rust_decimal::Decimal) -> Value {
    serde_json::from_str(&d.normalize().to_string()).unwrap_or(Value::Null)
}

/// Orders looked up per request when checking which invoiced ones still exist (the URL stays
/// well under 2 KB).
const ORDERS_PER_LOOKUP: usize = 25;

/// The all-zero GUID Business Central writes for an unset reference.
const EMPTY_GUID: &str = "00000000-0000-0000-0000-000000000000";

/// 8-4-4-4-12 hexadecimal digits: only such ids go into a filter.
fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `lastModifiedDateTime` bounds of a window (milliseconds: the lower one rounded up, the
/// upper one down), if it has any.
fn window_filter(window: &ReadWindow) -> Option<String> {
    let mut filters = Vec::new();
    if let Some(s) = window.modified_since {
        let ms = s.micros().div_euclid(1000) + i64::from(s.micros().rem_euclid(1000) != 0);
        filters.push(format!(
            "lastModifiedDateTime ge {}",
            Timestamp(ms * 1000).to_rfc3339()
        ));
    }
    if let Some(u) = window.modified_until {
        filters.push(format!(
            "lastModifiedDateTime le {}",
            Timestamp(u.micros().div_euclid(1000) * 1000).to_rfc3339()
        ));
    }
    (!filters.is_empty()).then(|| filters.join(" and "))
}

fn bad_cursor() -> ConnectorError {
    ConnectorError::InvalidSettings {
        param: "cursor".into(),
        message: "the cursor is not one this connector issued".into(),
    }
}

impl BcConnector {
    fn new(
        settings: &Map<String, Value>,
        credentials: Option<&Map<String, Value>>,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
        egress: Egress,
    ) -> Result<Self, ConnectorError> {
        let s = Fields::new(Some(settings), "settings", SETTINGS)?;
        let base_url = s
            .url("base_url", false)?
            .unwrap_or_else(|| DEFAULT_BASE_URL.into());
        let login_url = s
            .url("login_url", false)?
            .unwrap_or_else(|| DEFAULT_LOGIN_URL.into());
        let tenant_id = s.req("tenant_id")?;
        let environment = s.req("environment")?;
        for (key, value) in [("tenant_id", &tenant_id), ("environment", &environment)] {
            if !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(s.invalid(key, format!("`{key}` has characters a {key} cannot have")));
            }
        }
        let company_id = s.opt("company_id")?;
        if let Some(c) = &company_id
            && !c.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        {
            return Err(s.invalid("company_id", "`company_id` must be a GUID"));
        }
        let page_size = s.num("page_size", 1..=20_000)?.unwrap_or(DEFAULT_PAGE_SIZE);
        let c = Fields::new(credentials, "credentials", CREDENTIALS)?;
        let client_id = c.req("client_id")?;
        let credential = match (c.opt("client_secret")?, c.opt("certificate_pem")?) {
            (Some(secret), None) => {
                if c.has("private_key_pem") {
                    return Err(c.invalid(
                        "private_key_pem",
                        "give either client_secret or a certificate",
                    ));
                }
                Credential::Secret(Secret(secret))
            }
            (None, Some(pem)) => certificate_credential(&c, &pem)?,
            (Some(_), Some(_)) => {
                return Err(c.invalid(
                    "certificate_pem",
                    "give either client_secret or certificate_pem/private_key_pem",
                ));
            }
            (None, None) => {
                return Err(c.invalid(
                    "client_secret",
                    "`client_secret` (or `certificate_pem`) is required",
                ));
            }
        };
        // Business Central ends operations after 8 minutes; our calls are far shorter.
        let client = limited_client(
            &DESCRIPTOR.limits,
            Duration::from_secs(120),
            clock.clone(),
            sleeper,
            egress,
        )?;
        Ok(BcConnector {
            api_root: format!("{base_url}/v2.0/{tenant_id}/{environment}/api/v2.0"),
            token_url: format!("{login_url}/{tenant_id}/oauth2/v2.0/token"),
            company_id,
            page_size,
            client_id,
            credential,
            tokens: TokenCache::default(),
            company: tokio::sync::OnceCell::new(),
            client,
            clock,
            source_clock: SourceClock::default(),
        })
    }

    /// A signed client assertion for the token endpoint (valid 10 minutes).
    fn assertion(&self) -> Result<Option<String>, ConnectorError> {
        let Credential::Certificate { key, x5t, x5t_s256 } = &self.credential else {
            return Ok(None);
        };
        let now = self.clock.now().micros().div_euclid(1_000_000);
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
        header.typ = Some("JWT".into());
        header.x5t = Some(x5t.clone());
        header.x5t_s256 = Some(x5t_s256.clone());
        let mut nonce = [0u8; 16];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| {
            ConnectorError::Upstream("no randomness for the client assertion".into())
        })?;
        let jti: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let claims = json!({
            "aud": self.token_url, "iss": self.client_id, "sub": self.client_id,
            "jti": jti, "nbf": now, "iat": now, "exp": now + 600,
        });
        jsonwebtoken::encode(&header, &claims, key)
            .map(Some)
            .map_err(|_| ConnectorError::Upstream("could not sign the client assertion".into()))
    }

    async fn fetch_token(&self) -> Result<AccessToken, ConnectorError> {
        let assertion = self.assertion()?;
        let response = self
            .client
            .send(|http| {
                let mut form = vec![
                    ("grant_type", "client_credentials"),
                    ("client_id", self.client_id.as_str()),
                    ("scope", SCOPE),
                ];
                match (&self.credential, &assertion) {
                    (Credential::Secret(secret), _) => {
                        form.push(("client_secret", secret.0.as_str()))
                    }
                    (Credential::Certificate { .. }, Some(jwt)) => {
                        form.push((
                            "client_assertion_type",
                            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                        ));
                        form.push(("client_assertion", jwt.as_str()));
                    }
                    (Credential::Certificate { .. }, None) => {}
                }
                http.post(&self.token_url).form(&form)
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
            .unwrap_or(3599);
        Ok(AccessToken {
            value: value.to_string(),
            expires_at: self.clock.now().plus_secs(expires_in),
        })
    }

    /// Sends one call with the bearer token (see `authorized_call`). A `POST` creates
    /// something, so it is never sent again once it may have reached Business Central
    /// (`authorized_write`).
    async fn call(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<UpstreamResponse, ConnectorError> {
        let write = method == Method::POST;
        authorized(
            &self.client,
            self,
            &self.source_clock,
            |http| {
                let mut r = http
                    .request(method.clone(), url)
                    .header("accept", "application/json");
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

    fn error(
        &self,
        response: &UpstreamResponse,
        lines: Option<&[PurchaseOrderLineWrite]>,
    ) -> ConnectorError {
        let Some((code, message)) = bc_error(&response.body) else {
            return unexpected("Business Central", response);
        };
        let lower = message.to_ascii_lowercase();
        let line_param = || {
            lines.and_then(|lines| {
                // BC's messages name the item number (blocked) but not the GUID; a single
                // line is unambiguous.
                let i = lines
                    .iter()
                    .position(|l| message.contains(&l.item_remote_id))
                    .or_else(|| (lines.len() == 1).then_some(0))?;
                Some(format!("line_items[{i}].item_id"))
            })
        };
        let param = if lower.contains("(vendor)") || lower.contains("vendor ") {
            Some("vendor_id".to_string())
        } else if lower.contains("(item)") || lower.contains("item ") {
            line_param().or_else(|| Some("line_items".into()))
        } else if lower.contains("quantity") || lower.contains("direct unit cost") {
            Some("line_items".into())
        } else {
            None
        };
        match (response.status, code.as_str()) {
            // "Sorry, the current permissions prevented the action": the app's permission
            // sets lack the table; its credentials are good.
            (403, _) => ConnectorError::Forbidden {
                remote_code: code,
                message,
            },
            (_, "Request_EntityChanged") => ConnectorError::State {
                remote_code: code,
                message,
            },
            (404, _) | (_, "Internal_RecordNotFound") => ConnectorError::NotFound,
            (_, "Application_FieldValidationException") if lower.contains("status must be") => {
                ConnectorError::State {
                    remote_code: code,
                    message,
                }
            }
            (400 | 409, _) => ConnectorError::BusinessRule {
                remote_code: code,
                message,
                param,
            },
            _ => ConnectorError::Upstream(format!(
                "Business Central answered {} {code}",
                response.status
            )),
        }
    }

    async fn get_json(
        &self,
        url: &str,
        headers: &[(&str, String)],
    ) -> Result<Value, ConnectorError> {
        let response = self.call(Method::GET, url, headers, None).await?;
        match response.status {
            200 => json_page("Business Central", &response).await,
            _ => Err(self.error(&response, None)),
        }
    }

    /// A page of records, cut out of the answer as its text, and its next link.
    async fn get_page(
        &self,
        url: &str,
        headers: &[(&str, String)],
    ) -> Result<(Vec<SourceRecord>, Option<String>), ConnectorError> {
        let response = self.call(Method::GET, url, headers, None).await?;
        match response.status {
            200 => odata_v4_page("Business Central", &response).await,
            _ => Err(self.error(&response, None)),
        }
    }

    /// The company's id: from the settings, or the first of `companies`.
    async fn company(&self) -> Result<&str, ConnectorError> {
        self.company
            .get_or_try_init(|| async {
                if let Some(c) = &self.company_id {
                    return Ok::<String, ConnectorError>(c.clone());
                }
                let body = self
                    .get_json(&format!("{}/companies", self.api_root), &[])
                    .await?;
                body.pointer("/value/0/id")
                    .and_then(Value::as_str)
                    .map(String::from)
                    .ok_or_else(|| ConnectorError::InvalidSettings {
                        param: "settings.company_id".into(),
                        message: "the environment has no company".into(),
                    })
            })
            .await
            .map(String::as_str)
    }

    /// A next link's path and query, checked to point back at this API and company: our
    /// token never goes elsewhere.
    fn within(&self, link: &str) -> Result<String, ConnectorError> {
        link.strip_prefix(&self.api_root)
            .map(str::to_string)
            .ok_or_else(|| {
                ConnectorError::Upstream("Business Central sent a next link to another host".into())
            })
    }

    /// The URL a cursor's next link stands for, once it is known to be this company's `set`.
    async fn follow(&self, rest: &str, set: &str) -> Result<String, ConnectorError> {
        if !rest.starts_with(&format!("/companies({})/{set}", self.company().await?)) {
            return Err(bad_cursor());
        }
        Ok(format!("{}{rest}", self.api_root))
    }

    /// One page of the invoices posted in `window` (`phase`: `0|` to start, `1|<link>` to
    /// go on), and the orders they came from that posting deleted: an order invoiced in full
    /// is gone from `purchaseOrders` with no deletion to read, and is closed as `Invoiced`.
    async fn posted_invoices_page(
        &self,
        window: &ReadWindow,
        phase: &str,
    ) -> Result<RawPage, ConnectorError> {
        let url = match phase.strip_prefix("1|") {
            Some(rest) => self.follow(rest, "purchaseInvoices").await?,
            None if phase == "0|" => {
                let mut url = reqwest::Url::parse(&format!(
                    "{}/purchaseInvoices",
                    self.company_root().await?
                ))
                .map_err(|_| bad_cursor())?;
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(filter) = window_filter(window) {
                        q.append_pair("$filter", &filter);
                    }
                    q.append_pair("$select", "id,orderId,orderNumber,lastModifiedDateTime");
                }
                url.to_string()
            }
            None => return Err(bad_cursor()),
        };
        let prefer = format!("odata.maxpagesize={}", self.page_size);
        let body = self.get_json(&url, &[("prefer", prefer)]).await?;
        let orders: Vec<String> = body
            .get("value")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|inv| inv.get("orderId").and_then(Value::as_str))
            .filter(|id| !id.is_empty() && *id != EMPTY_GUID && is_guid(id))
            .map(str::to_ascii_lowercase)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut closed = Vec::new();
        for chunk in orders.chunks(ORDERS_PER_LOOKUP) {
            let present = self.existing_orders(chunk).await?;
            closed.extend(
                chunk
                    .iter()
                    .filter(|id| !present.contains(*id))
                    .map(|id| Closed {
                        key: id.clone(),
                        remote_status: "Invoiced".into(),
                    }),
            );
        }
        let next_cursor = match body.get("@odata.nextLink").and_then(Value::as_str) {
            Some(link) => Some(format!("i1|{}", self.within(link)?)),
            None => None,
        };
        Ok(RawPage {
            closed,
            ..RawPage::new(Vec::new(), next_cursor)
        })
    }

    /// Which of these purchase orders still exist (one request).
    async fn existing_orders(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashSet<String>, ConnectorError> {
        let mut url =
            reqwest::Url::parse(&format!("{}/purchaseOrders", self.company_root().await?))
                .map_err(|_| bad_cursor())?;
        let filter = ids
            .iter()
            .map(|id| format!("id eq {id}"))
            .collect::<Vec<_>>()
            .join(" or ");
        url.query_pairs_mut()
            .append_pair("$filter", &filter)
            .append_pair("$select", "id");
        let body = self.get_json(url.as_str(), &[]).await?;
        Ok(body
            .get("value")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|o| o.get("id").and_then(Value::as_str))
            .map(str::to_ascii_lowercase)
            .collect())
    }

    async fn company_root(&self) -> Result<String, ConnectorError> {
        Ok(format!(
            "{}/companies({})",
            self.api_root,
            self.company().await?
        ))
    }

    async fn read_order(&self, id: &str) -> Result<Value, ConnectorError> {
        let root = self.company_root().await?;
        let mut url = reqwest::Url::parse(&format!("{root}/purchaseOrders({id})"))
            .map_err(|_| ConnectorError::NotFound)?;
        url.query_pairs_mut()
            .append_pair("$expand", "purchaseOrderLines");
        self.get_json(url.as_str(), &[]).await
    }

    fn line_body(line: &PurchaseOrderLineWrite, sequence: Option<usize>) -> Value {
        let mut m = Map::new();
        m.insert("lineType".into(), json!("Item"));
        m.insert("itemId".into(), json!(line.item_remote_id));
        m.insert("quantity".into(), number(&line.quantity));
        if let Some(p) = &line.unit_price {
            m.insert("directUnitCost".into(), number(p));
        }
        if let Some(d) = &line.description {
            m.insert("description".into(), json!(d));
        }
        if let Some(u) = &line.unit_of_measure {
            m.insert("unitOfMeasureCode".into(), json!(u));
        }
        if let Some(s) = sequence {
            m.insert("sequence".into(), json!(s * 10_000));
        }
        Value::Object(m)
    }

    /// BC names no line in an unknown-item error: find the line whose item does not exist.
    async fn place_item_error(
        &self,
        err: ConnectorError,
        lines: &[PurchaseOrderLineWrite],
    ) -> ConnectorError {
        let (remote_code, message, mut param) = match err {
            ConnectorError::BusinessRule {
                remote_code,
                message,
                param,
            } => (remote_code, message, param),
            other => return other,
        };
        if param.as_deref() == Some("line_items")
            && remote_code == "Internal_InvalidTableRelation"
            && let Ok(root) = self.company_root().await
        {
            for (i, line) in lines.iter().enumerate() {
                let ok_guid = line
                    .item_remote_id
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == '-');
                let missing = !ok_guid
                    || matches!(
                        self.get_json(&format!("{root}/items({})", line.item_remote_id), &[])
                            .await,
                        Err(ConnectorError::NotFound)
                    );
                if missing {
                    param = Some(format!("line_items[{i}].item_id"));
                    break;
                }
            }
        }
        ConnectorError::BusinessRule {
            remote_code,
            message,
            param,
        }
    }

    /// A refused vendor or item write, on unified field names.
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

    /// PATCHes a vendor or item with the ETag just read (a concurrent change is read again
    /// and retried once); returns the record as Business Central now has it.
    async fn patch_record(
        &self,
        set: &str,
        id: &str,
        entity: Entity,
        body: &Value,
    ) -> Result<Value, ConnectorError> {
        let root = self.company_root().await?;
        let url = format!("{root}/{set}({id})");
        for attempt in 0..2 {
            let current = self.get_json(&url, &[]).await?;
            let etag = current
                .get("@odata.etag")
                .and_then(Value::as_str)
                .unwrap_or("*")
                .to_string();
            let response = self
                .call(Method::PATCH, &url, &[("if-match", etag)], Some(body))
                .await?;
            if response.status == 200 {
                return json_body("update", &response);
            }
            match self.record_error(entity, &response) {
                ConnectorError::State {
                    ref remote_code, ..
                } if remote_code == "Request_EntityChanged" && attempt == 0 => continue,
                other => return Err(other),
            }
        }
        Err(ConnectorError::State {
            remote_code: "Request_EntityChanged".into(),
            message: "Another user has already changed the record.".into(),
        })
    }

    /// PATCHes the header with the ETag just read; a concurrent change is re-read and retried once.
    async fn patch_header(&self, id: &str, body: &Value) -> Result<(), ConnectorError> {
        let root = self.company_root().await?;
        let url = format!("{root}/purchaseOrders({id})");
        for attempt in 0..2 {
            let current = self.read_order(id).await?;
            let etag = current
                .get("@odata.etag")
                .and_then(Value::as_str)
                .unwrap_or("*")
                .to_string();
            let response = self
                .call(Method::PATCH, &url, &[("if-match", etag)], Some(body))
                .await?;
            if response.status == 200 || response.status == 204 {
                return Ok(());
            }
            let err = self.error(&response, None);
            match err {
                ConnectorError::State {
                    ref remote_code, ..
                } if remote_code == "Request_EntityChanged" && attempt == 0 => {
                    continue;
                }
                other => return Err(other),
            }
        }
        Err(ConnectorError::State {
            remote_code: "Request_EntityChanged".into(),
            message: "Another user has already changed the record.".into(),
        })
    }
}

#[async_trait]
impl Authorize for BcConnector {
    async fn authorization(&self) -> Result<String, ConnectorError> {
        let token = self
            .tokens
            .get(self.clock.as_ref(), || self.fetch_token())
            .await?;
        Ok(format!("Bearer {}", token.value))
    }

    async fn refused(&self) -> bool {
        self.tokens.invalidate().await;
        true
    }
}

impl Connector for BcConnector {
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

#[async_trait]
impl Source for BcConnector {
    /// The API's `$metadata`: the entity type's properties (a purchase order's lines under
    /// `line_items`), at the top of each stored record as OData V4 sends them.
    async fn describe_fields(
        &self,
        entity: Entity,
    ) -> Result<Option<Vec<ironbridge_core::connector::DescribedField>>, ConnectorError> {
        let type_name = if entity == Entity::PURCHASE_ORDER {
            "purchaseOrder"
        } else if entity == Entity::VENDOR {
            "vendor"
        } else if entity == Entity::ITEM {
            "item"
        } else {
            return Ok(None);
        };
        let url = format!("{}/$metadata", self.api_root);
        let response = self.call(Method::GET, &url, &[], None).await?;
        if response.status != 200 {
            return Err(self.error(&response, None));
        }
        let xml = String::from_utf8_lossy(&response.body);
        let mut fields = crate::edmx::properties(&xml, type_name, "record");
        if entity == Entity::PURCHASE_ORDER {
            fields.extend(crate::edmx::properties(
                &xml,
                "purchaseOrderLine",
                "line_items",
            ));
        }
        Ok(Some(fields))
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        let root = self.company_root().await?;
        self.get_json(&format!("{root}/vendors?$top=1"), &[])
            .await
            .map(|_| ())
    }

    async fn fetch_page(
        &self,
        entity: Entity,
        window: &ReadWindow,
        cursor: Option<&str>,
    ) -> Result<RawPage, ConnectorError> {
        let Some((set, expand)) = set_of(entity) else {
            return Err(ConnectorError::Unsupported(format!(
                "Business Central has no {entity} read in API v2.0"
            )));
        };
        // Purchase orders are read in two phases: the orders of the window, then the
        // invoices posted in it, whose orders posting may have deleted.
        if let Some(phase) = cursor.and_then(|c| c.strip_prefix("i")) {
            if entity != Entity::PURCHASE_ORDER {
                return Err(bad_cursor());
            }
            return self.posted_invoices_page(window, phase).await;
        }
        let url = match cursor {
            Some(c) => {
                self.follow(c.strip_prefix("n1|").ok_or_else(bad_cursor)?, set)
                    .await?
            }
            None => {
                let mut url = reqwest::Url::parse(&format!("{}/{set}", self.company_root().await?))
                    .map_err(|_| bad_cursor())?;
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(filter) = window_filter(window) {
                        q.append_pair("$filter", &filter);
                    }
                    // Key order, no `$orderby`: Business Central's next link resumes after
                    // the last record's key (`$skiptoken=<id>`), which holds only in key
                    // order; in another order a record changed between two pages would move
                    // the bookmark and skip or repeat the records between.
                    if let Some(e) = expand {
                        q.append_pair("$expand", e);
                    }
                }
                url.to_string()
            }
        };
        let prefer = format!("odata.maxpagesize={}", self.page_size);
        let (records, next_link) = self.get_page(&url, &[("prefer", prefer)]).await?;
        let next_cursor = match next_link.as_deref() {
            Some(link) => Some(format!("n1|{}", self.within(link)?)),
            None if entity == Entity::PURCHASE_ORDER => Some("i0|".to_string()),
            None => None,
        };
        Ok(RawPage::new(records, next_cursor))
    }

    /// Our clock corrected by the offset the source's last `Date` showed.
    async fn source_time(&self) -> Result<Option<Timestamp>, ConnectorError> {
        Ok(self.source_clock.at(self.clock.now()))
    }

    /// The oldest change and, by `$count=true` in the same request, how many records.
    async fn extent(&self, entity: Entity) -> Result<Extent, ConnectorError> {
        let Some((set, _)) = set_of(entity) else {
            return Ok(Extent::default());
        };
        let root = self.company_root().await?;
        let mut url = reqwest::Url::parse(&format!("{root}/{set}")).map_err(|_| bad_cursor())?;
        url.query_pairs_mut()
            .append_pair("$orderby", "lastModifiedDateTime,id")
            .append_pair("$top", "1")
            .append_pair("$select", "id,lastModifiedDateTime")
            .append_pair("$count", "true");
        let body = self.get_json(url.as_str(), &[]).await?;
        Ok(Extent {
            oldest: body
                .pointer("/value/0/lastModifiedDateTime")
                .and_then(Value::as_str)
                .and_then(Timestamp::parse_rfc3339),
            pages: body
                .get("@odata.count")
                .and_then(Value::as_u64)
                .map(|n| n.div_ceil(self.page_size)),
        })
    }
}

#[async_trait]
impl OrderWriter for BcConnector {
    /// Creates an order with its lines in one deep insert; the reference goes in
    /// `shipToContact`, the one free-text header field API v2.0 lets a create set and a
    /// filter find (see `docs/connectors/business-central.md`).
    async fn create_order(
        &self,
        order: &PurchaseOrderWrite,
        unified: &UnifiedWrite,
    ) -> Result<Value, ConnectorError> {
        if order.number.is_some() {
            return Err(ConnectorError::Unsupported(
                "Business Central assigns purchase-order numbers from its number series".into(),
            ));
        }
        let mut body = Map::new();
        body.insert("vendorId".into(), json!(order.vendor_remote_id));
        if let Some(d) = &order.order_date {
            body.insert("orderDate".into(), json!(d));
        }
        // Editable on the API v2.0 page (`Requested Receipt Date`, `Currency Code`).
        if let Some(d) = &order.expected_delivery_date {
            body.insert("requestedReceiptDate".into(), json!(d));
        }
        if let Some(c) = &order.currency {
            body.insert("currencyCode".into(), json!(c));
        }
        for (k, v) in &order.custom_fields {
            body.insert(k.clone(), v.clone());
        }
        // After the custom fields: the reference is what the order is found by.
        if let Some(r) = &unified.reference {
            body.insert(REFERENCE_FIELD.into(), json!(r));
        }
        let lines: Vec<Value> = order
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| Self::line_body(l, Some(i + 1)))
            .collect();
        body.insert("purchaseOrderLines".into(), Value::Array(lines));
        let root = self.company_root().await?;
        let response = self
            .call(
                Method::POST,
                &format!("{root}/purchaseOrders?$expand=purchaseOrderLines"),
                &[],
                Some(&Value::Object(body)),
            )
            .await?;
        if response.status != 201 {
            let err = self.error(&response, Some(&order.lines));
            return Err(self.place_item_error(err, &order.lines).await);
        }
        // Created: an answer that cannot be read, or a failed read-back, leaves the caller
        // without the record, not without the write, so it is reconciled by its reference
        // rather than written again.
        let created = json_body("create", &response).map_err(|_| {
            ConnectorError::OutcomeUnknown(
                "Business Central created the order; its answer is unreadable".into(),
            )
        })?;
        match created.get("id").and_then(Value::as_str) {
            // Read it back with its lines, as the unified record needs them.
            Some(id) if created.get("purchaseOrderLines").is_none() => {
                self.read_order(id).await.map_err(|e| {
                    ConnectorError::OutcomeUnknown(format!(
                        "Business Central created order {id} but reading it back failed: {e}"
                    ))
                })
            }
            _ => Ok(created),
        }
    }

    /// The order whose `shipToContact` is the reference: one filtered read with its lines
    /// (in BC's key order, the first if a person typed the same text into another order).
    async fn find_order(&self, reference: &str) -> Result<Option<Value>, ConnectorError> {
        let root = self.company_root().await?;
        let mut url = reqwest::Url::parse(&format!("{root}/purchaseOrders")).map_err(|_| {
            ConnectorError::InvalidSettings {
                param: "settings.base_url".into(),
                message: "is not a valid URL".into(),
            }
        })?;
        url.query_pairs_mut()
            .append_pair("$filter", &format!("{REFERENCE_FIELD} eq '{reference}'"))
            .append_pair("$expand", "purchaseOrderLines")
            .append_pair("$top", "1");
        let body = self.get_json(url.as_str(), &[]).await?;
        Ok(body.pointer("/value/0").cloned())
    }

    /// Creates a vendor (`vendors`) or an item (`items`); Business Central answers with the
    /// record in the shape of reads.
    async fn create_record(
        &self,
        entity: Entity,
        write: &UnifiedWrite,
    ) -> Result<Value, ConnectorError> {
        let Some((set, None)) = set_of(entity) else {
            return Err(ConnectorError::Unsupported(format!(
                "Business Central cannot create {} records through Ironbridge",
                entity.spec().label
            )));
        };
        let body = record_body(entity, write)?;
        let root = self.company_root().await?;
        let response = self
            .call(Method::POST, &format!("{root}/{set}"), &[], Some(&body))
            .await?;
        if response.status != 201 {
            return Err(self.record_error(entity, &response));
        }
        json_body("create", &response).map_err(|_| {
            ConnectorError::OutcomeUnknown(format!(
                "Business Central created the {}; its answer is unreadable",
                entity.spec().label
            ))
        })
    }

    /// Updates a vendor or an item with `If-Match`; answers with the record as it now is.
    async fn update_record(
        &self,
        entity: Entity,
        remote_id: &str,
        changes: &UnifiedWrite,
    ) -> Result<Value, ConnectorError> {
        let Some((set, None)) = set_of(entity) else {
            return Err(ConnectorError::Unsupported(format!(
                "Business Central cannot update {} records through Ironbridge",
                entity.spec().label
            )));
        };
        if !remote_id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(ConnectorError::NotFound);
        }
        let body = record_body(entity, changes)?;
        self.patch_record(set, remote_id, entity, &body).await
    }

    /// Updates an order: header fields with `If-Match`; replacement lines added before the
    /// old ones are deleted.
    async fn update_order(
        &self,
        remote_id: &str,
        update: &PurchaseOrderUpdate,
    ) -> Result<Value, ConnectorError> {
        if update.memo.is_some() || update.location_remote_id.is_some() {
            return Err(ConnectorError::Unsupported(
                "Business Central's purchase-order API has no note, and the location is set per line"
                    .into(),
            ));
        }
        if !remote_id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(ConnectorError::NotFound);
        }
        let mut header = Map::new();
        if let Some(d) = &update.expected_delivery_date {
            header.insert("requestedReceiptDate".into(), json!(d));
        }
        for (k, v) in &update.custom_fields {
            header.insert(k.clone(), v.clone());
        }
        if !header.is_empty() {
            self.patch_header(remote_id, &Value::Object(header)).await?;
        }
        if let Some(lines) = &update.lines {
            let current = self.read_order(remote_id).await?;
            let root = self.company_root().await?;
            // New lines first (a rejected line leaves the order as it was), then the old ones go.
            for (i, line) in lines.iter().enumerate() {
                let response = self
                    .call(
                        Method::POST,
                        &format!("{root}/purchaseOrders({remote_id})/purchaseOrderLines"),
                        &[],
                        Some(&Self::line_body(line, None)),
                    )
                    .await?;
                if response.status != 201 {
                    return Err(
                        match self.error(&response, Some(std::slice::from_ref(line))) {
                            ConnectorError::BusinessRule {
                                remote_code,
                                message,
                                param,
                            } => ConnectorError::BusinessRule {
                                remote_code,
                                message,
                                param: param.map(|p| {
                                    p.replace("line_items[0]", &format!("line_items[{i}]"))
                                }),
                            },
                            other => other,
                        },
                    );
                }
            }
            let old = current
                .get("purchaseOrderLines")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for line in old {
                let Some(id) = line.get("id").and_then(Value::as_str) else {
                    continue;
                };
                // Every write changes the order's version, so each line's ETag is read just
                // before its delete.
                let url = format!("{root}/purchaseOrders({remote_id})/purchaseOrderLines({id})");
                let fresh = self.get_json(&url, &[]).await?;
                let etag = fresh
                    .get("@odata.etag")
                    .and_then(Value::as_str)
                    .unwrap_or("*")
                    .to_string();
                let response = self
                    .call(Method::DELETE, &url, &[("if-match", etag)], None)
                    .await?;
                if response.status != 204 && response.status != 200 {
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
    fn settings_are_validated_and_the_secret_hidden() {
        let clock: Arc<dyn Clock> = Arc::new(ironbridge_core::SystemClock);
        let sleeper: Arc<dyn Sleeper> = Arc::new(crate::sleeper::TokioSleeper);
        let creds = json!({"client_id": "app", "client_secret": "s3cret"});
        let make = |settings: Value| {
            BcConnector::new(
                settings.as_object().unwrap(),
                creds.as_object(),
                clock.clone(),
                sleeper.clone(),
                Egress::default(),
            )
        };
        let param = |r: Result<BcConnector, ConnectorError>| match r {
            Err(ConnectorError::InvalidSettings { param, .. }) => param,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            param(make(json!({"environment": "production"}))),
            "settings.tenant_id"
        );
        assert_eq!(
            param(make(json!({"tenant_id": "t", "environment": "p", "x": 1}))),
            "settings.x"
        );
        assert_eq!(
            param(make(json!({"tenant_id": "t/..", "environment": "p"}))),
            "settings.tenant_id"
        );
        let c = make(json!({"tenant_id": "t", "environment": "production"})).unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(
            c.api_root,
            "https://api.businesscentral.dynamics.com/v2.0/t/production/api/v2.0"
        );
        let err = BcConnector::new(
            json!({"tenant_id": "t", "environment": "p"})
                .as_object()
                .unwrap(),
            None,
            clock.clone(),
            sleeper.clone(),
            Egress::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, ConnectorError::InvalidSettings { ref param, .. } if param == "credentials.client_id")
        );
    }

    #[test]
    fn error_bodies_lose_their_correlation_id() {
        let body = br#"{"error":{"code":"Request_EntityChanged","message":"Another user has already changed the record.  CorrelationId:  1234."}}"#;
        assert_eq!(
            bc_error(body).unwrap(),
            (
                "Request_EntityChanged".to_string(),
                "Another user has already changed the record.".to_string()
            )
        );
    }
}
