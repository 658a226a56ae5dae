//! Flows in the background and on request: runs worked through as jobs (`run`), the change
//! feed and schedule triggers that start them (`triggers`), documents saved and manual runs
//! started (`manage`), and dry runs (`dry`), over the step logic they share (`steps`).

pub mod dry;
pub mod manage;
pub mod run;
pub mod steps;
pub mod triggers;

pub use ironbridge_core::flows::FLOW_JOB;
pub use run::{FlowDeps, FlowStop, run_flow};
pub use triggers::FlowTriggers;
