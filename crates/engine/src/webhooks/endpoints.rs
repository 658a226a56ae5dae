//! The rules of webhook endpoints: what a valid endpoint is (a permitted URL, known event
//! types, the organization's own connections, a well-formed secret), how its secret is kept
//! (encrypted, bound to its row) and rotated with an overlap.

use std::collections::BTreeSet;

use ironbridge_core::Clock;
use ironbridge_core::crypto::{CryptoError, Keys};
use ironbridge_core::ids::new_id;
use ironbridge_core::service::ServiceError;
use ironbridge_core::store::{ConnId, OrgId, Store, StoreError, WebhookEndpoint};
use ironbridge_core::webhooks::Secret;
use ironbridge_model::Timestamp;
use ironbridge_model::webhooks::{
    WebhookEndpointIn, WebhookEndpointPatch, WebhookSecretRotateIn, is_event_type,
};

use super::guard::{AddressPolicy, Resolver, UrlRefusal, check_destination, parse_url};

/// Longest description accepted.
const MAX_DESCRIPTION: usize = 500;
/// Most connections one endpoint may be limited to.
const MAX_CONNECTIONS: usize = 100;
/// Default and longest overlap of a secret rotation.
const DEFAULT_OVERLAP_SECS: u64 = 24 * 3600;
const MAX_OVERLAP_SECS: u64 = 7 * 24 * 3600;

/// The AAD binding an endpoint's current secret to its row.
pub fn secret_context(endpoint_id: &str) -> String {
    format!("webhook_endpoints:{endpoint_id}:secret")
}

fn previous_context(endpoint_id: &str) -> String {
    format!("webhook_endpoints:{endpoint_id}:previous_secret")
}

fn decrypt(keys: &Keys, context: &str, stored: &str) -> Result<Secret, CryptoError> {
    Secret::from_bytes(keys.decrypt(context, stored)?).map_err(|_| CryptoError::Decrypt)
}

/// The endpoint's current secret.
pub fn current_secret(keys: &Keys, ep: &WebhookEndpoint) -> Result<Secret, CryptoError> {
    decrypt(keys, &secret_context(&ep.id), &ep.secret)
}

/// The secrets a delivery at `now` is signed with: the current one, then the previous one
/// while its rotation overlap lasts.
pub fn endpoint_secrets(
    keys: &Keys,
    ep: &WebhookEndpoint,
    now: Timestamp,
) -> Result<Vec<Secret>, CryptoError> {
    let mut secrets = vec![current_secret(keys, ep)?];
    if let (Some(previous), Some(until)) = (&ep.previous_secret, ep.previous_secret_expires_at)
        && until > now
    {
        secrets.push(decrypt(keys, &previous_context(&ep.id), previous)?);
    }
    Ok(secrets)
}

/// What the endpoint rules need.
pub struct Endpoints<'a> {
    /// Storage.
    pub store: &'a dyn Store,
    /// The master key's derived keys.
    pub keys: &'a Keys,
    /// Time.
    pub clock: &'a dyn Clock,
    /// Where webhooks may go.
    pub policy: &'a AddressPolicy,
    /// Name resolution for the destination check.
    pub resolver: &'a dyn Resolver,
}

fn invalid(param: impl Into<String>, message: impl Into<String>) -> ServiceError {
    ServiceError::Invalid {
        param: param.into(),
        message: message.into(),
    }
}

