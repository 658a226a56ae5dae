//! OData V2 Atom: the feeds and entries SAP Gateway answers when a client does not ask for JSON
//! (`$format=json` or an `Accept` naming JSON), shaped as a recorded entry of
//! `A_PurchaseOrder` shows them: no `m:type` attributes, `<d:X/>` for empty text,
//! `m:null="true"` for null, dates without an offset, `DateTimeOffset` with seven decimals.

use std::fmt::Write as _;

use super::Settings;
use super::metadata::EntityDef;
use super::model::Edm;
use super::service::{Req, Row, RowValues, def_for, entity_uri, expands, nav_rows, sub_expand};
use crate::common::Dataset;
use crate::common::clock::iso_millis;
use crate::common::odata::OVal;

const NS: &str = "xmlns=\"http://www.w3.org/2005/Atom\" xmlns:m=\"http://schemas.microsoft.com/ado/2007/08/dataservices/metadata\" xmlns:d=\"http://schemas.microsoft.com/ado/2007/08/dataservices\"";
const SCHEME: &str = "http://schemas.microsoft.com/ado/2007/08/dataservices/scheme";
const RELATED: &str = "http://schemas.microsoft.com/ado/2007/08/dataservices/related/";

/// XML text with `& < > "` escaped (attributes are double-quoted, so `'` stays, as SAP
/// writes keys in links: `A_PurchaseOrder('4500003595')`).
pub fn escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// A collection as an Atom feed; `count` with `$inlinecount=allpages`, `next` the link to the
/// following page when the server pages.
#[allow(clippy::too_many_arguments)]
pub fn feed(
    settings: &Settings,
    req: &Req,
    def: &EntityDef,
    rows: impl Iterator<Item = Row>,
    data: &Dataset,
    select: Option<&[String]>,
    expand: &[String],
    count: Option<usize>,
    next: Option<String>,
) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    let _ = write!(out, "<feed xml:base=\"");
    escape(&mut out, &format!("{}/", req.root()));
    let _ = write!(out, "\" {NS}>");
    feed_body(
        &mut out, settings, req, def.set, rows, data, select, expand, count,
    );
    if let Some(n) = next {
        out.push_str("<link href=\"");
        escape(&mut out, &n);
        out.push_str("\" rel=\"next\"/>");
    }
    out.push_str("</feed>");
    out
}

#[allow(clippy::too_many_arguments)]
fn feed_body(
    out: &mut String,
    settings: &Settings,
    req: &Req,
    set: &str,
    rows: impl Iterator<Item = Row>,
    data: &Dataset,
    select: Option<&[String]>,
    expand: &[String],
    count: Option<usize>,
) {
    out.push_str("<id>");
    escape(out, &format!("{}/{set}", req.root()));
    let _ = write!(
        out,
        "</id><title type=\"text\">{set}</title><updated>{}</updated><author><name/></author><link href=\"{set}\" rel=\"self\" title=\"{set}\"/>",
        updated(req.now)
    );
    if let Some(n) = count {
        let _ = write!(out, "<m:count>{n}</m:count>");
    }
    for r in rows {
        entry_body(out, settings, req, &r, data, select, expand, false);
    }
}

/// One entity as a top-level Atom entry.
pub fn entry(
    settings: &Settings,
    req: &Req,
    row: &Row,
    data: &Dataset,
    select: Option<&[String]>,
    expand: &[String],
) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    entry_body(&mut out, settings, req, row, data, select, expand, true);
    out
}

fn updated(now: i64) -> String {
    let iso = iso_millis(now);
    format!("{}Z", &iso[..19])
}

