//! Use cases that span the store, secrets and connectors: making, reconnecting and opening
//! connections, and rendering stored records. Writes back to the source are in `write`.

use std::sync::Arc;

use ironbridge_model::api::{ConnectionIn, ConnectionStatus, FieldFormat, McpAccess};
use ironbridge_model::{Entity, Timestamp};
use serde_json::{Map, Value};

use crate::clock::Clock;
use crate::connector::{Connector, ConnectorError};
use crate::crypto::{self, CryptoError, Keys};
use crate::ids;
use crate::netguard::{Refusal, Url, check_host};
use crate::store::{ConnId, Connection, NewConnection, OrgId, Store, StoreError, StoredRecord};
use crate::system::{FieldSpec, Registry, SystemDescriptor, UnknownSystem};

/// Prefix of connection tokens.
pub const CONNECTION_TOKEN_PREFIX: &str = "ibc";
/// Prefix of admin API keys.
pub const API_KEY_PREFIX: &str = "ibk";

/// Failures of the use cases, for the HTTP edge to classify.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The source system refused or failed.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// A stored secret could not be decrypted (wrong master key?).
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A stored record could not be mapped or rendered.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// No registered system has this id.
    #[error(transparent)]
    UnknownSystem(#[from] UnknownSystem),
    /// A query parameter is out of bounds; safe to show.
    #[error("{message}")]
    BadQuery {
        /// Parameter at fault.
        param: String,
        /// What is wrong.
        message: String,
    },
    /// A pagination cursor was refused.
    #[error(transparent)]
    Cursor(#[from] crate::cursor::CursorError),
    /// The connection's system does not support this write; safe to show.
    #[error("{message}")]
    Unsupported {
        /// The entity.
        entity: Entity,
        /// The operation refused.
        operation: crate::system::WriteOp,
        /// What is refused, naming the system.
        message: String,
    },
    /// The caller's input is invalid; safe to show.
    #[error("{message}")]
    Invalid {
        /// Field at fault.
        param: String,
        /// What is wrong.
        message: String,
    },
}

/// The AAD binding a connection's credentials to its row.
pub fn credentials_context(connection_id: &str) -> String {
    format!("connections:{connection_id}:credentials")
}

/// The AAD binding a generated private key to its certificate row.
pub fn certificate_context(certificate_id: &str) -> String {
    format!("certificates:{certificate_id}:private_key")
}

/// Replaces `credentials.ironbridge_certificate` (a certificate Ironbridge generated for this
/// organization) by the private key it holds, so the connector signs with it.
async fn resolve_certificate(
    deps: &Deps<'_>,
    org: &OrgId,
    credentials: Option<&Map<String, Value>>,
) -> Result<Option<Map<String, Value>>, ServiceError> {
    let Some(credentials) = credentials else {
        return Ok(None);
    };
    let Some(reference) = credentials.get("ironbridge_certificate") else {
        return Ok(Some(credentials.clone()));
    };
    let param = "credentials.ironbridge_certificate";
    let id = reference
        .as_str()
        .ok_or_else(|| invalid(param, "must be a certificate id (`crt_…`)"))?;
    let cert = match deps.store.get_certificate(org, id).await {
        Ok(c) => c,
        Err(StoreError::NotFound) => {
            return Err(invalid(
                param,
                format!("no certificate {id} in this organization"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if cert.not_after <= deps.clock.now() {
        return Err(invalid(
            param,
            "the certificate has expired; generate a new one",
        ));
    }
    let key = deps
        .keys
        .decrypt(&certificate_context(&cert.id), &cert.private_key)?;
    let key = String::from_utf8(key)
        .map_err(|_| ServiceError::Corrupt("stored private key is not text".into()))?;
    let mut resolved = credentials.clone();
    resolved.remove("ironbridge_certificate");
    resolved.insert("private_key_pem".into(), Value::String(key));
    Ok(Some(resolved))
}

/// A new connection and its token, shown once.
pub struct Created {
    /// The stored connection.
    pub connection: Connection,
    /// The plaintext token.
    pub token: String,
    /// The connector that checked the credentials: the connection's runtime adopts it, so
    /// its token serves the first sync too.
    pub connector: Arc<dyn Connector>,
}

impl std::fmt::Debug for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Created")
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

/// What is needed to make a connection.
pub struct Deps<'a> {
    /// Storage.
    pub store: &'a dyn Store,
    /// Secrets.
    pub keys: &'a Keys,
    /// The systems, and how their connectors are built.
    pub registry: &'a Registry,
    /// Time.
    pub clock: &'a dyn Clock,
}

fn new_connection(
    deps: &Deps<'_>,
    system: &SystemDescriptor,
    name: Option<String>,
    settings: &Map<String, Value>,
    end_user: Option<String>,
    credentials: Option<&Map<String, Value>>,
) -> Result<(NewConnection, String), ServiceError> {
    let now = deps.clock.now();
    let id = ids::new_id("conn", now.micros());
    let token = crypto::new_token(CONNECTION_TOKEN_PREFIX);
    let credentials = match credentials {
        Some(c) => {
            let plain = serde_json::to_vec(c).map_err(|e| ServiceError::Corrupt(e.to_string()))?;
            Some(deps.keys.encrypt(&credentials_context(&id), &plain)?)
        }
        None => None,
    };
    let new = NewConnection {
        id,
        system: system.id.to_string(),
        name,
        status: ConnectionStatus::Syncing.as_str().to_string(),
        settings: Value::Object(settings.clone()).to_string(),
        end_user,
        credentials,
        token_hash: crypto::token_hash(&token),
        token_prefix: crypto::token_prefix(&token),
        created_at: now,
        replaces: None,
        mcp_access: McpAccess::Read,
    };
    Ok((new, token))
}

/// A connection whose settings and credentials its system accepted, not stored yet.
pub struct Prepared {
    /// The row to store.
    pub new: NewConnection,
    /// The plaintext token (its hash is in `new`).
    pub token: String,
    /// The connector that checked the credentials.
    pub connector: Arc<dyn Connector>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("new", &self.new)
            .finish_non_exhaustive()
    }
}

/// Validates the settings and credentials against the system, then stores the connection
/// (taking a credit). The caller starts the initial sync.
pub async fn create_connection(
    deps: &Deps<'_>,
    org: &OrgId,
    input: &ConnectionIn,
) -> Result<Created, ServiceError> {
    let prepared = prepare_connection(deps, org, input).await?;
    let connection = deps.store.create_connection(org, &prepared.new).await?;
    Ok(Created {
        connection,
        token: prepared.token,
        connector: prepared.connector,
    })
}

/// What [`create_connection`] checks before it stores anything: the system, its settings,
/// the destinations, and the credentials live against the system. Link stores the result
/// itself, in the transaction that spends its token.
pub async fn prepare_connection(
    deps: &Deps<'_>,
    org: &OrgId,
    input: &ConnectionIn,
) -> Result<Prepared, ServiceError> {
    let system = deps.registry.require(input.system.as_str())?;
    let settings = input.settings.clone().unwrap_or_default();
    let credentials = resolve_certificate(deps, org, input.credentials.as_ref()).await?;
    let (system_settings, _) = split_settings(&settings)?;
    check_destinations(deps, system, &system_settings, credentials.as_ref()).await?;
    let connector = deps
        .registry
        .build(system, &system_settings, credentials.as_ref())?;
    connector.check().await?;
    let end_user = input
        .end_user
        .as_ref()
        .map(|u| serde_json::to_string(u).unwrap_or_default());
    let (new, token) = new_connection(
        deps,
        system,
        input.name.clone(),
        &settings,
        end_user,
        credentials.as_ref(),
    )?;
    let new = NewConnection {
        mcp_access: input.mcp_access.unwrap_or_default(),
        ..new
    };
    Ok(Prepared {
        new,
        token,
        connector,
    })
}

/// New credentials for an existing connection, checked live against its system with the
/// connection's own settings, as [`reconnect`] checks them: answers them encrypted for the
/// connection's row, and the connector that checked them. Nothing is stored.
pub async fn check_new_credentials(
    deps: &Deps<'_>,
    org: &OrgId,
    connection: &Connection,
    credentials: &Map<String, Value>,
) -> Result<(String, Arc<dyn Connector>), ServiceError> {
    let system = stored_system(deps.registry, connection)?;
    let settings = parse_object(&connection.settings)?;
    let credentials = resolve_certificate(deps, org, Some(credentials))
        .await?
        .unwrap_or_default();
    let (system_settings, _) = split_settings(&settings)?;
    check_destinations(deps, system, &system_settings, Some(&credentials)).await?;
    let connector = deps
        .registry
        .build(system, &system_settings, Some(&credentials))?;
    connector.check().await?;
    let plain =
        serde_json::to_vec(&credentials).map_err(|e| ServiceError::Corrupt(e.to_string()))?;
    let sealed = deps
        .keys
        .encrypt(&credentials_context(&connection.id), &plain)?;
    Ok((sealed, connector))
}

/// Replaces a connection by a new one with a new token, reusing its system and settings
/// (and its credentials unless new ones are given). The old one is disconnected.
pub async fn reconnect(
    deps: &Deps<'_>,
    org: &OrgId,
    old: &ConnId,
    credentials: Option<&Map<String, Value>>,
) -> Result<Created, ServiceError> {
    let previous = deps.store.get_connection(org, old).await?;
    if previous.replaced_by.is_some() {
        return Err(StoreError::conflict(
            "this connection was already replaced; reconnect its replacement",
        )
        .into());
    }
    let system = stored_system(deps.registry, &previous)?;
    let settings = parse_object(&previous.settings)?;
    let old_credentials = decrypt_credentials(deps.keys, &previous)?;
    let new_credentials = resolve_certificate(deps, org, credentials).await?;
    let credentials = new_credentials.as_ref().or(old_credentials.as_ref());
    let (system_settings, _) = split_settings(&settings)?;
    // Checked again: the operator's allow-list may have narrowed since the connection was made.
    check_destinations(deps, system, &system_settings, credentials).await?;
    let connector = deps.registry.build(system, &system_settings, credentials)?;
    connector.check().await?;
    let (new, token) = new_connection(
        deps,
        system,
        previous.name.clone(),
        &settings,
        previous.end_user.clone(),
        credentials,
    )?;
    // The new token has the grant the old one had.
    let new = NewConnection {
        mcp_access: previous.mcp_access,
        ..new
    };
    let connection = deps
        .store
        .reconnect(org, old, &new, deps.clock.now())
        .await?;
    Ok(Created {
        connection,
        token,
        connector,
    })
}

/// Refuses a connection whose URL settings or credentials (the descriptor's `Url` fields:
/// base URLs, token and login endpoints) point at an address the operator has not allowed,
/// with an error naming the field. The connectors' resolver enforces the same policy at
/// every call, so a name that later resolves elsewhere is refused then too; this check only
/// makes the refusal clear when the connection is made.
async fn check_destinations(
    deps: &Deps<'_>,
    system: &SystemDescriptor,
    settings: &Map<String, Value>,
    credentials: Option<&Map<String, Value>>,
) -> Result<(), ServiceError> {
    let egress = deps.registry.egress();
    let url_fields = |fields: &'static [FieldSpec]| {
        fields
            .iter()
            .filter(|f| f.format == FieldFormat::Url)
            .map(|f| f.name)
    };
    let mut checks: Vec<(String, &str)> = Vec::new();
    for name in url_fields(system.settings) {
        if let Some(Value::String(text)) = settings.get(name) {
            checks.push((format!("settings.{name}"), text));
        }
    }
    for option in system.auth {
        for name in url_fields(option.fields) {
            if let Some(Value::String(text)) = credentials.and_then(|c| c.get(name))
                && !checks
                    .iter()
                    .any(|(p, _)| *p == format!("credentials.{name}"))
            {
                checks.push((format!("credentials.{name}"), text));
            }
        }
    }
    for (param, text) in checks {
        let url = Url::parse(text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| invalid(&param, "must be an absolute http(s) URL"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                &param,
                "must not carry credentials; give them in `credentials`",
            ));
        }
        match check_host(&url, &egress.policy, egress.resolver.as_ref()).await {
            Ok(()) => {}
            Err(Refusal::Blocked) => {
                return Err(invalid(
                    &param,
                    "points at a loopback, private, link-local or otherwise non-public address, which connections may not reach (an operator can allow a network or host with `connections.allowed_private_networks`)",
                ));
            }
            Err(Refusal::Unresolvable) => {
                return Err(invalid(
                    &param,
                    "names a host that could not be resolved; check it and try again",
                ));
            }
        }
    }
    Ok(())
}

fn parse_object(text: &str) -> Result<Map<String, Value>, ServiceError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ServiceError::Corrupt(
            "stored settings are not an object".into(),
        )),
    }
}

