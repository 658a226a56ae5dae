//! SAP S/4HANA emulator: golden shapes, `$metadata`, auth (Basic, OAuth, HTML 401), query options and
//! paging, `$filter` boundaries, CSRF, deep insert, updates with the ETag switch, errors.

use ironbridge_emulators::{EmulatorConfig, RunningEmulator, System};
use reqwest::{Method, RequestBuilder, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::support::*;

const SRV: &str = "/sap/opu/odata/sap/API_PURCHASEORDER_PROCESS_SRV";

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Meta {
    id: String,
    uri: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
#[serde(rename_all = "PascalCase")]
struct SapPo {
    #[serde(rename = "__metadata")]
    metadata: Meta,
    purchase_order: String,
    company_code: String,
    purchase_order_type: String,
    purchasing_document_deletion_code: String,
    purchasing_processing_status: String,
    created_by_user: String,
    creation_date: String,
    last_change_date_time: String,
    supplier: String,
    purchasing_organization: String,
    purchasing_group: String,
    purchase_order_date: String,
    document_currency: String,
    exchange_rate: String,
    exchange_rate_is_fixed: bool,
    validity_start_date: Option<String>,
    incoterms_classification: String,
    #[serde(rename = "to_PurchaseOrderItem")]
    to_items: Value,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Collection<T> {
    #[serde(rename = "__count")]
    count: Option<String>,
    results: Vec<T>,
    #[serde(rename = "__next")]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct D<T> {
    d: T,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct ErrorDetail {
    code: String,
    message: String,
    severity: String,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Inner {
    transactionid: String,
    timestamp: String,
    errordetails: Vec<ErrorDetail>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Msg {
    lang: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Err {
    code: String,
    message: Msg,
    innererror: Inner,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct ErrBody {
    error: Err,
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/it/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

struct Sap {
    emu: RunningEmulator,
    http: reqwest::Client,
    cookies: Vec<String>,
    csrf: Option<String>,
}

impl Sap {
    async fn new(orders: u64) -> Self {
        Self::with(EmulatorConfig::new(System::SapS4Hana, 42, orders)).await
    }

    async fn with(config: EmulatorConfig) -> Self {
        Sap {
            emu: start_with(config).await,
            http: client(),
            cookies: Vec::new(),
            csrf: None,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emu.base_url())
    }

    fn req(&self, method: Method, path: &str) -> RequestBuilder {
        let mut r = self
            .http
            .request(method, self.url(path))
            .basic_auth("COMM_USER", Some("Emulator-Pa55word"));
        if !self.cookies.is_empty() {
            r = r.header("cookie", self.cookies.join("; "));
        }
        if let Some(t) = &self.csrf {
            r = r.header("x-csrf-token", t);
        }
        r
    }

    async fn get(&self, path: &str) -> Response {
        self.req(Method::GET, path).send().await.unwrap()
    }

    async fn json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    /// The CSRF handshake as the SAP Cloud SDK does it: HEAD on the service root with `x-csrf-token: Fetch`.
    async fn fetch_csrf(&mut self) {
        let r = self
            .req(Method::HEAD, &format!("{SRV}/"))
            .header("x-csrf-token", "Fetch")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        self.csrf = Some(r.headers()["x-csrf-token"].to_str().unwrap().to_string());
        self.cookies = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string())
            .collect();
    }

    async fn send(&self, method: Method, path: &str, body: Value) -> Response {
        self.req(method, path).json(&body).send().await.unwrap()
    }
}

fn sap_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn date_ms(v: &Value) -> i64 {
    let s = v.as_str().unwrap();
    s.trim_start_matches("/Date(")
        .trim_end_matches(")/")
        .trim_end_matches("+0000")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn golden_payloads_and_emulator_output_share_shapes() {
    let g: D<Collection<SapPo>> = serde_json::from_str(&fixture("sap_po_collection.json")).unwrap();
    assert_eq!(g.d.results[0].exchange_rate, "1.00000");
    let _: ErrBody = serde_json::from_str(&fixture("sap_error.json")).unwrap();
    let sap = Sap::new(20).await;
    let v: D<Collection<SapPo>> = sap
        .get(&format!(
            "{SRV}/A_PurchaseOrder?$top=3&$inlinecount=allpages&$format=json"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v.d.count.as_deref(), Some("20"));
    let po = &v.d.results[0];
    assert_eq!(po.purchase_order, "4500000001");
    assert_eq!(
        po.metadata.kind,
        "API_PURCHASEORDER_PROCESS_SRV.A_PurchaseOrderType"
    );
    assert!(po.metadata.uri.ends_with("/A_PurchaseOrder('4500000001')"));
    assert!(
        po.last_change_date_time.starts_with("/Date(")
            && po.last_change_date_time.ends_with("+0000)/")
    );
    assert!(
        po.to_items["__deferred"]["uri"]
            .as_str()
            .unwrap()
            .ends_with("/to_PurchaseOrderItem")
    );
    let e: ErrBody = sap
        .get(&format!("{SRV}/A_PurchaseOrder('4500999999')"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(e.error.message.lang, "en");
    sap.emu.shutdown().await;
}

#[tokio::test]
async fn metadata_and_service_documents() {
    let sap = Sap::new(10).await;
    let r = sap.get(&format!("{SRV}/$metadata")).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/xml")
    );
    let x = r.text().await.unwrap();
    assert!(
        x.starts_with("<?xml")
            && x.contains("A_PurchaseOrderItemType")
            && x.contains("m:DataServiceVersion=\"2.0\"")
    );
    let doc = sap.json(&format!("{SRV}/?$format=json")).await;
    assert_eq!(
        doc["d"]["EntitySets"],
        json!(["A_PurchaseOrder", "A_PurchaseOrderItem"])
    );
    let xml = sap.get(&format!("{SRV}/")).await.text().await.unwrap();
    assert!(xml.contains("<app:collection href=\"A_PurchaseOrder\">"));
    let sup = sap
        .json("/sap/opu/odata/sap/API_BUSINESS_PARTNER/A_Supplier?$top=2&$format=json")
        .await;
    let s0 = &sup["d"]["results"][0];
    assert_eq!(s0["Supplier"], "10300001");
    assert_eq!(
        s0["__metadata"]["type"],
        "API_BUSINESS_PARTNER.A_SupplierType"
    );
    let one = sap
        .json("/sap/opu/odata/sap/API_BUSINESS_PARTNER/A_Supplier('10300001')?$format=json")
        .await;
    assert_eq!(one["d"]["SupplierName"], s0["SupplierName"]);
    let prod = sap.json("/sap/opu/odata/sap/API_PRODUCT_SRV/A_Product('ITEM-00003')?$expand=to_Description&$format=json").await;
    assert_eq!(prod["d"]["Product"], "ITEM-00003");
    assert_eq!(prod["d"]["to_Description"]["results"][0]["Language"], "EN");
    assert!(
        sap.get("/sap/opu/odata/sap/API_PRODUCT_SRV/$metadata")
            .await
            .text()
            .await
            .unwrap()
            .contains("A_ProductDescription")
    );
    let r = sap.get("/sap/opu/odata/sap/NO_SUCH_SRV/A_Thing").await;
    assert_eq!(r.status(), 404);
    let r = sap.get(&format!("{SRV}/A_Nothing")).await;
    assert_eq!(r.status(), 404);
    assert!(
        r.json::<Value>().await.unwrap()["error"]["message"]["value"]
            .as_str()
            .unwrap()
            .contains("A_Nothing")
    );
    sap.emu.shutdown().await;
}

#[tokio::test]
async fn basic_and_oauth_authentication() {
    let sap = Sap::new(10).await;
    let path = sap.url(&format!("{SRV}/A_PurchaseOrder?$top=1&$format=json"));
    let r = sap.http.get(&path).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Basic realm=\"SAP NetWeaver Application Server [EMU/100]\""
    );
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(r.text().await.unwrap().contains("Logon"));
    let r = sap
        .http
        .get(&path)
        .basic_auth("COMM_USER", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = sap
        .http
        .get(&path)
        .basic_auth("comm_user", Some("Emulator-Pa55word"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "user names are case-insensitive");

    let tok_url = sap.url("/sap/bc/sec/oauth2/token");
    let r = sap
        .http
        .post(&tok_url)
        .basic_auth("emulator-client", Some("nope"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    let r = sap
        .http
        .post(&tok_url)
        .basic_auth("emulator-client", Some("Emulator-Pa55word"))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = sap
        .http
        .post(&tok_url)
        .basic_auth("emulator-client", Some("Emulator-Pa55word"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(
        (t["token_type"].as_str(), t["expires_in"].as_i64()),
        (Some("Bearer"), Some(3600))
    );
    let token = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        sap.http
            .get(&path)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    admin_json(
        &sap.emu,
        Method::POST,
        "/clock",
        Some(json!({"advance_seconds": 3600})),
    )
    .await;
    assert_eq!(
        sap.http
            .get(&path)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    admin_json(
        &sap.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"auth_failure_html": false})),
    )
    .await;
    let r = sap.http.get(&path).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.json::<Value>().await.unwrap()["error"]["code"].is_string());
    // Rotation changes the password; revocation fails everything.
    let creds = admin_json(&sap.emu, Method::POST, "/credentials/rotate", None).await;
    assert_eq!(
        sap.get(&format!("{SRV}/A_PurchaseOrder?$top=1"))
            .await
            .status(),
        401
    );
    let pw = creds["password"].as_str().unwrap();
    assert_eq!(
        sap.http
            .get(&path)
            .basic_auth("COMM_USER", Some(pw))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    admin_json(&sap.emu, Method::POST, "/credentials/revoke", None).await;
    assert_eq!(
        sap.http
            .get(&path)
            .basic_auth("COMM_USER", Some(pw))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    sap.emu.shutdown().await;
}

#[tokio::test]
async fn top_skip_paging_to_the_end_and_counts() {
    let sap = Sap::new(23).await;
    let mut seen = Vec::new();
    let mut skip = 0;
    loop {
        let v = sap
            .json(&format!(
                "{SRV}/A_PurchaseOrder?$top=5&$skip={skip}&$format=json&$select=PurchaseOrder"
            ))
            .await;
        let rs = v["d"]["results"].as_array().unwrap();
        assert!(
            v["d"].get("__next").is_none(),
            "no server paging by default"
        );
        if rs.is_empty() {
            break;
        }
        for r in rs {
            let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
            assert_eq!(
                keys.len(),
                2,
                "$select keeps the key and __metadata: {keys:?}"
            );
            seen.push(r["PurchaseOrder"].as_str().unwrap().to_string());
        }
        skip += 5;
    }
    assert_eq!(seen.len(), 23);
    assert_eq!(seen.first().map(String::as_str), Some("4500000001"));
    let all = sap
        .json(&format!("{SRV}/A_PurchaseOrder?$format=json"))
        .await;
    assert_eq!(
        all["d"]["results"].as_array().unwrap().len(),
        23,
        "CDS A2X: everything without $top"
    );
    let count = sap.get(&format!("{SRV}/A_PurchaseOrder/$count")).await;
    assert!(
        count.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(count.text().await.unwrap(), "23");

    // Server-driven paging: follow __next opaquely.
    admin_json(
        &sap.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"server_page_size": 10})),
    )
    .await;
    let mut url = format!(
        "{SRV}/A_PurchaseOrder?$format=json&$inlinecount=allpages&$orderby=LastChangeDateTime asc,PurchaseOrder asc"
    );
    let mut pages = 0;
    let mut got = Vec::new();
    loop {
        let v = sap.json(&url).await;
        assert_eq!(v["d"]["__count"], "23");
        got.extend(
            v["d"]["results"]
                .as_array()
                .unwrap()
                .iter()
                // No change time sorts first (as SAP HANA sorts nulls in ascending order).
                .map(|r| match &r["LastChangeDateTime"] {
                    Value::Null => i64::MIN,
                    t => date_ms(t),
                }),
        );
        pages += 1;
        match v["d"]["__next"].as_str() {
            Some(n) => {
                assert!(n.contains("$skiptoken="));
                url = n.trim_start_matches(&sap.emu.base_url()).to_string();
            }
            None => break,
        }
    }
    assert_eq!((pages, got.len()), (3, 23));
    assert!(got.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(got.iter().filter(|t| **t == i64::MIN).count(), 2);
    let v = sap
        .json(&format!("{SRV}/A_PurchaseOrder?$format=json&$top=12"))
        .await;
    assert_eq!(v["d"]["results"].as_array().unwrap().len(), 10);
    let next = v["d"]["__next"]
        .as_str()
        .unwrap()
        .trim_start_matches(&sap.emu.base_url())
        .to_string();
    let v = sap.json(&next).await;
    assert_eq!(
        v["d"]["results"].as_array().unwrap().len(),
        2,
        "$top still bounds the pages"
    );
    assert!(v["d"].get("__next").is_none());
    for bad in [
        "$top=x",
        "$skip=-1",
        "$orderby=Nope",
        "$orderby=PurchaseOrder sideways",
        "$expand=to_Nothing",
    ] {
        let r = sap.get(&format!("{SRV}/A_PurchaseOrder?{bad}")).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    sap.emu.shutdown().await;
}

#[tokio::test]
async fn filter_boundaries_and_expand() {
    let sap = Sap::new(30).await;
    admin_json(
        &sap.emu,
        Method::POST,
        "/clock",
        Some(json!({"set": "2026-01-15T10:00:00Z"})),
    )
    .await;
    admin_json(
        &sap.emu,
        Method::POST,
        "/records/purchase_orders/12/touch",
        None,
    )
    .await;
    let q = |f: &str| {
        format!(
            "{SRV}/A_PurchaseOrder?$format=json&$filter={}",
            crate::netsuite::urlencode(f)
        )
    };
    let ids = |v: &Value| -> Vec<String> {
        v["d"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["PurchaseOrder"].as_str().unwrap().to_string())
            .collect()
    };
    let ge = sap
        .json(&q(
            "LastChangeDateTime ge datetimeoffset'2026-01-15T10:00:00Z'",
        ))
        .await;
    assert_eq!(ids(&ge), vec!["4500000012"]);
    let gt = sap
        .json(&q(
            "LastChangeDateTime gt datetimeoffset'2026-01-15T10:00:00Z'",
        ))
        .await;
    assert!(ids(&gt).is_empty(), "gt excludes the boundary");
    let dt = sap
        .json(&q("LastChangeDateTime ge datetime'2026-01-15T10:00:00'"))
        .await;
    assert_eq!(ids(&dt), vec!["4500000012"]);
    let before = sap
        .json(&format!(
            "{}&$inlinecount=allpages&$top=0",
            q("LastChangeDateTime lt datetimeoffset'2026-01-15T10:00:00Z'")
        ))
        .await;
    // Orders 10, 20 and 30 have no change time: no comparison with a time holds for them.
    assert_eq!(before["d"]["__count"], "26");
    let or = sap.json(&q("(PurchaseOrder eq '4500000003' or PurchaseOrder eq '4500000004') and PurchaseOrderType eq 'NB'")).await;
    assert_eq!(ids(&or), vec!["4500000003", "4500000004"]);
    let sub = sap.json(&q("substringof('0000007',PurchaseOrder)")).await;
    assert_eq!(ids(&sub), vec!["4500000007"]);
    let desc = sap
        .json(&format!(
            "{SRV}/A_PurchaseOrder?$format=json&$orderby=PurchaseOrder desc&$top=2"
        ))
        .await;
    assert_eq!(ids(&desc), vec!["4500000030", "4500000029"]);
    for bad in [
        "PurchaseOrder eq",
        "Nope eq 'x'",
        "LastChangeDateTime gt datetimeoffset'yesterday'",
        "frobnicate(PurchaseOrder)",
    ] {
        let r = sap.get(&q(bad)).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert!(r.json::<Value>().await.unwrap()["error"]["innererror"]["errordetails"].is_array());
    }

    // The incremental sync shape from target-systems.md §2.4.
    let inc = sap.json(&format!("{SRV}/A_PurchaseOrder?$filter=LastChangeDateTime%20gt%20datetimeoffset'2020-01-15T00:00:00Z'&$orderby=LastChangeDateTime%20asc,PurchaseOrder%20asc&$expand=to_PurchaseOrderItem&$top=500&$skip=0&$format=json")).await;
    let rs = inc["d"]["results"].as_array().unwrap();
    assert_eq!(rs.len(), 27);
    let unset = sap.json(&q("LastChangeDateTime eq null")).await;
    assert_eq!(ids(&unset), vec!["4500000010", "4500000020", "4500000030"]);
    let set = sap
        .json(&format!(
            "{}&$inlinecount=allpages&$top=0",
            q("LastChangeDateTime ne null")
        ))
        .await;
    assert_eq!(set["d"]["__count"], "27");
    // A change sets the change time.
    admin_json(
        &sap.emu,
        Method::POST,
        "/records/purchase_orders/20/touch",
        None,
    )
    .await;
    let unset = sap.json(&q("LastChangeDateTime eq null")).await;
    assert_eq!(ids(&unset), vec!["4500000010", "4500000030"]);
    let items = rs[0]["to_PurchaseOrderItem"]["results"].as_array().unwrap();
    assert!(!items.is_empty());
    assert_eq!(items[0]["PurchaseOrderItem"], "10");
    assert!(
        items[0]["OrderQuantity"]
            .as_str()
            .unwrap()
            .ends_with(".000")
    );
    assert!(
        items[0]["YY1_ProjectCode_PDI"]
            .as_str()
            .unwrap()
            .starts_with("PRJ-")
    );
    let nav = sap
        .json(&format!(
            "{SRV}/A_PurchaseOrder('{}')/to_PurchaseOrderItem?$format=json",
            rs[0]["PurchaseOrder"].as_str().unwrap()
        ))
        .await;
    assert_eq!(nav["d"]["results"].as_array().unwrap().len(), items.len());
    let item = sap.json(&format!("{SRV}/A_PurchaseOrderItem(PurchaseOrder='4500000002',PurchaseOrderItem='10')?$format=json")).await;
    assert_eq!(item["d"]["PurchaseOrderItem"], "10");
    let by_po = sap
        .json(&format!(
            "{SRV}/A_PurchaseOrderItem?$format=json&$filter=PurchaseOrder%20eq%20'4500000002'"
        ))
        .await;
    assert!(!by_po["d"]["results"].as_array().unwrap().is_empty());
    assert_eq!(
        sap.get(&format!(
            "{SRV}/A_PurchaseOrderItem(PurchaseOrder='4500000002',PurchaseOrderItem='15')"
        ))
        .await
        .status(),
        404
    );
    assert_eq!(
        sap.get(&format!("{SRV}/A_PurchaseOrderItem('4500000002')"))
            .await
            .status(),
        400
    );
    sap.emu.shutdown().await;
}

#[tokio::test]
async fn csrf_handshake_and_deep_insert() {
    let mut sap = Sap::new(10).await;
    admin_json(
        &sap.emu,
        Method::POST,
        "/clock",
        Some(json!({"set": "2026-02-01T00:00:00Z"})),
    )
    .await;
    let body = json!({"CompanyCode":"1010","PurchaseOrderType":"NB","Supplier":"10300002","PurchasingOrganization":"1010",
        "PurchasingGroup":"001","DocumentCurrency":"EUR",
        "to_PurchaseOrderItem":[{"PurchaseOrderItem":"10","Material":"ITEM-00003","Plant":"1010","OrderQuantity":"10",
          "PurchaseOrderQuantityUnit":"PC","NetPriceAmount":"12.50","DocumentCurrency":"EUR","AccountAssignmentCategory":""}]});
    let r = sap
        .send(
            Method::POST,
            &format!("{SRV}/A_PurchaseOrder"),
            body.clone(),
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-csrf-token"], "Required");
    assert_eq!(r.text().await.unwrap(), "CSRF token validation failed");
    sap.fetch_csrf().await;
    assert!(
        sap.cookies
            .iter()
            .any(|c| c.starts_with("SAP_SESSIONID_EMU_100="))
    );
    // A second fetch in the same session returns the same token.
    let saved = sap.csrf.take();
    let again = sap
        .req(Method::GET, &format!("{SRV}/"))
        .header("x-csrf-token", "Fetch")
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.headers()["x-csrf-token"].to_str().unwrap(),
        saved.as_deref().unwrap()
    );
    sap.csrf = saved;

    let r = sap
        .send(
            Method::POST,
            &format!("{SRV}/A_PurchaseOrder"),
            body.clone(),
        )
        .await;
    assert_eq!(r.status(), 201);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.ends_with("/A_PurchaseOrder('4500000011')"), "{loc}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["d"]["PurchaseOrder"], "4500000011");
    assert_eq!(
        v["d"]["to_PurchaseOrderItem"]["results"][0]["NetPriceAmount"],
        "12.500"
    );
    assert_eq!(date_ms(&v["d"]["LastChangeDateTime"]), 1_769_904_000_000);
    // The {"results": [...]} wrapping of the navigation is accepted too.
    let mut wrapped = body.clone();
    wrapped["to_PurchaseOrderItem"] = json!({"results": body["to_PurchaseOrderItem"]});
    assert_eq!(
        sap.send(Method::POST, &format!("{SRV}/A_PurchaseOrder"), wrapped)
            .await
            .status(),
        201
    );

    // A token from another session, or a wrong one, is refused.
    let saved = sap.csrf.take();
    let r = sap
        .req(Method::POST, &format!("{SRV}/A_PurchaseOrder"))
        .header("x-csrf-token", "forged-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    sap.csrf = saved;
    let no_cookie = sap
        .http
        .post(sap.url(&format!("{SRV}/A_PurchaseOrder")))
        .basic_auth("COMM_USER", Some("Emulator-Pa55word"))
        .header("x-csrf-token", sap.csrf.clone().unwrap())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_cookie.status(), 403);

    async fn expect(sap: &Sap, body: Value, code: &str) {
        let r = sap
            .send(Method::POST, &format!("{SRV}/A_PurchaseOrder"), body)
            .await;
        assert_eq!(r.status(), 400, "{code}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(sap_code(&v), code, "{v}");
        assert_eq!(v["error"]["innererror"]["errordetails"][0]["code"], code);
    }
    let mut b = body.clone();
    b.as_object_mut().unwrap().remove("PurchasingGroup");
    expect(&sap, b, "ME/083").await;
    let mut b = body.clone();
    b["Supplier"] = json!("10399999");
    expect(&sap, b, "ME/045").await;
    admin_json(
        &sap.emu,
        Method::PATCH,
        "/records/vendors/3",
        Some(json!({"inactive": true})),
    )
    .await;
    let mut b = body.clone();
    b["Supplier"] = json!("10300003");
    expect(&sap, b, "ME/046").await;
    let mut b = body.clone();
    b["to_PurchaseOrderItem"][0]["Material"] = json!("NOPE");
    expect(&sap, b, "ME/062").await;
    let mut b = body.clone();
    b["to_PurchaseOrderItem"][0]["OrderQuantity"] = json!("0");
    expect(&sap, b, "ME/069").await;
    let mut b = body.clone();
    b["Bogus"] = json!(1);
    expect(&sap, b, "/IWBEP/CM_MGW_RT/005").await;
    let r = sap
        .req(Method::POST, &format!("{SRV}/A_PurchaseOrder"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Items through the navigation.
    let r = sap
        .send(
            Method::POST,
            &format!("{SRV}/A_PurchaseOrder('4500000011')/to_PurchaseOrderItem"),
            json!({"Material": "ITEM-00004", "OrderQuantity": "2", "Plant": "1010"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["d"]["PurchaseOrderItem"], "20");
    sap.emu.shutdown().await;
}

#[tokio::test]
async fn updates_deletes_and_the_etag_switch() {
    let mut sap = Sap::new(10).await;
    sap.fetch_csrf().await;
    admin_json(
        &sap.emu,
        Method::POST,
        "/clock",
        Some(json!({"set": "2026-03-01T00:00:00Z"})),
    )
    .await;
    let po = format!("{SRV}/A_PurchaseOrder('4500000002')");
    let r = sap
        .send(
            Method::PATCH,
            &po,
            json!({"YY1_Priority_PDH": "Urgent", "LastChangeDateTime": "/Date(0+0000)/"}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let v = sap.json(&format!("{po}?$format=json")).await;
    assert_eq!(v["d"]["YY1_Priority_PDH"], "Urgent");
    assert_eq!(
        date_ms(&v["d"]["LastChangeDateTime"]),
        1_772_323_200_000,
        "bumped, the client's value ignored"
    );
    // MERGE tunnelled through POST, as older clients do.
    let r = sap
        .req(Method::POST, &po)
        .header("x-http-method", "MERGE")
        .json(&json!({"DocumentCurrency": "USD"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = sap
        .send(Method::PATCH, &po, json!({"PurchasingGroup": ""}))
        .await;
    assert_eq!(sap_code(&r.json::<Value>().await.unwrap()), "ME/083");
    let item =
        format!("{SRV}/A_PurchaseOrderItem(PurchaseOrder='4500000002',PurchaseOrderItem='10')");
    assert_eq!(
        sap.send(Method::PATCH, &item, json!({"OrderQuantity": "7"}))
            .await
            .status(),
        204
    );
    assert_eq!(
        sap.json(&format!("{item}?$format=json")).await["d"]["OrderQuantity"],
        "7.000"
    );
    assert_eq!(
        sap.req(Method::DELETE, &item)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        sap.json(&format!("{item}?$format=json")).await["d"]["PurchasingDocumentDeletionCode"],
        "L"
    );
    // Order 8 is deleted (closed): changes are refused.
    let r = sap
        .send(
            Method::PATCH,
            &format!("{SRV}/A_PurchaseOrder('4500000008')"),
            json!({"YY1_Priority_PDH": "Low"}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = sap
        .send(Method::PATCH, &format!("{SRV}/A_Nothing('1')"), json!({}))
        .await;
    assert_eq!(r.status(), 404);

    admin_json(
        &sap.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"etag": true})),
    )
    .await;
    let r = sap.get(&format!("{po}?$format=json")).await;
    let tag = r.headers()["etag"].to_str().unwrap().to_string();
    assert!(
        tag.starts_with("W/\"datetimeoffset'2026-03-01T00%3A00%3A00.0000000Z'"),
        "{tag}"
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["d"]["__metadata"]["etag"], tag.as_str());
    let r = sap
        .send(Method::PATCH, &po, json!({"YY1_Priority_PDH": "Low"}))
        .await;
    assert_eq!(r.status(), 428);
    let r = sap
        .req(Method::PATCH, &po)
        .header(
            "if-match",
            "W/\"datetimeoffset'2000-01-01T00%3A00%3A00.0000000Z'\"",
        )
        .json(&json!({"YY1_Priority_PDH": "Low"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    admin_json(
        &sap.emu,
        Method::POST,
        "/clock",
        Some(json!({"advance_seconds": 5})),
    )
    .await;
    let r = sap
        .req(Method::PATCH, &po)
        .header("if-match", &tag)
        .json(&json!({"YY1_Priority_PDH": "Low"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = sap
        .req(Method::PATCH, &po)
        .header("if-match", &tag)
        .json(&json!({"YY1_Priority_PDH": "Normal"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412, "the old ETag is stale after the change");
    let r = sap
        .req(Method::PATCH, &po)
        .header("if-match", "*")
        .json(&json!({"YY1_Priority_PDH": "Normal"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    // Writes are logged with their CSRF header and cookie.
    let log = admin_json(&sap.emu, Method::GET, "/requests", None).await;
    let last = log["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["method"], "PATCH");
    assert_eq!(last["headers"]["if-match"], "*");
    assert!(last["has_cookie"].as_bool().unwrap());
    assert_eq!(last["auth_scheme"], "Basic");
    sap.emu.shutdown().await;
}

#[tokio::test]
async fn throttling_switch_and_faults_answer_in_sap_format() {
    let sap = Sap::new(10).await;
    admin_json(
        &sap.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"rate_limit_per_minute": 2})),
    )
    .await;
    let path = format!("{SRV}/A_PurchaseOrder?$top=1&$format=json");
    assert_eq!(sap.get(&path).await.status(), 200);
    assert_eq!(sap.get(&path).await.status(), 200);
    let r = sap.get(&path).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "60");
    assert!(sap_code(&r.json::<Value>().await.unwrap()).starts_with("/IWFND/"));
    // The budget is per emulator-clock minute.
    admin_json(
        &sap.emu,
        Method::POST,
        "/clock",
        Some(json!({"advance_seconds": 60})),
    )
    .await;
    assert_eq!(sap.get(&path).await.status(), 200);
    admin_json(
        &sap.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"rate_limit_per_minute": null})),
    )
    .await;
    admin_json(
        &sap.emu,
        Method::PUT,
        "/faults",
        Some(json!({"error_rate": 1.0})),
    )
    .await;
    let r = sap.get(&path).await;
    assert_eq!(r.status(), 503);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"]["value"].is_string());
    sap.emu.shutdown().await;
}

#[tokio::test]
async fn your_reference_is_declared_stored_filterable_and_bounded() {
    let mut sap = Sap::new(10).await;
    let meta = sap
        .get(&format!("{SRV}/$metadata"))
        .await
        .text()
        .await
        .unwrap();
    let declared = meta
        .split("<Property ")
        .find(|p| p.starts_with(r#"Name="CorrespncExternalReference""#))
        .expect("declared in $metadata");
    assert!(
        declared.contains(r#"Type="Edm.String""#) && declared.contains(r#"MaxLength="12""#),
        "declared as in SAP's EDMX: {declared}"
    );
    sap.fetch_csrf().await;
    let order = |reference: &str| {
        json!({"Supplier":"10300002","PurchasingGroup":"001","CorrespncExternalReference": reference,
            "to_PurchaseOrderItem":[{"Material":"ITEM-00003","OrderQuantity":"2"}]})
    };
    let r = sap
        .send(
            Method::POST,
            &format!("{SRV}/A_PurchaseOrder"),
            order("IBREF0000001"),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let key = created["d"]["PurchaseOrder"].as_str().unwrap().to_string();
    assert_eq!(created["d"]["CorrespncExternalReference"], "IBREF0000001");
    // Found by a filter on it, with its items; seeded orders carry none.
    let found = sap
        .json(&format!(
            "{SRV}/A_PurchaseOrder?$filter=CorrespncExternalReference%20eq%20'IBREF0000001'&$expand=to_PurchaseOrderItem&$format=json"
        ))
        .await;
    let results = found["d"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["PurchaseOrder"], json!(key));
    assert_eq!(
        results[0]["to_PurchaseOrderItem"]["results"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let seeded = sap
        .json(&format!("{SRV}/A_PurchaseOrder('4500000001')?$format=json"))
        .await;
    assert_eq!(seeded["d"]["CorrespncExternalReference"], "");
    // Thirteen characters do not fit.
    let r = sap
        .send(
            Method::POST,
            &format!("{SRV}/A_PurchaseOrder"),
            order("IBREF00000013"),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        sap_code(&r.json::<Value>().await.unwrap()),
        "/IWBEP/CM_MGW_RT/006"
    );
    // It is updatable on the header.
    let r = sap
        .send(
            Method::PATCH,
            &format!("{SRV}/A_PurchaseOrder('{key}')"),
            json!({"CorrespncExternalReference": "IBREF0000002"}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let found = sap
        .json(&format!(
            "{SRV}/A_PurchaseOrder?$filter=CorrespncExternalReference%20eq%20'IBREF0000002'&$format=json"
        ))
        .await;
    assert_eq!(found["d"]["results"][0]["PurchaseOrder"], json!(key));
    sap.emu.shutdown().await;
}

#[tokio::test]
async fn suppliers_are_business_partners_and_products_take_their_descriptions() {
    let mut sap = Sap::new(20).await;
    sap.fetch_csrf().await;
    let bp = "/sap/opu/odata/sap/API_BUSINESS_PARTNER";
    let product = "/sap/opu/odata/sap/API_PRODUCT_SRV";
    // Every supplier has its business partner, in the supplier roles.
    let v = sap
        .json(&format!("{bp}/A_BusinessPartner('10300001')?$expand=to_BusinessPartnerRole,to_Supplier&$format=json"))
        .await;
    assert_eq!(v["d"]["Supplier"], "10300001");
    assert_eq!(v["d"]["to_Supplier"]["Supplier"], "10300001");
    let roles: Vec<&str> = v["d"]["to_BusinessPartnerRole"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["BusinessPartnerRole"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["FLVN00", "FLVN01"]);
    let found = sap
        .json(&format!("{bp}/A_BusinessPartner?$filter=Supplier%20eq%20'10300002'&$select=BusinessPartner&$format=json"))
        .await;
    assert_eq!(found["d"]["results"][0]["BusinessPartner"], "10300002");
    assert!(
        sap.get(&format!("{bp}/$metadata"))
            .await
            .text()
            .await
            .unwrap()
            .contains("A_BusinessPartnerType")
    );
    // A new organization in the supplier roles: its supplier comes with it.
    let bad = sap
        .send(Method::POST, &format!("{bp}/A_BusinessPartner"), json!({"BusinessPartnerCategory": "2", "to_BusinessPartnerRole": [{"BusinessPartnerRole": "FLVN01"}]}))
        .await;
    assert_eq!(bad.status(), 400);
    assert_eq!(sap_code(&bad.json().await.unwrap()), "R11/401");
    let bad = sap
        .send(
            Method::POST,
            &format!("{bp}/A_BusinessPartner"),
            json!({"BusinessPartnerCategory": "2", "OrganizationBPName1": "Contoso"}),
        )
        .await;
    assert_eq!(sap_code(&bad.json().await.unwrap()), "R11/655");
    let r = sap
        .send(
            Method::POST,
            &format!("{bp}/A_BusinessPartner"),
            json!({"BusinessPartnerCategory": "2", "OrganizationBPName1": "Contoso",
                "to_BusinessPartnerRole": [{"BusinessPartnerRole": "FLVN00"}, {"BusinessPartnerRole": "FLVN01"}],
                "to_Supplier": {"PurchasingIsBlocked": true}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let key = created["d"]["Supplier"].as_str().unwrap().to_string();
    assert_eq!(created["d"]["to_Supplier"]["PurchasingIsBlocked"], true);
    let s = sap
        .json(&format!("{bp}/A_Supplier('{key}')?$format=json"))
        .await;
    assert_eq!(
        (
            s["d"]["SupplierName"].as_str(),
            s["d"]["PurchasingIsBlocked"].as_bool()
        ),
        (Some("Contoso"), Some(true))
    );
    let r = sap
        .send(
            Method::PATCH,
            &format!("{bp}/A_Supplier('{key}')"),
            json!({"PurchasingIsBlocked": false}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let r = sap
        .send(
            Method::PATCH,
            &format!("{bp}/A_BusinessPartner('{key}')"),
            json!({"OrganizationBPName1": "Contoso AG"}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let s = sap
        .json(&format!("{bp}/A_Supplier('{key}')?$format=json"))
        .await;
    assert_eq!(
        (
            s["d"]["SupplierName"].as_str(),
            s["d"]["PurchasingIsBlocked"].as_bool()
        ),
        (Some("Contoso AG"), Some(false))
    );
    // Products: key, type and base unit are required; a taken key is refused.
    let r = sap
        .send(
            Method::POST,
            &format!("{product}/A_Product"),
            json!({"Product": "TG-1", "BaseUnit": "EA"}),
        )
        .await;
    assert_eq!(sap_code(&r.json().await.unwrap()), "M3/140");
    let r = sap
        .send(
            Method::POST,
            &format!("{product}/A_Product"),
            json!({"Product": "ITEM-00001", "ProductType": "HAWA", "BaseUnit": "EA"}),
        )
        .await;
    assert_eq!(sap_code(&r.json().await.unwrap()), "M3/351");
    let r = sap
        .send(
            Method::POST,
            &format!("{product}/A_Product"),
            json!({"Product": "TG-1", "ProductType": "NLAG", "BaseUnit": "EA",
                "to_Description": [{"Product": "TG-1", "Language": "EN", "ProductDescription": "Packaging"}]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let p = sap
        .json(&format!(
            "{product}/A_Product('TG-1')?$expand=to_Description&$format=json"
        ))
        .await;
    assert_eq!(p["d"]["ProductType"], "NLAG");
    assert_eq!(
        p["d"]["to_Description"]["results"][0]["ProductDescription"],
        "Packaging"
    );
    let r = sap
        .send(
            Method::PATCH,
            &format!("{product}/A_ProductDescription(Product='TG-1',Language='EN')"),
            json!({"ProductDescription": "Boxes"}),
        )
        .await;
    assert_eq!(r.status(), 204);
    // The new product can be ordered.
    let r = sap
        .send(
            Method::POST,
            &format!("{SRV}/A_PurchaseOrder"),
            json!({"Supplier": key, "PurchasingGroup": "001", "to_PurchaseOrderItem": [{"Material": "TG-1", "OrderQuantity": "2"}]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    // Sets the communication user may not change: 403 in SAP's error body.
    admin_json(
        &sap.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"denied_entity_sets": ["A_Product"]})),
    )
    .await;
    let r = sap
        .send(
            Method::PATCH,
            &format!("{product}/A_Product('TG-1')"),
            json!({"IsMarkedForDeletion": true}),
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(sap_code(&r.json().await.unwrap()), "/IWBEP/CM_MGW_RT/010");
}
