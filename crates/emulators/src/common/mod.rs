//! Infrastructure shared by every emulator: clock, seeded data, fault injection, request log, admin API.

pub mod admin;
pub mod clock;
pub mod datagen;
pub mod faults;
pub mod fleet;
pub mod gate;
pub mod jsontext;
pub mod net;
pub mod odata;
pub mod requestlog;
pub mod table;
pub mod tls;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde_json::Value;

use clock::{Clock, Millis};
use datagen::{GenCtx, Item, Location, PurchaseOrder, Vendor};
use faults::Faults;
use requestlog::RequestLog;
use table::Table;

/// All records of one emulated account.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub vendors: Table<Vendor>,
    pub items: Table<Item>,
    pub locations: Table<Location>,
    pub purchase_orders: Table<PurchaseOrder>,
    /// Every deletion, oldest first (NetSuite serves it as the `DeletedRecord` table).
    pub deleted: Vec<Deletion>,
    /// Invoices posted from purchase orders, oldest first (Business Central's posted
    /// purchase invoices); invoice `n` has id `n + 1`.
    pub posted_invoices: Vec<PostedInvoice>,
}

/// A purchase invoice posted from an order: what it keeps of the order once posting deleted
/// it (Business Central's `Purch. Inv. Header` with its `Order No.`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedInvoice {
    /// The order's id and number (`orderId`, `orderNumber`).
    pub order_id: u64,
    pub order_number: String,
    pub vendor_id: u64,
    pub currency: String,
    pub total_cents: i64,
    /// Posting time on the emulator clock (its `lastModifiedDateTime`).
    pub posted_at: Millis,
}

/// The kinds of record an emulated account holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    PurchaseOrder,
    Vendor,
    Item,
    Location,
}

/// Who deleted a record, as a deletion log tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletedThrough {
    /// The admin API: stands for a person in the system's own user interface.
    UserInterface,
    /// The system's REST API.
    RestApi,
}

/// One entry of the deletion log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub kind: RecordKind,
    pub id: u64,
    /// The record's name when it was deleted (order number, vendor name, item SKU, location name).
    pub name: String,
    /// When, on the emulator clock, truncated to whole seconds: NetSuite stores deletion
    /// times in seconds, as it does modification times.
    pub at: Millis,
    pub through: DeletedThrough,
}

impl Dataset {
    pub fn new(ctx: GenCtx) -> Self {
        Self {
            vendors: Table::new(ctx),
            items: Table::new(ctx),
            locations: Table::new(ctx),
            purchase_orders: Table::new(ctx),
            deleted: Vec::new(),
            posted_invoices: Vec::new(),
        }
    }

    /// The item whose SKU is `sku`: a created or changed one, else a seeded one by the number
    /// in its `ITEM-nnnnn` SKU.
    pub fn item_by_sku(&self, sku: &str) -> Option<Item> {
        if let Some(i) = self.items.overlay_values().find(|i| i.sku == sku) {
            return Some(i.clone());
        }
        let id: u64 = sku.strip_prefix("ITEM-")?.parse().ok()?;
        self.items.get(id).filter(|i| i.sku == sku)
    }

    /// The vendor whose number is `number`: a created or changed one, else a seeded one by
    /// the number in its `Vnnnnn`.
    pub fn vendor_by_number(&self, number: &str) -> Option<Vendor> {
        if let Some(v) = self.vendors.overlay_values().find(|v| v.number == number) {
            return Some(v.clone());
        }
        let id: u64 = number.strip_prefix('V')?.parse().ok()?;
        self.vendors.get(id).filter(|v| v.number == number)
    }

    /// A vendor named exactly `name`, if any (every vendor is looked at: for writes only).
    pub fn vendor_by_name(&self, name: &str) -> Option<Vendor> {
        self.vendors
            .ids()
            .iter()
            .filter_map(|&id| self.vendors.get(id))
            .find(|v| v.name == name)
    }

