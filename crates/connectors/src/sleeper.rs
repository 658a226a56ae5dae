//! Waiting, injected: production sleeps on tokio's timer; tests record the delays asked for
//! and move a manual clock instead.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ironbridge_core::ManualClock;

/// Something that can wait.
pub trait Sleeper: Send + Sync + std::fmt::Debug {
    /// Waits for `duration`.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// Sleeps for real.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Returns at once, advancing a manual clock and remembering every delay.
#[derive(Debug, Clone)]
pub struct RecordingSleeper {
    clock: ManualClock,
    slept: Arc<Mutex<Vec<Duration>>>,
}

impl RecordingSleeper {
    /// A sleeper that moves `clock`.
    pub fn new(clock: ManualClock) -> Self {
        RecordingSleeper {
            clock,
            slept: Arc::default(),
        }
    }

    /// Every delay asked for, in order.
    pub fn slept(&self) -> Vec<Duration> {
        self.slept.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Sleeper for RecordingSleeper {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        self.slept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(duration);
        self.clock
            .advance_micros(i64::try_from(duration.as_micros()).unwrap_or(i64::MAX));
        Box::pin(std::future::ready(()))
    }
}
