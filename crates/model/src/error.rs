//! The error catalogue: every machine-readable code the API answers with, its HTTP status
//! and category, and the one error body shape used everywhere.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Stable machine-readable error codes. Clients branch on these, never on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is malformed: bad JSON, a bad query parameter or header.
    InvalidRequest,
    /// A pagination cursor was altered, expired, or belongs to another query or connection.
    InvalidCursor,
    /// The `Ironbridge-Version` header names a version this server does not serve.
    UnsupportedApiVersion,
    /// The body is well-formed but a field is missing, read-only or has a bad value.
    ValidationError,
    /// No credential, or one that is malformed, unknown, revoked or disconnected.
    AuthenticationFailed,
    /// The credential is valid but may not perform this operation, or the source system
    /// refused a write for lack of permission.
    PermissionDenied,
    /// No such object for this caller (also answered for another tenant's objects).
    NotFound,
    /// The route exists but not for this HTTP method.
    MethodNotAllowed,
    /// The request conflicts with the current state of the object.
    Conflict,
    /// The organization has no connection credits left.
    ConnectionCreditsExhausted,
    /// The source system's workflow state forbids the change (e.g. a closed order).
    StateConflict,
    /// The body exceeds the size limit.
    PayloadTooLarge,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// The request URI is longer than the server reads.
    UriTooLong,
    /// The request's headers are too many or too large.
    HeadersTooLarge,
    /// The source system rejected the write on a business rule (invalid vendor, out of stock, ...).
    BusinessRuleViolation,
    /// A write reached (or may have reached) the source system and no answer came back: it may
    /// or may not have been applied.
    OutcomeUnknown,
    /// The connection's system cannot perform this operation (a create or update it does not
    /// support, for one entity or altogether).
    UnsupportedOperation,
    /// Too many requests for this credential; retry after `Retry-After` seconds.
    RateLimitExceeded,
    /// An unexpected error on our side. Details are in our logs under the request id.
    InternalError,
    /// The service cannot answer right now (starting, shutting down, database unreachable).
    ServiceUnavailable,
    /// The `Idempotency-Key` was used before for another request (method, path or body).
    IdempotencyKeyReused,
    /// A request with this `Idempotency-Key` is still in flight; retry after it ends.
    IdempotencyKeyInUse,
}

impl ErrorCode {
    /// Every code, in catalogue order (used by docs and tests).
    pub const ALL: [ErrorCode; 23] = [
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidCursor,
        ErrorCode::UnsupportedApiVersion,
        ErrorCode::ValidationError,
        ErrorCode::AuthenticationFailed,
        ErrorCode::PermissionDenied,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::ConnectionCreditsExhausted,
        ErrorCode::StateConflict,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::UriTooLong,
        ErrorCode::HeadersTooLarge,
        ErrorCode::BusinessRuleViolation,
        ErrorCode::OutcomeUnknown,
        ErrorCode::UnsupportedOperation,
        ErrorCode::RateLimitExceeded,
        ErrorCode::InternalError,
        ErrorCode::ServiceUnavailable,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::IdempotencyKeyInUse,
    ];

