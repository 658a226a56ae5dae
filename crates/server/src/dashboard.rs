//! The dashboard of an organization's developers: sign-in with an e-mail address and a
//! password (argon2id, checked off the request threads), sessions in an HttpOnly, SameSite
//! cookie stored only as a hash with an expiry, and pages that show what the API shows —
//! each page calls the same handler the API route calls, so the two never disagree and a
//! session reaches its own organization only. Every post carries a token bound to the
//! session and is refused from other sites.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use askama::Template;
use axum::Json;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use ironbridge_core::Clock;
use ironbridge_core::crypto::{new_token, random_bytes, token_hash};
use ironbridge_core::ids::new_id;
use ironbridge_core::store::{
    DashboardSession, DashboardUser, NewDashboardToken, OrgId, Store, StoreError,
};
use ironbridge_model::ErrorCode;
use ironbridge_model::api::{ConnectionOut, SyncIn};
use ironbridge_model::dashboard::{DashboardUserIn, DashboardUserOut};

use crate::AppState;
use crate::auth::{AdminAuth, ConnectionAuth};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::html::{
    Chrome, PageError, Policy, check_same_origin, form_value, page, parse_form, secure,
};
use crate::routes::Route;
use crate::routes::{connections, field_mappings, webhooks};

type ErrorBody = ironbridge_model::error::ErrorResponse;

/// The session cookie.
const SESSION_COOKIE: &str = "ib_session";
/// The cookie binding the sign-in form's token to one browser (against sign-in forgery).
const SIGN_IN_COOKIE: &str = "ib_sign_in";
/// Prefix of session tokens.
const SESSION_PREFIX: &str = "ibs";
/// Prefix of one-time sign-in links' tokens.
const SIGN_IN_LINK_PREFIX: &str = "ibd";
/// How long a one-time sign-in link works.
pub const SIGN_IN_LINK_SECS: i64 = 15 * 60;

/// The sign-in pages: limited per client address, as failed API authentication is, so
/// passwords and sign-in links cannot be guessed at speed.
pub fn sign_in_routes() -> Vec<Route> {
    vec![
        Route::new(Method::GET, "/dashboard/sign-in", get(sign_in_page)),
        Route::new(Method::POST, "/dashboard/sign-in", post(sign_in)),
        Route::new(Method::GET, "/dashboard/sign-in/{token}", get(sign_in_link)),
    ]
}

/// The pages of a signed-in session (a person browsing is not an anonymous client; without a
/// live session every one of them only redirects to the limited sign-in page).
pub fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::POST, "/dashboard/sign-out", post(sign_out)),
        Route::new(Method::GET, "/dashboard", get(connections_page)),
        Route::new(
            Method::GET,
            "/dashboard/connections/{id}",
            get(connection_page),
        ),
        Route::new(
            Method::POST,
            "/dashboard/connections/{id}/sync",
            post(sync_connection),
        ),
        Route::new(
            Method::POST,
            "/dashboard/connections/{id}/disconnect",
            post(disconnect_connection),
        ),
        Route::new(
            Method::POST,
            "/dashboard/connections/{id}/reconnect",
            post(reconnect_connection),
        ),
        Route::new(
            Method::GET,
            "/dashboard/connections/{id}/mappings",
            get(mappings_page),
        ),
        Route::new(
            Method::POST,
            "/dashboard/connections/{id}/mappings",
            post(add_custom_field),
        ),
        Route::new(Method::GET, "/dashboard/webhooks", get(webhooks_page)),
        Route::new(Method::GET, "/dashboard/webhooks/{id}", get(endpoint_page)),
        Route::new(
            Method::POST,
            "/dashboard/deliveries/{id}/replay",
            post(replay_delivery),
        ),
        Route::new(
            Method::POST,
            "/dashboard/webhooks/{id}/recover",
            post(recover_deliveries),
        ),
        Route::new(Method::GET, "/dashboard/events", get(events_page)),
        Route::new(Method::GET, "/dashboard/requests", get(requests_page)),
    ]
}

// ---------------------------------------------------------------------------------------
// Passwords and accounts.

/// An argon2id hash of `password` (PHC string), computed off the request threads.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(ApiError::internal)?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(ApiError::internal)
    })
    .await
    .map_err(ApiError::internal)?
}

/// Whether `password` matches `hash`, checked off the request threads. An unknown account
/// is checked against a fixed hash, so the answer takes as long either way.
async fn verify_password(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_string());
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
            && known
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password with the default parameters.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$9rh9vHXcWbwcgEXx0TaG4RXbvmJw3aBhZP9VTtIWuxk";

