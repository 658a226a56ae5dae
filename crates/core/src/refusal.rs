//! The refusals a caller can act on (invalid input, the source's own business rules and
//! states, a record or operation the source does not have), as the public error they are
//! answered with: shared by the HTTP edge and the results of bulk batch operations, so a
//! batch reports an operation's failure exactly as the single request would.

use ironbridge_model::ErrorCode;
use serde_json::{Value, json};

use crate::connector::ConnectorError;
use crate::service::ServiceError;

/// A refusal as the API answers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// Stable code.
    pub code: ErrorCode,
    /// Message for people (safe to show).
    pub message: String,
    /// The parameter at fault.
    pub param: Option<String>,
    /// Structured details (the source's own code).
    pub details: Option<Value>,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
            param: None,
            details: None,
        }
    }

    /// The error object of the API's error body (without the request id).
    pub fn to_json(&self) -> Value {
        let mut error = json!({
            "code": self.code.as_str(),
            "type": self.code.error_type(),
            "message": self.message,
        });
        if let Some(p) = &self.param {
            error["param"] = json!(p);
        }
        if let Some(d) = &self.details {
            error["details"] = d.clone();
        }
        error
    }
}

/// The refusal a connector error is, if the caller can act on it (`None`: a failure of the
/// source or of the connection, answered otherwise).
pub fn of_connector(e: &ConnectorError) -> Option<Refusal> {
    Some(match e {
        ConnectorError::BusinessRule {
            remote_code,
            message,
            param,
        } => Refusal {
            param: param.clone(),
            details: Some(json!({"remote_code": remote_code})),
            ..Refusal::new(ErrorCode::BusinessRuleViolation, message.clone())
        },
        ConnectorError::PartialAcceptance {
            message,
            param,
            missing,
        } => Refusal {
            param: Some(param.clone()),
            details: Some(json!({"remote_code": "PARTIAL_ACCEPTANCE", "missing_items": missing})),
            ..Refusal::new(ErrorCode::BusinessRuleViolation, message.clone())
        },
        ConnectorError::State {
            remote_code,
            message,
        } => Refusal {
            details: Some(json!({"remote_code": remote_code})),
            ..Refusal::new(ErrorCode::StateConflict, message.clone())
        },
        ConnectorError::Forbidden {
            remote_code,
            message,
        } => Refusal {
            details: Some(json!({"remote_code": remote_code, "reason": "source_permission"})),
            ..Refusal::new(
                ErrorCode::PermissionDenied,
                format!("The source system refused the write for lack of permission: {message}"),
            )
        },
        ConnectorError::NotFound => {
            Refusal::new(ErrorCode::NotFound, "No such record in the source system.")
        }
        ConnectorError::Unsupported(message) => {
            Refusal::new(ErrorCode::UnsupportedOperation, message.clone())
        }
        ConnectorError::InvalidSettings { param, message } => Refusal {
            param: Some(param.clone()),
            ..Refusal::new(ErrorCode::ValidationError, format!("`{param}` {message}"))
        },
        ConnectorError::Unauthorized
        | ConnectorError::Upstream(_)
        | ConnectorError::Throttled(_)
        | ConnectorError::OutcomeUnknown(_)
        | ConnectorError::PositionRefused(_) => return None,
    })
}

/// The refusal a use-case error is, if the caller can act on it.
pub fn of(e: &ServiceError) -> Option<Refusal> {
    match e {
        ServiceError::Connector(c) => of_connector(c),
        ServiceError::Invalid { param, message } => Some(Refusal {
            param: Some(param.clone()),
            ..Refusal::new(ErrorCode::ValidationError, message.clone())
        }),
        ServiceError::BadQuery { param, message } => Some(Refusal {
            param: Some(param.clone()),
            ..Refusal::new(ErrorCode::InvalidRequest, message.clone())
        }),
        ServiceError::Unsupported {
            entity,
            operation,
            message,
        } => Some(Refusal {
            details: Some(json!({"operation": operation.as_str(), "entity": entity.as_str()})),
            ..Refusal::new(ErrorCode::UnsupportedOperation, message.clone())
        }),
        ServiceError::UnknownSystem(u) => Some(Refusal {
            param: Some("system".into()),
            ..Refusal::new(ErrorCode::InvalidRequest, u.to_string())
        }),
        ServiceError::Store(_)
        | ServiceError::Crypto(_)
        | ServiceError::Corrupt(_)
        | ServiceError::Cursor(_) => None,
    }
}
