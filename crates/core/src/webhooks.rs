//! Webhook rules that do not depend on I/O: Standard Webhooks secrets, signatures and their
//! verification, the payload an event is delivered as, endpoint filters, and the retry
//! schedule. The dispatcher (engine) and the API (server) both build on these.

use std::time::Duration;

use aws_lc_rs::{constant_time, hmac};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ironbridge_model::Timestamp;
use serde_json::{Map, Value};

use crate::crypto::random_bytes;
use crate::store::Event;

/// Prefix of a symmetric signing secret (Standard Webhooks).
pub const SECRET_PREFIX: &str = "whsec_";

/// Fewest and most key bytes a secret may carry (Standard Webhooks: 24 to 64).
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// How far a `webhook-timestamp` may be from the receiver's clock, either way.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// A signing secret: the key bytes behind `whsec_…`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

// Hand-written so a secret can never reach a log through `{:?}`.
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

/// Why a `whsec_…` string is not a usable secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Wrong prefix or not base64.
    #[error("a secret is `whsec_` followed by base64")]
    Format,
    /// Too short or too long.
    #[error("a secret must carry 24 to 64 bytes")]
    Length,
}

impl Secret {
    /// A fresh random secret of 32 bytes.
    pub fn generate() -> Self {
        Secret(random_bytes::<32>().to_vec())
    }

    /// Parses `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let body = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::Format)?;
        let bytes = STANDARD.decode(body).map_err(|_| SecretError::Format)?;
        if !SECRET_BYTES.contains(&bytes.len()) {
            return Err(SecretError::Length);
        }
        Ok(Secret(bytes))
    }

    /// The secret as shown to users: `whsec_<base64>`.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// The raw key bytes (for encryption at rest).
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Rebuilds a secret from stored key bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SecretError> {
        if !SECRET_BYTES.contains(&bytes.len()) {
            return Err(SecretError::Length);
        }
        Ok(Secret(bytes))
    }

    /// The `v1,<base64>` signature of one message: HMAC-SHA256 over
    /// `{msg_id}.{timestamp}.{body}`, the body as the exact bytes sent.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.tag(msg_id, timestamp, body)))
    }

    fn tag(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(msg_id.as_bytes());
        ctx.update(b".");
        ctx.update(timestamp.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body);
        ctx.sign().as_ref().to_vec()
    }
}

/// The `webhook-signature` header of a message: one `v1` signature per secret, separated by
/// spaces (during a rotation both the new and the old secret sign).
pub fn signature_header(secrets: &[&Secret], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| s.sign(msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a received webhook does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A header is missing or malformed.
    #[error("missing or malformed webhook headers")]
    Headers,
    /// The timestamp is more than the tolerance in the past.
    #[error("timestamp too old")]
    TooOld,
    /// The timestamp is more than the tolerance in the future.
    #[error("timestamp in the future")]
    Future,
    /// No signature matches.
    #[error("no matching signature")]
    Signature,
}

/// Verifies a received webhook the way the Standard Webhooks libraries do: the timestamp
/// within [`TOLERANCE_SECS`] of `now_secs`, and any `v1` signature of the header matching
/// (compared in constant time). Used by the demo receiver and the tests.
pub fn verify(
    secret: &Secret,
    msg_id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now_secs: i64,
) -> Result<(), VerifyError> {
    if msg_id.is_empty() {
        return Err(VerifyError::Headers);
    }
    let ts: i64 = timestamp.parse().map_err(|_| VerifyError::Headers)?;
    if ts < now_secs - TOLERANCE_SECS {
        return Err(VerifyError::TooOld);
    }
    if ts > now_secs + TOLERANCE_SECS {
        return Err(VerifyError::Future);
    }
    let expected = secret.tag(msg_id, ts, body);
    let matched = signatures.split(' ').any(|entry| {
        let Some(("v1", sig)) = entry.split_once(',') else {
            return false;
        };
        STANDARD
            .decode(sig)
            .is_ok_and(|sig| constant_time::verify_slices_are_equal(&sig, &expected).is_ok())
    });
    if matched {
        Ok(())
    } else {
        Err(VerifyError::Signature)
    }
}

/// The JSON body an event is delivered as: `{id, type, timestamp, connection_id, data}`.
/// Rendered once when the delivery is created and sent byte for byte on every attempt.
pub fn event_payload(event: &Event) -> String {
    let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Object(Map::new()));
    payload(
        &event.id,
        &event.event_type,
        event.created_at,
        event.connection_id.as_deref(),
        data,
    )
}

/// A payload from its parts (events and test pings).
pub fn payload(
    id: &str,
    event_type: &str,
    at: Timestamp,
    connection_id: Option<&str>,
    data: Value,
) -> String {
    let mut out = Map::new();
    out.insert("id".into(), Value::String(id.into()));
    out.insert("type".into(), Value::String(event_type.into()));
    out.insert("timestamp".into(), Value::String(at.to_rfc3339()));
    out.insert(
        "connection_id".into(),
        connection_id.map_or(Value::Null, |c| Value::String(c.into())),
    );
    out.insert("data".into(), data);
    Value::Object(out).to_string()
}