/// Checks an account's e-mail address and password and stores it, the password hashed.
pub async fn create_account(
    store: &dyn Store,
    clock: &dyn Clock,
    org: &OrgId,
    input: &DashboardUserIn,
) -> ApiResult<DashboardUser> {
    let email = input.email.trim().to_lowercase();
    let at = email.find('@');
    if email.len() > 320 || at.is_none_or(|i| i == 0 || i + 1 == email.len()) {
        return Err(ApiError::new(
            ErrorCode::ValidationError,
            "`email` must be an e-mail address.",
        )
        .param("email"));
    }
    let length = input.password.chars().count();
    if !(12..=200).contains(&length) {
        return Err(ApiError::new(
            ErrorCode::ValidationError,
            "`password` must be 12 to 200 characters.",
        )
        .param("password"));
    }
    let now = clock.now();
    let user = DashboardUser {
        id: new_id("usr", now.micros()),
        org_id: org.0.clone(),
        email,
        password_hash: hash_password(input.password.clone()).await?,
        created_at: now,
    };
    store
        .create_dashboard_user(org, &user)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::new(
                ErrorCode::Conflict,
                "A dashboard account with this e-mail address exists.",
            )
            .param("email"),
            other => other.into(),
        })?;
    Ok(user)
}

/// A one-time address that signs `user` in (what `ironbridge demo` prints).
pub async fn new_sign_in_link(
    store: &dyn Store,
    clock: &dyn Clock,
    user: &DashboardUser,
) -> ApiResult<String> {
    let now = clock.now();
    let secret = new_token(SIGN_IN_LINK_PREFIX);
    store
        .create_sign_in_link(
            &OrgId(user.org_id.clone()),
            &NewDashboardToken {
                id: new_id("sil", now.micros()),
                user_id: user.id.clone(),
                token_hash: token_hash(&secret),
                created_at: now,
                expires_at: now.plus_secs(SIGN_IN_LINK_SECS),
            },
        )
        .await?;
    Ok(format!("/dashboard/sign-in/{secret}"))
}

/// Create a dashboard account for a person of the organization. They sign in at
/// `/dashboard/sign-in` with the e-mail address and password.
#[utoipa::path(post, path = "/v1/dashboard-users", tag = "Dashboard", operation_id = "v1.dashboard_users.create",
    request_body = DashboardUserIn,
    responses((status = 201, description = "The account", body = DashboardUserOut),
        (status = 409, description = "The e-mail address has an account", body = ErrorBody),
        (status = 422, description = "A bad e-mail address or password", body = ErrorBody)),
    security(("admin_key" = [])))]
pub async fn create_dashboard_user(
    State(state): State<AppState>,
    AdminAuth(org): AdminAuth,
    ApiJson(input): ApiJson<DashboardUserIn>,
) -> ApiResult<(StatusCode, Json<DashboardUserOut>)> {
    let user = create_account(state.store.as_ref(), state.clock.as_ref(), &org, &input).await?;
    Ok((
        StatusCode::CREATED,
        Json(DashboardUserOut {
            id: user.id,
            email: user.email,
            created_at: user.created_at,
        }),
    ))
}

// ---------------------------------------------------------------------------------------
// Sessions.

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn secure_cookies(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

fn set_cookie(name: &str, value: &str, max_age: i64, same_site: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/dashboard; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A signed-in person: their session, which reaches their organization only. Without one,
/// the browser is sent to the sign-in page.
pub struct Session(pub DashboardSession);

impl Session {
    fn org(&self) -> OrgId {
        OrgId(self.0.org_id.clone())
    }

    fn csrf(&self, state: &AppState) -> String {
        state.keys.form_token(&format!("session:{}", self.0.id))
    }

    /// Checks a post: from our own pages, with this session's form token.
    fn check_post(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Vec<(String, String)>, PageError> {
        check_same_origin(headers)?;
        let form = parse_form(body);
        let token = form_value(&form, "csrf").unwrap_or("");
        if !state
            .keys
            .verify_form_token(&format!("session:{}", self.0.id), token)
        {
            return Err(PageError::new(
                StatusCode::FORBIDDEN,
                "This form could not be accepted",
                "It was not sent from this page, or the page is out of date. Go back, reload the page and try again.",
            ));
        }
        Ok(form)
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_sign_in = || {
            secure(
                (
                    StatusCode::SEE_OTHER,
                    [(header::LOCATION, "/dashboard/sign-in")],
                )
                    .into_response(),
                &Policy::strict(),
            )
        };
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE)
            .filter(|t| t.starts_with(&format!("{SESSION_PREFIX}_")) && t.len() < 100)
        else {
            return Err(to_sign_in());
        };
        match state
            .store
            .find_dashboard_session(&token_hash(&token), state.clock.now())
            .await
        {
            Ok(Some(session)) => Ok(Session(session)),
            Ok(None) => Err(to_sign_in()),
            Err(e) => Err(PageError::from(e).into_response()),
        }
    }
}

/// Starts a session for `user` and sends the browser to the dashboard with its cookie.
async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    user: &DashboardUser,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let secret = new_token(SESSION_PREFIX);
    let ttl = i64::try_from(state.config.dashboard_session_ttl.as_secs()).unwrap_or(i64::MAX);
    state
        .store
        .create_dashboard_session(
            &OrgId(user.org_id.clone()),
            &NewDashboardToken {
                id: new_id("ses", now.micros()),
                user_id: user.id.clone(),
                token_hash: token_hash(&secret),
                created_at: now,
                expires_at: now.plus_secs(ttl),
            },
        )
        .await?;
    let secure_flag = secure_cookies(state, headers);
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/dashboard")]).into_response();
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &secret, ttl, "Lax", secure_flag),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(SIGN_IN_COOKIE, "", 0, "Strict", secure_flag),
    );
    Ok(secure(response, &Policy::strict()))
}

