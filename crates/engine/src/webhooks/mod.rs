//! Webhooks: endpoints' rules (`endpoints`), where deliveries may go (`guard`), one signed
//! attempt (`sender`) and the dispatcher that works through due deliveries with leases
//! (`dispatcher`). Deliveries are created by the store with each event (the outbox), and for
//! record events from the change feed (`records`).

pub mod dispatcher;
pub mod endpoints;
pub mod guard;
pub mod records;
pub mod sender;

use std::sync::Arc;
use std::time::Duration;

use ironbridge_core::webhooks::DEFAULT_RETRY_SCHEDULE;

pub use dispatcher::Dispatcher;
pub use guard::{AddressPolicy, Resolver, SystemResolver};
pub use records::RecordEvents;
pub use sender::Sender;

/// Webhook settings.
#[derive(Clone)]
pub struct WebhookConfig {
    /// Longest an attempt may take, connection included.
    pub timeout: Duration,
    /// Delays between failed attempts (after the first, immediate one).
    pub retry_schedule: Vec<Duration>,
    /// An endpoint whose every attempt failed for this long is disabled.
    pub disable_after: Duration,
    /// How long a dispatcher owns a claimed delivery; after a crash it is attempted again
    /// this long after the claim. Longer than `timeout`.
    pub lease: Duration,
    /// Attempts in flight at once, in all.
    pub max_in_flight: usize,
    /// Attempts in flight at once to one endpoint, so a slow endpoint cannot take every slot.
    pub max_in_flight_per_endpoint: usize,
    /// How often an idle dispatcher looks for due deliveries.
    pub poll_interval: Duration,
    /// Finished deliveries and attempts are deleted after this long.
    pub retention: Duration,
    /// Where webhooks may go.
    pub policy: Arc<AddressPolicy>,
    /// Name resolution (the system's; tests inject their own).
    pub resolver: Arc<dyn Resolver>,
    /// Raised by the store when deliveries may have come due in this process (events
    /// written, replays): the dispatcher wakes at once instead of at its next poll.
    pub wake: Option<Arc<tokio::sync::Notify>>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            timeout: Duration::from_secs(15),
            retry_schedule: DEFAULT_RETRY_SCHEDULE.to_vec(),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            lease: Duration::from_secs(60),
            max_in_flight: 128,
            max_in_flight_per_endpoint: 4,
            poll_interval: Duration::from_millis(100),
            retention: Duration::from_secs(30 * 24 * 3600),
            policy: Arc::new(AddressPolicy::default()),
            resolver: Arc::new(SystemResolver),
            wake: None,
        }
    }
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("timeout", &self.timeout)
            .field("retry_schedule", &self.retry_schedule)
            .field("disable_after", &self.disable_after)
            .field("lease", &self.lease)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl WebhookConfig {
    /// The sender these settings describe.
    pub fn sender(&self) -> Result<Sender, reqwest::Error> {
        Sender::new(self.policy.clone(), self.resolver.clone(), self.timeout)
    }
}
