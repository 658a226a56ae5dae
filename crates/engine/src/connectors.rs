//! The systems this build can connect to.

use std::sync::Arc;

use ironbridge_connectors::sleeper::{Sleeper, TokioSleeper};
use ironbridge_connectors::{bc, netsuite, sap};
use ironbridge_core::Clock;
use ironbridge_core::connector::{Connector, ConnectorError};
use ironbridge_core::sandbox::SandboxConnector;
use ironbridge_core::service::ConnectorFactory;
use ironbridge_model::api::SystemId;
use serde_json::{Map, Value};

/// Builds the connector of each built-in system.
#[derive(Debug, Clone)]
pub struct BuiltinConnectors {
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
}

impl BuiltinConnectors {
    /// A registry whose connectors read time from `clock` and really wait between retries.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        BuiltinConnectors {
            clock,
            sleeper: Arc::new(TokioSleeper),
        }
    }

    /// A registry whose connectors wait through `sleeper` (tests record the waits instead).
    pub fn with_sleeper(clock: Arc<dyn Clock>, sleeper: Arc<dyn Sleeper>) -> Self {
        BuiltinConnectors { clock, sleeper }
    }
}

impl ConnectorFactory for BuiltinConnectors {
    fn build(
        &self,
        system: SystemId,
        settings: &Map<String, Value>,
        credentials: Option<&Map<String, Value>>,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        match system {
            SystemId::Sandbox => Ok(Arc::new(SandboxConnector::new(
                settings,
                credentials,
                self.clock.clone(),
            )?)),
            SystemId::Netsuite => netsuite::connector(
                settings,
                credentials,
                self.clock.clone(),
                self.sleeper.clone(),
            ),
            SystemId::SapS4hana => sap::connector(
                settings,
                credentials,
                self.clock.clone(),
                self.sleeper.clone(),
            ),
            SystemId::BusinessCentral => bc::connector(
                settings,
                credentials,
                self.clock.clone(),
                self.sleeper.clone(),
            ),
        }
    }
}
