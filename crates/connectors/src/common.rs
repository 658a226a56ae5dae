//! What every connector shares: one authenticated call (a 401 refreshes a cached token and
//! tries once more), the client's limits from the system's descriptor, settings validation,
//! secrets that never print, upstream error mapping, the source's clock from the HTTP `Date`
//! header, JSON parsing off the sync's thread, and keyset cursors.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ironbridge_core::Clock;
use ironbridge_core::connector::{ConnectorError, SourceRecord};
use ironbridge_core::netguard::Egress;
use ironbridge_core::system::Limits;
use ironbridge_model::Timestamp;
use reqwest::header::{AUTHORIZATION, DATE, HeaderMap};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::backoff::RetryPolicy;
use crate::client::{UpstreamClient, UpstreamConfig, UpstreamError, UpstreamResponse};
use crate::sleeper::Sleeper;

/// How a connector authenticates its calls.
#[async_trait]
pub(crate) trait Authorize: Send + Sync {
    /// The `Authorization` header value (fetching a token when none is cached).
    async fn authorization(&self) -> Result<String, ConnectorError>;

    /// The source refused the last authorization (HTTP 401): forget any cached token.
    /// `true` when a fresh one may be accepted, so the call is tried once more.
    async fn refused(&self) -> bool;
}

/// Sends one request built by `make` with the connection's authorization, through the
/// connection's client (limits, retries, breaker), and records the source's clock. A 401 is
/// tried once more with a fresh token where there is one to refresh, then is `Unauthorized`.
pub(crate) async fn authorized_call(
    client: &UpstreamClient,
    auth: &dyn Authorize,
    source_clock: &SourceClock,
    make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    upstream: fn(UpstreamError) -> ConnectorError,
) -> Result<UpstreamResponse, ConnectorError> {
    authorized(client, auth, source_clock, make, upstream, false).await
}

/// [`authorized_call`] for a write that is not idempotent (a create): sent again only when it
/// certainly did not reach the source, or was refused before processing (a 401 included: the
/// source refused it before applying anything). Otherwise a lost answer is
/// [`ConnectorError::OutcomeUnknown`] ([`UpstreamClient::send_write`]).
pub(crate) async fn authorized_write(
    client: &UpstreamClient,
    auth: &dyn Authorize,
    source_clock: &SourceClock,
    make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    upstream: fn(UpstreamError) -> ConnectorError,
) -> Result<UpstreamResponse, ConnectorError> {
    authorized(client, auth, source_clock, make, upstream, true).await
}

/// [`authorized_call`] (`write` false) or [`authorized_write`] (`write` true).
pub(crate) async fn authorized(
    client: &UpstreamClient,
    auth: &dyn Authorize,
    source_clock: &SourceClock,
    make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    upstream: fn(UpstreamError) -> ConnectorError,
    write: bool,
) -> Result<UpstreamResponse, ConnectorError> {
    for attempt in 0..2 {
        let authorization = auth.authorization().await?;
        let signed = |http: &reqwest::Client| make(http).header(AUTHORIZATION, &authorization);
        let sent = if write {
            client.send_write(signed).await
        } else {
            client.send(signed).await
        };
        let response = sent.map_err(upstream)?;
        source_clock.observe(&response.headers, client.now());
        if response.status != 401 {
            return Ok(response);
        }
        if attempt == 1 || !auth.refused().await {
            break;
        }
    }
    Err(ConnectorError::Unauthorized)
}

/// The client of one connection, kept to the system's documented limits and to the
/// operator's egress policy.
pub(crate) fn limited_client(
    limits: &Limits,
    timeout: Duration,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    egress: Egress,
) -> Result<UpstreamClient, ConnectorError> {
    let config = UpstreamConfig {
        timeout,
        max_body_bytes: egress.max_response_bytes,
        egress,
        concurrency: limits.concurrency,
        per_second: limits.per_second,
        burst: limits.burst,
        retry: RetryPolicy::default(),
        ..UpstreamConfig::default()
    };
    UpstreamClient::new(config, clock, sleeper).map_err(upstream)
}

