//! Where webhooks may go: only `http(s)` URLs whose addresses are public. Loopback, private,
//! link-local (cloud metadata), CGNAT, multicast and reserved ranges are refused, IPv4 inside
//! IPv6 included, unless the operator allow-lists a network. Names are checked when an
//! endpoint is saved and again at connect time by the resolver the sender connects through,
//! so a name that later resolves to an internal address (DNS rebinding) is still refused.

use std::net::IpAddr;

use ironbridge_core::netguard::{self, IpNet, NetworkPolicy, Refusal};
use reqwest::Url;

pub use ironbridge_connectors::guard::BlockedAddress;
pub use ironbridge_core::netguard::{
    Resolver, SystemResolver, is_internal, literal_ip, parse_network,
};

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
    /// Whether a webhook may connect to `ip` (the classification all outgoing calls share,
    /// `core::netguard`).
    pub fn permits(&self, ip: IpAddr) -> bool {
        netguard::permits(&self.allowed_networks, ip)
    }

    /// The same rules, as the network policy the guarded resolver enforces.
    pub fn network(&self) -> NetworkPolicy {
        NetworkPolicy {
            allowed_networks: self.allowed_networks.clone(),
            allowed_hosts: Vec::new(),
        }
    }
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

/// Checks a parsed URL's destination now: an IP literal against the policy, a name by
/// resolving it (every address must be permitted).
pub async fn check_destination(
    url: &Url,
    policy: &AddressPolicy,
    resolver: &dyn Resolver,
) -> Result<(), UrlRefusal> {
    netguard::check_host(url, &policy.network(), resolver)
        .await
        .map_err(|e| match e {
            Refusal::Blocked => UrlRefusal::Blocked,
            Refusal::Unresolvable => UrlRefusal::Unresolvable,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn webhooks_share_the_address_classification() {
        // The ranges themselves are tested in `core::netguard`; this checks the webhook
        // policy applies them.
        let policy = AddressPolicy::default();
        for blocked in [
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!policy.permits(ip(blocked)), "{blocked} must be refused");
        }
        for public in ["93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8"] {
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
