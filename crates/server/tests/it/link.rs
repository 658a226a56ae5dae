//! Link: link tokens, the hosted pages an end customer connects a system in (sandbox, every
//! emulated system, both NetSuite certificate options, re-authorization), the exchange of the
//! public token, and the pages' defences: expiry, single use, tenancy, cross-site posts,
//! escaping, and secrets never shown back.

use ironbridge_emulators::System;
use ironbridge_model::api::ConnectionStatus;
use ironbridge_testkit::emulated::Emulated;
use serde_json::{Value, json};

use crate::support::{Res, TestApp};

const REDIRECT: &str = "https://app.example.com/integrations/done";

/// A browser without redirects followed, sending what a browser sends with a form post from
/// the page itself.
struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Browser {
            app,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Res {
        self.app
            .send(
                self.client
                    .get(self.app.url(path))
                    .header("sec-fetch-site", "none"),
            )
            .await
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Res {
        self.post_from(path, fields, &self.app.base.clone(), "same-origin")
            .await
    }

    async fn post_from(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        origin: &str,
        site: &str,
    ) -> Res {
        self.app
            .send(
                self.client
                    .post(self.app.url(path))
                    .header("origin", origin)
                    .header("sec-fetch-site", site)
                    .form(fields),
            )
            .await
    }
}

fn location(res: &Res) -> String {
    assert_eq!(res.status, 303, "{}", res.text);
    res.header("location").unwrap().to_string()
}

/// The value of the hidden field `name` of a page.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_string()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn link_token(app: &TestApp, key: &str, body: Value) -> (String, Value) {
    let res = app.post(key, "/v1/link-tokens", body).await;
    assert_eq!(res.status, 201, "{}", res.body);
    (res.body["url"].as_str().unwrap().to_string(), res.body)
}

fn sandbox_link() -> Value {
    json!({"end_user": {"id": "cust-1", "name": "Globex"}, "systems": ["sandbox"],
        "redirect_url": REDIRECT, "brand": {"name": "Acme Procurement", "colour": "#0B5FFF"}})
}

/// Posts `fields` on the form at `form` (after reading its anti-forgery token).
async fn submit(browser: &Browser<'_>, form: &str, option: &str, fields: &[(&str, &str)]) -> Res {
    let page = browser.get(form).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let csrf = hidden(&page.text, "csrf");
    let mut all = vec![("csrf", csrf.as_str()), ("option", option)];
    all.extend_from_slice(fields);
    browser.post(form, &all).await
}

