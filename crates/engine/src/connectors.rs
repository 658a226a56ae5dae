//! The systems this build can connect to.

use std::sync::Arc;

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
}

impl BuiltinConnectors {
    /// A registry whose connectors read time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        BuiltinConnectors { clock }
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
        }
    }
}
