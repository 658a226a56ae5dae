//! The Oracle NetSuite connector: OAuth 2.0 machine-to-machine auth, SuiteQL reads with
//! keyset paging, purchase-order writes through the REST record API. See
//! `docs/connectors/netsuite.md`.

pub mod auth;
pub mod certs;
pub mod fields;
pub mod read;
pub mod write;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ironbridge_core::Clock;
use ironbridge_core::connector::{
    Connector, ConnectorError, CreateRecords, Extent, OrderWriter, PurchaseOrderUpdate,
    PurchaseOrderWrite, RawPage, ReadWindow, Source, UnifiedWrite, UpdateRecords,
};
use ironbridge_core::netguard::Egress;
use ironbridge_core::system::{
    AuthOption, FieldSpec, Limits, Mappings, ReadSpec, SystemDescriptor,
};
use ironbridge_model::api::{DeletionDetection, FieldFormat, ReadKind, SystemId};
use ironbridge_model::{Entity, Timestamp};
use reqwest::header::{CONTENT_TYPE, LOCATION};
use serde_json::{Map, Value, json};

use crate::client::{UpstreamClient, UpstreamResponse};
use crate::common::{
    Authorize, SourceClock, authorized_call, authorized_write, limited_client, parse_json,
};
use crate::sleeper::Sleeper;
use crate::token::TokenCache;

pub use auth::Credentials;
pub use certs::{GeneratedCertificate, generate_certificate};

/// NetSuite's smallest documented account-wide concurrency limit is 15 (service tier base
/// plus one SuiteCloud Plus licence), shared by every integration of the account; one
/// connection takes a third of it so UI users and other integrations keep working.
pub const CONCURRENCY: usize = 5;

/// NetSuite's id.
pub const ID: SystemId = SystemId::from_static("netsuite");

const ACCOUNT_ID: FieldSpec = FieldSpec::text(
    "account_id",
    "Account ID",
    "Setup > Company > Company Information > Account ID (`123456`, or `123456_SB1` for a sandbox).",
);
const CLIENT_ID: FieldSpec = FieldSpec::text(
    "client_id",
    "Client ID",
    "The consumer key of the integration record (Setup > Integration > Manage Integrations).",
);
const CERTIFICATE_ID: FieldSpec = FieldSpec::text(
    "certificate_id",
    "Certificate ID",
    "The id NetSuite shows for the certificate on Setup > Integration > OAuth 2.0 Client Credentials (M2M) Setup.",
);

const fn read(entity: Entity, kind: ReadKind, deletions: DeletionDetection) -> ReadSpec {
    ReadSpec {
        entity,
        kind,
        deletions,
        payload: ironbridge_core::system::Payload::Whole,
        follows_feed: false,
    }
}