    /// The code as it appears in the body, e.g. `AUTHENTICATION_FAILED`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::InvalidCursor => "INVALID_CURSOR",
            ErrorCode::UnsupportedApiVersion => "UNSUPPORTED_API_VERSION",
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::AuthenticationFailed => "AUTHENTICATION_FAILED",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::ConnectionCreditsExhausted => "CONNECTION_CREDITS_EXHAUSTED",
            ErrorCode::StateConflict => "STATE_CONFLICT",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::UriTooLong => "URI_TOO_LONG",
            ErrorCode::HeadersTooLarge => "REQUEST_HEADERS_TOO_LARGE",
            ErrorCode::BusinessRuleViolation => "BUSINESS_RULE_VIOLATION",
            ErrorCode::OutcomeUnknown => "OUTCOME_UNKNOWN",
            ErrorCode::UnsupportedOperation => "UNSUPPORTED_OPERATION",
            ErrorCode::RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ErrorCode::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ErrorCode::IdempotencyKeyInUse => "IDEMPOTENCY_KEY_IN_USE",
        }
    }

    /// The HTTP status answered with this code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest | ErrorCode::InvalidCursor => 400,
            ErrorCode::UnsupportedApiVersion => 400,
            ErrorCode::AuthenticationFailed => 401,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict | ErrorCode::ConnectionCreditsExhausted => 409,
            ErrorCode::StateConflict | ErrorCode::IdempotencyKeyInUse => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::UriTooLong => 414,
            ErrorCode::HeadersTooLarge => 431,
            ErrorCode::ValidationError
            | ErrorCode::BusinessRuleViolation
            | ErrorCode::IdempotencyKeyReused
            | ErrorCode::UnsupportedOperation => 422,
            ErrorCode::RateLimitExceeded => 429,
            ErrorCode::InternalError => 500,
            ErrorCode::ServiceUnavailable => 503,
            ErrorCode::OutcomeUnknown => 504,
        }
    }

    /// The category, for clients that group errors.
    pub fn error_type(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest
            | ErrorCode::InvalidCursor
            | ErrorCode::UnsupportedApiVersion
            | ErrorCode::ValidationError
            | ErrorCode::UnsupportedOperation
            | ErrorCode::MethodNotAllowed
            | ErrorCode::PayloadTooLarge
            | ErrorCode::UnsupportedMediaType
            | ErrorCode::UriTooLong
            | ErrorCode::HeadersTooLarge
            | ErrorCode::IdempotencyKeyReused => "invalid_request_error",
            ErrorCode::AuthenticationFailed => "authentication_error",
            ErrorCode::PermissionDenied => "permission_error",
            ErrorCode::NotFound => "not_found_error",
            ErrorCode::Conflict
            | ErrorCode::ConnectionCreditsExhausted
            | ErrorCode::StateConflict
            | ErrorCode::IdempotencyKeyInUse => "conflict_error",
            ErrorCode::BusinessRuleViolation | ErrorCode::OutcomeUnknown => "source_system_error",
            ErrorCode::RateLimitExceeded => "rate_limit_error",
            ErrorCode::InternalError | ErrorCode::ServiceUnavailable => "api_error",
        }
    }

    /// One line on what the code means, for `docs/errors.md` and the OpenAPI document.
    pub fn meaning(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => {
                "The request is malformed: invalid JSON, a wrong type, an unknown field or query parameter, or a bad header. `param` names the culprit."
            }
            ErrorCode::InvalidCursor => {
                "The `cursor` was altered, or was issued for another connection, entity or set of filters."
            }
            ErrorCode::UnsupportedApiVersion => {
                "The `Ironbridge-Version` request header names a version this server does not serve."
            }
            ErrorCode::ValidationError => {
                "The body is well-formed but a field is missing, read-only, or out of range. `param` names the field."
            }
            ErrorCode::AuthenticationFailed => {
                "The credential is missing, malformed, unknown, revoked, or belongs to a disconnected connection."
            }
            ErrorCode::PermissionDenied => {
                "The credential is valid but may not call this endpoint (e.g. a connection token on a management endpoint, or an MCP write tool called with a credential whose `mcp_access` is `read`), or the source system's role or user lacks the permission for a write (`details.remote_code` carries its code)."
            }
            ErrorCode::NotFound => {
                "No such object or route for this caller. Another tenant's objects are reported the same way."
            }
            ErrorCode::MethodNotAllowed => "The route exists but not with this HTTP method.",
            ErrorCode::Conflict => {
                "The request conflicts with the object's current state (e.g. disconnecting twice)."
            }
            ErrorCode::ConnectionCreditsExhausted => {
                "The organization's connection credits are all in use; disconnect a connection or raise the pool."
            }
            ErrorCode::StateConflict => {
                "The source system's workflow state forbids the change (e.g. editing a completed or cancelled order)."
            }
            ErrorCode::PayloadTooLarge => "The request body exceeds the configured limit.",
            ErrorCode::UnsupportedMediaType => "The request body must be `application/json`.",
            ErrorCode::UriTooLong => {
                "The request URI (path and query) is longer than 65,534 bytes. Send fewer or shorter query parameters."
            }
            ErrorCode::HeadersTooLarge => {
                "The request has more than 100 headers, or its head (request line and headers) exceeds 400 KB."
            }
            ErrorCode::BusinessRuleViolation => {
                "The source system rejected the write on a business rule (inactive vendor, out-of-stock item, ...). `details` carries its code."
            }
            ErrorCode::OutcomeUnknown => {
                "A write was sent to the source system and no answer came back (a timeout, a dropped connection, a gateway error): it may or may not have been applied. `details.reason` is `outcome_unknown`. Read the record back, or retry with the same `Idempotency-Key`: Ironbridge then looks the record up at the source by its reference before writing anything again."
            }
            ErrorCode::UnsupportedOperation => {
                "The connection's system cannot do this operation (`details.operation`, e.g. `create`, on `details.entity`); `GET /v1/meta/{entity}` and `GET /v1/systems` say what each connection supports."
            }
            ErrorCode::RateLimitExceeded => {
                "Too many requests for this credential. Wait `Retry-After` seconds."
            }
            ErrorCode::InternalError => {
                "An unexpected error on our side. Nothing internal is shown; quote the `request_id` to support."
            }
            ErrorCode::ServiceUnavailable => {
                "The service cannot answer now (shutting down, or its database is unreachable). Retry later."
            }
            ErrorCode::IdempotencyKeyReused => {
                "The `Idempotency-Key` was first used for another request (another method, path or body). Use a new key for a new request."
            }
            ErrorCode::IdempotencyKeyInUse => {
                "A request with this `Idempotency-Key` is still being processed. Retry after `Retry-After` seconds to get its answer."
            }
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    /// What went wrong.
    pub error: ErrorObject,
}

/// One error, with a stable code for programs and a message for people.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorObject {
    /// Stable machine-readable code, e.g. `AUTHENTICATION_FAILED`. See `docs/errors.md`.
    #[schema(example = "VALIDATION_ERROR")]
    pub code: String,
    /// Category of the error, e.g. `invalid_request_error`.
    #[serde(rename = "type")]
    #[schema(example = "invalid_request_error")]
    pub error_type: String,
    /// Human-readable explanation. Do not parse it; it may change.
    pub message: String,
    /// Unique id of this request, also sent as the `X-Request-Id` header. Quote it to support.
    #[schema(example = "req_01jdqk4v5m8x2c9h7n3b6t0wyz")]
    pub request_id: String,
    /// The parameter, field or header at fault, when there is one (e.g. `line_items[0].quantity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// Extra structured details (e.g. the source system's own error code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}
