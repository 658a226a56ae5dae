//! API v2.0 reads: URL parsing (tenant/environment, companies, entity sets, keys, navigation),
//! `$filter $orderby $top $skip $count $select $expand`, server-driven paging with
//! `Prefer: odata.maxpagesize` and `@odata.nextLink`, and `$metadata`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::authenticate;
use super::errors::BcError;
use super::model::{self, Kind};
use super::{Bc, writes};
use crate::common::Dataset;
use crate::common::jsontext::Members;
use crate::common::odata::{self, OVal, Version};

/// Entity sets under a company.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Set {
    PurchaseOrders,
    PurchaseOrderLines,
    Vendors,
    Items,
    /// Posted purchase invoices (read-only here: drafts are not emulated).
    PurchaseInvoices,
}

impl Set {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "purchaseOrders" => Some(Set::PurchaseOrders),
            "purchaseOrderLines" => Some(Set::PurchaseOrderLines),
            "vendors" => Some(Set::Vendors),
            "items" => Some(Set::Items),
            "purchaseInvoices" => Some(Set::PurchaseInvoices),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Set::PurchaseOrders => "purchaseOrders",
            Set::PurchaseOrderLines => "purchaseOrderLines",
            Set::Vendors => "vendors",
            Set::Items => "items",
            Set::PurchaseInvoices => "purchaseInvoices",
        }
    }
    fn kind(self) -> Kind {
        match self {
            Set::PurchaseOrders => Kind::PurchaseOrder,
            Set::PurchaseOrderLines => Kind::Line,
            Set::Vendors => Kind::Vendor,
            Set::Items => Kind::Item,
            Set::PurchaseInvoices => Kind::PostedInvoice,
        }
    }
    fn record_name(self) -> &'static str {
        match self {
            Set::PurchaseOrders => "Purchase Header",
            Set::PurchaseOrderLines => "Purchase Line",
            Set::Vendors => "Vendor",
            Set::Items => "Item",
            Set::PurchaseInvoices => "Purch. Inv. Header",
        }
    }
}

#[derive(Debug, PartialEq)]
pub enum Res {
    ServiceDoc,
    Metadata,
    Companies,
    Company,
    Collection(Set),
    Entity(Set, u64),
    /// A bound action of a purchase order (`purchaseOrders({id})/Microsoft.NAV.<name>`).
    Action(u64, String),
    /// `purchaseOrders(id)/purchaseOrderLines`
    Lines(u64),
}

pub struct Ctx {
    pub base: String,
    pub root: String,
    pub company: String,
    pub params: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub method: Method,
    pub seed: u64,
    pub now: i64,
}

