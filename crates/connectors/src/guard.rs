//! Outgoing connections only where the network policy permits (`core::netguard`): a `reqwest`
//! resolver that resolves each name at connect time and keeps only permitted addresses, so
//! the address checked is the address connected to and a name that later resolves to an
//! internal address (DNS rebinding) is still refused. Connectors' clients and the webhook
//! sender both connect through it. IP literals never reach a resolver: their callers check
//! them with [`check_literal`].

use std::net::SocketAddr;
use std::sync::Arc;

use ironbridge_core::netguard::{NetworkPolicy, Resolver, literal_ip};
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The error a connection attempt fails with when every address of a name is refused.
#[derive(Debug, thiserror::Error)]
#[error("requests to this address range are blocked")]
pub struct BlockedAddress;

/// Whether an error (or one of its causes) is a refusal by the guard.
pub fn is_blocked(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<BlockedAddress>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// A URL whose host is an IP literal outside the policy (no resolver sees those).
pub fn check_literal(url: &Url, policy: &NetworkPolicy) -> Result<(), BlockedAddress> {
    match literal_ip(url) {
        Some(ip) if !policy.permits(ip) => Err(BlockedAddress),
        _ => Ok(()),
    }
}

/// The guard as a `reqwest` resolver.
pub struct GuardedResolver {
    inner: Arc<dyn Resolver>,
    policy: Arc<NetworkPolicy>,
}

impl GuardedResolver {
    /// Resolves through `inner` and keeps the addresses `policy` permits (every address of
    /// an allow-listed host name).
    pub fn new(inner: Arc<dyn Resolver>, policy: Arc<NetworkPolicy>) -> Self {
        GuardedResolver { inner, policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let inner = self.inner.clone();
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let ips = inner.lookup(&host).await?;
            let vouched = policy.allows_host(&host);
            let permitted: Vec<SocketAddr> = ips
                .into_iter()
                .filter(|ip| vouched || policy.permits(*ip))
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if permitted.is_empty() {
                return Err(Box::new(BlockedAddress) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}
