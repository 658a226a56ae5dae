//! OData V2 reads: URL parsing (entity sets, keys, navigation, `$count`, `$metadata`), query options
//! (`$filter $orderby $top $skip $skiptoken $expand $select $inlinecount $format`) and verbose JSON.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{authenticate, fetch_token, wants_token};
use super::errors::SapError;
use super::metadata::{self, EntityDef, Service};
use super::model::{self, Edm, Measure, Prop};
use super::numbers::{self, DecimalFormat};
use super::{Sap, atom, writes};
use crate::common::Dataset;
use crate::common::datagen::{Item, PurchaseOrder, Vendor};
pub use crate::common::jsontext::json_str;
use crate::common::odata::{self, Filter, OVal, Version};

/// Who is asking, and from where (for URIs in `__metadata`).
pub struct Req {
    pub method: Method,
    pub headers: HeaderMap,
    pub base: String,
    pub service: &'static Service,
    pub params: Vec<(String, String)>,
    pub now: i64,
}

impl Req {
    pub fn param(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn root(&self) -> String {
        format!("{}/sap/opu/odata/sap/{}", self.base, self.service.name)
    }

    pub fn err(&self, status: StatusCode, code: &str, msg: impl Into<String>) -> SapError {
        SapError::gateway(status, code, msg, self.service.name, self.now)
    }

    pub fn not_found(&self, segment: &str) -> SapError {
        self.err(
            StatusCode::NOT_FOUND,
            "/IWBEP/CM_MGW_RT/020",
            format!("Resource not found for the segment '{segment}'"),
        )
    }
}

/// A JSON body that is already text.
pub fn json_text(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r.headers_mut()
        .insert("dataserviceversion", HeaderValue::from_static("2.0"));
    r
}

pub fn json_response(status: StatusCode, v: Value) -> Response {
    let mut r = (status, axum::Json(v)).into_response();
    r.headers_mut()
        .insert("dataserviceversion", HeaderValue::from_static("2.0"));
    r
}

pub(super) fn build_req(
    sap: &Sap,
    service: &str,
    method: Method,
    headers: HeaderMap,
    raw: &Option<String>,
) -> Result<Req, SapError> {
    let now = sap.core.clock.now_ms();
    let svc = metadata::service(service).ok_or_else(|| {
        SapError::gateway(
            StatusCode::NOT_FOUND,
            "/IWFND/MED/170",
            format!("No service found for namespace '', name '{service}', version '0001'"),
            "",
            now,
        )
    })?;
    let params = raw
        .as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    Ok(Req {
        method,
        base: sap.core.origin(&headers),
        headers,
        service: svc,
        params,
        now,
    })
}

/// `GET|HEAD /sap/opu/odata/sap/{service}/`: the service document (and the usual CSRF fetch target).
pub async fn root(
    State(sap): State<Sap>,
    Path(service): Path<String>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    match root_inner(&sap, &service, method, headers, &raw) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn root_inner(
    sap: &Sap,
    service: &str,
    method: Method,
    headers: HeaderMap,
    raw: &Option<String>,
) -> Result<Response, SapError> {
    authenticate(sap, &headers)?;
    let req = build_req(sap, service, method, headers, raw)?;
    if req.method != Method::GET && req.method != Method::HEAD {
        return Err(req.err(
            StatusCode::METHOD_NOT_ALLOWED,
            "/IWBEP/CM_MGW_RT/034",
            "The request method is not allowed for the service document",
        ));
    }
    let mut r = if wants_json(&req) {
        let sets: Vec<&str> = req.service.entities.iter().map(|e| e.set).collect();
        json_response(StatusCode::OK, json!({"d": {"EntitySets": sets}}))
    } else {
        xml(
            metadata::service_xml(req.service, &req.base),
            "application/xml",
        )
    };
    if wants_token(&req.headers) {
        fetch_token(sap, &req.headers, r.headers_mut());
    }
    Ok(r)
}

fn xml(body: String, ctype: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(ctype));
    r.headers_mut()
        .insert("dataserviceversion", HeaderValue::from_static("2.0"));
    r
}

/// Whether the client asked for JSON: `$format=json`, or an `Accept` naming JSON
/// (`application/json`, `*/json`) when `$format` is absent. Anything else gets Atom, as
/// SAP Gateway answers by default.
pub fn wants_json(req: &Req) -> bool {
    match req.param("$format") {
        Some(f) => f.eq_ignore_ascii_case("json"),
        None => req
            .headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| {
                a.split(',').any(|t| {
                    let t = t.split(';').next().unwrap_or("").trim();
                    t.eq_ignore_ascii_case("application/json") || t.ends_with("/json")
                })
            }),
    }
}

/// An Atom document (`feed` or `entry`).
pub fn atom_response(status: StatusCode, body: String, kind: &str) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    if let Ok(v) =
        HeaderValue::from_str(&format!("application/atom+xml;type={kind}; charset=utf-8"))
    {
        r.headers_mut().insert("content-type", v);
    }
    r.headers_mut()
        .insert("dataserviceversion", HeaderValue::from_static("2.0"));
    r
}

pub async fn unknown(uri: Uri) -> Response {
    SapError::gateway(
        StatusCode::NOT_FOUND,
        "/IWFND/MED/170",
        format!("No service found for path '{}'", uri.path()),
        "",
        0,
    )
    .into_response()
}

/// A key predicate: `('X')` or `(A='X',B='10')`.
pub type Keys = Vec<(Option<String>, String)>;

#[derive(Debug, PartialEq)]
pub enum Resource {
    Metadata,
    Collection(String),
    Count(String),
    Entity(String, Keys),
    Nav(String, Keys, String),
}

