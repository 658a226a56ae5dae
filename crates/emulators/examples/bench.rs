//! Measures start-up time, memory and page latency of an emulator at a given size:
//! `cargo run --release --example bench -- netsuite 1000000 [keyset pages, default 1000]`.

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

async fn netsuite(
    base: &str,
    http: &Client,
    orders: u64,
    keyset_pages: usize,
) -> anyhow::Result<()> {
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
    let oldest = "SELECT t.id, TO_CHAR(t.lastmodifieddate, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS lastmodified_iso FROM transaction t WHERE t.type = 'PurchOrd' ORDER BY t.lastmodifieddate, t.id";
    let (mut times, mut bytes) = (Vec::new(), 0);
    for _ in 0..20 {
        let (d, b, _) = suiteql_timed(base, http, &token, oldest, 1, 0).await?;
        times.push(d);
        bytes += b;
    }
    row(
        "SuiteQL oldest change (connector's `oldest_query`, `limit=1`)",
        &mut times,
        bytes,
    );
    keyset_walk(base, http, &token, orders, keyset_pages).await
}

/// The connector's header query (`crates/connectors/src/netsuite/read.rs`, purchase orders): a
/// window up to `until` and, after the first page, the keyset condition on `(lastmodifieddate, id)`.
fn keyset_query(until: &str, after: Option<(&str, u64)>) -> String {
    let ts = |t: &str| format!("TO_TIMESTAMP('{t}', 'YYYY-MM-DD HH24:MI:SS')");
    let mut q = String::from(
        "SELECT t.*, BUILTIN.DF(t.entity) AS entity_name, BUILTIN.DF(t.status) AS status_name, \
         BUILTIN.DF(t.currency) AS currency_name, BUILTIN.DF(t.location) AS location_name, \
         BUILTIN.DF(t.custbody_requestor) AS custbody_requestor_name, \
         TO_CHAR(t.lastmodifieddate, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS lastmodified_iso, \
         TO_CHAR(t.createddate, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS created_iso, \
         TO_CHAR(t.trandate, 'YYYY-MM-DD') AS trandate_iso \
         FROM transaction t WHERE t.type = 'PurchOrd'",
    );
    q.push_str(&format!(" AND t.lastmodifieddate <= {}", ts(until)));
    if let Some((at, id)) = after {
        let at = ts(at);
        q.push_str(&format!(
            " AND (t.lastmodifieddate > {at} OR (t.lastmodifieddate = {at} AND t.id > {id}))"
        ));
    }
    q.push_str(" ORDER BY t.lastmodifieddate, t.id");
    q
}

/// The connector's lines query for one page of orders.
fn lines_query(ids: &[u64]) -> String {
    let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
    format!(
        "SELECT tl.*, BUILTIN.DF(tl.item) AS item_name, TO_CHAR(tl.expectedreceiptdate, 'YYYY-MM-DD') AS expectedreceipt_iso \
         FROM transactionline tl WHERE tl.mainline = 'F' AND tl.transaction IN ({}) \
         ORDER BY tl.transaction, tl.linesequencenumber",
        ids.join(", ")
    )
}

/// One SuiteQL call: the time until the whole body arrived (parsing it is the client's cost,
/// left out), its size, and the parsed body.
async fn suiteql_timed(
    base: &str,
    http: &Client,
    token: &str,
    q: &str,
    limit: usize,
    offset: usize,
) -> anyhow::Result<(Duration, usize, Value)> {
    let t = Instant::now();
    let body = http
        .post(format!(
            "{base}/services/rest/query/v1/suiteql?limit={limit}&offset={offset}"
        ))
        .bearer_auth(token)
        .header("Prefer", "transient")
        .json(&json!({ "q": q }))
        .send()
        .await?
        .bytes()
        .await?;
    let elapsed = t.elapsed();
    Ok((elapsed, body.len(), serde_json::from_slice(&body)?))
}

fn row(label: &str, times: &mut [Duration], bytes: usize) {
    if times.is_empty() {
        return;
    }
    times.sort();
    let n = times.len();
    println!(
        "| {label} | {n} | {:.1} ms | {:.1} ms | {} KB |",
        ms(times[n / 2]),
        ms(times[n - 1]),
        bytes / n / 1024
    );
}

/// Walks purchase orders the way the connector's full sync does: keyset pages of 100 headers, each
/// followed by the lines of its orders (`IN (…)`, pages of 1000 by offset), up to `max_pages`.
async fn keyset_walk(
    base: &str,
    http: &Client,
    token: &str,
    orders: u64,
    max_pages: usize,
) -> anyhow::Result<()> {
    let until = "2025-12-31 23:58:00";
    let (mut head_t, mut line_t) = (Vec::new(), Vec::new());
    let (mut head_b, mut line_b) = (0, 0);
    let (mut seen, mut pages) = (0usize, 0usize);
    let mut after: Option<(String, u64)> = None;
    let walk = Instant::now();
    loop {
        let q = keyset_query(until, after.as_ref().map(|(t, id)| (t.as_str(), *id)));
        let (d, b, page) = suiteql_timed(base, http, token, &q, 100, 0).await?;
        head_t.push(d);
        head_b += b;
        pages += 1;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        seen += items.len();
        let ids: Vec<u64> = items
            .iter()
            .filter_map(|r| r["id"].as_str()?.parse().ok())
            .collect();
        if !ids.is_empty() {
            let lq = lines_query(&ids);
            let mut offset = 0;
            let mut spent = Duration::ZERO;
            loop {
                let (d, b, lines) = suiteql_timed(base, http, token, &lq, 1000, offset).await?;
                spent += d;
                line_b += b;
                let n = lines["count"].as_u64().unwrap_or(0) as usize;
                offset += n;
                if lines["hasMore"] != true || n == 0 {
                    break;
                }
            }
            line_t.push(spent);
        }
        let last = items.last().and_then(|r| {
            let t = r["lastmodified_iso"].as_str()?;
            let id = r["id"].as_str()?.parse().ok()?;
            Some((t.trim_end_matches('Z').replace('T', " "), id))
        });
        if page["hasMore"] != true || last.is_none() || pages >= max_pages {
            break;
        }
        after = last;
    }
    let total = walk.elapsed();
    let requests: Duration = head_t.iter().chain(&line_t).sum();
    row(
        "SuiteQL keyset page (connector's header query, `limit=100`)",
        &mut head_t,
        head_b,
    );
    row(
        "SuiteQL lines of that page (`transaction IN (100 ids)`, `limit=1000`, all offsets)",
        &mut line_t,
        line_b,
    );
    println!(
        "\nKeyset walk: {seen} of {orders} orders in {pages} pages (headers + lines) in {total:.2?}, \
         of which {requests:.2?} waiting for answers (the rest is the client parsing them)"
    );
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
    let keyset_pages: usize = args.next().map_or(Ok(1000), |s| s.parse())?;
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
        System::NetSuite => netsuite(&base, &http, orders, keyset_pages).await?,
        System::SapS4Hana => sap(&base, &http, orders).await?,
        System::BusinessCentral => business_central(&base, &http, orders).await?,
        System::Asctrac => {
            anyhow::bail!("ASCTrac is measured by `ironbridge bench sync --system asctrac`")
        }
        System::Samsara | System::NexTraq => {
            anyhow::bail!("{} serves no purchase orders to measure", system.name())
        }
    }
    println!("\nRSS after the run: {:.0} MB", rss_mb());
    emu.shutdown().await;
    Ok(())
}
