//! Measures start-up time, memory and page latency of an emulator at a given size:
//! `cargo run --release --example bench -- netsuite 1000000`.

use std::str::FromStr;
use std::time::{Duration, Instant};

use ironbridge_emulators::{EmulatorConfig, System, start};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Client;
use serde_json::{Value, json};

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs `f` `n` times and reports the median and worst latency.
async fn timed<F, Fut>(label: &str, n: usize, mut f: F)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let mut times = Vec::with_capacity(n);
    let mut bytes = 0;
    for i in 0..n {
        let t = Instant::now();
        bytes += f(i).await;
        times.push(t.elapsed());
    }
    times.sort();
    let median = times[n / 2];
    let worst = times[n - 1];
    println!(
        "| {label} | {n} | {:.1} ms | {:.1} ms | {} KB |",
        ms(median),
        ms(worst),
        bytes / n / 1024
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn netsuite(base: &str, http: &Client, orders: u64) -> anyhow::Result<()> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = rcgen::CertificateParams::new(vec!["bench".into()])?.self_signed(&key)?;
    http.post(format!("{base}/__emulator/netsuite/m2m-clients"))
        .json(&json!({"client_id": "bench", "certificate_id": "c1", "certificate_pem": cert.pem()}))
        .send()
        .await?;
    let now: Value = http
        .get(format!("{base}/__emulator/clock"))
        .send()
        .await?
        .json()
        .await?;
    let now = now["now_ms"].as_i64().unwrap_or(0) / 1000;
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("c1".into());
    let url = format!("{base}/services/rest/auth/oauth2/v1/token");
    let jwt = jsonwebtoken::encode(
        &h,
        &json!({"iss": "bench", "scope": "rest_webservices", "aud": url, "iat": now, "exp": now + 3600}),
        &EncodingKey::from_ec_pem(key.serialize_pem().as_bytes())?,
    )?;
    let tok: Value = http
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", jwt.as_str()),
        ])
        .send()
        .await?
        .json()
        .await?;
    let token = tok["access_token"].as_str().unwrap_or_default().to_string();
    let pages = (orders as usize / 1000).clamp(1, 100);
    println!("| request | n | median | worst | body |\n|---|---|---|---|---|");
    timed(
        "record list, limit=1000, walking offsets",
        pages.min(50),
        |i| {
            let (http, token) = (http.clone(), token.clone());
            let url = format!(
                "{base}/services/rest/record/v1/purchaseOrder?limit=1000&offset={}",
                i * 1000
            );
            async move {
                http.get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap()
                    .len()
            }
        },
    )
    .await;
    timed("record list with q lastModifiedDate ON_OR_AFTER (first = index build)", 20, |i| {
        let (http, token) = (http.clone(), token.clone());
        let url = format!(
            "{base}/services/rest/record/v1/purchaseOrder?limit=1000&offset={}&q=lastModifiedDate%20ON_OR_AFTER%20%221%2F1%2F2023%22",
            i * 1000
        );
        async move { http.get(url).bearer_auth(token).send().await.unwrap().bytes().await.unwrap().len() }
    })
    .await;
    timed("get purchaseOrder?expandSubResources=true", 200, |i| {
        let (http, token) = (http.clone(), token.clone());
        let id = 1 + (i as u64 * 7919) % orders;
        let url =
            format!("{base}/services/rest/record/v1/purchaseOrder/{id}?expandSubResources=true");
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .len()
        }
    })
    .await;
    let q = "SELECT id, tranid, trandate, entity, status, lastmodifieddate FROM transaction WHERE type = 'PurchOrd' AND lastmodifieddate >= TO_DATE('2023-01-01','YYYY-MM-DD') ORDER BY id";
    timed(
        "SuiteQL headers, limit=1000 (first = query run)",
        pages.min(50),
        |i| {
            let (http, token) = (http.clone(), token.clone());
            let url = format!(
                "{base}/services/rest/query/v1/suiteql?limit=1000&offset={}",
                i * 1000
            );
            async move {
                http.post(url)
                    .bearer_auth(token)
                    .header("Prefer", "transient")
                    .json(&json!({"q": q}))
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap()
                    .len()
            }
        },
    )
    .await;
    let lq = "SELECT tl.transaction, tl.linesequencenumber, tl.item, tl.quantity, tl.rate FROM transactionline tl WHERE tl.mainline = 'F' AND tl.transaction BETWEEN 1 AND 200 ORDER BY tl.transaction, tl.linesequencenumber";
    timed("SuiteQL lines of 200 orders, limit=1000", 5, |i| {
        let (http, token) = (http.clone(), token.clone());
        let url = format!(
            "{base}/services/rest/query/v1/suiteql?limit=1000&offset={}",
            i * 1000
        );
        async move {
            http.post(url)
                .bearer_auth(token)
                .header("Prefer", "transient")
                .json(&json!({"q": lq}))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .len()
        }
    })
    .await;
    Ok(())
}

