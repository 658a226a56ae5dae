//! Per-connection limits matched to each source's documented ones: at most N requests in
//! flight, and a request rate with a burst (a token bucket driven by the injected clock).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ironbridge_core::Clock;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::sleeper::Sleeper;

/// Concurrency and rate limits of one connection.
#[derive(Debug)]
pub struct Limiter {
    permits: Arc<Semaphore>,
    /// Microseconds between requests at the sustained rate (0: unlimited).
    interval: i64,
    /// How far ahead of now the schedule may run (the burst).
    tolerance: i64,
    /// Theoretical arrival time of the next request (GCRA).
    tat: Mutex<i64>,
}

impl Limiter {
    /// `concurrency` requests in flight, `per_second` sustained (0: unlimited) with `burst`.
    pub fn new(concurrency: usize, per_second: f64, burst: u32) -> Self {
        let interval = if per_second > 0.0 {
            (1_000_000.0 / per_second) as i64
        } else {
            0
        };
        Limiter {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            interval,
            tolerance: interval * i64::from(burst.max(1) - 1),
            tat: Mutex::new(i64::MIN),
        }
    }

    /// Waits for a rate slot, then for a concurrency permit held until the response is read.
    pub async fn acquire(&self, clock: &dyn Clock, sleeper: &dyn Sleeper) -> OwnedSemaphorePermit {
        if self.interval > 0 {
            let wait = {
                let mut tat = self.tat.lock().unwrap_or_else(|e| e.into_inner());
                let now = clock.now().micros();
                let start = (*tat).max(now);
                *tat = start + self.interval;
                // Reserving the slot before waiting keeps concurrent callers in order.
                (start - self.tolerance - now).max(0)
            };
            if wait > 0 {
                sleeper.sleep(Duration::from_micros(wait as u64)).await;
            }
        }
        // The semaphore is never closed, so acquiring cannot fail.
        self.permits
            .clone()
            .acquire_owned()
            .await
            .expect("the limiter's semaphore is never closed")
    }
}
