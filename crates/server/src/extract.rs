//! Request parsing with precise errors: JSON bodies and query strings name the offending
//! parameter, read-only fields are refused by name, and size and media type are checked.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use ironbridge_model::ErrorCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::AppState;
use crate::error::ApiError;

/// Fields of a request body that clients may not set.
pub trait BodyRules {
    /// Top-level read-only fields.
    fn read_only() -> &'static [&'static str] {
        &[]
    }
    /// Fields set at creation that an update may not change.
    fn immutable() -> &'static [&'static str] {
        &[]
    }
    /// Read-only fields of nested lists: (list field, its read-only fields).
    fn nested_read_only() -> &'static [(&'static str, &'static [&'static str])] {
        &[]
    }
}

/// A JSON body of type `T`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn serde_error(path: &serde_path_to_error::Path, inner: &str) -> ApiError {
    let path = path.to_string();
    // A missing field is reported at its parent's path, an unknown one at its own.
    let param_for = |field: &str| {
        if path == "." {
            field.to_string()
        } else if path == field || path.ends_with(&format!(".{field}")) {
            path.clone()
        } else {
            format!("{path}.{field}")
        }
    };
    let field_in = |marker: &str| {
        inner
            .strip_prefix(marker)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string)
    };
    if let Some(field) = field_in("missing field `") {
        let param = param_for(&field);
        return ApiError::new(
            ErrorCode::ValidationError,
            format!("`{param}` is required."),
        )
        .param(param);
    }
    if let Some(field) = field_in("unknown field `") {
        let param = param_for(&field);
        return ApiError::new(
            ErrorCode::InvalidRequest,
            format!("`{param}` is not a known field."),
        )
        .param(param);
    }
    if path == "." {
        return ApiError::new(
            ErrorCode::InvalidRequest,
            format!("Invalid request: {inner}."),
        );
    }
    ApiError::new(
        ErrorCode::InvalidRequest,
        format!("`{path}` has the wrong type or value: {inner}."),
    )
    .param(path)
}

fn check_read_only<T: BodyRules>(value: &Value) -> Result<(), ApiError> {
    let read_only = |name: &str| {
        ApiError::new(
            ErrorCode::ValidationError,
            format!("`{name}` is read-only: the source system sets it."),
        )
        .param(name)
    };
    if let Value::Object(map) = value {
        if let Some(field) = T::read_only().iter().find(|f| map.contains_key(**f)) {
            return Err(read_only(field));
        }
        if let Some(field) = T::immutable().iter().find(|f| map.contains_key(**f)) {
            return Err(ApiError::new(
                ErrorCode::ValidationError,
                format!("`{field}` cannot be changed after creation."),
            )
            .param(*field));
        }
        for (list, fields) in T::nested_read_only() {
            if let Some(Value::Array(items)) = map.get(*list) {
                for (i, item) in items.iter().enumerate() {
                    if let Some(field) = fields.iter().find(|f| item.get(**f).is_some()) {
                        return Err(read_only(&format!("{list}[{i}].{field}")));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The largest body a request to `path` may send: bulk batches carry up to 10,000
/// operations, every other body is small.
pub fn body_limit(config: &crate::ServerConfig, path: &str) -> usize {
    if path == "/v1/batches" {
        config.max_batch_body_bytes
    } else {
        config.max_body_bytes
    }
}

/// Reads a JSON object body: size, media type, JSON, read-only fields, then the typed
/// decoding of `T` (its errors naming the field). Returns the object as sent and `T`.
async fn read_body<T: DeserializeOwned + BodyRules>(
    req: Request,
    state: &AppState,
) -> Result<(serde_json::Map<String, Value>, T), ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let limit = body_limit(&state.config, req.uri().path());
    let bytes = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("The request body exceeds the limit of {limit} bytes."),
            )
        })?;
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) && content_type.is_none() {
        // An empty body counts as `{}`, so optional bodies need no content type.
        bytes::Bytes::from_static(b"{}")
    } else {
        match content_type.as_deref() {
            Some(ct) if is_json(ct) => bytes,
            _ => {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "Send the body as JSON with `Content-Type: application/json`.",
                )
                .param("Content-Type"));
            }
        }
    };
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!(
                "The body is not valid JSON (line {}, column {}).",
                e.line(),
                e.column()
            ),
        )
    })?;
    let Value::Object(map) = value else {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "The body must be a JSON object.",
        ));
    };
    let value = Value::Object(map);
    check_read_only::<T>(&value)?;
    let typed = serde_path_to_error::deserialize(&value)
        .map_err(|e| serde_error(e.path(), &e.inner().to_string()))?;
    match value {
        Value::Object(map) => Ok((map, typed)),
        _ => Err(ApiError::internal("a JSON object body changed kind")),
    }
}

