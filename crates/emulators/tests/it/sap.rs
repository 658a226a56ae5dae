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

    /// A request as SAP clients send it: asking for JSON (SAP answers Atom otherwise).
    fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.bare(method, path).header("accept", "application/json")
    }

    /// A request with no `Accept`: what SAP Gateway answers by default.
    fn bare(&self, method: Method, path: &str) -> RequestBuilder {
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

/// A quantity as SAP writes it: the decimals of its unit (the emulator's units: EA and BOX
/// none, KG and M three).
fn sap_quantity(n: f64, unit: &str) -> String {
    match unit {
        "KG" | "M" => format!("{n:.3}"),
        _ => format!("{n:.0}"),
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
        json!([
            "A_PurchaseOrder",
            "A_PurchaseOrderItem",
            "A_PurchaseOrderNote",
            "A_PurchaseOrderScheduleLine",
            "A_PurOrdAccountAssignment"
        ])
    );
    let xml = sap
        .bare(Method::GET, &format!("{SRV}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
    // Quantities carry the decimals of their unit (none for pieces, three for kilograms and
    // metres), not the declared scale of 3.
    let unit = items[0]["PurchaseOrderQuantityUnit"].as_str().unwrap();
    let qty = items[0]["OrderQuantity"].as_str().unwrap();
    assert_eq!(qty, sap_quantity(qty.parse().unwrap(), unit), "{unit}");
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
    // An amount has the decimals of its currency (USD: two), not the declared scale of 3.
    assert_eq!(
        v["d"]["to_PurchaseOrderItem"]["results"][0]["NetPriceAmount"],
        "12.50"
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
    let changed = sap.json(&format!("{item}?$format=json")).await;
    assert_eq!(
        changed["d"]["OrderQuantity"],
        sap_quantity(
            7.0,
            changed["d"]["PurchaseOrderQuantityUnit"].as_str().unwrap()
        )
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

/// The `<d:Name` elements of an Atom entry or feed, in order.
fn atom_properties(xml: &str) -> Vec<String> {
    xml.split("<d:")
        .skip(1)
        .filter_map(|s| s.split(['>', ' ', '/']).next().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn atom_by_default_json_when_asked() {
    let sap = Sap::new(10).await;
    let r = sap
        .bare(Method::GET, &format!("{SRV}/A_PurchaseOrder?$top=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/atom+xml;type=feed")
    );
    let feed = r.text().await.unwrap();
    assert!(feed.starts_with("<?xml") && feed.contains("<feed xml:base="));
    assert_eq!(feed.matches("<entry>").count(), 2);
    assert!(feed.contains("<d:PurchaseOrder>4500000001</d:PurchaseOrder>"));
    assert!(feed.contains("<d:ValidityStartDate m:null=\"true\"/>"));
    assert!(feed.contains("<d:PurchaseOrderSubtype/>"));
    assert!(feed.contains("<d:ExchangeRate>1.00000</d:ExchangeRate>"));
    assert!(
        !feed.contains("m:type="),
        "SAP Gateway writes no m:type in Atom"
    );

    // One entity: an entry shaped as the recorded one, its properties in the same order.
    let golden = fixture("sap_po_entry.atom.xml");
    let entry = sap
        .bare(Method::GET, &format!("{SRV}/A_PurchaseOrder('4500000002')"))
        .send()
        .await
        .unwrap();
    assert!(
        entry.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/atom+xml;type=entry")
    );
    let entry = entry.text().await.unwrap();
    for part in [
        "<category term=\"API_PURCHASEORDER_PROCESS_SRV.A_PurchaseOrderType\" scheme=\"http://schemas.microsoft.com/ado/2007/08/dataservices/scheme\"/>",
        "<link href=\"A_PurchaseOrder('4500000002')\" rel=\"edit\" title=\"A_PurchaseOrderType\"/>",
        "<link href=\"A_PurchaseOrder('4500000002')/to_PurchaseOrderNote\" rel=\"http://schemas.microsoft.com/ado/2007/08/dataservices/related/to_PurchaseOrderNote\" type=\"application/atom+xml;type=feed\" title=\"to_PurchaseOrderNote\"/>",
        "<d:PurchasingDocumentOrigin>9</d:PurchasingDocumentOrigin>",
    ] {
        assert!(
            golden.contains(&part.replace("4500000002", "4500003595")),
            "{part}"
        );
        assert!(entry.contains(part), "{part}");
    }
    let recorded = atom_properties(&golden);
    let ours: Vec<String> = atom_properties(&entry)
        .into_iter()
        .filter(|p| recorded.contains(p))
        .collect();
    assert_eq!(ours, recorded);
    // Dates as the recording writes them.
    let creation = entry.split("<d:CreationDate>").nth(1).unwrap();
    assert_eq!(creation.find("</d:CreationDate>"), Some(19));
    let changed = entry.split("<d:LastChangeDateTime>").nth(1).unwrap();
    assert_eq!(changed.find("</d:LastChangeDateTime>"), Some(28));

    // $format=atom too; JSON with $format=json or an Accept naming JSON.
    let a = sap
        .bare(
            Method::GET,
            &format!("{SRV}/A_PurchaseOrder?$top=1&$format=atom"),
        )
        .send()
        .await
        .unwrap();
    assert!(a.text().await.unwrap().contains("<feed"));
    for (path, accept) in [
        (
            "A_PurchaseOrder?$top=1&$format=json",
            "application/atom+xml",
        ),
        ("A_PurchaseOrder?$top=1", "application/json;q=0.9, */*"),
    ] {
        let j: Value = sap
            .bare(Method::GET, &format!("{SRV}/{path}"))
            .header("accept", accept)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            j["d"]["results"][0]["PurchaseOrder"], "4500000001",
            "{path}"
        );
    }
    // Navigation and expansion in Atom: an inline feed of the items.
    let x = sap
        .bare(
            Method::GET,
            &format!("{SRV}/A_PurchaseOrder('4500000002')?$expand=to_PurchaseOrderItem"),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        x.contains("<m:inline><feed>")
            && x.contains("<d:PurchaseOrderItem>10</d:PurchaseOrderItem>")
    );
    sap.emu.shutdown().await;
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
#[serde(rename_all = "PascalCase")]
struct SapItem {
    #[serde(rename = "__metadata")]
    metadata: Meta,
    purchase_order: String,
    purchase_order_item: String,
    order_quantity: String,
    purchase_order_quantity_unit: String,
    net_price_amount: String,
    net_price_quantity: String,
    document_currency: String,
    over_deliv_tolrtd_lmt_ratio_in_pct: Option<String>,
    item_net_weight: String,
    purchase_requisition_item: String,
    #[serde(rename = "to_ScheduleLine")]
    schedule: Value,
    #[serde(rename = "to_AccountAssignment")]
    account: Value,
}

/// Decimals after the point (0 without one).
fn decimals(s: &str) -> usize {
    s.split_once('.').map_or(0, |(_, f)| f.len())
}

#[tokio::test]
async fn numbers_are_written_by_unit_and_currency_as_the_recording_shows() {
    // The recorded sandbox item: pieces without decimals, kilograms with three, dollars with
    // two, a percentage (no unit) with its declared scale of one.
    let g: D<Collection<Value>> =
        serde_json::from_str(&fixture("sap_po_item_sandbox.json")).unwrap();
    let rec = &g.d.results[0];
    assert_eq!(rec["OrderQuantity"], "1");
    assert_eq!(rec["NetPriceAmount"], "40.00");
    assert_eq!(rec["ItemNetWeight"], "0.900");
    assert_eq!(rec["OverdelivTolrtdLmtRatioInPct"], "10.0");
    assert_eq!(rec["PurchaseRequisitionItem"], "0");
    let _: SapItem = serde_json::from_value(rec.clone()).unwrap();

    let sap = Sap::new(30).await;
    let v: D<Collection<SapItem>> = sap
        .get(&format!(
            "{SRV}/A_PurchaseOrderItem?$top=60&$expand=to_ScheduleLine,to_AccountAssignment"
        ))
        .await
        .json()
        .await
        .unwrap();
    let mut units = std::collections::HashSet::new();
    for it in &v.d.results {
        let q: f64 = it.order_quantity.parse().unwrap();
        assert_eq!(
            it.order_quantity,
            sap_quantity(q, &it.purchase_order_quantity_unit)
        );
        units.insert(decimals(&it.order_quantity));
        assert_eq!(
            decimals(&it.net_price_amount),
            2,
            "{}",
            it.document_currency
        );
        assert_eq!(it.net_price_quantity, "1");
        assert_eq!(it.item_net_weight, "0");
        assert_eq!(it.purchase_requisition_item, "0");
        let line = &it.schedule["results"][0];
        assert_eq!(line["ScheduleLine"], "1");
        assert_eq!(line["ScheduleLineOrderQuantity"], it.order_quantity);
        assert_eq!(line["ScheduleLineDeliveryTime"], "PT00H00M00S");
    }
    assert_eq!(
        units.len(),
        2,
        "pieces and kilograms both appear: {units:?}"
    );
    let assigned: Vec<&SapItem> =
        v.d.results
            .iter()
            .filter(|i| !i.account["results"].as_array().unwrap().is_empty())
            .collect();
    assert!(!assigned.is_empty());
    let a = &assigned[0].account["results"][0];
    assert_eq!(a["AccountAssignmentNumber"], "1");
    assert_eq!(decimals(a["PurgDocNetAmount"].as_str().unwrap()), 2);
    let po = sap
        .json(&format!("{SRV}/A_PurchaseOrder('4500000001')"))
        .await;
    assert_eq!(po["d"]["ExchangeRate"], "1.00000");
    assert_eq!(po["d"]["CashDiscount1Percent"], "0.000");
    assert_eq!(po["d"]["SupplierPhoneNumber"], "");

    // A tenant that pads every quantity to its declared scale (`decimal_format`).
    admin_json(
        &sap.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"decimal_format": "scale"})),
    )
    .await;
    let padded = sap.json(&format!("{SRV}/A_PurchaseOrderItem?$top=5")).await;
    for it in padded["d"]["results"].as_array().unwrap() {
        assert_eq!(decimals(it["OrderQuantity"].as_str().unwrap()), 3);
        assert_eq!(decimals(it["NetPriceAmount"].as_str().unwrap()), 2);
    }
    sap.emu.shutdown().await;
}

#[tokio::test]
async fn metadata_annotations_and_the_new_entity_sets() {
    let mut sap = Sap::new(20).await;
    let x = sap
        .get(&format!("{SRV}/$metadata"))
        .await
        .text()
        .await
        .unwrap();
    for part in [
        "<Property Name=\"ExchangeRate\" Type=\"Edm.String\" MaxLength=\"12\"",
        "<Property Name=\"CompanyCode\" Type=\"Edm.String\" MaxLength=\"4\" sap:label",
        "<Property Name=\"PurchaseOrder\" Type=\"Edm.String\" Nullable=\"false\" MaxLength=\"10\"",
        "<Property Name=\"LastChangeDateTime\" Type=\"Edm.DateTimeOffset\" Precision=\"7\" sap:label=\"LastChangeDateTime\" sap:creatable=\"false\" sap:updatable=\"false\"/>",
        "<Property Name=\"OrderQuantity\" Type=\"Edm.Decimal\" Precision=\"13\" Scale=\"3\" sap:unit=\"PurchaseOrderQuantityUnit\"",
        "<Property Name=\"PlainLongText\" Type=\"Edm.String\" sap:label=\"PlainLongText\" sap:filterable=\"false\"/>",
        "<EntitySet Name=\"A_PurchaseOrderNote\"",
        "<EntitySet Name=\"A_PurchaseOrderScheduleLine\"",
        "<EntitySet Name=\"A_PurOrdAccountAssignment\"",
        "<NavigationProperty Name=\"to_PurchaseOrderNote\"",
        "<NavigationProperty Name=\"to_ScheduleLine\"",
        "<NavigationProperty Name=\"to_AccountAssignment\"",
    ] {
        assert!(x.contains(part), "{part}");
    }
    assert!(!x.contains("Name=\"CompanyCode\" Type=\"Edm.String\" Nullable=\"false\""));

    // The new sets are readable by collection, key and navigation.
    let lines = sap
        .json(&format!(
            "{SRV}/A_PurchaseOrderScheduleLine?$filter=PurchasingDocument eq '4500000003'"
        ))
        .await;
    let n = lines["d"]["results"].as_array().unwrap().len();
    assert!(n >= 1);
    let one = sap
        .json(&format!("{SRV}/A_PurchaseOrderScheduleLine(PurchasingDocument='4500000003',PurchasingDocumentItem='10',ScheduleLine='1')"))
        .await;
    assert_eq!(one["d"]["PurchasingDocumentItem"], "10");
    let via = sap
        .json(&format!("{SRV}/A_PurchaseOrderItem(PurchaseOrder='4500000003',PurchaseOrderItem='10')/to_ScheduleLine"))
        .await;
    assert_eq!(via["d"]["results"][0], one["d"]);
    let deep = sap
        .json(&format!("{SRV}/A_PurchaseOrder('4500000003')?$expand=to_PurchaseOrderItem/to_ScheduleLine,to_PurchaseOrderNote"))
        .await;
    assert_eq!(
        deep["d"]["to_PurchaseOrderItem"]["results"]
            .as_array()
            .unwrap()
            .len(),
        n
    );
    assert!(
        deep["d"]["to_PurchaseOrderItem"]["results"][0]["to_ScheduleLine"]["results"].is_array()
    );
    assert!(deep["d"]["to_PurchaseOrderNote"]["results"].is_array());
    let notes = sap.json(&format!("{SRV}/A_PurchaseOrderNote?$top=5")).await;
    for note in notes["d"]["results"].as_array().unwrap() {
        assert_eq!(note["TextObjectType"], "F01");
        assert!(!note["PlainLongText"].as_str().unwrap().is_empty());
    }
    let r = sap
        .get(&format!(
            "{SRV}/A_PurchaseOrderNote?$filter=PlainLongText eq 'x'"
        ))
        .await;
    assert_eq!(r.status(), 400, "PlainLongText is not filterable");
    let accounts = sap
        .json(&format!("{SRV}/A_PurOrdAccountAssignment?$top=3"))
        .await;
    for a in accounts["d"]["results"].as_array().unwrap() {
        assert!(!a["WBSElementExternalID"].as_str().unwrap().is_empty());
    }

    // Read-only properties: ignored by default, refused when the tenant rejects them.
    sap.fetch_csrf().await;
    let po = format!("{SRV}/A_PurchaseOrder('4500000004')");
    let body = json!({"CreationDate": "/Date(0)/", "PurchasingGroup": "002"});
    assert_eq!(
        sap.send(Method::PATCH, &po, body.clone()).await.status(),
        204
    );
    admin_json(
        &sap.emu,
        Method::PATCH,
        "/settings",
        Some(json!({"read_only_properties": "reject"})),
    )
    .await;
    let r = sap.send(Method::PATCH, &po, body).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"]["value"]
            .as_str()
            .unwrap()
            .contains("read-only property CreationDate")
    );
    sap.emu.shutdown().await;
}

/// The `application/http` answers in a `$batch` response, changesets flattened, with the
/// status of each and whether it came inside a changeset.
fn batch_answers(ctype: &str, body: &str) -> Vec<(u16, bool, String)> {
    let boundary = ctype.split("boundary=").nth(1).unwrap().trim();
    let mut out = Vec::new();
    for part in body.split(&format!("--{boundary}")).skip(1) {
        if part.starts_with("--") {
            break;
        }
        if let Some(inner) = part
            .split("boundary=")
            .nth(1)
            .map(|s| s.lines().next().unwrap().trim().to_string())
        {
            for p in part.split(&format!("--{inner}")).skip(1) {
                if let Some(http) = p.split("HTTP/1.1 ").nth(1) {
                    let status = http[..3].parse().unwrap();
                    out.push((status, true, http.to_string()));
                }
            }
        } else if let Some(http) = part.split("HTTP/1.1 ").nth(1) {
            out.push((http[..3].parse().unwrap(), false, http.to_string()));
        }
    }
    out
}

#[tokio::test]
async fn batch_reads_and_changesets_apply_together_or_not_at_all() {
    let mut sap = Sap::new(10).await;
    let batch = |b: &str| {
        format!(
            "--batch_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding:binary\r\n\r\nGET A_PurchaseOrder%28%274500000002%27%29 HTTP/1.1\r\nAccept: application/json\r\n\r\n\r\n--batch_1\r\nContent-Type: multipart/mixed;boundary=changeset_1\r\n\r\n{b}--changeset_1--\r\n--batch_1--"
        )
    };
    let create = "--changeset_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding:binary\r\nContent-ID: 1\r\n\r\nPOST A_PurchaseOrder HTTP/1.1\r\nAccept: application/json\r\nContent-Type: application/json\r\n\r\n{\"Supplier\":\"10300002\",\"PurchasingGroup\":\"001\",\"to_PurchaseOrderItem\":[{\"Material\":\"ITEM-00003\",\"OrderQuantity\":\"2\"}]}\r\n";
    let patch = |po: &str, group: &str| {
        format!(
            "--changeset_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding:binary\r\n\r\nPATCH {po} HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"PurchasingGroup\":\"{group}\"}}\r\n"
        )
    };
    let post = |sap: &Sap, body: String| {
        sap.req(Method::POST, &format!("{SRV}/$batch"))
            .header("content-type", "multipart/mixed;boundary=batch_1")
            .body(body)
            .send()
    };
    // Like every modifying request, $batch needs the CSRF token.
    let r = post(&sap, batch(create)).await.unwrap();
    assert_eq!(r.status(), 403);
    sap.fetch_csrf().await;

    // A read and a changeset: the create, then a change of it through its Content-ID.
    let r = post(&sap, batch(&format!("{create}{}", patch("$1", "002"))))
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("multipart/mixed; boundary="));
    let answers = batch_answers(&ctype, &r.text().await.unwrap());
    let statuses: Vec<(u16, bool)> = answers.iter().map(|a| (a.0, a.1)).collect();
    assert_eq!(statuses, vec![(200, false), (201, true), (204, true)]);
    assert!(answers[0].2.contains("\"PurchaseOrder\":\"4500000002\""));
    let created = sap
        .json(&format!("{SRV}/A_PurchaseOrder('4500000011')"))
        .await;
    assert_eq!(
        created["d"]["PurchasingGroup"], "001",
        "the group is not kept by the emulator"
    );

    // A failing changeset: its change is rolled back and one error answers for it.
    let before = sap
        .json(&format!("{SRV}/A_PurchaseOrder('4500000003')"))
        .await;
    let bad = "--changeset_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding:binary\r\n\r\nPOST A_PurchaseOrder HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"Supplier\":\"10300002\"}\r\n";
    let r = post(
        &sap,
        batch(&format!(
            "{}{bad}",
            patch("A_PurchaseOrder('4500000003')", "003")
        )),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
    let answers = batch_answers(&ctype, &r.text().await.unwrap());
    assert_eq!(answers.len(), 2);
    assert_eq!((answers[1].0, answers[1].1), (400, false));
    assert!(answers[1].2.contains("ME/083"));
    let after = sap
        .json(&format!("{SRV}/A_PurchaseOrder('4500000003')"))
        .await;
    assert_eq!(
        after["d"]["LastChangeDateTime"],
        before["d"]["LastChangeDateTime"]
    );
    let all = sap.json(&format!("{SRV}/A_PurchaseOrder/$count")).await;
    assert_eq!(all, 11);

    // A malformed body gets the Gateway's 400 error body.
    for (ctype, body) in [
        ("multipart/mixed;boundary=batch_1", "--batch_1\r\nno end"),
        ("application/json", "{}"),
        (
            "multipart/mixed;boundary=batch_1",
            "--batch_1\r\nContent-Type: text/plain\r\n\r\nx\r\n--batch_1--",
        ),
    ] {
        let r = sap
            .req(Method::POST, &format!("{SRV}/$batch"))
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(sap_code(&e), "/IWFND/CM_MGW/004");
    }
    sap.emu.shutdown().await;
}