/// Oracle NetSuite: SuiteQL reads, REST record writes, OAuth 2.0 machine-to-machine auth.
pub static DESCRIPTOR: SystemDescriptor = SystemDescriptor {
    id: ID,
    name: "Oracle NetSuite",
    auth: &[
        AuthOption {
            id: "certificate_generated",
            name: "OAuth 2.0 machine-to-machine with a certificate Ironbridge generates (option A)",
            description: "Generate a certificate with `POST /v1/certificates`, upload its PEM in NetSuite's OAuth 2.0 Client Credentials (M2M) Setup for the integration record, then give its id here.",
            fields: &[
                ACCOUNT_ID,
                CLIENT_ID,
                CERTIFICATE_ID,
                FieldSpec::text(
                    "ironbridge_certificate",
                    "Ironbridge certificate",
                    "The `crt_…` id of the certificate Ironbridge generated.",
                )
                .format(FieldFormat::CertificateId),
            ],
        },
        AuthOption {
            id: "certificate_own",
            name: "OAuth 2.0 machine-to-machine with the customer's own certificate (option B)",
            description: "Generate a key pair (for example `openssl req -x509 -newkey rsa:3072 -keyout key.pem -out cert.pem -days 730 -nodes`), upload the certificate in NetSuite's M2M setup, and give the private key here.",
            fields: &[
                ACCOUNT_ID,
                CLIENT_ID,
                CERTIFICATE_ID,
                FieldSpec::text(
                    "private_key_pem",
                    "Private key",
                    "The certificate's private key in PEM: RSA (PKCS#8 or PKCS#1, signed PS256) or EC on P-256, P-384 or P-521 (PKCS#8, signed ES256, ES384 or ES512).",
                )
                .secret()
                .format(FieldFormat::Pem),
            ],
        },
    ],
    settings: &[
        FieldSpec::text(
            "base_url",
            "Base URL",
            "Overrides `https://<account>.suitetalk.api.netsuite.com`.",
        )
        .optional()
        .format(FieldFormat::Url),
        FieldSpec::text(
            "date_format",
            "Date format",
            "The account's date format preference: M/D/YYYY, D/M/YYYY, YYYY-MM-DD or D.M.YYYY.",
        )
        .optional(),
    ],
    // NetSuite's SuiteQL tables forget deleted records; its deletion log (`DeletedRecord`)
    // covers transactions, vendors and items (`read::deleted_types`), read by every sync.
    reads: &[
        read(
            Entity::VENDOR,
            ReadKind::Windowed,
            DeletionDetection::DeletionLog,
        ),
        read(
            Entity::ITEM,
            ReadKind::Windowed,
            DeletionDetection::DeletionLog,
        ),
        // The location table has no modification time; every sync reads it whole, so every
        // sync finds what it no longer has.
        read(
            Entity::LOCATION,
            ReadKind::Whole,
            DeletionDetection::Reconciliation,
        ),
        read(
            Entity::PURCHASE_ORDER,
            ReadKind::Windowed,
            DeletionDetection::DeletionLog,
        ),
    ],
    writes: fields::WRITES,
    limits: Limits {
        concurrency: CONCURRENCY,
        // No per-second limit is documented, only the concurrency limit.
        per_second: 0.0,
        burst: CONCURRENCY as u32,
        description: "NetSuite's smallest account-wide concurrency limit is 15 (base tier plus one SuiteCloud Plus licence), shared by every integration of the account; a connection takes a third of it. No request rate is documented.",
    },
    history_days: Some(90),
    mappings: Mappings::new(&[
        include_str!("../../mappings/netsuite/vendor.json"),
        include_str!("../../mappings/netsuite/item.json"),
        include_str!("../../mappings/netsuite/location.json"),
        include_str!("../../mappings/netsuite/purchase_order.json"),
    ]),
    build: |ctx| {
        Ok(Arc::new(NetSuite::new(
            ctx.settings,
            ctx.credentials,
            ctx.clock.clone(),
            ctx.sleeper.clone(),
            ctx.egress.clone(),
        )?))
    },
};

/// Settings keys a connection may carry.
const SETTINGS: &[&str] = &["base_url", "date_format"];

/// Date-format preferences NetSuite accounts use.
const DATE_FORMATS: &[&str] = &["M/D/YYYY", "D/M/YYYY", "YYYY-MM-DD", "D.M.YYYY"];

/// One NetSuite connection.
#[derive(Debug)]
pub struct NetSuite {
    client: UpstreamClient,
    credentials: Credentials,
    base_url: String,
    clock: Arc<dyn Clock>,
    tokens: TokenCache,
    source_clock: SourceClock,
}

fn invalid(param: &str, message: &str) -> ConnectorError {
    ConnectorError::InvalidSettings {
        param: param.into(),
        message: message.into(),
    }
}

fn required(credentials: &Map<String, Value>, key: &str) -> Result<String, ConnectorError> {
    credentials
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| invalid(&format!("credentials.{key}"), "required"))
}

/// `123456_SB1` → `123456-sb1`, the account's host label.
pub fn account_slug(account_id: &str) -> String {
    account_id.to_ascii_lowercase().replace('_', "-")
}