/// A secret value: its `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct Secret(pub(crate) String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Reads a settings or credentials object: unknown keys and missing required ones are errors
/// naming `<prefix>.<key>`.
pub(crate) struct Fields<'a> {
    map: Option<&'a Map<String, Value>>,
    prefix: &'static str,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(
        map: Option<&'a Map<String, Value>>,
        prefix: &'static str,
        allowed: &[&str],
    ) -> Result<Self, ConnectorError> {
        if let Some(m) = map
            && let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str()))
        {
            return Err(ConnectorError::InvalidSettings {
                param: format!("{prefix}.{k}"),
                message: format!("unknown {prefix} key `{k}`"),
            });
        }
        Ok(Fields { map, prefix })
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.map.is_some_and(|m| m.contains_key(key))
    }

    pub(crate) fn invalid(&self, key: &str, message: impl Into<String>) -> ConnectorError {
        ConnectorError::InvalidSettings {
            param: format!("{}.{key}", self.prefix),
            message: message.into(),
        }
    }

    /// An optional non-empty string.
    pub(crate) fn opt(&self, key: &str) -> Result<Option<String>, ConnectorError> {
        match self.map.and_then(|m| m.get(key)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(self.invalid(key, format!("`{key}` must be a non-empty string"))),
        }
    }

    /// A required non-empty string.
    pub(crate) fn req(&self, key: &str) -> Result<String, ConnectorError> {
        self.opt(key)?
            .ok_or_else(|| self.invalid(key, format!("`{key}` is required")))
    }

    /// An optional whole number within `range`.
    pub(crate) fn num(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<u64>, ConnectorError> {
        match self.map.and_then(|m| m.get(key)) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|n| range.contains(n))
                .map(Some)
                .ok_or_else(|| {
                    self.invalid(
                        key,
                        format!(
                            "`{key}` must be a number from {} to {}",
                            range.start(),
                            range.end()
                        ),
                    )
                }),
        }
    }

    /// A required http(s) URL without a trailing slash.
    pub(crate) fn url(&self, key: &str, required: bool) -> Result<Option<String>, ConnectorError> {
        let value = if required {
            Some(self.req(key)?)
        } else {
            self.opt(key)?
        };
        match value {
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
                Ok(Some(u.trim_end_matches('/').to_string()))
            }
            Some(_) => Err(self.invalid(key, format!("`{key}` must be an http(s) URL"))),
            None => Ok(None),
        }
    }
}

/// A failure of the plumbing (no answer worth reading), as the connector error; the text
/// carries no URL, header or body.
pub(crate) fn upstream(e: UpstreamError) -> ConnectorError {
    match e {
        UpstreamError::RateLimited(_) | UpstreamError::Status { status: 429, .. } => {
            ConnectorError::Throttled(e.to_string())
        }
        UpstreamError::OutcomeUnknown(what) => ConnectorError::OutcomeUnknown(what),
        // Only a page of records grows past the cap (every other answer is one record or a
        // token): the setting that shrinks it is the one to name.
        UpstreamError::TooLarge(cap) => ConnectorError::InvalidSettings {
            param: "page_size".into(),
            message: format!(
                "is too large for this source: one page of records exceeded the {} answer cap; set a smaller `page_size` on the connection (or the operator a larger `connections.max_response_mb`)",
                if cap >= 1 << 20 {
                    format!("{} MB", cap >> 20)
                } else {
                    format!("{} KB", cap >> 10)
                }
            ),
        },
        e => ConnectorError::Upstream(e.to_string()),
    }
}

/// An answer that is neither success nor a known error, as the connector error.
pub(crate) fn unexpected(what: &str, response: &UpstreamResponse) -> ConnectorError {
    ConnectorError::Upstream(format!("{what}: unexpected HTTP {}", response.status))
}

/// The source's clock, learnt from the `Date` header of its answers (every answer, errors
/// and the token endpoint's included) as an offset from ours: a host's clock drifts and an
/// account may sit in another data centre, so the source's "now" is ours plus the offset it
/// last showed, at any later instant (not the stale time of the last answer). `Date` has
/// whole seconds, so the offset is known to about a second.
#[derive(Debug, Default)]
pub(crate) struct SourceClock(Mutex<Option<i64>>);

