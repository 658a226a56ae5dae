//! Rate limits (GCRA: a token bucket without a timer): per credential, and per client address
//! for what has no credential to key on (failed authentication, unauthenticated routes). The
//! client address is the peer's, or, only when the peer is a trusted proxy, the right-most
//! address its forwarding headers name that is not itself a trusted proxy (the left part of
//! those headers is whatever the client wrote). Time comes from the injected clock, so tests
//! can drive it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use axum::http::HeaderMap;
use ironbridge_core::netguard::IpNet;
use ironbridge_model::Timestamp;

/// The verdict for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The burst size (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests left in the current burst (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Seconds until the bucket is full again (`RateLimit-Reset`).
    pub reset_secs: u64,
    /// Seconds to wait before retrying, when refused (`Retry-After`).
    pub retry_after_secs: u64,
}

/// Keyed limiter: `rate` requests per second sustained, `burst` at once.
pub struct RateLimiter {
    interval: i64,
    tolerance: i64,
    burst: u32,
    state: Mutex<HashMap<String, i64>>,
}

impl RateLimiter {
    /// A limiter; a zero rate disables limiting.
    pub fn new(rate_per_second: u32, burst: u32) -> Self {
        Self::with_interval(1_000_000, rate_per_second, burst)
    }

    /// A limiter of `rate_per_minute` sustained; zero disables limiting.
    pub fn per_minute(rate_per_minute: u32, burst: u32) -> Self {
        Self::with_interval(60_000_000, rate_per_minute, burst)
    }

    fn with_interval(period_micros: i64, rate: u32, burst: u32) -> Self {
        let interval = if rate == 0 {
            0
        } else {
            period_micros / i64::from(rate)
        };
        let burst = burst.max(1);
        RateLimiter {
            interval,
            tolerance: interval * (i64::from(burst) - 1),
            burst,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Decides one request for `key` at `now`.
    pub fn check(&self, key: &str, now: Timestamp) -> Decision {
        let now = now.micros();
        if self.interval == 0 {
            return Decision {
                allowed: true,
                limit: self.burst,
                remaining: self.burst,
                reset_secs: 0,
                retry_after_secs: 0,
            };
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.len() > 100_000 {
            // Forget keys whose bucket is full again; they are indistinguishable from new ones.
            state.retain(|_, tat| *tat > now);
        }
        let tat = state.get(key).copied().unwrap_or(now).max(now);
        let secs_up = |micros: i64| (micros.max(0) as u64).div_ceil(1_000_000);
        if tat - now > self.tolerance {
            return Decision {
                allowed: false,
                limit: self.burst,
                remaining: 0,
                reset_secs: secs_up(tat - now),
                retry_after_secs: secs_up(tat - self.tolerance - now).max(1),
            };
        }
        let new_tat = tat + self.interval;
        state.insert(key.to_string(), new_tat);
        let remaining =
            ((now + self.tolerance + self.interval - new_tat) / self.interval).max(0) as u32;
        Decision {
            allowed: true,
            limit: self.burst,
            remaining,
            reset_secs: secs_up(new_tat - now),
            retry_after_secs: 0,
        }
    }
}

/// The key of the client behind a request: its address (an IPv6 client by its /64, which
/// one host usually holds whole), `unknown` when the server was not told the peer.
pub fn client_key(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> String {
    let Some(peer) = peer else {
        return "unknown".into();
    };
    let client = client_address(peer, headers, trusted);
    match client {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4).to_string(),
        v4 => v4.to_string(),
    }
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let canonical = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    trusted
        .iter()
        .any(|n| n.contains(&ip) || n.contains(&canonical))
}

/// The client's address: the peer, unless the peer is a trusted proxy; then the right-most
/// address of `Forwarded` (or, without it, `X-Forwarded-For`) that is not a trusted proxy.
/// An entry that is not an address (`unknown`, an obfuscated name) stops the walk at the
/// last proxy that could be trusted, so a client cannot pick its own key.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let hops = forwarded_hops(headers);
    let mut last_trusted = peer;
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) if is_trusted(ip, trusted) => last_trusted = ip,
            Some(ip) => return ip,
            None => return last_trusted,
        }
    }
    last_trusted
}

