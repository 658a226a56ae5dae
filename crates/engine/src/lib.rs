//! Ironbridge's background work: the registry of built-in systems, the sync runner that moves
//! data connector → mapping → store one committed page at a time, and the worker that runs
//! queued jobs under leases and schedules periodic syncs, and webhook delivery.

pub mod connectors;
pub mod sync;
pub mod webhooks;
pub mod worker;

pub use connectors::BuiltinConnectors;
