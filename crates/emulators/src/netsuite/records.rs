//! Record API reads: list (ids and links, `limit`/`offset`, `q`), one record (`expandSubResources`,
//! `fields`, `eid:`), and the `item` sublist of a purchase order.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Ns;
use super::auth::authorize;
use super::errors::{Detail, NsError};
use super::qfilter::{self, DateFormat, FieldValue, Pred, Schema};
use super::render::{self, RecType};
use crate::common::Dataset;
use crate::common::table::{Record, Table};

pub const COLLECTION_TYPE: &str =
    "application/vnd.oracle.resource+json; type=collection; charset=UTF-8";
pub const SINGULAR_TYPE: &str =
    "application/vnd.oracle.resource+json; type=singular-resource; charset=UTF-8";

pub fn with_type(v: Value, ctype: &'static str) -> Response {
    let mut r = Json(v).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(ctype));
    r
}

pub fn query_params(raw: &Option<String>) -> HashMap<String, String> {
    raw.as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

pub fn rec_type(s: &str) -> Result<RecType, NsError> {
    RecType::parse(s).ok_or_else(|| {
        NsError::new(
            StatusCode::NOT_FOUND,
            Detail::new(
                "NONEXISTENT_ID",
                format!("Record type '{s}' does not exist."),
            ),
        )
    })
}

/// Parses `limit` and `offset` as the record API and SuiteQL do (limit 1..=1000, default 1000).
pub fn paging(p: &HashMap<String, String>) -> Result<(usize, usize), NsError> {
    let limit = match p.get("limit") {
        None => 1000,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(NsError::invalid_parameter(
                    "limit",
                    format!(
                        "Invalid value for query parameter 'limit': {v}. The value must be an integer between 1 and 1000."
                    ),
                ));
            }
        },
    };
    let offset = match p.get("offset") {
        None => 0,
        Some(v) => v.parse::<usize>().map_err(|_| {
            NsError::invalid_parameter(
                "offset",
                format!("Invalid value for query parameter 'offset': {v}. The value must be a non-negative integer."),
            )
        })?,
    };
    Ok((limit, offset))
}

/// Pages a collection reaches at most ("a maximum of 1000 pages of results can be
/// returned", Collection Paging, section_156414087576).
pub const MAX_PAGES: usize = 1000;

/// NetSuite's paging is by page: `offset` must be a multiple of `limit` (reported by clients
/// that tripped over it, ehmad11/netsuite-rest#25; the error's wording is inferred).
pub fn check_page_aligned(limit: usize, offset: usize) -> Result<(), NsError> {
    if !offset.is_multiple_of(limit) {
        return Err(NsError::invalid_parameter(
            "offset",
            format!(
                "Invalid value for query parameter 'offset': {offset}. The offset must be a multiple of the limit ({limit})."
            ),
        ));
    }
    Ok(())
}

/// `links` for a page: self, plus first/prev/next/last where they apply.
pub fn page_links(
    base_href: &str,
    extra: &str,
    limit: usize,
    offset: usize,
    total: usize,
) -> Vec<Value> {
    let href = |o: usize| format!("{base_href}?limit={limit}&offset={o}{extra}");
    let last = if total == 0 {
        0
    } else {
        (total - 1) / limit * limit
    };
    let mut links = Vec::new();
    if offset > 0 {
        links.push(json!({"rel": "first", "href": href(0)}));
        links.push(json!({"rel": "prev", "href": href(offset.saturating_sub(limit))}));
    }
    if offset + limit < total {
        links.push(json!({"rel": "next", "href": href(offset + limit)}));
    }
    links.push(json!({"rel": "last", "href": href(last)}));
    links.push(json!({"rel": "self", "href": href(offset)}));
    links
}

/// Ids matching `pred`, ascending; a last-modified range is answered from the index.
fn matching_ids<R: Record>(
    table: &Table<R>,
    pred: &Pred,
    lm_field: Option<&str>,
    field: &dyn Fn(&R, &str) -> FieldValue,
) -> Vec<u64> {
    let (lo, hi, exact) = match lm_field {
        Some(f) => pred.time_bounds(f),
        None => (Bound::Unbounded, Bound::Unbounded, false),
    };
    let mut ids: Vec<u64> = if lo != Bound::Unbounded || hi != Bound::Unbounded {
        let range = table.lm_range(lo, hi);
        if exact {
            range.iter().map(|k| k.1).collect()
        } else {
            range
                .iter()
                .filter(|k| table.get(k.1).is_some_and(|r| pred.eval(&|f| field(&r, f))))
                .map(|k| k.1)
                .collect()
        }
    } else {
        table
            .ids()
            .iter()
            .copied()
            .filter(|&id| table.get(id).is_some_and(|r| pred.eval(&|f| field(&r, f))))
            .collect()
    };
    ids.sort_unstable();
    ids
}

