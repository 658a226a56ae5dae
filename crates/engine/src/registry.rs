//! The systems this build connects to: one line each. Everything else about a system (its
//! credentials, reads, writes, limits, mappings, constructor) is in its descriptor.

use std::sync::Arc;

use ironbridge_connectors::sleeper::{Sleeper, TokioSleeper};
use ironbridge_connectors::{asctrac, bc, netsuite, nextraq, samsara, sap};
use ironbridge_core::Clock;
use ironbridge_core::netguard::Egress;
use ironbridge_core::sandbox;
use ironbridge_core::system::{DescriptorFactory, Registry, SystemDescriptor};

/// The built-in systems, in the order `GET /v1/systems` lists them.
pub static BUILTIN: &[&SystemDescriptor] = &[
    &sandbox::DESCRIPTOR,
    &netsuite::DESCRIPTOR,
    &sap::DESCRIPTOR,
    &bc::DESCRIPTOR,
    &asctrac::DESCRIPTOR,
    &samsara::DESCRIPTOR,
    &nextraq::DESCRIPTOR,
];

/// The built-in systems, whose connectors read time from `clock`, really wait between
/// retries and reach public addresses only.
pub fn builtin(clock: Arc<dyn Clock>) -> Registry {
    builtin_with(clock, Arc::new(TokioSleeper), Egress::default())
}

/// The built-in systems, whose connectors reach what `egress` permits (the operator's
/// `connections.allowed_private_networks`; loopback for tests and the demo's emulators).
pub fn builtin_for(clock: Arc<dyn Clock>, egress: Egress) -> Registry {
    builtin_with(clock, Arc::new(TokioSleeper), egress)
}

/// The built-in systems, whose connectors wait through `sleeper` (tests record the waits)
/// and reach what `egress` permits. New connections' hosts are checked against the same
/// policy.
pub fn builtin_with(clock: Arc<dyn Clock>, sleeper: Arc<dyn Sleeper>, egress: Egress) -> Registry {
    Registry::new(
        BUILTIN,
        Arc::new(DescriptorFactory::new(clock, sleeper).with_egress(egress.clone())),
    )
    .with_egress(egress)
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