impl Ctx {
    pub fn param(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
    pub fn context(&self, suffix: &str) -> String {
        format!(
            "{}/$metadata#companies({}){suffix}",
            self.root, self.company
        )
    }
}

fn seg(s: &str) -> (&str, Option<&str>) {
    match s.find('(') {
        Some(i) if s.ends_with(')') => {
            let inner = &s[i + 1..s.len() - 1];
            (&s[..i], Some(inner.strip_prefix("id=").unwrap_or(inner)))
        }
        _ => (s, None),
    }
}

/// Parses everything after `/v2.0/`: `[tenant/]environment/api/v2.0/...`.
fn parse(bc: &Bc, rest: &str) -> Result<(String, Res), BcError> {
    let s = bc.settings();
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let api = parts
        .windows(2)
        .position(|w| w[0] == "api" && w[1] == "v2.0")
        .ok_or_else(|| BcError::segment(rest))?;
    let prefix = &parts[..api];
    let ok_env = match prefix {
        [env] => *env == s.environment,
        [tenant, env] => (*tenant == s.tenant_id) && *env == s.environment,
        _ => false,
    };
    if !ok_env {
        return Err(BcError::new(
            StatusCode::NOT_FOUND,
            "Internal_TenantUnavailable",
            format!(
                "Environment '{}' does not exist for this tenant.",
                prefix.join("/")
            ),
        ));
    }
    let root = prefix.join("/");
    let segs = &parts[api + 2..];
    let company = model::guid(bc.core.seed, Kind::Company, 1);
    let res = match segs {
        [] => Res::ServiceDoc,
        ["$metadata"] => Res::Metadata,
        [c] => match seg(c) {
            ("companies", None) => Res::Companies,
            ("companies", Some(id)) if id.eq_ignore_ascii_case(&company) => Res::Company,
            ("companies", Some(_)) => {
                return Err(BcError::new(
                    StatusCode::NOT_FOUND,
                    "Internal_CompanyNotFound",
                    "The company does not exist.",
                ));
            }
            (other, _) => return Err(BcError::segment(other)),
        },
        [c, rest @ ..] => {
            match seg(c) {
                ("companies", Some(id)) if id.eq_ignore_ascii_case(&company) => {}
                ("companies", Some(_)) => {
                    return Err(BcError::new(
                        StatusCode::NOT_FOUND,
                        "Internal_CompanyNotFound",
                        "The company does not exist.",
                    ));
                }
                (other, _) => return Err(BcError::segment(other)),
            }
            let seed = bc.core.seed;
            let key = |set: Set, k: &str| {
                model::guid_id(seed, set.kind(), k)
                    .ok_or_else(|| BcError::not_found(set.record_name()))
            };
            match rest {
                [one] => {
                    let (name, k) = seg(one);
                    let set = Set::parse(name).ok_or_else(|| BcError::segment(name))?;
                    match k {
                        None => Res::Collection(set),
                        Some(k) => Res::Entity(set, key(set, k)?),
                    }
                }
                [po, action] if action.starts_with("Microsoft.NAV.") => {
                    let (name, k) = seg(po);
                    if name != "purchaseOrders" {
                        return Err(BcError::segment(action));
                    }
                    let id = key(
                        Set::PurchaseOrders,
                        k.ok_or_else(|| BcError::segment(name))?,
                    )?;
                    Res::Action(id, action.trim_start_matches("Microsoft.NAV.").to_string())
                }
                [po, lines] => {
                    let (name, k) = seg(po);
                    let (lname, lk) = seg(lines);
                    if name != "purchaseOrders" || lname != "purchaseOrderLines" {
                        return Err(BcError::segment(lname));
                    }
                    let id = key(
                        Set::PurchaseOrders,
                        k.ok_or_else(|| BcError::segment(name))?,
                    )?;
                    match lk {
                        None => Res::Lines(id),
                        Some(l) => {
                            let lid = key(Set::PurchaseOrderLines, l)?;
                            if lid >> 16 != id {
                                return Err(BcError::not_found("Purchase Line"));
                            }
                            Res::Entity(Set::PurchaseOrderLines, lid)
                        }
                    }
                }
                _ => return Err(BcError::segment(rest.join("/").as_str())),
            }
        }
    };
    Ok((root, res))
}

pub async fn unknown(uri: Uri) -> Response {
    BcError::segment(uri.path()).into_response()
}

pub async fn dispatch(
    State(bc): State<Bc>,
    Path(rest): Path<String>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    match dispatch_inner(&bc, &rest, method, headers, &raw, &body) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn dispatch_inner(
    bc: &Bc,
    rest: &str,
    method: Method,
    headers: HeaderMap,
    raw: &Option<String>,
    body: &[u8],
) -> Result<Response, BcError> {
    authenticate(bc, &headers)?;
    let (root, res) = parse(bc, rest)?;
    let base = bc.core.origin(&headers);
    let ctx = Ctx {
        root: format!("{base}/v2.0/{root}/api/v2.0"),
        base,
        company: model::guid(bc.core.seed, Kind::Company, 1),
        params: raw
            .as_deref()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default(),
        headers,
        method: method.clone(),
        seed: bc.core.seed,
        now: bc.core.clock.now_ms(),
    };
    if method != Method::GET && method != Method::HEAD {
        return writes::write(bc, &ctx, res, body);
    }
    match res {
        Res::ServiceDoc => {
            let sets: Vec<Value> = [
                "companies",
                "purchaseOrders",
                "purchaseOrderLines",
                "vendors",
                "items",
                "purchaseInvoices",
            ]
            .iter()
            .map(|n| json!({"name": n, "kind": "EntitySet", "url": n}))
            .collect();
            Ok(json_ok(
                json!({"@odata.context": format!("{}/$metadata", ctx.root), "value": sets}),
            ))
        }
        Res::Metadata => Ok(metadata(bc)),
        Res::Companies => Ok(json_ok(
            json!({"@odata.context": format!("{}/$metadata#companies", ctx.root), "value": [company(bc, &ctx)]}),
        )),
        Res::Company => {
            let mut c = company(bc, &ctx);
            c["@odata.context"] = json!(format!("{}/$metadata#companies/$entity", ctx.root));
            Ok(json_ok(c))
        }
        Res::Entity(set, id) => {
            let data = bc.core.read();
            let mut v = render(set, id, &ctx, &data)
                .ok_or_else(|| BcError::not_found(set.record_name()))?;
            if set == Set::PurchaseOrders && expand(&ctx)? {
                v["purchaseOrderLines"] = lines_of(id, &ctx, &data);
            }
            let etag = v["@odata.etag"].as_str().unwrap_or_default().to_string();
            let mut v = select(&ctx, v);
            v["@odata.context"] = json!(ctx.context(&format!("/{}/$entity", set.name())));
            let mut r = json_ok(v);
            if let Ok(h) = HeaderValue::from_str(&etag) {
                r.headers_mut().insert("etag", h);
            }
            Ok(r)
        }
        Res::Lines(id) => {
            let data = bc.core.read();
            if !data.purchase_orders.exists(id) {
                return Err(BcError::not_found("Purchase Header"));
            }
            collection(bc, &ctx, Set::PurchaseOrderLines, Some(id), &data)
        }
        Res::Collection(set) => {
            let data = bc.core.read();
            collection(bc, &ctx, set, None, &data)
        }
        Res::Action(..) => Err(BcError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "BadRequest_MethodNotAllowed",
            "'GET' requests for 'Microsoft.NAV' actions are not allowed.",
        )),
    }
}

/// Writes one entity of a page; `false` if it vanished. Without `$select` the text is written
/// directly (pages are large); with it, through a value so members can be dropped.
fn write_entity(
    set: Set,
    k: u64,
    ctx: &Ctx,
    data: &Dataset,
    want_lines: bool,
    out: &mut String,
) -> bool {
    if ctx.param("$select").is_some()
        || matches!(set, Set::Vendors | Set::Items | Set::PurchaseInvoices)
    {
        let Some(mut v) = render(set, k, ctx, data) else {
            return false;
        };
        if want_lines {
            v["purchaseOrderLines"] = lines_of(k, ctx, data);
        }
        out.push_str(&select(ctx, v).to_string());
        return true;
    }
    match set {
        Set::PurchaseOrders => {
            let Some(po) = data.purchase_orders.get(k) else {
                return false;
            };
            out.push('{');
            let mut m = Members::new(out);
            model::po_members(ctx.seed, &po, data, &mut m);
            if want_lines {
                let buf = m.key("purchaseOrderLines");
                buf.push('[');
                for (i, l) in po.lines.iter().enumerate() {
                    if i > 0 {
                        buf.push(',');
                    }
                    buf.push('{');
                    model::line_members(ctx.seed, &po, l, data, &mut Members::new(buf));
                    buf.push('}');
                }
                buf.push(']');
            }
            out.push('}');
            true
        }
        Set::PurchaseOrderLines => {
            let Some(po) = data.purchase_orders.get(k >> 16) else {
                return false;
            };
            let Some(l) = po.lines.iter().find(|l| l.line as u64 == k & 0xFFFF) else {
                return false;
            };
            out.push('{');
            model::line_members(ctx.seed, &po, l, data, &mut Members::new(out));
            out.push('}');
            true
        }
        Set::Vendors | Set::Items | Set::PurchaseInvoices => false,
    }
}

/// A JSON body that is already text.
pub fn json_status_text(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json; odata.metadata=minimal; odata.streaming=true"),
    );
    r.headers_mut()
        .insert("odata-version", HeaderValue::from_static("4.0"));
    r
}

