//! Ironbridge's test kit, for the workspace's own tests only: a fresh store on SQLite or
//! PostgreSQL under one convention (`db`), the real server on a random port (`app`), the
//! emulated systems started in-process with the settings and credentials their connectors
//! need (`emulated`), the conformance harness every connector runs (`conformance`), and a
//! small example system that shows what adding one takes (`example`).

pub mod app;
pub mod conformance;
pub mod db;
pub mod emulated;
pub mod example;

use std::sync::Arc;

use ironbridge_core::Clock;
use ironbridge_core::netguard::Egress;
use ironbridge_core::system::Registry;

/// The built-in systems plus the example, reaching loopback (where emulators run): the
/// registry of the tests that need it.
pub fn registry(clock: Arc<dyn Clock>) -> Registry {
    ironbridge_engine::registry::builtin_for(clock, Egress::local()).with(&example::DESCRIPTOR)
}
