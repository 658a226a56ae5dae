//! The capability matrix: per system, which entities can be read (and incrementally), how
//! deletions are detected, and which writes are supported. Tests check it against the
//! connectors, so it cannot promise what a connector does not do.

use ironbridge_model::Entity;
use ironbridge_model::api::{DeletionDetection, EntityCapability, SystemCapabilities, SystemId};

const fn cap(
    entity: Entity,
    incremental: bool,
    deletions: DeletionDetection,
    write: bool,
) -> EntityCapability {
    EntityCapability {
        entity,
        read: true,
        incremental,
        deletions,
        create: write,
        update: write,
    }
}

use DeletionDetection::{Flagged, Reconciliation};

/// The matrix.
pub fn capabilities() -> Vec<SystemCapabilities> {
    vec![
        SystemCapabilities {
            system: SystemId::Sandbox,
            name: "Ironbridge sandbox ERP".into(),
            auth: vec!["none (any credentials; api_key \"revoked\" simulates revoked credentials)".into()],
            entities: vec![
                cap(Entity::PurchaseOrder, true, Flagged, true),
                cap(Entity::Vendor, false, Flagged, false),
                cap(Entity::Item, false, Flagged, false),
                cap(Entity::Location, false, Flagged, false),
            ],
        },
        SystemCapabilities {
            system: SystemId::Netsuite,
            name: "Oracle NetSuite".into(),
            auth: vec!["OAuth 2.0 machine-to-machine: a certificate Ironbridge generates (POST /v1/certificates) or the customer's own private key".into()],
            entities: vec![
                cap(Entity::PurchaseOrder, true, Reconciliation, true),
                cap(Entity::Vendor, true, Reconciliation, false),
                cap(Entity::Item, true, Reconciliation, false),
                cap(Entity::Location, false, Reconciliation, false),
            ],
        },
        SystemCapabilities {
            system: SystemId::SapS4hana,
            name: "SAP S/4HANA".into(),
            auth: vec!["Basic (communication user)".into(), "OAuth 2.0 client credentials".into()],
            entities: vec![
                cap(Entity::PurchaseOrder, true, Reconciliation, true),
                cap(Entity::Vendor, false, Reconciliation, false),
                cap(Entity::Item, true, Reconciliation, false),
            ],
        },
        SystemCapabilities {
            system: SystemId::BusinessCentral,
            name: "Microsoft Dynamics 365 Business Central".into(),
            auth: vec!["Microsoft Entra ID client credentials (client secret or certificate)".into()],
            entities: vec![
                cap(Entity::PurchaseOrder, true, Reconciliation, true),
                cap(Entity::Vendor, true, Reconciliation, false),
                cap(Entity::Item, true, Reconciliation, false),
            ],
        },
    ]
}

/// One system's capabilities.
pub fn for_system(system: SystemId) -> Option<SystemCapabilities> {
    capabilities().into_iter().find(|c| c.system == system)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::default_mapping;

    #[test]
    fn every_system_is_listed_and_every_readable_entity_has_a_mapping() {
        for system in SystemId::ALL {
            let caps = for_system(system)
                .unwrap_or_else(|| panic!("{} is not in the matrix", system.as_str()));
            for entity in Entity::ALL {
                let cap = caps.entities.iter().find(|c| c.entity == entity);
                let mapped = default_mapping(system, entity).is_some();
                assert_eq!(
                    cap.is_some_and(|c| c.read),
                    mapped,
                    "{} {entity}: read capability and mapping disagree",
                    system.as_str()
                );
                if let Some(c) = cap {
                    assert!(
                        c.read || !(c.create || c.update || c.incremental),
                        "{} {entity}",
                        system.as_str()
                    );
                }
            }
        }
    }
}
