//! SuiteQL reads: one query per page of records, ordered by `(lastmodifieddate, id)` and paged
//! by keyset (never by offset, which skips records when the set changes between pages), plus
//! one query for the lines of a page of purchase orders. Rows are reshaped into the raw
//! records the default mappings read (`crates/connectors/mappings/netsuite/*.json`).
//!
//! Time zones: SuiteQL shows datetimes in the integration user's time zone, which is rarely
//! UTC and has daylight-saving time, so wall-clock text is not an instant (the hour clocks go
//! back happens twice). Every datetime therefore crosses the API as UTC: columns are read
//! through `SYS_EXTRACT_UTC` and bounds are written with an explicit `+00:00`
//! (`TO_TIMESTAMP_TZ`), both on Oracle's list of SuiteQL functions, so windows, keyset
//! cursors and stored times are exact instants whatever the account's zone.

use ironbridge_core::connector::{ConnectorError, ReadWindow};
use ironbridge_model::{Entity, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Orders per page (each has up to a few dozen lines, read in one more query).
pub const ORDER_PAGE: usize = 100;
/// Vendors, items, locations per page (SuiteQL's maximum).
pub const FLAT_PAGE: usize = 1000;
/// SuiteQL's largest page, used for lines.
pub const LINE_PAGE: usize = 1000;

/// Oracle format of a whole-second UTC date-time, as we ask SuiteQL to print it.
const ISO_FORMAT: &str = r#"'YYYY-MM-DD"T"HH24:MI:SS"Z"'"#;

/// A datetime column as ISO text in UTC (`SYS_EXTRACT_UTC` of the instant, not the wall-clock
/// time of the user's zone).
fn utc_text(column: &str) -> String {
    format!("TO_CHAR(SYS_EXTRACT_UTC({column}), {ISO_FORMAT})")
}

/// Where a read stopped: the last record's `(lastModifiedDate, id)`, or its id for tables
/// without a modification time. Serialized as JSON; the values are re-validated on use, so a
/// tampered cursor cannot inject SQL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Last record's modification time (RFC 3339, whole seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<String>,
    /// Last record's internal id.
    pub id: u64,
}

impl Cursor {
    pub fn parse(text: &str) -> Result<Cursor, ConnectorError> {
        let bad = || ConnectorError::InvalidSettings {
            param: "cursor".into(),
            message: "not a cursor this connector issued".into(),
        };
        let c: Cursor = serde_json::from_str(text).map_err(|_| bad())?;
        if let Some(t) = &c.t
            && Timestamp::parse_rfc3339(t).is_none()
        {
            return Err(bad());
        }
        Ok(c)
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Rows per page of `entity` (1 where NetSuite has no such read).
pub fn page_size(entity: Entity) -> usize {
    table(entity).map_or(1, |t| t.page)
}

/// How one entity is read.
struct Table {
    select: &'static str,
    from: &'static str,
    filter: Option<&'static str>,
    has_last_modified: bool,
    page: usize,
}

/// The table an entity is read from (`None`: NetSuite has no such read).
fn table(entity: Entity) -> Option<Table> {
    Some(if entity == Entity::PURCHASE_ORDER {
        Table {
            select: "t.*, BUILTIN.DF(t.entity) AS entity_name, BUILTIN.DF(t.status) AS status_name, \
                     BUILTIN.DF(t.currency) AS currency_name, BUILTIN.DF(t.location) AS location_name, \
                     BUILTIN.DF(t.custbody_requestor) AS custbody_requestor_name",
            from: "transaction t",
            filter: Some("t.type = 'PurchOrd'"),
            has_last_modified: true,
            page: ORDER_PAGE,
        }
    } else if entity == Entity::VENDOR {
        Table {
            select: "t.*, BUILTIN.DF(t.currency) AS currency_name",
            from: "vendor t",
            filter: None,
            has_last_modified: true,
            page: FLAT_PAGE,
        }
    } else if entity == Entity::ITEM {
        Table {
            select: "t.*",
            from: "item t",
            filter: None,
            has_last_modified: true,
            page: FLAT_PAGE,
        }
    } else if entity == Entity::LOCATION {
        Table {
            select: "t.*",
            from: "location t",
            filter: None,
            has_last_modified: false,
            page: FLAT_PAGE,
        }
    } else {
        return None;
    })
}

/// A literal of an instant, rounded to whole seconds in the given direction: UTC with an
/// explicit offset, so the account's time zone cannot move it (a bare `TO_TIMESTAMP` would be
/// read as the user's wall-clock time).
fn to_timestamp(t: Timestamp, round_up: bool) -> String {
    let micros = t.micros();
    let mut secs = micros.div_euclid(1_000_000);
    if round_up && micros.rem_euclid(1_000_000) != 0 {
        secs += 1;
    }
    let text = time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|d| {
            d.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]"
            ))
            .ok()
        })
        .unwrap_or_else(|| "1970-01-01 00:00:00".into());
    format!("TO_TIMESTAMP_TZ('{text} +00:00', 'YYYY-MM-DD HH24:MI:SS TZH:TZM')")
}