pub fn json_ok(v: Value) -> Response {
    json_status(StatusCode::OK, v)
}

pub fn json_status(status: StatusCode, v: Value) -> Response {
    let mut r = (status, axum::Json(v)).into_response();
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json; odata.metadata=minimal; odata.streaming=true"),
    );
    r.headers_mut()
        .insert("odata-version", HeaderValue::from_static("4.0"));
    r
}

fn company(bc: &Bc, ctx: &Ctx) -> Value {
    let s = bc.settings();
    json!({"id": ctx.company, "systemVersion": "24.0.16410.18040", "timestamp": 26_371, "name": s.company_name,
           "displayName": s.company_name, "businessProfileId": "", "systemCreatedAt": "2023-01-01T00:00:00Z",
           "systemCreatedBy": model::EMPTY_GUID, "systemModifiedAt": "2023-01-01T00:00:00Z", "systemModifiedBy": model::EMPTY_GUID})
}

pub fn render(set: Set, id: u64, ctx: &Ctx, data: &Dataset) -> Option<Value> {
    match set {
        Set::PurchaseOrders => data
            .purchase_orders
            .get(id)
            .map(|po| model::po_json(ctx.seed, &po, data)),
        Set::PurchaseOrderLines => {
            let po = data.purchase_orders.get(id >> 16)?;
            let l = po.lines.iter().find(|l| l.line as u64 == id & 0xFFFF)?;
            Some(model::line_json(ctx.seed, &po, l, data))
        }
        Set::Vendors => data
            .vendors
            .get(id)
            .map(|v| model::vendor_json(ctx.seed, &v, data.vendors.revision(id))),
        Set::Items => data
            .items
            .get(id)
            .map(|i| model::item_json(ctx.seed, &i, data.items.revision(id))),
        Set::PurchaseInvoices => {
            let inv = data
                .posted_invoices
                .get(usize::try_from(id).ok()?.checked_sub(1)?)?;
            Some(model::invoice_json(ctx.seed, id, inv, data))
        }
    }
}