    /// Deletes a record and logs the deletion at `now_ms` (whole seconds kept); `false` when
    /// there is no such record. Every delete path goes through here, so the log misses none.
    pub fn delete(
        &mut self,
        kind: RecordKind,
        id: u64,
        now_ms: Millis,
        through: DeletedThrough,
    ) -> bool {
        let name = match kind {
            RecordKind::PurchaseOrder => self.purchase_orders.delete(id).map(|r| r.number),
            RecordKind::Vendor => self.vendors.delete(id).map(|r| r.name),
            RecordKind::Item => self.items.delete(id).map(|r| r.sku),
            RecordKind::Location => self.locations.delete(id).map(|r| r.name),
        };
        let Some(name) = name else { return false };
        self.deleted.push(Deletion {
            kind,
            id,
            name,
            at: now_ms - now_ms.rem_euclid(1000),
            through,
        });
        true
    }
}

/// Credential state shared by a system's auth code: revocation and rotation generations.
#[derive(Debug, Default)]
pub struct AuthControl {
    revoked: AtomicBool,
    generation: AtomicU64,
}

impl AuthControl {
    pub fn revoked(&self) -> bool {
        self.revoked.load(Ordering::SeqCst)
    }
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
    pub fn revoke(&self) {
        self.revoked.store(true, Ordering::SeqCst);
    }
    pub fn restore(&self) {
        self.revoked.store(false, Ordering::SeqCst);
    }
    /// Invalidates every issued token and secret; returns the new generation.
    pub fn rotate(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::SeqCst) + 1
    }
    /// A token issued at `generation` is still usable.
    pub fn accepts(&self, generation: u64) -> bool {
        !self.revoked() && generation == self.generation()
    }
}

/// Suffix that rotation appends to configured secrets, so rotated credentials are predictable for tests.
pub fn rotated_secret(secret: &str, generation: u64) -> String {
    if generation == 0 {
        secret.to_string()
    } else {
        format!("{secret}-rotated-{generation}")
    }
}

/// State every emulator shares.
#[derive(Debug)]
pub struct Core {
    pub seed: u64,
    pub clock: Clock,
    data: RwLock<Dataset>,
    pub faults: Faults,
    pub log: RequestLog,
    pub auth: AuthControl,
    /// `https` when the emulator serves TLS: links it writes (next pages, token endpoints,
    /// discovery documents) carry it, as a real server's do.
    pub scheme: &'static str,
}

impl Core {
    pub fn new(seed: u64, clock: Clock, data: Dataset) -> Self {
        Self {
            seed,
            clock,
            data: RwLock::new(data),
            faults: Faults::new(seed),
            log: RequestLog::new(10_000),
            auth: AuthControl::default(),
            scheme: "http",
        }
    }

    /// Serves links with `https`.
    pub fn with_tls(mut self, tls: bool) -> Self {
        self.scheme = if tls { "https" } else { "http" };
        self
    }

    /// `scheme://host` of a request, from its `Host` header (`localhost` without one).
    pub fn origin(&self, headers: &axum::http::HeaderMap) -> String {
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!("{}://{host}", self.scheme)
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Dataset> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, Dataset> {
        self.data.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the common admin API needs from a system: its switches, as JSON.
pub trait SystemHooks: Send + Sync + 'static {
    fn settings(&self) -> Value;
    /// Applies a JSON merge patch to the switches; returns the new settings or a message.
    fn patch_settings(&self, patch: Value) -> Result<Value, String>;
    /// Current credentials (after rotation), so tests and demos can read them.
    fn credentials(&self) -> Value;
}

/// JSON merge patch, except that `null` sets a field to null instead of removing it: for switches
/// that are `Option`s, `null` must mean "off", not "back to the default".
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Patches a serde value through JSON (used for settings and admin record edits).
pub fn patch_struct<T: serde::Serialize + serde::de::DeserializeOwned>(
    current: &T,
    patch: &Value,
) -> Result<T, String> {
    let mut v = serde_json::to_value(current).map_err(|e| e.to_string())?;
    merge_patch(&mut v, patch);
    serde_json::from_value(v).map_err(|e| e.to_string())
}