/// The addresses the forwarding headers list, client first (every line, in order).
fn forwarded_hops(headers: &HeaderMap) -> Vec<String> {
    let forwarded: Vec<String> = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|element| {
            element
                .split(';')
                .find_map(|pair| {
                    let (name, value) = pair.trim().split_once('=')?;
                    name.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| value.trim().trim_matches('"').to_string())
                })
                .unwrap_or_default()
        })
        .collect();
    if !forwarded.is_empty() {
        return forwarded;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .collect()
}

/// One hop: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1` or `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = hop.parse::<std::net::SocketAddr>() {
        return Some(addr.ip());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, v.parse().unwrap());
            }
            h
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4")]);
        // An untrusted peer's headers are ignored.
        assert_eq!(
            client_address(ip("203.0.113.9"), &spoofed, &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &spoofed, &[]),
            ip("10.0.0.2")
        );
        // Through trusted proxies: the right-most untrusted address, whatever the client
        // wrote before it.
        let chain = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.7, 10.0.0.3")]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &chain, &trusted),
            ip("198.51.100.7")
        );
        let lines = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "198.51.100.8:5555"),
        ]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &lines, &trusted),
            ip("198.51.100.8")
        );
        // `Forwarded` wins over `X-Forwarded-For`, with quoted IPv6 and ports.
        let fwd = headers(&[
            (
                "forwarded",
                r#"for=1.2.3.4, for="[2001:db8:cafe::17]:4711";proto=https"#,
            ),
            ("x-forwarded-for", "198.51.100.9"),
        ]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &fwd, &trusted),
            ip("2001:db8:cafe::17")
        );
        // Something that is not an address stops at the last trusted hop.
        let odd = headers(&[("x-forwarded-for", "198.51.100.7, unknown")]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &odd, &trusted),
            ip("10.0.0.2")
        );
        // Only proxies: the farthest.
        let inner = headers(&[("x-forwarded-for", "10.1.1.1")]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &inner, &trusted),
            ip("10.1.1.1")
        );
        // Keys: IPv6 by /64, IPv4-mapped as IPv4, no peer as one shared key.
        assert_eq!(
            client_key(Some(ip("2001:db8:1:2:3:4:5:6")), &HeaderMap::new(), &[]),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            client_key(Some(ip("::ffff:198.51.100.7")), &HeaderMap::new(), &[]),
            "198.51.100.7"
        );
        assert_eq!(client_key(None, &spoofed, &trusted), "unknown");
    }

    #[test]
    fn per_minute_limits_refill_by_the_minute() {
        let limiter = RateLimiter::per_minute(6, 2);
        let t = Timestamp(1_000_000_000);
        assert!(limiter.check("a", t).allowed);
        assert!(limiter.check("a", t).allowed);
        let refused = limiter.check("a", t);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs, 10);
        assert!(limiter.check("a", Timestamp(t.0 + 10_000_000)).allowed);
    }

    #[test]
    fn allows_a_burst_then_refuses_until_time_passes() {
        let limiter = RateLimiter::new(2, 3);
        let t = Timestamp(1_000_000_000);
        let d: Vec<Decision> = (0..4).map(|_| limiter.check("k", t)).collect();
        assert_eq!(
            d.iter().map(|d| d.allowed).collect::<Vec<_>>(),
            vec![true, true, true, false]
        );
        assert_eq!(
            d.iter().map(|d| d.remaining).collect::<Vec<_>>(),
            vec![2, 1, 0, 0]
        );
        assert_eq!(d[3].retry_after_secs, 1);
        // Another key has its own bucket.
        assert!(limiter.check("other", t).allowed);
        // Half a second later one more request fits (2 per second).
        assert!(limiter.check("k", Timestamp(t.0 + 500_000)).allowed);
        assert!(!limiter.check("k", Timestamp(t.0 + 500_000)).allowed);
        // After the bucket refills, a full burst is available again.
        let later = Timestamp(t.0 + 10_000_000);
        assert_eq!(limiter.check("k", later).remaining, 2);
    }

    #[test]
    fn zero_rate_means_unlimited() {
        let limiter = RateLimiter::new(0, 1);
        assert!((0..1000).all(|_| limiter.check("k", Timestamp(0)).allowed));
    }
}
