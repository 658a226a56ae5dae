//! One connector runtime per connection in a process, shared by API writes and worker jobs:
//! one connector, so one token cache, one rate budget, one concurrency limit and one circuit
//! breaker, whoever calls the source. A runtime is rebuilt when the connection's settings or
//! credentials change; runtimes nobody holds are forgotten beyond a bound.
//!
//! Across processes (several api and worker processes on one PostgreSQL), a connection's
//! syncs run one at a time (a sync job holds the connection's lease), and writes take one of
//! the connection's write slots in the database ([`WriteSlots`]) while the sync leaves that
//! many calls free: together they stay within the system's limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ironbridge_model::Entity;
use serde_json::Value;

use crate::connector::{Connector, ConnectorError, UnifiedWrite};
use crate::crypto::{Keys, sha256_hex};
use crate::service::{ServiceError, open_connector, stored_system};
use crate::store::Connection;
use crate::system::{Registry, SystemDescriptor};

/// Calls of a connection that writes may use at once across all processes; a sync leaves
/// them free where writes can come from other processes.
pub fn write_share(system: &SystemDescriptor) -> usize {
    // A quarter of the limit, at least one, and never all of it.
    (system.limits.concurrency / 4)
        .max(1)
        .min(system.limits.concurrency.saturating_sub(1).max(1))
}

/// Reserves one of a connection's write slots across processes for the length of a write.
#[async_trait]
pub trait WriteSlots: Send + Sync {
    /// Waits for one of the connection's `slots` write slots; the guard gives it back.
    async fn acquire(
        &self,
        connection_id: &str,
        slots: usize,
    ) -> Result<Box<dyn Send + Sync>, ServiceError>;
}

/// A connection's connector and what it belongs to.
pub struct ConnectionRuntime {
    connection_id: String,
    system: &'static SystemDescriptor,
    connector: Arc<dyn Connector>,
    slots: Option<Arc<dyn WriteSlots>>,
}

impl std::fmt::Debug for ConnectionRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionRuntime")
            .field("connection_id", &self.connection_id)
            .field("system", &self.system.id)
            .finish_non_exhaustive()
    }
}

impl ConnectionRuntime {
    /// A runtime around a connector (tests and tools that build one directly).
    pub fn new(connection_id: &str, connector: Arc<dyn Connector>) -> Self {
        ConnectionRuntime {
            connection_id: connection_id.to_string(),
            system: connector.descriptor(),
            connector,
            slots: None,
        }
    }

    /// The connection's connector.
    pub fn connector(&self) -> &Arc<dyn Connector> {
        &self.connector
    }

    /// The connection's system.
    pub fn system(&self) -> &'static SystemDescriptor {
        self.system
    }

    /// Calls a sync of this connection may have in flight: the system's limit, less the
    /// write share when writes may come from other processes.
    pub fn sync_concurrency(&self) -> usize {
        let limit = self.connector.read_concurrency().max(1);
        match &self.slots {
            Some(_) => limit.saturating_sub(write_share(self.system)).max(1),
            None => limit,
        }
    }

    async fn slot(&self) -> Result<Option<Box<dyn Send + Sync>>, ServiceError> {
        match &self.slots {
            Some(slots) => Ok(Some(
                slots
                    .acquire(&self.connection_id, write_share(self.system))
                    .await?,
            )),
            None => Ok(None),
        }
    }

    /// Creates a record in the source (the descriptor must list the write).
    pub async fn create(
        &self,
        entity: Entity,
        record: &UnifiedWrite,
    ) -> Result<Value, ServiceError> {
        let writer = self.connector.creates().ok_or_else(|| {
            ConnectorError::Unsupported(format!("{} cannot create records", self.system.name))
        })?;
        let _slot = self.slot().await?;
        Ok(writer.create(entity, record).await?)
    }

    /// The record of `entity` a create wrote with `reference`, if the source has it
    /// ([`crate::connector::CreateRecords::find_written`]): one read, part of a write, so it
    /// takes a write slot like the create it reconciles.
    pub async fn find_written(
        &self,
        entity: Entity,
        reference: &str,
    ) -> Result<Option<Value>, ServiceError> {
        let writer = self.connector.creates().ok_or_else(|| {
            ConnectorError::Unsupported(format!("{} cannot create records", self.system.name))
        })?;
        let _slot = self.slot().await?;
        Ok(writer.find_written(entity, reference).await?)
    }

    /// Updates a record in the source (the descriptor must list the write).
    pub async fn update(
        &self,
        entity: Entity,
        remote_id: &str,
        changes: &UnifiedWrite,
    ) -> Result<Value, ServiceError> {
        let writer = self.connector.updates().ok_or_else(|| {
            ConnectorError::Unsupported(format!("{} cannot update records", self.system.name))
        })?;
        let _slot = self.slot().await?;
        Ok(writer.update(entity, remote_id, changes).await?)
    }
}