impl SourceClock {
    /// Learns the offset from an answer's `Date` header received at `now` (our clock); an
    /// answer without one changes nothing.
    pub(crate) fn observe(&self, headers: &HeaderMap, now: Timestamp) {
        if let Some(t) = headers
            .get(DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(http_date)
        {
            let offset = t.micros().saturating_sub(now.micros());
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(offset);
        }
    }

    /// How far the source's clock runs ahead of ours, in microseconds (negative: behind);
    /// `None` until an answer carried a `Date`.
    pub(crate) fn offset_micros(&self) -> Option<i64> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The source's time at our `now`, if its offset is known.
    pub(crate) fn at(&self, now: Timestamp) -> Option<Timestamp> {
        self.offset_micros()
            .map(|offset| Timestamp(now.micros().saturating_add(offset)))
    }

    /// The source's time at our `now`: ours corrected by the offset, or ours until one is known.
    pub(crate) fn corrected(&self, now: Timestamp) -> Timestamp {
        self.at(now).unwrap_or(now)
    }
}

/// Parses an IMF-fixdate (`Mon, 23 Nov 2026 13:04:58 GMT`).
pub(crate) fn http_date(value: &str) -> Option<Timestamp> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let date = time::PrimitiveDateTime::parse(value.trim(), &format)
        .ok()?
        .assume_utc();
    Some(Timestamp::from_secs(date.unix_timestamp()))
}

/// Parses a JSON body, or says which call answered something else.
pub(crate) fn json_body(what: &str, response: &UpstreamResponse) -> Result<Value, ConnectorError> {
    serde_json::from_slice(&response.body)
        .map_err(|_| ConnectorError::Upstream(format!("{what}: the answer is not JSON")))
}

/// Answers larger than this are parsed on a background thread.
const PARSE_OFF_THREAD_BYTES: usize = 64 * 1024;

/// Parses a JSON answer; a large one (a page of records) on a background thread, so that
/// parsing one page runs beside the rest of the sync (other pages being mapped or written)
/// instead of taking turns with it on the sync's thread, and yields to API requests.
pub(crate) async fn parse_json(body: bytes::Bytes) -> Result<Value, serde_json::Error> {
    if body.len() < PARSE_OFF_THREAD_BYTES {
        return serde_json::from_slice(&body);
    }
    match ironbridge_core::background::run(move || serde_json::from_slice(&body)).await {
        Ok(parsed) => parsed,
        Err(_) => Err(serde::de::Error::custom("the parser stopped")),
    }
}

/// [`json_body`] for answers that may be large (pages of records are read by
/// [`odata_v4_page`] and [`odata_v2_page`] instead, never as trees).
pub(crate) async fn json_page(
    what: &str,
    response: &UpstreamResponse,
) -> Result<Value, ConnectorError> {
    parse_json(response.body.clone())
        .await
        .map_err(|_| ConnectorError::Upstream(format!("{what}: the answer is not JSON")))
}

/// Runs `cut` over an answer's body; a large one on a background thread (as
/// [`parse_json`]).
async fn cut_page<T: Send + 'static>(
    what: &str,
    body: bytes::Bytes,
    cut: fn(&bytes::Bytes) -> Result<T, serde_json::Error>,
) -> Result<T, ConnectorError> {
    let not_json = || ConnectorError::Upstream(format!("{what}: the answer is not JSON"));
    if body.len() < PARSE_OFF_THREAD_BYTES {
        return cut(&body).map_err(|_| not_json());
    }
    match ironbridge_core::background::run(move || cut(&body)).await {
        Ok(Ok(page)) => Ok(page),
        _ => Err(not_json()),
    }
}

/// An OData v4 page (`{"value": [...], "@odata.nextLink": ...}`), its records borrowed from
/// the answer while it is parsed.
#[derive(serde::Deserialize)]
struct V4Page<'a> {
    #[serde(borrow, default)]
    value: Vec<&'a RawValue>,
    #[serde(default, rename = "@odata.nextLink")]
    next_link: Option<String>,
}

/// An OData v4 answer's records, cut out of its body without a copy, and its next link.
pub(crate) async fn odata_v4_page(
    what: &str,
    response: &UpstreamResponse,
) -> Result<(Vec<SourceRecord>, Option<String>), ConnectorError> {
    fn cut(body: &bytes::Bytes) -> Result<(Vec<SourceRecord>, Option<String>), serde_json::Error> {
        let page: V4Page<'_> = serde_json::from_slice(body)?;
        Ok((SourceRecord::cut(body, &page.value), page.next_link))
    }
    cut_page(what, response.body.clone(), cut).await
}