fn filtered_ids(ns: &Ns, t: RecType, data: &Dataset, pred: &Pred, key: String) -> Arc<Vec<u64>> {
    let version = match t {
        RecType::PurchaseOrder => data.purchase_orders.version(),
        RecType::Vendor => data.vendors.version(),
        RecType::InventoryItem => data.items.version(),
        RecType::Location => data.locations.version(),
    };
    if let Some((k, v, ids)) = &*ns.cache.lock().unwrap_or_else(|e| e.into_inner())
        && *k == key
        && *v == version
    {
        return ids.clone();
    }
    let lm = t.last_modified_field();
    let ids = match t {
        RecType::PurchaseOrder => matching_ids(&data.purchase_orders, pred, lm, &|po, f| {
            if f == "email" {
                data.vendors
                    .get(po.vendor_id)
                    .map_or(FieldValue::Null, |v| FieldValue::Str(v.email))
            } else {
                render::po_field(po, f)
            }
        }),
        RecType::Vendor => matching_ids(&data.vendors, pred, lm, &render::vendor_field),
        RecType::InventoryItem => matching_ids(&data.items, pred, lm, &render::item_field),
        RecType::Location => matching_ids(&data.locations, pred, lm, &render::location_field),
    };
    let ids = Arc::new(ids);
    *ns.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, version, ids.clone()));
    ids
}

fn all_ids(t: RecType, data: &Dataset) -> &[u64] {
    match t {
        RecType::PurchaseOrder => data.purchase_orders.ids(),
        RecType::Vendor => data.vendors.ids(),
        RecType::InventoryItem => data.items.ids(),
        RecType::Location => data.locations.ids(),
    }
}

pub async fn list(
    State(ns): State<Ns>,
    Path(rtype): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, NsError> {
    authorize(&ns, &method, &uri, &headers)?;
    let t = rec_type(&rtype)?;
    let p = query_params(&raw);
    let (limit, offset) = paging(&p)?;
    let settings = ns.settings();
    if settings.require_offset_multiple_of_limit {
        check_page_aligned(limit, offset)?;
    }
    if offset / limit >= MAX_PAGES {
        return Err(NsError::invalid_parameter(
            "offset",
            format!(
                "Invalid value for query parameter 'offset': {offset}. At most {MAX_PAGES} pages of {limit} results can be retrieved."
            ),
        ));
    }
    let pred = match p.get("q") {
        Some(q) => {
            let schema = Schema {
                record_type: t.name(),
                fields: t.filterable(),
                date_format: DateFormat::parse(&settings.date_format).unwrap_or(DateFormat::Mdy),
                time_zone: settings.zone(),
            };
            Some(qfilter::bind(&qfilter::parse(q)?, &schema)?)
        }
        None => None,
    };
    let base = ns.core.origin(&headers);
    let data = ns.core.read();
    let filtered;
    let ids: &[u64] = match &pred {
        Some(pred) => {
            let key = format!(
                "list:{}:{}:{}:{}",
                t.name(),
                p.get("q").map_or("", |s| s),
                settings.date_format,
                settings.time_zone
            );
            filtered = filtered_ids(&ns, t, &data, pred, key);
            &filtered
        }
        None => all_ids(t, &data),
    };
    let total = ids.len();
    // The rest lies beyond the last page a client may ask for: not offered as a next page.
    let reachable = total.min(MAX_PAGES * limit);
    let page: &[u64] = if offset >= reachable {
        &[]
    } else {
        &ids[offset..(offset + limit).min(reachable)]
    };
    let items: Vec<Value> = page
        .iter()
        .map(|id| {
            json!({ "links": [{"rel": "self", "href": render::record_url(&base, t, *id)}], "id": id.to_string() })
        })
        .collect();
    let extra = p
        .get("q")
        .map(|q| {
            format!(
                "&q={}",
                form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
            )
        })
        .unwrap_or_default();
    let href = format!("{base}/services/rest/record/v1/{}", t.link_name());
    Ok(with_type(
        json!({
            "links": page_links(&href, &extra, limit, offset, reachable),
            "count": items.len(),
            "hasMore": offset + items.len() < reachable,
            "offset": offset,
            "totalResults": total,
            "items": items,
        }),
        COLLECTION_TYPE,
    ))
}

/// Resolves `{id}` or `eid:{externalId}` to an internal id.
pub fn resolve_id(
    ns: &Ns,
    t: RecType,
    data: &Dataset,
    raw: &str,
    url_path: &str,
) -> Result<u64, NsError> {
    let code = ns.settings().not_found_code;
    let missing = || NsError::not_found(&code, t.name(), raw, url_path);
    if let Some(eid) = raw.strip_prefix("eid:") {
        if t != RecType::PurchaseOrder {
            return Err(missing());
        }
        return find_external(&data.purchase_orders, eid).ok_or_else(missing);
    }
    let id: u64 = raw.parse().map_err(|_| missing())?;
    let exists = match t {
        RecType::PurchaseOrder => data.purchase_orders.exists(id),
        RecType::Vendor => data.vendors.exists(id),
        RecType::InventoryItem => data.items.exists(id),
        RecType::Location => data.locations.exists(id),
    };
    if exists { Ok(id) } else { Err(missing()) }
}

/// Seeded orders have no external id, so only the overlay is searched.
pub fn find_external(t: &Table<crate::common::datagen::PurchaseOrder>, eid: &str) -> Option<u64> {
    t.overlay_values()
        .find(|po| po.external_id.as_deref() == Some(eid))
        .map(|po| po.id)
}

fn keep_fields(v: Value, fields: Option<&String>) -> Value {
    let Some(fields) = fields else { return v };
    let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| k == "links" || k == "id" || wanted.contains(&k.as_str()))
                .collect(),
        ),
        other => other,
    }
}