#[tokio::test]
async fn a_customer_connects_the_sandbox_and_the_organization_exchanges_the_public_token_once() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let (_, other) = app.org(3).await;
    let browser = Browser::new(&app);
    let (url, out) = link_token(&app, &key, sandbox_link()).await;
    assert!(url.starts_with("/link/ibl_"), "{url}");
    assert_eq!(out["systems"], json!(["sandbox"]));
    assert_eq!(
        out["expires_at"], "2026-11-23T00:30:00Z",
        "thirty minutes by the server's clock"
    );

    // One system offered: straight to its form, which carries the brand and the policy.
    let form = location(&browser.get(&url).await);
    assert_eq!(form, format!("{url}/systems/sandbox"));
    let page = browser.get(&form).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("Acme Procurement"));
    assert!(page.text.contains("/assets/brand/0b5fff"), "{}", page.text);
    let csp = page.header("content-security-policy").unwrap();
    for part in [
        "default-src 'self'",
        "script-src 'none'",
        "style-src 'self'",
        "frame-ancestors 'self' https://app.example.com",
        "form-action 'self' https://app.example.com",
    ] {
        assert!(csp.contains(part), "{csp} lacks {part}");
    }
    assert_eq!(page.header("referrer-policy"), Some("same-origin"));
    assert!(page.header("cache-control").unwrap().contains("no-store"));
    assert!(!page.text.contains("<script"), "no script at all");
    let css = browser.get("/assets/brand/0b5fff").await;
    assert!(css.text.contains("#0b5fff"));
    assert!(
        browser
            .get("/assets/ironbridge.css")
            .await
            .text
            .contains("--brand")
    );

    let done = submit(
        &browser,
        &form,
        "none",
        &[
            ("credentials.api_key", "key-4711"),
            ("settings.purchase_orders", "7"),
        ],
    )
    .await;
    let back = location(&done);
    assert!(back.starts_with(REDIRECT), "{back}");
    let public = query_param(&back, "public_token").unwrap();
    let conn = query_param(&back, "connection_id").unwrap();
    assert!(public.starts_with("ibp_"));

    // The organization hears of it, with no secret in the event.
    let events = app.get(&key, "/v1/events?type=connection.created").await;
    let data = events.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{}", events.body);
    assert_eq!(data[0]["connection_id"], conn.as_str());
    assert!(!events.text.contains("key-4711"));

    // Another organization cannot exchange it; its own can, once.
    app.post(
        &other,
        "/v1/link-tokens/exchange",
        json!({"public_token": public}),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let res = app
        .post(
            &key,
            "/v1/link-tokens/exchange",
            json!({"public_token": public}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["connection"]["id"], conn.as_str());
    assert_eq!(res.body["connection"]["end_user"]["id"], "cust-1");
    assert_eq!(res.body["reauthorized"], false);
    let token = res.body["token"].as_str().unwrap().to_string();
    let mine = app.get(&token, "/v1/connection").await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(mine.body["id"], conn.as_str());
    let orders = app.get(&token, "/v1/purchase-orders").await;
    assert_eq!(
        orders.body["data"].as_array().unwrap().len(),
        7,
        "{}",
        orders.body
    );
    app.post(
        &key,
        "/v1/link-tokens/exchange",
        json!({"public_token": public}),
    )
    .await
    .assert_error(404, "NOT_FOUND");

    // The link token is spent.
    let again = browser.get(&url).await;
    assert_eq!(again.status, 410);
    assert!(again.text.contains("already used"), "{}", again.text);
    let again = browser
        .post(&form, &[("csrf", "x"), ("option", "none")])
        .await;
    assert_eq!(again.status, 410);
}

#[tokio::test]
async fn a_failed_check_says_why_keeps_what_was_typed_but_never_a_secret() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let browser = Browser::new(&app);
    let (url, _) = link_token(&app, &key, sandbox_link()).await;
    let form = format!("{url}/systems/sandbox");
    let res = submit(
        &browser,
        &form,
        "none",
        &[("credentials.api_key", "revoked"), ("settings.seed", "17")],
    )
    .await;
    assert_eq!(res.status, 422, "{}", res.text);
    assert!(
        res.text.contains("refused these credentials"),
        "{}",
        res.text
    );
    assert!(
        res.text
            .contains(r#"name="credentials.api_key" type="password" value="""#),
        "the secret comes back empty: {}",
        res.text
    );
    assert!(
        res.text
            .contains(r#"name="settings.seed" type="number" value="17""#)
    );

    // Field by field: a bad number is named on its field, nothing is checked upstream.
    let res = submit(&browser, &form, "none", &[("settings.seed", "seven")]).await;
    assert_eq!(res.status, 422);
    assert!(res.text.contains("Enter a whole number"), "{}", res.text);
    assert!(res.text.contains("field invalid"));
    let listed = app.get(&key, "/v1/connections").await;
    assert_eq!(listed.body["data"], json!([]), "nothing was saved");

    // The token was given back: a good try succeeds.
    let res = submit(&browser, &form, "none", &[("credentials.api_key", "good")]).await;
    assert!(location(&res).starts_with(REDIRECT));
}

#[tokio::test]
async fn expired_unknown_and_foreign_link_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let (_, other) = app.org(3).await;
    let browser = Browser::new(&app);
    let (url, _) = link_token(&app, &key, sandbox_link()).await;
    let form = format!("{url}/systems/sandbox");
    let page = browser.get(&form).await;
    let csrf = hidden(&page.text, "csrf");
    app.clock.advance_secs(30 * 60);
    for res in [
        browser.get(&url).await,
        browser.get(&form).await,
        browser
            .post(&form, &[("csrf", &csrf), ("option", "none")])
            .await,
    ] {
        assert_eq!(res.status, 410, "{}", res.text);
        assert!(res.text.contains("expired"), "{}", res.text);
        assert!(
            res.text.contains("Acme Procurement"),
            "still the organization's page"
        );
    }
    let res = browser.get("/link/ibl_unknown").await;
    assert_eq!(res.status, 404);
    assert!(res.text.contains("not valid"));
    assert!(res.header("content-type").unwrap().starts_with("text/html"));
    assert_eq!(res.header("x-frame-options"), Some("DENY"));
    assert_eq!(browser.get("/link/nonsense/cancel").await.status, 404);

    // A connection of another organization cannot be named.
    let (conn, _) = app.connection(&key, json!({})).await;
    app.post(
        &other,
        "/v1/link-tokens",
        json!({"end_user": {"id": "x"}, "connection_id": conn, "redirect_url": REDIRECT}),
    )
    .await
    .assert_error(404, "NOT_FOUND");

    // Bad input is refused by name.
    for (body, param) in [
        (
            json!({"end_user": {"id": ""}, "redirect_url": REDIRECT}),
            "end_user.id",
        ),
        (
            json!({"end_user": {"id": "a"}, "redirect_url": "javascript:alert(1)"}),
            "redirect_url",
        ),
        (
            json!({"end_user": {"id": "a"}, "redirect_url": "https://u:p@x.example/"}),
            "redirect_url",
        ),
        (
            json!({"end_user": {"id": "a"}, "redirect_url": REDIRECT, "systems": ["nope"]}),
            "systems[0]",
        ),
        (
            json!({"end_user": {"id": "a"}, "redirect_url": REDIRECT, "systems": []}),
            "systems",
        ),
        (
            json!({"end_user": {"id": "a"}, "redirect_url": REDIRECT, "brand": {"colour": "red;}"}}),
            "brand.colour",
        ),
    ] {
        let res = app.post(&key, "/v1/link-tokens", body).await;
        assert_eq!(res.assert_error(422, "VALIDATION_ERROR")["param"], param);
    }
    let res = app
        .post(&key, "/v1/link-tokens", json!({"end_user": {"id": "a"}}))
        .await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "redirect_url"
    );
    app.post(
        &key,
        "/v1/link-tokens/exchange",
        json!({"public_token": "ibp_nothing"}),
    )
    .await
    .assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn posts_from_another_site_or_without_the_pages_token_are_refused() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let browser = Browser::new(&app);
    let (url, _) = link_token(&app, &key, sandbox_link()).await;
    let (other_url, _) = link_token(&app, &key, sandbox_link()).await;
    let form = format!("{url}/systems/sandbox");
    let csrf = hidden(&browser.get(&form).await.text, "csrf");
    let foreign = hidden(
        &browser
            .get(&format!("{other_url}/systems/sandbox"))
            .await
            .text,
        "csrf",
    );
    let base = app.base.clone();
    for (fields, origin, site) in [
        (vec![("option", "none")], base.as_str(), "same-origin"),
        (
            vec![("csrf", "forged"), ("option", "none")],
            base.as_str(),
            "same-origin",
        ),
        (
            vec![("csrf", foreign.as_str()), ("option", "none")],
            base.as_str(),
            "same-origin",
        ),
        (
            vec![("csrf", csrf.as_str()), ("option", "none")],
            "https://evil.example",
            "same-origin",
        ),
        (
            vec![("csrf", csrf.as_str()), ("option", "none")],
            base.as_str(),
            "cross-site",
        ),
        (
            vec![("csrf", csrf.as_str()), ("option", "none")],
            "null",
            "same-origin",
        ),
    ] {
        let res = browser.post_from(&form, &fields, origin, site).await;
        assert_eq!(res.status, 403, "{origin} {site} {fields:?}: {}", res.text);
    }
    assert_eq!(
        app.get(&key, "/v1/connections").await.body["data"],
        json!([]),
        "nothing was made"
    );
    let res = browser
        .post(&form, &[("csrf", &csrf), ("option", "none")])
        .await;
    assert!(
        location(&res).starts_with(REDIRECT),
        "the page's own post works"
    );
}