impl NetSuite {
    /// Builds a connector from a connection's settings and decrypted credentials.
    ///
    /// Settings: `{"base_url"?: "https://<account>.suitetalk.api.netsuite.com" override,
    /// "date_format"?: "M/D/YYYY" | "D/M/YYYY" | "YYYY-MM-DD" | "D.M.YYYY"}`.
    /// Credentials: `{"account_id", "client_id", "certificate_id", "private_key_pem"}` (other
    /// keys, such as the public certificate, are ignored).
    pub fn new(
        settings: &Map<String, Value>,
        credentials: Option<&Map<String, Value>>,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
        egress: Egress,
    ) -> Result<Self, ConnectorError> {
        if let Some(key) = settings.keys().find(|k| !SETTINGS.contains(&k.as_str())) {
            return Err(invalid(
                &format!("settings.{key}"),
                "unknown setting for NetSuite (expected base_url, date_format)",
            ));
        }
        let empty = Map::new();
        let creds = credentials.unwrap_or(&empty);
        let account_id = required(creds, "account_id")?;
        if !account_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(invalid(
                "credentials.account_id",
                "expected a NetSuite account id such as 123456 or 123456_SB1",
            ));
        }
        let client_id = required(creds, "client_id")?;
        let certificate_id = required(creds, "certificate_id")?;
        let key = auth::parse_key(&required(creds, "private_key_pem")?)?;
        let base_url = match settings.get("base_url") {
            None | Some(Value::Null) => format!(
                "https://{}.suitetalk.api.netsuite.com",
                account_slug(&account_id)
            ),
            Some(Value::String(s))
                if (s.starts_with("https://") || s.starts_with("http://"))
                    && !s.contains(['?', '#', '@']) =>
            {
                s.trim_end_matches('/').to_string()
            }
            Some(_) => {
                return Err(invalid(
                    "settings.base_url",
                    "expected an http(s) URL without credentials, query or fragment",
                ));
            }
        };
        match settings.get("date_format") {
            None | Some(Value::Null) => {}
            Some(Value::String(f)) if DATE_FORMATS.contains(&f.as_str()) => {}
            Some(_) => {
                return Err(invalid(
                    "settings.date_format",
                    "expected M/D/YYYY, D/M/YYYY, YYYY-MM-DD or D.M.YYYY",
                ));
            }
        }
        // A NetSuite request may run up to 15 minutes; SuiteQL pages take seconds.
        let client = limited_client(
            &DESCRIPTOR.limits,
            Duration::from_secs(180),
            clock.clone(),
            sleeper,
            egress,
        )?;
        Ok(NetSuite {
            client,
            credentials: Credentials {
                account_id,
                client_id,
                certificate_id,
                key,
            },
            base_url,
            clock,
            tokens: TokenCache::default(),
            source_clock: SourceClock::default(),
        })
    }

    async fn token(&self) -> Result<String, ConnectorError> {
        let token = self
            .tokens
            .get(self.clock.as_ref(), || {
                auth::fetch_token(
                    &self.client,
                    &self.credentials,
                    &self.base_url,
                    self.clock.as_ref(),
                    &self.source_clock,
                )
            })
            .await?;
        Ok(token.value)
    }

    /// Sends a data request with the bearer token (see [`authorized_call`]).
    async fn call(
        &self,
        make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<UpstreamResponse, ConnectorError> {
        authorized_call(&self.client, self, &self.source_clock, make, auth::upstream).await
    }

    /// Sends a create, never resent once it may have reached NetSuite (see
    /// [`authorized_write`]).
    async fn call_write(
        &self,
        make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<UpstreamResponse, ConnectorError> {
        authorized_write(&self.client, self, &self.source_clock, make, auth::upstream).await
    }

    /// Runs one SuiteQL page.
    async fn suiteql(
        &self,
        sql: &str,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<Value>, bool), ConnectorError> {
        let (items, has_more, _) = self.suiteql_counted(sql, limit, offset).await?;
        Ok((items, has_more))
    }

    /// [`NetSuite::suiteql`], with the rows the whole query matches (`totalResults`).
    async fn suiteql_counted(
        &self,
        sql: &str,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<Value>, bool, Option<u64>), ConnectorError> {
        let url = format!("{}/services/rest/query/v1/suiteql", self.base_url);
        let body = json!({ "q": sql });
        let query = [("limit", limit), ("offset", offset)];
        let response = self
            .call(|http| {
                http.post(&url)
                    .query(&query)
                    .header("Prefer", "transient")
                    .json(&body)
            })
            .await?;
        let mut value: Value = parse_json(response.body.clone())
            .await
            .unwrap_or(Value::Null);
        if response.status != 200 {
            let (code, detail, _) = write::error_detail(&value);
            return Err(match response.status {
                403 => ConnectorError::Unauthorized,
                status => ConnectorError::Upstream(format!(
                    "NetSuite SuiteQL answered {status} {code}: {detail}"
                )),
            });
        }
        let has_more = value
            .get("hasMore")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let total = value.get("totalResults").and_then(Value::as_u64);
        // Moved out, not cloned: a page of rows is most of the answer.
        let Some(Value::Array(items)) = value.get_mut("items").map(Value::take) else {
            return Err(ConnectorError::Upstream(
                "NetSuite SuiteQL answer has no items".into(),
            ));
        };
        Ok((items, has_more, total))
    }

    async fn order_lines(&self, ids: &[u64]) -> Result<Vec<Value>, ConnectorError> {
        let sql = read::lines_query(ids);
        let mut rows = Vec::new();
        let mut offset = 0;
        loop {
            let (items, has_more) = self.suiteql(&sql, read::LINE_PAGE, offset).await?;
            // The next page, not the rows seen: NetSuite refuses an offset that is not a
            // multiple of the limit.
            offset += read::LINE_PAGE;
            let done = !has_more || items.is_empty();
            rows.extend(items);
            if done {
                return Ok(rows);
            }
        }
    }

    /// The ids of the records of `entity` the deletion log reports deleted in `window`
    /// (none where the log does not cover the entity): one query, paged by keyset if long.
    async fn deleted_in(
        &self,
        entity: Entity,
        window: &ReadWindow,
    ) -> Result<Vec<String>, ConnectorError> {
        let mut ids = Vec::new();
        let mut after = None;
        while let Some(sql) = read::deleted_query(entity, window, after.as_ref()) {
            let (rows, has_more) = self.suiteql(&sql, read::FLAT_PAGE, 0).await?;
            let last = rows.last().and_then(read::deleted_position);
            ids.extend(rows.iter().filter_map(|r| read::text(r, "recordid")));
            match last {
                Some(next) if has_more && after.as_ref() != Some(&next) => after = Some(next),
                _ => break,
            }
        }
        Ok(ids)
    }

    /// `GET purchaseOrder/{id}?expandSubResources=true` in the raw shape of reads; `id` may
    /// be an external id as `eid:{externalId}`.
    async fn get_order(&self, id: &str) -> Result<Value, ConnectorError> {
        let url = format!(
            "{}/services/rest/record/v1/purchaseOrder/{id}",
            self.base_url
        );
        let response = self
            .call(|http| http.get(&url).query(&[("expandSubResources", "true")]))
            .await?;
        let value: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        if response.status != 200 {
            return Err(write::write_error(response.status, &value));
        }
        Ok(read::order_from_record(&value))
    }
}

impl NetSuite {
    /// One vendor or item read by SuiteQL, in the raw shape of a sync's reads.
    async fn read_record(&self, entity: Entity, id: &str) -> Result<Value, ConnectorError> {
        let id: u64 = record_id(id)?
            .parse()
            .map_err(|_| ConnectorError::NotFound)?;
        let sql = read::record_query(entity, id)?;
        let (rows, _) = self.suiteql(&sql, 1, 0).await?;
        let row = rows.into_iter().next().ok_or(ConnectorError::NotFound)?;
        Ok(if entity == Entity::VENDOR {
            read::vendor(row)
        } else {
            read::item(row)
        })
    }
}

/// The record id a create's `Location` header ends with.
fn created_id(response: &UpstreamResponse, what: &str) -> Result<String, ConnectorError> {
    response
        .headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| l.rsplit('/').next())
        .map(str::to_string)
        .filter(|id| record_id(id).is_ok())
        .ok_or_else(|| {
            ConnectorError::OutcomeUnknown(format!(
                "NetSuite created the {what} without a Location"
            ))
        })
}