impl<T: DeserializeOwned + BodyRules> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        read_body::<T>(req, state)
            .await
            .map(|(_, typed)| ApiJson(typed))
    }
}

/// A JSON object body checked exactly as [`ApiJson<T>`] checks it (so errors are the same),
/// kept as the fields sent: writes pass them to `core::write::apply`, which validates them
/// against the connection's description. `T` documents the body.
#[derive(Debug)]
pub struct ApiFields<T>(
    pub serde_json::Map<String, Value>,
    pub std::marker::PhantomData<T>,
);

impl<T: DeserializeOwned + BodyRules> FromRequest<AppState> for ApiFields<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (map, _typed) = read_body::<T>(req, state).await?;
        Ok(ApiFields(map, std::marker::PhantomData))
    }
}

/// A query string of type `T` (which should deny unknown fields).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let mut err = serde_error(e.path(), &e.inner().to_string());
                // In a query string every problem is the client's request, even a missing value.
                err.code = ErrorCode::InvalidRequest;
                err
            })
    }
}

/// A path parameter of type `T`, refused in the error envelope (`INVALID_REQUEST`, naming the
/// parameter) when it cannot be read, e.g. an id whose percent-decoding is not UTF-8.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => {
                use axum::extract::path::ErrorKind;
                use axum::extract::rejection::PathRejection;
                let PathRejection::FailedToDeserializePathParams(e) = &rejection else {
                    // Only a routing bug gets here: the route has no such parameter.
                    return Err(ApiError::internal(rejection.body_text()));
                };
                let param = match e.kind() {
                    ErrorKind::InvalidUtf8InPathParam { key }
                    | ErrorKind::ParseErrorAtKey { key, .. }
                    | ErrorKind::DeserializeError { key, .. } => Some(key.clone()),
                    _ => None,
                };
                let message = match &param {
                    Some(p) => format!("The path parameter `{p}` is not valid UTF-8 text."),
                    None => "The request path cannot be read.".to_string(),
                };
                let mut err = ApiError::new(ErrorCode::InvalidRequest, message);
                err.param = param;
                Err(err)
            }
        }
    }
}

/// Refuses a query parameter the operation does not declare in the OpenAPI document, with
/// `INVALID_REQUEST` naming it: a typo (`page_sise`) would otherwise be ignored silently.
/// Operations that read a query also refuse unknown names themselves ([`ApiQuery`]); this
/// covers the ones that read none, from the same source the clients are generated from.
pub async fn refuse_unknown_query(
    matched: Option<axum::extract::MatchedPath>,
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let (Some(matched), Some(query)) = (matched, req.uri().query()) {
        let known = crate::openapi::query_parameters(req.method(), matched.as_str());
        for (name, _) in form_urlencoded::parse(query.as_bytes()) {
            if !known.iter().any(|k| *k == name) {
                let message = if known.is_empty() {
                    format!("`{name}` is not a known query parameter: this operation takes none.")
                } else {
                    format!(
                        "`{name}` is not a known query parameter. This operation takes: {}.",
                        known.join(", ")
                    )
                };
                return ApiError::new(ErrorCode::InvalidRequest, message)
                    .param(name.into_owned())
                    .into_response();
            }
        }
    }
    next.run(req).await
}