/// Whether an endpoint with these filters (JSON arrays as stored, `None` for "all") receives
/// an event. An endpoint limited to connections receives only events of those connections.
pub fn endpoint_accepts(
    event_types: Option<&[String]>,
    connection_ids: Option<&[String]>,
    event_type: &str,
    connection_id: Option<&str>,
) -> bool {
    // Record events (the change feed's) only where asked for by name.
    let type_ok = match event_types {
        None => !ironbridge_model::webhooks::is_record_event_type(event_type),
        Some(types) => types.iter().any(|t| t == event_type),
    };
    let conn_ok = match connection_ids {
        None => true,
        Some(ids) => connection_id.is_some_and(|c| ids.iter().any(|i| i == c)),
    };
    type_ok && conn_ok
}

/// Delays after a failed attempt before the next one, as Svix schedules them: 5 s, 5 min,
/// 30 min, 2 h, 5 h, 10 h, 10 h (eight attempts over about 27 hours in all).
pub const DEFAULT_RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// Longest `Retry-After` honoured; a longer one waits this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// When the attempt after failed attempt number `step` (0 for the first) is due, or `None`
/// when the schedule is used up. `jitter` in [-1, 1] spreads retries by up to ±10 % so a
/// recovered receiver is not hit by every delayed message at once; a `Retry-After` from the
/// receiver (429/503) is honoured when it asks for longer.
pub fn next_attempt(
    schedule: &[Duration],
    step: usize,
    now: Timestamp,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Option<Timestamp> {
    let base = schedule.get(step)?;
    let factor = 1.0 + 0.1 * jitter.clamp(-1.0, 1.0);
    let mut delay = (base.as_micros() as f64 * factor) as i64;
    if let Some(after) = retry_after {
        let after = i64::try_from(after.min(MAX_RETRY_AFTER).as_micros()).unwrap_or(i64::MAX);
        delay = delay.max(after);
    }
    Some(Timestamp(now.micros().saturating_add(delay)))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The published test vector of the Standard Webhooks specification
    // (standard-webhooks/standard-webhooks, libraries/rust/src/lib.rs).
    const VECTOR_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const VECTOR_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const VECTOR_TS: i64 = 1_649_367_553;
    const VECTOR_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const VECTOR_SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn vector_secret() -> Secret {
        Secret::parse(VECTOR_SECRET).unwrap()
    }

    #[test]
    fn reproduces_the_specification_test_vector() {
        assert_eq!(
            vector_secret().sign(VECTOR_ID, VECTOR_TS, VECTOR_BODY),
            VECTOR_SIG
        );
        assert_eq!(
            verify(
                &vector_secret(),
                VECTOR_ID,
                "1649367553",
                VECTOR_SIG,
                VECTOR_BODY,
                VECTOR_TS
            ),
            Ok(())
        );
    }

    #[test]
    fn tampered_body_id_or_timestamp_fail() {
        let s = vector_secret();
        let body2 = br#"{"email":"test@example.com","username":"test_user2"}"#;
        let check =
            |id: &str, ts: &str, body: &[u8]| verify(&s, id, ts, VECTOR_SIG, body, VECTOR_TS);
        assert_eq!(
            check(VECTOR_ID, "1649367553", body2),
            Err(VerifyError::Signature)
        );
        assert_eq!(
            check("msg_27UH4WbU6Z5A5EzD8u03UvzRbpl", "1649367553", VECTOR_BODY),
            Err(VerifyError::Signature)
        );
        assert_eq!(
            check(VECTOR_ID, "1649367554", VECTOR_BODY),
            Err(VerifyError::Signature)
        );
        assert_eq!(
            check(VECTOR_ID, "soon", VECTOR_BODY),
            Err(VerifyError::Headers)
        );
        assert_eq!(
            check("", "1649367553", VECTOR_BODY),
            Err(VerifyError::Headers)
        );
        let other = Secret::generate();
        assert_eq!(
            verify(
                &other,
                VECTOR_ID,
                "1649367553",
                VECTOR_SIG,
                VECTOR_BODY,
                VECTOR_TS
            ),
            Err(VerifyError::Signature)
        );
    }

    #[test]
    fn timestamps_outside_the_tolerance_fail() {
        let s = vector_secret();
        for (now, expected) in [
            (VECTOR_TS + 301, Err(VerifyError::TooOld)),
            (VECTOR_TS - 301, Err(VerifyError::Future)),
            (VECTOR_TS + 299, Ok(())),
            (VECTOR_TS - 299, Ok(())),
        ] {
            assert_eq!(
                verify(&s, VECTOR_ID, "1649367553", VECTOR_SIG, VECTOR_BODY, now),
                expected,
                "now = ts {:+}",
                now - VECTOR_TS
            );
        }
    }

    #[test]
    fn a_header_with_an_old_and_a_new_signature_verifies_with_either_secret() {
        let old = vector_secret();
        let new = Secret::generate();
        let header = signature_header(&[&new, &old], VECTOR_ID, VECTOR_TS, VECTOR_BODY);
        assert_eq!(header.split(' ').count(), 2);
        assert!(header.ends_with(VECTOR_SIG));
        for s in [&old, &new] {
            assert_eq!(
                verify(s, VECTOR_ID, "1649367553", &header, VECTOR_BODY, VECTOR_TS),
                Ok(())
            );
        }
        assert_eq!(
            verify(
                &Secret::generate(),
                VECTOR_ID,
                "1649367553",
                &header,
                VECTOR_BODY,
                VECTOR_TS
            ),
            Err(VerifyError::Signature)
        );
        // Unknown versions are skipped, not errors.
        let mixed = format!("v1a,AAAA {header}");
        assert_eq!(
            verify(
                &new,
                VECTOR_ID,
                "1649367553",
                &mixed,
                VECTOR_BODY,
                VECTOR_TS
            ),
            Ok(())
        );
    }

    #[test]
    fn secrets_are_whsec_base64_of_24_to_64_bytes() {
        let s = Secret::generate();
        let shown = s.expose();
        assert!(shown.starts_with("whsec_"));
        assert!(shown[6..].len() >= 32);
        assert!(
            shown[6..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        );
        assert_eq!(Secret::parse(&shown).unwrap(), s);
        assert_ne!(Secret::generate(), s);
        assert_eq!(Secret::parse("whsec_!!!"), Err(SecretError::Format));
        assert_eq!(Secret::parse("sk_abc"), Err(SecretError::Format));
        assert_eq!(Secret::parse("whsec_AAAA"), Err(SecretError::Length));
        let long = format!("whsec_{}", STANDARD.encode([7u8; 65]));
        assert_eq!(Secret::parse(&long), Err(SecretError::Length));
        assert!(!format!("{s:?}").contains(&shown[6..]));
    }

    #[test]
    fn filters_match_types_and_connections() {
        let types = vec!["sync.completed".to_string()];
        let conns = vec!["conn_a".to_string()];
        assert!(endpoint_accepts(None, None, "sync.failed", None));
        assert!(endpoint_accepts(
            Some(&types),
            None,
            "sync.completed",
            Some("conn_b")
        ));
        assert!(!endpoint_accepts(
            Some(&types),
            None,
            "sync.failed",
            Some("conn_a")
        ));
        assert!(endpoint_accepts(
            None,
            Some(&conns),
            "sync.failed",
            Some("conn_a")
        ));
        assert!(!endpoint_accepts(
            None,
            Some(&conns),
            "sync.failed",
            Some("conn_b")
        ));
        assert!(!endpoint_accepts(
            None,
            Some(&conns),
            "webhook_endpoint.disabled",
            None
        ));
    }

    #[test]
    fn retries_follow_the_schedule_with_bounded_jitter_and_honour_retry_after() {
        let now = Timestamp::from_secs(1_000);
        let s = &DEFAULT_RETRY_SCHEDULE;
        assert_eq!(next_attempt(s, 0, now, None, 0.0), Some(now.plus_secs(5)));
        assert_eq!(next_attempt(s, 1, now, None, 0.0), Some(now.plus_secs(300)));
        assert_eq!(
            next_attempt(s, 6, now, None, 0.0),
            Some(now.plus_secs(36_000))
        );
        assert_eq!(
            next_attempt(s, 7, now, None, 0.0),
            None,
            "eight attempts in all"
        );
        assert_eq!(next_attempt(s, 1, now, None, 1.0), Some(now.plus_secs(330)));
        assert_eq!(
            next_attempt(s, 1, now, None, -1.0),
            Some(now.plus_secs(270))
        );
        let after = Some(Duration::from_secs(120));
        assert_eq!(
            next_attempt(s, 0, now, after, 0.0),
            Some(now.plus_secs(120))
        );
        assert_eq!(
            next_attempt(s, 1, now, after, 0.0),
            Some(now.plus_secs(300))
        );
        let huge = Some(Duration::from_secs(10 * 86_400));
        assert_eq!(
            next_attempt(s, 0, now, huge, 0.0),
            Some(now.plus_secs(86_400))
        );
    }

    #[test]
    fn payloads_carry_id_type_timestamp_connection_and_data() {
        let event = Event {
            id: "evt_1".into(),
            org_id: "org_1".into(),
            connection_id: Some("conn_1".into()),
            event_type: "sync.completed".into(),
            data: r#"{"records_added":3}"#.into(),
            created_at: Timestamp::from_secs(1_700_000_000),
        };
        let body: Value = serde_json::from_str(&event_payload(&event)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "id": "evt_1", "type": "sync.completed",
                "timestamp": "2023-11-14T22:13:20Z", "connection_id": "conn_1",
                "data": {"records_added": 3}
            })
        );
    }
}