fn parse_keys(s: &str) -> Option<Keys> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        let (name, after) = match rest.find(['=', '\'']) {
            Some(i) if rest.as_bytes()[i] == b'=' => {
                (Some(rest[..i].trim().to_string()), &rest[i + 1..])
            }
            _ => (None, rest),
        };
        let after = after.trim_start();
        let body = after.strip_prefix('\'')?;
        let mut val = String::new();
        let mut chars = body.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().map(|x| x.1) == Some('\'') {
                    val.push('\'');
                    chars.next();
                    continue;
                }
                end = Some(i + 1);
                break;
            }
            val.push(c);
        }
        out.push((name, val));
        let tail = body[end?..].trim_start();
        if tail.is_empty() {
            return Some(out);
        }
        rest = tail.strip_prefix(',')?;
    }
}

pub fn parse_resource(rest: &str) -> Option<Resource> {
    let rest = rest.trim_end_matches('/');
    if rest == "$metadata" {
        return Some(Resource::Metadata);
    }
    let (first, tail) = match rest.find('/') {
        Some(i) if !rest[..i].contains('(') || rest[..i].contains(')') => {
            (&rest[..i], Some(&rest[i + 1..]))
        }
        _ => (rest, None),
    };
    let (set, keys) = match first.find('(') {
        Some(i) => {
            let inner = first[i + 1..].strip_suffix(')')?;
            (first[..i].to_string(), Some(parse_keys(inner)?))
        }
        None => (first.to_string(), None),
    };
    match (keys, tail) {
        (None, None) => Some(Resource::Collection(set)),
        (None, Some("$count")) => Some(Resource::Count(set)),
        (Some(k), None) => Some(Resource::Entity(set, k)),
        (Some(k), Some(nav)) if !nav.is_empty() && !nav.contains('/') => {
            Some(Resource::Nav(set, k, nav.to_string()))
        }
        _ => None,
    }
}

