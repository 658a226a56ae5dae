//! `$batch` (OData V2 batch processing, as SAP Gateway answers it): a `multipart/mixed` body of
//! GET requests and changesets; each changeset's requests apply together under one lock and,
//! if one fails, none stays applied and the changeset answers with that one error. The
//! answer is `202 Accepted` with one `application/http` part per request (a nested
//! `multipart/mixed` per changeset), as pyodata and the SAP Cloud SDK read it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::errors::SapError;
use super::service::{Req, build_req, dispatch_inner, parse_resource};
use super::{Sap, writes};

/// One HTTP request inside the batch.
struct Part {
    method: Method,
    /// Path below the service root, percent-decoded, with `$<id>` references resolved later.
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Vec<u8>,
    content_id: Option<String>,
}

enum Item {
    Get(Part),
    Changeset(Vec<Part>),
}

/// What a batch part answered: a response, or (a changeset) the responses of its requests.
enum Answer {
    One(Response),
    Changeset(Vec<Response>),
}

/// `POST …/$batch`: the outer request is authenticated and carries the CSRF token like any
/// other modifying request; its parts then run without another handshake.
pub async fn handle(sap: &Sap, req: &Req, body: &[u8]) -> Result<Response, SapError> {
    if req.method != Method::POST {
        return Err(req.err(
            StatusCode::METHOD_NOT_ALLOWED,
            "/IWBEP/CM_MGW_RT/034",
            "The request method is not allowed for $batch",
        ));
    }
    super::auth::check_token(sap, &req.headers)?;
    let items = parse(req, body)?;
    let mut answers = Vec::with_capacity(items.len());
    for item in items {
        answers.push(match item {
            Item::Get(part) => Answer::One(get(sap, req, &part)),
            Item::Changeset(parts) => match changeset(sap, req, parts) {
                Ok(rs) => Answer::Changeset(rs),
                Err(r) => Answer::One(*r),
            },
        });
    }
    let boundary = next_boundary(req.now);
    let mut out = Vec::new();
    for a in answers {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match a {
            Answer::One(r) => out.extend(http_part(r).await),
            Answer::Changeset(rs) => {
                let inner = next_boundary(req.now);
                let mut cs = Vec::new();
                for r in rs {
                    cs.extend_from_slice(format!("--{inner}\r\n").as_bytes());
                    cs.extend(http_part(r).await);
                }
                cs.extend_from_slice(format!("--{inner}--\r\n").as_bytes());
                out.extend_from_slice(
                    format!(
                        "Content-Type: multipart/mixed; boundary={inner}\r\nContent-Length: {}\r\n\r\n",
                        cs.len()
                    )
                    .as_bytes(),
                );
                out.extend(cs);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let mut r = Response::new(Body::from(out));
    *r.status_mut() = StatusCode::ACCEPTED;
    if let Ok(v) = HeaderValue::from_str(&format!("multipart/mixed; boundary={boundary}")) {
        r.headers_mut().insert("content-type", v);
    }
    r.headers_mut()
        .insert("dataserviceversion", HeaderValue::from_static("2.0"));
    Ok(r)
}

/// Boundaries as a recorded SAP Gateway batch answer has them: 33 upper-case hex digits.
fn next_boundary(now: i64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:016X}{:016X}{}",
        now as u64,
        n.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        n % 10
    )
}

/// One part of the answer: the response as `application/http`.
async fn http_part(r: Response) -> Vec<u8> {
    let (head, body) = r.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let mut msg = format!(
        "HTTP/1.1 {} {}\r\n",
        head.status.as_u16(),
        head.status.canonical_reason().unwrap_or("")
    );
    for (k, v) in &head.headers {
        if k != "content-length"
            && let Ok(v) = v.to_str()
        {
            msg.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    msg.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut http = msg.into_bytes();
    http.extend_from_slice(&body);
    let mut out = format!(
        "Content-Type: application/http\r\nContent-Length: {}\r\ncontent-transfer-encoding: binary\r\n\r\n",
        http.len()
    )
    .into_bytes();
    out.extend(http);
    out.extend_from_slice(b"\r\n");
    out
}

/// The outer request's credentials and session go with every part.
fn part_headers(outer: &Req, part: &Part) -> HeaderMap {
    let mut h = part.headers.clone();
    for k in ["authorization", "cookie", "host"] {
        if let Some(v) = outer.headers.get(k) {
            h.insert(k, v.clone());
        }
    }
    h
}

/// A read outside any changeset.
fn get(sap: &Sap, outer: &Req, part: &Part) -> Response {
    if part.method != Method::GET {
        return outer
            .err(
                StatusCode::BAD_REQUEST,
                "/IWBEP/CM_MGW_RT/036",
                format!(
                    "Method {} is only allowed inside a changeset",
                    part.method.as_str()
                ),
            )
            .into_response();
    }
    match dispatch_inner(
        sap,
        outer.service.name,
        &part.path,
        Method::GET,
        part_headers(outer, part),
        &part.query,
        &[],
    ) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// Runs a changeset atomically: every request under one write lock, the data restored when
/// one fails. `Err` is the one answer SAP gives for a failed changeset.
fn changeset(sap: &Sap, outer: &Req, parts: Vec<Part>) -> Result<Vec<Response>, Box<Response>> {
    let mut data = sap.core.write();
    let before = data.clone();
    let mut created: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        let result = (|| {
            if part.method == Method::GET {
                return Err(outer.err(
                    StatusCode::BAD_REQUEST,
                    "/IWBEP/CM_MGW_RT/036",
                    "A changeset must not contain GET requests",
                ));
            }
            // `$1/to_PurchaseOrderItem`: a Content-ID names an entity created before.
            let path = match part.path.strip_prefix('$').and_then(|r| {
                let (id, rest) = r.split_at(r.find('/').unwrap_or(r.len()));
                created.get(id).map(|p| format!("{p}{rest}"))
            }) {
                Some(p) => p,
                None => part.path.clone(),
            };
            let req = build_req(
                sap,
                outer.service.name,
                part.method.clone(),
                part_headers(outer, &part),
                &part.query,
            )?;
            let res = parse_resource(&path).ok_or_else(|| req.not_found(&path))?;
            writes::write_in(sap, &req, res, &part.body, &mut data)
        })();
        match result {
            Ok(r) => {
                if let (Some(id), Some(loc)) = (
                    &part.content_id,
                    r.headers().get("location").and_then(|v| v.to_str().ok()),
                ) {
                    let root = format!("{}/", outer.root());
                    created.insert(
                        id.clone(),
                        loc.strip_prefix(&root).unwrap_or(loc).to_string(),
                    );
                }
                out.push(r);
            }
            Err(e) => {
                *data = before;
                return Err(Box::new(e.into_response()));
            }
        }
    }
    Ok(out)
}

fn malformed(req: &Req, why: &str) -> SapError {
    req.err(
        StatusCode::BAD_REQUEST,
        "/IWFND/CM_MGW/004",
        format!("Malformed syntax in batch request: {why}"),
    )
}

/// The `boundary` parameter of a `multipart/mixed` content type.
fn boundary_of(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/mixed") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty())
    })
}

/// The parts between `--boundary` lines, up to `--boundary--`.
fn split_parts<'a>(body: &'a str, boundary: &str) -> Option<Vec<&'a str>> {
    let delim = format!("--{boundary}");
    let mut rest = &body[body.find(&delim)? + delim.len()..];
    let mut parts = Vec::new();
    loop {
        if rest.starts_with("--") {
            return Some(parts);
        }
        let next = rest.find(&delim)?;
        let part = rest[..next]
            .strip_prefix("\r\n")
            .or_else(|| rest[..next].strip_prefix('\n'))
            .unwrap_or(&rest[..next]);
        let part = part
            .strip_suffix("\r\n")
            .or_else(|| part.strip_suffix('\n'))
            .unwrap_or(part);
        parts.push(part);
        rest = &rest[next + delim.len()..];
    }
}

