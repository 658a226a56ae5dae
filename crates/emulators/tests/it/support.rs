//! Helpers shared by the integration tests: starting emulators, the admin API, NetSuite credentials.

use std::time::{SystemTime, UNIX_EPOCH};

use ironbridge_emulators::{EmulatorConfig, RunningEmulator, System, start};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Client, Method, Response};
use serde_json::{Value, json};

pub async fn start_with(config: EmulatorConfig) -> RunningEmulator {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    start(config, listener).await.expect("start")
}

pub async fn netsuite(orders: u64) -> RunningEmulator {
    start_with(EmulatorConfig::new(System::NetSuite, 42, orders)).await
}

pub fn client() -> Client {
    Client::builder().build().expect("client")
}

pub async fn admin(
    emu: &RunningEmulator,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Response {
    let mut r = client().request(method, format!("{}/__emulator{path}", emu.base_url()));
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.expect("admin call")
}

pub async fn admin_json(
    emu: &RunningEmulator,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let r = admin(emu, method, path, body).await;
    assert!(r.status().is_success(), "admin {path}: {}", r.status());
    if r.status() == 204 {
        return Value::Null;
    }
    r.json().await.expect("admin json")
}

/// Emulator clock now, in epoch seconds.
pub async fn clock_secs(emu: &RunningEmulator) -> i64 {
    admin_json(emu, Method::GET, "/clock", None).await["now_ms"]
        .as_i64()
        .unwrap()
        / 1000
}

/// A key pair and self-signed certificate for M2M tests.
pub struct Cert {
    pub private_pem: String,
    pub cert_pem: String,
}

pub fn ec_cert() -> Cert {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["ironbridge-test".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    Cert {
        private_pem: key.serialize_pem(),
        cert_pem: cert.pem(),
    }
}

/// A P-521 key and certificate (NetSuite's "EC keys … 521 bits", signed as ES512).
pub fn p521_cert() -> Cert {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["ironbridge-test".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    Cert {
        private_pem: key.serialize_pem(),
        cert_pem: cert.pem(),
    }
}

/// An ES512 assertion (jsonwebtoken has no ES512: signed with aws-lc-rs, as a client would
/// with any JOSE library).
pub fn es512_assertion(cert: &Cert, kid: &str, claims: Value) -> String {
    use aws_lc_rs::signature::{ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let der = rcgen::KeyPair::from_pem(&cert.private_pem)
        .unwrap()
        .serialize_der();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P521_SHA512_FIXED_SIGNING, &der).unwrap();
    let header = json!({"typ": "JWT", "alg": "ES512", "kid": kid});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = key
        .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())
        .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

pub fn rsa_cert() -> Cert {
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    let cert = rcgen::CertificateParams::new(vec!["ironbridge-test".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    Cert {
        private_pem: key.serialize_pem(),
        cert_pem: cert.pem(),
    }
}

pub const CLIENT_ID: &str = "ironbridge-client-id";
pub const CERT_ID: &str = "cert-abc123";

pub async fn register(emu: &RunningEmulator, cert: &Cert, cert_id: &str) {
    let r = admin(
        emu,
        Method::POST,
        "/netsuite/m2m-clients",
        Some(json!({"client_id": CLIENT_ID, "certificate_id": cert_id, "certificate_pem": cert.cert_pem})),
    )
    .await;
    assert_eq!(r.status(), 204);
}

pub fn token_url(emu: &RunningEmulator) -> String {
    format!("{}/services/rest/auth/oauth2/v1/token", emu.base_url())
}

pub fn assertion(cert: &Cert, alg: Algorithm, kid: &str, claims: Value) -> String {
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    let key = match alg {
        Algorithm::ES256 | Algorithm::ES384 => {
            EncodingKey::from_ec_pem(cert.private_pem.as_bytes()).unwrap()
        }
        _ => EncodingKey::from_rsa_pem(cert.private_pem.as_bytes()).unwrap(),
    };
    jsonwebtoken::encode(&h, &claims, &key).unwrap()
}

pub fn claims(emu: &RunningEmulator, now: i64) -> Value {
    json!({"iss": CLIENT_ID, "scope": ["restlets", "rest_webservices"], "aud": token_url(emu), "iat": now, "exp": now + 3600})
}

pub async fn post_token(emu: &RunningEmulator, jwt: &str) -> Response {
    client()
        .post(token_url(emu))
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", jwt),
        ])
        .send()
        .await
        .unwrap()
}

/// Registers an EC certificate and returns a fresh access token.
pub async fn ns_token(emu: &RunningEmulator) -> String {
    let cert = ec_cert();
    register(emu, &cert, CERT_ID).await;
    let now = clock_secs(emu).await;
    let jwt = assertion(&cert, Algorithm::ES256, CERT_ID, claims(emu, now));
    let r = post_token(emu, &jwt).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// Wall-clock seconds (only for OAuth 1.0a timestamps, which the emulator does not judge).
pub fn wall_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub struct Ns {
    pub emu: RunningEmulator,
    pub token: String,
    pub http: Client,
    cert: Cert,
}

impl Ns {
    pub async fn new(orders: u64) -> Self {
        let emu = netsuite(orders).await;
        let cert = ec_cert();
        register(&emu, &cert, CERT_ID).await;
        let mut ns = Ns {
            emu,
            token: String::new(),
            http: client(),
            cert,
        };
        ns.login().await;
        ns
    }

    /// Fetches a fresh access token (after moving the clock past the old one's hour).
    pub async fn login(&mut self) {
        let now = clock_secs(&self.emu).await;
        let jwt = assertion(
            &self.cert,
            Algorithm::ES256,
            CERT_ID,
            claims(&self.emu, now),
        );
        let r = post_token(&self.emu, &jwt).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        self.token = v["access_token"].as_str().unwrap().to_string();
    }

    /// Changes the emulator's switches (a JSON merge patch of its settings).
    pub async fn settings(&self, patch: Value) {
        admin_json(&self.emu, Method::PATCH, "/settings", Some(patch)).await;
    }

    /// Moves the emulator clock (admin API) and logs in again, as a client would once its token expired.
    pub async fn clock(&mut self, change: Value) {
        admin_json(&self.emu, Method::POST, "/clock", Some(change)).await;
        self.login().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/services/rest{path}", self.emu.base_url())
    }

    pub async fn get(&self, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    pub async fn send(&self, method: Method, path: &str, body: Value) -> Response {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// `n` GETs in flight at once.
    pub async fn concurrent_gets(&self, path: &str, n: usize) -> Vec<Response> {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (http, url, token) = (self.http.clone(), self.url(path), self.token.clone());
                tokio::spawn(async move { http.get(url).bearer_auth(token).send().await.unwrap() })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    }

    pub async fn suiteql(&self, q: &str, limit: usize, offset: usize) -> Response {
        self.http
            .post(self.url(&format!("/query/v1/suiteql?limit={limit}&offset={offset}")))
            .bearer_auth(&self.token)
            .header("Prefer", "transient")
            .json(&json!({ "q": q }))
            .send()
            .await
            .unwrap()
    }
}

/// First `o:errorDetails` entry's code.
pub fn ns_code(v: &Value) -> &str {
    v["o:errorDetails"][0]["o:errorCode"].as_str().unwrap_or("")
}
