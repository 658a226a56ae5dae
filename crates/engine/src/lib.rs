//! Ironbridge's background work: the registry of built-in systems, the sync runner that moves
//! data connector → mapping → store one committed page at a time, the worker that runs queued
//! jobs side by side under leases and schedules periodic syncs, webhook delivery, and the
//! metrics they record (`telemetry`).

pub mod batches;
pub mod flows;
pub mod registry;
pub mod slots;
pub mod sync;
pub mod telemetry;
pub mod webhooks;
pub mod worker;
