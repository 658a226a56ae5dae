//! Ironbridge's public data shapes: the unified entities, the API's request and response
//! bodies and the error catalogue. No I/O lives here; every type documents itself for OpenAPI.

pub mod amount;
pub mod api;
pub mod batches;
pub mod catalogue;
pub mod dashboard;
pub mod entities;
pub mod error;
pub mod field_mappings;
pub mod fleet;
pub mod flows;
pub mod link;
pub mod timestamp;
pub mod warehouse;
pub mod webhooks;

pub use catalogue::{Entity, EntityRole, Storage};
pub use error::ErrorCode;
pub use timestamp::Timestamp;