/// An OData v2 page as SAP Gateway sends it (`{"d": {"results": [...], "__next": ...}}`).
#[derive(serde::Deserialize)]
struct V2Page<'a> {
    #[serde(borrow)]
    d: Option<V2Results<'a>>,
}

#[derive(serde::Deserialize)]
struct V2Results<'a> {
    #[serde(borrow, default)]
    results: Vec<&'a RawValue>,
    #[serde(default)]
    __next: Option<serde::de::IgnoredAny>,
}

/// An OData v2 answer's records, cut out of its body without a copy, and whether it has a
/// next link; `None` for an answer without `d`.
pub(crate) async fn odata_v2_page(
    what: &str,
    response: &UpstreamResponse,
) -> Result<Option<(Vec<SourceRecord>, bool)>, ConnectorError> {
    type Cut = Option<(Vec<SourceRecord>, bool)>;
    fn cut(body: &bytes::Bytes) -> Result<Cut, serde_json::Error> {
        let page: V2Page<'_> = serde_json::from_slice(body)?;
        Ok(page
            .d
            .map(|d| (SourceRecord::cut(body, &d.results), d.__next.is_some())))
    }
    cut_page(what, response.body.clone(), cut).await
}

/// Splits a cursor `<ms>|<key>` (or `|<key>` without a time).
pub(crate) fn parse_cursor(cursor: &str) -> Result<(Option<i64>, String), ConnectorError> {
    let bad = || ConnectorError::InvalidSettings {
        param: "cursor".into(),
        message: "the cursor is not one this connector issued".into(),
    };
    let rest = cursor.strip_prefix("k1|").ok_or_else(bad)?;
    let (t, key) = rest.split_once('|').ok_or_else(bad)?;
    let t = if t.is_empty() {
        None
    } else {
        Some(t.parse::<i64>().map_err(|_| bad())?)
    };
    if key.is_empty() {
        return Err(bad());
    }
    Ok((t, key.to_string()))
}

/// Builds a cursor from the last record read.
pub(crate) fn make_cursor(t: Option<i64>, key: &str) -> String {
    match t {
        Some(t) => format!("k1|{t}|{key}"),
        None => format!("k1||{key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let c = make_cursor(Some(1_700_000_000_123), "4500000001");
        assert_eq!(
            parse_cursor(&c).unwrap(),
            (Some(1_700_000_000_123), "4500000001".to_string())
        );
        assert_eq!(
            parse_cursor(&make_cursor(None, "a|b")).unwrap(),
            (None, "a|b".to_string())
        );
        assert!(parse_cursor("nope").is_err());
        assert!(parse_cursor("k1|x|k").is_err());
    }

    #[test]
    fn http_dates_parse_and_secrets_do_not_print() {
        assert_eq!(
            http_date("Thu, 01 Jan 2026 00:00:00 GMT").unwrap(),
            Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap()
        );
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "Secret(***)");
    }

    #[test]
    fn the_source_clock_is_ours_plus_the_offset_its_date_showed() {
        let ours = Timestamp::parse_rfc3339("2026-01-01T00:10:00Z").unwrap();
        let clock = SourceClock::default();
        assert_eq!((clock.at(ours), clock.corrected(ours)), (None, ours));
        let mut headers = HeaderMap::new();
        headers.insert(DATE, "Thu, 01 Jan 2026 00:00:00 GMT".parse().unwrap());
        clock.observe(&headers, ours);
        assert_eq!(clock.offset_micros(), Some(-600_000_000));
        // An hour later on our clock, the source is still ten minutes behind.
        let later = ours.plus_secs(3600);
        assert_eq!(clock.corrected(later), later.plus_secs(-600));
        // An answer without a Date (or with a malformed one) keeps what was learnt.
        clock.observe(&HeaderMap::new(), later);
        headers.insert(DATE, "yesterday".parse().unwrap());
        clock.observe(&headers, later);
        assert_eq!(clock.offset_micros(), Some(-600_000_000));
    }
}