struct Entry {
    fingerprint: String,
    runtime: Arc<ConnectionRuntime>,
    used: u64,
}

/// The runtimes of a process, by connection.
pub struct Runtimes {
    registry: Registry,
    keys: Arc<Keys>,
    slots: Option<Arc<dyn WriteSlots>>,
    open: Mutex<HashMap<String, Entry>>,
    capacity: usize,
    tick: AtomicU64,
}

impl std::fmt::Debug for Runtimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtimes")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

/// Runtimes a process keeps at most when nobody holds them.
pub const RUNTIMES_KEPT: usize = 10_000;

impl Runtimes {
    /// Runtimes of the registry's systems, one process alone on its database.
    pub fn new(registry: Registry, keys: Arc<Keys>) -> Self {
        Runtimes {
            registry,
            keys,
            slots: None,
            open: Mutex::new(HashMap::new()),
            capacity: RUNTIMES_KEPT,
            tick: AtomicU64::new(0),
        }
    }

    /// The same, for a database other processes share: writes take slots in `slots` and
    /// syncs leave them free.
    pub fn shared(mut self, slots: Arc<dyn WriteSlots>) -> Self {
        self.slots = Some(slots);
        self
    }

    /// Keeps at most `capacity` runtimes nobody holds.
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// The systems.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The master key's derived keys (credentials are decrypted with them).
    pub fn keys(&self) -> &Arc<Keys> {
        &self.keys
    }

    /// The runtime of a stored connection: the one in use if its settings and credentials
    /// are unchanged, else a new one.
    pub fn get(&self, connection: &Connection) -> Result<Arc<ConnectionRuntime>, ServiceError> {
        self.runtime(connection, None)
    }

    /// Makes `connector`, just built for a new connection (its credentials checked, its
    /// token fresh), the connection's runtime, so the first sync does not start over.
    pub fn adopt(
        &self,
        connection: &Connection,
        connector: Arc<dyn Connector>,
    ) -> Result<Arc<ConnectionRuntime>, ServiceError> {
        self.runtime(connection, Some(connector))
    }

    fn runtime(
        &self,
        connection: &Connection,
        built: Option<Arc<dyn Connector>>,
    ) -> Result<Arc<ConnectionRuntime>, ServiceError> {
        let fingerprint = sha256_hex(
            format!(
                "{}\u{0}{}",
                connection.settings,
                connection.credentials.as_deref().unwrap_or("")
            )
            .as_bytes(),
        );
        let used = self.tick.fetch_add(1, Ordering::Relaxed);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = open.get_mut(&connection.id)
            && entry.fingerprint == fingerprint
        {
            entry.used = used;
            return Ok(entry.runtime.clone());
        }
        let connector = match built {
            Some(c) => c,
            None => open_connector(&self.keys, &self.registry, connection)?,
        };
        let runtime = Arc::new(ConnectionRuntime {
            connection_id: connection.id.clone(),
            system: stored_system(&self.registry, connection)?,
            connector,
            slots: self.slots.clone(),
        });
        if open.len() >= self.capacity {
            // Forget the least recently used half of the runtimes nobody holds: one still
            // held (a sync running) must stay the connection's only one.
            let mut idle: Vec<(u64, String)> = open
                .iter()
                .filter(|(_, e)| Arc::strong_count(&e.runtime) == 1)
                .map(|(id, e)| (e.used, id.clone()))
                .collect();
            idle.sort_unstable();
            for (_, id) in idle.iter().take(open.len().div_ceil(2)) {
                open.remove(id);
            }
        }
        open.insert(
            connection.id.clone(),
            Entry {
                fingerprint,
                runtime: runtime.clone(),
                used,
            },
        );
        Ok(runtime)
    }

    /// Runtimes kept now.
    pub fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
