//! The systems this build connects to: one line each. Everything else about a system (its
//! credentials, reads, writes, limits, mappings, constructor) is in its descriptor.

use std::sync::Arc;

use ironbridge_connectors::sleeper::{Sleeper, TokioSleeper};
use ironbridge_connectors::{bc, netsuite, sap};
use ironbridge_core::Clock;
use ironbridge_core::sandbox;
use ironbridge_core::system::{DescriptorFactory, Registry, SystemDescriptor};

/// The built-in systems, in the order `GET /v1/systems` lists them.
pub static BUILTIN: &[&SystemDescriptor] = &[
    &sandbox::DESCRIPTOR,
    &netsuite::DESCRIPTOR,
    &sap::DESCRIPTOR,
    &bc::DESCRIPTOR,
];

/// The built-in systems, whose connectors read time from `clock` and really wait between
/// retries.
pub fn builtin(clock: Arc<dyn Clock>) -> Registry {
    builtin_with_sleeper(clock, Arc::new(TokioSleeper))
}

/// The built-in systems, whose connectors wait through `sleeper` (tests record the waits).
pub fn builtin_with_sleeper(clock: Arc<dyn Clock>, sleeper: Arc<dyn Sleeper>) -> Registry {
    Registry::new(BUILTIN, Arc::new(DescriptorFactory::new(clock, sleeper)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironbridge_core::ManualClock;
    use ironbridge_core::system::check_descriptors;
    use ironbridge_model::Timestamp;

    #[test]
    fn every_descriptor_agrees_with_its_mappings_and_the_catalogue() {
        let registry = builtin(Arc::new(ManualClock::new(Timestamp(0))));
        assert_eq!(check_descriptors(registry.systems()), Vec::<String>::new());
    }
}
