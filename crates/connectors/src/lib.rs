//! How Ironbridge talks to source systems over HTTP. Every connector sends its requests
//! through [`client::UpstreamClient`], which applies the connection's circuit breaker,
//! concurrency and rate limits, bounded retries with full-jitter backoff that honour
//! `Retry-After`, timeouts and a response-size cap. Time and waiting are injected so tests
//! can check schedules exactly.

pub mod asctrac;
pub mod backoff;
pub mod bc;
pub mod breaker;
pub mod client;
pub(crate) mod common;
pub(crate) mod edmx;
pub mod guard;
pub mod limiter;
pub mod netsuite;
pub mod nextraq;
pub mod samsara;
pub mod sap;
pub mod sleeper;
pub mod token;