#[derive(Template)]
#[template(path = "dash_sign_in.html")]
struct SignInPage<'a> {
    chrome: &'a Chrome,
    csrf: String,
    email: String,
    error: String,
}

fn sign_in_form(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    email: String,
    error: String,
) -> Response {
    let binding = base64_id();
    let template = SignInPage {
        chrome: &Chrome::ironbridge(),
        csrf: state.keys.form_token(&format!("sign-in:{binding}")),
        email,
        error,
    };
    let mut response = page(status, &template, &Policy::strict());
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            SIGN_IN_COOKIE,
            &binding,
            1800,
            "Strict",
            secure_cookies(state, headers),
        ),
    );
    response
}

fn base64_id() -> String {
    random_bytes::<16>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `GET /dashboard/sign-in`.
async fn sign_in_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    sign_in_form(
        &state,
        &headers,
        StatusCode::OK,
        String::new(),
        String::new(),
    )
}

/// `POST /dashboard/sign-in`: the e-mail address and password, from our own form.
async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    check_same_origin(&headers)?;
    let form = parse_form(&body);
    let binding = cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if binding.is_empty()
        || !state.keys.verify_form_token(
            &format!("sign-in:{binding}"),
            form_value(&form, "csrf").unwrap_or(""),
        )
    {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "This form could not be accepted",
            "It was not sent from the sign-in page, or the page is out of date. Open the sign-in page again.",
        ));
    }
    let email = form_value(&form, "email")
        .unwrap_or("")
        .trim()
        .to_lowercase();
    let password = form_value(&form, "password").unwrap_or("").to_string();
    let user = if email.is_empty() || email.len() > 320 {
        None
    } else {
        state.store.find_dashboard_user(&email).await?
    };
    let ok = verify_password(password, user.as_ref().map(|u| u.password_hash.clone())).await;
    match user {
        Some(user) if ok => start_session(&state, &headers, &user).await,
        _ => Ok(sign_in_form(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            email,
            "Wrong e-mail address or password.".into(),
        )),
    }
}

/// `GET /dashboard/sign-in/{token}`: a one-time sign-in link.
async fn sign_in_link_page(
    state: &AppState,
    headers: &HeaderMap,
    token: &str,
) -> Result<Response, PageError> {
    let gone = || {
        PageError::new(
            StatusCode::GONE,
            "This sign-in link does not work",
            "It was used already, has expired, or is incomplete. Sign in with your e-mail address and password.",
        )
    };
    if token.len() > 120 {
        return Err(gone());
    }
    let user = state
        .store
        .use_sign_in_link(&token_hash(token), state.clock.now())
        .await?
        .ok_or_else(gone)?;
    start_session(state, headers, &user).await
}

async fn sign_in_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    sign_in_link_page(&state, &headers, &token).await
}

/// `POST /dashboard/sign-out`.
async fn sign_out(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    session.check_post(&state, &headers, &body)?;
    state
        .store
        .end_dashboard_session(&session.org(), &session.0.id, state.clock.now())
        .await?;
    let mut response = (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, "/dashboard/sign-in")],
    )
        .into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            "",
            0,
            "Lax",
            secure_cookies(&state, &headers),
        ),
    );
    Ok(secure(response, &Policy::strict()))
}

// ---------------------------------------------------------------------------------------
// Pages: each one a table or a few, built from what the API handlers answer.

/// One cell: text, a link, or a button posting to `post`.
struct Cell {
    text: String,
    href: String,
    post: String,
    class: String,
}

impl Cell {
    fn text(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            href: String::new(),
            post: String::new(),
            class: String::new(),
        }
    }

    fn link(text: impl Into<String>, href: impl Into<String>) -> Cell {
        Cell {
            href: href.into(),
            ..Cell::text(text)
        }
    }

    fn status(text: impl Into<String>) -> Cell {
        let text = text.into();
        Cell {
            class: format!("status-{text}"),
            ..Cell::text(text)
        }
    }

    fn button(label: impl Into<String>, post: impl Into<String>) -> Cell {
        Cell {
            post: post.into(),
            ..Cell::text(label)
        }
    }
}

fn at(t: Option<ironbridge_model::Timestamp>) -> String {
    t.map(|t| t.to_rfc3339()).unwrap_or_else(|| "—".into())
}

/// A button above a table: a post with fixed fields.
struct Action {
    label: String,
    url: String,
    class: String,
    fields: Vec<(String, String)>,
}

struct Section {
    title: String,
    headers: Vec<&'static str>,
    rows: Vec<Vec<Cell>>,
    actions: Vec<Action>,
    empty: String,
}

#[derive(Template)]
#[template(path = "dash_page.html")]
struct DashPage<'a> {
    chrome: &'a Chrome,
    email: &'a str,
    csrf: String,
    title: String,
    intro: String,
    notice: String,
    search: bool,
    search_value: String,
    sections: Vec<Section>,
    mapping_form: Option<MappingForm>,
}