fn lines_of(id: u64, ctx: &Ctx, data: &Dataset) -> Value {
    data.purchase_orders.get(id).map_or(json!([]), |po| {
        Value::Array(
            po.lines
                .iter()
                .map(|l| model::line_json(ctx.seed, &po, l, data))
                .collect(),
        )
    })
}

fn expand(ctx: &Ctx) -> Result<bool, BcError> {
    match ctx.param("$expand") {
        None => Ok(false),
        Some("purchaseOrderLines") => Ok(true),
        Some(other) => Err(BcError::bad(
            "BadRequest_NotFound",
            format!(
                "Could not find a property named '{other}' on type 'Microsoft.NAV.purchaseOrder'."
            ),
        )),
    }
}

fn select(ctx: &Ctx, v: Value) -> Value {
    let Some(sel) = ctx.param("$select") else {
        return v;
    };
    let keep: Vec<&str> = sel.split(',').map(str::trim).collect();
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| {
                    k.starts_with('@') || k == "purchaseOrderLines" || keep.contains(&k.as_str())
                })
                .collect(),
        ),
        other => other,
    }
}

fn int(ctx: &Ctx, name: &str) -> Result<Option<usize>, BcError> {
    ctx.param(name)
        .map(|v| {
            v.parse::<usize>().map_err(|_| {
                BcError::bad(
                    "BadRequest_InvalidRequestUrl",
                    format!("Invalid value '{v}' for {name}."),
                )
            })
        })
        .transpose()
}

/// `Prefer: odata.maxpagesize=N`.
fn max_page_pref(headers: &HeaderMap) -> Option<usize> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| p.trim().strip_prefix("odata.maxpagesize="))
        .find_map(|n| n.trim().parse().ok())
}

/// All keys of a set in default order (by number: the canonical id), optionally one order's lines.
fn all_keys(set: Set, parent: Option<u64>, data: &Dataset) -> Vec<u64> {
    match (set, parent) {
        (Set::PurchaseOrderLines, Some(id)) => data
            .purchase_orders
            .get(id)
            .map(|po| {
                po.lines
                    .iter()
                    .map(|l| model::line_key(id, l.line))
                    .collect()
            })
            .unwrap_or_default(),
        (Set::PurchaseOrderLines, None) => data
            .purchase_orders
            .ids()
            .iter()
            .filter_map(|&id| data.purchase_orders.get(id))
            .flat_map(|po| {
                po.lines
                    .iter()
                    .map(|l| model::line_key(po.id, l.line))
                    .collect::<Vec<_>>()
            })
            .collect(),
        (Set::PurchaseOrders, _) => data.purchase_orders.ids().to_vec(),
        (Set::Vendors, _) => data.vendors.ids().to_vec(),
        (Set::Items, _) => data.items.ids().to_vec(),
        (Set::PurchaseInvoices, _) => (1..=data.posted_invoices.len() as u64).collect(),
    }
}

