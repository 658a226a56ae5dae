//! HTTPS for the emulators: a local certificate authority generated at start, and the server
//! identity it signs for the loopback names, so clients that insist on `https` (MSAL refuses
//! an `http` authority) run unmodified once they trust the authority's certificate.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types};

/// A certificate authority of this process and a server certificate it signed for
/// `localhost`, `127.0.0.1` and `::1` (plus any extra host names).
#[derive(Clone)]
pub struct LocalTls {
    ca_pem: Arc<str>,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for LocalTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTls").finish_non_exhaustive()
    }
}

impl LocalTls {
    /// A new authority and server identity (ECDSA P-256; a few milliseconds).
    pub fn generate(extra_hosts: &[String]) -> anyhow::Result<Self> {
        let mut ca_params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Ironbridge emulators local CA");
        dn.push(DnType::OrganizationName, "Ironbridge emulators");
        ca_params.distinguished_name = dn;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let (ips, mut names): (Vec<&String>, Vec<&String>) = extra_hosts
            .iter()
            .partition(|h| h.parse::<std::net::IpAddr>().is_ok());
        let localhost = "localhost".to_string();
        if !names.contains(&&localhost) {
            names.push(&localhost);
        }
        let mut leaf = CertificateParams::new(names.into_iter().cloned().collect::<Vec<_>>())?;
        let mut addresses = vec![
            std::net::IpAddr::from([127, 0, 0, 1]),
            std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ];
        addresses.extend(
            ips.iter()
                .filter_map(|h| h.parse::<std::net::IpAddr>().ok()),
        );
        addresses.dedup();
        for ip in addresses {
            if !leaf.subject_alt_names.contains(&SanType::IpAddress(ip)) {
                leaf.subject_alt_names.push(SanType::IpAddress(ip));
            }
        }
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "localhost");
        leaf.distinguished_name = dn;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate()?;
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

        let key = pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der())
            .map_err(|e| anyhow::anyhow!("server key: {e}"))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![leaf_cert.der().clone(), ca_cert.der().clone()], key)?;
        // HTTP/1.1 only, as the emulators' server speaks.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(LocalTls {
            ca_pem: ca_cert.pem().into(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The authority's certificate (PEM), for clients to trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}
