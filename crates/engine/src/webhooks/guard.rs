//! Where webhooks may go: only `http(s)` URLs whose addresses are public. Loopback, private,
//! link-local (cloud metadata), CGNAT, multicast and reserved ranges are refused, IPv4 inside
//! IPv6 included, unless the operator allow-lists a network. Names are checked when an
//! endpoint is saved and again at connect time by the resolver the sender connects through,
//! so a name that later resolves to an internal address (DNS rebinding) is still refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use ipnet::IpNet;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Longest URL accepted.
const MAX_URL_LEN: usize = 2048;

/// The operator's rules for webhook destinations.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// Networks allowed even though they are not public (e.g. `127.0.0.1/32` for a local
    /// receiver, or an on-premises subnet).
    pub allowed_networks: Vec<IpNet>,
    /// Refuse `http://` URLs.
    pub https_only: bool,
}

impl AddressPolicy {
    /// Whether a webhook may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let canonical = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        !is_internal(canonical)
            || self
                .allowed_networks
                .iter()
                .any(|n| n.contains(&ip) || n.contains(&canonical))
    }
}

/// Parses an allow-listed network: CIDR (`10.0.0.0/8`, `fd00::/8`) or one address.
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not a network like 10.0.0.0/8 or an address"))
}

/// Whether an address is anything but a public unicast one.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_internal(v4),
        IpAddr::V6(v6) => v6_internal(v6),
    }
}

fn v4_internal(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16: cloud metadata services live here
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (b & 0xc0) == 64) // 100.64/10 carrier-grade NAT (and Alibaba's metadata)
        || (a == 192 && b == 0 && c == 0) // 192.0.0/24 protocol assignments
        || (a == 198 && (b & 0xfe) == 18) // 198.18/15 benchmarking
        || a >= 240 // reserved
}

fn v6_internal(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_internal(v4);
    }
    let s = ip.segments();
    let embedded_v4 =
        |hi: u16, lo: u16| v4_internal(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || s[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated)
        || (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local (AWS metadata is fd00:ec2::254)
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] == 0) // Teredo tunnels reach arbitrary IPv4
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only
        || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64
        || (s[0] == 0x0064 && s[1] == 0xff9b && embedded_v4(s[6], s[7])) // NAT64 of an internal IPv4
        || (s[0] == 0x2002 && embedded_v4(s[1], s[2])) // 6to4 of an internal IPv4
}

/// Why a URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    /// Not a usable URL; the message says why.
    #[error("{0}")]
    Invalid(String),
    /// It points at an address webhooks may not reach.
    #[error(
        "the URL's host is a loopback, private, link-local or otherwise non-public address, which webhooks may not reach (an operator can allow a network with `webhooks.allowed_networks`)"
    )]
    Blocked,
    /// Its host name does not resolve.
    #[error("the URL's host name could not be resolved; check it and try again")]
    Unresolvable,
}

/// Checks a URL's form: absolute `http(s)`, a host, no credentials, a sane length.
pub fn parse_url(text: &str, policy: &AddressPolicy) -> Result<Url, UrlRefusal> {
    if text.len() > MAX_URL_LEN {
        return Err(UrlRefusal::Invalid(format!(
            "the URL must be at most {MAX_URL_LEN} characters"
        )));
    }
    let url = Url::parse(text)
        .map_err(|_| UrlRefusal::Invalid("the URL is not a valid absolute URL".into()))?;
    match url.scheme() {
        "https" => {}
        "http" if !policy.https_only => {}
        "http" => return Err(UrlRefusal::Invalid("the URL must use https".into())),
        _ => {
            return Err(UrlRefusal::Invalid("the URL must use http or https".into()));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefusal::Invalid(
            "the URL may not carry credentials; receivers authenticate deliveries by their signature".into(),
        ));
    }
    if url.host().is_none() {
        return Err(UrlRefusal::Invalid("the URL has no host".into()));
    }
    Ok(url)
}

/// The address of a URL whose host is an IP literal (decimal and hex forms are normalized
/// by the URL parser: `http://2130706433/` is `127.0.0.1`).
pub fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// Name resolution, injectable so tests can play DNS (rebinding included).
#[async_trait]
pub trait Resolver: Send + Sync + 'static {
    /// The addresses of a host name.
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait]
impl Resolver for SystemResolver {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, 0))
            .await?
            .map(|a| a.ip())
            .collect())
    }
}

/// Checks a parsed URL's destination now: an IP literal against the policy, a name by
/// resolving it (every address must be permitted).
pub async fn check_destination(
    url: &Url,
    policy: &AddressPolicy,
    resolver: &dyn Resolver,
) -> Result<(), UrlRefusal> {
    if let Some(ip) = literal_ip(url) {
        return if policy.permits(ip) {
            Ok(())
        } else {
            Err(UrlRefusal::Blocked)
        };
    }
    let host = url.host_str().unwrap_or_default();
    let addrs = resolver
        .lookup(host)
        .await
        .map_err(|_| UrlRefusal::Unresolvable)?;
    if addrs.is_empty() {
        return Err(UrlRefusal::Unresolvable);
    }
    if addrs.iter().all(|ip| policy.permits(*ip)) {
        Ok(())
    } else {
        Err(UrlRefusal::Blocked)
    }
}

