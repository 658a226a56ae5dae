//! Ironbridge's domain rules: time, ids, secrets, the mapping engine, the pagination cursor,
//! the `Store` and connector seams (role traits, system descriptors and their registry, one
//! runtime per connection), and the built-in sandbox system. No web framework and no SQL
//! driver is imported here.

pub mod background;
pub mod clock;
pub mod connector;
pub mod crypto;
pub mod cursor;
pub mod describe;
pub mod field_mappings;
pub mod flows;
pub mod ids;
pub mod jq;
pub mod mapping;
pub mod netguard;
pub mod pagination;
pub mod partial;
pub mod points;
pub mod raw_payload;
pub mod read;
pub mod reconcile;
pub mod refusal;
pub mod runtime;
pub mod sandbox;
pub mod service;
pub mod source_record;
pub mod store;
pub mod system;
pub mod unified;
pub mod webhooks;
pub mod write;
pub mod written;

pub use clock::{Clock, ManualClock, OffsetClock, SystemClock};