pub async fn dispatch(
    State(sap): State<Sap>,
    Path((service, rest)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    if rest.trim_end_matches('/') == "$batch" {
        let batch = match authenticate(&sap, &headers)
            .and_then(|_| build_req(&sap, &service, method, headers, &raw))
        {
            Ok(req) => super::batch::handle(&sap, &req, &body).await,
            Err(e) => Err(e),
        };
        return batch.unwrap_or_else(|e| e.into_response());
    }
    match dispatch_inner(&sap, &service, &rest, method, headers, &raw, &body) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

pub(super) fn dispatch_inner(
    sap: &Sap,
    service: &str,
    rest: &str,
    method: Method,
    headers: HeaderMap,
    raw: &Option<String>,
    body: &[u8],
) -> Result<Response, SapError> {
    authenticate(sap, &headers)?;
    // POST with X-HTTP-Method tunnels MERGE/PATCH/DELETE through proxies.
    let method = match headers.get("x-http-method").and_then(|v| v.to_str().ok()) {
        Some(m) if method == Method::POST => {
            Method::from_bytes(m.to_ascii_uppercase().as_bytes()).unwrap_or(method)
        }
        _ => method,
    };
    let req = build_req(sap, service, method, headers, raw)?;
    let res = parse_resource(rest).ok_or_else(|| req.not_found(rest))?;
    let mut resp = match (&req.method, res) {
        (&Method::GET | &Method::HEAD, Resource::Metadata) => {
            xml(metadata::edmx(req.service), "application/xml")
        }
        (&Method::GET | &Method::HEAD, Resource::Collection(set)) => {
            collection(sap, &req, &set, false)?
        }
        (&Method::GET | &Method::HEAD, Resource::Count(set)) => collection(sap, &req, &set, true)?,
        (&Method::GET | &Method::HEAD, Resource::Entity(set, keys)) => {
            entity(sap, &req, &set, &keys)?
        }
        (&Method::GET | &Method::HEAD, Resource::Nav(set, keys, nav)) => {
            navigation(sap, &req, &set, &keys, &nav)?
        }
        (m, res)
            if m == Method::POST
                || m == Method::PATCH
                || m == Method::PUT
                || m == Method::DELETE
                || m.as_str() == "MERGE" =>
        {
            super::auth::check_token(sap, &req.headers)?;
            writes::write(sap, &req, res, body)?
        }
        _ => {
            return Err(req.err(
                StatusCode::METHOD_NOT_ALLOWED,
                "/IWBEP/CM_MGW_RT/034",
                "The request method is not allowed for this resource",
            ));
        }
    };
    if wants_token(&req.headers) && (req.method == Method::GET || req.method == Method::HEAD) {
        fetch_token(sap, &req.headers, resp.headers_mut());
    }
    Ok(resp)
}

/// One row of an entity set.
#[derive(Clone)]
pub enum Row {
    Po(Rc<PurchaseOrder>),
    Item(Rc<PurchaseOrder>, usize),
    Supplier(crate::common::datagen::Vendor),
    /// A supplier's business partner.
    Partner(crate::common::datagen::Vendor),
    /// One role of a supplier's business partner.
    Role(crate::common::datagen::Vendor, &'static str),
    Product(crate::common::datagen::Item),
    Desc(crate::common::datagen::Item),
    /// The header note of an order (only orders with a memo have one).
    Note(Rc<PurchaseOrder>),
    /// The schedule line of an item.
    Schedule(Rc<PurchaseOrder>, usize),
    /// The account assignment of an item on a project.
    Account(Rc<PurchaseOrder>, usize),
}

pub fn prop(row: &Row, name: &str, data: &Dataset) -> OVal {
    let raw = match row {
        Row::Po(po) => {
            let vendor = if name.starts_with("Address") {
                data.vendors.get(po.vendor_id)
            } else {
                None
            };
            model::po_prop(po, vendor.as_ref(), name)
        }
        Row::Item(po, i) => {
            let item = match name {
                "MaterialGroup" | "Material" | "InternationalArticleNumber" | "ProductType" => {
                    po.lines.get(*i).and_then(|l| data.items.get(l.item_id))
                }
                _ => None,
            };
            model::item_prop(po, *i, item.as_ref(), name)
        }
        Row::Supplier(v) => model::supplier_prop(v, name),
        Row::Partner(v) => model::partner_prop(v, name),
        Row::Role(v, role) => model::role_prop(v, role, name),
        Row::Product(i) | Row::Desc(i) => model::product_prop(i, name),
        Row::Note(po) => model::note_prop(po, name),
        Row::Schedule(po, i) => model::schedule_line_prop(po, *i, name),
        Row::Account(po, i) => model::account_assignment_prop(po, *i, name),
    };
    match (raw, def_for(row).prop(name)) {
        (OVal::Null, Some(p)) => model::unset(p),
        (v, _) => v,
    }
}

pub fn entity_uri(req: &Req, def: &EntityDef, row: &Row, data: &Dataset) -> String {
    let keys: Vec<String> = def
        .keys
        .iter()
        .map(|k| {
            let v = match prop(row, k, data) {
                OVal::Str(s) => s.replace('\'', "''"),
                other => format!("{other:?}"),
            };
            if def.keys.len() == 1 {
                format!("'{v}'")
            } else {
                format!("{k}='{v}'")
            }
        })
        .collect();
    format!("{}/{}({})", req.root(), def.set, keys.join(","))
}

/// `W/"datetimeoffset'2024-01-15T10%3A00%3A00.0000000Z'"` from LastChangeDateTime.
pub fn etag(row: &Row, data: &Dataset) -> Option<String> {
    let ms = match (prop(row, "LastChangeDateTime", data), row) {
        (OVal::Time(ms), _) => ms,
        // No change time shown: the version is still the order's own.
        (OVal::Null, Row::Po(po)) => po.last_modified,
        _ => return None,
    };
    let iso = crate::common::clock::iso_millis(ms)
        .replace(':', "%3A")
        .replace('Z', "0000Z");
    Some(format!("W/\"datetimeoffset'{iso}'\""))
}

/// The entity set a row belongs to.
pub fn def_for(row: &Row) -> &'static EntityDef {
    let (svc, set) = match row {
        Row::Po(_) => (&metadata::PURCHASE_ORDER, "A_PurchaseOrder"),
        Row::Item(..) => (&metadata::PURCHASE_ORDER, "A_PurchaseOrderItem"),
        Row::Supplier(_) => (&metadata::BUSINESS_PARTNER, "A_Supplier"),
        Row::Partner(_) => (&metadata::BUSINESS_PARTNER, "A_BusinessPartner"),
        Row::Role(..) => (&metadata::BUSINESS_PARTNER, "A_BusinessPartnerRole"),
        Row::Product(_) => (&metadata::PRODUCT, "A_Product"),
        Row::Desc(_) => (&metadata::PRODUCT, "A_ProductDescription"),
        Row::Note(_) => (&metadata::PURCHASE_ORDER, "A_PurchaseOrderNote"),
        Row::Schedule(..) => (&metadata::PURCHASE_ORDER, "A_PurchaseOrderScheduleLine"),
        Row::Account(..) => (&metadata::PURCHASE_ORDER, "A_PurOrdAccountAssignment"),
    };
    svc.entity(set)
        .unwrap_or(&metadata::PURCHASE_ORDER.entities[0])
}

/// The notes of an order: its memo as the header text, when it has one.
fn note_rows(po: &Rc<PurchaseOrder>) -> Vec<Row> {
    if po.memo.is_empty() {
        Vec::new()
    } else {
        vec![Row::Note(po.clone())]
    }
}

/// The account assignments of an item: one when the line is on a project.
fn account_rows(po: &Rc<PurchaseOrder>, idx: usize) -> Vec<Row> {
    match po.lines.get(idx) {
        Some(l) if model::item_account_assigned(l) => vec![Row::Account(po.clone(), idx)],
        _ => Vec::new(),
    }
}

/// Rows reached through a navigation property.
pub fn nav_rows(row: &Row, nav: &str, data: &Dataset) -> Option<(Vec<Row>, bool)> {
    match (row, nav) {
        (Row::Po(po), "to_PurchaseOrderItem") => Some((
            (0..po.lines.len())
                .map(|i| Row::Item(po.clone(), i))
                .collect(),
            true,
        )),
        (Row::Item(po, _), "to_PurchaseOrder") => Some((vec![Row::Po(po.clone())], false)),
        (Row::Po(po), "to_PurchaseOrderNote") => Some((note_rows(po), true)),
        (Row::Item(po, i), "to_ScheduleLine") => Some((vec![Row::Schedule(po.clone(), *i)], true)),
        (Row::Item(po, i), "to_AccountAssignment") => Some((account_rows(po, *i), true)),
        (Row::Product(i), "to_Description") => Some((vec![Row::Desc(i.clone())], true)),
        (Row::Partner(v), "to_Supplier") => Some((vec![Row::Supplier(v.clone())], false)),
        (Row::Partner(v), "to_BusinessPartnerRole") => Some((
            model::SUPPLIER_ROLES
                .iter()
                .map(|r| Row::Role(v.clone(), r))
                .collect(),
            true,
        )),
        _ => {
            let _ = data;
            None
        }
    }
}

/// `/Date(ms)/` and friends, decimals as SAP writes them (`numbers`), written as JSON text.
/// Dates are written `"\/Date(ms)\/"`, slashes escaped, as SAP Gateway writes them (recorded
/// S/4HANA and C4C payloads): the same string once parsed, but not the same bytes, which is
/// what a raw payload kept byte for byte shows.
fn encode_text(
    out: &mut String,
    p: &Prop,
    v: &OVal,
    values: &RowValues<'_>,
    format: DecimalFormat,
) {
    match (p.ty, v) {
        (_, OVal::Null) => out.push_str("null"),
        (Edm::Dec(..), OVal::Num(n)) => {
            out.push('"');
            out.push_str(&values.decimal(p, *n, format));
            out.push('"');
        }
        (Edm::DateTime, OVal::Time(ms)) => {
            let _ = write!(out, "\"\\/Date({ms})\\/\"");
        }
        (Edm::DateTimeOffset, OVal::Time(ms)) => {
            let _ = write!(out, "\"\\/Date({ms}+0000)\\/\"");
        }
        (_, OVal::Str(s)) => json_str(out, s),
        (_, OVal::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
        (_, OVal::Num(n)) => json_str(out, &n.to_string()),
        (_, OVal::Time(ms)) => {
            let _ = write!(out, "\"\\/Date({ms})\\/\"");
        }
    }
}

/// One row's property values, with the related records they need looked up once per row
/// rather than once per property.
pub struct RowValues<'a> {
    row: &'a Row,
    data: &'a Dataset,
    vendor: Option<Vendor>,
    item: Option<Item>,
}

impl<'a> RowValues<'a> {
    pub fn new(row: &'a Row, data: &'a Dataset) -> Self {
        let vendor = match row {
            Row::Po(po) => data.vendors.get(po.vendor_id),
            _ => None,
        };
        let item = match row {
            Row::Item(po, i) => po.lines.get(*i).and_then(|l| data.items.get(l.item_id)),
            _ => None,
        };
        RowValues {
            row,
            data,
            vendor,
            item,
        }
    }

    /// The value of `p` as SAP shows it (unset properties get their type's empty value).
    pub fn value(&self, p: &Prop) -> OVal {
        let raw = match self.row {
            Row::Po(po) => model::po_prop(po, self.vendor.as_ref(), p.name),
            Row::Item(po, i) => model::item_prop(po, *i, self.item.as_ref(), p.name),
            other => return prop(other, p.name, self.data),
        };
        match raw {
            OVal::Null => model::unset(p),
            v => v,
        }
    }

    /// A decimal written with the decimals of the unit or currency the row holds for it.
    pub fn decimal(&self, p: &Prop, n: f64, format: DecimalFormat) -> String {
        let code = p.measure.map(|m| {
            let (Measure::Unit(holder) | Measure::Currency(holder)) = m;
            let code = match def_for(self.row).prop(holder).map(|hp| self.value(hp)) {
                Some(OVal::Str(c)) => c,
                _ => String::new(),
            };
            (m, code)
        });
        numbers::decimal_text(
            n,
            p.ty,
            code.as_ref().map(|(m, c)| (*m, c.as_str())),
            format,
        )
    }
}

/// Whether `$expand` names `nav`, alone or as the first step of a path (`nav/to_X`).
pub fn expands(expand: &[String], nav: &str) -> bool {
    expand
        .iter()
        .any(|e| e == nav || e.strip_prefix(nav).is_some_and(|r| r.starts_with('/')))
}

/// The rest of the `$expand` paths that start with `nav` (`nav/to_X` gives `to_X`).
pub fn sub_expand(expand: &[String], nav: &str) -> Vec<String> {
    expand
        .iter()
        .filter_map(|e| e.strip_prefix(nav)?.strip_prefix('/').map(str::to_string))
        .collect()
}

/// Renders one entity as verbose-JSON text. Pages of thousands of entities are built this way
/// because a `serde_json::Value` tree costs several times more than the rest of the request.
pub fn render_text(
    settings: &super::Settings,
    req: &Req,
    row: &Row,
    data: &Dataset,
    select: Option<&[String]>,
    expand: &[String],
    out: &mut String,
) {
    let def = def_for(row);
    let values = RowValues::new(row, data);
    let uri = entity_uri(req, def, row, data);
    out.push_str("{\"__metadata\":{\"id\":");
    json_str(out, &uri);
    out.push_str(",\"uri\":");
    json_str(out, &uri);
    let _ = write!(out, ",\"type\":\"{}.{}\"", req.service.name, def.type_name);
    if settings.etag
        && matches!(row, Row::Po(_))
        && let Some(t) = etag(row, data)
    {
        out.push_str(",\"etag\":");
        json_str(out, &t);
    }
    out.push('}');
    let keep = |n: &str| select.is_none_or(|s| s.iter().any(|x| x == n || x == "*"));
    for p in def.props {
        if p.name.starts_with("YY1_") && !settings.custom_fields {
            continue;
        }
        if keep(p.name) {
            let _ = write!(out, ",\"{}\":", p.name);
            encode_text(out, p, &values.value(p), &values, settings.decimal_format);
        }
    }
    for (nav, _, _) in def.navs {
        if expands(expand, nav) {
            if let Some((rows, many)) = nav_rows(row, nav, data) {
                let _ = write!(out, ",\"{nav}\":");
                if many {
                    out.push_str("{\"results\":[");
                }
                let deeper = sub_expand(expand, nav);
                for (i, r) in rows.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    render_text(settings, req, r, data, None, &deeper, out);
                }
                if many {
                    out.push_str("]}");
                } else if rows.is_empty() {
                    out.push_str("null");
                }
            }
        } else if keep(nav) {
            let _ = write!(out, ",\"{nav}\":{{\"__deferred\":{{\"uri\":");
            json_str(out, &format!("{uri}/{nav}"));
            out.push_str("}}");
        }
    }
    out.push('}');
}

pub fn find_def(req: &Req, set: &str) -> Result<&'static EntityDef, SapError> {
    req.service.entity(set).ok_or_else(|| req.not_found(set))
}

