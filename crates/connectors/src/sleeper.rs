//! Waiting, injected: production sleeps on tokio's timer; tests record the delays asked for
//! and move a manual clock instead (the trait and the recording sleeper live in core, so
//! system descriptors can hand a sleeper to any connector).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use ironbridge_core::clock::{RecordingSleeper, Sleeper};

/// Sleeps for real.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(duration))
    }
}