/// The form adding a custom field to a connection's mapping.
struct MappingForm {
    action: String,
    entities: Vec<String>,
    entity: String,
    /// Whether the form maps a unified field (a remap) rather than a new custom field.
    remap: bool,
    name: String,
    source_path: String,
    error: String,
}

fn render(
    state: &AppState,
    session: &Session,
    title: impl Into<String>,
    intro: impl Into<String>,
    notice: &str,
    sections: Vec<Section>,
) -> Response {
    let chrome = Chrome {
        brand: "Ironbridge".into(),
        colour: String::new(),
        subtitle: "Dashboard".into(),
    };
    let template = DashPage {
        chrome: &chrome,
        email: &session.0.email,
        csrf: session.csrf(state),
        title: title.into(),
        intro: intro.into(),
        notice: notice.to_string(),
        search: false,
        search_value: String::new(),
        sections,
        mapping_form: None,
    };
    page(StatusCode::OK, &template, &Policy::strict())
}

fn notice(query: Option<&str>) -> String {
    let done = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "done")
        .map(|(_, v)| v.into_owned());
    match done.as_deref() {
        Some("sync") => "A sync was queued.".into(),
        Some("full-sync") => "A full sync was queued.".into(),
        Some("disconnected") => {
            "The connection was disconnected; its token no longer works.".into()
        }
        Some("replayed") => "The delivery was queued again.".into(),
        Some("reconnected") => {
            "Reconnected: this is the new connection, with a new token (the old one was disconnected).".into()
        }
        Some("recovered") => "The endpoint's failed deliveries of the last day were queued again.".into(),
        Some("mapped") => {
            "The custom field was added: it is in API answers now, with no resync.".into()
        }
        _ => String::new(),
    }
}