fn record_id(remote_id: &str) -> Result<&str, ConnectorError> {
    if !remote_id.is_empty() && remote_id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(remote_id)
    } else {
        Err(ConnectorError::NotFound)
    }
}

#[async_trait]
impl Authorize for NetSuite {
    async fn authorization(&self) -> Result<String, ConnectorError> {
        Ok(format!("Bearer {}", self.token().await?))
    }

    async fn refused(&self) -> bool {
        self.tokens.invalidate().await;
        true
    }
}

impl Connector for NetSuite {
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
impl Source for NetSuite {
    async fn check(&self) -> Result<(), ConnectorError> {
        self.suiteql("SELECT id FROM location t ORDER BY t.id", 1, 0)
            .await
            .map(|_| ())
    }

    async fn fetch_page(
        &self,
        entity: Entity,
        window: &ReadWindow,
        cursor: Option<&str>,
    ) -> Result<RawPage, ConnectorError> {
        let cursor = cursor.map(read::Cursor::parse).transpose()?;
        let (sql, page) = read::page_query(entity, window, cursor.as_ref())?;
        let (rows, has_more) = self.suiteql(&sql, page, 0).await?;
        let next_cursor = match rows.last().and_then(read::position) {
            Some((id, t)) if has_more => Some(read::Cursor { t, id }),
            _ => None,
        };
        if next_cursor.is_some() && next_cursor == cursor {
            // Only possible if times carry fractions of a second (NetSuite's are whole
            // seconds): the keyset would repeat this page forever.
            return Err(ConnectorError::Upstream(
                "NetSuite paging made no progress (sub-second modification times?)".into(),
            ));
        }
        let next_cursor = next_cursor.map(|c| c.encode());
        let records = if entity == Entity::VENDOR {
            rows.into_iter().map(read::vendor).collect()
        } else if entity == Entity::ITEM {
            rows.into_iter().map(read::item).collect()
        } else if entity == Entity::LOCATION {
            rows.into_iter().map(read::location).collect()
        } else {
            {
                let ids: Vec<u64> = rows
                    .iter()
                    .filter_map(|r| read::text(r, "id")?.parse().ok())
                    .collect();
                let mut headers: Vec<Map<String, Value>> =
                    rows.into_iter().map(read::order_header).collect();
                if !ids.is_empty() {
                    let by_id: std::collections::HashMap<String, usize> = headers
                        .iter()
                        .enumerate()
                        .filter_map(|(i, h)| Some((h.get("id")?.as_str()?.to_string(), i)))
                        .collect();
                    for line in self.order_lines(&ids).await? {
                        let Some(tx) = read::text(&line, "transaction") else {
                            continue;
                        };
                        if let Some(&i) = by_id.get(&tx)
                            && let Some(Value::Array(lines)) = headers[i].get_mut("lines")
                        {
                            lines.push(read::order_line(line));
                        }
                    }
                }
                headers.into_iter().map(Value::Object).collect()
            }
        };
        let mut page = RawPage::from_values(records, next_cursor);
        if page.next_cursor.is_none() {
            // The slice's last page also carries the deletions logged in its window: slices
            // cover the run's window, so each deletion is read once per run.
            page.deleted = self.deleted_in(entity, window).await?;
        }
        Ok(page)
    }