/// Header lines and what follows the blank line.
fn head_and_body(text: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = match (text.find("\r\n\r\n"), text.find("\n\n")) {
        (Some(a), Some(b)) if b < a => (&text[..b], &text[b + 2..]),
        (Some(a), _) => (&text[..a], &text[a + 4..]),
        (None, Some(b)) => (&text[..b], &text[b + 2..]),
        (None, None) => (text, ""),
    };
    let headers = head
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    (headers, body)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn parse(req: &Req, body: &[u8]) -> Result<Vec<Item>, SapError> {
    let ctype = req
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = boundary_of(ctype).ok_or_else(|| {
        malformed(
            req,
            "the content type must be multipart/mixed with a boundary",
        )
    })?;
    let text =
        std::str::from_utf8(body).map_err(|_| malformed(req, "the body is not UTF-8 text"))?;
    let parts = split_parts(text, &boundary)
        .ok_or_else(|| malformed(req, "the body does not close its boundary"))?;
    let mut items = Vec::new();
    for p in parts {
        let (mime, content) = head_and_body(p);
        let ct = header(&mime, "content-type").unwrap_or("");
        if let Some(inner) = boundary_of(ct) {
            let requests = split_parts(content, &inner)
                .ok_or_else(|| malformed(req, "a changeset does not close its boundary"))?;
            let mut cs = Vec::new();
            for r in requests {
                let (m, c) = head_and_body(r);
                cs.push(request(req, &m, c)?);
            }
            items.push(Item::Changeset(cs));
        } else {
            items.push(Item::Get(request(req, &mime, content)?));
        }
    }
    Ok(items)
}

/// One `application/http` part: request line, headers, body.
fn request(req: &Req, mime: &[(String, String)], content: &str) -> Result<Part, SapError> {
    let ct = header(mime, "content-type").unwrap_or("");
    if !ct.to_ascii_lowercase().starts_with("application/http") {
        return Err(malformed(req, "a part is not application/http"));
    }
    let content = content.trim_start_matches(['\r', '\n']);
    let (line, rest) = content.split_once('\n').unwrap_or((content, ""));
    let mut words = line.split_whitespace();
    let (Some(method), Some(url)) = (words.next(), words.next()) else {
        return Err(malformed(req, "a part has no request line"));
    };
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| malformed(req, "a part has an invalid method"))?;
    let (head, body) = head_and_body(rest);
    let mut headers = HeaderMap::new();
    for (k, v) in head {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            headers.append(k, v);
        }
    }
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (url, None),
    };
    Ok(Part {
        method,
        path: below_root(req, &percent_decode(path)),
        query,
        headers,
        body: body.trim_end_matches(['\r', '\n']).as_bytes().to_vec(),
        content_id: header(mime, "content-id").map(str::to_string),
    })
}