#[allow(clippy::too_many_arguments)]
fn entry_body(
    out: &mut String,
    settings: &Settings,
    req: &Req,
    row: &Row,
    data: &Dataset,
    select: Option<&[String]>,
    expand: &[String],
    top: bool,
) {
    let def = def_for(row);
    let uri = entity_uri(req, def, row, data);
    // The edit link is relative to the service root, as in the recorded entry.
    let rel = uri
        .strip_prefix(&format!("{}/", req.root()))
        .unwrap_or(&uri)
        .to_string();
    out.push_str("<entry");
    if top {
        out.push_str(" xml:base=\"");
        escape(out, &format!("{}/", req.root()));
        let _ = write!(out, "\" {NS}");
    }
    if settings.etag
        && matches!(row, Row::Po(_))
        && let Some(t) = super::service::etag(row, data)
    {
        out.push_str(" m:etag=\"");
        escape(out, &t);
        out.push('"');
    }
    out.push_str("><id>");
    escape(out, &uri);
    out.push_str("</id><title type=\"text\">");
    escape(out, &rel);
    let _ = write!(
        out,
        "</title><updated>{}</updated><category term=\"{}.{}\" scheme=\"{SCHEME}\"/><link href=\"",
        updated(req.now),
        req.service.name,
        def.type_name
    );
    escape(out, &rel);
    let _ = write!(out, "\" rel=\"edit\" title=\"{}\"/>", def.type_name);
    let keep = |n: &str| select.is_none_or(|s| s.iter().any(|x| x == n || x == "*"));
    for (nav, _, many) in def.navs {
        if !keep(nav) && !expands(expand, nav) {
            continue;
        }
        let kind = if *many { "feed" } else { "entry" };
        out.push_str("<link href=\"");
        escape(out, &format!("{rel}/{nav}"));
        let _ = write!(
            out,
            "\" rel=\"{RELATED}{nav}\" type=\"application/atom+xml;type={kind}\" title=\"{nav}\""
        );
        match nav_rows(row, nav, data) {
            Some((rows, many)) if expands(expand, nav) => {
                let deeper = sub_expand(expand, nav);
                out.push_str("><m:inline>");
                if many {
                    out.push_str("<feed>");
                    let target = rows.first().map_or(*nav, |r| def_for(r).set);
                    feed_body(
                        out,
                        settings,
                        req,
                        target,
                        rows.into_iter(),
                        data,
                        None,
                        &deeper,
                        None,
                    );
                    out.push_str("</feed>");
                } else if let Some(r) = rows.first() {
                    entry_body(out, settings, req, r, data, None, &deeper, false);
                }
                out.push_str("</m:inline></link>");
            }
            _ => out.push_str("/>"),
        }
    }
    out.push_str("<content type=\"application/xml\"><m:properties>");
    let values = RowValues::new(row, data);
    for p in def.props {
        if (p.name.starts_with("YY1_") && !settings.custom_fields) || !keep(p.name) {
            continue;
        }
        let v = values.value(p);
        let text = match (p.ty, &v) {
            (_, OVal::Null) => {
                let _ = write!(out, "<d:{} m:null=\"true\"/>", p.name);
                continue;
            }
            (Edm::Dec(..), OVal::Num(n)) => values.decimal(p, *n, settings.decimal_format),
            (Edm::DateTime, OVal::Time(ms)) => iso_millis(*ms)[..19].to_string(),
            (Edm::DateTimeOffset, OVal::Time(ms)) => {
                let iso = iso_millis(*ms);
                format!("{}0000Z", &iso[..23])
            }
            (_, OVal::Time(ms)) => iso_millis(*ms)[..19].to_string(),
            (_, OVal::Str(s)) => s.clone(),
            (_, OVal::Bool(b)) => b.to_string(),
            (_, OVal::Num(n)) => n.to_string(),
        };
        if text.is_empty() {
            let _ = write!(out, "<d:{}/>", p.name);
        } else {
            let _ = write!(out, "<d:{}>", p.name);
            escape(out, &text);
            let _ = write!(out, "</d:{}>", p.name);
        }
    }
    out.push_str("</m:properties></content></entry>");
}