    /// Our clock corrected by the offset the source's last `Date` showed (data calls and the
    /// token endpoint alike).
    async fn source_time(&self) -> Result<Option<Timestamp>, ConnectorError> {
        Ok(self.source_clock.at(self.clock.now()))
    }

    /// SuiteQL pages are keysets on `(lastmodifieddate, id)` bounded by the window each
    /// query is given.
    fn cursor_position(&self, entity: Entity, cursor: &str) -> Option<Timestamp> {
        if !read::windowed(entity) {
            return None;
        }
        let t = read::Cursor::parse(cursor).ok()?.t?;
        Timestamp::parse_rfc3339(&t)
    }

    async fn extent(&self, entity: Entity) -> Result<Extent, ConnectorError> {
        let Some(sql) = read::oldest_query(entity) else {
            return Ok(Extent::default());
        };
        let (rows, _, total) = self.suiteql_counted(&sql, 1, 0).await?;
        Ok(Extent {
            oldest: rows
                .first()
                .and_then(|r| read::text(r, "lastmodified_iso"))
                .and_then(|t| Timestamp::parse_rfc3339(&t)),
            pages: total.map(|n| n.div_ceil(read::page_size(entity) as u64)),
        })
    }
}

#[async_trait]
impl OrderWriter for NetSuite {
    /// Creates an order through the REST record API (the reference as its `externalId`), then
    /// reads it back in the shape of reads.
    async fn create_order(
        &self,
        order: &PurchaseOrderWrite,
        unified: &UnifiedWrite,
    ) -> Result<Value, ConnectorError> {
        let body = write::create_body(order, unified.reference.as_deref())?;
        let url = format!("{}/services/rest/record/v1/purchaseOrder", self.base_url);
        let response = self
            .call_write(|http| {
                http.post(&url)
                    .header(CONTENT_TYPE, "application/json")
                    .json(&body)
            })
            .await?;
        if !matches!(response.status, 201 | 204) {
            let value: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
            return Err(write::write_error(response.status, &value));
        }
        let id = created_id(&response, "order")?;
        // Created: a failed read-back leaves the caller without the record, not without the
        // write, so it is reconciled (found by its reference) rather than written again.
        self.get_order(&id).await.map_err(|e| {
            ConnectorError::OutcomeUnknown(format!(
                "NetSuite created order {id} but reading it back failed: {e}"
            ))
        })
    }

