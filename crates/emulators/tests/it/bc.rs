//! Business Central emulator: golden shapes, Entra tokens (secret and certificate) and errors, paging
//! with `Prefer: odata.maxpagesize`, `$filter` boundaries, ETag writes, deep insert, limits.

use ironbridge_emulators::{EmulatorConfig, RunningEmulator, System};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, RequestBuilder, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::support::*;

const TENANT: &str = "7e3c1b2a-4d5f-4a6b-9c8d-0e1f2a3b4c5d";
const CLIENT: &str = "3f2a9c4e-1b7d-4e8a-9f6c-5d4e3b2a1c0f";
const SECRET: &str = "emulator~client~secret";
const SCOPE: &str = "https://api.businesscentral.dynamics.com/.default";

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct Po {
    #[serde(rename = "@odata.etag")]
    etag: String,
    id: String,
    number: String,
    order_date: String,
    vendor_number: String,
    vendor_name: String,
    currency_code: String,
    status: String,
    total_amount_including_tax: f64,
    last_modified_date_time: String,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Page<T> {
    #[serde(rename = "@odata.context")]
    context: String,
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct Company {
    id: String,
    system_version: String,
    name: String,
    display_name: String,
    business_profile_id: String,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct EntraError {
    error: String,
    error_description: String,
    error_codes: Vec<u32>,
    timestamp: String,
    trace_id: String,
    correlation_id: String,
    error_uri: String,
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/it/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

struct Bc {
    emu: RunningEmulator,
    http: reqwest::Client,
    token: String,
    company: String,
}

impl Bc {
    async fn new(orders: u64) -> Self {
        let emu = start_with(EmulatorConfig::new(System::BusinessCentral, 42, orders)).await;
        let mut bc = Bc {
            emu,
            http: client(),
            token: String::new(),
            company: String::new(),
        };
        bc.login().await;
        let c: Value = bc.get("/companies").await.json().await.unwrap();
        bc.company = c["value"][0]["id"].as_str().unwrap().to_string();
        bc
    }

    async fn login(&mut self) {
        let r = self
            .token_with(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("client_secret", SECRET),
                ("scope", SCOPE),
            ])
            .await;
        assert_eq!(r.status(), 200);
        self.token = r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string();
    }

    async fn token_with(&self, form: &[(&str, &str)]) -> Response {
        self.http
            .post(format!(
                "{}/{TENANT}/oauth2/v2.0/token",
                self.emu.base_url()
            ))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/v2.0/{TENANT}/production/api/v2.0{path}",
            self.emu.base_url()
        )
    }

    fn co(&self, path: &str) -> String {
        format!("/companies({}){path}", self.company)
    }

    fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    async fn get(&self, path: &str) -> Response {
        self.req(Method::GET, path).send().await.unwrap()
    }

    async fn json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }
}

/// (form, status, `error`, AADSTS code)
type Case<'a> = (&'a [(&'a str, &'a str)], u16, &'a str, u32);

fn bc_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn golden_payloads_and_emulator_output_share_shapes() {
    let g: Page<Po> = serde_json::from_str(&fixture("bc_purchase_orders.json")).unwrap();
    assert_eq!(g.value[0].status, "Open");
    let _: Page<Company> = serde_json::from_str(&fixture("bc_companies.json")).unwrap();
    let _: EntraError = serde_json::from_str(&fixture("entra_error.json")).unwrap();
    let bc = Bc::new(12).await;
    let c: Page<Company> = bc.get("/companies").await.json().await.unwrap();
    assert_eq!(c.value[0].name, "CRONUS USA, Inc.");
    let p: Page<Po> = bc
        .get(&bc.co("/purchaseOrders?$top=3"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(p.value.len(), 3);
    assert!(p.context.ends_with(&format!(
        "$metadata#companies({})/purchaseOrders",
        bc.company
    )));
    let po = &p.value[0];
    assert!(po.etag.starts_with("W/\"") && po.last_modified_date_time.ends_with('Z'));
    assert_eq!(po.last_modified_date_time.len(), 24, "milliseconds");
    assert!(["Draft", "In_x0020_Review", "Open"].contains(&po.status.as_str()));
    let r = bc
        .token_with(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("client_secret", "wrong"),
            ("scope", SCOPE),
        ])
        .await;
    assert_eq!(r.status(), 401);
    let e: EntraError = r.json().await.unwrap();
    assert_eq!(
        (e.error.as_str(), e.error_codes[0]),
        ("invalid_client", 7000215)
    );
    assert!(
        e.error_description.starts_with("AADSTS7000215: ")
            && e.error_description.contains("\r\nTrace ID: ")
    );
    bc.emu.shutdown().await;
}

#[tokio::test]
async fn entra_token_errors_and_certificate_credentials() {
    let bc = Bc::new(10).await;
    let cases: [Case<'_>; 5] = [
        (
            &[
                ("client_id", CLIENT),
                ("client_secret", SECRET),
                ("scope", SCOPE),
            ],
            400,
            "invalid_request",
            900144,
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "someone"),
                ("client_secret", SECRET),
                ("scope", SCOPE),
            ],
            400,
            "unauthorized_client",
            700016,
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("client_secret", SECRET),
                ("scope", "https://graph.microsoft.com/User.Read"),
            ],
            400,
            "invalid_scope",
            1002012,
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("scope", SCOPE),
            ],
            401,
            "invalid_client",
            7000218,
        ),
        (
            &[
                ("grant_type", "password"),
                ("client_id", CLIENT),
                ("scope", SCOPE),
            ],
            400,
            "unsupported_grant_type",
            70003,
        ),
    ];
    for (form, status, error, code) in cases {
        let r = bc.token_with(form).await;
        assert_eq!(r.status().as_u16(), status, "{error}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            (v["error"].as_str(), v["error_codes"][0].as_u64()),
            (Some(error), Some(code as u64))
        );
    }
    let r = bc
        .http
        .post(format!(
            "{}/00000000-0000-0000-0000-000000000001/oauth2/v2.0/token",
            bc.emu.base_url()
        ))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["error_codes"][0], 90002);
    let log = admin_json(&bc.emu, Method::GET, "/requests", None).await;
    assert!(
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == format!("/{TENANT}/oauth2/v2.0/token") && e["status"] == 400),
        "token calls are logged"
    );
    let disc = bc
        .http
        .get(format!(
            "{}/{TENANT}/v2.0/.well-known/openid-configuration",
            bc.emu.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        disc["token_endpoint"],
        format!("{}/{TENANT}/oauth2/v2.0/token", bc.emu.base_url())
    );

    // Certificate credential (RS256 client assertion).
    let rsa = rsa_cert();
    admin_json(
        &bc.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"certificate_pem": rsa.cert_pem})),
    )
    .await;
    let now = clock_secs(&bc.emu).await;
    let aud = format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token");
    let sign = |claims: Value| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &claims,
            &EncodingKey::from_rsa_pem(rsa.private_pem.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let good = sign(
        json!({"aud": aud, "iss": CLIENT, "sub": CLIENT, "jti": "1", "nbf": now, "exp": now + 600}),
    );
    let assertion_form = |jwt: &str| {
        vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", CLIENT.to_string()),
            ("scope", SCOPE.to_string()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string(),
            ),
            ("client_assertion", jwt.to_string()),
        ]
    };
    let url = format!("{}/{TENANT}/oauth2/v2.0/token", bc.emu.base_url());
    let r = bc
        .http
        .post(&url)
        .form(&assertion_form(&good))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (
            v["token_type"].as_str(),
            v["expires_in"].as_i64(),
            v["ext_expires_in"].as_i64()
        ),
        (Some("Bearer"), Some(3599), Some(3599))
    );
    let expired = sign(
        json!({"aud": aud, "iss": CLIENT, "sub": CLIENT, "jti": "2", "nbf": now - 900, "exp": now - 300}),
    );
    assert_eq!(
        bc.http
            .post(&url)
            .form(&assertion_form(&expired))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let code_of = |r: Value| r["error_codes"][0].as_u64();
    let r = bc
        .http
        .post(&url)
        .form(&assertion_form(&expired))
        .send()
        .await
        .unwrap();
    assert_eq!(code_of(r.json().await.unwrap()), Some(700024));

    // As MSAL Python writes them: `exp`/`iat` from `time.time()` (floats), the certificate
    // named by its SHA-1 thumbprint (`x5t`, RS256) or SHA-256 one (`x5t#S256`, PS256).
    let der = {
        use base64::Engine;
        let body: String = rsa
            .cert_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    };
    let b64 = |d: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d)
    };
    let sha1 =
        b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &der).as_ref());
    let sha256 = b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der).as_ref());
    let float_claims = json!({"aud": aud, "iss": CLIENT, "sub": CLIENT, "jti": "3",
        "iat": now as f64 + 0.25, "exp": now as f64 + 600.75});
    let signed_with = |alg: Algorithm, x5t: Option<&str>, x5t_s256: Option<&str>| {
        let mut h = Header::new(alg);
        h.x5t = x5t.map(str::to_string);
        h.x5t_s256 = x5t_s256.map(str::to_string);
        jsonwebtoken::encode(
            &h,
            &float_claims,
            &EncodingKey::from_rsa_pem(rsa.private_pem.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    for jwt in [
        signed_with(Algorithm::RS256, Some(&sha1), None),
        signed_with(Algorithm::PS256, None, Some(&sha256)),
    ] {
        let r = bc
            .http
            .post(&url)
            .form(&assertion_form(&jwt))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    }
    // A thumbprint of another certificate: the key is not registered on the app.
    let other = b64(&[7u8; 20]);
    let r = bc
        .http
        .post(&url)
        .form(&assertion_form(&signed_with(
            Algorithm::RS256,
            Some(&other),
            None,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["error"].as_str(), code_of(v.clone())),
        (Some("invalid_client"), Some(700027))
    );
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("0707070707"),
        "{v}"
    );

    // Instance discovery, as MSAL asks it of a known host.
    let d: Value = bc
        .http
        .get(format!(
            "{0}/common/discovery/instance?api-version=1.0&authorization_endpoint={0}/{TENANT}/oauth2/v2.0/authorize",
            bc.emu.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        d["tenant_discovery_endpoint"],
        format!(
            "{}/{TENANT}/v2.0/.well-known/openid-configuration",
            bc.emu.base_url()
        )
    );

    let wrong_aud =
        sign(json!({"aud": "https://elsewhere", "iss": CLIENT, "sub": CLIENT, "exp": now + 600}));
    assert_eq!(
        bc.http
            .post(&url)
            .form(&assertion_form(&wrong_aud))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    bc.emu.shutdown().await;
}

#[tokio::test]
async fn api_auth_failures_and_expiry() {
    let mut bc = Bc::new(10).await;
    let r = bc.http.get(bc.url("/companies")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(bc_code(&v), "Authentication_InvalidCredentials");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("CorrelationId:")
    );
    admin_json(
        &bc.emu,
        Method::POST,
        "/clock",
        Some(json!({"advance_seconds": 3599})),
    )
    .await;
    assert_eq!(
        bc.get("/companies").await.status(),
        401,
        "tokens last 3599 s"
    );
    bc.login().await;
    assert_eq!(bc.get("/companies").await.status(), 200);
    let creds = admin_json(&bc.emu, Method::POST, "/credentials/rotate", None).await;
    assert_eq!(bc.get("/companies").await.status(), 401);
    let r = bc
        .token_with(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("scope", SCOPE),
        ])
        .await;
    assert_eq!(r.status(), 401, "the old secret is dead");
    let secret = creds["client_secret"].as_str().unwrap().to_string();
    let r = bc
        .token_with(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("client_secret", &secret),
            ("scope", SCOPE),
        ])
        .await;
    assert_eq!(r.status(), 200);
    // The tenant-less URL form works too; unknown environments and companies do not.
    bc.token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = bc
        .http
        .get(format!(
            "{}/v2.0/production/api/v2.0/companies",
            bc.emu.base_url()
        ))
        .bearer_auth(&bc.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = bc
        .http
        .get(format!(
            "{}/v2.0/sandbox/api/v2.0/companies",
            bc.emu.base_url()
        ))
        .bearer_auth(&bc.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = bc
        .get("/companies(00000000-0000-0000-0000-000000000009)/purchaseOrders")
        .await;
    assert_eq!(
        bc_code(&r.json::<Value>().await.unwrap()),
        "Internal_CompanyNotFound"
    );
    bc.emu.shutdown().await;
}

#[tokio::test]
async fn server_driven_paging_with_maxpagesize() {
    let bc = Bc::new(25).await;
    let mut url = bc.url(&bc.co("/purchaseOrders?$count=true"));
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let r = bc
            .http
            .get(&url)
            .bearer_auth(&bc.token)
            .header("Prefer", "odata.maxpagesize=10")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["preference-applied"], "odata.maxpagesize=10");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["@odata.count"], 25);
        seen.extend(
            v["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["number"].as_str().unwrap().to_string()),
        );
        pages += 1;
        match v["@odata.nextLink"].as_str() {
            Some(n) => url = n.to_string(),
            None => break,
        }
    }
    assert_eq!((pages, seen.len()), (3, 25));
    assert_eq!(seen[0], "106001");
    let v = bc.json(&bc.co("/purchaseOrders")).await;
    assert_eq!(v["value"].as_array().unwrap().len(), 25);
    assert!(v.get("@odata.nextLink").is_none(), "under 20,000: one page");
    let v = bc.json(&bc.co("/purchaseOrders?$top=5&$skip=22")).await;
    assert_eq!(v["value"].as_array().unwrap().len(), 3);
    let v = bc.json(&bc.co("/purchaseOrders?$top=5&$skip=30")).await;
    assert_eq!(v["value"].as_array().unwrap().len(), 0);
    let r = bc.get(&bc.co("/purchaseOrders?$skiptoken=garbage")).await;
    assert_eq!(r.status(), 400);

    // The next link has the shape of one recorded from a tenant (golden fixture): the query
    // kept, then `aid=FIN`, then `$skiptoken` = the last record's id; `$top` carries what is
    // left of it and `$skip` is consumed by the bookmark.
    let recorded: Value =
        serde_json::from_str(&fixture("bc_customers_next_link_page.json")).unwrap();
    let shape = |page: &Value| {
        let link = page["@odata.nextLink"].as_str().unwrap().to_string();
        let last = page["value"].as_array().unwrap().last().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let (path, query) = link.split_once('?').unwrap();
        let tail = path.rsplit_once("/api/v2.0/").unwrap().1.to_string();
        let params: Vec<String> = query.split('&').map(str::to_string).collect();
        (tail, params, last)
    };
    let (tail, params, last) = shape(&recorded);
    assert!(
        tail.starts_with("companies(") && tail.ends_with(")/customers"),
        "{tail}"
    );
    assert_eq!(
        params,
        ["aid=FIN".to_string(), format!("$skiptoken={last}")]
    );
    let r = bc
        .http
        .get(bc.url(&bc.co("/vendors?$select=id,number&$top=7&$skip=1")))
        .bearer_auth(&bc.token)
        .header("Prefer", "odata.maxpagesize=3")
        .send()
        .await
        .unwrap();
    let page: Value = r.json().await.unwrap();
    let (tail, params, last) = shape(&page);
    assert!(
        tail.starts_with("companies(") && tail.ends_with(")/vendors"),
        "{tail}"
    );
    assert_eq!(
        params,
        [
            "$select=id%2Cnumber".to_string(),
            "$top=4".to_string(),
            "aid=FIN".to_string(),
            format!("$skiptoken={last}")
        ]
    );
    bc.emu.shutdown().await;
}

#[tokio::test]
async fn filter_boundary_expand_and_reads() {
    let mut bc = Bc::new(20).await;
    admin_json(
        &bc.emu,
        Method::POST,
        "/clock",
        Some(json!({"set": "2026-01-15T10:00:00.250Z"})),
    )
    .await;
    bc.login().await;
    let touched = admin_json(
        &bc.emu,
        Method::POST,
        "/records/purchase_orders/6/touch",
        None,
    )
    .await;
    assert_eq!(touched["last_modified"], 1_768_471_200_250i64);
    let q = |f: &str| {
        bc.co(&format!(
            "/purchaseOrders?$filter={}",
            crate::netsuite::urlencode(f)
        ))
    };
    let gt = bc
        .json(&q("lastModifiedDateTime gt 2026-01-15T10:00:00.250Z"))
        .await;
    assert!(
        gt["value"].as_array().unwrap().is_empty(),
        "gt excludes the boundary"
    );
    let ge = bc
        .json(&q("lastModifiedDateTime ge 2026-01-15T10:00:00.250Z"))
        .await;
    assert_eq!(ge["value"][0]["number"], "106006");
    assert_eq!(
        ge["value"][0]["lastModifiedDateTime"],
        "2026-01-15T10:00:00.250Z"
    );
    let gt_earlier = bc
        .json(&q("lastModifiedDateTime gt 2026-01-15T10:00:00Z"))
        .await;
    assert_eq!(gt_earlier["value"].as_array().unwrap().len(), 1);
    let by_number = bc
        .json(&q("number eq '106003' or status eq 'In_x0020_Review'"))
        .await;
    assert!(
        by_number["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["number"] == "106003")
    );
    assert!(
        by_number["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["status"] == "In_x0020_Review")
    );
    let id = ge["value"][0]["id"].as_str().unwrap().to_string();
    let by_id = bc.json(&q(&format!("id eq {id}"))).await;
    assert_eq!(by_id["value"].as_array().unwrap().len(), 1);
    let desc = bc
        .json(&bc.co("/purchaseOrders?$orderby=number desc&$top=2&$select=number"))
        .await;
    assert_eq!(desc["value"][0]["number"], "106020");
    assert!(desc["value"][0].get("vendorName").is_none());
    for bad in ["nope eq 1", "number eq", "frob(number)"] {
        let r = bc.get(&q(bad)).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert!(bc_code(&r.json::<Value>().await.unwrap()).starts_with("BadRequest"));
    }
    // Expand and navigation.
    let one = bc
        .json(&bc.co(&format!("/purchaseOrders({id})?$expand=purchaseOrderLines")))
        .await;
    let lines = one["purchaseOrderLines"].as_array().unwrap();
    assert!(!lines.is_empty());
    assert_eq!(lines[0]["documentId"], id.as_str());
    assert_eq!(lines[0]["sequence"], 10000);
    let sum: f64 = lines
        .iter()
        .map(|l| l["amountIncludingTax"].as_f64().unwrap())
        .sum();
    assert!((sum - one["totalAmountIncludingTax"].as_f64().unwrap()).abs() < 0.01);
    let nav = bc
        .json(&bc.co(&format!("/purchaseOrders({id})/purchaseOrderLines")))
        .await;
    assert_eq!(nav["value"].as_array().unwrap().len(), lines.len());
    let line = bc
        .json(&bc.co(&format!(
            "/purchaseOrders({id})/purchaseOrderLines({})",
            lines[0]["id"].as_str().unwrap()
        )))
        .await;
    assert_eq!(line["id"], lines[0]["id"]);
    let all_lines = bc
        .json(&bc.co(&format!("/purchaseOrderLines?$filter=documentId eq {id}")))
        .await;
    assert_eq!(all_lines["value"].as_array().unwrap().len(), lines.len());
    let v = bc.json(&bc.co("/vendors?$top=2")).await;
    assert_eq!(v["value"][0]["number"], "V00001");
    let i = bc
        .json(&bc.co("/items?$filter=number eq 'ITEM-00002'"))
        .await;
    assert_eq!(i["value"][0]["type"], "Inventory");
    assert_eq!(
        bc.get(&bc.co("/purchaseOrders(00000000-0000-0000-0000-000000000001)"))
            .await
            .status(),
        404
    );
    assert_eq!(bc.get(&bc.co("/salesOrders")).await.status(), 404);
    let meta = bc.get("/$metadata").await.text().await.unwrap();
    assert!(
        meta.contains("<EntityType Name=\"purchaseOrder\">")
            && meta.contains("Name=\"lastModifiedDateTime\" Type=\"Edm.DateTimeOffset\"")
    );
    // Enums are declared and served by member name, as API v2.0 does.
    for declared in [
        "<EnumType Name=\"purchaseOrderEntityBufferStatus\"><Member Name=\"Draft\" Value=\"0\"/><Member Name=\"In_x0020_Review\" Value=\"1\"/>",
        "<Member Name=\"Fixed_x0020_Asset\" Value=\"4\"/><Member Name=\"Charge_x0020__x0028_Item_x0029_\" Value=\"5\"/>",
        "<EnumType Name=\"vendorBlocked\"><Member Name=\"_x0020_\" Value=\"0\"/>",
        "<Member Name=\"Non_x002D_Inventory\" Value=\"2\"/>",
        "<Property Name=\"status\" Type=\"Microsoft.NAV.purchaseOrderEntityBufferStatus\"/>",
        "<Property Name=\"blocked\" Type=\"Microsoft.NAV.vendorBlocked\"/>",
    ] {
        assert!(meta.contains(declared), "{declared}");
    }
    admin_json(
        &bc.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"metadata_enum_types": false})),
    )
    .await;
    let strings = bc.get("/$metadata").await.text().await.unwrap();
    assert!(
        !strings.contains("<EnumType")
            && strings.contains("<Property Name=\"status\" Type=\"Edm.String\"/>")
    );
    let vendors = bc.json(&bc.co("/vendors")).await;
    let blocked: std::collections::HashSet<&str> = vendors["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["blocked"].as_str().unwrap())
        .collect();
    assert!(
        blocked.contains("_x0020_") && !blocked.contains(" "),
        "{blocked:?}"
    );
    let items = bc.json(&bc.co("/items")).await;
    assert!(items["value"].as_array().unwrap().iter().all(|i| {
        ["Inventory", "Service", "Non_x002D_Inventory"].contains(&i["type"].as_str().unwrap())
    }));
    bc.emu.shutdown().await;
}

#[tokio::test]
async fn writes_with_etags_and_deep_insert() {
    let mut bc = Bc::new(10).await;
    admin_json(
        &bc.emu,
        Method::POST,
        "/clock",
        Some(json!({"set": "2026-02-01T09:00:00Z"})),
    )
    .await;
    bc.login().await;
    let body = json!({"vendorNumber": "V00002", "orderDate": "2026-02-01",
        "purchaseOrderLines": [{"lineType": "Item", "lineObjectNumber": "ITEM-00003", "quantity": 4, "directUnitCost": 12.5}]});
    let r = bc
        .req(Method::POST, &bc.co("/purchaseOrders"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["status"].as_str(), v["number"].as_str()),
        (Some("Draft"), Some("106011"))
    );
    assert_eq!(v["totalAmountIncludingTax"], 50.0);
    assert_eq!(v["lastModifiedDateTime"], "2026-02-01T09:00:00.000Z");
    let id = v["id"].as_str().unwrap().to_string();
    let etag = v["@odata.etag"].as_str().unwrap().to_string();

    // PATCH needs If-Match; the right one gives 200 with the entity.
    let path = bc.co(&format!("/purchaseOrders({id})"));
    let r = bc
        .req(Method::PATCH, &path)
        .json(&json!({"orderDate": "2026-02-03"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        bc_code(&r.json::<Value>().await.unwrap()),
        "BadRequest_InvalidToken"
    );
    admin_json(
        &bc.emu,
        Method::POST,
        "/clock",
        Some(json!({"advance_seconds": 1})),
    )
    .await;
    let r = bc
        .req(Method::PATCH, &path)
        .header("If-Match", &etag)
        .json(&json!({"orderDate": "2026-02-03"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["orderDate"], "2026-02-03");
    assert_eq!(v["lastModifiedDateTime"], "2026-02-01T09:00:01.000Z");
    assert_ne!(v["@odata.etag"], etag.as_str());
    // The header fields the API page lets a client edit (page 30066), checked as BC does.
    let edits = json!({"requestedReceiptDate": "2026-03-01", "purchaser": "jr",
        "shipToName": "Dock 4", "shipToCity": "Fargo", "currencyCode": "EUR",
        "discountAmount": 5, "pricesIncludeTax": false, "shortcutDimension1Code": "sales"});
    let r = bc
        .req(Method::PATCH, &path)
        .header("If-Match", v["@odata.etag"].as_str().unwrap())
        .json(&edits)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let e: Value = r.json().await.unwrap();
    assert_eq!(
        (
            e["requestedReceiptDate"].as_str(),
            e["purchaser"].as_str(),
            e["shipToName"].as_str(),
            e["shipToCity"].as_str(),
            e["currencyCode"].as_str(),
            e["shortcutDimension1Code"].as_str(),
        ),
        (
            Some("2026-03-01"),
            Some("JR"),
            Some("Dock 4"),
            Some("Fargo"),
            Some("EUR"),
            Some("SALES")
        )
    );
    assert_eq!(e["discountAmount"].as_f64(), Some(5.0));
    // Read back, the same.
    let back = bc.json(&path).await;
    assert_eq!(back["requestedReceiptDate"], "2026-03-01");
    for (bad, code) in [
        (json!({"currencyCode": "XYZ"}), "BadRequest"),
        (
            json!({"paymentTermsId": "11111111-1111-1111-1111-111111111111"}),
            "BadRequest",
        ),
        (
            json!({"shipToCity": "x".repeat(31)}),
            "Application_StringExceededLength",
        ),
        (
            json!({"requestedReceiptDate": "soon"}),
            "Application_EvaluateException",
        ),
        (json!({"status": "Open"}), "BadRequest_InvalidOperation"),
        (json!({"payToVendorNumber": "V99999"}), "BadRequest"),
    ] {
        let r = bc
            .req(Method::PATCH, &path)
            .header("If-Match", e["@odata.etag"].as_str().unwrap())
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(bc_code(&r.json::<Value>().await.unwrap()), code, "{bad}");
    }
    let r = bc
        .req(Method::PATCH, &path)
        .header("If-Match", &etag)
        .json(&json!({"orderDate": "2026-02-04"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        bc_code(&r.json::<Value>().await.unwrap()),
        "Request_EntityChanged"
    );
    // Two writes at the same (frozen) instant still produce different ETags.
    let same_instant = bc.json(&path).await["@odata.etag"]
        .as_str()
        .unwrap()
        .to_string();
    let r = bc
        .req(Method::PATCH, &path)
        .header("If-Match", &same_instant)
        .json(&json!({"orderDate": "2026-02-05"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = bc
        .req(Method::PATCH, &path)
        .header("If-Match", &same_instant)
        .json(&json!({"orderDate": "2026-02-06"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "stale although the clock did not move");
    let r = bc
        .req(Method::PATCH, &path)
        .header("If-Match", "*")
        .json(&json!({"totalAmountIncludingTax": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        bc_code(&r.json::<Value>().await.unwrap()),
        "BadRequest_InvalidOperation"
    );
    let r = bc
        .req(Method::PATCH, &path)
        .header("If-Match", "*")
        .json(&json!({"color": "red"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bc_code(&r.json::<Value>().await.unwrap()), "BadRequest");

    // Lines: add through the navigation and through purchaseOrderLines with documentId.
    let r = bc
        .req(
            Method::POST,
            &bc.co(&format!("/purchaseOrders({id})/purchaseOrderLines")),
        )
        .json(&json!({"lineObjectNumber": "ITEM-00004", "quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let line: Value = r.json().await.unwrap();
    assert_eq!(line["sequence"], 20000);
    let r = bc
        .req(Method::POST, &bc.co("/purchaseOrderLines"))
        .json(&json!({"documentId": id, "lineObjectNumber": "ITEM-00005", "quantity": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let lpath = bc.co(&format!(
        "/purchaseOrders({id})/purchaseOrderLines({})",
        line["id"].as_str().unwrap()
    ));
    let current = bc.json(&lpath).await["@odata.etag"]
        .as_str()
        .unwrap()
        .to_string();
    let r = bc
        .req(Method::PATCH, &lpath)
        .header("If-Match", &current)
        .json(&json!({"quantity": 9}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["quantity"], 9);
    let r = bc
        .req(Method::DELETE, &lpath)
        .header("If-Match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        bc.json(&format!("{path}?$expand=purchaseOrderLines")).await["purchaseOrderLines"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Validation errors.
    async fn expect(bc: &Bc, body: Value, code: &str) {
        let r = bc
            .req(Method::POST, &bc.co("/purchaseOrders"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{code}");
        assert_eq!(bc_code(&r.json::<Value>().await.unwrap()), code);
    }
    expect(
        &bc,
        json!({"vendorNumber": "V99999"}),
        "Internal_InvalidTableRelation",
    )
    .await;
    admin_json(
        &bc.emu,
        Method::PATCH,
        "/records/vendors/3",
        Some(json!({"inactive": true})),
    )
    .await;
    expect(
        &bc,
        json!({"vendorNumber": "V00003"}),
        "Application_DialogException",
    )
    .await;
    expect(
        &bc,
        json!({"orderDate": "2026-01-01"}),
        "BadRequest_RequiredParamNotProvided",
    )
    .await;
    expect(&bc, json!({"vendorNumber": "V00002", "purchaseOrderLines": [{"lineObjectNumber": "NOPE", "quantity": 1}]}), "Internal_InvalidTableRelation").await;
    expect(
        &bc,
        json!({"vendorNumber": "V00002", "orderDate": "soon"}),
        "Application_EvaluateException",
    )
    .await;
    expect(
        &bc,
        json!({"vendorNumber": "V00002", "status": "Open"}),
        "BadRequest_InvalidOperation",
    )
    .await;
    // Released (Open) orders refuse line changes.
    let open = bc
        .json(&bc.co("/purchaseOrders?$filter=status eq 'Open'&$top=1"))
        .await;
    let oid = open["value"][0]["id"].as_str().unwrap();
    let r = bc
        .req(
            Method::POST,
            &bc.co(&format!("/purchaseOrders({oid})/purchaseOrderLines")),
        )
        .json(&json!({"lineObjectNumber": "ITEM-00004", "quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        bc_code(&r.json::<Value>().await.unwrap()),
        "Application_FieldValidationException"
    );
    // Delete with If-Match.
    let r = bc.req(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = bc
        .req(Method::DELETE, &path)
        .header("If-Match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(bc.get(&path).await.status(), 404);
    let log = admin_json(&bc.emu, Method::GET, "/requests", None).await;
    assert!(
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["headers"]["if-match"] == "*")
    );
    bc.emu.shutdown().await;
}

#[tokio::test]
async fn limits_concurrency_budget_and_retry_after_switch() {
    let bc = Bc::new(10).await;
    // Budget per emulator-clock minute.
    admin_json(
        &bc.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"requests_per_minute": 3})),
    )
    .await;
    admin_json(
        &bc.emu,
        Method::POST,
        "/clock",
        Some(json!({"advance_seconds": 60})),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(bc.get("/companies").await.status(), 200);
    }
    let r = bc.get("/companies").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "30");
    let v: Value = r.json().await.unwrap();
    assert_eq!(bc_code(&v), "Application_TooManyRequests");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Too many requests reached. Actual (4). Maximum (3).")
    );
    admin_json(
        &bc.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"retry_after_secs": null})),
    )
    .await;
    let r = bc.get("/companies").await;
    assert!(r.headers().get("retry-after").is_none());
    admin_json(
        &bc.emu,
        Method::POST,
        "/clock",
        Some(json!({"advance_seconds": 60})),
    )
    .await;
    assert_eq!(bc.get("/companies").await.status(), 200);

    // 2 running + 1 queued; the rest are refused at once.
    admin_json(
        &bc.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"requests_per_minute": 600, "max_concurrent": 2, "queue_size": 1})),
    )
    .await;
    admin_json(
        &bc.emu,
        Method::PUT,
        "/faults",
        Some(json!({"latency_ms": 300})),
    )
    .await;
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let (http, url, token) = (bc.http.clone(), bc.url("/companies"), bc.token.clone());
            tokio::spawn(async move {
                http.get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut codes = Vec::new();
    for h in handles {
        codes.push(h.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 3, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 3, "{codes:?}");
    bc.emu.shutdown().await;
}

#[tokio::test]
async fn ship_to_contact_is_written_and_filterable() {
    let bc = Bc::new(10).await;
    let body = json!({"vendorNumber": "V00002", "shipToContact": "IBREF0000001",
        "purchaseOrderLines": [{"lineType": "Item", "lineObjectNumber": "ITEM-00003", "quantity": 2}]});
    let r = bc
        .req(Method::POST, &bc.co("/purchaseOrders"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["shipToContact"], "IBREF0000001");
    let id = v["id"].as_str().unwrap().to_string();
    let found = bc
        .json(&bc.co(
            "/purchaseOrders?$filter=shipToContact%20eq%20'IBREF0000001'&$expand=purchaseOrderLines",
        ))
        .await;
    let value = found["value"].as_array().unwrap();
    assert_eq!(value.len(), 1);
    assert_eq!(value[0]["id"], json!(id));
    assert_eq!(value[0]["purchaseOrderLines"].as_array().unwrap().len(), 1);
    // Text[100]: a longer value is refused.
    let mut long = body.clone();
    long["shipToContact"] = json!("x".repeat(101));
    let r = bc
        .req(Method::POST, &bc.co("/purchaseOrders"))
        .json(&long)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        bc_code(&r.json::<Value>().await.unwrap()),
        "Application_StringExceededLength"
    );
    // It can be changed with If-Match, like the other header fields.
    let r = bc
        .req(Method::PATCH, &bc.co(&format!("/purchaseOrders({id})")))
        .header("If-Match", v["@odata.etag"].as_str().unwrap())
        .json(&json!({"shipToContact": "IBREF0000002"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let found = bc
        .json(&bc.co("/purchaseOrders?$filter=shipToContact%20eq%20'IBREF0000002'"))
        .await;
    assert_eq!(found["value"][0]["id"], json!(id));
    bc.emu.shutdown().await;
}

#[tokio::test]
async fn vendors_and_items_are_created_and_updated_as_the_api_takes_them() {
    let bc = Bc::new(10).await;
    let post = |path: &str, body: Value| bc.req(Method::POST, &bc.co(path)).json(&body).send();
    // Read-only and unknown properties are refused by name.
    let r = post("/vendors", json!({"displayName": "X", "balance": 5}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        bc_code(&r.json().await.unwrap()),
        "BadRequest_InvalidOperation"
    );
    let r = post("/vendors", json!({"displayName": "X", "colour": "red"}))
        .await
        .unwrap();
    assert_eq!(bc_code(&r.json().await.unwrap()), "BadRequest");
    let r = post("/vendors", json!({"displayName": "x".repeat(101)}))
        .await
        .unwrap();
    assert_eq!(
        bc_code(&r.json().await.unwrap()),
        "Application_StringExceededLength"
    );
    let r = post("/vendors", json!({"currencyCode": "XYZ"}))
        .await
        .unwrap();
    assert_eq!(
        bc_code(&r.json().await.unwrap()),
        "Internal_InvalidTableRelation"
    );
    // A number from the series, or the one given; a taken one is refused.
    let r = post(
        "/vendors",
        json!({"displayName": "Fabrikam", "blocked": "All"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["number"].as_str(), v["blocked"].as_str()),
        (Some("V00011"), Some("All"))
    );
    let r = post("/vendors", json!({"number": "V00011"})).await.unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        bc_code(&r.json().await.unwrap()),
        "Internal_EntityWithSameKeyExists"
    );
    // The new vendor takes orders by its number once unblocked (If-Match required).
    let path = bc.co(&format!("/vendors({})", v["id"].as_str().unwrap()));
    let r = bc
        .req(Method::PATCH, &path)
        .json(&json!({"blocked": "_x0020_"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bc_code(&r.json().await.unwrap()), "BadRequest_InvalidToken");
    let r = bc
        .req(Method::PATCH, &path)
        .header("If-Match", v["@odata.etag"].as_str().unwrap())
        .json(&json!({"blocked": "_x0020_", "city": "Fargo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(
        (updated["blocked"].as_str(), updated["city"].as_str()),
        (Some("_x0020_"), Some("Fargo"))
    );
    assert_ne!(updated["@odata.etag"], v["@odata.etag"]);
    let r = post(
        "/purchaseOrders",
        json!({"vendorNumber": "V00011", "purchaseOrderLines": [{"lineObjectNumber": "ITEM-00003", "quantity": 1}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    // Items keep their type; a service item is one.
    let r = post(
        "/items",
        json!({"displayName": "Consulting", "type": "Service", "unitCost": 80, "blocked": false}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let i: Value = r.json().await.unwrap();
    assert_eq!(
        (i["type"].as_str(), i["unitCost"].as_f64()),
        (Some("Service"), Some(80.0))
    );
    // An enum takes member names: the blank member is `_x0020_`, not " ".
    let r = post("/vendors", json!({"displayName": "Blank", "blocked": " "}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(bc_code(&r.json().await.unwrap()), "BadRequest");
    let r = post(
        "/items",
        json!({"displayName": "Freight", "type": "Non_x002D_Inventory"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let r = post("/items", json!({"inventory": 3})).await.unwrap();
    assert_eq!(
        bc_code(&r.json().await.unwrap()),
        "BadRequest_InvalidOperation"
    );
    // A table the app may not write: 403 with the permission it lacks.
    admin_json(
        &bc.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"denied_sets": ["items"]})),
    )
    .await;
    let r = post("/items", json!({"displayName": "Denied"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let e: Value = r.json().await.unwrap();
    assert_eq!(bc_code(&e), "Internal_ServerError");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Sorry, the current permissions prevented the action. (TableData 27 Item Insert: Base Application)")
    );
}