#[tokio::test]
async fn what_is_shown_back_is_escaped_on_every_page() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let browser = Browser::new(&app);
    let evil = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>";
    let (url, _) = link_token(
        &app,
        &key,
        json!({"end_user": {"id": evil, "name": evil}, "redirect_url": REDIRECT,
            "systems": ["sandbox", "netsuite"], "brand": {"name": evil}}),
    )
    .await;
    let form = format!("{url}/systems/sandbox");
    let mut pages = vec![browser.get(&url).await, browser.get(&form).await];
    pages.push(
        submit(
            &browser,
            &form,
            "none",
            &[("settings.seed", evil), ("credentials.api_key", evil)],
        )
        .await,
    );
    pages.push(
        submit(
            &browser,
            &format!("{url}/systems/netsuite?option=certificate_own"),
            "certificate_own",
            &[
                ("settings.base_url", "https://<script>.example/"),
                ("credentials.account_id", evil),
                ("credentials.private_key_pem", evil),
            ],
        )
        .await,
    );
    pages.push(browser.get(&format!("{url}/systems/netsuite")).await);
    for page in &pages {
        assert!(!page.text.contains("<script"), "{}", page.text);
        assert!(!page.text.contains("<img"), "{}", page.text);
        assert!(page.text.contains("&#60;script&#62;"), "{}", page.text);
    }
    // The expired page names the brand too.
    app.clock.advance_secs(3600);
    let page = browser.get(&url).await;
    assert_eq!(page.status, 410);
    assert!(!page.text.contains("<script") && page.text.contains("&#60;script&#62;"));
}

