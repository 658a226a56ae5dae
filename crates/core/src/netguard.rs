//! Which network addresses Ironbridge may call out to: only public ones, unless the operator
//! allow-lists a network or a host. One classification for every outgoing call: webhook
//! destinations (`engine::webhooks::guard`) and source systems' hosts (connections' base
//! URLs, checked when a connection is made and by the connectors' resolver at every connect).
//! Loopback, private, link-local (cloud metadata), CGNAT, multicast and reserved ranges are
//! internal, IPv4 inside IPv6 included.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use async_trait::async_trait;
pub use ipnet::IpNet;
pub use url::{Host, Url};

/// The operator's exceptions: networks and host names that may be reached although they are
/// not public (an on-premises SAP system, a local emulator).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// Networks allowed even though they are not public (`10.0.0.0/8`, `127.0.0.1/32`).
    pub allowed_networks: Vec<IpNet>,
    /// Host names allowed whatever they resolve to (`sap.internal.example`), lower case,
    /// without a trailing dot. The operator vouches for the name, so its addresses are not
    /// checked.
    pub allowed_hosts: Vec<String>,
}

impl NetworkPolicy {
    /// A policy allowing these entries: each a network (`10.0.0.0/8`), an address, or a host
    /// name.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut policy = NetworkPolicy::default();
        for entry in entries {
            let entry = entry.trim();
            if let Ok(net) = parse_network(entry) {
                policy.allowed_networks.push(net);
            } else if is_host_name(entry) {
                policy
                    .allowed_hosts
                    .push(entry.trim_end_matches('.').to_ascii_lowercase());
            } else {
                return Err(format!(
                    "{entry:?} is not a network (10.0.0.0/8), an address or a host name"
                ));
            }
        }
        Ok(policy)
    }

    /// Whether `ip` may be connected to.
    pub fn permits(&self, ip: IpAddr) -> bool {
        permits(&self.allowed_networks, ip)
    }

    /// Whether the operator allow-listed this host name.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        self.allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host))
    }
}