pub async fn get_one(
    State(ns): State<Ns>,
    Path((rtype, raw_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, NsError> {
    authorize(&ns, &method, &uri, &headers)?;
    let t = rec_type(&rtype)?;
    let p = query_params(&raw);
    let expand = p
        .get("expandSubResources")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let base = ns.core.origin(&headers);
    let data = ns.core.read();
    let id = resolve_id(&ns, t, &data, &raw_id, uri.path())?;
    let v = match t {
        RecType::PurchaseOrder => data
            .purchase_orders
            .get(id)
            .map(|po| render::po_json(&base, &po, &data, expand)),
        RecType::Vendor => data.vendors.get(id).map(|v| render::vendor_json(&base, &v)),
        RecType::InventoryItem => data.items.get(id).map(|i| render::item_json(&base, &i)),
        RecType::Location => data
            .locations
            .get(id)
            .map(|l| render::location_json(&base, &l)),
    };
    let v = v.ok_or_else(|| {
        NsError::not_found(&ns.settings().not_found_code, t.name(), &raw_id, uri.path())
    })?;
    Ok(with_type(keep_fields(v, p.get("fields")), SINGULAR_TYPE))
}

fn sublist_po(
    ns: &Ns,
    rtype: &str,
    raw_id: &str,
    sublist: &str,
    uri: &Uri,
    data: &Dataset,
) -> Result<crate::common::datagen::PurchaseOrder, NsError> {
    let t = rec_type(rtype)?;
    let id = resolve_id(ns, t, data, raw_id, uri.path())?;
    if t != RecType::PurchaseOrder || sublist != "item" {
        return Err(NsError::new(
            StatusCode::NOT_FOUND,
            Detail::new(
                "NONEXISTENT_ID",
                format!(
                    "Sublist '{sublist}' does not exist on record type {}.",
                    t.name()
                ),
            )
            .with("o:errorUrl", uri.path().to_string()),
        ));
    }
    data.purchase_orders.get(id).ok_or_else(|| {
        NsError::not_found(&ns.settings().not_found_code, t.name(), raw_id, uri.path())
    })
}

pub async fn sublist(
    State(ns): State<Ns>,
    Path((rtype, raw_id, sub)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, NsError> {
    authorize(&ns, &method, &uri, &headers)?;
    let base = ns.core.origin(&headers);
    let data = ns.core.read();
    let po = sublist_po(&ns, &rtype, &raw_id, &sub, &uri, &data)?;
    let items: Vec<Value> = po
        .lines
        .iter()
        .map(|l| render::line_json(&base, &po, l, &data))
        .collect();
    let href = format!(
        "{}/item",
        render::record_url(&base, RecType::PurchaseOrder, po.id)
    );
    Ok(with_type(
        json!({ "links": [{"rel": "self", "href": href}], "count": items.len(), "hasMore": false,
                "offset": 0, "totalResults": items.len(), "items": items }),
        COLLECTION_TYPE,
    ))
}

pub async fn sublist_line(
    State(ns): State<Ns>,
    Path((rtype, raw_id, sub, line)): Path<(String, String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, NsError> {
    authorize(&ns, &method, &uri, &headers)?;
    let base = ns.core.origin(&headers);
    let data = ns.core.read();
    let po = sublist_po(&ns, &rtype, &raw_id, &sub, &uri, &data)?;
    let l = line
        .parse::<u32>()
        .ok()
        .and_then(|n| po.lines.iter().find(|l| l.line == n))
        .ok_or_else(|| {
            NsError::not_found(
                &ns.settings().not_found_code,
                "purchaseOrder.item",
                &line,
                uri.path(),
            )
        })?;
    Ok(with_type(
        render::line_json(&base, &po, l, &data),
        SINGULAR_TYPE,
    ))
}