/// Resolves a key predicate to a row.
pub fn lookup(req: &Req, def: &EntityDef, keys: &Keys, data: &Dataset) -> Result<Row, SapError> {
    let get = |name: &str| -> Option<&str> {
        if keys.len() == 1 && keys[0].0.is_none() && def.keys.len() == 1 {
            return Some(keys[0].1.as_str());
        }
        keys.iter()
            .find(|(n, _)| n.as_deref() == Some(name))
            .map(|(_, v)| v.as_str())
    };
    let missing = || req.not_found(def.set);
    if keys.len() != def.keys.len() {
        return Err(req.err(
            StatusCode::BAD_REQUEST,
            "/IWBEP/CM_MGW_RT/021",
            format!("Invalid key predicate for entity set '{}'", def.set),
        ));
    }
    match def.set {
        "A_PurchaseOrder" => {
            let id = model::po_id(get("PurchaseOrder").ok_or_else(missing)?).ok_or_else(missing)?;
            data.purchase_orders
                .get(id)
                .map(|p| Row::Po(Rc::new(p)))
                .ok_or_else(missing)
        }
        "A_PurchaseOrderItem" => {
            let id = model::po_id(get("PurchaseOrder").ok_or_else(missing)?).ok_or_else(missing)?;
            let line = model::item_line(get("PurchaseOrderItem").ok_or_else(missing)?)
                .ok_or_else(missing)?;
            let po = data.purchase_orders.get(id).ok_or_else(missing)?;
            let idx = po
                .lines
                .iter()
                .position(|l| l.line == line)
                .ok_or_else(missing)?;
            Ok(Row::Item(Rc::new(po), idx))
        }
        "A_Supplier" => {
            let id =
                model::supplier_id(get("Supplier").ok_or_else(missing)?).ok_or_else(missing)?;
            data.vendors.get(id).map(Row::Supplier).ok_or_else(missing)
        }
        "A_BusinessPartner" => {
            let id = model::supplier_id(get("BusinessPartner").ok_or_else(missing)?)
                .ok_or_else(missing)?;
            data.vendors.get(id).map(Row::Partner).ok_or_else(missing)
        }
        "A_BusinessPartnerRole" => {
            let id = model::supplier_id(get("BusinessPartner").ok_or_else(missing)?)
                .ok_or_else(missing)?;
            let role = get("BusinessPartnerRole").ok_or_else(missing)?;
            let role = model::SUPPLIER_ROLES
                .iter()
                .find(|r| **r == role)
                .ok_or_else(missing)?;
            data.vendors
                .get(id)
                .map(|v| Row::Role(v, role))
                .ok_or_else(missing)
        }
        "A_PurchaseOrderNote" => {
            let id = model::po_id(get("PurchaseOrder").ok_or_else(missing)?).ok_or_else(missing)?;
            if get("TextObjectType") != Some(model::NOTE_TEXT_TYPE) || get("Language") != Some("EN")
            {
                return Err(missing());
            }
            let po = Rc::new(data.purchase_orders.get(id).ok_or_else(missing)?);
            note_rows(&po).pop().ok_or_else(missing)
        }
        "A_PurchaseOrderScheduleLine" | "A_PurOrdAccountAssignment" => {
            let schedule = def.set == "A_PurchaseOrderScheduleLine";
            let (doc, item, sub) = if schedule {
                (
                    "PurchasingDocument",
                    "PurchasingDocumentItem",
                    "ScheduleLine",
                )
            } else {
                (
                    "PurchaseOrder",
                    "PurchaseOrderItem",
                    "AccountAssignmentNumber",
                )
            };
            let id = model::po_id(get(doc).ok_or_else(missing)?).ok_or_else(missing)?;
            let line = model::item_line(get(item).ok_or_else(missing)?).ok_or_else(missing)?;
            // One schedule line and at most one assignment per item, numbered 1.
            if get(sub).map(|s| s.trim_start_matches('0')) != Some("1") {
                return Err(missing());
            }
            let po = Rc::new(data.purchase_orders.get(id).ok_or_else(missing)?);
            let idx = po
                .lines
                .iter()
                .position(|l| l.line == line)
                .ok_or_else(missing)?;
            if schedule {
                Ok(Row::Schedule(po, idx))
            } else {
                account_rows(&po, idx).pop().ok_or_else(missing)
            }
        }
        "A_Product" | "A_ProductDescription" => {
            let id =
                model::product_id(get("Product").ok_or_else(missing)?, data).ok_or_else(missing)?;
            if def.set == "A_ProductDescription" && get("Language") != Some("EN") {
                return Err(missing());
            }
            let i = data.items.get(id).ok_or_else(missing)?;
            Ok(if def.set == "A_Product" {
                Row::Product(i)
            } else {
                Row::Desc(i)
            })
        }
        _ => Err(missing()),
    }
}

