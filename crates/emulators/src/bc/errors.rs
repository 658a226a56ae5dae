//! Business Central error bodies (`{"error":{"code","message … CorrelationId: …"}}`) and the
//! API's throttling and server-error answers.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Bc;
use crate::common::datagen::mix;
use crate::common::gate::{SystemErrors, Throttle};

#[derive(Debug, Clone)]
pub struct BcError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub retry_after: Option<u64>,
    pub www_authenticate: bool,
}

impl BcError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            retry_after: None,
            www_authenticate: false,
        }
    }

    pub fn bad(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "Authentication_InvalidCredentials",
            "The credentials provided are incorrect",
        );
        e.www_authenticate = true;
        e
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Internal_RecordNotFound",
            format!("The {what} does not exist. Identification fields and values: Id"),
        )
    }

    pub fn segment(seg: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "BadRequest_NotFound",
            format!("Resource not found for the segment '{seg}'."),
        )
    }
}

impl IntoResponse for BcError {
    fn into_response(self) -> Response {
        // Every message ends with a correlation id, as BC writes it.
        let c = mix(self.message.len() as u64, 0xC0, self.status.as_u16() as u64);
        let corr = format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (c >> 32) as u32,
            (c >> 16) as u16,
            c as u16,
            (c >> 48) as u16,
            c & 0xFFFF_FFFF_FFFF
        );
        let mut r = (self.status, Json(json!({"error": {"code": self.code, "message": format!("{}  CorrelationId:  {corr}.", self.message)}}))).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert("retry-after", v);
        }
        if self.www_authenticate {
            r.headers_mut().insert(
                "www-authenticate",
                HeaderValue::from_static("Bearer authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", resource_id=\"https://api.businesscentral.dynamics.com\""),
            );
        }
        r
    }
}

pub struct BcErrors(pub Bc);

impl SystemErrors for BcErrors {
    fn too_many_requests(&self, why: Throttle, retry_after_secs: Option<u64>) -> Response {
        let s = self.0.settings();
        let msg = match why {
            Throttle::Concurrency => format!(
                "Too many requests reached. Actual ({}). Maximum ({}).",
                s.max_concurrent as u64 + s.queue_size as u64 + 1,
                s.max_concurrent as u64 + s.queue_size as u64
            ),
            Throttle::Budget => format!(
                "Too many requests reached. Actual ({}). Maximum ({}).",
                s.requests_per_minute as u64 + 1,
                s.requests_per_minute
            ),
            Throttle::Injected => "Too many requests reached.".to_string(),
        };
        let mut e = BcError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Application_TooManyRequests",
            msg,
        );
        // Injected 429s carry exactly what the test asked for; real limits follow the switch.
        e.retry_after = match why {
            Throttle::Injected => retry_after_secs,
            _ => s.retry_after_secs,
        };
        e.into_response()
    }

    fn server_error(&self, status: StatusCode) -> Response {
        let code = if status == StatusCode::SERVICE_UNAVAILABLE {
            "Internal_TenantUnavailable"
        } else {
            "Unknown"
        };
        BcError::new(status, code, "The service is temporarily unavailable.").into_response()
    }

    fn concurrency(&self) -> Option<(u32, u32)> {
        let s = self.0.settings();
        Some((s.max_concurrent, s.queue_size))
    }

    fn per_minute_budget(&self) -> Option<(u32, Option<u64>)> {
        let s = self.0.settings();
        Some((s.requests_per_minute, s.retry_after_secs))
    }
}