    /// `GET purchaseOrder/eid:{reference}`: the order whose `externalId` is the reference.
    async fn find_order(&self, reference: &str) -> Result<Option<Value>, ConnectorError> {
        match self.get_order(&format!("eid:{reference}")).await {
            Ok(order) => Ok(Some(order)),
            Err(ConnectorError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a vendor (record `vendor`) or an inventory item (`inventoryItem`), then reads
    /// it back by SuiteQL in the shape of reads.
    async fn create_record(
        &self,
        entity: Entity,
        write: &UnifiedWrite,
    ) -> Result<Value, ConnectorError> {
        let record_type = write::record_type(entity).ok_or_else(|| {
            ConnectorError::Unsupported(format!(
                "Oracle NetSuite cannot create {} records through Ironbridge",
                entity.spec().label
            ))
        })?;
        let body = write::record_body(entity, write)?;
        let url = format!("{}/services/rest/record/v1/{record_type}", self.base_url);
        // A create is never sent again once it may have reached NetSuite.
        let response = self
            .call_write(|http| {
                http.post(&url)
                    .header(CONTENT_TYPE, "application/json")
                    .json(&body)
            })
            .await?;
        if !matches!(response.status, 201 | 204) {
            let value: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
            return Err(write::record_error(entity, response.status, &value));
        }
        let label = entity.spec().label;
        let id = created_id(&response, label)?;
        self.read_record(entity, &id).await.map_err(|e| {
            ConnectorError::OutcomeUnknown(format!(
                "NetSuite created {label} {id} but reading it back failed: {e}"
            ))
        })
    }

    /// Updates a vendor or an inventory item (an item of another type is refused: its record
    /// type is another), then reads it back.
    async fn update_record(
        &self,
        entity: Entity,
        remote_id: &str,
        changes: &UnifiedWrite,
    ) -> Result<Value, ConnectorError> {
        let record_type = write::record_type(entity).ok_or_else(|| {
            ConnectorError::Unsupported(format!(
                "Oracle NetSuite cannot update {} records through Ironbridge",
                entity.spec().label
            ))
        })?;
        let id = record_id(remote_id)?;
        if entity == Entity::ITEM {
            let current = self.read_record(entity, id).await?;
            let kind = current
                .get("itemType")
                .and_then(Value::as_str)
                .unwrap_or("");
            if kind != "InvtPart" {
                return Err(ConnectorError::Unsupported(format!(
                    "NetSuite item {id} is of type {kind}; Ironbridge updates inventory items only"
                )));
            }
        }
        let body = write::record_body(entity, changes)?;
        let url = format!(
            "{}/services/rest/record/v1/{record_type}/{id}",
            self.base_url
        );
        let response = self.call(|http| http.patch(&url).json(&body)).await?;
        if !matches!(response.status, 200 | 204) {
            let value: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
            return Err(write::record_error(entity, response.status, &value));
        }
        self.read_record(entity, id).await
    }

    /// Updates an order (`replace=item` when the lines are replaced), then reads it back.
    async fn update_order(
        &self,
        remote_id: &str,
        update: &PurchaseOrderUpdate,
    ) -> Result<Value, ConnectorError> {
        let id = record_id(remote_id)?;
        let (body, replace) = write::update_body(update)?;
        let url = format!(
            "{}/services/rest/record/v1/purchaseOrder/{id}",
            self.base_url
        );
        let response = self
            .call(|http| {
                let request = http.patch(&url).json(&body);
                if replace {
                    request.query(&[("replace", "item")])
                } else {
                    request
                }
            })
            .await?;
        if !matches!(response.status, 200 | 204) {
            let value: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
            return Err(write::write_error(response.status, &value));
        }
        self.get_order(id).await
    }
}
