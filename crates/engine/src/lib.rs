//! Ironbridge's background work. Today: the registry of built-in systems and the sync runner
//! that moves data connector → mapping → store, one committed page at a time.

pub mod connectors;
pub mod sync;

pub use connectors::BuiltinConnectors;