/// The form fields a system's emulator needs, as a customer would type them.
fn typed(emulated: &Emulated) -> (String, Vec<(String, String)>) {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let option = emulated
        .system
        .auth
        .iter()
        .find(|o| {
            emulated
                .credentials
                .keys()
                .all(|k| o.fields.iter().any(|f| f.name == k))
        })
        .expect("an option that takes the emulator's credentials");
    let mut fields: Vec<(String, String)> = emulated
        .settings
        .iter()
        .map(|(k, v)| (format!("settings.{k}"), text(v)))
        .collect();
    fields.extend(
        emulated
            .credentials
            .iter()
            .map(|(k, v)| (format!("credentials.{k}"), text(v))),
    );
    (option.id.to_string(), fields)
}

#[tokio::test]
async fn a_customer_connects_each_emulated_system() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(10).await;
    let browser = Browser::new(&app);
    for system in [
        System::NetSuite,
        System::SapS4Hana,
        System::BusinessCentral,
        System::Asctrac,
        System::Samsara,
        System::NexTraq,
    ] {
        let emulated = Emulated::start(system, 7, 5).await;
        let id = emulated.system.id.to_string();
        let (url, _) = link_token(
            &app,
            &key,
            json!({"end_user": {"id": "cust-2"}, "redirect_url": REDIRECT}),
        )
        .await;
        let systems = browser.get(&url).await;
        assert_eq!(systems.status, 200);
        assert!(
            systems.text.contains(emulated.system.name),
            "{}",
            systems.text
        );
        let (option, fields) = typed(&emulated);
        let form = format!("{url}/systems/{id}");
        let form = if emulated.system.auth.len() > 1 {
            format!("{form}?option={option}")
        } else {
            form
        };
        let fields: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let res = submit(&browser, &form, &option, &fields).await;
        let back = location(&res);
        let public = query_param(&back, "public_token").unwrap();
        let res = app
            .post(
                &key,
                "/v1/link-tokens/exchange",
                json!({"public_token": public}),
            )
            .await;
        assert_eq!(res.status, 200, "{id}: {}", res.body);
        assert_eq!(res.body["connection"]["system"], id.as_str());
    }
}