fn list_param(req: &Req, name: &str) -> Vec<String> {
    req.param(name)
        .map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn check_expand(req: &Req, def: &EntityDef, expand: &[String]) -> Result<(), SapError> {
    for e in expand {
        let mut at = def;
        for step in e.split('/') {
            let Some((_, target, _)) = at.navs.iter().find(|(n, _, _)| *n == step) else {
                return Err(req.err(
                    StatusCode::BAD_REQUEST,
                    "/IWBEP/CM_MGW_RT/005",
                    format!("Property '{step}' is invalid"),
                ));
            };
            at = req.service.entity(target).unwrap_or(at);
        }
    }
    Ok(())
}

fn entity(sap: &Sap, req: &Req, set: &str, keys: &Keys) -> Result<Response, SapError> {
    let def = find_def(req, set)?;
    let data = sap.core.read();
    let row = lookup(req, def, keys, &data)?;
    let expand = list_param(req, "$expand");
    check_expand(req, def, &expand)?;
    let select = req.param("$select").map(|_| list_param(req, "$select"));
    let settings = sap.settings();
    let mut r = if wants_json(req) {
        let mut out = String::from("{\"d\":");
        render_text(
            &settings,
            req,
            &row,
            &data,
            select.as_deref(),
            &expand,
            &mut out,
        );
        out.push('}');
        json_text(StatusCode::OK, out)
    } else {
        let x = atom::entry(&settings, req, &row, &data, select.as_deref(), &expand);
        atom_response(StatusCode::OK, x, "entry")
    };
    if settings.etag
        && matches!(row, Row::Po(_))
        && let Some(t) = etag(&row, &data)
        && let Ok(h) = HeaderValue::from_str(&t)
    {
        r.headers_mut().insert("etag", h);
    }
    Ok(r)
}

fn navigation(
    sap: &Sap,
    req: &Req,
    set: &str,
    keys: &Keys,
    nav: &str,
) -> Result<Response, SapError> {
    let def = find_def(req, set)?;
    let data = sap.core.read();
    let row = lookup(req, def, keys, &data)?;
    let (rows, many) = nav_rows(&row, nav, &data).ok_or_else(|| req.not_found(nav))?;
    let settings = sap.settings();
    if !wants_json(req) {
        let target = def
            .navs
            .iter()
            .find(|(n, _, _)| *n == nav)
            .and_then(|(_, t, _)| req.service.entity(t))
            .unwrap_or(def);
        return Ok(if many {
            let x = atom::feed(
                &settings,
                req,
                target,
                rows.into_iter(),
                &data,
                None,
                &[],
                None,
                None,
            );
            atom_response(StatusCode::OK, x, "feed")
        } else {
            match rows.first() {
                Some(r) => atom_response(
                    StatusCode::OK,
                    atom::entry(&settings, req, r, &data, None, &[]),
                    "entry",
                ),
                None => return Err(req.not_found(nav)),
            }
        });
    }
    let mut out = String::from(if many {
        "{\"d\":{\"results\":["
    } else {
        "{\"d\":"
    });
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        render_text(&settings, req, r, &data, None, &[], &mut out);
    }
    if rows.is_empty() && !many {
        out.push_str("null");
    }
    out.push_str(if many { "]}}" } else { "}" });
    Ok(json_text(StatusCode::OK, out))
}

