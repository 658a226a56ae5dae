//! SAP Gateway error bodies (`error.code`, `message.value`, `innererror.errordetails`), the HTML logon
//! page of a failed Basic login, and the CSRF refusal.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Sap;
use crate::common::clock::ms_to_datetime;
use crate::common::datagen::mix;
use crate::common::gate::{SystemErrors, Throttle};

#[derive(Debug, Clone)]
pub enum SapError {
    /// JSON Gateway error with message code (`ME/083`, `/IWBEP/CM_MGW_RT/020`, …).
    Gateway {
        status: StatusCode,
        code: String,
        message: String,
        service: &'static str,
        timestamp_ms: i64,
        retry_after: Option<u64>,
    },
    /// 401 for Basic or bearer failures.
    Unauthorized { html: bool, realm: String },
    /// 403 `x-csrf-token: Required`.
    Csrf,
}

impl SapError {
    pub fn gateway(
        status: StatusCode,
        code: &str,
        message: impl Into<String>,
        service: &'static str,
        now: i64,
    ) -> Self {
        SapError::Gateway {
            status,
            code: code.into(),
            message: message.into(),
            service,
            timestamp_ms: now,
            retry_after: None,
        }
    }
}

/// `20210524082515.9921880`: the Gateway's timestamp format.
fn sap_timestamp(ms: i64) -> String {
    let d = ms_to_datetime(ms);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}.{:03}0000",
        d.year(),
        d.month() as u8,
        d.day(),
        d.hour(),
        d.minute(),
        d.second(),
        d.millisecond()
    )
}

pub fn body(code: &str, message: &str, service: &str, ms: i64) -> Value {
    let txid = format!(
        "{:016X}{:016X}",
        mix(ms as u64, 0x5A9, 1),
        mix(ms as u64, 0x5A9, 2)
    );
    let ts = sap_timestamp(ms);
    json!({"error": {
        "code": code,
        "message": {"lang": "en", "value": message},
        "innererror": {
            "application": {"component_id": "MM-PUR-PO", "service_namespace": "/SAP/", "service_id": service, "service_version": "0001"},
            "transactionid": txid,
            "timestamp": ts,
            "Error_Resolution": {
                "SAP_Transaction": "For backend administrators: use ADT feed reader \"SAP Gateway Error Log\" or run transaction /IWFND/ERROR_LOG on SAP Gateway hub system and search for entries with the timestamp above for more details",
                "SAP_Note": "See SAP Note 1797736 for error analysis (https://service.sap.com/sap/support/notes/1797736)"
            },
            "errordetails": [{"code": code, "message": message, "propertyref": "", "severity": "error", "target": ""}]
        }
    }})
}

const LOGON_PAGE: &str = "<html><head><title>Logon Error Message</title></head><body><h1>Anmeldung fehlgeschlagen</h1><p>Logon failed</p><p>Logon performed in system EMU</p><p>What has happened?</p><p>The user could not be authenticated: user name or password incorrect, or the user is locked.</p></body></html>";

impl IntoResponse for SapError {
    fn into_response(self) -> Response {
        match self {
            SapError::Gateway {
                status,
                code,
                message,
                service,
                timestamp_ms,
                retry_after,
            } => {
                let mut r =
                    (status, Json(body(&code, &message, service, timestamp_ms))).into_response();
                if let Some(s) = retry_after
                    && let Ok(v) = HeaderValue::from_str(&s.to_string())
                {
                    r.headers_mut().insert("retry-after", v);
                }
                r
            }
            SapError::Unauthorized { html, realm } => {
                let mut r = if html {
                    let mut r = (StatusCode::UNAUTHORIZED, LOGON_PAGE).into_response();
                    r.headers_mut().insert(
                        "content-type",
                        HeaderValue::from_static("text/html; charset=utf-8"),
                    );
                    r
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        Json(body("/IWFND/CM_CONSUMER/101", "Logon failed", "", 0)),
                    )
                        .into_response()
                };
                if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
                    r.headers_mut().insert("www-authenticate", v);
                }
                r.headers_mut()
                    .insert("sap-server", HeaderValue::from_static("true"));
                r
            }
            SapError::Csrf => {
                let mut r = (StatusCode::FORBIDDEN, "CSRF token validation failed").into_response();
                r.headers_mut()
                    .insert("x-csrf-token", HeaderValue::from_static("Required"));
                r.headers_mut().insert(
                    "content-type",
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                r
            }
        }
    }
}

pub struct SapErrors(pub Sap);

impl SystemErrors for SapErrors {
    fn too_many_requests(&self, _why: Throttle, retry_after_secs: Option<u64>) -> Response {
        let mut e = SapError::gateway(
            StatusCode::TOO_MANY_REQUESTS,
            "/IWFND/CM_BEC/026",
            "Too many requests; the request quota has been exceeded",
            "",
            self.0.core.clock.now_ms(),
        );
        if let SapError::Gateway { retry_after, .. } = &mut e {
            *retry_after = retry_after_secs;
        }
        e.into_response()
    }

    fn server_error(&self, status: StatusCode) -> Response {
        SapError::gateway(
            status,
            "/IWFND/CM_BEC/076",
            "Service temporarily unavailable; try again later",
            "",
            self.0.core.clock.now_ms(),
        )
        .into_response()
    }

    fn per_minute_budget(&self) -> Option<(u32, Option<u64>)> {
        let s = self.0.settings();
        s.rate_limit_per_minute.map(|n| (n, s.retry_after_secs))
    }
}