fn see(location: String) -> Response {
    secure(
        (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        &Policy::strict(),
    )
}

/// `GET /dashboard`: the organization's connections.
async fn connections_page(
    State(state): State<AppState>,
    session: Session,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let list = connections::list_connections(
        State(state.clone()),
        AdminAuth(session.org()),
        ApiQuery(connections::ConnectionListParams {
            cursor: None,
            page_size: Some(100),
        }),
    )
    .await?
    .0;
    let rows = list
        .data
        .iter()
        .map(|c| {
            let last_sync = c.sync.iter().filter_map(|s| s.last_succeeded_at).max();
            let errors = c
                .sync
                .iter()
                .filter_map(|s| s.last_error.clone())
                .collect::<Vec<_>>();
            vec![
                Cell::link(
                    c.name.clone().unwrap_or_else(|| c.id.clone()),
                    format!("/dashboard/connections/{}", c.id),
                ),
                Cell::text(c.system.to_string()),
                Cell::status(c.status.as_str()),
                Cell::text(format!(
                    "{} call errors, {} in a row; circuit {}",
                    c.health.error_count,
                    c.health.consecutive_errors,
                    serde_json::to_value(c.health.circuit_state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                )),
                Cell::text(at(last_sync)),
                Cell::text(if errors.is_empty() {
                    "—".to_string()
                } else {
                    errors.join("; ")
                }),
            ]
        })
        .collect();
    let org = state.store.get_organization(&session.org()).await?;
    let used = state.store.credits_used(&session.org()).await?;
    Ok(render(
        &state,
        &session,
        "Connections",
        format!("{used} of {} connection credits in use.", org.connection_credits),
        &notice(q.as_deref()),
        vec![Section {
            title: String::new(),
            headers: vec!["Connection", "System", "Status", "Health", "Last successful sync", "Errors"],
            rows,
            actions: Vec::new(),
            empty: "No connections yet. Open a Link (POST /v1/link-tokens) for a customer to connect their system.".into(),
        }],
    ))
}

async fn owned_connection(
    state: &AppState,
    session: &Session,
    id: &str,
) -> Result<ConnectionOut, PageError> {
    Ok(connections::get_connection(
        State(state.clone()),
        AdminAuth(session.org()),
        ApiPath(id.to_string()),
    )
    .await?
    .0)
}

/// `GET /dashboard/connections/{id}`: a connection's sync history per entity and its actions.
async fn connection_page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let c = owned_connection(&state, &session, &id).await?;
    let live = c.status.as_str() != "disconnected";
    let rows = c
        .sync
        .iter()
        .map(|s| {
            vec![
                Cell::text(s.entity.to_string()),
                Cell::status(s.status.clone()),
                Cell::text(s.record_count.to_string()),
                Cell::text(at(s.last_started_at)),
                Cell::text(at(s.last_finished_at)),
                Cell::text(at(s.last_succeeded_at)),
                Cell::text(s.last_error.clone().unwrap_or_else(|| "—".into())),
            ]
        })
        .collect();
    let base = format!("/dashboard/connections/{}", c.id);
    let actions = if live {
        vec![
            Action {
                label: "Sync now".into(),
                url: format!("{base}/sync"),
                class: String::new(),
                fields: Vec::new(),
            },
            Action {
                label: "Full sync".into(),
                url: format!("{base}/sync"),
                class: "secondary".into(),
                fields: vec![("full".into(), "true".into())],
            },
            Action {
                label: "Disconnect".into(),
                url: format!("{base}/disconnect"),
                class: "danger".into(),
                fields: Vec::new(),
            },
        ]
    } else if c.replaced_by.is_none() {
        vec![Action {
            label: "Reconnect".into(),
            url: format!("{base}/reconnect"),
            class: String::new(),
            fields: Vec::new(),
        }]
    } else {
        Vec::new()
    };
    let health = vec![
        vec![Cell::text("Status"), Cell::status(c.status.as_str())],
        vec![Cell::text("System"), Cell::text(c.system.to_string())],
        vec![
            Cell::text("End user"),
            Cell::text(
                c.end_user
                    .as_ref()
                    .map(|u| u.name.clone().unwrap_or_else(|| u.id.clone()))
                    .unwrap_or_else(|| "—".into()),
            ),
        ],
        vec![
            Cell::text("Last successful call"),
            Cell::text(at(c.health.last_successful_call_at)),
        ],
        vec![
            Cell::text("Last error"),
            Cell::text(format!(
                "{} {}",
                at(c.health.last_error_at),
                c.health.last_error_code.clone().unwrap_or_default()
            )),
        ],
        vec![
            Cell::text("Errors"),
            Cell::text(format!(
                "{} in all, {} in a row",
                c.health.error_count, c.health.consecutive_errors
            )),
        ],
        vec![
            Cell::text("Token"),
            Cell::text(format!("{}…", c.token_prefix)),
        ],
        vec![Cell::text("Created"), Cell::text(c.created_at.to_rfc3339())],
        vec![
            Cell::text("Disconnected"),
            Cell::text(at(c.disconnected_at)),
        ],
        vec![
            Cell::text("Field mappings"),
            Cell::link(
                "View, preview and add custom fields",
                format!("{base}/mappings"),
            ),
        ],
    ];
    Ok(render(
        &state,
        &session,
        c.name.clone().unwrap_or_else(|| c.id.clone()),
        c.id.clone(),
        &notice(q.as_deref()),
        vec![
            Section {
                title: "Health".into(),
                headers: vec!["", ""],
                rows: health,
                actions,
                empty: String::new(),
            },
            Section {
                title: "Sync history per entity".into(),
                headers: vec![
                    "Entity",
                    "Status",
                    "Records",
                    "Last started",
                    "Last finished",
                    "Last succeeded",
                    "Last error",
                ],
                rows,
                actions: Vec::new(),
                empty: "Nothing synced yet.".into(),
            },
        ],
    ))
}

/// `POST /dashboard/connections/{id}/sync` (`full=true` for a full sync).
async fn sync_connection(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = session.check_post(&state, &headers, &body)?;
    let connection = connections::owned(&state, &session.org(), &id).await?;
    let full = form_value(&form, "full") == Some("true");
    let _queued = crate::routes::sync::start_sync(
        State(state.clone()),
        ConnectionAuth { connection },
        ApiJson(SyncIn { full }),
    )
    .await?;
    let done = if full { "full-sync" } else { "sync" };
    Ok(see(format!("/dashboard/connections/{id}?done={done}")))
}

/// `POST /dashboard/connections/{id}/disconnect`.
async fn disconnect_connection(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    session.check_post(&state, &headers, &body)?;
    let _disconnected = connections::disconnect_connection(
        State(state.clone()),
        AdminAuth(session.org()),
        ApiPath(id.clone()),
    )
    .await?;
    Ok(see(format!(
        "/dashboard/connections/{id}?done=disconnected"
    )))
}

/// `GET /dashboard/webhooks`: the organization's endpoints.
async fn webhooks_page(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, PageError> {
    let list = webhooks::list_endpoints(
        State(state.clone()),
        AdminAuth(session.org()),
        ApiQuery(webhooks::EndpointListParams {
            cursor: None,
            page_size: Some(100),
        }),
    )
    .await?
    .0;
    let rows = list
        .data
        .iter()
        .map(|e| {
            vec![
                Cell::link(e.url.clone(), format!("/dashboard/webhooks/{}", e.id)),
                Cell::status(enum_text(&e.status)),
                Cell::text(
                    e.event_types
                        .as_ref()
                        .map_or("all".to_string(), |t| t.join(", ")),
                ),
                Cell::text(at(e.failing_since)),
                Cell::text(e.created_at.to_rfc3339()),
            ]
        })
        .collect();
    Ok(render(
        &state,
        &session,
        "Webhooks",
        "Endpoints, their deliveries and every attempt.",
        "",
        vec![Section {
            title: String::new(),
            headers: vec!["Endpoint", "Status", "Events", "Failing since", "Created"],
            rows,
            actions: Vec::new(),
            empty: "No webhook endpoints yet (POST /v1/webhook-endpoints).".into(),
        }],
    ))
}

fn enum_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `GET /dashboard/webhooks/{id}`: an endpoint's delivery log, with its attempts and replay.
async fn endpoint_page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let endpoint = webhooks::get_endpoint(
        State(state.clone()),
        AdminAuth(session.org()),
        ApiPath(id.clone()),
    )
    .await?
    .0;
    let deliveries = webhooks::list_deliveries(
        State(state.clone()),
        AdminAuth(session.org()),
        ApiPath(id.clone()),
        ApiQuery(webhooks::DeliveryListParams {
            cursor: None,
            page_size: Some(100),
            status: None,
            event_type: None,
        }),
    )
    .await?
    .0;
    let attempts = webhooks::list_attempts(
        State(state.clone()),
        AdminAuth(session.org()),
        ApiPath(id.clone()),
        ApiQuery(webhooks::AttemptListParams {
            cursor: None,
            page_size: Some(100),
        }),
    )
    .await?
    .0;
    let delivery_rows = deliveries
        .data
        .iter()
        .map(|d| {
            vec![
                Cell::text(d.id.clone()),
                Cell::text(d.event_type.clone()),
                Cell::status(enum_text(&d.status)),
                Cell::text(d.attempts.to_string()),
                Cell::text(d.last_status_code.map_or("—".into(), |c| c.to_string())),
                Cell::text(d.last_error.clone().unwrap_or_else(|| "—".into())),
                Cell::text(d.created_at.to_rfc3339()),
                Cell::button("Replay", format!("/dashboard/deliveries/{}/replay", d.id)),
            ]
        })
        .collect();
    let attempt_rows = attempts
        .data
        .iter()
        .map(|a| {
            vec![
                Cell::text(a.delivery_id.clone()),
                Cell::text(a.attempt.to_string()),
                Cell::status(a.outcome.clone()),
                Cell::text(a.status_code.map_or("—".into(), |c| c.to_string())),
                Cell::text(format!("{:.1} ms", a.latency_ms)),
                Cell::text(a.error.clone().unwrap_or_else(|| "—".into())),
                Cell::text(a.created_at.to_rfc3339()),
            ]
        })
        .collect();
    Ok(render(
        &state,
        &session,
        endpoint.url.clone(),
        format!("{} · {}", endpoint.id, enum_text(&endpoint.status)),
        &notice(q.as_deref()),
        vec![
            Section {
                title: "Deliveries".into(),
                actions: vec![Action {
                    label: "Recover the last day's failed deliveries".into(),
                    url: format!("/dashboard/webhooks/{}/recover", endpoint.id),
                    class: "secondary".into(),
                    fields: Vec::new(),
                }],
                headers: vec![
                    "Delivery",
                    "Event",
                    "Status",
                    "Attempts",
                    "Last status",
                    "Last error",
                    "Created",
                    "",
                ],
                rows: delivery_rows,
                empty: "No deliveries yet.".into(),
            },
            Section {
                title: "Attempts".into(),
                headers: vec![
                    "Delivery", "Attempt", "Outcome", "Status", "Latency", "Error", "At",
                ],
                rows: attempt_rows,
                actions: Vec::new(),
                empty: "No attempts yet.".into(),
            },
        ],
    ))
}

/// `POST /dashboard/deliveries/{id}/replay`.
async fn replay_delivery(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    session.check_post(&state, &headers, &body)?;
    let (_, Json(d)) =
        webhooks::replay_delivery(State(state.clone()), AdminAuth(session.org()), ApiPath(id))
            .await?;
    Ok(see(format!(
        "/dashboard/webhooks/{}?done=replayed",
        d.endpoint_id
    )))
}

/// `POST /dashboard/webhooks/{id}/recover`: the endpoint's failed deliveries of the last
/// 24 hours, queued again in event order.
async fn recover_deliveries(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    session.check_post(&state, &headers, &body)?;
    let since = state.clock.now().plus_secs(-86_400);
    let _recovered = webhooks::recover(
        State(state.clone()),
        AdminAuth(session.org()),
        ApiPath(id.clone()),
        ApiJson(ironbridge_model::webhooks::WebhookRecoverIn { since, until: None }),
    )
    .await?;
    Ok(see(format!("/dashboard/webhooks/{id}?done=recovered")))
}

/// `POST /dashboard/connections/{id}/reconnect`: a new connection with a new token and the
/// same credentials replaces this disconnected one (as `POST /v1/connections/{id}/reconnect`).
async fn reconnect_connection(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    session.check_post(&state, &headers, &body)?;
    let (_, Json(created)) = connections::reconnect_connection(
        State(state.clone()),
        AdminAuth(session.org()),
        ApiPath(id),
        ApiJson(ironbridge_model::api::ReconnectIn::default()),
    )
    .await?;
    Ok(see(format!(
        "/dashboard/connections/{}?done=reconnected",
        created.connection.id
    )))
}

/// `GET /dashboard/events`: the newest events.
async fn events_page(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, PageError> {
    // Newest first: the events list API pages forward from the oldest, so the page reads the
    // newest directly.
    let recent = state.store.recent_events(&session.org(), 200).await?;
    let rows = recent
        .iter()
        .map(|e| {
            vec![
                Cell::text(e.created_at.to_rfc3339()),
                Cell::text(e.event_type.clone()),
                match &e.connection_id {
                    Some(c) => Cell::link(c.clone(), format!("/dashboard/connections/{c}")),
                    None => Cell::text("—"),
                },
                Cell::text(e.data.clone()),
            ]
        })
        .collect();
    Ok(render(
        &state,
        &session,
        "Events",
        "What happened: the newest 200 events, newest first.",
        "",
        vec![Section {
            title: String::new(),
            headers: vec!["At", "Type", "Connection", "Data"],
            rows,
            actions: Vec::new(),
            empty: "No events yet.".into(),
        }],
    ))
}

/// `GET /dashboard/requests?request_id=`: the organization's API requests, newest first.
async fn requests_page(
    State(state): State<AppState>,
    session: Session,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let wanted = form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "request_id")
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty() && v.len() <= 100);
    // What this process still holds in memory is written first, so the page is complete.
    state.request_log.flush(state.store.as_ref()).await;
    let entries = state
        .store
        .list_request_log(&session.org(), wanted.as_deref(), None, 200)
        .await?;
    let rows = entries
        .iter()
        .map(|e| {
            vec![
                Cell::text(e.created_at.to_rfc3339()),
                Cell::text(e.method.clone()),
                Cell::text(e.path.clone()),
                Cell::text(e.status.to_string()),
                Cell::text(format!("{:.1} ms", e.latency_us as f64 / 1000.0)),
                Cell::text(e.request_id.clone()),
            ]
        })
        .collect();
    let chrome = Chrome {
        brand: "Ironbridge".into(),
        colour: String::new(),
        subtitle: "Dashboard".into(),
    };
    let retention = state.config.request_log_retention.as_secs() / 86_400;
    let template = DashPage {
        chrome: &chrome,
        email: &session.0.email,
        csrf: session.csrf(&state),
        title: "API requests".into(),
        intro: format!(
            "Requests made with this organization's keys and connection tokens, newest first; kept {retention} days."
        ),
        notice: String::new(),
        search: true,
        search_value: wanted.unwrap_or_default(),
        sections: vec![Section {
            title: String::new(),
            headers: vec!["At", "Method", "Path", "Status", "Latency", "Request id"],
            rows,
            actions: Vec::new(),
            empty: "No requests found.".into(),
        }],
        mapping_form: None,
    };
    Ok(page(StatusCode::OK, &template, &Policy::strict()))
}