fn bad_filter(req: &Req, msg: &str) -> SapError {
    req.err(
        StatusCode::BAD_REQUEST,
        "/IWBEP/CM_MGW_RT/022",
        format!("Invalid filter expression: {msg}"),
    )
}

fn parse_int(req: &Req, name: &str) -> Result<Option<usize>, SapError> {
    match req.param(name) {
        None => Ok(None),
        Some(v) => v.trim().parse::<usize>().map(Some).map_err(|_| {
            req.err(
                StatusCode::BAD_REQUEST,
                "/IWBEP/CM_MGW_RT/004",
                format!("Invalid system query option value for {name}: '{v}'"),
            )
        }),
    }
}

/// The result order as packed keys: PO id, or `id << 32 | line index` for items.
enum Keyset<'a> {
    Ids(&'a [u64]),
    Lm(&'a [(i64, u64)]),
    Owned(Arc<Vec<u64>>),
}

impl Keyset<'_> {
    fn len(&self) -> usize {
        match self {
            Keyset::Ids(x) => x.len(),
            Keyset::Lm(x) => x.len(),
            Keyset::Owned(x) => x.len(),
        }
    }
    fn get(&self, i: usize) -> u64 {
        match self {
            Keyset::Ids(x) => x[i],
            Keyset::Lm(x) => x[i].1,
            Keyset::Owned(x) => x[i],
        }
    }
}

fn row_for(set: &str, key: u64, data: &Dataset) -> Option<Row> {
    match set {
        "A_PurchaseOrder" => data.purchase_orders.get(key).map(|p| Row::Po(Rc::new(p))),
        "A_PurchaseOrderItem" => data
            .purchase_orders
            .get(key >> 32)
            .map(|p| Row::Item(Rc::new(p), (key & 0xFFFF_FFFF) as usize)),
        "A_Supplier" => data.vendors.get(key).map(Row::Supplier),
        "A_BusinessPartner" => data.vendors.get(key).map(Row::Partner),
        "A_BusinessPartnerRole" => data.vendors.get(key >> 1).map(|v| {
            let role = model::SUPPLIER_ROLES[(key & 1) as usize];
            Row::Role(v, role)
        }),
        "A_Product" => data.items.get(key).map(Row::Product),
        "A_ProductDescription" => data.items.get(key).map(Row::Desc),
        "A_PurchaseOrderNote" => data.purchase_orders.get(key).map(|p| Row::Note(Rc::new(p))),
        "A_PurchaseOrderScheduleLine" => data
            .purchase_orders
            .get(key >> 32)
            .map(|p| Row::Schedule(Rc::new(p), (key & 0xFFFF_FFFF) as usize)),
        "A_PurOrdAccountAssignment" => data
            .purchase_orders
            .get(key >> 32)
            .map(|p| Row::Account(Rc::new(p), (key & 0xFFFF_FFFF) as usize)),
        _ => None,
    }
}