fn is_host_name(text: &str) -> bool {
    let text = text.trim_end_matches('.');
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        // A name of digits and dots only would be read as an address by URL parsers.
        && !text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// Whether `ip` is public or inside one of `allowed` (in its own notation or as the IPv4
/// address an IPv4-mapped IPv6 address carries).
pub fn permits(allowed: &[IpNet], ip: IpAddr) -> bool {
    let canonical = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    !is_internal(canonical)
        || allowed
            .iter()
            .any(|n| n.contains(&ip) || n.contains(&canonical))
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

/// The address of a URL whose host is an IP literal (decimal, octal and hex forms are
/// normalized by the WHATWG parser: `http://2130706433/` is `127.0.0.1`).
pub fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        Host::Domain(_) => None,
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

/// Where connectors may connect and how much may come back: the operator's policy, the
/// resolver names go through and the largest answer read. The default permits public
/// addresses only, through the system's resolver, and answers up to
/// [`DEFAULT_MAX_RESPONSE_BYTES`].
#[derive(Clone)]
pub struct Egress {
    /// What may be reached.
    pub policy: Arc<NetworkPolicy>,
    /// Name resolution (tests inject their own).
    pub resolver: Arc<dyn Resolver>,
    /// The largest answer a connector reads (a page of records, mostly): one beyond it is
    /// cut off and the call fails, naming the setting that makes pages smaller.
    pub max_response_bytes: usize,
    /// Certificate authorities (PEM) trusted besides the system's: an on-premises system
    /// whose certificate a company's own authority signed (`connections.ca_file`).
    pub extra_ca_pem: Option<Arc<str>>,
}

/// The answer cap unless the operator sets `connections.max_response_mb`.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 << 20;

impl Default for Egress {
    fn default() -> Self {
        Egress::new(NetworkPolicy::default())
    }
}

impl Egress {
    /// This policy, through the system's resolver.
    pub fn new(policy: NetworkPolicy) -> Self {
        Egress {
            policy: Arc::new(policy),
            resolver: Arc::new(SystemResolver),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            extra_ca_pem: None,
        }
    }

    /// The same, trusting these certificate authorities (PEM) as well.
    pub fn with_extra_ca_pem(mut self, pem: impl Into<Arc<str>>) -> Self {
        self.extra_ca_pem = Some(pem.into());
        self
    }

    /// The same, reading answers up to `bytes`.
    pub fn with_max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// The same policy, resolving through `resolver`.
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.resolver = resolver;
        self
    }

    /// Loopback allowed: the emulators of tests, the demo and the bench run on it.
    pub fn local() -> Self {
        Egress::new(NetworkPolicy {
            allowed_networks: vec![IpNet::from(IpAddr::from([127, 0, 0, 1]))],
            allowed_hosts: Vec::new(),
        })
    }
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Why a destination is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// It is (or resolves to) an address outside the policy.
    #[error("internal address")]
    Blocked,
    /// Its host name does not resolve.
    #[error("unresolvable host name")]
    Unresolvable,
}

/// Checks a URL's host now: an IP literal against the policy, an allow-listed name as is,
/// any other name by resolving it (every address must be permitted).
pub async fn check_host(
    url: &Url,
    policy: &NetworkPolicy,
    resolver: &dyn Resolver,
) -> Result<(), Refusal> {
    if let Some(ip) = literal_ip(url) {
        return if policy.permits(ip) {
            Ok(())
        } else {
            Err(Refusal::Blocked)
        };
    }
    let host = url.host_str().unwrap_or_default();
    if policy.allows_host(host) {
        return Ok(());
    }
    let addrs = resolver
        .lookup(host)
        .await
        .map_err(|_| Refusal::Unresolvable)?;
    if addrs.is_empty() {
        return Err(Refusal::Unresolvable);
    }
    if addrs.iter().all(|ip| policy.permits(*ip)) {
        Ok(())
    } else {
        Err(Refusal::Blocked)
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
        let policy = NetworkPolicy::default();
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
    fn allow_lists_take_networks_addresses_and_host_names() {
        let policy =
            NetworkPolicy::parse(["10.0.0.0/8", "127.0.0.1", "SAP.Internal.Example."]).unwrap();
        assert!(policy.permits(ip("10.9.3.4")));
        assert!(policy.permits(ip("::ffff:10.9.3.4")));
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(!policy.permits(ip("127.0.0.2")));
        assert!(!policy.permits(ip("169.254.169.254")));
        assert!(policy.allows_host("sap.internal.example"));
        assert!(policy.allows_host("sap.internal.example."));
        assert!(!policy.allows_host("other.internal.example"));
        for bad in ["10.0.0.0/33", "exa mple", "-bad.example", "", "1.2.3"] {
            assert!(NetworkPolicy::parse([bad]).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_network("127.0.0.1").unwrap().to_string(),
            "127.0.0.1/32"
        );
        assert_eq!(parse_network(" fd00::/8 ").unwrap().to_string(), "fd00::/8");
        assert!(parse_network("localhost").is_err());
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
    async fn hosts_are_checked_after_resolution_unless_allow_listed() {
        let check = |text: &'static str, addrs: Vec<IpAddr>, policy: NetworkPolicy| async move {
            let url = Url::parse(text).unwrap();
            check_host(&url, &policy, &Fixed(addrs)).await
        };
        let none = NetworkPolicy::default;
        assert_eq!(
            check(
                "https://erp.example.com/",
                vec![ip("93.184.216.34")],
                none()
            )
            .await,
            Ok(())
        );
        assert_eq!(
            check("https://erp.example.com/", vec![ip("10.0.0.5")], none()).await,
            Err(Refusal::Blocked)
        );
        assert_eq!(
            check(
                "https://erp.example.com/",
                vec![ip("93.184.216.34"), ip("127.0.0.1")],
                none()
            )
            .await,
            Err(Refusal::Blocked)
        );
        assert_eq!(
            check("https://nowhere.example.com/", vec![], none()).await,
            Err(Refusal::Unresolvable)
        );
        for literal in [
            "http://[::1]:8080/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0x7f.1/",
            "http://[::ffff:169.254.169.254]/",
        ] {
            assert_eq!(
                check(literal, vec![], none()).await,
                Err(Refusal::Blocked),
                "{literal}"
            );
        }
        let allowed = NetworkPolicy::parse(["sap.internal.example", "10.0.0.0/8"]).unwrap();
        assert_eq!(
            check("https://sap.internal.example/", vec![], allowed.clone()).await,
            Ok(())
        );
        assert_eq!(
            check("https://erp.example.com/", vec![ip("10.0.0.5")], allowed).await,
            Ok(())
        );
    }
}