/// Decrypts a connection's credentials.
pub fn decrypt_credentials(
    keys: &Keys,
    connection: &Connection,
) -> Result<Option<Map<String, Value>>, ServiceError> {
    let Some(stored) = &connection.credentials else {
        return Ok(None);
    };
    let plain = keys.decrypt(&credentials_context(&connection.id), stored)?;
    match serde_json::from_slice(&plain) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        _ => Err(ServiceError::Corrupt(
            "stored credentials are not an object".into(),
        )),
    }
}

/// Connection settings that belong to Ironbridge's sync engine rather than to the system's
/// connector; they are taken out before the connector sees the settings.
pub const SYNC_SETTINGS: &[&str] = &["history_days"];

/// How a connection is synced, from its settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncSettings {
    /// Days of history the first sync of transactions reads (`None`: the connector's default).
    pub history_days: Option<u32>,
}

/// Splits a connection's settings into the connector's own and the sync engine's, validating
/// the latter (`history_days`: a whole number of days from 1 to 3650).
pub fn split_settings(
    settings: &Map<String, Value>,
) -> Result<(Map<String, Value>, SyncSettings), ConnectorError> {
    let mut system = settings.clone();
    let mut sync = SyncSettings::default();
    if let Some(v) = system.remove("history_days") {
        let days = v
            .as_u64()
            .filter(|d| (1..=3650).contains(d))
            .ok_or_else(|| ConnectorError::InvalidSettings {
                param: "settings.history_days".into(),
                message: "history_days must be a whole number of days from 1 to 3650".into(),
            })?;
        sync.history_days = u32::try_from(days).ok();
    }
    Ok((system, sync))
}