/// The SuiteQL statement of one page and the page size.
pub fn page_query(
    entity: Entity,
    window: &ReadWindow,
    cursor: Option<&Cursor>,
) -> Result<(String, usize), ConnectorError> {
    let t = table(entity)
        .ok_or_else(|| ConnectorError::Unsupported(format!("NetSuite has no {entity} read")))?;
    let mut select = t.select.to_string();
    let mut conditions: Vec<String> = t.filter.iter().map(|f| f.to_string()).collect();
    let order = if t.has_last_modified {
        select.push_str(&format!(
            ", {} AS lastmodified_iso",
            utc_text("t.lastmodifieddate")
        ));
        if let Some(since) = window.modified_since {
            // Inclusive: NetSuite times are whole seconds, so rounding up keeps exactly the
            // records at or after `since`.
            conditions.push(format!(
                "t.lastmodifieddate >= {}",
                to_timestamp(since, true)
            ));
        }
        if let Some(until) = window.modified_until {
            conditions.push(format!(
                "t.lastmodifieddate <= {}",
                to_timestamp(until, false)
            ));
        }
        if let Some(c) = cursor {
            let at =
                c.t.as_deref()
                    .and_then(Timestamp::parse_rfc3339)
                    .ok_or_else(|| ConnectorError::InvalidSettings {
                        param: "cursor".into(),
                        message: "not a cursor this connector issued".into(),
                    })?;
            let at = to_timestamp(at, false);
            conditions.push(format!(
                "(t.lastmodifieddate > {at} OR (t.lastmodifieddate = {at} AND t.id > {}))",
                c.id
            ));
        }
        "t.lastmodifieddate, t.id"
    } else {
        if let Some(c) = cursor {
            conditions.push(format!("t.id > {}", c.id));
        }
        "t.id"
    };
    select.push_str(&created_columns(entity, &t));
    let mut sql = format!("SELECT {select} FROM {}", t.from);
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(" ORDER BY ");
    sql.push_str(order);
    Ok((sql, t.page))
}

/// The creation (and order date) columns a read adds, as ISO text.
fn created_columns(entity: Entity, t: &Table) -> String {
    if entity == Entity::PURCHASE_ORDER {
        // `trandate` is a calendar date: never converted, so printed as it is.
        format!(
            ", {} AS created_iso, TO_CHAR(t.trandate, 'YYYY-MM-DD') AS trandate_iso",
            utc_text("t.createddate")
        )
    } else if t.has_last_modified {
        let created = if entity == Entity::VENDOR {
            "datecreated"
        } else {
            "createddate"
        };
        format!(", {} AS created_iso", utc_text(&format!("t.{created}")))
    } else {
        String::new()
    }
}

/// The statement reading one record by internal id, with the columns of a page (so the row
/// is reshaped by the same function as a sync's).
pub fn record_query(entity: Entity, id: u64) -> Result<String, ConnectorError> {
    let t = table(entity)
        .ok_or_else(|| ConnectorError::Unsupported(format!("NetSuite has no {entity} read")))?;
    let mut select = t.select.to_string();
    if t.has_last_modified {
        select.push_str(&format!(
            ", {} AS lastmodified_iso",
            utc_text("t.lastmodifieddate")
        ));
    }
    select.push_str(&created_columns(entity, &t));
    let mut conditions: Vec<String> = t.filter.iter().map(|f| f.to_string()).collect();
    conditions.push(format!("t.id = {id}"));
    Ok(format!(
        "SELECT {select} FROM {} WHERE {}",
        t.from,
        conditions.join(" AND ")
    ))
}

