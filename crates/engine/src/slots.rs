//! Write slots in the shared database: where several processes share one PostgreSQL, a write
//! takes one of its connection's write slots for as long as it calls the source, so writes
//! from every api process together stay within their share of the connection's limit (the
//! sync, one at a time per connection, leaves that share free).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ironbridge_core::Clock;
use ironbridge_core::clock::Sleeper;
use ironbridge_core::ids::new_id;
use ironbridge_core::runtime::WriteSlots;
use ironbridge_core::service::ServiceError;
use ironbridge_core::store::{ConnId, Store, StoreError};
use ironbridge_model::Timestamp;

/// How long a slot is held without renewal: its holder renews it every [`SLOT_RENEW`] while
/// the write lasts, so a killed process's slot frees itself this soon after.
pub const SLOT_LEASE: Duration = Duration::from_secs(20);
/// How often a held slot's lease is renewed.
pub const SLOT_RENEW: Duration = Duration::from_secs(5);
/// How long a write waits for a free slot before it is answered as unavailable.
pub const SLOT_WAIT: Duration = Duration::from_secs(30);
/// How often a waiting write looks again.
const SLOT_POLL: Duration = Duration::from_millis(100);

/// Write slots kept in the store.
#[derive(Clone)]
pub struct StoreSlots {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    /// This process: slots are released only by their holder.
    holder: String,
}

impl StoreSlots {
    /// Slots in `store`, timed by `clock`, waited for through `sleeper`.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
    ) -> Arc<Self> {
        let holder = new_id("prc", clock.now().micros());
        Arc::new(StoreSlots {
            store,
            clock,
            sleeper,
            holder,
        })
    }
}

/// A slot held (its lease renewed meanwhile); given back when dropped.
struct Held {
    store: Arc<dyn Store>,
    conn: ConnId,
    slot: u32,
    holder: String,
    renewal: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
        let (store, conn, slot, holder) = (
            self.store.clone(),
            self.conn.clone(),
            self.slot,
            self.holder.clone(),
        );
        // The write is over; freeing its slot needs no one to wait for it. Without a runtime
        // (the process is ending) the lease frees it.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = store.release_write_slot(&conn, slot, &holder).await {
                    tracing::warn!(connection = %conn.0, error = %e.chain(), "could not free a write slot; its lease will");
                }
            });
        }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[async_trait]
impl WriteSlots for StoreSlots {
    async fn acquire(
        &self,
        connection_id: &str,
        slots: usize,
    ) -> Result<Box<dyn Send + Sync>, ServiceError> {
        let conn = ConnId(connection_id.to_string());
        let slots = u32::try_from(slots).unwrap_or(u32::MAX).max(1);
        let give_up = self.clock.now().micros() + micros(SLOT_WAIT);
        loop {
            let now = self.clock.now();
            let until = Timestamp(now.micros() + micros(SLOT_LEASE));
            if let Some(slot) = self
                .store
                .acquire_write_slot(&conn, slots, &self.holder, now, until)
                .await?
            {
                let renewal = {
                    let (store, clock, conn, holder) = (
                        self.store.clone(),
                        self.clock.clone(),
                        conn.clone(),
                        self.holder.clone(),
                    );
                    // A heartbeat, like a job's lease: real time, whatever the clock says.
                    tokio::spawn(async move {
                        loop {
                            tokio::time::sleep(SLOT_RENEW).await;
                            let until = Timestamp(clock.now().micros() + micros(SLOT_LEASE));
                            match store.renew_write_slot(&conn, slot, &holder, until).await {
                                Ok(true) => {}
                                Ok(false) => return,
                                Err(e) => {
                                    tracing::warn!(connection = %conn.0, error = %e.chain(), "could not renew a write slot")
                                }
                            }
                        }
                    })
                };
                return Ok(Box::new(Held {
                    store: self.store.clone(),
                    conn,
                    slot,
                    holder: self.holder.clone(),
                    renewal: Some(renewal),
                }));
            }
            if now.micros() >= give_up {
                return Err(ServiceError::Store(StoreError::Unavailable(
                    "every write slot of the connection stayed busy".into(),
                )));
            }
            self.sleeper.sleep(SLOT_POLL).await;
        }
    }
}