async fn sap(base: &str, http: &Client, orders: u64) -> anyhow::Result<()> {
    let srv = format!("{base}/sap/opu/odata/sap/API_PURCHASEORDER_PROCESS_SRV");
    let pages = (orders as usize / 1000).clamp(1, 50);
    println!("| request | n | median | worst | body |\n|---|---|---|---|---|");
    let get = |url: String| {
        let http = http.clone();
        async move {
            http.get(url)
                .basic_auth("COMM_USER", Some("Emulator-Pa55word"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .len()
        }
    };
    timed("A_PurchaseOrder $top=1000 walking $skip", pages, |i| {
        get(format!(
            "{srv}/A_PurchaseOrder?$top=1000&$skip={}&$format=json",
            i * 1000
        ))
    })
    .await;
    timed(
        "incremental: $filter LastChangeDateTime gt …, $orderby LastChangeDateTime,PurchaseOrder, $expand items, $top=500",
        pages,
        |i| {
            get(format!(
                "{srv}/A_PurchaseOrder?$filter=LastChangeDateTime%20gt%20datetimeoffset'2023-01-01T00:00:00Z'&$orderby=LastChangeDateTime%20asc,PurchaseOrder%20asc&$expand=to_PurchaseOrderItem&$top=500&$skip={}&$format=json",
                i * 500
            ))
        },
    )
    .await;
    timed(
        "A_PurchaseOrder('…')?$expand=to_PurchaseOrderItem",
        200,
        |i| {
            get(format!(
                "{srv}/A_PurchaseOrder('{}')?$expand=to_PurchaseOrderItem&$format=json",
                4_500_000_001 + (i as u64 * 7919) % orders
            ))
        },
    )
    .await;
    timed("A_PurchaseOrder/$count with a LastChangeDateTime filter", 20, |_| {
        get(format!("{srv}/A_PurchaseOrder/$count?$filter=LastChangeDateTime%20ge%20datetimeoffset'2025-06-01T00:00:00Z'"))
    })
    .await;
    Ok(())
}

/// `@odata.nextLink` (the last member of a BC page), without parsing the page.
fn next_link(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let at = text.rfind("\"@odata.nextLink\":")?;
    let v: Value = serde_json::from_str(&format!("{{{}", &text[at..])).ok()?;
    v["@odata.nextLink"].as_str().map(str::to_string)
}

async fn business_central(base: &str, http: &Client, orders: u64) -> anyhow::Result<()> {
    // The frozen bench clock would put every request in one minute: lift the 600/min budget.
    http.patch(format!("{base}/__emulator/settings"))
        .json(&json!({"requests_per_minute": 1_000_000}))
        .send()
        .await?;
    let creds: Value = http
        .get(format!("{base}/__emulator/credentials"))
        .send()
        .await?
        .json()
        .await?;
    let tenant = creds["tenant_id"].as_str().unwrap_or_default().to_string();
    let company = creds["company_id"].as_str().unwrap_or_default().to_string();
    let tok: Value = http
        .post(format!("{base}/{tenant}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", creds["client_id"].as_str().unwrap_or_default()),
            (
                "client_secret",
                creds["client_secret"].as_str().unwrap_or_default(),
            ),
            ("scope", "https://api.businesscentral.dynamics.com/.default"),
        ])
        .send()
        .await?
        .json()
        .await?;
    let token = tok["access_token"].as_str().unwrap_or_default().to_string();
    let api = format!("{base}/v2.0/{tenant}/production/api/v2.0/companies({company})");
    let pages = (orders as usize / 1000).clamp(1, 50);
    println!("| request | n | median | worst | body |\n|---|---|---|---|---|");
    let next = std::sync::Arc::new(std::sync::Mutex::new(format!("{api}/purchaseOrders")));
    timed(
        "purchaseOrders, Prefer: odata.maxpagesize=1000, following @odata.nextLink",
        pages,
        |_| {
            let (http, token, next) = (http.clone(), token.clone(), next.clone());
            async move {
                let url = next.lock().unwrap().clone();
                let body = http
                    .get(url)
                    .bearer_auth(token)
                    .header("Prefer", "odata.maxpagesize=1000")
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                // Only the link is needed: parsing the whole page would time the client, not the emulator.
                if let Some(n) = next_link(&body) {
                    *next.lock().unwrap() = n;
                }
                body.len()
            }
        },
    )
    .await;
    let next = std::sync::Arc::new(std::sync::Mutex::new(format!(
        "{api}/purchaseOrders?$filter=lastModifiedDateTime%20gt%202023-01-01T00:00:00Z&$expand=purchaseOrderLines"
    )));
    timed("incremental: $filter lastModifiedDateTime gt …, $expand=purchaseOrderLines, maxpagesize=500", pages, |_| {
        let (http, token, next) = (http.clone(), token.clone(), next.clone());
        async move {
            let url = next.lock().unwrap().clone();
            let body = http.get(url).bearer_auth(token).header("Prefer", "odata.maxpagesize=500").send().await.unwrap().bytes().await.unwrap();
            // Only the link is needed: parsing the whole page would time the client, not the emulator.
                if let Some(n) = next_link(&body) {
                    *next.lock().unwrap() = n;
                }
            body.len()
        }
    })
    .await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let system = System::from_str(&args.next().unwrap_or_else(|| "netsuite".into()))?;
    let orders: u64 = args.next().map_or(Ok(100_000), |s| s.parse())?;
    let before = rss_mb();
    let t = Instant::now();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let emu = start(EmulatorConfig::new(system, 1, orders), listener).await?;
    println!(
        "{} with {orders} purchase orders: ready in {:.2?}, RSS {:.0} MB (process before start {:.0} MB)\n",
        system.name(),
        t.elapsed(),
        rss_mb(),
        before
    );
    let http = Client::new();
    let base = emu.base_url();
    match system {
        System::NetSuite => netsuite(&base, &http, orders).await?,
        System::SapS4Hana => sap(&base, &http, orders).await?,
        System::BusinessCentral => business_central(&base, &http, orders).await?,
    }
    println!("\nRSS after the run: {:.0} MB", rss_mb());
    emu.shutdown().await;
    Ok(())
}