/// The statement that finds an entity's earliest modification (one row), where it has one.
pub fn oldest_query(entity: Entity) -> Option<String> {
    let t = table(entity)?;
    if !t.has_last_modified {
        return None;
    }
    let mut sql = format!(
        "SELECT t.id, {} AS lastmodified_iso FROM {}",
        utc_text("t.lastmodifieddate"),
        t.from
    );
    if let Some(f) = t.filter {
        sql.push_str(" WHERE ");
        sql.push_str(f);
    }
    sql.push_str(" ORDER BY t.lastmodifieddate, t.id");
    Some(sql)
}

/// The record types under which NetSuite's deletion log (`DeletedRecord.type`) names the
/// records of `entity`, or `None` where the log does not cover it (locations: read whole
/// anyway). Item types share one id sequence (the `item` table), so each kind is listed;
/// a kind missing here is still found by the weekly full pass. Spellings are SuiteScript's
/// `record.Type` ids, compared lower-cased (see `docs/connectors/netsuite.md`).
pub fn deleted_types(entity: Entity) -> Option<&'static [&'static str]> {
    Some(if entity == Entity::PURCHASE_ORDER {
        &["purchaseorder"]
    } else if entity == Entity::VENDOR {
        &["vendor"]
    } else if entity == Entity::ITEM {
        &[
            "inventoryitem",
            "lotnumberedinventoryitem",
            "serializedinventoryitem",
            "noninventoryitem",
            "serviceitem",
            "otherchargeitem",
            "assemblyitem",
            "lotnumberedassemblyitem",
            "serializedassemblyitem",
            "kititem",
            "itemgroup",
            "discountitem",
            "markupitem",
            "descriptionitem",
            "subtotalitem",
            "paymentitem",
            "giftcertificateitem",
            "downloaditem",
        ]
    } else {
        return None;
    })
}

/// Where a read of the deletion log stopped: the last row's `(deleteddate, recordid)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedAfter {
    at: Timestamp,
    id: u64,
}

/// The deletion-log query of one page of `entity`'s deletions in `window` (same bounds as
/// the records' `lastmodifieddate`: whole seconds, lower bound rounded up, upper rounded down,
/// open ends left open), ordered and paged by keyset like the records. `None` where the log
/// does not cover the entity.
pub fn deleted_query(
    entity: Entity,
    window: &ReadWindow,
    after: Option<&DeletedAfter>,
) -> Option<String> {
    let types = deleted_types(entity)?;
    let types: Vec<String> = types.iter().map(|t| format!("'{t}'")).collect();
    // Lower-cased: the SOAP enumeration spells the same types in camelCase (`purchaseOrder`).
    let mut conditions = vec![format!("LOWER(d.type) IN ({})", types.join(", "))];
    if let Some(since) = window.modified_since {
        conditions.push(format!("d.deleteddate >= {}", to_timestamp(since, true)));
    }
    if let Some(until) = window.modified_until {
        conditions.push(format!("d.deleteddate <= {}", to_timestamp(until, false)));
    }
    if let Some(a) = after {
        let at = to_timestamp(a.at, false);
        conditions.push(format!(
            "(d.deleteddate > {at} OR (d.deleteddate = {at} AND d.recordid > {}))",
            a.id
        ));
    }
    Some(format!(
        "SELECT d.recordid, {} AS deleted_iso FROM DeletedRecord d WHERE {} ORDER BY d.deleteddate, d.recordid",
        utc_text("d.deleteddate"),
        conditions.join(" AND ")
    ))
}

/// A deletion-log row's place in the keyset.
pub fn deleted_position(row: &Value) -> Option<DeletedAfter> {
    Some(DeletedAfter {
        at: Timestamp::parse_rfc3339(&text(row, "deleted_iso")?)?,
        id: text(row, "recordid")?.parse().ok()?,
    })
}

/// Whether reads of `entity` are bounded by modification time.
pub fn windowed(entity: Entity) -> bool {
    table(entity).is_some_and(|t| t.has_last_modified)
}

/// The lines of some orders, in order.
pub fn lines_query(order_ids: &[u64]) -> String {
    let ids: Vec<String> = order_ids.iter().map(u64::to_string).collect();
    format!(
        "SELECT tl.*, BUILTIN.DF(tl.item) AS item_name, TO_CHAR(tl.expectedreceiptdate, 'YYYY-MM-DD') AS expectedreceipt_iso \
         FROM transactionline tl WHERE tl.mainline = 'F' AND tl.transaction IN ({}) \
         ORDER BY tl.transaction, tl.linesequencenumber",
        ids.join(", ")
    )
}

