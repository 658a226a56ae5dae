//! NetSuite emulator: golden payload shapes, M2M auth, listing and `q` filters, records, writes, SuiteQL, TBA.

use std::collections::HashSet;

use jsonwebtoken::Algorithm;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::support::*;

// ---- Golden shapes: the real payloads of target-systems.md §1 and the emulator's output both decode into these.

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Link {
    rel: String,
    href: String,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Ref {
    id: String,
    #[serde(rename = "refName")]
    ref_name: String,
    #[serde(default)]
    links: Vec<Link>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct PoLine {
    links: Vec<Link>,
    line: u32,
    item: Ref,
    item_type: Ref,
    description: String,
    quantity: f64,
    quantity_received: f64,
    quantity_billed: f64,
    rate: f64,
    amount: f64,
    is_closed: bool,
    location: Ref,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Sublist<T> {
    links: Vec<Link>,
    #[serde(rename = "totalResults")]
    total_results: usize,
    items: Vec<T>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct MultiSelect {
    count: usize,
    #[serde(rename = "hasMore")]
    has_more: bool,
    offset: usize,
    #[serde(rename = "totalResults")]
    total_results: usize,
    items: Vec<Ref>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct PurchaseOrder {
    links: Vec<Link>,
    id: String,
    tran_id: String,
    transaction_number: String,
    tran_date: String,
    created_date: String,
    last_modified_date: String,
    entity: Ref,
    status: Ref,
    order_status: Ref,
    approval_status: Ref,
    currency: Ref,
    exchange_rate: f64,
    total: f64,
    subsidiary: Ref,
    location: Ref,
    item: Sublist<PoLine>,
    #[serde(rename = "custbody_requestor")]
    custbody_requestor: MultiSelect,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct ListItem {
    links: Vec<Link>,
    id: String,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct ListPage {
    links: Vec<Link>,
    count: usize,
    has_more: bool,
    offset: usize,
    total_results: usize,
    items: Vec<ListItem>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct SuiteQlRow {
    links: Vec<Value>,
    id: String,
    tranid: String,
    trandate: String,
    status: String,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct SuiteQlPage {
    links: Vec<Link>,
    count: usize,
    has_more: bool,
    offset: usize,
    total_results: usize,
    items: Vec<SuiteQlRow>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct ErrorDetail {
    detail: String,
    #[serde(rename = "o:errorCode")]
    code: String,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct ErrorBody {
    #[serde(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    #[serde(rename = "o:errorDetails")]
    details: Vec<ErrorDetail>,
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/it/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn link<'a>(v: &'a Value, rel: &str) -> Option<&'a str> {
    v["links"].as_array()?.iter().find(|l| l["rel"] == rel)?["href"].as_str()
}

#[tokio::test]
async fn golden_payloads_and_emulator_output_share_shapes() {
    let golden: PurchaseOrder = serde_json::from_str(&fixture("netsuite_po.json")).unwrap();
    assert_eq!(golden.item.items[0].item_type.id, "InvtPart");
    let _: ListPage = serde_json::from_str(&fixture("netsuite_list.json")).unwrap();
    let _: SuiteQlPage = serde_json::from_str(&fixture("netsuite_suiteql.json")).unwrap();
    let _: ErrorBody = serde_json::from_str(&fixture("netsuite_error.json")).unwrap();

    let ns = Ns::new(30).await;
    let list: ListPage = ns
        .get("/record/v1/purchaseOrder?limit=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (list.count, list.has_more, list.total_results),
        (2, true, 30)
    );
    let po: PurchaseOrder = ns
        .get(&format!(
            "/record/v1/purchaseOrder/{}?expandSubResources=true",
            list.items[0].id
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(po.item.total_results, po.item.items.len());
    let sum: f64 = po.item.items.iter().map(|l| l.amount).sum();
    assert!(
        (sum - po.total).abs() < 0.01,
        "total is the sum of line amounts"
    );
    assert!(
        po.last_modified_date.ends_with('Z') && po.last_modified_date.len() == 20,
        "no milliseconds"
    );
    assert_eq!(po.tran_date.len(), 10);
    let q: SuiteQlPage = ns
        .suiteql("SELECT id, tranid, trandate, status FROM transaction WHERE type = 'PurchOrd' ORDER BY id", 5, 0)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(q.items.len(), 5);
    let err: ErrorBody = ns
        .get("/record/v1/purchaseOrder/999999")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (err.status, err.details[0].code.as_str()),
        (404, "NONEXISTENT_ID")
    );
    ns.emu.shutdown().await;
}

#[tokio::test]
async fn m2m_token_endpoint_verifies_assertions() {
    let emu = netsuite(10).await;
    let ec = ec_cert();
    register(&emu, &ec, CERT_ID).await;
    let now = clock_secs(&emu).await;

    // Array scope and comma-separated scope are both accepted; expires_in is the string "3600".
    let ok = post_token(
        &emu,
        &assertion(&ec, Algorithm::ES256, CERT_ID, claims(&emu, now)),
    )
    .await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["expires_in"], "3600");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["access_token"].as_str().unwrap().split('.').count(), 3);
    let mut c = claims(&emu, now);
    c["scope"] = json!("restlets,rest_webservices");
    assert_eq!(
        post_token(&emu, &assertion(&ec, Algorithm::ES256, CERT_ID, c))
            .await
            .status(),
        200
    );
    // The real host's token URL is an accepted audience too.
    let mut c = claims(&emu, now);
    c["aud"] =
        json!("https://1234567.suitetalk.api.netsuite.com/services/rest/auth/oauth2/v1/token");
    assert_eq!(
        post_token(&emu, &assertion(&ec, Algorithm::ES256, CERT_ID, c))
            .await
            .status(),
        200
    );

    async fn expect(
        emu: &ironbridge_emulators::RunningEmulator,
        jwt: &str,
        status: u16,
        error: &str,
    ) {
        let r = post_token(emu, jwt).await;
        assert_eq!(r.status().as_u16(), status, "{error}");
        if status == 401 {
            assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"1234567\"");
        }
        let v: Value = r.json().await.unwrap();
        assert_eq!(v, json!({ "error": error }));
    }
    expect(
        &emu,
        &assertion(&ec, Algorithm::ES256, "unknown-kid", claims(&emu, now)),
        401,
        "invalid_client",
    )
    .await;
    let other = ec_cert();
    expect(
        &emu,
        &assertion(&other, Algorithm::ES256, CERT_ID, claims(&emu, now)),
        401,
        "invalid_client",
    )
    .await;
    let mut c = claims(&emu, now);
    c["aud"] = json!("https://elsewhere.example/token");
    expect(
        &emu,
        &assertion(&ec, Algorithm::ES256, CERT_ID, c),
        400,
        "invalid_grant",
    )
    .await;
    let mut c = claims(&emu, now);
    c["exp"] = json!(now + 3601);
    expect(
        &emu,
        &assertion(&ec, Algorithm::ES256, CERT_ID, c),
        400,
        "invalid_grant",
    )
    .await;
    let mut c = claims(&emu, now - 7200);
    c["exp"] = json!(now - 3600);
    expect(
        &emu,
        &assertion(&ec, Algorithm::ES256, CERT_ID, c),
        400,
        "invalid_grant",
    )
    .await;
    let mut c = claims(&emu, now);
    c["scope"] = json!(["everything"]);
    expect(
        &emu,
        &assertion(&ec, Algorithm::ES256, CERT_ID, c),
        400,
        "invalid_scope",
    )
    .await;
    let mut c = claims(&emu, now);
    c["iss"] = json!("someone-else");
    expect(
        &emu,
        &assertion(&ec, Algorithm::ES256, CERT_ID, c),
        401,
        "invalid_client",
    )
    .await;

    // Malformed requests.
    let r = client()
        .post(token_url(&emu))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    let r = client()
        .post(token_url(&emu))
        .body("{}")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    let r = post_token(&emu, "not-a-jwt").await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");

    // Revoked certificate.
    admin_json(&emu, Method::PATCH, "/settings", Some(json!({"m2m_clients": [
        {"client_id": CLIENT_ID, "certificate_id": CERT_ID, "certificate_pem": ec.cert_pem, "revoked": true}
    ]}))).await;
    expect(
        &emu,
        &assertion(&ec, Algorithm::ES256, CERT_ID, claims(&emu, now)),
        400,
        "invalid_grant",
    )
    .await;
    emu.shutdown().await;
}

#[tokio::test]
async fn rs256_only_behind_the_switch_and_ps256_always() {
    let emu = netsuite(10).await;
    let rsa = rsa_cert();
    register(&emu, &rsa, "rsa-cert").await;
    let now = clock_secs(&emu).await;
    let ps = post_token(
        &emu,
        &assertion(&rsa, Algorithm::PS256, "rsa-cert", claims(&emu, now)),
    )
    .await;
    assert_eq!(ps.status(), 200);
    let rs = post_token(
        &emu,
        &assertion(&rsa, Algorithm::RS256, "rsa-cert", claims(&emu, now)),
    )
    .await;
    assert_eq!(rs.status(), 401);
    admin_json(
        &emu,
        Method::PATCH,
        "/settings",
        Some(json!({"allow_rs256": true, "token_expires_in_as_string": false})),
    )
    .await;
    let rs = post_token(
        &emu,
        &assertion(&rsa, Algorithm::RS256, "rsa-cert", claims(&emu, now)),
    )
    .await;
    assert_eq!(rs.status(), 200);
    assert_eq!(rs.json::<Value>().await.unwrap()["expires_in"], 3600);
    emu.shutdown().await;
}

#[tokio::test]
async fn tokens_expire_on_the_emulator_clock() {
    let ns = Ns::new(10).await;
    assert_eq!(ns.get("/record/v1/vendor?limit=1").await.status(), 200);
    admin_json(
        &ns.emu,
        Method::POST,
        "/clock",
        Some(json!({"advance_seconds": 3599})),
    )
    .await;
    assert_eq!(ns.get("/record/v1/vendor?limit=1").await.status(), 200);
    admin_json(
        &ns.emu,
        Method::POST,
        "/clock",
        Some(json!({"advance_seconds": 1})),
    )
    .await;
    let r = ns.get("/record/v1/vendor?limit=1").await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer realm=\"1234567\"")
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(ns_code(&v), "INVALID_LOGIN");
    assert_eq!(v["title"], "Unauthorized");
    assert!(
        v["o:errorDetails"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("Invalid login attempt.")
    );
    ns.emu.shutdown().await;
}

#[tokio::test]
async fn data_calls_need_a_valid_credential() {
    let ns = Ns::new(10).await;
    for auth in [
        None,
        Some("Bearer nope"),
        Some("Basic dXNlcjpwdw=="),
        Some("OAuth oauth_consumer_key=\"x\""),
    ] {
        let mut r = ns.http.get(ns.url("/record/v1/purchaseOrder"));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        assert_eq!(ns_code(&r.json::<Value>().await.unwrap()), "INVALID_LOGIN");
    }
    ns.emu.shutdown().await;
}

#[tokio::test]
async fn listing_pages_to_an_empty_last_page() {
    let ns = Ns::new(25).await;
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let page = ns
            .get_json(&format!(
                "/record/v1/purchaseorder?limit=10&offset={offset}"
            ))
            .await;
        assert_eq!(page["totalResults"], 25);
        assert_eq!(page["offset"], offset);
        let items = page["items"].as_array().unwrap();
        assert_eq!(page["count"], items.len());
        seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_string()));
        let last = link(&page, "last").unwrap();
        assert!(last.ends_with("limit=10&offset=20"), "{last}");
        assert!(
            link(&page, "self")
                .unwrap()
                .contains("/record/v1/purchaseorder?")
        );
        if offset > 0 {
            assert!(link(&page, "prev").is_some() && link(&page, "first").is_some());
        }
        if page["hasMore"] == false {
            assert!(link(&page, "next").is_none());
            break;
        }
        assert!(
            link(&page, "next")
                .unwrap()
                .ends_with(&format!("offset={}", offset + 10))
        );
        offset += items.len();
    }
    assert_eq!(seen.len(), 25);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 25);
    let past = ns
        .get_json("/record/v1/purchaseOrder?limit=10&offset=30")
        .await;
    assert_eq!(
        (past["count"].as_u64(), past["hasMore"].as_bool()),
        (Some(0), Some(false))
    );
    for bad in ["limit=1001", "limit=0", "limit=x", "offset=-1"] {
        let r = ns.get(&format!("/record/v1/purchaseOrder?{bad}")).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(
            ns_code(&r.json::<Value>().await.unwrap()),
            "INVALID_PARAMETER"
        );
    }
    for t in ["vendor", "inventoryItem", "location", "VENDOR"] {
        let v = ns.get_json(&format!("/record/v1/{t}?limit=1000")).await;
        assert!(v["totalResults"].as_u64().unwrap() > 0, "{t}");
    }
    let r = ns.get("/record/v1/salesOrder").await;
    assert_eq!(r.status(), 404);
    ns.emu.shutdown().await;
}

#[tokio::test]
async fn records_with_and_without_sub_resources() {
    let ns = Ns::new(20).await;
    let plain = ns.get_json("/record/v1/purchaseOrder/3").await;
    assert_eq!(
        plain["item"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["links"]
    );
    assert!(
        plain["custbody_ib_priority"].is_string(),
        "custom body fields sit inline"
    );
    let full = ns
        .get_json("/record/v1/purchaseOrder/3?expandSubResources=true")
        .await;
    let lines = full["item"]["items"].as_array().unwrap();
    assert!(!lines.is_empty() && lines.len() <= 20);
    assert!(
        lines[0]["custcol_ib_project_code"]
            .as_str()
            .unwrap()
            .starts_with("PRJ-")
    );
    assert_eq!(full["orderStatus"]["id"], "C");
    let sub = ns.get_json("/record/v1/purchaseOrder/3/item").await;
    assert_eq!(sub["items"].as_array().unwrap().len(), lines.len());
    let one = ns.get_json("/record/v1/purchaseOrder/3/item/1").await;
    assert_eq!(one["line"], 1);
    assert_eq!(
        ns.get("/record/v1/purchaseOrder/3/item/99").await.status(),
        404
    );
    assert_eq!(
        ns.get("/record/v1/purchaseOrder/3/expenses").await.status(),
        404
    );
    let vendor_id = full["entity"]["id"].as_str().unwrap();
    let vendor = ns.get_json(&format!("/record/v1/vendor/{vendor_id}")).await;
    assert_eq!(vendor["companyName"], full["entity"]["refName"]);
    let fields = ns
        .get_json("/record/v1/purchaseOrder/3?fields=tranId,total")
        .await;
    let mut keys: Vec<&String> = fields.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, vec!["id", "links", "total", "tranId"]);
    let missing = ns.get("/record/v1/purchaseOrder/abc").await;
    assert_eq!(missing.status(), 404);
    // Every status letter appears among eight consecutive orders.
    let mut statuses = HashSet::new();
    for id in 1..=8 {
        let v = ns.get_json(&format!("/record/v1/purchaseOrder/{id}")).await;
        statuses.insert(v["orderStatus"]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(statuses.len(), 8);
    ns.emu.shutdown().await;
}

#[tokio::test]
async fn q_filters_on_the_boundary_day_and_the_date_preference() {
    let mut ns = Ns::new(40).await;
    // Days in UTC first; the account's own time zone below.
    ns.settings(json!({"time_zone": "UTC"})).await;
    // Move the clock to a known instant and touch one order: its lastModifiedDate is exactly that instant.
    ns.clock(json!({"set": "2026-01-02T00:00:00Z"})).await;
    admin_json(
        &ns.emu,
        Method::POST,
        "/records/purchase_orders/7/touch",
        None,
    )
    .await;
    let po = ns.get_json("/record/v1/purchaseOrder/7").await;
    assert_eq!(po["lastModifiedDate"], "2026-01-02T00:00:00Z");
    let ids = |v: Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    };
    let q = |s: &str| format!("/record/v1/purchaseOrder?q={}", urlencode(s));
    assert_eq!(
        ids(ns
            .get_json(&q(r#"lastModifiedDate ON_OR_AFTER "1/2/2026""#))
            .await),
        vec!["7"]
    );
    assert_eq!(
        ids(ns
            .get_json(&q(r#"lastModifiedDate AFTER "1/1/2026""#))
            .await),
        vec!["7"]
    );
    assert!(
        ids(ns
            .get_json(&q(r#"lastModifiedDate AFTER "1/2/2026""#))
            .await)
        .is_empty()
    );
    assert_eq!(
        ids(ns.get_json(&q(r#"lastModifiedDate ON "1/2/2026""#)).await),
        vec!["7"]
    );
    let before = ns
        .get_json(&q(r#"lastModifiedDate BEFORE "1/2/2026""#))
        .await;
    assert_eq!(before["totalResults"], 39);
    let combined = ns
        .get_json(&q(
            r#"lastModifiedDate ON_OR_AFTER "1/1/2026" AND (id EQUAL 7 OR id EQUAL 8)"#,
        ))
        .await;
    assert_eq!(ids(combined), vec!["7"]);
    let by_id = ns.get_json(&q("id ANY_OF [1, 2, 3]")).await;
    assert_eq!(by_id["totalResults"], 3);

    let wrong = ns
        .get(&q(r#"lastModifiedDate ON_OR_AFTER "2026-01-02""#))
        .await;
    assert_eq!(wrong.status(), 400);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(ns_code(&body), "INVALID_PARAMETER");
    assert!(
        body["o:errorDetails"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("Unparseable date: \"2026-01-02\"")
    );
    assert_eq!(body["o:errorDetails"][0]["o:errorQueryParam"], "q");
    admin_json(
        &ns.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"date_format": "YYYY-MM-DD"})),
    )
    .await;
    assert_eq!(
        ids(ns
            .get_json(&q(r#"lastModifiedDate ON_OR_AFTER "2026-01-02""#))
            .await),
        vec!["7"]
    );
    // In Los Angeles 2026-01-02T00:00:00Z is 4 pm on 1 January: a day is a local day there,
    // while the record API still shows the instant in UTC.
    ns.settings(json!({"time_zone": "America/Los_Angeles"}))
        .await;
    assert_eq!(
        ids(ns.get_json(&q(r#"lastModifiedDate ON "2026-01-01""#)).await),
        vec!["7"]
    );
    assert!(ids(ns.get_json(&q(r#"lastModifiedDate ON "2026-01-02""#)).await).is_empty());
    assert_eq!(
        ids(ns
            .get_json(&q(r#"lastModifiedDate ON_OR_AFTER "2026-01-01 16:00""#))
            .await),
        vec!["7"]
    );
    assert_eq!(
        ns.get_json("/record/v1/purchaseOrder/7").await["lastModifiedDate"],
        "2026-01-02T00:00:00Z"
    );
    let bad_zone = admin(
        &ns.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"time_zone": "Mars/Olympus_Mons"})),
    )
    .await;
    assert_eq!(bad_zone.status(), 400);
    let bad_fmt = admin(
        &ns.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"date_format": "YY"})),
    )
    .await;
    assert_eq!(bad_fmt.status(), 400);

    for bad in [
        "nosuchfield IS x",
        "id CONTAIN 3",
        "id EQUAL",
        "(id EQUAL 1",
    ] {
        let r = ns.get(&q(bad)).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    ns.emu.shutdown().await;
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn writes_create_update_validate_and_delete() {
    let mut ns = Ns::new(20).await;
    ns.clock(json!({"set": "2026-02-01T08:00:00Z"})).await;
    let body = json!({
        "entity": {"id": "2"}, "location": {"id": "1"}, "memo": "from test",
        "custbody_ib_priority": "Urgent",
        "item": {"items": [{"item": {"id": "3"}, "quantity": 4, "rate": 12.5}, {"item": {"id": "4"}, "quantity": 1, "rate": 100}]}
    });
    let r = ns
        .send(Method::POST, "/record/v1/purchaseOrder", body)
        .await;
    assert_eq!(r.status(), 204);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with(&ns.url("/record/v1/purchaseOrder/")));
    let id = loc.rsplit('/').next().unwrap().to_string();
    assert_eq!(id, "21");
    let po = ns
        .get_json(&format!(
            "/record/v1/purchaseOrder/{id}?expandSubResources=true"
        ))
        .await;
    assert_eq!(po["total"], 150);
    assert_eq!(po["lastModifiedDate"], "2026-02-01T08:00:00Z");
    assert_eq!(po["createdDate"], "2026-02-01T08:00:00Z");
    assert_eq!(po["custbody_ib_priority"], "Urgent");

    // PATCH appends to the non-keyed item sublist and bumps lastModifiedDate.
    ns.clock(json!({"advance_seconds": 90})).await;
    let r = ns
        .send(
            Method::PATCH,
            &format!("/record/v1/purchaseOrder/{id}"),
            json!({"item": {"items": [{"item": {"id": "5"}, "quantity": 2, "rate": 1}]}}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let po = ns
        .get_json(&format!(
            "/record/v1/purchaseOrder/{id}?expandSubResources=true"
        ))
        .await;
    assert_eq!(po["item"]["items"].as_array().unwrap().len(), 3);
    assert_eq!(po["total"], 152);
    assert_eq!(po["lastModifiedDate"], "2026-02-01T08:01:30Z");
    // ?replace=item replaces every line.
    let r = ns
        .send(
            Method::PATCH,
            &format!("/record/v1/purchaseOrder/{id}?replace=item"),
            json!({"item": {"items": [{"item": {"id": "6"}, "quantity": 3, "rate": 2}]}}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let po = ns
        .get_json(&format!(
            "/record/v1/purchaseOrder/{id}?expandSubResources=true"
        ))
        .await;
    assert_eq!(po["item"]["items"].as_array().unwrap().len(), 1);
    assert_eq!(po["total"], 6);
    // null clears a body field; fields left out stay.
    ns.send(
        Method::PATCH,
        &format!("/record/v1/purchaseOrder/{id}"),
        json!({"memo": null}),
    )
    .await;
    let po = ns.get_json(&format!("/record/v1/purchaseOrder/{id}")).await;
    assert_eq!(
        (po["memo"].as_str(), po["custbody_ib_priority"].as_str()),
        (Some(""), Some("Urgent"))
    );

    // Validation errors in NetSuite's body.
    async fn expect_err(
        ns: &Ns,
        method: Method,
        path: &str,
        body: Value,
        code: &str,
        err_path: &str,
    ) {
        let r = ns.send(method, path, body).await;
        assert_eq!(r.status(), 400, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(ns_code(&v), code, "{v}");
        assert_eq!(v["o:errorDetails"][0]["o:errorPath"], err_path, "{v}");
    }
    let line = json!({"items": [{"item": {"id": "3"}, "quantity": 1}]});
    expect_err(
        &ns,
        Method::POST,
        "/record/v1/purchaseOrder",
        json!({"entity": {"id": "9999"}, "item": line}),
        "INVALID_CONTENT",
        "entity",
    )
    .await;
    // Vendor 17 is seeded inactive.
    expect_err(
        &ns,
        Method::POST,
        "/record/v1/purchaseOrder",
        json!({"entity": {"id": "17"}, "item": line}),
        "INVALID_CONTENT",
        "entity",
    )
    .await;
    expect_err(
        &ns,
        Method::POST,
        "/record/v1/purchaseOrder",
        json!({"entity": {"id": "2"}, "item": {"items": [{"item": {"id": "9999"}}]}}),
        "INVALID_CONTENT",
        "item.items[0].item",
    )
    .await;
    expect_err(
        &ns,
        Method::POST,
        "/record/v1/purchaseOrder",
        json!({"item": line}),
        "USER_ERROR",
        "entity",
    )
    .await;
    expect_err(
        &ns,
        Method::POST,
        "/record/v1/purchaseOrder",
        json!({"entity": {"id": "2"}}),
        "USER_ERROR",
        "item",
    )
    .await;
    expect_err(
        &ns,
        Method::POST,
        "/record/v1/purchaseOrder",
        json!({"entity": {"id": "2"}, "item": {"items": [{"item": {"id": "3"}, "quantity": -1}]}}),
        "INVALID_CONTENT",
        "item.items[0].quantity",
    )
    .await;
    // Order 8 is seeded Closed (status H).
    let closed = ns
        .send(
            Method::PATCH,
            "/record/v1/purchaseOrder/8",
            json!({"memo": "x"}),
        )
        .await;
    assert_eq!(closed.status(), 400);
    assert_eq!(
        ns_code(&closed.json::<Value>().await.unwrap()),
        "USER_ERROR"
    );
    let bad_json = ns
        .http
        .post(ns.url("/record/v1/purchaseOrder"))
        .bearer_auth(&ns.token)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), 400);
    // Strict property-name validation.
    let strict = ns
        .http
        .patch(ns.url(&format!("/record/v1/purchaseOrder/{id}")))
        .bearer_auth(&ns.token)
        .header("X-NetSuite-PropertyNameValidation", "error")
        .json(&json!({"noSuchField": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(strict.status(), 400);
    assert_eq!(
        ns_code(&strict.json::<Value>().await.unwrap()),
        "NONEXISTENT_FIELD"
    );

    // Upsert by external id: first creates, then updates the same record.
    let r = ns
        .send(
            Method::PUT,
            "/record/v1/purchaseOrder/eid:EXT-1",
            json!({"entity": {"id": "2"}, "item": line}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let eid_id = r.headers()["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let r = ns
        .send(
            Method::PUT,
            "/record/v1/purchaseOrder/eid:EXT-1",
            json!({"memo": "upserted", "item": line}),
        )
        .await;
    assert_eq!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap(),
        eid_id
    );
    let by_eid = ns.get_json("/record/v1/purchaseOrder/eid:EXT-1").await;
    assert_eq!(
        (
            by_eid["id"].as_str().unwrap(),
            by_eid["memo"].as_str().unwrap()
        ),
        (eid_id.as_str(), "upserted")
    );

    // Approval moves a pending order on; vendors can be created.
    let r = ns
        .send(
            Method::PATCH,
            "/record/v1/purchaseOrder/1",
            json!({"approvalStatus": {"id": "2"}}),
        )
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        ns.get_json("/record/v1/purchaseOrder/1").await["orderStatus"]["id"],
        "B"
    );
    let r = ns
        .send(
            Method::POST,
            "/record/v1/vendor",
            json!({"companyName": "New Vendor LLC", "email": "a@b.c"}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let r = ns
        .send(Method::POST, "/record/v1/location", json!({"name": "x"}))
        .await;
    assert_eq!(r.status(), 403);

    // Delete, then 404.
    let r = ns
        .http
        .delete(ns.url(&format!("/record/v1/purchaseOrder/{id}")))
        .bearer_auth(&ns.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = ns.get(&format!("/record/v1/purchaseOrder/{id}")).await;
    assert_eq!(r.status(), 404);
    assert_eq!(ns_code(&r.json::<Value>().await.unwrap()), "NONEXISTENT_ID");
    ns.emu.shutdown().await;
}

#[tokio::test]
async fn create_status_switch() {
    let ns = Ns::new(10).await;
    admin_json(
        &ns.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"create_status": 201})),
    )
    .await;
    let r = ns
        .send(
            Method::POST,
            "/record/v1/purchaseOrder",
            json!({"entity": {"id": "2"}, "item": {"items": [{"item": {"id": "3"}}]}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert!(r.headers().contains_key("location"));
    ns.emu.shutdown().await;
}

#[tokio::test]
async fn suiteql_reads_headers_and_lines_in_stable_pages() {
    let mut ns = Ns::new(30).await;
    // The texts below are UTC wall-clock times.
    ns.settings(json!({"time_zone": "UTC"})).await;
    let q = "SELECT id, tranid, trandate, entity, status, lastmodifieddate FROM transaction WHERE type = 'PurchOrd' AND lastmodifieddate >= TO_DATE('2020-01-15','YYYY-MM-DD') ORDER BY id";
    let mut all = Vec::new();
    let mut offset = 0;
    loop {
        let r = ns.suiteql(q, 7, offset).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["totalResults"], 30);
        let items = v["items"].as_array().unwrap().clone();
        for row in &items {
            assert_eq!(row["links"], json!([]));
            for (k, val) in row.as_object().unwrap() {
                assert_eq!(k, &k.to_lowercase());
                if k != "links" {
                    assert!(val.is_string(), "{k} is a string");
                }
            }
        }
        all.extend(items);
        if v["hasMore"] == false {
            break;
        }
        offset += 7;
    }
    let ids: Vec<u64> = all
        .iter()
        .map(|r| r["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids, (1..=30).collect::<Vec<_>>());
    // Values agree with the record API, and dates use the user's format.
    let rec = ns.get_json("/record/v1/purchaseOrder/5").await;
    assert_eq!(all[4]["tranid"], rec["tranId"]);
    assert_eq!(all[4]["entity"], rec["entity"]["id"]);
    assert_eq!(all[4]["status"], rec["orderStatus"]["id"]);
    let d = rec["tranDate"].as_str().unwrap();
    let (y, m, dd) = (
        &d[0..4],
        d[5..7].trim_start_matches('0'),
        d[8..10].trim_start_matches('0'),
    );
    assert_eq!(all[4]["trandate"], format!("{m}/{dd}/{y}"));
    let empty = ns.suiteql(q, 7, 28).await.json::<Value>().await.unwrap();
    assert_eq!(
        (empty["count"].as_u64(), empty["hasMore"].as_bool()),
        (Some(2), Some(false))
    );
    let beyond = ns.suiteql(q, 7, 35).await.json::<Value>().await.unwrap();
    assert_eq!(beyond["count"], 0);

    // Lines: the mainline row is there unless filtered out.
    let lines_q = "SELECT tl.transaction, tl.linesequencenumber, tl.item, tl.quantity, tl.rate, BUILTIN.DF(tl.item) AS itemname FROM transactionline tl INNER JOIN transaction t ON t.id = tl.transaction WHERE t.type = 'PurchOrd' AND tl.mainline = 'F' AND t.id = 5 ORDER BY tl.transaction, tl.linesequencenumber";
    let v: Value = ns.suiteql(lines_q, 1000, 0).await.json().await.unwrap();
    let full = ns
        .get_json("/record/v1/purchaseOrder/5?expandSubResources=true")
        .await;
    let rec_lines = full["item"]["items"].as_array().unwrap();
    assert_eq!(
        v["totalResults"].as_u64().unwrap() as usize,
        rec_lines.len()
    );
    assert_eq!(v["items"][0]["linesequencenumber"], "1");
    assert_eq!(
        v["items"][0]["quantity"],
        rec_lines[0]["quantity"].to_string()
    );
    let with_main: Value = ns
        .suiteql(
            "SELECT transaction, mainline FROM transactionline WHERE transaction = 5",
            1000,
            0,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        with_main["totalResults"].as_u64().unwrap() as usize,
        rec_lines.len() + 1
    );

    // Lines driven from the transaction side, filtered by last-modified after touching one order.
    ns.clock(json!({"set": "2026-03-01T10:00:00Z"})).await;
    admin_json(
        &ns.emu,
        Method::POST,
        "/records/purchase_orders/9/touch",
        None,
    )
    .await;
    let delta = "SELECT t.id, TO_CHAR(t.lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS') AS lm FROM transaction t WHERE t.lastmodifieddate >= TO_TIMESTAMP('2026-03-01 10:00:00', 'YYYY-MM-DD HH24:MI:SS')";
    let v: Value = ns.suiteql(delta, 10, 0).await.json().await.unwrap();
    assert_eq!(v["items"][0]["id"], "9");
    assert_eq!(v["items"][0]["lm"], "2026-03-01 10:00:00");
    let gt = delta.replace(">=", ">");
    let v: Value = ns.suiteql(&gt, 10, 0).await.json().await.unwrap();
    assert_eq!(v["totalResults"], 0, "gt excludes the boundary instant");
    let count: Value = ns
        .suiteql(
            "SELECT COUNT(*) AS n FROM transaction WHERE type = 'PurchOrd'",
            10,
            0,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(count["items"][0]["n"], "30");
    let joined: Value = ns
        .suiteql("SELECT t.id, v.companyname, BUILTIN.DF(t.status) AS st FROM transaction t LEFT JOIN vendor v ON v.id = t.entity WHERE t.id IN (1, 2) ORDER BY t.id DESC", 10, 0)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(joined["items"][0]["id"], "2");
    assert_eq!(
        joined["items"][1]["st"],
        "Purchase Order : Pending Supervisor Approval"
    );
    assert!(joined["items"][0]["companyname"].as_str().unwrap().len() > 3);
    // NULL columns are left out.
    let nulls: Value = ns
        .suiteql("SELECT id, externalid FROM transaction WHERE id = 1", 10, 0)
        .await
        .json()
        .await
        .unwrap();
    assert!(nulls["items"][0].get("externalid").is_none());

    for bad in [
        "SELECT id FROM nosuchtable",
        "SELECT nope FROM transaction",
        "DELETE FROM transaction",
        "SELECT id FROM transaction UNION SELECT id FROM vendor",
        "not sql at all",
    ] {
        let r = ns.suiteql(bad, 10, 0).await;
        assert_eq!(r.status(), 400, "{bad}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(ns_code(&v), "INVALID_PARAMETER");
        assert!(
            v["o:errorDetails"][0]["detail"]
                .as_str()
                .unwrap()
                .starts_with("Invalid search query.")
        );
    }
    let r = ns
        .http
        .post(ns.url("/query/v1/suiteql"))
        .bearer_auth(&ns.token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = ns.suiteql(q, 1001, 0).await;
    assert_eq!(r.status(), 400);
    // The Prefer switch.
    admin_json(
        &ns.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"suiteql_require_prefer_transient": true, "suiteql_values_as_strings": false})),
    )
    .await;
    let r = ns
        .http
        .post(ns.url("/query/v1/suiteql"))
        .bearer_auth(&ns.token)
        .json(&json!({"q": q}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = ns.suiteql(q, 1, 0).await.json().await.unwrap();
    assert_eq!(v["items"][0]["id"], 1);
    let log = admin_json(&ns.emu, Method::GET, "/requests", None).await;
    let last = log["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["headers"]["prefer"], "transient");
    ns.emu.shutdown().await;
}

#[tokio::test]
async fn account_concurrency_limit_answers_429() {
    let ns = Ns::new(10).await;
    admin_json(
        &ns.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"concurrency_limit": 2})),
    )
    .await;
    admin_json(
        &ns.emu,
        Method::PATCH,
        "/faults",
        Some(json!({"latency_ms": 300})),
    )
    .await;
    let results = ns.concurrent_gets("/record/v1/vendor?limit=1", 5).await;
    let mut ok = 0;
    let mut limited = 0;
    for r in results {
        match r.status() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                assert!(r.headers().get("retry-after").is_none());
                assert_eq!(
                    ns_code(&r.json::<Value>().await.unwrap()),
                    "CONCURRENCY_LIMIT_EXCEEDED"
                );
            }
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!((ok, limited), (2, 3));
    ns.emu.shutdown().await;
}

/// OAuth 1.0a (TBA) as the classic NetSuite clients sign it.
fn oauth1_header(method: &str, url: &str, query: &[(&str, &str)], secret_suffix: &str) -> String {
    let enc = |s: &str| urlencode(s);
    let oauth = [
        ("oauth_consumer_key", "emulator-consumer-key".to_string()),
        ("oauth_nonce", "abc123".to_string()),
        ("oauth_signature_method", "HMAC-SHA256".to_string()),
        ("oauth_timestamp", wall_secs().to_string()),
        ("oauth_token", "emulator-token-id".to_string()),
        ("oauth_version", "1.0".to_string()),
    ];
    let mut params: Vec<(String, String)> = oauth.iter().map(|(k, v)| (enc(k), enc(v))).collect();
    params.extend(query.iter().map(|(k, v)| (enc(k), enc(v))));
    params.sort();
    let norm = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let base = format!("{method}&{}&{}", enc(url), enc(&norm));
    let key = format!("emulator-consumer-secret&emulator-token-secret{secret_suffix}");
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.as_bytes());
    use base64::Engine;
    let sig = base64::engine::general_purpose::STANDARD
        .encode(aws_lc_rs::hmac::sign(&k, base.as_bytes()).as_ref());
    let mut h = String::from("OAuth realm=\"1234567\"");
    for (k, v) in oauth.iter() {
        h.push_str(&format!(", {k}=\"{}\"", enc(v)));
    }
    h.push_str(&format!(", oauth_signature=\"{}\"", enc(&sig)));
    h
}

#[tokio::test]
async fn token_based_authentication_signatures() {
    let emu = netsuite(10).await;
    let url = format!("{}/services/rest/record/v1/purchaseOrder", emu.base_url());
    let h = oauth1_header("GET", &url, &[("limit", "5")], "");
    let r = client()
        .get(format!("{url}?limit=5"))
        .header("authorization", h)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let wrong = oauth1_header("GET", &url, &[("limit", "6")], "");
    let r = client()
        .get(format!("{url}?limit=5"))
        .header("authorization", wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // After rotation the old token secret no longer signs valid requests.
    admin_json(&emu, Method::POST, "/credentials/rotate", None).await;
    let h = oauth1_header("GET", &url, &[], "");
    assert_eq!(
        client()
            .get(&url)
            .header("authorization", h)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let h = oauth1_header("GET", &url, &[], "-rotated-1");
    assert_eq!(
        client()
            .get(&url)
            .header("authorization", h)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    emu.shutdown().await;
}

// ---- SuiteQL index planner: the connector's keyset reads, answered from the sorted indexes, must
// equal the full evaluation (`suiteql_use_indexes: false`) row for row, total for total.

/// An epoch-ms instant (whole seconds) as the connector writes it: UTC with an explicit
/// offset, so it is the same instant whatever the account's time zone.
fn ts(ms: i64) -> String {
    let d = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).unwrap();
    format!(
        "TO_TIMESTAMP_TZ('{:04}-{:02}-{:02} {:02}:{:02}:{:02} +00:00', 'YYYY-MM-DD HH24:MI:SS TZH:TZM')",
        d.year(),
        d.month() as u8,
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

/// The connector's header query (crates/connectors/src/netsuite/read.rs) for a table.
fn keyset_q(table: &str, window: &str, after: Option<(i64, u64)>) -> String {
    let (select, filter) = match table {
        "transaction" => (
            "t.*, BUILTIN.DF(t.entity) AS entity_name, BUILTIN.DF(t.status) AS status_name, \
             BUILTIN.DF(t.currency) AS currency_name, BUILTIN.DF(t.location) AS location_name, \
             BUILTIN.DF(t.custbody_requestor) AS custbody_requestor_name",
            vec!["t.type = 'PurchOrd'".to_string()],
        ),
        _ => ("t.*", Vec::new()),
    };
    let mut conds = filter;
    if !window.is_empty() {
        conds.push(window.to_string());
    }
    if let Some((at, id)) = after {
        let at = ts(at);
        conds.push(format!(
            "(t.lastmodifieddate > {at} OR (t.lastmodifieddate = {at} AND t.id > {id}))"
        ));
    }
    let mut q = format!(
        "SELECT {select}, TO_CHAR(SYS_EXTRACT_UTC(t.lastmodifieddate), 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS lastmodified_iso FROM {table} t"
    );
    if !conds.is_empty() {
        q.push_str(" WHERE ");
        q.push_str(&conds.join(" AND "));
    }
    q.push_str(" ORDER BY t.lastmodifieddate, t.id");
    q
}

fn row_key(row: &Value) -> (i64, u64) {
    let iso = row["lastmodified_iso"].as_str().unwrap();
    let t =
        time::OffsetDateTime::parse(iso, &time::format_description::well_known::Rfc3339).unwrap();
    (
        (t.unix_timestamp() * 1000),
        row["id"].as_str().unwrap().parse().unwrap(),
    )
}

/// Pages a keyset walk to the end; returns every query sent (with its limit) and every row.
async fn keyset_walk(
    ns: &Ns,
    table: &str,
    window: &str,
    limit: usize,
) -> (Vec<(String, usize, usize)>, Vec<Value>) {
    let (mut sent, mut rows) = (Vec::new(), Vec::new());
    let mut after = None;
    loop {
        let q = keyset_q(table, window, after);
        let v: Value = ns.suiteql(&q, limit, 0).await.json().await.unwrap();
        sent.push((q, limit, 0));
        let items = v["items"].as_array().unwrap().clone();
        after = items.last().map(row_key);
        rows.extend(items);
        if v["hasMore"] != true {
            return (sent, rows);
        }
    }
}

/// Seeds ties on `lastmodifieddate`: orders 7, 33, 60, 81, 95, 110 share one instant, 20..=23
/// another; order 44 is deleted and one order created. Returns the two instants.
async fn seed_ties(ns: &Ns) -> (i64, i64) {
    let lm = |v: Value| v["last_modified"].as_i64().unwrap();
    let a = lm(admin_json(&ns.emu, Method::GET, "/records/purchase_orders/60", None).await);
    let b = lm(admin_json(&ns.emu, Method::GET, "/records/purchase_orders/2", None).await);
    for (ids, at) in [
        (&[7u64, 33, 81, 95, 110][..], a),
        (&[20, 21, 22, 23][..], b),
    ] {
        for id in ids {
            admin_json(
                &ns.emu,
                Method::PATCH,
                &format!("/records/purchase_orders/{id}"),
                Some(json!({"last_modified": at})),
            )
            .await;
        }
    }
    for id in [3u64, 5] {
        let v = lm(admin_json(&ns.emu, Method::GET, "/records/vendors/4", None).await);
        admin_json(
            &ns.emu,
            Method::PATCH,
            &format!("/records/vendors/{id}"),
            Some(json!({"last_modified": v})),
        )
        .await;
    }
    let r = admin(&ns.emu, Method::DELETE, "/records/purchase_orders/44", None).await;
    assert!(r.status().is_success());
    admin_json(
        &ns.emu,
        Method::POST,
        "/records/purchase_orders",
        Some(json!({})),
    )
    .await;
    (a, b)
}

#[tokio::test]
async fn suiteql_index_planner_matches_the_full_evaluation() {
    let ns = Ns::new(120).await;
    // Offsets here are arbitrary on purpose (the planner's slices); the account stays in its
    // default time zone, so literals are read there.
    ns.settings(json!({"require_offset_multiple_of_limit": false}))
        .await;
    let (a, b) = seed_ties(&ns).await;
    let (lo, hi) = (a.min(b), a.max(b));
    let lm = "t.lastmodifieddate";
    let window = format!("{lm} >= {} AND {lm} <= {}", ts(lo), ts(hi));
    let mut queries: Vec<(String, usize, usize)> = Vec::new();
    // Keyset walks with pages that end inside the tie groups, and over everything.
    for (table, window, limit) in [
        ("transaction", window.as_str(), 2),
        ("transaction", window.as_str(), 4),
        ("transaction", "", 7),
        ("vendor", "", 2),
        ("item", "", 5),
    ] {
        let (sent, rows) = keyset_walk(&ns, table, window, limit).await;
        assert!(!rows.is_empty(), "{table}");
        queries.extend(sent);
    }
    let hdr = "SELECT t.id, t.tranid, BUILTIN.DF(t.status) AS st, TO_CHAR(t.lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS') AS lm FROM transaction t WHERE t.type = 'PurchOrd'";
    let order = format!("ORDER BY {lm}, t.id");
    for cond in [
        // Bounds at a tie instant, inclusive and exclusive, both ways round.
        format!("{lm} >= {}", ts(a)),
        format!("{lm} > {}", ts(a)),
        format!("{lm} <= {}", ts(a)),
        format!("{lm} < {}", ts(a)),
        format!("{lm} = {}", ts(a)),
        format!("{} <= {lm}", ts(a)),
        format!("{} > {lm}", ts(a)),
        format!("{lm} BETWEEN {} AND {}", ts(lo), ts(hi)),
        format!("{lm} >= '1/1/2024'"),
        // Keyset at a tie, both id operators and the mirror image.
        format!("({lm} > {0} OR ({lm} = {0} AND t.id > 33))", ts(a)),
        format!("((t.id >= 33 AND {lm} = {0}) OR {0} < {lm})", ts(a)),
        format!("({lm} < {0} OR ({lm} = {0} AND t.id < 81))", ts(a)),
        format!("({lm} < {0} OR ({lm} = {0} AND t.id <= 81))", ts(a)),
        // Empty ranges.
        format!("{lm} >= {} AND {lm} <= {}", ts(hi + 1000), ts(lo)),
        format!("{lm} > {0} AND {lm} < {0}", ts(a)),
        "t.id > 1000000".to_string(),
        "t.type = 'VendBill'".to_string(),
        // Ids, lists and conditions the index cannot answer (checked row by row).
        "t.id > 100".to_string(),
        "t.id BETWEEN 20 AND 40 AND t.id <> 22".to_string(),
        "t.id IN (110, 7, 44, 60, 9999, 7)".to_string(),
        format!("{lm} >= {} AND (t.id < 30 OR t.id > 90)", ts(lo)),
        format!("NOT ({lm} > {})", ts(a)),
        "t.memo IS NULL".to_string(),
    ] {
        let desc = format!("ORDER BY {lm} DESC, t.id DESC");
        for (o, limit, offset) in [
            (order.as_str(), 5, 0),
            (order.as_str(), 3, 4),
            (order.as_str(), 1000, 0),
            ("ORDER BY t.id", 4, 0),
            ("ORDER BY t.id", 1000, 0),
            ("ORDER BY t.id DESC", 4, 2),
            (desc.as_str(), 4, 1),
            (desc.as_str(), 1000, 0),
            ("", 6, 0),
        ] {
            queries.push((format!("{hdr} AND {cond} {o}"), limit, offset));
        }
        queries.push((
            format!("SELECT COUNT(*) AS n FROM transaction t WHERE {cond}"),
            10,
            0,
        ));
    }
    queries.push((
        "SELECT id, name FROM location t WHERE t.id > 2 ORDER BY t.id".into(),
        2,
        1,
    ));
    queries.push((format!("{hdr} {order}"), 10, 200));
    queries.push((
        "SELECT id FROM vendor t WHERE t.id <= 4 ORDER BY t.id DESC".into(),
        10,
        0,
    ));

    let mut indexed = Vec::new();
    for (q, limit, offset) in &queries {
        let r = ns.suiteql(q, *limit, *offset).await;
        assert_eq!(r.status(), 200, "{q}");
        indexed.push(r.json::<Value>().await.unwrap());
    }
    admin_json(
        &ns.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"suiteql_use_indexes": false})),
    )
    .await;
    for ((q, limit, offset), fast) in queries.iter().zip(&indexed) {
        let full: Value = ns.suiteql(q, *limit, *offset).await.json().await.unwrap();
        assert_eq!(fast, &full, "{q} limit={limit} offset={offset}");
    }
    // The cases above are not vacuous: ties, both sides of the bounds and empty pages occur.
    let count = |i: usize| indexed[i]["totalResults"].as_u64().unwrap();
    assert!(indexed.iter().any(|v| v["totalResults"] == 0));
    assert!(count(0) >= 10, "the window holds both tie groups");

    // Lines by `transaction IN (…)` and `= N` equal the same query with the order-id lookup defeated.
    for cond in [
        "tl.transaction IN (110, 7, 44, 60, 9999)",
        "tl.transaction = 60",
        "tl.transaction IN (7, 60) AND tl.transaction IN (60, 81)",
        "tl.transaction BETWEEN 10 AND 12",
    ] {
        let q = format!(
            "SELECT tl.*, BUILTIN.DF(tl.item) AS item_name, TO_CHAR(tl.expectedreceiptdate, 'YYYY-MM-DD') AS expectedreceipt_iso \
             FROM transactionline tl WHERE tl.mainline = 'F' AND {cond} ORDER BY tl.transaction, tl.linesequencenumber"
        );
        let slow = q
            .replace("tl.transaction IN", "tl.transaction + 0 IN")
            .replace("tl.transaction =", "tl.transaction + 0 =")
            .replace("tl.transaction BETWEEN", "tl.transaction + 0 BETWEEN");
        assert_ne!(q, slow);
        for (limit, offset) in [(1000, 0), (7, 5)] {
            let fast: Value = ns.suiteql(&q, limit, offset).await.json().await.unwrap();
            let full: Value = ns.suiteql(&slow, limit, offset).await.json().await.unwrap();
            assert_eq!(fast["items"], full["items"], "{q}");
            assert_eq!(fast["totalResults"], full["totalResults"], "{q}");
            assert!(fast["totalResults"].as_u64().unwrap() > 0, "{q}");
        }
    }
    ns.emu.shutdown().await;
}

#[tokio::test]
async fn suiteql_keyset_walk_reads_every_order_exactly_once() {
    let ns = Ns::new(300).await;
    seed_ties(&ns).await;
    let now = clock_secs(&ns.emu).await * 1000;
    let window = format!("t.lastmodifieddate <= {}", ts(now));
    let first: Value = ns
        .suiteql(&keyset_q("transaction", &window, None), 9, 0)
        .await
        .json()
        .await
        .unwrap();
    let (sent, rows) = keyset_walk(&ns, "transaction", &window, 9).await;
    assert!(sent.len() > 30);
    let keys: Vec<(i64, u64)> = rows.iter().map(row_key).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "strictly ascending");
    let ids: HashSet<u64> = keys.iter().map(|k| k.1).collect();
    assert_eq!(ids.len(), rows.len(), "no order twice");
    let mut expected: HashSet<u64> = (1..=301).collect();
    expected.remove(&44);
    assert_eq!(ids, expected);
    assert_eq!(first["totalResults"], 300);
    // Every row carries the whole header, as the full evaluation renders it.
    assert!(
        rows.iter()
            .all(|r| r["entity_name"].is_string() && r["tranid"].is_string())
    );
    ns.emu.shutdown().await;
}

// ---- The deletion log (`DeletedRecord`, analytics data source).

/// The time of an epoch-ms instant as the connector prints it (`TO_CHAR … 'YYYY-MM-DD"T"HH24:MI:SS"Z"'`).
fn iso_secs(ms: i64) -> String {
    let d = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).unwrap();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        d.year(),
        d.month() as u8,
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

#[tokio::test]
async fn deletions_are_logged_and_served_as_the_deleted_record_table() {
    let mut ns = Ns::new(30).await;
    // The log's times are compared with UTC texts below.
    ns.settings(json!({"time_zone": "UTC"})).await;
    let log_q = r#"SELECT d.recordid, d.type, d.name, TO_CHAR(d.deleteddate, 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS deleted_iso, BUILTIN.DF(d.context) AS how, BUILTIN.DF(d.deletedby) AS who FROM DeletedRecord d WHERE d.type = 'purchaseorder' ORDER BY d.deleteddate, d.recordid"#;
    let empty: Value = ns.suiteql(log_q, 10, 0).await.json().await.unwrap();
    assert_eq!(empty["totalResults"], 0);

    // Deletions at instants with milliseconds: the log keeps whole seconds.
    ns.clock(json!({"advance_ms": 1_500})).await;
    let first_ms = admin_json(&ns.emu, Method::GET, "/clock", None).await["now_ms"]
        .as_i64()
        .unwrap();
    let order5 = ns.get_json("/record/v1/purchaseOrder/5").await;
    admin_json(&ns.emu, Method::DELETE, "/records/purchase_orders/5", None).await;
    ns.clock(json!({"advance_ms": 60_250})).await;
    let second_ms = first_ms + 60_250;
    let r = ns
        .send(Method::DELETE, "/record/v1/purchaseOrder/7", json!({}))
        .await;
    assert_eq!(r.status(), 204);
    admin_json(&ns.emu, Method::DELETE, "/records/vendors/3", None).await;
    // Nothing to delete, nothing logged.
    let missing = admin(&ns.emu, Method::DELETE, "/records/purchase_orders/5", None).await;
    assert_eq!(missing.status(), 404);
    let missing = ns
        .send(Method::DELETE, "/record/v1/purchaseOrder/5", json!({}))
        .await;
    assert_eq!(missing.status(), 404);

    let v: Value = ns.suiteql(log_q, 10, 0).await.json().await.unwrap();
    assert_eq!(v["totalResults"], 2, "{v}");
    let rows = v["items"].as_array().unwrap();
    assert_eq!(rows[0]["recordid"], "5");
    assert_eq!(rows[0]["type"], "purchaseorder");
    assert_eq!(rows[0]["name"], order5["tranId"]);
    assert_eq!(rows[0]["deleted_iso"], iso_secs(first_ms).as_str());
    assert_eq!(rows[0]["how"], "User Interface");
    assert_eq!(rows[0]["who"], "Seun Sodimu");
    assert_eq!(rows[1]["recordid"], "7");
    assert_eq!(rows[1]["deleted_iso"], iso_secs(second_ms).as_str());
    assert_eq!(rows[1]["how"], "REST Web Services");
    // Without TO_CHAR a datetime shows as the date in the user's format, as other tables do.
    let plain: Value = ns
        .suiteql(
            "SELECT deleteddate FROM deletedrecord WHERE recordid = 5",
            10,
            0,
        )
        .await
        .json()
        .await
        .unwrap();
    let d = time::OffsetDateTime::from_unix_timestamp(first_ms / 1000).unwrap();
    assert_eq!(
        plain["items"][0]["deleteddate"],
        format!("{}/{}/{}", d.month() as u8, d.day(), d.year())
    );

    // Windows on the deletion time, with the bounds the connector writes: whole seconds,
    // `>=` the rounded-up lower bound and `<=` the upper one.
    let window_q = |since: i64, until: Option<i64>| {
        let mut q = format!(
            "SELECT d.recordid FROM DeletedRecord d WHERE LOWER(d.type) IN ('purchaseorder') AND d.deleteddate >= {}",
            ts(since)
        );
        if let Some(u) = until {
            q.push_str(&format!(" AND d.deleteddate <= {}", ts(u)));
        }
        q.push_str(" ORDER BY d.deleteddate, d.recordid");
        q
    };
    let ids = |v: Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["recordid"].as_str().unwrap().to_string())
            .collect()
    };
    let first_s = first_ms / 1000 * 1000;
    let second_s = second_ms / 1000 * 1000;
    let both: Value = ns
        .suiteql(&window_q(first_s, None), 10, 0)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(both), ["5", "7"]);
    let upto_first: Value = ns
        .suiteql(&window_q(first_s - 3_600_000, Some(first_s)), 10, 0)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(upto_first), ["5"]);
    let after_first: Value = ns
        .suiteql(&window_q(first_s + 1000, Some(second_s)), 10, 0)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(after_first), ["7"]);

    // Paged like every SuiteQL query.
    let p1: Value = ns.suiteql(log_q, 1, 0).await.json().await.unwrap();
    assert_eq!(
        (
            p1["count"].as_u64(),
            p1["hasMore"].as_bool(),
            p1["totalResults"].as_u64()
        ),
        (Some(1), Some(true), Some(2))
    );
    assert_eq!(p1["items"][0]["recordid"], "5");
    let p2: Value = ns.suiteql(log_q, 1, 1).await.json().await.unwrap();
    assert_eq!(
        (p2["count"].as_u64(), p2["hasMore"].as_bool()),
        (Some(1), Some(false))
    );
    assert_eq!(p2["items"][0]["recordid"], "7");

    // The vendor's deletion is logged under its own type; the orders are gone from transaction.
    let vendors: Value = ns
        .suiteql(
            "SELECT recordid FROM deletedrecord WHERE type = 'vendor'",
            10,
            0,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(vendors), ["3"]);
    let gone: Value = ns
        .suiteql("SELECT id FROM transaction WHERE id IN (5, 7)", 10, 0)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(gone["totalResults"], 0);
}

#[tokio::test]
async fn external_ids_are_unique_per_record_type_and_found_by_eid() {
    let ns = Ns::new(10).await;
    let order = |eid: &str| {
        json!({"entity": {"id": "2"}, "externalId": eid,
            "item": {"items": [{"item": {"id": "3"}, "quantity": 1}]}})
    };
    let r = ns
        .send(Method::POST, "/record/v1/purchaseOrder", order("IBREF0001"))
        .await;
    assert_eq!(r.status(), 204);
    let id = r.headers()["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let po = ns
        .get_json("/record/v1/purchaseOrder/eid:IBREF0001?expandSubResources=true")
        .await;
    assert_eq!(
        (po["id"].as_str(), po["externalId"].as_str()),
        (Some(id.as_str()), Some("IBREF0001"))
    );
    let count = || async {
        admin_json(&ns.emu, Method::GET, "", None).await["counts"]["purchase_orders"]
            .as_u64()
            .unwrap()
    };
    let before = count().await;

    // A second order with the same external id is refused and nothing is created.
    let r = ns
        .send(Method::POST, "/record/v1/purchaseOrder", order("IBREF0001"))
        .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(ns_code(&v), "USER_ERROR", "{v}");
    assert_eq!(v["o:errorDetails"][0]["o:errorPath"], "externalId");
    assert_eq!(count().await, before);
    // So is giving another order that external id; an order may keep its own.
    let r = ns
        .send(Method::POST, "/record/v1/purchaseOrder", order("IBREF0002"))
        .await;
    assert_eq!(r.status(), 204);
    let r = ns
        .send(
            Method::PATCH,
            "/record/v1/purchaseOrder/eid:IBREF0002",
            json!({"externalId": "IBREF0001"}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = ns
        .send(
            Method::PATCH,
            &format!("/record/v1/purchaseOrder/{id}"),
            json!({"externalId": "IBREF0001", "memo": "kept"}),
        )
        .await;
    assert_eq!(r.status(), 204);
    // An unknown external id is NetSuite's 404.
    assert_eq!(
        ns.get("/record/v1/purchaseOrder/eid:NOSUCHREF")
            .await
            .status(),
        404
    );
    ns.emu.shutdown().await;
}

#[tokio::test]
async fn vendors_and_inventory_items_are_written_as_records() {
    let ns = Ns::new(40).await;
    // A vendor: the name is required and unique, the currency a reference to the list.
    let r = ns
        .send(
            Method::POST,
            "/record/v1/vendor",
            json!({"email": "a@b.example"}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(ns_code(&e), "USER_ERROR");
    assert_eq!(e["o:errorDetails"][0]["o:errorPath"], "companyName");
    let r = ns
        .send(
            Method::POST,
            "/record/v1/vendor",
            json!({"companyName": "Northwind", "currency": {"id": "2"}}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let id = r.headers()["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let v = ns.get_json(&format!("/record/v1/vendor/{id}")).await;
    assert_eq!(
        (v["companyName"].as_str(), v["currency"]["refName"].as_str()),
        (Some("Northwind"), Some("British pound"))
    );
    let rows = ns
        .suiteql(
            &format!("SELECT BUILTIN.DF(t.currency) AS c FROM vendor t WHERE t.id = {id}"),
            10,
            0,
        )
        .await;
    let rows: Value = rows.json().await.unwrap();
    assert_eq!(rows["items"][0]["c"], "British pound");
    let r = ns
        .send(
            Method::POST,
            "/record/v1/vendor",
            json!({"companyName": "Northwind"}),
        )
        .await;
    assert_eq!(ns_code(&r.json().await.unwrap()), "DUP_ENTITY");
    let r = ns
        .send(
            Method::PATCH,
            &format!("/record/v1/vendor/{id}"),
            json!({"lastModifiedDate": "2020-01-01T00:00:00Z"}),
        )
        .await;
    let e: Value = r.json().await.unwrap();
    assert_eq!(ns_code(&e), "USER_ERROR");
    assert!(
        e["o:errorDetails"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("You do not have permissions to set a value for element lastModifiedDate")
    );
    // An inventory item: the item name/number is required and unique.
    let r = ns
        .send(
            Method::POST,
            "/record/v1/inventoryItem",
            json!({"displayName": "Bolt"}),
        )
        .await;
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["o:errorDetails"][0]["o:errorPath"], "itemId");
    let r = ns
        .send(
            Method::POST,
            "/record/v1/inventoryItem",
            json!({"itemId": "BOLT-10", "cost": 0.35, "salesDescription": "Hex bolt"}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let item = r.headers()["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let rows = ns
        .suiteql(
            &format!(
                "SELECT t.itemid, t.cost, t.description, t.itemtype FROM item t WHERE t.id = {item}"
            ),
            10,
            0,
        )
        .await;
    let rows: Value = rows.json().await.unwrap();
    assert_eq!(rows["items"][0]["itemid"], "BOLT-10");
    assert_eq!(rows["items"][0]["description"], "Hex bolt");
    assert_eq!(rows["items"][0]["itemtype"], "InvtPart");
    let r = ns
        .send(
            Method::POST,
            "/record/v1/inventoryItem",
            json!({"itemId": "BOLT-10"}),
        )
        .await;
    assert_eq!(ns_code(&r.json().await.unwrap()), "DUP_ITEM");
    let r = ns
        .send(
            Method::PATCH,
            &format!("/record/v1/inventoryItem/{item}"),
            json!({"isInactive": true}),
        )
        .await;
    assert_eq!(r.status(), 204);
    // A role without the permission: 403, whatever the record.
    admin_json(
        &ns.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"denied_record_types": ["inventoryItem"]})),
    )
    .await;
    let r = ns
        .send(
            Method::PATCH,
            &format!("/record/v1/inventoryitem/{item}"),
            json!({"isInactive": false}),
        )
        .await;
    assert_eq!(r.status(), 403);
    let e: Value = r.json().await.unwrap();
    assert_eq!(ns_code(&e), "INSUFFICIENT_PERMISSION");
    assert!(
        e["o:errorDetails"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("'Lists -> Items'")
    );
    let r = ns
        .send(
            Method::POST,
            "/record/v1/vendor",
            json!({"companyName": "Allowed"}),
        )
        .await;
    assert_eq!(r.status(), 204);
}

// ---- Time zones: SuiteQL in the account's zone (instants shown as its wall-clock time), the
// functions that give UTC, and daylight-saving changes.

/// Epoch milliseconds of an RFC 3339 instant.
fn ms_of(rfc3339: &str) -> i64 {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap();
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// One SuiteQL page's rows (asserting a 200).
async fn rows(ns: &Ns, q: &str) -> Vec<Value> {
    let r = ns.suiteql(q, 1000, 0).await;
    assert_eq!(r.status(), 200, "{q}");
    let v: Value = r.json().await.unwrap();
    v["items"].as_array().unwrap().clone()
}

fn ids_of(rows: &[Value]) -> Vec<&str> {
    rows.iter().map(|r| r["id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn suiteql_shows_datetimes_in_the_account_time_zone_and_extracts_utc() {
    let mut ns = Ns::new(20).await;
    let settings = admin_json(&ns.emu, Method::GET, "/settings", None).await;
    assert_eq!(settings["time_zone"], "America/Los_Angeles", "the default");
    ns.clock(json!({"set": "2026-11-01T12:00:00Z"})).await;
    // Los Angeles, 2026: clocks skip 02:00-02:59 on 8 March and repeat 01:00-01:59 on
    // 1 November (08:00-08:59Z in daylight time, 09:00-09:59Z in standard time).
    for (id, at) in [
        (6, "2026-03-08T09:59:59Z"),
        (5, "2026-03-08T10:00:00Z"),
        (3, "2026-11-01T08:30:00Z"),
        (4, "2026-11-01T09:30:00Z"),
    ] {
        admin_json(
            &ns.emu,
            Method::PATCH,
            &format!("/records/purchase_orders/{id}"),
            Some(json!({"last_modified": ms_of(at)})),
        )
        .await;
    }
    let q = r#"SELECT t.id, TO_CHAR(t.lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS') AS wall,
        TO_CHAR(t.lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS TZH:TZM') AS zoned,
        TO_CHAR(SYS_EXTRACT_UTC(t.lastmodifieddate), 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS utc,
        t.lastmodifieddate AS plain
        FROM transaction t WHERE t.id IN (3, 4, 5, 6) ORDER BY t.lastmodifieddate, t.id"#;
    let r = rows(&ns, q).await;
    assert_eq!(ids_of(&r), ["6", "5", "3", "4"], "ordered by instant");
    let col = |k: &str| -> Vec<&str> { r.iter().map(|x| x[k].as_str().unwrap()).collect() };
    assert_eq!(
        col("wall"),
        [
            "2026-03-08 01:59:59",
            "2026-03-08 03:00:00",
            "2026-11-01 01:30:00",
            "2026-11-01 01:30:00"
        ]
    );
    assert_eq!(
        col("zoned"),
        [
            "2026-03-08 01:59:59 -08:00",
            "2026-03-08 03:00:00 -07:00",
            "2026-11-01 01:30:00 -07:00",
            "2026-11-01 01:30:00 -08:00"
        ]
    );
    assert_eq!(
        col("utc"),
        [
            "2026-03-08T09:59:59Z",
            "2026-03-08T10:00:00Z",
            "2026-11-01T08:30:00Z",
            "2026-11-01T09:30:00Z"
        ]
    );
    assert_eq!(
        col("plain"),
        ["3/8/2026", "3/8/2026", "11/1/2026", "11/1/2026"]
    );
    // The record API keeps UTC (documented: "Datetime values are returned in UTC format").
    assert_eq!(
        ns.get_json("/record/v1/purchaseOrder/3").await["lastModifiedDate"],
        "2026-11-01T08:30:00Z"
    );

    // A literal without a zone is wall-clock time in the account's zone; in the repeated hour
    // Oracle reads it as standard time. An explicit offset is exact.
    let at = |cond: &str| {
        format!(
            "SELECT t.id FROM transaction t WHERE t.id IN (3, 4, 5, 6) AND {cond} ORDER BY t.id"
        )
    };
    for (cond, want) in [
        (
            "t.lastmodifieddate = TO_TIMESTAMP('2026-11-01 01:30:00', 'YYYY-MM-DD HH24:MI:SS')",
            vec!["4"],
        ),
        (
            "t.lastmodifieddate = TO_TIMESTAMP_TZ('2026-11-01 08:30:00 +00:00', 'YYYY-MM-DD HH24:MI:SS TZH:TZM')",
            vec!["3"],
        ),
        (
            "t.lastmodifieddate = TO_TIMESTAMP_TZ('2026-11-01 01:30:00 -07:00', 'YYYY-MM-DD HH24:MI:SS TZH:TZM')",
            vec!["3"],
        ),
        (
            "t.lastmodifieddate >= FROM_TZ(TO_TIMESTAMP('2026-11-01 09:00:00', 'YYYY-MM-DD HH24:MI:SS'), 'UTC')",
            vec!["4"],
        ),
        (
            "SYS_EXTRACT_UTC(t.lastmodifieddate) < TO_TIMESTAMP('2026-03-08 10:00:00', 'YYYY-MM-DD HH24:MI:SS')",
            vec!["6"],
        ),
        // 02:30 on 8 March never happened: read as 03:30 daylight time.
        (
            "t.lastmodifieddate < TO_TIMESTAMP('2026-03-08 02:30:00', 'YYYY-MM-DD HH24:MI:SS')",
            vec!["5", "6"],
        ),
    ] {
        assert_eq!(ids_of(&rows(&ns, &at(cond)).await), want, "{cond}");
    }
    // The same through the full evaluation (no index planner).
    ns.settings(json!({"suiteql_use_indexes": false})).await;
    assert_eq!(
        ids_of(&rows(&ns, &at("t.lastmodifieddate = TO_TIMESTAMP('2026-11-01 01:30:00', 'YYYY-MM-DD HH24:MI:SS')")).await),
        ["4"]
    );
    ns.settings(json!({"suiteql_use_indexes": true})).await;

    let r = rows(
        &ns,
        r#"SELECT SESSIONTIMEZONE AS tz, TZ_OFFSET('Europe/Berlin') AS berlin, TZ_OFFSET(SESSIONTIMEZONE) AS here,
            TO_CHAR(t.lastmodifieddate AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI TZR') AS at_utc,
            TO_CHAR(CAST(t.lastmodifieddate AS TIMESTAMP WITH TIME ZONE), 'HH24:MI TZR') AS cast_tz,
            TO_CHAR(CAST(t.lastmodifieddate AS TIMESTAMP), 'YYYY-MM-DD HH24:MI') AS cast_plain
            FROM transaction t WHERE t.id = 3"#,
    )
    .await;
    assert_eq!(r[0]["tz"], "America/Los_Angeles");
    // At the clock (12:00Z on 1 November) Berlin is back on standard time, and so is LA.
    assert_eq!(r[0]["berlin"], "+01:00");
    assert_eq!(r[0]["here"], "-08:00");
    assert_eq!(r[0]["at_utc"], "2026-11-01 08:30 UTC");
    assert_eq!(r[0]["cast_tz"], "01:30 America/Los_Angeles");
    assert_eq!(r[0]["cast_plain"], "2026-11-01 01:30");

    // `q` on the record API: a day is a local day.
    let list = ns
        .get_json(&format!(
            "/record/v1/purchaseOrder?q={}",
            urlencode(r#"lastModifiedDate ON "11/1/2026" AND id ANY_OF [3, 4, 5, 6]"#)
        ))
        .await;
    assert_eq!(list["totalResults"], 2);

    // In a UTC account the wall clock is UTC.
    ns.settings(json!({"time_zone": "UTC"})).await;
    let r = rows(&ns, q).await;
    assert_eq!(
        r.iter()
            .map(|x| x["wall"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [
            "2026-03-08 09:59:59",
            "2026-03-08 10:00:00",
            "2026-11-01 08:30:00",
            "2026-11-01 09:30:00"
        ]
    );
    ns.emu.shutdown().await;
}

// ---- Paging rules: pages, not arbitrary offsets; at most 1,000 pages of a record list.

#[tokio::test]
async fn offsets_must_fall_on_page_boundaries_and_lists_stop_at_a_thousand_pages() {
    let ns = Ns::new(30).await;
    let misaligned = ns.get("/record/v1/purchaseOrder?limit=10&offset=15").await;
    assert_eq!(misaligned.status(), 400);
    let body: Value = misaligned.json().await.unwrap();
    assert_eq!(ns_code(&body), "INVALID_PARAMETER");
    assert_eq!(body["o:errorDetails"][0]["o:errorQueryParam"], "offset");
    let q = "SELECT id FROM transaction ORDER BY id";
    let r = ns.suiteql(q, 10, 5).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["o:errorDetails"][0]["o:errorQueryParam"], "offset");
    // On a boundary both answer, including an empty page past the end.
    assert_eq!(ns.suiteql(q, 10, 20).await.status(), 200);
    let past = ns
        .get_json("/record/v1/purchaseOrder?limit=10&offset=40")
        .await;
    assert_eq!(past["count"], 0);
    assert_eq!(past["hasMore"], false);

    // 1,000 pages of one order each reach 1,000 of the 1,200 orders: page 1,000 is the last,
    // announced as such, and the next is refused.
    let big = Ns::new(1_200).await;
    let last = big
        .get_json("/record/v1/purchaseOrder?limit=1&offset=999")
        .await;
    assert_eq!(last["count"], 1);
    assert_eq!(last["hasMore"], false, "the last reachable page");
    assert_eq!(last["totalResults"], 1_200);
    let rels: Vec<&str> = last["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["rel"].as_str().unwrap())
        .collect();
    assert!(!rels.contains(&"next"), "{rels:?}");
    let beyond = big
        .get("/record/v1/purchaseOrder?limit=1&offset=1000")
        .await;
    assert_eq!(beyond.status(), 400);
    let body: Value = beyond.json().await.unwrap();
    assert_eq!(body["o:errorDetails"][0]["o:errorQueryParam"], "offset");
    // Pages of 1,000 reach everything.
    let whole = big
        .get_json("/record/v1/purchaseOrder?limit=1000&offset=1000")
        .await;
    assert_eq!(whole["count"], 200);

    // The rule is inferred from clients' reports: a switch turns it off.
    ns.settings(json!({"require_offset_multiple_of_limit": false}))
        .await;
    let loose = ns
        .get_json("/record/v1/purchaseOrder?limit=10&offset=15")
        .await;
    assert_eq!(loose["offset"], 15);
    ns.emu.shutdown().await;
    big.emu.shutdown().await;
}

/// ES512 is on Oracle's list of assertion algorithms ("PS256, PS384, PS512, ES256, ES384, or
/// ES512", section_162790605110) with P-521 certificates: a signed assertion gets a token, a
/// tampered one or one signed by another key is refused as a bad signature is.
#[tokio::test]
async fn es512_assertions_signed_with_a_p521_key_are_accepted() {
    let emu = netsuite(5).await;
    let cert = p521_cert();
    register(&emu, &cert, "p521-cert").await;
    let now = clock_secs(&emu).await;
    let jwt = es512_assertion(&cert, "p521-cert", claims(&emu, now));
    let r = post_token(&emu, &jwt).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["access_token"].as_str().is_some_and(|t| !t.is_empty()));

    // The payload changed after signing (a longer scope list): the signature no longer matches.
    let (input, sig) = jwt.rsplit_once('.').unwrap();
    let header = input.split('.').next().unwrap();
    use base64::Engine;
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        json!({"iss": CLIENT_ID, "scope": ["restlets", "rest_webservices", "suite_analytics"],
            "aud": token_url(&emu), "iat": now, "exp": now + 3600})
        .to_string(),
    );
    let r = post_token(&emu, &format!("{header}.{forged}.{sig}")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    // Signed by another P-521 key than the registered certificate's.
    let other = es512_assertion(&p521_cert(), "p521-cert", claims(&emu, now));
    assert_eq!(post_token(&emu, &other).await.status(), 401);
    // An ES512 assertion naming a P-256 certificate cannot verify either.
    register(&emu, &ec_cert(), "p256-cert").await;
    let wrong_curve = es512_assertion(&cert, "p256-cert", claims(&emu, now));
    assert_eq!(post_token(&emu, &wrong_curve).await.status(), 401);
    // The claims rules still apply: another issuer is refused.
    let mut c = claims(&emu, now);
    c["iss"] = json!("someone-else");
    assert_eq!(
        post_token(&emu, &es512_assertion(&cert, "p521-cert", c))
            .await
            .status(),
        401
    );
    emu.shutdown().await;
}

// ---- SuiteQL beyond single-row reads: GROUP BY with aggregates, DISTINCT, ROWNUM, subqueries.

/// Oracle's own example ("Using SuiteQL with SuiteTalk REST Web Services",
/// section_158394344595) and the forms integrations send: DISTINCT (netsuitediagnostics.com's
/// transaction guide), `WHERE ROWNUM <= n` (the `suiteql` npm client's README), and ROWNUM
/// over an ordered subquery for paging (Tim Dietrich's "Paginating SuiteQL Query Results";
/// lumapps/tap-netsuitesuiteql).
#[tokio::test]
async fn suiteql_groups_counts_distincts_and_numbers_rows() {
    let ns = Ns::new(40).await;
    // Oracle's example, checked against the record API's own data.
    let grouped = rows(
        &ns,
        "SELECT email, COUNT(*) as count FROM transaction GROUP BY email",
    )
    .await;
    let mut by_email = std::collections::HashMap::<String, u64>::new();
    for id in 1..=40 {
        let po = ns.get_json(&format!("/record/v1/purchaseOrder/{id}")).await;
        *by_email
            .entry(po["email"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(grouped.len(), by_email.len());
    for r in &grouped {
        let email = r["email"].as_str().unwrap();
        assert_eq!(r["count"], by_email[email].to_string(), "{email}");
        assert_eq!(r["links"], json!([]));
    }
    // Aggregates with HAVING and ORDER BY on an aggregate; SUM/MIN/MAX/AVG over lines.
    let top = rows(
        &ns,
        "SELECT t.entity, COUNT(*) AS n, MIN(t.id) AS first_id, MAX(t.id) AS last_id \
         FROM transaction t GROUP BY t.entity HAVING COUNT(*) > 1 ORDER BY n DESC, t.entity",
    )
    .await;
    assert!(!top.is_empty());
    let n = |r: &Value| r["n"].as_str().unwrap().parse::<u64>().unwrap();
    assert!(top.iter().all(|r| n(r) > 1));
    assert!(top.windows(2).all(|w| n(&w[0]) >= n(&w[1])));
    let lines = rows(
        &ns,
        "SELECT tl.transaction AS id, COUNT(*) AS lines, SUM(tl.quantity) AS qty, AVG(tl.quantity) AS mean \
         FROM transactionline tl WHERE tl.mainline = 'F' AND tl.transaction = 7 GROUP BY tl.transaction",
    )
    .await;
    let po = ns
        .get_json("/record/v1/purchaseOrder/7?expandSubResources=true")
        .await;
    let quantities: Vec<f64> = po["item"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["quantity"].as_f64().unwrap())
        .collect();
    assert_eq!(lines[0]["lines"], quantities.len().to_string());
    let total: f64 = quantities.iter().sum();
    assert_eq!(
        lines[0]["qty"].as_str().unwrap().parse::<f64>().unwrap(),
        total
    );
    let mean: f64 = lines[0]["mean"].as_str().unwrap().parse().unwrap();
    assert!((mean - total / quantities.len() as f64).abs() < 1e-9);
    // Aggregates without GROUP BY: one row, even over nothing.
    let none = rows(
        &ns,
        "SELECT COUNT(*) AS n, MAX(t.id) AS m FROM transaction t WHERE t.id > 1000 GROUP BY t.type",
    )
    .await;
    assert!(none.is_empty(), "no rows, no groups");
    let empty = rows(
        &ns,
        "SELECT COUNT(t.id) AS n, MAX(t.id) AS m FROM transaction t WHERE t.id > 1000",
    )
    .await;
    assert_eq!(empty.len(), 1);
    assert_eq!(empty[0]["n"], "0");
    assert!(empty[0].get("m").is_none(), "NULL left out");

    // DISTINCT.
    let types = rows(&ns, "SELECT DISTINCT transaction.type FROM Transaction").await;
    assert_eq!(types, [json!({"links": [], "type": "PurchOrd"})]);
    let named = rows(
        &ns,
        "SELECT DISTINCT BUILTIN.DF(transaction.type) AS type FROM Transaction",
    )
    .await;
    assert_eq!(named[0]["type"], "Purchase Order");
    let statuses = rows(
        &ns,
        "SELECT DISTINCT status FROM transaction ORDER BY status",
    )
    .await;
    let letters: Vec<&str> = statuses
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(letters, ["A", "B", "C", "D", "E", "F", "G", "H"]);

    // ROWNUM: numbered as rows pass the filter, before sorting.
    let first = rows(&ns, "select tranid, id from transaction where rownum <= 30").await;
    assert_eq!(first.len(), 30);
    assert_eq!(first[0]["id"], "1");
    assert!(
        rows(&ns, "SELECT id FROM transaction WHERE ROWNUM > 1")
            .await
            .is_empty()
    );
    let numbered = rows(
        &ns,
        "SELECT ROWNUM AS rn, id FROM transaction WHERE id > 10 AND ROWNUM <= 3",
    )
    .await;
    assert_eq!(
        numbered
            .iter()
            .map(|r| (r["rn"].as_str().unwrap(), r["id"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        [("1", "11"), ("2", "12"), ("3", "13")]
    );
    // Top-N: ROWNUM over an ordered subquery takes the first rows of that order.
    let newest = rows(
        &ns,
        "SELECT * FROM (SELECT id, lastmodifieddate FROM transaction ORDER BY lastmodifieddate DESC, id DESC) WHERE ROWNUM <= 5",
    )
    .await;
    let all = rows(
        &ns,
        "SELECT id FROM transaction ORDER BY lastmodifieddate DESC, id DESC",
    )
    .await;
    assert_eq!(ids_of(&newest), ids_of(&all[..5]));
    // Paging by row number (lumapps/tap-netsuitesuiteql's wrapper).
    let inner = "SELECT id, tranid FROM transaction ORDER BY id";
    let window = rows(
        &ns,
        &format!(
            "SELECT * from (SELECT *, rownum as r FROM ( {inner} )) WHERE r BETWEEN 11 and 15"
        ),
    )
    .await;
    assert_eq!(ids_of(&window), ["11", "12", "13", "14", "15"]);
    assert_eq!(window[0]["r"], "11");
    // Paged through the API like any other query.
    let page = ns
        .suiteql(
            "SELECT DISTINCT entity FROM transaction ORDER BY entity",
            2,
            2,
        )
        .await;
    assert_eq!(page.status(), 200);
    let page: Value = page.json().await.unwrap();
    assert_eq!(page["count"], 2);
    assert_eq!(page["offset"], 2);
    assert!(page["totalResults"].as_u64().unwrap() > 4);
    ns.emu.shutdown().await;
}