fn collection(
    bc: &Bc,
    ctx: &Ctx,
    set: Set,
    parent: Option<u64>,
    data: &Dataset,
) -> Result<Response, BcError> {
    let s = bc.settings();
    let filter = ctx
        .param("$filter")
        .map(|f| {
            odata::parse_filter(f, Version::V4).map_err(|e| {
                BcError::bad(
                    "BadRequest_NotFound",
                    format!("Invalid filter expression: {}", e.message),
                )
            })
        })
        .transpose()?;
    if let Some(f) = &filter {
        let mut funcs = Vec::new();
        odata::functions(f, &mut funcs);
        if let Some(bad) = funcs.iter().find(|x| {
            !["contains", "startswith", "endswith", "tolower", "toupper"].contains(&x.as_str())
        }) {
            return Err(BcError::bad(
                "BadRequest_NotFound",
                format!("An unknown function with name '{bad}' was found."),
            ));
        }
    }
    let orderby = ctx
        .param("$orderby")
        .map(|o| {
            odata::parse_orderby(o).map_err(|e| BcError::bad("BadRequest_NotFound", e.message))
        })
        .transpose()?
        .unwrap_or_default();
    let want_lines = set == Set::PurchaseOrders && expand(ctx)?;
    if set != Set::PurchaseOrders && ctx.param("$expand").is_some() {
        return Err(BcError::bad(
            "BadRequest_NotFound",
            "Could not find the navigation property to expand.",
        ));
    }
    let (top, skip) = (int(ctx, "$top")?, int(ctx, "$skip")?.unwrap_or(0));
    // `$skiptoken` is the last record's id, as Business Central writes it (a bare GUID; the
    // older quoted form is accepted too): the next page starts after that record.
    let after = match ctx.param("$skiptoken") {
        None => None,
        Some(t) => Some(
            model::guid_id(ctx.seed, set.kind(), t.trim_matches('\'')).ok_or_else(|| {
                BcError::bad("BadRequest_InvalidToken", "The skip token is not valid.")
            })?,
        ),
    };
    // Validate property names against a rendered sample of the set.
    let sample = all_keys(set, parent, data)
        .first()
        .and_then(|k| render(set, *k, ctx, data));
    if let Some(sample) = &sample {
        let mut names: Vec<String> = orderby.iter().map(|o| o.0.clone()).collect();
        if let Some(f) = &filter {
            odata::properties(f, &mut names);
        }
        if let Some(n) = names.iter().find(|n| sample.get(n.as_str()).is_none()) {
            return Err(BcError::bad(
                "BadRequest_NotFound",
                format!(
                    "Could not find a property named '{n}' on type 'Microsoft.NAV.{}'.",
                    set.name().trim_end_matches('s')
                ),
            ));
        }
    }
    // Fast path: purchase orders by last-modified range in default order come from the index.
    let keys: Arc<Vec<u64>> = match (&filter, set, parent) {
        (None, _, _) if orderby.is_empty() => Arc::new(all_keys(set, parent, data)),
        (Some(f), Set::PurchaseOrders, None)
            if orderby.is_empty() && odata::time_bounds(f, "lastModifiedDateTime").2 =>
        {
            let (lo, hi, _) = odata::time_bounds(f, "lastModifiedDateTime");
            let mut ids: Vec<u64> = data
                .purchase_orders
                .lm_range(lo, hi)
                .iter()
                .map(|k| k.1)
                .collect();
            ids.sort_unstable();
            Arc::new(ids)
        }
        _ => {
            let version =
                data.purchase_orders.version() + data.vendors.version() + data.items.version();
            let key = format!(
                "{}|{parent:?}|{:?}|{:?}",
                set.name(),
                ctx.param("$filter"),
                ctx.param("$orderby")
            );
            let cached = match &*bc.cache.lock().unwrap_or_else(|e| e.into_inner()) {
                Some((k, v, ids)) if *k == key && *v == version => Some(ids.clone()),
                _ => None,
            };
            match cached {
                Some(c) => c,
                None => {
                    let candidates: Vec<u64> = match (&filter, set) {
                        (Some(f), Set::PurchaseOrders) => {
                            let (lo, hi, _) = odata::time_bounds(f, "lastModifiedDateTime");
                            let mut ids: Vec<u64> = data
                                .purchase_orders
                                .lm_range(lo, hi)
                                .iter()
                                .map(|k| k.1)
                                .collect();
                            ids.sort_unstable();
                            ids
                        }
                        _ => all_keys(set, parent, data),
                    };
                    let mut rows: Vec<(Vec<OVal>, u64)> = Vec::new();
                    for k in candidates {
                        let Some(v) = render(set, k, ctx, data) else {
                            continue;
                        };
                        if filter
                            .as_ref()
                            .is_none_or(|f| odata::eval(f, &|n| model::field(&v, n)))
                        {
                            rows.push((
                                orderby.iter().map(|(n, _)| model::field(&v, n)).collect(),
                                k,
                            ));
                        }
                    }
                    rows.sort_by(|a, b| {
                        for (i, (_, asc)) in orderby.iter().enumerate() {
                            let o = odata::sort_cmp(&a.0[i], &b.0[i]);
                            let o = if *asc { o } else { o.reverse() };
                            if o != std::cmp::Ordering::Equal {
                                return o;
                            }
                        }
                        a.1.cmp(&b.1)
                    });
                    let ids = Arc::new(rows.into_iter().map(|r| r.1).collect::<Vec<_>>());
                    *bc.cache.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((key, version, ids.clone()));
                    ids
                }
            }
        }
    };
    let total = keys.len();
    // A bookmark, not an offset: in key order the next page starts at the first key past
    // the last one sent, so records deleted or added before it shift nothing. In another
    // order it starts after the bookmarked record where it sorts now [I].
    let first = match after {
        None => skip.min(total),
        Some(a) if orderby.is_empty() => keys.partition_point(|&k| k <= a),
        Some(a) => keys
            .iter()
            .position(|&k| k == a)
            .map(|i| i + 1)
            .ok_or_else(|| {
                BcError::bad("BadRequest_InvalidToken", "The skip token is not valid.")
            })?,
    };
    let end_limit = top.map_or(total, |t| first.saturating_add(t)).min(total);
    let start = first.min(end_limit);
    let pref = max_page_pref(&ctx.headers);
    let page = pref
        .unwrap_or(usize::MAX)
        .min(s.max_page_size as usize)
        .max(1);
    let end = start.saturating_add(page).min(end_limit);
    let path = match parent {
        Some(id) => format!(
            "/purchaseOrders({})/purchaseOrderLines",
            model::guid(ctx.seed, Kind::PurchaseOrder, id)
        ),
        None => format!("/{}", set.name()),
    };
    let per = if want_lines { 14_000 } else { 1_600 };
    let mut out = String::with_capacity((end - start) * per + 512);
    out.push('{');
    let mut top_level = Members::new(&mut out);
    top_level.str("@odata.context", &ctx.context(&path));
    if ctx.param("$count") == Some("true") {
        top_level.int("@odata.count", total as i64);
    }
    let buf = top_level.key("value");
    buf.push('[');
    let mut first = true;
    for k in &keys[start..end] {
        let before = buf.len();
        if !first {
            buf.push(',');
        }
        if write_entity(set, *k, ctx, data, want_lines, buf) {
            first = false;
        } else {
            buf.truncate(before);
        }
    }
    buf.push(']');
    if end < end_limit {
        // The query as asked, less what the bookmark replaces, then `aid=FIN` and the
        // bookmark, as Business Central writes its next links; `$top` is what is left of it.
        let mut q: Vec<String> = ctx
            .params
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "$skiptoken" | "$skip" | "$top" | "aid"))
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                )
            })
            .collect();
        if top.is_some() {
            q.push(format!("$top={}", end_limit - end));
        }
        q.push("aid=FIN".into());
        q.push(format!(
            "$skiptoken={}",
            model::guid(ctx.seed, set.kind(), keys[end - 1])
        ));
        top_level.str(
            "@odata.nextLink",
            &format!(
                "{}/companies({}){path}?{}",
                ctx.root,
                ctx.company,
                q.join("&")
            ),
        );
    }
    out.push('}');
    let mut r = json_status_text(StatusCode::OK, out);
    if let Some(n) = pref
        && let Ok(h) = HeaderValue::from_str(&format!(
            "odata.maxpagesize={}",
            n.min(s.max_page_size as usize)
        ))
    {
        r.headers_mut().insert("preference-applied", h);
    }
    Ok(r)
}

