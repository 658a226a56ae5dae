//! The one error type at the HTTP edge. Every failure becomes `{"error": {code, type, message,
//! request_id, param?, details?}}`; internal causes go to the log, never into the body.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ironbridge_core::connector::ConnectorError;
use ironbridge_core::cursor::CursorError;
use ironbridge_core::refusal::{self, Refusal};
use ironbridge_core::service::ServiceError;
use ironbridge_core::store::StoreError;
use ironbridge_model::ErrorCode;
use ironbridge_model::error::{ErrorObject, ErrorResponse};
use serde_json::{Value, json};

use crate::context;

/// An error answered to the client (boxed: results stay small on the happy path).
#[derive(Debug)]
pub struct ApiError(Box<ApiErrorInner>);

/// The parts of an [`ApiError`].
#[derive(Debug)]
pub struct ApiErrorInner {
    /// Stable code.
    pub code: ErrorCode,
    /// Message for people; never contains internals.
    pub message: String,
    /// The parameter at fault.
    pub param: Option<String>,
    /// Structured details.
    pub details: Option<Value>,
    /// Extra response headers (`Retry-After`, `WWW-Authenticate`, ...).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The cause, for the log only.
    pub internal: Option<String>,
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl std::ops::Deref for ApiError {
    type Target = ApiErrorInner;
    fn deref(&self) -> &ApiErrorInner {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut ApiErrorInner {
        &mut self.0
    }
}

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError(Box::new(ApiErrorInner {
            code,
            message: message.into(),
            param: None,
            details: None,
            headers: Vec::new(),
            internal: None,
        }))
    }

    /// Names the parameter at fault.
    pub fn param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Adds structured details.
    pub fn details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// An unexpected failure: a generic message for the client, the cause for the log.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let mut e = ApiError::new(
            ErrorCode::InternalError,
            "An unexpected error occurred. Quote the request_id to support.",
        );
        e.internal = Some(cause.to_string());
        e
    }

    /// The database or another dependency cannot be reached.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        let mut e = ApiError::new(
            ErrorCode::ServiceUnavailable,
            "The service is temporarily unavailable. Retry shortly.",
        );
        e.internal = Some(cause.to_string());
        e.headers.push((
            axum::http::header::RETRY_AFTER,
            HeaderValue::from_static("5"),
        ));
        e
    }

    /// A resource that does not exist for this caller.
    pub fn not_found(what: &str) -> Self {
        ApiError::new(ErrorCode::NotFound, format!("No such {what}."))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found("object"),
            // Only Ironbridge's own text: a state refusal, or which unique key is taken.
            StoreError::Conflict(conflict) => {
                ApiError::new(ErrorCode::Conflict, conflict.to_string())
            }
            StoreError::CreditsExhausted => ApiError::new(
                ErrorCode::ConnectionCreditsExhausted,
                "All connection credits are in use. Disconnect a connection or raise the organization's pool.",
            ),
            e @ StoreError::Unavailable(_) => ApiError::unavailable(e.chain()),
            // Only a job's fenced view refuses this way; a request never holds a job.
            e @ (StoreError::Internal(_) | StoreError::Fenced) => ApiError::internal(e.chain()),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let mut err = ApiError::new(r.code, r.message);
        err.param = r.param;
        err.details = r.details;
        err
    }
}

impl From<ConnectorError> for ApiError {
    fn from(e: ConnectorError) -> Self {
        if let Some(r) = refusal::of_connector(&e) {
            return r.into();
        }
        match e {
            ConnectorError::Unauthorized => ApiError::new(
                ErrorCode::AuthenticationFailed,
                "The source system refused this connection's credentials; the connection requires reauthorization.",
            )
            .details(json!({"reason": "reauthorization_required"})),
            ConnectorError::Throttled(cause) => {
                let mut err = ApiError::new(ErrorCode::ServiceUnavailable, "The source system is limiting the rate of requests. Retry later.")
                    .details(json!({"reason": "source_rate_limited"}));
                err.internal = Some(cause);
                err
            }
            ConnectorError::OutcomeUnknown(cause) => {
                let mut err = ApiError::new(
                    ErrorCode::OutcomeUnknown,
                    "The source system did not answer this write, so it may or may not have applied it. Do not send it again without the same Idempotency-Key: read the record back, or retry with the same key, and Ironbridge looks the record up at the source before writing anything again.",
                )
                .details(json!({"reason": "outcome_unknown"}));
                err.internal = Some(cause);
                err
            }
            // `Upstream`, and any refusal (answered above).
            other => {
                let mut err = ApiError::new(ErrorCode::ServiceUnavailable, "The source system could not be reached. Retry later.");
                err.internal = Some(other.to_string());
                err
            }
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Store(e) => e.into(),
            ServiceError::Connector(e) => e.into(),
            ServiceError::Crypto(e) => ApiError::internal(e),
            ServiceError::Corrupt(cause) => ApiError::internal(cause),
            ServiceError::Cursor(e) => e.into(),
            refused @ (ServiceError::Invalid { .. }
            | ServiceError::BadQuery { .. }
            | ServiceError::Unsupported { .. }
            | ServiceError::UnknownSystem(_)) => match refusal::of(&refused) {
                Some(r) => r.into(),
                None => ApiError::internal(refused),
            },
        }
    }
}

impl From<CursorError> for ApiError {
    fn from(e: CursorError) -> Self {
        ApiError::new(ErrorCode::InvalidCursor, e.to_string()).param("cursor")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let this = *self.0;
        let request_id = context::current_request_id();
        let status =
            StatusCode::from_u16(this.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(request_id = %request_id, code = %this.code, cause = this.internal.as_deref().unwrap_or(""), "request failed");
        } else {
            tracing::debug!(request_id = %request_id, code = %this.code, "request refused");
        }
        let body = ErrorResponse {
            error: ErrorObject {
                code: this.code.as_str().to_string(),
                error_type: this.code.error_type().to_string(),
                message: this.message,
                request_id,
                param: this.param,
                details: this.details,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        for (name, value) in this.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}
