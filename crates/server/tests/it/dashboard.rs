//! The dashboard: accounts, sign-in, sessions in cookies, sign-out and expiry; its pages and
//! actions (sync, full sync, disconnect, replay); the request log; and its defences: a
//! session reaches its own organization only, posts need the session's token and our own
//! origin, and what is shown back is escaped.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use ironbridge_core::Clock;
use serde_json::json;

use crate::support::{Res, TestApp};

const PASSWORD: &str = "correct horse battery staple";

/// A browser with a cookie jar of its own (only the dashboard's cookies), no redirects.
struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookies: std::sync::Mutex<Vec<(String, String)>>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Browser {
            app,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Default::default(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&self, res: &Res) {
        for v in res.headers.get_all("set-cookie") {
            let text = v.to_str().unwrap();
            let (pair, _) = text.split_once(';').unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            let mut jar = self.cookies.lock().unwrap();
            jar.retain(|(name, _)| name != k);
            if !v.is_empty() {
                jar.push((k.to_string(), v.to_string()));
            }
        }
    }

    async fn get(&self, path: &str) -> Res {
        let res = self
            .app
            .send(
                self.client
                    .get(self.app.url(path))
                    .header("cookie", self.cookie_header()),
            )
            .await;
        self.keep(&res);
        res
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Res {
        let res = self
            .app
            .send(
                self.client
                    .post(self.app.url(path))
                    .header("cookie", self.cookie_header())
                    .header("origin", &self.app.base)
                    .header("sec-fetch-site", "same-origin")
                    .form(fields),
            )
            .await;
        self.keep(&res);
        res
    }

    /// Signs in with the form; answers the dashboard's first page.
    async fn sign_in(&self, email: &str, password: &str) -> Res {
        let page = self.get("/dashboard/sign-in").await;
        let csrf = hidden(&page.text, "csrf");
        self.post(
            "/dashboard/sign-in",
            &[("csrf", &csrf), ("email", email), ("password", password)],
        )
        .await
    }

    /// Posts a page's form at `action` with the token the page carries.
    async fn press(&self, page: &str, action: &str, extra: &[(&str, &str)]) -> Res {
        let html = self.get(page).await.text;
        assert!(
            html.contains(action),
            "{page} has no form to {action}: {html}"
        );
        let csrf = hidden(&html, "csrf");
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(extra);
        self.post(action, &fields).await
    }
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_string()
}

fn see_other(res: &Res) -> &str {
    assert_eq!(res.status, 303, "{}", res.text);
    res.header("location").unwrap()
}

async fn account(app: &TestApp, key: &str, email: &str) {
    let res = app
        .post(
            key,
            "/v1/dashboard-users",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
}

#[tokio::test]
async fn people_sign_in_with_a_password_and_sessions_end() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    let res = app
        .post(
            &key,
            "/v1/dashboard-users",
            json!({"email": "Dev@Example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(res.body["email"], "dev@example.com");
    assert!(!res.text.contains(PASSWORD) && res.body.get("password_hash").is_none());
    let res = app
        .post(
            &key,
            "/v1/dashboard-users",
            json!({"email": "dev@example.com", "password": PASSWORD}),
        )
        .await;
    res.assert_error(409, "CONFLICT");
    let res = app
        .post(
            &key,
            "/v1/dashboard-users",
            json!({"email": "x@example.com", "password": "short"}),
        )
        .await;
    assert_eq!(
        res.assert_error(422, "VALIDATION_ERROR")["param"],
        "password"
    );
    let res = app
        .post(
            &key,
            "/v1/dashboard-users",
            json!({"email": "nobody", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.assert_error(422, "VALIDATION_ERROR")["param"], "email");

    let browser = Browser::new(&app);
    assert_eq!(
        see_other(&browser.get("/dashboard").await),
        "/dashboard/sign-in"
    );
    let wrong = browser.sign_in("dev@example.com", "not the password").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text.contains("Wrong e-mail address or password"));
    assert!(wrong.text.contains(r#"value="dev@example.com""#));
    assert!(
        !wrong.text.contains("not the password"),
        "a password never comes back"
    );
    let unknown = browser.sign_in("nobody@example.com", PASSWORD).await;
    assert_eq!(unknown.status, 401);

    let ok = browser.sign_in("DEV@example.com", PASSWORD).await;
    assert_eq!(see_other(&ok), "/dashboard");
    let cookie = ok
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("ib_session="))
        .unwrap();
    for part in [
        "HttpOnly",
        "SameSite=Lax",
        "Path=/dashboard",
        "Max-Age=43200",
    ] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP here");
    if let Some(bytes) = app.database_bytes() {
        let token = cookie
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("ib_session=");
        assert!(
            !String::from_utf8_lossy(&bytes).contains(token),
            "only its hash is stored"
        );
    }
    let home = browser.get("/dashboard").await;
    assert_eq!(home.status, 200, "{}", home.text);
    assert!(home.text.contains("dev@example.com"));
    assert_eq!(home.header("x-frame-options"), Some("DENY"));
    assert!(
        home.header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );

    // Signing out ends the session on the server, not only in this browser.
    let kept = browser.cookie_header();
    see_other(
        &browser
            .press("/dashboard", "/dashboard/sign-out", &[])
            .await,
    );
    let replayed = app
        .send(
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap()
                .get(app.url("/dashboard"))
                .header("cookie", kept),
        )
        .await;
    assert_eq!(replayed.status, 303, "the old cookie no longer works");

    // Sessions expire on the server's clock.
    see_other(&browser.sign_in("dev@example.com", PASSWORD).await);
    assert_eq!(browser.get("/dashboard").await.status, 200);
    app.clock.advance_secs(12 * 3600 + 1);
    assert_eq!(
        see_other(&browser.get("/dashboard").await),
        "/dashboard/sign-in"
    );
}

#[tokio::test]
async fn sign_in_and_dashboard_posts_need_our_page_and_origin() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    account(&app, &key, "dev@example.com").await;
    let (conn, _) = app.connection(&key, json!({})).await;
    let browser = Browser::new(&app);
    // A sign-in form posted from elsewhere, or without the page's token, is refused.
    let res = browser
        .post(
            "/dashboard/sign-in",
            &[("email", "dev@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status, 403);
    see_other(&browser.sign_in("dev@example.com", PASSWORD).await);
    let page = format!("/dashboard/connections/{conn}");
    let action = format!("/dashboard/connections/{conn}/disconnect");
    assert_eq!(browser.post(&action, &[]).await.status, 403, "no token");
    assert_eq!(
        browser.post(&action, &[("csrf", "forged")]).await.status,
        403
    );
    let csrf = hidden(&browser.get(&page).await.text, "csrf");
    let cross = app
        .send(
            browser
                .client
                .post(app.url(&action))
                .header("cookie", browser.cookie_header())
                .header("origin", "https://evil.example")
                .form(&[("csrf", csrf.as_str())]),
        )
        .await;
    assert_eq!(cross.status, 403);
    let cross = app
        .send(
            browser
                .client
                .post(app.url(&action))
                .header("cookie", browser.cookie_header())
                .header("sec-fetch-site", "cross-site")
                .form(&[("csrf", csrf.as_str())]),
        )
        .await;
    assert_eq!(cross.status, 403);
    // Another session's token is not this one's.
    let other = Browser::new(&app);
    see_other(&other.sign_in("dev@example.com", PASSWORD).await);
    let theirs = hidden(&other.get(&page).await.text, "csrf");
    assert_eq!(
        browser.post(&action, &[("csrf", &theirs)]).await.status,
        403
    );
    assert_eq!(
        app.get(&key, &format!("/v1/connections/{conn}")).await.body["status"],
        "online",
        "nothing was done"
    );
}

#[tokio::test]
async fn a_session_reaches_its_own_organization_only() {
    let app = TestApp::spawn().await;
    let (_, key_a) = app.org(3).await;
    let (_, key_b) = app.org(3).await;
    account(&app, &key_a, "a@example.com").await;
    account(&app, &key_b, "b@example.com").await;
    let (conn_b, _) = app.connection(&key_b, json!({})).await;
    let hook = app
        .post(
            &key_b,
            "/v1/webhook-endpoints",
            json!({"url": "http://127.0.0.1:9/hook"}),
        )
        .await;
    let endpoint_b = hook.body["endpoint"]["id"]
        .as_str()
        .unwrap_or_else(|| hook.body["id"].as_str().unwrap())
        .to_string();
    let browser = Browser::new(&app);
    see_other(&browser.sign_in("a@example.com", PASSWORD).await);
    let home = browser.get("/dashboard").await;
    assert!(!home.text.contains(&conn_b));
    for path in [
        format!("/dashboard/connections/{conn_b}"),
        format!("/dashboard/connections/{conn_b}/mappings"),
        format!("/dashboard/webhooks/{endpoint_b}"),
    ] {
        let res = browser.get(&path).await;
        assert_eq!(res.status, 404, "{path}: {}", res.text);
    }
    let csrf = hidden(&home.text, "csrf");
    for action in [
        format!("/dashboard/connections/{conn_b}/sync"),
        format!("/dashboard/connections/{conn_b}/disconnect"),
        format!("/dashboard/connections/{conn_b}/mappings"),
        format!("/dashboard/connections/{conn_b}/reconnect"),
        format!("/dashboard/webhooks/{endpoint_b}/recover"),
        "/dashboard/deliveries/whd_unknown/replay".to_string(),
    ] {
        let res = browser.post(&action, &[("csrf", &csrf)]).await;
        assert_eq!(res.status, 404, "{action}: {}", res.text);
    }
    assert_eq!(
        app.get(&key_b, &format!("/v1/connections/{conn_b}"))
            .await
            .body["status"],
        "online"
    );
    let events = browser.get("/dashboard/events").await;
    assert!(!events.text.contains(&conn_b));
}

/// A webhook receiver on loopback that answers 204.
async fn receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new().route("/hook", post(|| async { StatusCode::NO_CONTENT }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://127.0.0.1:{port}/hook")
}

#[tokio::test]
async fn every_page_shows_the_organizations_state_and_its_buttons_work() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    account(&app, &key, "dev@example.com").await;
    let url = receiver().await;
    let endpoint = app
        .post(&key, "/v1/webhook-endpoints", json!({"url": url}))
        .await;
    assert_eq!(endpoint.status, 201, "{}", endpoint.body);
    let endpoint = endpoint.body["endpoint"]["id"]
        .as_str()
        .or_else(|| endpoint.body["id"].as_str())
        .unwrap()
        .to_string();
    let evil = "<script>alert(1)</script>";
    let res = app
        .post(
            &key,
            "/v1/connections",
            json!({"system": "sandbox", "name": evil, "settings": {"purchase_orders": 3}}),
        )
        .await;
    let conn = res.body["connection"]["id"].as_str().unwrap().to_string();
    let browser = Browser::new(&app);
    see_other(&browser.sign_in("dev@example.com", PASSWORD).await);

    let home = browser.get("/dashboard").await;
    assert!(
        home.text.contains(&conn) && home.text.contains("online"),
        "{}",
        home.text
    );
    assert!(home.text.contains("1 of 3 connection credits"));
    let detail_path = format!("/dashboard/connections/{conn}");
    let detail = browser.get(&detail_path).await;
    assert!(detail.text.contains("purchase_order"), "{}", detail.text);
    for page in [&home, &detail] {
        assert!(!page.text.contains("<script") && page.text.contains("&#60;script&#62;"));
    }

    let sync = format!("{detail_path}/sync");
    assert_eq!(
        see_other(&browser.press(&detail_path, &sync, &[]).await),
        format!("{detail_path}?done=sync")
    );
    let queued = browser.get(&format!("{detail_path}?done=sync")).await;
    assert!(queued.text.contains("A sync was queued"));
    assert_eq!(
        see_other(
            &browser
                .press(&detail_path, &sync, &[("full", "true")])
                .await
        ),
        format!("{detail_path}?done=full-sync")
    );
    let disconnect = format!("{detail_path}/disconnect");
    see_other(&browser.press(&detail_path, &disconnect, &[]).await);
    assert_eq!(
        app.get(&key, &format!("/v1/connections/{conn}")).await.body["status"],
        "disconnected"
    );
    assert!(
        !browser.get(&detail_path).await.text.contains(&disconnect),
        "no disconnect once disconnected"
    );
    // Reconnecting makes a new connection (new token, same credentials) in place of the old.
    let reconnect = format!("{detail_path}/reconnect");
    let moved = browser.press(&detail_path, &reconnect, &[]).await;
    let new_page = see_other(&moved).to_string();
    assert!(
        new_page.ends_with("?done=reconnected") && !new_page.contains(&conn),
        "{new_page}"
    );
    let old = app.get(&key, &format!("/v1/connections/{conn}")).await;
    let new_id = old.body["replaced_by"].as_str().unwrap().to_string();
    assert!(new_page.contains(&new_id));
    assert_eq!(
        app.get(&key, &format!("/v1/connections/{new_id}"))
            .await
            .body["status"],
        "online"
    );
    assert!(
        !browser.get(&detail_path).await.text.contains(&reconnect),
        "replaced: no second reconnect"
    );

    // The disconnection's event was delivered; the delivery log replays it.
    while app.webhooks.run_due().await.unwrap() > 0 {}
    let hooks = browser.get("/dashboard/webhooks").await;
    assert!(hooks.text.contains(&url), "{}", hooks.text);
    let log_path = format!("/dashboard/webhooks/{endpoint}");
    let log = browser.get(&log_path).await;
    assert!(log.text.contains("connection.disconnected"), "{}", log.text);
    assert!(log.text.contains("status-succeeded"), "{}", log.text);
    let delivery = {
        let start =
            log.text.find("/dashboard/deliveries/").unwrap() + "/dashboard/deliveries/".len();
        log.text[start..start + log.text[start..].find('/').unwrap()].to_string()
    };
    let replay = format!("/dashboard/deliveries/{delivery}/replay");
    assert_eq!(
        see_other(&browser.press(&log_path, &replay, &[]).await),
        format!("{log_path}?done=replayed")
    );
    let recover = format!("{log_path}/recover");
    assert_eq!(
        see_other(&browser.press(&log_path, &recover, &[]).await),
        format!("{log_path}?done=recovered")
    );
    let attempts_before = app
        .get(&key, &format!("/v1/webhook-deliveries/{delivery}"))
        .await
        .body["attempts"]
        .as_i64()
        .unwrap();
    while app.webhooks.run_due().await.unwrap() > 0 {}
    let after = app
        .get(&key, &format!("/v1/webhook-deliveries/{delivery}"))
        .await;
    assert!(
        after.body["attempts"].as_i64().unwrap() > attempts_before,
        "{}",
        after.body
    );

    let events = browser.get("/dashboard/events").await;
    assert!(
        events.text.contains("connection.disconnected"),
        "{}",
        events.text
    );

    // The request log: every request of the organization's credentials, found by its id.
    let call = app.get(&key, "/v1/organization").await;
    let request_id = call.header("x-request-id").unwrap().to_string();
    let all = browser.get("/dashboard/requests").await;
    assert!(
        all.text.contains("/v1/organization") && all.text.contains(&request_id),
        "{}",
        all.text
    );
    let one = browser
        .get(&format!("/dashboard/requests?request_id={request_id}"))
        .await;
    assert_eq!(
        one.text.matches("<tr>").count(),
        2,
        "the header and the one request: {}",
        one.text
    );
    assert!(one.text.contains("GET") && one.text.contains("200"));
    let (_, other) = app.org(1).await;
    let theirs = app.get(&other, "/v1/organization").await;
    let hidden_id = theirs.header("x-request-id").unwrap();
    let none = browser
        .get(&format!("/dashboard/requests?request_id={hidden_id}"))
        .await;
    assert!(none.text.contains("No requests found"), "{}", none.text);

    // The request log keeps entries for the configured time.
    let purged = app
        .store
        .purge_request_log(app.clock.now().plus_secs(1))
        .await
        .unwrap();
    assert!(purged > 0);
}

#[tokio::test]
async fn a_one_time_sign_in_link_signs_in_once() {
    let app = TestApp::spawn().await;
    let (org, key) = app.org(3).await;
    account(&app, &key, "dev@example.com").await;
    let user = app
        .store
        .find_dashboard_user("dev@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.org_id, org);
    let now = app.clock.now();
    let secret = "ibd_onetimesignin";
    app.store
        .create_sign_in_link(
            &ironbridge_core::store::OrgId(org.clone()),
            &ironbridge_core::store::NewDashboardToken {
                id: "sil_1".into(),
                user_id: user.id.clone(),
                token_hash: ironbridge_core::crypto::token_hash(secret),
                created_at: now,
                expires_at: now.plus_secs(900),
            },
        )
        .await
        .unwrap();
    let browser = Browser::new(&app);
    let path = format!("/dashboard/sign-in/{secret}");
    assert_eq!(see_other(&browser.get(&path).await), "/dashboard");
    assert_eq!(browser.get("/dashboard").await.status, 200);
    let again = Browser::new(&app).get(&path).await;
    assert_eq!(again.status, 410, "{}", again.text);
}

#[tokio::test]
async fn a_custom_field_added_on_the_mappings_page_is_in_the_api_at_once() {
    let app = TestApp::spawn().await;
    let (_, key) = app.org(3).await;
    account(&app, &key, "dev@example.com").await;
    let (conn, token) = app.connection(&key, json!({"purchase_orders": 5})).await;
    let fields = app
        .get(
            &key,
            &format!("/v1/connections/{conn}/remote-fields?entity=purchase_order"),
        )
        .await;
    let path = fields.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["scope"] == "record" && f["type"] == "text" && f["records_with_value"] == 5)
        .expect("a text field every order has")["path"]
        .as_str()
        .unwrap()
        .to_string();
    let browser = Browser::new(&app);
    see_other(&browser.sign_in("dev@example.com", PASSWORD).await);
    let page = format!("/dashboard/connections/{conn}/mappings");
    let html = browser.get(&page).await;
    assert_eq!(html.status, 200, "{}", html.text);
    assert!(html.text.contains(&path) && html.text.contains("Add a custom field"));

    // A bad name and an unknown path are refused on the form; nothing is saved.
    let res = browser
        .press(
            &page,
            &page,
            &[
                ("entity", "purchase_order"),
                ("name", "Bad Name"),
                ("source_path", &path),
            ],
        )
        .await;
    assert_eq!(res.status, 422);
    let res = browser
        .press(
            &page,
            &page,
            &[
                ("entity", "purchase_order"),
                ("name", "ok"),
                ("source_path", "no.such.<b>path</b>"),
            ],
        )
        .await;
    assert_eq!(res.status, 422, "{}", res.text);
    assert!(!res.text.contains("<b>path"), "escaped");

    let preview = browser
        .press(
            &page,
            &page,
            &[
                ("entity", "purchase_order"),
                ("name", "from_browser"),
                ("source_path", &path),
                ("action", "preview"),
            ],
        )
        .await;
    assert_eq!(preview.status, 200, "{}", preview.text);
    assert!(
        preview.text.contains("nothing was saved") && preview.text.contains("from_browser"),
        "{}",
        preview.text
    );
    let orders = app.get(&token, "/v1/purchase-orders").await;
    assert!(
        orders.body["data"][0]["custom_fields"]
            .get("from_browser")
            .is_none(),
        "a preview saves nothing"
    );

    let saved = browser
        .press(
            &page,
            &page,
            &[
                ("entity", "purchase_order"),
                ("name", "from_browser"),
                ("source_path", &path),
                ("action", "save"),
            ],
        )
        .await;
    assert!(see_other(&saved).ends_with("done=mapped"));
    let orders = app.get(&token, "/v1/purchase-orders").await;
    assert!(
        orders.body["data"][0]["custom_fields"]["from_browser"].is_string(),
        "{}",
        orders.body["data"][0]
    );
    // A unified field remapped from the same source path reads the same value.
    let remapped = browser
        .press(
            &page,
            &page,
            &[
                ("entity", "purchase_order"),
                ("kind", "unified"),
                ("name", "memo"),
                ("source_path", &path),
                ("action", "save"),
            ],
        )
        .await;
    assert!(
        see_other(&remapped).ends_with("done=mapped"),
        "{}",
        remapped.text
    );
    let orders = app.get(&token, "/v1/purchase-orders").await;
    let first = &orders.body["data"][0];
    assert_eq!(
        first["memo"], first["custom_fields"]["from_browser"],
        "{first}"
    );
    let refused = browser
        .press(
            &page,
            &page,
            &[
                ("entity", "purchase_order"),
                ("kind", "unified"),
                ("name", "no_such_field"),
                ("source_path", &path),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    let history = app
        .get(
            &key,
            &format!("/v1/connections/{conn}/field-mappings/history"),
        )
        .await;
    assert!(history.text.contains("dashboard:usr_"), "{}", history.text);
}

/// The events page shows the newest events first, however many there are.
#[tokio::test]
async fn the_events_page_shows_the_newest_first() {
    let app = TestApp::spawn().await;
    let (org, key) = app.org(3).await;
    account(&app, &key, "ops@example.com").await;
    for i in 0..210i64 {
        let at = ironbridge_model::Timestamp(app.clock.now().micros() + i);
        app.store
            .insert_event(&ironbridge_core::store::Event {
                id: ironbridge_core::ids::new_id("evt", at.micros()),
                org_id: org.clone(),
                connection_id: None,
                event_type: "batch.completed".into(),
                data: json!({"n": format!("number-{i:03}")}).to_string(),
                created_at: at,
            })
            .await
            .unwrap();
    }
    let browser = Browser::new(&app);
    see_other(&browser.sign_in("ops@example.com", PASSWORD).await);
    let page = browser.get("/dashboard/events").await;
    assert_eq!(page.status, 200);
    let newest = page
        .text
        .find("number-209")
        .expect("the newest event is shown");
    let older = page.text.find("number-208").expect("the one before it too");
    assert!(newest < older, "newest first");
    assert!(!page.text.contains("number-009"), "only the newest 200");
}