#[tokio::test]
async fn netsuite_offers_both_certificate_options() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(5).await;
    let browser = Browser::new(&app);
    let ns = Emulated::start(System::NetSuite, 7, 5).await;
    let base = ns.settings["base_url"].as_str().unwrap().to_string();
    let body =
        json!({"end_user": {"id": "cust-3"}, "systems": ["netsuite"], "redirect_url": REDIRECT});

    // Option A: Ironbridge's certificate, downloaded and registered in NetSuite.
    let (url, _) = link_token(&app, &key, body.clone()).await;
    let choose = browser.get(&location(&browser.get(&url).await)).await;
    assert!(
        choose.text.contains("option=certificate_generated"),
        "{}",
        choose.text
    );
    assert!(choose.text.contains("option=certificate_own"));
    let form = format!("{url}/systems/netsuite?option=certificate_generated");
    let page = browser.get(&form).await;
    assert!(
        page.text.contains("Download the certificate"),
        "{}",
        page.text
    );
    assert!(
        !page.text.contains("ironbridge_certificate"),
        "Link fills it in"
    );
    let pem = browser.get(&format!("{url}/certificate.pem")).await;
    assert_eq!(pem.header("content-type"), Some("application/x-pem-file"));
    assert!(pem.text.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(
        browser.get(&form).await.text.matches("crt_").count(),
        page.text.matches("crt_").count(),
        "the same certificate on every visit"
    );
    ns.admin(
        "POST",
        "/netsuite/m2m-clients",
        Some(json!({"client_id": "ib-link", "certificate_id": "cert-A", "certificate_pem": pem.text})),
    )
    .await;
    let post = format!("{url}/systems/netsuite");
    let res = submit(
        &browser,
        &form,
        "certificate_generated",
        &[
            ("settings.base_url", &base),
            ("credentials.account_id", "1234567_SB1"),
            ("credentials.client_id", "ib-link"),
            ("credentials.certificate_id", "cert-A"),
        ],
    )
    .await;
    let _ = post;
    let public = query_param(&location(&res), "public_token").unwrap();
    let res = app
        .post(
            &key,
            "/v1/link-tokens/exchange",
            json!({"public_token": public}),
        )
        .await;
    assert_eq!(res.body["connection"]["system"], "netsuite", "{}", res.body);

    // Option B: the customer's own key pair made with OpenSSL; a wrong certificate id is
    // refused and the key does not come back.
    let (url, _) = link_token(&app, &key, body).await;
    let form = format!("{url}/systems/netsuite?option=certificate_own");
    let page = browser.get(&form).await;
    assert!(
        page.text.contains("openssl req -x509 -newkey rsa:3072"),
        "{}",
        page.text
    );
    let own = ironbridge_connectors::netsuite::generate_certificate("Customer", ns.now()).unwrap();
    ns.admin(
        "POST",
        "/netsuite/m2m-clients",
        Some(json!({"client_id": "ib-own", "certificate_id": "cert-B", "certificate_pem": own.certificate_pem})),
    )
    .await;
    let mut fields = vec![
        ("settings.base_url", base.as_str()),
        ("credentials.account_id", "1234567_SB1"),
        ("credentials.client_id", "ib-own"),
        ("credentials.certificate_id", "cert-X"),
        ("credentials.private_key_pem", own.private_key_pem.as_str()),
    ];
    let res = submit(&browser, &form, "certificate_own", &fields).await;
    assert_eq!(res.status, 422, "{}", res.text);
    assert!(res.text.contains("refused"), "{}", res.text);
    assert!(
        !res.text.contains("PRIVATE KEY"),
        "the key is not shown back"
    );
    assert!(res.text.contains(r#"value="cert-X""#));
    fields[3].1 = "cert-B";
    let res = submit(&browser, &form, "certificate_own", &fields).await;
    assert!(location(&res).starts_with(REDIRECT), "{}", res.text);
}

#[tokio::test]
async fn a_revoked_connection_is_renewed_in_place() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let browser = Browser::new(&app);
    let (conn, token) = app.connection(&key, json!({})).await;
    let before = app.get(&token, "/v1/purchase-orders").await.body["data"]
        .as_array()
        .unwrap()
        .len();
    app.store
        .set_connection_status(
            &ironbridge_core::store::ConnId(conn.clone()),
            ConnectionStatus::ReauthorizationRequired.as_str(),
            ironbridge_core::Clock::now(&app.clock),
            None,
        )
        .await
        .unwrap();
    let (url, out) = link_token(
        &app,
        &key,
        json!({"end_user": {"id": "cust-1"}, "connection_id": conn, "redirect_url": REDIRECT}),
    )
    .await;
    assert_eq!(out["systems"], json!(["sandbox"]));
    let form = location(&browser.get(&url).await);
    let page = browser.get(&form).await;
    assert!(page.text.contains("Reconnect"), "{}", page.text);
    assert!(
        !page.text.contains("settings."),
        "a renewal keeps the settings"
    );
    let res = submit(
        &browser,
        &form,
        "none",
        &[("credentials.api_key", "revoked")],
    )
    .await;
    assert_eq!(res.status, 422);
    let res = submit(&browser, &form, "none", &[("credentials.api_key", "fresh")]).await;
    let back = location(&res);
    assert_eq!(
        query_param(&back, "connection_id").as_deref(),
        Some(conn.as_str())
    );

    let now = app.get(&key, &format!("/v1/connections/{conn}")).await;
    assert_eq!(now.body["status"], "online", "{}", now.body);
    assert_eq!(now.body["health"]["consecutive_errors"], 0);
    let after = app.get(&token, "/v1/purchase-orders").await;
    assert_eq!(after.status, 200, "the token still works");
    assert_eq!(
        after.body["data"].as_array().unwrap().len(),
        before,
        "history kept"
    );
    let events = app
        .get(&key, "/v1/events?type=connection.reauthorized")
        .await;
    assert_eq!(events.body["data"][0]["connection_id"], conn.as_str());

    let public = query_param(&back, "public_token").unwrap();
    let res = app
        .post(
            &key,
            "/v1/link-tokens/exchange",
            json!({"public_token": public}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        res.body["token"],
        Value::Null,
        "the connection keeps its token"
    );
    assert_eq!(res.body["reauthorized"], true);

    // A disconnected connection cannot be renewed.
    app.post(
        &key,
        &format!("/v1/connections/{conn}/disconnect"),
        json!({}),
    )
    .await;
    app.post(
        &key,
        "/v1/link-tokens",
        json!({"end_user": {"id": "cust-1"}, "connection_id": conn, "redirect_url": REDIRECT}),
    )
    .await
    .assert_error(409, "CONFLICT");
}

#[tokio::test]
async fn cancelling_goes_back_with_an_error() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let browser = Browser::new(&app);
    let (url, _) = link_token(&app, &key, sandbox_link()).await;
    let back = location(&browser.get(&format!("{url}/cancel")).await);
    assert_eq!(query_param(&back, "error").as_deref(), Some("cancelled"));
    assert!(
        browser.get(&url).await.status == 303,
        "cancelling spends nothing"
    );
}

#[tokio::test]
async fn behind_a_proxy_the_forwarded_host_is_ours_and_a_flood_gets_a_page() {
    let app = TestApp::spawn_with(ironbridge_server::ServerConfig {
        rate_limit_per_second: 0,
        anonymous_per_minute: 60,
        anonymous_burst: 3,
        ..ironbridge_server::ServerConfig::default()
    })
    .await;
    let (_, key) = app.org(3).await;
    let browser = Browser::new(&app);
    let (url, _) = link_token(&app, &key, sandbox_link()).await;
    let form = format!("{url}/systems/sandbox");
    let csrf = hidden(&browser.get(&form).await.text, "csrf");
    // The browser used the proxy's address; the proxy says so in X-Forwarded-Host.
    let res = app
        .send(
            browser
                .client
                .post(app.url(&form))
                .header("origin", "https://link.example.com")
                .header("x-forwarded-host", "link.example.com")
                .form(&[("csrf", csrf.as_str()), ("option", "none")]),
        )
        .await;
    assert!(location(&res).starts_with(REDIRECT), "{}", res.text);
    // Past the per-address limit, a person gets a page that says when to come back.
    let mut last = browser.get(&url).await;
    for _ in 0..5 {
        last = browser.get(&url).await;
    }
    assert_eq!(last.status, 429);
    assert!(
        last.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(last.header("retry-after").is_some());
    assert!(last.text.contains("Too many requests"), "{}", last.text);
}