/// The sync settings of a stored connection.
pub fn sync_settings(connection: &Connection) -> Result<SyncSettings, ServiceError> {
    let settings = parse_object(&connection.settings)?;
    Ok(split_settings(&settings)?.1)
}

/// The descriptor of a stored connection's system.
pub fn stored_system(
    registry: &Registry,
    connection: &Connection,
) -> Result<&'static SystemDescriptor, ServiceError> {
    registry
        .get(&connection.system)
        .ok_or_else(|| ServiceError::Corrupt(format!("unknown system {}", connection.system)))
}

/// A connector for a stored connection.
pub fn open_connector(
    keys: &Keys,
    registry: &Registry,
    connection: &Connection,
) -> Result<Arc<dyn Connector>, ServiceError> {
    let system = stored_system(registry, connection)?;
    let (settings, _) = split_settings(&parse_object(&connection.settings)?)?;
    let credentials = decrypt_credentials(keys, connection)?;
    Ok(registry.build(system, &settings, credentials.as_ref())?)
}

/// Renders a stored record as its API representation: envelope, unified body and, when
/// asked for, the raw payload.
pub fn render(record: &StoredRecord, include_remote_data: bool) -> Result<Value, ServiceError> {
    let data = parse_object(&record.data)?;
    let mut out = Map::with_capacity(data.len() + 8);
    out.insert("id".into(), Value::String(record.id.clone()));
    out.insert("remote_id".into(), Value::String(record.remote_id.clone()));
    out.insert(
        "created_at".into(),
        Value::String(record.created_at.to_rfc3339()),
    );
    out.insert(
        "modified_at".into(),
        Value::String(record.modified_at.to_rfc3339()),
    );
    let ts = |t: Option<Timestamp>| t.map_or(Value::Null, |t| Value::String(t.to_rfc3339()));
    out.insert("remote_created_at".into(), ts(record.remote_created_at));
    out.insert("remote_updated_at".into(), ts(record.remote_updated_at));
    out.insert(
        "remote_was_deleted".into(),
        Value::Bool(record.remote_was_deleted),
    );
    out.extend(data);
    if include_remote_data {
        let raw = match &record.raw {
            Some(raw) => {
                serde_json::from_str(raw).map_err(|e| ServiceError::Corrupt(e.to_string()))?
            }
            None => Value::Null,
        };
        out.insert("remote_data".into(), raw);
    }
    Ok(Value::Object(out))
}

pub(crate) fn invalid(param: impl Into<String>, message: impl Into<String>) -> ServiceError {
    ServiceError::Invalid {
        param: param.into(),
        message: message.into(),
    }
}
