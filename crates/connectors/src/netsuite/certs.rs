//! Certificates for NetSuite's OAuth 2.0 machine-to-machine grant (option A): Ironbridge makes
//! the key pair, keeps the private key, and the customer uploads the public certificate to
//! NetSuite (Setup > Integration > OAuth 2.0 Client Credentials (M2M) Setup).

use ironbridge_core::connector::ConnectorError;
use ironbridge_model::Timestamp;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_RSA_SHA256, RsaKeySize};

/// NetSuite accepts at most two years of validity (a longer one is silently shortened); we
/// stay a day under so clock skew never pushes us over.
pub const VALIDITY_DAYS: i64 = 729;

/// A generated key pair and self-signed certificate.
#[derive(Clone)]
pub struct GeneratedCertificate {
    /// PKCS#8 private key PEM: a secret, stored encrypted as the connection's `private_key_pem`.
    pub private_key_pem: String,
    /// The X.509 certificate PEM the customer uploads to NetSuite (public).
    pub certificate_pem: String,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
}

impl std::fmt::Debug for GeneratedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedCertificate")
            .field("private_key_pem", &"<redacted>")
            .field("certificate_pem", &self.certificate_pem)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish()
    }
}

fn offset_datetime(t: Timestamp) -> Result<time::OffsetDateTime, ConnectorError> {
    time::OffsetDateTime::from_unix_timestamp(t.micros().div_euclid(1_000_000)).map_err(|_| {
        ConnectorError::InvalidSettings {
            param: "now".into(),
            message: "time out of range".into(),
        }
    })
}

/// Generates an RSA-3072 key and a self-signed certificate (SHA-256) for `common_name`, valid
/// from `now` (whole seconds) for [`VALIDITY_DAYS`] days.
pub fn generate_certificate(
    common_name: &str,
    now: Timestamp,
) -> Result<GeneratedCertificate, ConnectorError> {
    let failed =
        |what: &str| ConnectorError::Upstream(format!("certificate generation failed: {what}"));
    if common_name.trim().is_empty() || common_name.chars().count() > 64 {
        return Err(ConnectorError::InvalidSettings {
            param: "common_name".into(),
            message: "the common name must have 1 to 64 characters".into(),
        });
    }
    let not_before = Timestamp::from_secs(now.micros().div_euclid(1_000_000));
    let not_after = not_before.plus_secs(VALIDITY_DAYS * 86_400);
    let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_3072)
        .map_err(|_| failed("key generation"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name.trim());
    dn.push(DnType::OrganizationName, "Ironbridge");
    params.distinguished_name = dn;
    params.not_before = offset_datetime(not_before)?;
    params.not_after = offset_datetime(not_after)?;
    let cert = params
        .self_signed(&key)
        .map_err(|_| failed("self-signing"))?;
    Ok(GeneratedCertificate {
        private_key_pem: key.serialize_pem(),
        certificate_pem: cert.pem(),
        not_before,
        not_after,
    })
}