/// CSDL built from rendered samples, so names and types always match the JSON the API serves.
fn metadata(bc: &Bc) -> Response {
    let enums: &[(&str, &str, &str, &[&str])] = if bc.settings().metadata_enum_types {
        model::ENUMS
    } else {
        &[]
    };
    let data = bc.core.read();
    let ctx_seed = bc.core.seed;
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\"><edmx:DataServices><Schema Namespace=\"Microsoft.NAV\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">",
    );
    let po = data
        .purchase_orders
        .ids()
        .first()
        .and_then(|&id| data.purchase_orders.get(id));
    let samples: Vec<(&str, Option<Value>)> = vec![
        (
            "purchaseOrder",
            po.as_ref().map(|p| model::po_json(ctx_seed, p, &data)),
        ),
        (
            "purchaseOrderLine",
            po.as_ref().and_then(|p| {
                p.lines
                    .first()
                    .map(|l| model::line_json(ctx_seed, p, l, &data))
            }),
        ),
        (
            "vendor",
            data.vendors
                .get(1)
                .map(|v| model::vendor_json(ctx_seed, &v, 0)),
        ),
        (
            "item",
            data.items.get(1).map(|i| model::item_json(ctx_seed, &i, 0)),
        ),
        (
            "purchaseInvoice",
            po.as_ref().map(|p| {
                let sample = crate::common::PostedInvoice {
                    order_id: p.id,
                    order_number: model::po_number(p.id),
                    vendor_id: p.vendor_id,
                    currency: p.currency.clone(),
                    total_cents: p.total_cents(),
                    posted_at: p.last_modified,
                };
                model::invoice_json(ctx_seed, 1, &sample, &data)
            }),
        ),
    ];
    for (_, _, name, members) in enums {
        x.push_str(&format!("<EnumType Name=\"{name}\">"));
        for (i, m) in members.iter().enumerate() {
            x.push_str(&format!(
                "<Member Name=\"{}\" Value=\"{i}\"/>",
                model::member(m)
            ));
        }
        x.push_str("</EnumType>");
    }
    for (name, v) in samples {
        let Some(Value::Object(m)) = v else { continue };
        x.push_str(&format!(
            "<EntityType Name=\"{name}\"><Key><PropertyRef Name=\"id\"/></Key>"
        ));
        for (k, v) in m.iter().filter(|(k, _)| !k.starts_with('@')) {
            let enum_type = enums
                .iter()
                .find(|(entity, property, _, _)| *entity == name && property == k)
                .map(|(_, _, e, _)| format!("Microsoft.NAV.{e}"));
            let ty = match v {
                _ if enum_type.is_some() => enum_type.as_deref().unwrap_or("Edm.String"),
                Value::Bool(_) => "Edm.Boolean",
                Value::Number(_) => "Edm.Decimal",
                Value::String(s) if s.len() == 36 && s.matches('-').count() == 4 => "Edm.Guid",
                Value::String(_) if k.ends_with("DateTime") => "Edm.DateTimeOffset",
                Value::String(_) if k.ends_with("Date") => "Edm.Date",
                _ => "Edm.String",
            };
            x.push_str(&format!("<Property Name=\"{k}\" Type=\"{ty}\"/>"));
        }
        if name == "purchaseOrder" {
            x.push_str("<NavigationProperty Name=\"purchaseOrderLines\" Type=\"Collection(Microsoft.NAV.purchaseOrderLine)\" ContainsTarget=\"true\"/>");
        }
        x.push_str("</EntityType>");
    }
    x.push_str("<EntityContainer Name=\"default\"><EntitySet Name=\"purchaseOrders\" EntityType=\"Microsoft.NAV.purchaseOrder\"/><EntitySet Name=\"purchaseOrderLines\" EntityType=\"Microsoft.NAV.purchaseOrderLine\"/><EntitySet Name=\"vendors\" EntityType=\"Microsoft.NAV.vendor\"/><EntitySet Name=\"items\" EntityType=\"Microsoft.NAV.item\"/><EntitySet Name=\"purchaseInvoices\" EntityType=\"Microsoft.NAV.purchaseInvoice\"/></EntityContainer></Schema></edmx:DataServices></edmx:Edmx>");
    let mut r = Response::new(Body::from(x));
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/xml"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments() {
        assert_eq!(seg("purchaseOrders(abc)"), ("purchaseOrders", Some("abc")));
        assert_eq!(
            seg("purchaseOrders(id=abc)"),
            ("purchaseOrders", Some("abc"))
        );
        assert_eq!(seg("vendors"), ("vendors", None));
    }
}
