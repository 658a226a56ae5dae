//! Creates that happen at most once when answers get lost: a create carries a reference the
//! source stores with the record; when an earlier attempt's outcome is unknown (a batch killed
//! after sending, a request retried with the same idempotency key after a timeout), or this
//! attempt's is, the record is looked up by that reference before anything is written again.
//!
//! A lost answer is never answered by a blind second write. Within one call, a create whose
//! own outcome is unknown is read back once: found, it is the answer; not found, the outcome
//! stays unknown (the source may still be processing the request), and only a later call,
//! told that an earlier attempt's outcome is unknown, writes after finding nothing.

use ironbridge_model::Entity;
use serde_json::Value;

use crate::connector::{ConnectorError, UnifiedWrite, check_reference};
use crate::runtime::ConnectionRuntime;
use crate::service::ServiceError;

/// How a reconciled create ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// This call wrote the record (the source answered the create).
    Written,
    /// The source already had a record with the reference (from an earlier attempt, or from
    /// this one whose answer was lost): it was read back, nothing was written again.
    Found,
}

/// A create's result: the raw record as the source has it, and how it was obtained.
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    /// The record in the source's own shape, as [`ConnectionRuntime::create`] answers it.
    pub raw: Value,
    /// Whether this call wrote it or found it.
    pub outcome: Outcome,
}

/// Creates `write` of `entity` at most once, through the connection's runtime (its limits,
/// write slots and breaker).
///
/// * `unknown_before`: an earlier attempt of the same create was sent and its outcome never
///   recorded. The record is looked up by `write.reference` first; found, that is the answer.
///   Without a reference nothing is written (it cannot be reconciled).
/// * When this attempt's outcome is unknown ([`ConnectorError::OutcomeUnknown`]) and there is
///   a reference, the record is looked up once: found, it is the answer; not found (or the
///   look-up failed), the error stays `OutcomeUnknown` for the caller to reconcile later.
/// * When the source refuses the create because a record with the reference exists (the
///   error's `param` is `reference`), that record is the answer.
///
/// A reference that is not 1 to 12 ASCII letters and digits is refused before anything is
/// sent (`param` `reference`).
pub async fn create_once(
    runtime: &ConnectionRuntime,
    entity: Entity,
    write: &UnifiedWrite,
    unknown_before: bool,
) -> Result<Created, ServiceError> {
    let reference = write.reference.as_deref();
    if let Some(r) = reference {
        check_reference(r)?;
    }
    if unknown_before {
        let Some(r) = reference else {
            return Err(ConnectorError::OutcomeUnknown(
                "an earlier attempt's outcome is unknown and the write has no reference to look it up by; not written again".into(),
            )
            .into());
        };
        match runtime.find_written(entity, r).await {
            Ok(Some(raw)) => {
                return Ok(Created {
                    raw,
                    outcome: Outcome::Found,
                });
            }
            Ok(None) => {}
            Err(ServiceError::Connector(ConnectorError::Unsupported(why))) => {
                return Err(ConnectorError::OutcomeUnknown(format!(
                    "an earlier attempt's outcome is unknown and {why}; not written again"
                ))
                .into());
            }
            Err(e) => return Err(e),
        }
    }
    let cause = match runtime.create(entity, write).await {
        Ok(raw) => {
            return Ok(Created {
                raw,
                outcome: Outcome::Written,
            });
        }
        Err(ServiceError::Connector(ConnectorError::OutcomeUnknown(cause))) => cause,
        Err(ServiceError::Connector(ConnectorError::BusinessRule {
            remote_code,
            message,
            param: Some(param),
        })) if param == "reference" && reference.is_some() => {
            let r = reference.unwrap_or_default();
            // The source keeps references unique and already has this one: an earlier
            // attempt wrote it.
            return match runtime.find_written(entity, r).await? {
                Some(raw) => Ok(Created {
                    raw,
                    outcome: Outcome::Found,
                }),
                None => Err(ConnectorError::BusinessRule {
                    remote_code,
                    message,
                    param: Some(param),
                }
                .into()),
            };
        }
        Err(e) => return Err(e),
    };
    let Some(r) = reference else {
        return Err(ConnectorError::OutcomeUnknown(cause).into());
    };
    tracing::warn!(
        entity = %entity,
        reference = r,
        cause = %cause,
        "a create's outcome is unknown; looking it up by its reference"
    );
    match runtime.find_written(entity, r).await {
        Ok(Some(raw)) => Ok(Created {
            raw,
            outcome: Outcome::Found,
        }),
        Ok(None) => Err(ConnectorError::OutcomeUnknown(format!(
            "{cause}; no record with reference {r} yet (the source may still be processing it)"
        ))
        .into()),
        Err(e) => Err(ConnectorError::OutcomeUnknown(format!(
            "{cause}; looking it up by reference {r} failed: {e}"
        ))
        .into()),
    }
}