impl Endpoints<'_> {
    async fn check_url(&self, url: &str) -> Result<String, ServiceError> {
        let parsed = parse_url(url, self.policy).map_err(|e| invalid("url", e.to_string()))?;
        check_destination(&parsed, self.policy, self.resolver)
            .await
            .map_err(|e: UrlRefusal| invalid("url", e.to_string()))?;
        Ok(parsed.to_string())
    }

    async fn check_connections(
        &self,
        org: &OrgId,
        ids: Option<Vec<String>>,
    ) -> Result<Option<Vec<String>>, ServiceError> {
        let Some(ids) = ids else { return Ok(None) };
        if ids.is_empty() {
            return Err(invalid(
                "connection_ids",
                "`connection_ids` needs at least one connection; use null for every connection",
            ));
        }
        if ids.len() > MAX_CONNECTIONS {
            return Err(invalid(
                "connection_ids",
                format!("`connection_ids` may list at most {MAX_CONNECTIONS} connections"),
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, id) in ids.iter().enumerate() {
            match self.store.get_connection(org, &ConnId(id.clone())).await {
                Ok(_) => {}
                Err(StoreError::NotFound) => {
                    return Err(invalid(
                        format!("connection_ids[{i}]"),
                        format!("`connection_ids[{i}]` is not a connection of this organization"),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
            seen.insert(id.clone());
        }
        Ok(Some(seen.into_iter().collect()))
    }

    fn check_description(description: Option<String>) -> Result<Option<String>, ServiceError> {
        match description {
            Some(d) if d.chars().count() > MAX_DESCRIPTION => Err(invalid(
                "description",
                format!("`description` must be at most {MAX_DESCRIPTION} characters"),
            )),
            other => Ok(other),
        }
    }

    fn check_secret(secret: Option<&str>) -> Result<Secret, ServiceError> {
        match secret {
            None => Ok(Secret::generate()),
            Some(text) => {
                Secret::parse(text).map_err(|e| invalid("secret", format!("`secret`: {e}")))
            }
        }
    }

    /// Creates an endpoint; returns it with its secret.
    pub async fn create(
        &self,
        org: &OrgId,
        input: WebhookEndpointIn,
    ) -> Result<(WebhookEndpoint, Secret), ServiceError> {
        let url = self.check_url(&input.url).await?;
        let description = Self::check_description(input.description)?;
        let event_types = check_event_types(input.event_types)?;
        let connection_ids = self.check_connections(org, input.connection_ids).await?;
        let secret = Self::check_secret(input.secret.as_deref())?;
        let now = self.clock.now();
        let id = new_id("whk", now.micros());
        let ep = WebhookEndpoint {
            secret: self.keys.encrypt(&secret_context(&id), secret.bytes())?,
            id,
            org_id: org.0.clone(),
            url,
            description,
            event_types,
            connection_ids,
            status: if input.disabled {
                "disabled"
            } else {
                "enabled"
            }
            .into(),
            disabled_reason: input.disabled.then(|| "manual".into()),
            disabled_at: input.disabled.then_some(now),
            failing_since: None,
            previous_secret: None,
            previous_secret_expires_at: None,
            created_at: now,
            updated_at: now,
        };
        self.store.create_webhook_endpoint(org, &ep).await?;
        Ok((ep, secret))
    }

    /// Applies a patch; returns the endpoint as stored.
    pub async fn update(
        &self,
        org: &OrgId,
        id: &str,
        patch: WebhookEndpointPatch,
    ) -> Result<WebhookEndpoint, ServiceError> {
        let mut ep = self.store.get_webhook_endpoint(org, id).await?;
        let now = self.clock.now();
        if let Some(url) = patch.url {
            ep.url = self.check_url(&url).await?;
        }
        if let Some(description) = patch.description {
            ep.description = Self::check_description(description)?;
        }
        if let Some(types) = patch.event_types {
            ep.event_types = check_event_types(types)?;
        }
        if let Some(ids) = patch.connection_ids {
            ep.connection_ids = self.check_connections(org, ids).await?;
        }
        match patch.disabled {
            Some(true) if ep.status == "enabled" => {
                ep.status = "disabled".into();
                ep.disabled_reason = Some("manual".into());
                ep.disabled_at = Some(now);
            }
            Some(false) if ep.status != "enabled" => {
                // A fresh start: the failure streak that may have disabled it is over.
                ep.status = "enabled".into();
                ep.disabled_reason = None;
                ep.disabled_at = None;
                ep.failing_since = None;
            }
            _ => {}
        }
        ep.updated_at = now;
        self.store.update_webhook_endpoint(org, &ep).await?;
        Ok(ep)
    }

    /// Replaces the secret; the old one keeps signing beside it during the overlap.
    pub async fn rotate(
        &self,
        org: &OrgId,
        id: &str,
        input: WebhookSecretRotateIn,
    ) -> Result<(WebhookEndpoint, Secret), ServiceError> {
        let overlap = input.overlap_secs.unwrap_or(DEFAULT_OVERLAP_SECS);
        if overlap > MAX_OVERLAP_SECS {
            return Err(invalid(
                "overlap_secs",
                format!("`overlap_secs` must be from 0 to {MAX_OVERLAP_SECS}"),
            ));
        }
        let secret = Self::check_secret(input.secret.as_deref())?;
        let mut ep = self.store.get_webhook_endpoint(org, id).await?;
        let old = current_secret(self.keys, &ep)?;
        if old == secret {
            return Err(invalid(
                "secret",
                "`secret` must differ from the current secret",
            ));
        }
        let now = self.clock.now();
        ep.secret = self.keys.encrypt(&secret_context(&ep.id), secret.bytes())?;
        if overlap == 0 {
            ep.previous_secret = None;
            ep.previous_secret_expires_at = None;
        } else {
            ep.previous_secret = Some(self.keys.encrypt(&previous_context(&ep.id), old.bytes())?);
            ep.previous_secret_expires_at =
                Some(now.plus_secs(i64::try_from(overlap).unwrap_or(0)));
        }
        ep.updated_at = now;
        self.store.update_webhook_endpoint(org, &ep).await?;
        Ok((ep, secret))
    }
}

fn check_event_types(types: Option<Vec<String>>) -> Result<Option<Vec<String>>, ServiceError> {
    let Some(types) = types else { return Ok(None) };
    if types.is_empty() {
        return Err(invalid(
            "event_types",
            "`event_types` needs at least one type; use null for all (see GET /v1/webhook-event-types)",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, t) in types.iter().enumerate() {
        if !is_event_type(t) {
            return Err(invalid(
                format!("event_types[{i}]"),
                format!(
                    "`event_types[{i}]` is not an event type (see GET /v1/webhook-event-types)"
                ),
            ));
        }
        seen.insert(t.clone());
    }
    Ok(Some(seen.into_iter().collect()))
}