/// Streams candidate rows for the general path, narrowed by the last-modified index or a PurchaseOrder
/// key; rows are built one at a time and dropped, so memory stays flat at any size.
fn for_each_candidate(
    set: &str,
    filter: Option<&Filter>,
    data: &Dataset,
    f: &mut dyn FnMut(u64, Row),
) {
    let po_key = filter.and_then(single_po);
    match set {
        "A_PurchaseOrder" => {
            let (lo, hi, _) = filter.map_or(
                (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, true),
                |f| odata::time_bounds(f, "LastChangeDateTime"),
            );
            for &(_, id) in data.purchase_orders.lm_range(lo, hi) {
                if po_key.is_none_or(|k| k == id)
                    && let Some(p) = data.purchase_orders.get(id)
                {
                    f(id, Row::Po(Rc::new(p)));
                }
            }
        }
        "A_PurchaseOrderItem"
        | "A_PurchaseOrderScheduleLine"
        | "A_PurOrdAccountAssignment"
        | "A_PurchaseOrderNote" => {
            let one = po_key.map(|k| vec![k]);
            let ids: &[u64] = match &one {
                Some(v) => v,
                None => data.purchase_orders.ids(),
            };
            for &id in ids {
                if let Some(po) = data.purchase_orders.get(id) {
                    let po = Rc::new(po);
                    let rows = match set {
                        "A_PurchaseOrderNote" => note_rows(&po),
                        "A_PurchaseOrderScheduleLine" => (0..po.lines.len())
                            .map(|i| Row::Schedule(po.clone(), i))
                            .collect(),
                        "A_PurOrdAccountAssignment" => (0..po.lines.len())
                            .flat_map(|i| account_rows(&po, i))
                            .collect(),
                        _ => (0..po.lines.len())
                            .map(|i| Row::Item(po.clone(), i))
                            .collect(),
                    };
                    for r in rows {
                        let packed = match &r {
                            Row::Note(_) => id,
                            Row::Item(_, i) | Row::Schedule(_, i) | Row::Account(_, i) => {
                                (id << 32) | *i as u64
                            }
                            _ => continue,
                        };
                        f(packed, r);
                    }
                }
            }
        }
        "A_Supplier" => data.vendors.ids().iter().for_each(|&id| {
            if let Some(v) = data.vendors.get(id) {
                f(id, Row::Supplier(v))
            }
        }),
        "A_BusinessPartner" => data.vendors.ids().iter().for_each(|&id| {
            if let Some(v) = data.vendors.get(id) {
                f(id, Row::Partner(v))
            }
        }),
        "A_BusinessPartnerRole" => data.vendors.ids().iter().for_each(|&id| {
            if let Some(v) = data.vendors.get(id) {
                for (i, role) in model::SUPPLIER_ROLES.iter().enumerate() {
                    f((id << 1) | i as u64, Row::Role(v.clone(), role));
                }
            }
        }),
        "A_Product" | "A_ProductDescription" => data.items.ids().iter().for_each(|&id| {
            if let Some(v) = data.items.get(id) {
                f(
                    id,
                    if set == "A_Product" {
                        Row::Product(v)
                    } else {
                        Row::Desc(v)
                    },
                )
            }
        }),
        _ => {}
    }
}

/// `PurchaseOrder eq '45…'` as a top-level conjunct narrows to one order.
fn single_po(f: &Filter) -> Option<u64> {
    match f {
        Filter::And(a, b) => single_po(a).or_else(|| single_po(b)),
        Filter::Cmp(odata::Operand::Prop(p), odata::Cmp::Eq, odata::Operand::Lit(OVal::Str(v)))
            if p == "PurchaseOrder" || p == "PurchasingDocument" =>
        {
            model::po_id(v)
        }
        _ => None,
    }
}