/// What the mappings page shows: the source fields of the chosen entity, and every entity's
/// effective mapping.
async fn mapping_sections(
    state: &AppState,
    session: &Session,
    id: &str,
    entity: Option<&str>,
) -> Result<(Vec<String>, String, Vec<Section>), PageError> {
    let all = field_mappings::list_mappings(
        State(state.clone()),
        AdminAuth(session.org()),
        ApiPath(id.to_string()),
        ApiQuery(field_mappings::MappingsParams { entity: None }),
    )
    .await?
    .0;
    let entities: Vec<String> = all.data.iter().map(|e| e.entity.to_string()).collect();
    let chosen = entity
        .filter(|e| entities.iter().any(|x| x == e))
        .map(str::to_string)
        .or_else(|| entities.first().cloned())
        .unwrap_or_default();
    let mut sections = Vec::new();
    if !chosen.is_empty() {
        let remote = field_mappings::remote_fields(
            State(state.clone()),
            AdminAuth(session.org()),
            ApiPath(id.to_string()),
            ApiQuery(field_mappings::RemoteFieldsParams {
                entity: chosen.clone(),
            }),
        )
        .await?
        .0;
        sections.push(Section {
            title: format!(
                "Source fields of {chosen} ({} records sampled)",
                remote.records_sampled
            ),
            headers: vec!["Path", "Scope", "Type", "Examples", "Mapped to"],
            rows: remote
                .data
                .iter()
                .map(|f| {
                    vec![
                        Cell::text(f.path.clone()),
                        Cell::text(f.scope.clone()),
                        Cell::text(f.kind.clone()),
                        Cell::text(
                            f.examples
                                .iter()
                                .map(|v| v.to_string())
                                .collect::<Vec<_>>()
                                .join(", "),
                        ),
                        Cell::text(f.mapped_to.join(", ")),
                    ]
                })
                .collect(),
            actions: Vec::new(),
            empty: "No stored records yet: sync first.".into(),
        });
    }
    for e in &all.data {
        sections.push(Section {
            title: format!("{} (version {})", e.entity, e.version),
            headers: vec!["Field", "Scope", "Source path", "Conversion", "Origin"],
            rows: e
                .fields
                .iter()
                .map(|f| {
                    let conversion = f
                        .conversion
                        .as_ref()
                        .and_then(|c| serde_json::to_value(c).ok())
                        .and_then(|v| v["type"].as_str().map(str::to_string))
                        .unwrap_or_else(|| "—".into());
                    vec![
                        Cell::text(f.target.clone()),
                        Cell::text(f.scope.clone()),
                        Cell::text(f.source_path.clone().unwrap_or_else(|| "—".into())),
                        Cell::text(conversion),
                        Cell::text(if f.removed {
                            "removed".to_string()
                        } else {
                            enum_text(&f.origin)
                        }),
                    ]
                })
                .collect(),
            actions: Vec::new(),
            empty: "No fields.".into(),
        });
    }
    Ok((entities, chosen, sections))
}