/// The error a connection attempt fails with when every address of a name is refused.
#[derive(Debug, thiserror::Error)]
#[error("requests to this address range are blocked")]
pub struct BlockedAddress;

/// The resolver the sender's HTTP client connects through: it resolves at connect time and
/// keeps only permitted addresses, so the address checked is the address connected to.
pub(crate) struct GuardedResolver {
    pub(crate) inner: Arc<dyn Resolver>,
    pub(crate) policy: Arc<AddressPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let inner = self.inner.clone();
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let ips = inner.lookup(&host).await?;
            let permitted: Vec<SocketAddr> = ips
                .into_iter()
                .filter(|ip| policy.permits(*ip))
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if permitted.is_empty() {
                return Err(Box::new(BlockedAddress) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_ranges_are_refused_and_public_ones_permitted() {
        let policy = AddressPolicy::default();
        for blocked in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.100.100.200",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "240.0.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:a00:1::",
            "100::1",
        ] {
            assert!(!policy.permits(ip(blocked)), "{blocked} must be refused");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::",
        ] {
            assert!(policy.permits(ip(public)), "{public} must be permitted");
        }
    }

    #[test]
    fn allow_listed_networks_are_permitted_in_both_notations() {
        let policy = AddressPolicy {
            allowed_networks: vec![
                "127.0.0.1/32".parse().unwrap(),
                "10.9.0.0/16".parse().unwrap(),
            ],
            https_only: false,
        };
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(policy.permits(ip("::ffff:127.0.0.1")));
        assert!(policy.permits(ip("10.9.3.4")));
        assert!(!policy.permits(ip("127.0.0.2")));
        assert!(!policy.permits(ip("10.8.0.1")));
        assert!(!policy.permits(ip("169.254.169.254")));
        assert_eq!(
            parse_network("127.0.0.1").unwrap().to_string(),
            "127.0.0.1/32"
        );
        assert_eq!(parse_network(" fd00::/8 ").unwrap().to_string(), "fd00::/8");
        assert!(parse_network("localhost").is_err());
    }

    #[test]
    fn urls_are_parsed_strictly_and_odd_ip_forms_normalized() {
        let policy = AddressPolicy::default();
        let url = |s: &str| parse_url(s, &policy);
        assert!(url("https://example.com/hook").is_ok());
        assert!(url("http://example.com:8080/hook?x=1").is_ok());
        for bad in [
            "ftp://example.com/",
            "example.com/hook",
            "https://user:pw@example.com/",
            "file:///etc/passwd",
            "mailto:a@b.c",
        ] {
            assert!(matches!(url(bad), Err(UrlRefusal::Invalid(_))), "{bad}");
        }
        assert!(url(&format!("https://example.com/{}", "a".repeat(2100))).is_err());
        let strict = AddressPolicy {
            https_only: true,
            ..AddressPolicy::default()
        };
        assert!(parse_url("http://example.com/", &strict).is_err());
        for (text, expected) in [
            ("http://2130706433/", "127.0.0.1"),
            ("http://0x7f.1/", "127.0.0.1"),
            ("http://017700000001/", "127.0.0.1"),
            ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1"),
            (
                "http://169.254.169.254/latest/meta-data/",
                "169.254.169.254",
            ),
        ] {
            let parsed = url(text).unwrap();
            assert_eq!(literal_ip(&parsed), Some(ip(expected)), "{text}");
            assert!(!policy.permits(ip(expected)));
        }
    }

    struct Fixed(Vec<IpAddr>);

    #[async_trait]
    impl Resolver for Fixed {
        async fn lookup(&self, _host: &str) -> std::io::Result<Vec<IpAddr>> {
            if self.0.is_empty() {
                Err(std::io::Error::other("no such host"))
            } else {
                Ok(self.0.clone())
            }
        }
    }

    #[tokio::test]
    async fn destinations_are_checked_after_resolution() {
        let policy = AddressPolicy::default();
        let check = |text: &'static str, addrs: Vec<IpAddr>| {
            let policy = policy.clone();
            async move {
                let url = parse_url(text, &policy).unwrap();
                check_destination(&url, &policy, &Fixed(addrs)).await
            }
        };
        assert_eq!(
            check("https://hooks.example.com/", vec![ip("93.184.216.34")]).await,
            Ok(())
        );
        assert_eq!(
            check("https://internal.example.com/", vec![ip("10.0.0.5")]).await,
            Err(UrlRefusal::Blocked)
        );
        assert_eq!(
            check(
                "https://mixed.example.com/",
                vec![ip("93.184.216.34"), ip("127.0.0.1")]
            )
            .await,
            Err(UrlRefusal::Blocked)
        );
        assert_eq!(
            check("https://nowhere.example.com/", vec![]).await,
            Err(UrlRefusal::Unresolvable)
        );
        assert_eq!(
            check("http://[::1]:8080/", vec![]).await,
            Err(UrlRefusal::Blocked)
        );
        assert_eq!(
            check("http://2130706433/", vec![]).await,
            Err(UrlRefusal::Blocked)
        );
    }
}
