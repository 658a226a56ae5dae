//! Access tokens cached per connection and refreshed single-flight: however many requests
//! find the token expired at once, one refresh goes to the token endpoint.

use std::future::Future;
use std::time::Duration;

use ironbridge_core::Clock;
use ironbridge_model::Timestamp;
use tokio::sync::Mutex;

/// A token and when it stops being valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The bearer value.
    pub value: String,
    /// Expiry.
    pub expires_at: Timestamp,
}

/// The cache.
#[derive(Debug, Default)]
pub struct TokenCache {
    current: Mutex<Option<AccessToken>>,
}

/// Tokens are renewed this long before they expire, so none expires in flight.
pub const EXPIRY_SKEW: Duration = Duration::from_secs(60);

impl TokenCache {
    /// The cached token if still fresh; otherwise `fetch` runs (once, under the lock).
    pub async fn get<F, Fut, E>(&self, clock: &dyn Clock, fetch: F) -> Result<AccessToken, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, E>>,
    {
        let mut current = self.current.lock().await;
        let fresh_until = clock.now().micros() + EXPIRY_SKEW.as_micros() as i64;
        if let Some(token) = current.as_ref()
            && token.expires_at.micros() > fresh_until
        {
            return Ok(token.clone());
        }
        let token = fetch().await?;
        *current = Some(token.clone());
        Ok(token)
    }

    /// Forgets the token (after the source answered 401 to it).
    pub async fn invalidate(&self) {
        *self.current.lock().await = None;
    }
}