/// A part's URL relative to the service root (parts may give it absolute, or with a host).
fn below_root(req: &Req, path: &str) -> String {
    let path = match path.find("://") {
        Some(i) => path[i + 3..].find('/').map_or("", |j| &path[i + 3 + j..]),
        None => path,
    };
    let prefix = format!("/sap/opu/odata/sap/{}/", req.service.name);
    let rel = if path.len() >= prefix.len() && path[..prefix.len()].eq_ignore_ascii_case(&prefix) {
        &path[prefix.len()..]
    } else {
        path
    };
    rel.trim_start_matches('/').to_string()
}

/// `%28` → `(`: pyodata percent-encodes keys in the paths it puts in a batch.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_parts_and_paths() {
        assert_eq!(
            boundary_of("multipart/mixed;boundary=batch_1"),
            Some("batch_1".into())
        );
        assert_eq!(
            boundary_of("multipart/mixed; boundary=\"x y\""),
            Some("x y".into())
        );
        assert_eq!(boundary_of("application/json"), None);
        let body = "\r\n--b\r\nA: 1\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--";
        assert_eq!(
            split_parts(body, "b"),
            Some(vec!["A: 1\r\n\r\none", "\r\ntwo"])
        );
        assert_eq!(split_parts("--b\r\nnever closed", "b"), None);
        assert_eq!(
            percent_decode("A_PurchaseOrder%28%274500000001%27%29"),
            "A_PurchaseOrder('4500000001')"
        );
        assert_eq!(percent_decode("bad%2"), "bad%2");
    }
}