/// A SuiteQL value as text (values come as strings, or as numbers behind a switch).
fn into_text(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A row's value as text, read in place.
pub fn text(row: &Value, key: &str) -> Option<String> {
    row.get(key).cloned().and_then(into_text)
}

/// A SuiteQL row being reshaped: its values are moved out, never copied (rows are most of
/// a sync's reading work). Removal keeps the order of what is left, so custom fields keep
/// the source's order and a record's content hash is the same as when it was copied.
struct Row(Map<String, Value>);

impl Row {
    fn new(row: Value) -> Row {
        match row {
            Value::Object(m) => Row(m),
            _ => Row(Map::new()),
        }
    }

    fn take(&mut self, key: &str) -> Option<String> {
        self.0.shift_remove(key).and_then(into_text)
    }

    /// Moves text values into `m` under new names, in the order given: `(to, from)`.
    fn texts_into(&mut self, m: &mut Map<String, Value>, names: &[(&str, &str)]) {
        for &(to, from) in names {
            if let Some(v) = self.take(from) {
                m.insert(to.into(), Value::String(v));
            }
        }
    }

    /// A select column and its display name (`BUILTIN.DF`) as `{id, refName}`, or null.
    fn reference(&mut self, id: &str, name: &str) -> Value {
        let id = self.take(id);
        reference(id, self.take(name))
    }

    /// `T`/`F` flags as booleans.
    fn flag(&mut self, key: &str) -> Option<bool> {
        match self.0.shift_remove(key)? {
            Value::Bool(b) => Some(b),
            Value::String(s) => Some(s == "T" || s.eq_ignore_ascii_case("true")),
            _ => None,
        }
    }

    /// A flag that is false unless the row says otherwise (`isInactive`).
    fn flag_into(&mut self, m: &mut Map<String, Value>, to: &str, from: &str) {
        let flag = self.flag(from).unwrap_or(false);
        m.insert(to.into(), Value::Bool(flag));
    }

    fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Moves the row's custom fields (`custbody_*`, …) not already set into `m`; their
    /// display names (`*_name`) stay behind.
    fn custom_into(self, m: &mut Map<String, Value>, prefix: &str) {
        for (k, v) in self.0 {
            if k.starts_with(prefix) && !k.ends_with("_name") && !m.contains_key(&k) {
                m.insert(k, v);
            }
        }
    }
}

fn reference(id: Option<String>, name: Option<String>) -> Value {
    match id {
        Some(id) => {
            let mut m = Map::new();
            m.insert("id".into(), Value::String(id));
            if let Some(n) = name {
                m.insert("refName".into(), Value::String(n));
            }
            Value::Object(m)
        }
        None => Value::Null,
    }
}

/// The record's id and modification time (for the cursor).
pub fn position(row: &Value) -> Option<(u64, Option<String>)> {
    let id = text(row, "id")?.parse().ok()?;
    Some((id, text(row, "lastmodified_iso")))
}

/// A purchase-order header row as the raw record (lines added later). Shape:
/// `{id, tranId, transactionNumber, tranDate, createdDate, lastModifiedDate,
///   entity: {id, refName}, orderStatus: "B", status: "Pending Receipt", approvalStatus: "2",
///   currency: {id, refName}, total, memo, externalId, location: {id, refName},
///   custbody_*: value (selects as {id, refName}), lines: [...]}`.
pub fn order_header(row: Value) -> Map<String, Value> {
    let mut row = Row::new(row);
    let mut m = Map::new();
    row.texts_into(
        &mut m,
        &[
            ("id", "id"),
            ("tranId", "tranid"),
            ("transactionNumber", "transactionnumber"),
            ("tranDate", "trandate_iso"),
            ("createdDate", "created_iso"),
            ("lastModifiedDate", "lastmodified_iso"),
        ],
    );
    m.insert("entity".into(), row.reference("entity", "entity_name"));
    row.texts_into(&mut m, &[("orderStatus", "status")]);
    if let Some(s) = row.take("status_name") {
        let s = s
            .strip_prefix("Purchase Order : ")
            .map_or_else(|| s.clone(), str::to_string);
        m.insert("status".into(), Value::String(s));
    }
    row.texts_into(&mut m, &[("approvalStatus", "approvalstatus")]);
    m.insert(
        "currency".into(),
        row.reference("currency", "currency_name"),
    );
    row.texts_into(
        &mut m,
        &[
            ("total", "foreigntotal"),
            ("memo", "memo"),
            ("externalId", "externalid"),
        ],
    );
    m.insert(
        "location".into(),
        row.reference("location", "location_name"),
    );
    if row.has("custbody_requestor") {
        let requestor = row.reference("custbody_requestor", "custbody_requestor_name");
        m.insert("custbody_requestor".into(), requestor);
    }
    row.custom_into(&mut m, "custbody");
    m.insert("lines".into(), Value::Array(Vec::new()));
    m
}

/// A `transactionline` row as a raw line: `{line, item: {id, refName}, description, quantity,
/// quantityReceived, quantityBilled, rate, amount, isClosed, expectedReceiptDate, custcol_*}`.
pub fn order_line(row: Value) -> Value {
    let mut row = Row::new(row);
    let mut m = Map::new();
    if let Some(line) = row.take("linesequencenumber").or_else(|| row.take("id")) {
        m.insert("line".into(), Value::String(line));
    }
    m.insert("item".into(), row.reference("item", "item_name"));
    row.texts_into(
        &mut m,
        &[
            ("description", "memo"),
            ("quantity", "quantity"),
            ("quantityReceived", "quantityshiprecv"),
            ("quantityBilled", "quantitybilled"),
            ("rate", "rate"),
            ("amount", "netamount"),
        ],
    );
    if let Some(closed) = row.flag("isclosed") {
        m.insert("isClosed".into(), Value::Bool(closed));
    }
    row.texts_into(&mut m, &[("expectedReceiptDate", "expectedreceipt_iso")]);
    row.custom_into(&mut m, "custcol");
    Value::Object(m)
}

/// A vendor row: `{id, entityId, companyName, email, phone, isInactive, dateCreated,
/// lastModifiedDate, currency: {id, refName}, custentity_*}`.
pub fn vendor(row: Value) -> Value {
    let mut row = Row::new(row);
    let mut m = Map::new();
    row.texts_into(
        &mut m,
        &[
            ("id", "id"),
            ("entityId", "entityid"),
            ("companyName", "companyname"),
            ("email", "email"),
            ("phone", "phone"),
        ],
    );
    row.flag_into(&mut m, "isInactive", "isinactive");
    row.texts_into(
        &mut m,
        &[
            ("dateCreated", "created_iso"),
            ("lastModifiedDate", "lastmodified_iso"),
        ],
    );
    m.insert(
        "currency".into(),
        row.reference("currency", "currency_name"),
    );
    row.custom_into(&mut m, "custentity");
    Value::Object(m)
}

/// An item row: `{id, itemId, displayName, description, cost, itemType, isInactive,
/// createdDate, lastModifiedDate, upcCode, custitem_*}`.
pub fn item(row: Value) -> Value {
    let mut row = Row::new(row);
    let mut m = Map::new();
    row.texts_into(
        &mut m,
        &[
            ("id", "id"),
            ("itemId", "itemid"),
            ("displayName", "displayname"),
            ("description", "description"),
            ("cost", "cost"),
            ("itemType", "itemtype"),
        ],
    );
    row.flag_into(&mut m, "isInactive", "isinactive");
    row.texts_into(
        &mut m,
        &[
            ("createdDate", "created_iso"),
            ("lastModifiedDate", "lastmodified_iso"),
            ("upcCode", "upccode"),
        ],
    );
    row.custom_into(&mut m, "custitem");
    Value::Object(m)
}

/// A location row: `{id, name, fullName, isInactive}`.
pub fn location(row: Value) -> Value {
    let mut row = Row::new(row);
    let mut m = Map::new();
    row.texts_into(
        &mut m,
        &[("id", "id"), ("name", "name"), ("fullName", "fullname")],
    );
    row.flag_into(&mut m, "isInactive", "isinactive");
    row.custom_into(&mut m, "custrecord");
    Value::Object(m)
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn record_ref(v: Option<&Value>) -> Value {
    let Some(v) = v else { return Value::Null };
    reference(
        v.get("id").and_then(scalar_text),
        v.get("refName").and_then(scalar_text),
    )
}

fn copy_text(out: &mut Map<String, Value>, rec: &Value, from: &str, to: &str) {
    if let Some(v) = rec.get(from).and_then(scalar_text) {
        out.insert(to.into(), Value::String(v));
    }
}

fn copy_custom(out: &mut Map<String, Value>, rec: &Value, prefix: &str) {
    let Value::Object(obj) = rec else { return };
    for (k, v) in obj {
        if !k.starts_with(prefix) {
            continue;
        }
        // Multi-selects are collections; keep the first value as a reference, as reads do.
        let value = match v.get("items") {
            Some(Value::Array(items)) => items.first().map_or(Value::Null, |x| record_ref(Some(x))),
            _ => match v {
                Value::Object(_) => record_ref(Some(v)),
                Value::Number(n) => Value::String(n.to_string()),
                other => other.clone(),
            },
        };
        if !value.is_null() {
            out.insert(k.clone(), value);
        }
    }
}

/// A record-API purchase order (`?expandSubResources=true`) in the same raw shape as reads.
pub fn order_from_record(rec: &Value) -> Value {
    let mut m = Map::new();
    copy_text(&mut m, rec, "id", "id");
    copy_text(&mut m, rec, "tranId", "tranId");
    copy_text(&mut m, rec, "transactionNumber", "transactionNumber");
    copy_text(&mut m, rec, "tranDate", "tranDate");
    copy_text(&mut m, rec, "createdDate", "createdDate");
    copy_text(&mut m, rec, "lastModifiedDate", "lastModifiedDate");
    m.insert("entity".into(), record_ref(rec.get("entity")));
    if let Some(v) = rec.pointer("/orderStatus/id").and_then(scalar_text) {
        m.insert("orderStatus".into(), Value::String(v));
    }
    if let Some(v) = rec.pointer("/status/refName").and_then(scalar_text) {
        m.insert("status".into(), Value::String(v));
    }
    if let Some(v) = rec.pointer("/approvalStatus/id").and_then(scalar_text) {
        m.insert("approvalStatus".into(), Value::String(v));
    }
    m.insert("currency".into(), record_ref(rec.get("currency")));
    copy_text(&mut m, rec, "total", "total");
    copy_text(&mut m, rec, "memo", "memo");
    copy_text(&mut m, rec, "externalId", "externalId");
    m.insert("location".into(), record_ref(rec.get("location")));
    copy_custom(&mut m, rec, "custbody");
    let lines: Vec<Value> = rec
        .pointer("/item/items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|l| {
                    let mut o = Map::new();
                    copy_text(&mut o, l, "line", "line");
                    o.insert("item".into(), record_ref(l.get("item")));
                    for key in [
                        "description",
                        "quantity",
                        "quantityReceived",
                        "quantityBilled",
                        "rate",
                        "amount",
                        "expectedReceiptDate",
                    ] {
                        copy_text(&mut o, l, key, key);
                    }
                    if let Some(b) = l.get("isClosed").and_then(Value::as_bool) {
                        o.insert("isClosed".into(), Value::Bool(b));
                    }
                    copy_custom(&mut o, l, "custcol");
                    Value::Object(o)
                })
                .collect()
        })
        .unwrap_or_default();
    m.insert("lines".into(), Value::Array(lines));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_tampered_ones_are_rejected() {
        let c = Cursor {
            t: Some("2025-03-04T05:06:07Z".into()),
            id: 42,
        };
        assert_eq!(Cursor::parse(&c.encode()).unwrap(), c);
        assert!(Cursor::parse(r#"{"t":"1' OR 1=1 --","id":1}"#).is_err());
        assert!(Cursor::parse(r#"{"id":"1; DROP"}"#).is_err());
        assert!(Cursor::parse("garbage").is_err());
    }

    #[test]
    fn rows_are_reshaped_with_custom_fields_in_the_source_order() {
        // The raw record's text is part of its content hash: a different key order would
        // report every record as changed at the first sync after an upgrade.
        let row = serde_json::json!({
            "id": "7", "custbody_z": "last?", "tranid": "PO7", "custbody_requestor": "3",
            "custbody_requestor_name": "Ann", "entity": 12, "entity_name": "Acme",
            "custbody_a": "first?", "status": "B", "status_name": "Purchase Order : Pending Bill",
            "foreigntotal": "10.5", "custcolumn_not_body": "x"
        });
        let header = Value::Object(order_header(row));
        assert_eq!(
            header.to_string(),
            r#"{"id":"7","tranId":"PO7","entity":{"id":"12","refName":"Acme"},"orderStatus":"B","status":"Pending Bill","currency":null,"total":"10.5","location":null,"custbody_requestor":{"id":"3","refName":"Ann"},"custbody_z":"last?","custbody_a":"first?","lines":[]}"#
        );
        let line = order_line(serde_json::json!({
            "id": "1", "linesequencenumber": 2, "custcol_b": 1, "isclosed": "F",
            "item": "5", "item_name": "Bolt", "custcol_a": "y", "custcol_a_name": "Y"
        }));
        assert_eq!(
            line.to_string(),
            r#"{"line":"2","item":{"id":"5","refName":"Bolt"},"isClosed":false,"custcol_b":1,"custcol_a":"y"}"#
        );
    }

    #[test]
    fn windows_round_to_whole_seconds_and_keyset_follows_the_order() {
        let window = ReadWindow {
            modified_since: Some(Timestamp(1_700_000_000_500_000)),
            modified_until: Some(Timestamp(1_700_000_100_900_000)),
        };
        let cursor = Cursor {
            t: Some("2023-11-14T22:13:20Z".into()),
            id: 9,
        };
        let (sql, page) = page_query(Entity::PURCHASE_ORDER, &window, Some(&cursor)).unwrap();
        assert_eq!(page, ORDER_PAGE);
        assert!(sql.contains("t.lastmodifieddate >= TO_TIMESTAMP_TZ('2023-11-14 22:13:21 +00:00'"));
        assert!(sql.contains("t.lastmodifieddate <= TO_TIMESTAMP_TZ('2023-11-14 22:15:00 +00:00'"));
        assert!(sql.contains(
            r#"TO_CHAR(SYS_EXTRACT_UTC(t.lastmodifieddate), 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS lastmodified_iso"#
        ));
        assert!(sql.contains("t.id > 9"));
        assert!(sql.ends_with("ORDER BY t.lastmodifieddate, t.id"));
        let (sql, _) = page_query(Entity::LOCATION, &window, None).unwrap();
        assert!(!sql.contains("lastmodifieddate"));
    }

    #[test]
    fn deletion_log_reads_use_the_records_bounds_and_a_keyset() {
        let window = ReadWindow {
            modified_since: Some(Timestamp(1_700_000_000_500_000)),
            modified_until: Some(Timestamp(1_700_000_100_900_000)),
        };
        let sql = deleted_query(Entity::PURCHASE_ORDER, &window, None).unwrap();
        assert!(sql.contains("FROM DeletedRecord d WHERE LOWER(d.type) IN ('purchaseorder')"));
        assert!(sql.contains("d.deleteddate >= TO_TIMESTAMP_TZ('2023-11-14 22:13:21 +00:00'"));
        assert!(sql.contains("d.deleteddate <= TO_TIMESTAMP_TZ('2023-11-14 22:15:00 +00:00'"));
        assert!(sql.ends_with("ORDER BY d.deleteddate, d.recordid"));
        // No upper bound when the window has none.
        let open = ReadWindow {
            modified_since: window.modified_since,
            modified_until: None,
        };
        let sql = deleted_query(Entity::VENDOR, &open, None).unwrap();
        assert!(sql.contains("IN ('vendor')") && !sql.contains("<="));
        let row = serde_json::json!({"recordid": "42", "deleted_iso": "2023-11-14T22:14:00Z"});
        let after = deleted_position(&row).unwrap();
        let sql = deleted_query(Entity::ITEM, &window, Some(&after)).unwrap();
        assert!(sql.contains("'inventoryitem'"));
        assert!(sql.contains(
            "(d.deleteddate > TO_TIMESTAMP_TZ('2023-11-14 22:14:00 +00:00', 'YYYY-MM-DD HH24:MI:SS TZH:TZM') OR (d.deleteddate = TO_TIMESTAMP_TZ('2023-11-14 22:14:00 +00:00', 'YYYY-MM-DD HH24:MI:SS TZH:TZM') AND d.recordid > 42))"
        ));
        assert!(deleted_query(Entity::LOCATION, &window, None).is_none());
        // A row that is not the log's shape gives no position (so paging stops).
        assert!(deleted_position(&serde_json::json!({"recordid": "x"})).is_none());
    }

    #[test]
    fn the_descriptor_says_which_entities_the_deletion_log_covers() {
        use ironbridge_model::api::DeletionDetection;
        for spec in crate::netsuite::DESCRIPTOR.reads {
            let logged = spec.deletions == DeletionDetection::DeletionLog;
            assert_eq!(
                logged,
                deleted_types(spec.entity).is_some(),
                "{}",
                spec.entity
            );
        }
    }
}