fn collection(sap: &Sap, req: &Req, set: &str, count_only: bool) -> Result<Response, SapError> {
    let def = find_def(req, set)?;
    let settings = sap.settings();
    let filter = match req.param("$filter") {
        Some(f) => {
            let parsed =
                odata::parse_filter(f, Version::V2).map_err(|e| bad_filter(req, &e.message))?;
            let mut props = Vec::new();
            odata::properties(&parsed, &mut props);
            if let Some(p) = props
                .iter()
                .find(|p| def.prop(p).is_none_or(|d| !d.filterable))
            {
                return Err(req.err(
                    StatusCode::BAD_REQUEST,
                    "/IWBEP/CM_MGW_RT/005",
                    format!("Property '{p}' is invalid"),
                ));
            }
            let mut funcs = Vec::new();
            odata::functions(&parsed, &mut funcs);
            if let Some(f) = funcs
                .iter()
                .find(|f| !odata::FUNCTIONS.contains(&f.as_str()) || f.as_str() == "contains")
            {
                return Err(bad_filter(req, &format!("unknown function '{f}'")));
            }
            Some(parsed)
        }
        None => None,
    };
    let orderby = match req.param("$orderby") {
        Some(o) => odata::parse_orderby(o)
            .map_err(|e| req.err(StatusCode::BAD_REQUEST, "/IWBEP/CM_MGW_RT/006", e.message))?,
        None => Vec::new(),
    };
    if let Some((p, _)) = orderby.iter().find(|(p, _)| def.prop(p).is_none()) {
        return Err(req.err(
            StatusCode::BAD_REQUEST,
            "/IWBEP/CM_MGW_RT/005",
            format!("Property '{p}' is invalid"),
        ));
    }
    let expand = list_param(req, "$expand");
    check_expand(req, def, &expand)?;
    let select = req.param("$select").map(|_| list_param(req, "$select"));
    let top = parse_int(req, "$top")?;
    let skip = parse_int(req, "$skip")?.unwrap_or(0);
    let token = parse_int(req, "$skiptoken")?.unwrap_or(0);

    let data = sap.core.read();
    let by_lm = matches!(orderby.as_slice(), [(a, true)] if a == "LastChangeDateTime")
        || matches!(orderby.as_slice(), [(a, true), (b, true)] if a == "LastChangeDateTime" && b == "PurchaseOrder");
    let by_key =
        orderby.is_empty() || matches!(orderby.as_slice(), [(a, true)] if a == "PurchaseOrder");
    let exact = filter.as_ref().map_or(
        (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, true),
        |f| odata::time_bounds(f, "LastChangeDateTime"),
    );
    let keys = if set == "A_PurchaseOrder" && filter.is_none() && by_key {
        Keyset::Ids(data.purchase_orders.ids())
    } else if set == "A_PurchaseOrder" && exact.2 && by_lm {
        Keyset::Lm(data.purchase_orders.lm_range(exact.0, exact.1))
    } else if set == "A_PurchaseOrder" && exact.2 && by_key {
        // Only a LastChangeDateTime range, in key order: ids from the index, sorted, nothing built.
        let mut ids: Vec<u64> = data
            .purchase_orders
            .lm_range(exact.0, exact.1)
            .iter()
            .map(|k| k.1)
            .collect();
        ids.sort_unstable();
        Keyset::Owned(Arc::new(ids))
    } else {
        let version =
            data.purchase_orders.version() + data.vendors.version() + data.items.version();
        let cache_key = format!(
            "{set}|{:?}|{:?}",
            req.param("$filter"),
            req.param("$orderby")
        );
        let cached = match &*sap.cache.lock().unwrap_or_else(|e| e.into_inner()) {
            Some((k, v, ids)) if *k == cache_key && *v == version => Some(ids.clone()),
            _ => None,
        };
        match cached {
            Some(c) => Keyset::Owned(c),
            None => {
                let mut keyed: Vec<(Vec<OVal>, u64)> = Vec::new();
                for_each_candidate(set, filter.as_ref(), &data, &mut |k, r| {
                    if filter
                        .as_ref()
                        .is_none_or(|f| odata::eval(f, &|n| prop(&r, n, &data)))
                    {
                        keyed.push((orderby.iter().map(|(p, _)| prop(&r, p, &data)).collect(), k));
                    }
                });
                keyed.sort_by(|a, b| {
                    for (i, (_, asc)) in orderby.iter().enumerate() {
                        let o = odata::sort_cmp(&a.0[i], &b.0[i]);
                        let o = if *asc { o } else { o.reverse() };
                        if o != std::cmp::Ordering::Equal {
                            return o;
                        }
                    }
                    a.1.cmp(&b.1)
                });
                let ids = Arc::new(keyed.into_iter().map(|x| x.1).collect::<Vec<_>>());
                *sap.cache.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((cache_key, version, ids.clone()));
                Keyset::Owned(ids)
            }
        }
    };
    let total = keys.len();
    if count_only {
        let n = top.map_or(total.saturating_sub(skip), |t| {
            total.saturating_sub(skip).min(t)
        });
        let mut r = Response::new(Body::from(n.to_string()));
        r.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("text/plain;charset=utf-8"),
        );
        return Ok(r);
    }
    let limit_end = top.map_or(total, |t| skip.saturating_add(t)).min(total);
    let start = skip.saturating_add(token).min(limit_end);
    let end = match settings.server_page_size {
        Some(n) => (start + n as usize).min(limit_end),
        None => limit_end,
    };
    let next = (end < limit_end).then(|| next_link(req, set, end - skip));
    if !wants_json(req) {
        let count = (req.param("$inlinecount") == Some("allpages")).then_some(total);
        let rows = (start..end).filter_map(|i| row_for(set, keys.get(i), &data));
        let x = atom::feed(
            &settings,
            req,
            def,
            rows,
            &data,
            select.as_deref(),
            &expand,
            count,
            next,
        );
        return Ok(atom_response(StatusCode::OK, x, "feed"));
    }
    let mut out =
        String::with_capacity((end - start) * if expand.is_empty() { 1600 } else { 16_000 } + 256);
    out.push_str("{\"d\":{");
    if req.param("$inlinecount") == Some("allpages") {
        let _ = write!(out, "\"__count\":\"{total}\",");
    }
    out.push_str("\"results\":[");
    let mut first = true;
    for i in start..end {
        if let Some(r) = row_for(set, keys.get(i), &data) {
            if !first {
                out.push(',');
            }
            first = false;
            render_text(
                &settings,
                req,
                &r,
                &data,
                select.as_deref(),
                &expand,
                &mut out,
            );
        }
    }
    out.push(']');
    if let Some(n) = next {
        out.push_str(",\"__next\":");
        json_str(&mut out, &n);
    }
    out.push_str("}}");
    Ok(json_text(StatusCode::OK, out))
}

/// The link to the page after `token` rows: the same options, `$skiptoken` replaced.
fn next_link(req: &Req, set: &str, token: usize) -> String {
    let mut q: Vec<String> = req
        .params
        .iter()
        .filter(|(k, _)| k != "$skiptoken")
        .map(|(k, v)| {
            format!(
                "{k}={}",
                form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            )
        })
        .collect();
    q.push(format!("$skiptoken={token}"));
    format!("{}/{set}?{}", req.root(), q.join("&"))
}

/// Parsed query parameters as a map (used by writes for `$expand` on the 201 body).
pub fn params_map(req: &Req) -> HashMap<String, String> {
    req.params.iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_paths() {
        assert_eq!(parse_resource("$metadata"), Some(Resource::Metadata));
        assert_eq!(
            parse_resource("A_PurchaseOrder"),
            Some(Resource::Collection("A_PurchaseOrder".into()))
        );
        assert_eq!(
            parse_resource("A_PurchaseOrder/$count"),
            Some(Resource::Count("A_PurchaseOrder".into()))
        );
        assert_eq!(
            parse_resource("A_PurchaseOrder('4500000001')/to_PurchaseOrderItem"),
            Some(Resource::Nav(
                "A_PurchaseOrder".into(),
                vec![(None, "4500000001".into())],
                "to_PurchaseOrderItem".into()
            ))
        );
        assert_eq!(
            parse_resource(
                "A_PurchaseOrderItem(PurchaseOrder='4500000001',PurchaseOrderItem='10')"
            ),
            Some(Resource::Entity(
                "A_PurchaseOrderItem".into(),
                vec![
                    (Some("PurchaseOrder".into()), "4500000001".into()),
                    (Some("PurchaseOrderItem".into()), "10".into())
                ]
            ))
        );
        assert_eq!(parse_keys("'it''s'"), Some(vec![(None, "it's".into())]));
        for bad in [
            "A_PurchaseOrder('x'",
            "A_PurchaseOrder(x)",
            "A_PurchaseOrder('1')/a/b",
            "A_PurchaseOrder('1'),",
        ] {
            assert_eq!(parse_resource(bad), None, "{bad}");
        }
    }
}