/// What the mappings page shows besides the mappings: the form's values, an error, a notice,
/// a preview.
struct MappingView {
    entity: Option<String>,
    remap: bool,
    name: String,
    source_path: String,
    error: String,
    notice: String,
    preview: Option<Section>,
}

async fn render_mappings(
    state: &AppState,
    session: &Session,
    id: &str,
    view: MappingView,
    status: StatusCode,
) -> Result<Response, PageError> {
    let c = owned_connection(state, session, id).await?;
    let (entities, chosen, mut sections) =
        mapping_sections(state, session, id, view.entity.as_deref()).await?;
    if let Some(p) = view.preview {
        sections.insert(0, p);
    }
    let chrome = Chrome {
        brand: "Ironbridge".into(),
        colour: String::new(),
        subtitle: "Dashboard".into(),
    };
    let template = DashPage {
        chrome: &chrome,
        email: &session.0.email,
        csrf: session.csrf(state),
        title: format!(
            "Field mappings of {}",
            c.name.clone().unwrap_or_else(|| c.id.clone())
        ),
        intro: "How each source field reaches the unified model. A custom field from any source path appears in API answers at once, with no resync.".into(),
        notice: view.notice,
        search: false,
        search_value: String::new(),
        sections,
        mapping_form: Some(MappingForm {
            action: format!("/dashboard/connections/{id}/mappings"),
            entities,
            entity: chosen,
            remap: view.remap,
            name: view.name,
            source_path: view.source_path,
            error: view.error,
        }),
    };
    Ok(page(status, &template, &Policy::strict()))
}

fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `GET /dashboard/connections/{id}/mappings?entity=`: the connection's field mappings.
async fn mappings_page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let view = MappingView {
        remap: false,
        entity: query_value(q.as_deref(), "entity"),
        name: String::new(),
        source_path: String::new(),
        error: String::new(),
        notice: notice(q.as_deref()),
        preview: None,
    };
    render_mappings(&state, &session, &id, view, StatusCode::OK).await
}

/// `POST /dashboard/connections/{id}/mappings`: previews (`action=preview`) or saves a custom
/// field, or a unified field's remap (`kind=unified`), through the same checks as
/// `PUT /v1/connections/{id}/field-mappings/…`.
async fn add_custom_field(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = session.check_post(&state, &headers, &body)?;
    let entity = form_value(&form, "entity").unwrap_or("").to_string();
    let name = form_value(&form, "name").unwrap_or("").trim().to_string();
    let source_path = form_value(&form, "source_path")
        .unwrap_or("")
        .trim()
        .to_string();
    let dry_run = form_value(&form, "action") == Some("preview");
    // A new custom field, or a unified field mapped from another source path (a remap).
    let remap = form_value(&form, "kind") == Some("unified");
    let mut view = MappingView {
        remap,
        entity: Some(entity.clone()),
        name: name.clone(),
        source_path: source_path.clone(),
        error: String::new(),
        notice: String::new(),
        preview: None,
    };
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || (remap && b == b'.')
        });
    if !valid_name || source_path.is_empty() {
        view.error = match (valid_name, remap) {
            (true, _) => "Enter the source path to read it from (see the source fields below).".into(),
            (false, false) => "Name the custom field with 1 to 64 lowercase letters, digits and underscores.".into(),
            (false, true) => "Name the unified field to remap as the API names it (`memo`, `line_items.description`).".into(),
        };
        return render_mappings(
            &state,
            &session,
            &id,
            view,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let target = if remap {
        name.clone()
    } else {
        format!("custom_fields.{name}")
    };
    let change = field_mappings::change_mapping(
        &state,
        &session.org(),
        &format!("dashboard:{}", session.0.user_id),
        (&id, &entity, &target),
        ironbridge_model::field_mappings::FieldMappingIn {
            source_path: Some(source_path.clone()),
            conversion: None,
            remove: false,
        },
        dry_run,
    )
    .await;
    let change = match change {
        Ok(change) => change,
        // A refusal of the change (unknown path or field, a conversion that fails) is shown
        // on the form; another organization's connection, or a failure of ours, is a page.
        Err(e)
            if e.code.status() < 500
                && (e.code != ErrorCode::NotFound || e.param.as_deref() == Some("target")) =>
        {
            view.error = e.message.clone();
            return render_mappings(
                &state,
                &session,
                &id,
                view,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
        Err(e) => return Err(e.into()),
    };
    if !dry_run {
        return Ok(see(format!(
            "/dashboard/connections/{id}/mappings?entity={}&done=mapped",
            form_urlencoded::byte_serialize(entity.as_bytes()).collect::<String>()
        )));
    }
    view.notice = "A preview: nothing was saved.".into();
    view.preview = Some(Section {
        title: format!(
            "Preview of {target} ({} stored records checked)",
            change.records_checked
        ),
        headers: vec!["Record", "Source id", "Before", "After"],
        rows: change
            .preview
            .iter()
            .map(|r| {
                vec![
                    Cell::text(r.id.clone()),
                    Cell::text(r.remote_id.clone()),
                    Cell::text(r.before.to_string()),
                    Cell::text(r.after.to_string()),
                ]
            })
            .collect(),
        actions: Vec::new(),
        empty: "No stored record to preview on.".into(),
    });
    render_mappings(&state, &session, &id, view, StatusCode::OK).await
}
