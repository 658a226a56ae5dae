//! NetSuite's error body (`type`, `title`, `status`, `o:errorDetails`) and the standard errors built on it.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::Ns;
use crate::common::gate::{SystemErrors, Throttle};

pub const ERROR_CONTENT_TYPE: &str =
    "application/vnd.oracle.resource+json; type=error; charset=UTF-8";

pub const INVALID_LOGIN_DETAIL: &str = "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI at Setup > Users/Roles > User Management > View Login Audit Trail.";

fn type_url(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.1",
        401 => "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.2",
        403 => "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.4",
        404 => "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.5",
        405 => "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.6",
        415 => "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.16",
        429 => "https://tools.ietf.org/html/rfc6585#section-4",
        503 => "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.5.4",
        _ => "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.5.1",
    }
}

/// One entry of `o:errorDetails`.
#[derive(Debug, Clone)]
pub struct Detail {
    pub detail: String,
    pub code: String,
    pub extra: Vec<(&'static str, String)>,
}

impl Detail {
    pub fn new(code: &str, detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
            code: code.to_string(),
            extra: Vec::new(),
        }
    }
    /// Adds `o:errorPath`, `o:errorQueryParam`, `o:errorHeader` or `o:urlPath`.
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((key, value.into()));
        self
    }
}

/// A NetSuite error response; handlers return `Result<_, NsError>`.
#[derive(Debug, Clone)]
pub struct NsError {
    pub status: StatusCode,
    pub details: Vec<Detail>,
    pub headers: Vec<(&'static str, String)>,
}

impl NsError {
    pub fn new(status: StatusCode, detail: Detail) -> Self {
        Self {
            status,
            details: vec![detail],
            headers: Vec::new(),
        }
    }

    pub fn bad_request(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Detail::new(code, detail))
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(&self) -> Value {
        let details: Vec<Value> = self
            .details
            .iter()
            .map(|d| {
                let mut m = Map::new();
                m.insert("detail".into(), json!(d.detail));
                for (k, v) in &d.extra {
                    m.insert((*k).into(), json!(v));
                }
                m.insert("o:errorCode".into(), json!(d.code));
                Value::Object(m)
            })
            .collect();
        json!({
            "type": type_url(self.status),
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "o:errorDetails": details,
        })
    }

    /// 401 for a missing, unknown, expired or revoked credential.
    pub fn invalid_login(realm: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            Detail::new("INVALID_LOGIN", INVALID_LOGIN_DETAIL),
        )
        .header(
            "www-authenticate",
            format!(
                "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"Invalid login attempt.\""
            ),
        )
    }

    pub fn invalid_parameter(param: &str, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Detail::new("INVALID_PARAMETER", detail).with("o:errorQueryParam", param),
        )
    }

    pub fn not_found(code: &str, record_type: &str, id: &str, url_path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            Detail::new(
                code,
                format!(
                    "The record instance does not exist. Provide a valid record instance ID. Record type: {record_type}, ID: {id}."
                ),
            )
            .with("o:errorUrl", url_path),
        )
    }
}

impl IntoResponse for NsError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body())).into_response();
        resp.headers_mut()
            .insert("content-type", HeaderValue::from_static(ERROR_CONTENT_TYPE));
        for (k, v) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(v) {
                resp.headers_mut().insert(*k, v);
            }
        }
        resp
    }
}

/// Unknown paths under the API answer like NetSuite's REST dispatcher.
pub async fn not_found_route(uri: Uri) -> NsError {
    NsError::new(
        StatusCode::NOT_FOUND,
        Detail::new(
            "NONEXISTENT_ID",
            format!("Invalid URL: the path {} is not supported.", uri.path()),
        )
        .with("o:errorUrl", uri.path().to_string()),
    )
}

pub struct NsErrors(pub Ns);

impl SystemErrors for NsErrors {
    fn too_many_requests(&self, why: Throttle, retry_after_secs: Option<u64>) -> Response {
        let code = self.0.settings().concurrency_error_code;
        let detail = match why {
            Throttle::Concurrency => {
                "Request blocked: the account concurrency limit has been reached. Retry after running requests complete."
            }
            _ => "Too many requests. Retry later.",
        };
        let mut e = NsError::new(StatusCode::TOO_MANY_REQUESTS, Detail::new(&code, detail));
        if let Some(s) = retry_after_secs {
            e = e.header("retry-after", s.to_string());
        }
        e.into_response()
    }

    fn server_error(&self, status: StatusCode) -> Response {
        NsError::new(
            status,
            Detail::new(
                "UNEXPECTED_ERROR",
                "An unexpected error occurred. Error ID: emulated",
            ),
        )
        .into_response()
    }

    fn concurrency(&self) -> Option<(u32, u32)> {
        // NetSuite rejects at once rather than queueing.
        Some((self.0.settings().concurrency_limit, 0))
    }
}
