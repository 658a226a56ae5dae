//! Link, the hosted pages in which an organization's end customer connects their own system:
//! pick a system, fill a form made from its credential schema, and Ironbridge checks the
//! credentials live (the same service path as `POST /v1/connections`) before it stores
//! anything. The link token in the address is the only credential; it is single-use and
//! short-lived, every form carries a token bound to it, and posts from other sites are
//! refused. Secrets never come back into a page.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use ironbridge_core::connector::ConnectorError;
use ironbridge_core::crypto::{new_token, token_hash};
use ironbridge_core::ids::new_id;
use ironbridge_core::service::{self, Deps, ServiceError};
use ironbridge_core::store::{
    Certificate, ConnId, Connection, Event, LinkCompletion, LinkToken, OrgId, StoreError,
};
use ironbridge_core::system::{AuthOption, FieldSpec, SystemDescriptor};
use ironbridge_model::api::{ConnectionIn, ConnectionStatus, EndUser, FieldFormat};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::html::{
    Chrome, PageError, Policy, check_same_origin, form_value, origin_of, page, parse_form, secure,
    see_other,
};
use crate::routes::Route;
use crate::routes::connections::{initial_sync, start_connection};
use crate::routes::link_tokens::{
    LINK_TOKEN_PREFIX, PUBLIC_TOKEN_PREFIX, connection_token_context, redirect_target,
};

/// How long a submission holds its link token while the credentials are checked; a claim
/// older than this is from a request that died and no longer blocks the token.
const CLAIM_SECS: i64 = 120;

/// Largest value of one form field (a PEM private key is a few kilobytes).
const MAX_FIELD: usize = 16 * 1024;

/// The Link pages (limited per client address: their token is the only credential).
pub fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::GET, "/link/{token}", get(start)),
        Route::new(
            Method::GET,
            "/link/{token}/systems/{system}",
            get(form_page),
        ),
        Route::new(Method::POST, "/link/{token}/systems/{system}", post(submit)),
        Route::new(
            Method::GET,
            "/link/{token}/certificate.pem",
            get(certificate),
        ),
        Route::new(Method::GET, "/link/{token}/cancel", get(cancel)),
    ]
}

/// An open, usable link token and what its pages need.
struct Link {
    row: LinkToken,
    org: OrgId,
    token: String,
    end_user: EndUser,
    systems: Vec<&'static SystemDescriptor>,
    reauth: Option<Connection>,
    chrome: Chrome,
    policy: Policy,
}

impl Link {
    fn url(&self, rest: &str) -> String {
        format!("/link/{}{rest}", self.token)
    }

    fn system_url(&self, system: &SystemDescriptor) -> String {
        self.url(&format!("/systems/{}", system.id))
    }

    fn brand(&self) -> &str {
        &self.chrome.brand
    }

    fn error(&self, status: StatusCode, title: &str, message: impl Into<String>) -> PageError {
        PageError::new(status, title, message).within(&self.chrome, &self.policy)
    }

    /// The offered system `id`, or a 404 page.
    fn system(&self, id: &str) -> Result<&'static SystemDescriptor, PageError> {
        self.systems
            .iter()
            .copied()
            .find(|s| s.id == id)
            .ok_or_else(|| {
                self.error(
                    StatusCode::NOT_FOUND,
                    "Not found",
                    "This link does not offer that system.",
                )
            })
    }

    fn csrf(&self, state: &AppState) -> String {
        state.keys.form_token(&csrf_binding(&self.row.id))
    }
}

fn csrf_binding(link_id: &str) -> String {
    format!("link:{link_id}")
}

/// Opens the link token in the address: a page explaining why when it is unknown, used or
/// expired, or when the connection it renews is gone.
async fn open(state: &AppState, token: &str) -> Result<Link, PageError> {
    let invalid = || {
        PageError::new(
            StatusCode::NOT_FOUND,
            "This link is not valid",
            "Check that you opened the whole address you were given, or ask for a new link.",
        )
    };
    if !token.starts_with(&format!("{LINK_TOKEN_PREFIX}_")) || token.len() > 100 {
        return Err(invalid());
    }
    let row = state
        .store
        .find_link_token(&token_hash(token))
        .await?
        .ok_or_else(invalid)?;
    let chrome = Chrome {
        brand: row
            .brand_name
            .clone()
            .unwrap_or_else(|| "Ironbridge".into()),
        colour: row
            .brand_colour
            .as_deref()
            .unwrap_or("")
            .trim_start_matches('#')
            .to_string(),
        subtitle: "Connect your system".into(),
    };
    let origin = redirect_target(&row.redirect_url).map(|u| origin_of(&u));
    let mut ancestors = state.config.link_frame_ancestors.clone();
    ancestors.extend(origin.clone());
    let policy = Policy {
        frame_ancestors: Some(ancestors),
        form_action: origin.into_iter().collect(),
    };
    let within = |e: PageError| e.within(&chrome, &policy);
    if row.completed_at.is_some() {
        return Err(within(PageError::new(
            StatusCode::GONE,
            "This link was already used",
            format!(
                "Each link works once, and this one already connected a system. To connect again, ask {} for a new link.",
                chrome.brand
            ),
        )));
    }
    if row.expires_at <= state.clock.now() {
        return Err(within(PageError::new(
            StatusCode::GONE,
            "This link has expired",
            format!(
                "Links work for a short time only. Ask {} for a new link.",
                chrome.brand
            ),
        )));
    }
    let org = OrgId(row.org_id.clone());
    let end_user: EndUser =
        serde_json::from_str(&row.end_user).map_err(|e| within(ApiError::internal(e).into()))?;
    let ids: Vec<String> =
        serde_json::from_str(&row.systems).map_err(|e| within(ApiError::internal(e).into()))?;
    let registry = state.runtimes.registry();
    let systems = ids.iter().filter_map(|id| registry.get(id)).collect();
    let reauth = match &row.connection_id {
        None => None,
        Some(id) => {
            let gone = || {
                within(PageError::new(
                    StatusCode::GONE,
                    "This connection can no longer be renewed",
                    format!(
                        "It was disconnected. Ask {} for a new link to connect again.",
                        chrome.brand
                    ),
                ))
            };
            match state.store.get_connection(&org, &ConnId(id.clone())).await {
                Ok(c) if c.status == ConnectionStatus::Disconnected.as_str() => return Err(gone()),
                Ok(c) => Some(c),
                Err(StoreError::NotFound) => return Err(gone()),
                Err(e) => return Err(within(e.into())),
            }
        }
    };
    Ok(Link {
        row,
        org,
        token: token.to_string(),
        end_user,
        systems,
        reauth,
        chrome,
        policy,
    })
}

struct Choice {
    name: String,
    summary: String,
    url: String,
}

#[derive(Template)]
#[template(path = "link_systems.html")]
struct SystemsPage<'a> {
    chrome: &'a Chrome,
    end_user: String,
    systems: Vec<Choice>,
    cancel_url: String,
}

#[derive(Template)]
#[template(path = "link_options.html")]
struct OptionsPage<'a> {
    chrome: &'a Chrome,
    system_name: &'a str,
    reauth: bool,
    options: Vec<Choice>,
    back_url: String,
    cancel_url: String,
}

/// One input of the credentials form.
struct FieldView {
    id: String,
    name: String,
    label: &'static str,
    help: &'static str,
    kind: &'static str,
    required: bool,
    /// What the customer typed, for non-secret fields only.
    value: String,
    error: String,
}

struct CertificateView {
    download_url: String,
    file_name: String,
    not_after: String,
}

#[derive(Template)]
#[template(path = "link_form.html")]
struct FormPage<'a> {
    chrome: &'a Chrome,
    system_name: &'a str,
    reauth: bool,
    option_id: &'a str,
    option_name: &'a str,
    option_help: &'a str,
    back_url: String,
    certificate: Option<CertificateView>,
    openssl: &'a str,
    error_title: &'a str,
    error: String,
    action: String,
    csrf: String,
    fields: Vec<FieldView>,
    cancel_url: String,
}

/// The command option B shows: a key pair and a self-signed certificate NetSuite accepts
/// (RSA-3072, two years, no passphrase on the key so it can be pasted).
const OPENSSL: &str = "openssl req -x509 -newkey rsa:3072 -sha256 -days 730 -nodes \\\n  -keyout key.pem -out cert.pem -subj \"/CN=Ironbridge integration\"";

/// The form fields of `option`: the system's settings for a new connection (a renewal keeps
/// the connection's), then the option's credentials, except a certificate Ironbridge made
/// (Link fills that in itself).
fn fields_of(
    system: &'static SystemDescriptor,
    option: &'static AuthOption,
    reauth: bool,
) -> Vec<(&'static str, &'static FieldSpec)> {
    let settings = system
        .settings
        .iter()
        .filter(|_| !reauth)
        .map(|f| ("settings", f));
    let credentials = option
        .fields
        .iter()
        .filter(|f| f.format != FieldFormat::CertificateId)
        .map(|f| ("credentials", f));
    settings.chain(credentials).collect()
}

fn generates_certificate(option: &AuthOption) -> bool {
    option
        .fields
        .iter()
        .any(|f| f.format == FieldFormat::CertificateId)
}

/// Option B of a certificate-based system: the customer's own private key.
fn takes_own_key(system: &SystemDescriptor, option: &AuthOption) -> bool {
    system.auth.iter().any(generates_certificate)
        && option
            .fields
            .iter()
            .any(|f| f.format == FieldFormat::Pem && f.secret)
}

fn input_kind(f: &FieldSpec) -> &'static str {
    match f.format {
        FieldFormat::Pem => "textarea",
        _ if f.secret => "password",
        FieldFormat::Url => "url",
        FieldFormat::Integer => "number",
        _ => "text",
    }
}

/// `GET /link/{token}`: the systems to choose from (straight to the form when there is one,
/// or when the link renews a connection).
async fn start(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let link = open(&state, &token).await?;
    let only = match &link.reauth {
        Some(c) => state.runtimes.registry().get(&c.system),
        None if link.systems.len() == 1 => link.systems.first().copied(),
        None => None,
    };
    if let Some(system) = only {
        return Ok(see_other(&link.system_url(system), &link.policy));
    }
    let systems = link
        .systems
        .iter()
        .map(|s| Choice {
            name: s.name.to_string(),
            summary: summary(s),
            url: link.system_url(s),
        })
        .collect();
    let template = SystemsPage {
        chrome: &link.chrome,
        end_user: link
            .end_user
            .name
            .clone()
            .unwrap_or_else(|| link.end_user.id.clone()),
        systems,
        cancel_url: link.url("/cancel"),
    };
    Ok(page(StatusCode::OK, &template, &link.policy))
}

/// What a system's entry says: what Ironbridge reads from it.
fn summary(system: &SystemDescriptor) -> String {
    let read: Vec<&str> = system
        .readable()
        .iter()
        .take(4)
        .map(|e| e.spec().title)
        .collect();
    if read.is_empty() {
        String::new()
    } else {
        format!("Reads {}", read.join(", ").to_lowercase())
    }
}

fn query_option(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "option")
        .map(|(_, v)| v.into_owned())
}

/// `GET /link/{token}/systems/{system}`: the ways to sign in (when there are several), or the
/// form of the chosen one.
async fn form_page(
    State(state): State<AppState>,
    Path((token, system)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let link = open(&state, &token).await?;
    let system = link.system(&system)?;
    let option = match query_option(query.as_deref()) {
        Some(id) => Some(system.auth.iter().find(|o| o.id == id).ok_or_else(|| {
            link.error(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such way to sign in.",
            )
        })?),
        None if system.auth.len() == 1 => system.auth.first(),
        None => None,
    };
    let Some(option) = option else {
        let template = OptionsPage {
            chrome: &link.chrome,
            system_name: system.name,
            reauth: link.reauth.is_some(),
            options: system
                .auth
                .iter()
                .map(|o| Choice {
                    name: o.name.to_string(),
                    summary: String::new(),
                    url: format!("{}?option={}", link.system_url(system), o.id),
                })
                .collect(),
            back_url: if link.systems.len() > 1 && link.reauth.is_none() {
                link.url("")
            } else {
                String::new()
            },
            cancel_url: link.url("/cancel"),
        };
        return Ok(page(StatusCode::OK, &template, &link.policy));
    };
    let fields = fields_of(system, option, link.reauth.is_some())
        .into_iter()
        .map(|(kind, f)| field_view(kind, f, "", ""))
        .collect();
    render_form(
        &state,
        &link,
        system,
        option,
        fields,
        "",
        String::new(),
        StatusCode::OK,
    )
    .await
}

fn field_view(kind: &str, f: &'static FieldSpec, value: &str, error: &str) -> FieldView {
    FieldView {
        id: format!("{kind}-{}", f.name),
        name: format!("{kind}.{}", f.name),
        label: f.label,
        help: f.description,
        kind: input_kind(f),
        required: f.required,
        value: if f.secret {
            String::new()
        } else {
            value.to_string()
        },
        error: error.to_string(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn render_form(
    state: &AppState,
    link: &Link,
    system: &'static SystemDescriptor,
    option: &'static AuthOption,
    fields: Vec<FieldView>,
    error_title: &str,
    error: String,
    status: StatusCode,
) -> Result<Response, PageError> {
    let certificate = if generates_certificate(option) {
        let cert = ensure_certificate(state, link, system).await?;
        Some(CertificateView {
            download_url: link.url("/certificate.pem"),
            file_name: format!("{}.pem", cert.id),
            not_after: cert.not_after.to_rfc3339(),
        })
    } else {
        None
    };
    let template = FormPage {
        chrome: &link.chrome,
        system_name: system.name,
        reauth: link.reauth.is_some(),
        option_id: option.id,
        option_name: option.name,
        option_help: option.description,
        back_url: if system.auth.len() > 1 {
            link.system_url(system)
        } else {
            String::new()
        },
        certificate,
        openssl: if takes_own_key(system, option) {
            OPENSSL
        } else {
            ""
        },
        error_title,
        error,
        action: link.system_url(system),
        csrf: link.csrf(state),
        fields,
        cancel_url: link.url("/cancel"),
    };
    Ok(page(status, &template, &link.policy))
}

/// The certificate Ironbridge generated for this Link, generated on first use. Two pages
/// opened at once agree on one (the store keeps the first recorded).
async fn ensure_certificate(
    state: &AppState,
    link: &Link,
    system: &SystemDescriptor,
) -> Result<Certificate, PageError> {
    let within = |e: PageError| e.within(&link.chrome, &link.policy);
    let id = match &link.row.certificate_id {
        Some(id) => id.clone(),
        None => {
            let made = crate::routes::certificates::generate(
                state,
                &link.org,
                system.id.as_str(),
                "Ironbridge integration".into(),
            )
            .await
            .map_err(|e| within(e.into()))?;
            state
                .store
                .set_link_certificate(&link.org, &link.row.id, &made.id)
                .await
                .map_err(|e| within(e.into()))?
        }
    };
    state
        .store
        .get_certificate(&link.org, &id)
        .await
        .map_err(|e| within(e.into()))
}

/// `GET /link/{token}/certificate.pem`: the public certificate to upload to NetSuite.
async fn certificate(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let link = open(&state, &token).await?;
    let Some(id) = &link.row.certificate_id else {
        return Err(link.error(
            StatusCode::NOT_FOUND,
            "Not found",
            "No certificate was made for this link yet: open the certificate option first.",
        ));
    };
    let cert = state
        .store
        .get_certificate(&link.org, id)
        .await
        .map_err(|e| PageError::from(e).within(&link.chrome, &link.policy))?;
    let disposition = format!("attachment; filename=\"{}.pem\"", cert.id);
    Ok(secure(
        (
            [
                (header::CONTENT_TYPE, "application/x-pem-file".to_string()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            cert.certificate_pem,
        )
            .into_response(),
        &link.policy,
    ))
}

/// `GET /link/{token}/cancel`: back to the organization with `error=cancelled`.
async fn cancel(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let link = open(&state, &token).await?;
    let target = with_query(&link.row.redirect_url, &[("error", "cancelled")])
        .ok_or_else(|| PageError::from(ApiError::internal("stored redirect URL is invalid")))?;
    Ok(see_other(&target, &link.policy))
}

fn with_query(url: &str, pairs: &[(&str, &str)]) -> Option<String> {
    let mut url = redirect_target(url)?;
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
    }
    Some(url.to_string())
}

/// What the customer typed, checked field by field against the system's schema.
struct Entered {
    settings: Map<String, Value>,
    credentials: Map<String, Value>,
    /// Input name → message.
    errors: HashMap<String, String>,
    /// Input name → typed text.
    values: HashMap<String, String>,
    /// The secrets typed, to scrub from any message shown back.
    secrets: Vec<String>,
}

fn read_fields(
    form: &[(String, String)],
    fields: &[(&'static str, &'static FieldSpec)],
) -> Entered {
    let mut out = Entered {
        settings: Map::new(),
        credentials: Map::new(),
        errors: HashMap::new(),
        values: HashMap::new(),
        secrets: Vec::new(),
    };
    for (kind, f) in fields {
        let name = format!("{kind}.{}", f.name);
        let raw = form_value(form, &name).unwrap_or("").trim();
        if f.secret && !raw.is_empty() {
            out.secrets.push(raw.to_string());
        }
        out.values.insert(name.clone(), raw.to_string());
        if raw.is_empty() {
            if f.required {
                out.errors
                    .insert(name, format!("Enter the {}.", f.label.to_lowercase()));
            }
            continue;
        }
        if raw.len() > MAX_FIELD {
            out.errors.insert(
                name,
                format!("This is too long (at most {MAX_FIELD} characters)."),
            );
            continue;
        }
        let value = match f.format {
            FieldFormat::Integer => match raw.parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => {
                    out.errors
                        .insert(name, "Enter a whole number, such as 42.".into());
                    continue;
                }
            },
            FieldFormat::Url if !(raw.starts_with("https://") || raw.starts_with("http://")) => {
                out.errors
                    .insert(name, "Enter a full address starting with https://.".into());
                continue;
            }
            FieldFormat::Pem if !raw.contains("-----BEGIN ") => {
                out.errors.insert(
                    name,
                    "Paste the whole PEM file, from the line -----BEGIN … to the line -----END …."
                        .into(),
                );
                continue;
            }
            _ => Value::String(raw.to_string()),
        };
        let target = if *kind == "settings" {
            &mut out.settings
        } else {
            &mut out.credentials
        };
        target.insert(f.name.to_string(), value);
    }
    out
}

/// Hides anything the customer typed into a secret field from a message shown back.
fn scrub(message: &str, secrets: &[String]) -> String {
    let mut out = message.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s.as_str(), "[hidden]");
    }
    out
}

/// Why a submission failed, as the form shows it: on a field (its input name), or for the
/// whole form.
enum Refused {
    Field(String, String),
    Form(String),
}

/// Classifies a failed check or save for the form; a failure of ours becomes an error page.
fn refusal(link: &Link, system: &SystemDescriptor, e: ServiceError) -> Result<Refused, PageError> {
    Ok(match e {
        ServiceError::Connector(ConnectorError::Unauthorized) => Refused::Form(format!(
            "{} refused these credentials. Check them and try again.",
            system.name
        )),
        ServiceError::Connector(ConnectorError::InvalidSettings { param, message })
        | ServiceError::Invalid { param, message } => Refused::Field(param, message),
        ServiceError::Store(StoreError::CreditsExhausted) => Refused::Form(format!(
            "{} cannot take another connection right now. Contact them to connect your system.",
            link.brand()
        )),
        ServiceError::Store(StoreError::Conflict(_)) => {
            return Err(link.error(
                StatusCode::GONE,
                "This link was already used",
                "Each link works once, and this one already connected a system.",
            ));
        }
        ServiceError::Connector(other) => {
            let api = ApiError::from(other);
            if api.code.status() < 500 {
                Refused::Form(api.message.clone())
            } else {
                tracing::warn!(system = %system.id, cause = api.internal.as_deref().unwrap_or(""), "Link could not check credentials");
                Refused::Form(format!(
                    "{} could not be reached to check these details. Check the address, then try again in a moment.",
                    system.name
                ))
            }
        }
        other => {
            return Err(PageError::from(ApiError::from(other)).within(&link.chrome, &link.policy));
        }
    })
}

/// `POST /link/{token}/systems/{system}`: checks the form, then the credentials live, then
/// makes (or renews) the connection and sends the browser back to the organization with a
/// public token.
async fn submit(
    State(state): State<AppState>,
    Path((token, system)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let link = open(&state, &token).await?;
    check_same_origin(&headers).map_err(|e| e.within(&link.chrome, &link.policy))?;
    let form = parse_form(&body);
    let csrf = form_value(&form, "csrf").unwrap_or("");
    if !state
        .keys
        .verify_form_token(&csrf_binding(&link.row.id), csrf)
    {
        return Err(link.error(
            StatusCode::FORBIDDEN,
            "This form could not be accepted",
            "It was not sent from this page, or the page is out of date. Go back, reload the page and try again.",
        ));
    }
    let system = link.system(&system)?;
    let option = form_value(&form, "option")
        .and_then(|id| system.auth.iter().find(|o| o.id == id))
        .ok_or_else(|| {
            link.error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "This form could not be accepted",
                "It does not say how to sign in. Go back and choose an option.",
            )
        })?;
    let fields = fields_of(system, option, link.reauth.is_some());
    let mut entered = read_fields(&form, &fields);
    if entered.errors.is_empty() && generates_certificate(option) {
        let cert = ensure_certificate(&state, &link, system).await?;
        for f in option
            .fields
            .iter()
            .filter(|f| f.format == FieldFormat::CertificateId)
        {
            entered
                .credentials
                .insert(f.name.to_string(), Value::String(cert.id.clone()));
        }
    }
    let reshow = |entered: &Entered, refused: Option<Refused>| {
        let (field_error, form_error) = match refused {
            None => (None, "Check the fields marked below.".to_string()),
            Some(Refused::Field(param, message)) => {
                let message = scrub(&message, &entered.secrets);
                if fields
                    .iter()
                    .any(|(kind, f)| format!("{kind}.{}", f.name) == param)
                {
                    (
                        Some((param, message)),
                        "Check the fields marked below.".into(),
                    )
                } else {
                    (None, message)
                }
            }
            Some(Refused::Form(message)) => (None, scrub(&message, &entered.secrets)),
        };
        let views = fields
            .iter()
            .map(|(kind, f)| {
                let name = format!("{kind}.{}", f.name);
                let error = match &field_error {
                    Some((param, message)) if *param == name => message.as_str(),
                    _ => entered.errors.get(&name).map_or("", String::as_str),
                };
                let value = entered.values.get(&name).map_or("", String::as_str);
                field_view(kind, f, value, error)
            })
            .collect::<Vec<_>>();
        (views, form_error)
    };
    if !entered.errors.is_empty() {
        let (views, message) = reshow(&entered, None);
        return render_form(
            &state,
            &link,
            system,
            option,
            views,
            "Not connected yet.",
            message,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let now = state.clock.now();
    if !state
        .store
        .claim_link_token(&link.org, &link.row.id, now, now.plus_secs(-CLAIM_SECS))
        .await?
    {
        return Err(link.error(
            StatusCode::CONFLICT,
            "This link is busy",
            "These details are being checked in another window. Wait for it to finish, or try again in two minutes.",
        ));
    }
    let outcome = match &link.reauth {
        Some(connection) => renew(&state, &link, connection, &entered).await,
        None => connect(&state, &link, system, &entered).await,
    };
    match outcome {
        Ok(location) => Ok(see_other(&location, &link.policy)),
        Err(e) => {
            state
                .store
                .release_link_token(&link.org, &link.row.id)
                .await?;
            let refused = refusal(&link, system, e)?;
            let (views, message) = reshow(&entered, Some(refused));
            render_form(
                &state,
                &link,
                system,
                option,
                views,
                "Not connected.",
                message,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

fn deps(state: &AppState) -> Deps<'_> {
    Deps {
        store: state.store.as_ref(),
        keys: &state.keys,
        registry: state.runtimes.registry(),
        clock: state.clock.as_ref(),
    }
}

/// A new public token, and what finishing the Link records with it.
fn completion(
    state: &AppState,
    link: &Link,
    connection_id: &str,
    event_type: &str,
    data: Value,
    connection_token: Option<&str>,
) -> Result<(String, LinkCompletion), ServiceError> {
    let now = state.clock.now();
    let public = new_token(PUBLIC_TOKEN_PREFIX);
    let sealed = connection_token
        .map(|t| {
            state
                .keys
                .encrypt(&connection_token_context(&link.row.id), t.as_bytes())
        })
        .transpose()?;
    let done = LinkCompletion {
        public_token_hash: token_hash(&public),
        connection_token: sealed,
        event: Event {
            id: new_id("evt", now.micros()),
            org_id: link.org.0.clone(),
            connection_id: Some(connection_id.to_string()),
            event_type: event_type.to_string(),
            data: data.to_string(),
            created_at: now,
        },
        now,
    };
    Ok((public, done))
}

fn back_to_organization(
    link: &Link,
    public: &str,
    connection_id: &str,
) -> Result<String, ServiceError> {
    with_query(
        &link.row.redirect_url,
        &[("public_token", public), ("connection_id", connection_id)],
    )
    .ok_or_else(|| ServiceError::Corrupt("stored redirect URL is invalid".into()))
}

/// Makes the connection exactly as `POST /v1/connections` does (its service path checks the
/// credentials live), stored with the token's spending and the `connection.created` event.
async fn connect(
    state: &AppState,
    link: &Link,
    system: &'static SystemDescriptor,
    entered: &Entered,
) -> Result<String, ServiceError> {
    let who = link
        .end_user
        .name
        .clone()
        .unwrap_or_else(|| link.end_user.id.clone());
    let name: String = format!("{who} · {}", system.name)
        .chars()
        .take(200)
        .collect();
    let input = ConnectionIn {
        system: system.id.clone(),
        name: Some(name),
        credentials: Some(entered.credentials.clone()),
        settings: Some(entered.settings.clone()),
        end_user: Some(link.end_user.clone()),
        mcp_access: None,
    };
    let prepared = service::prepare_connection(&deps(state), &link.org, &input).await?;
    let data = json!({
        "system": system.id,
        "end_user": link.end_user,
        "link_token_id": link.row.id,
    });
    let (public, done) = completion(
        state,
        link,
        &prepared.new.id,
        "connection.created",
        data,
        Some(&prepared.token),
    )?;
    let connection = state
        .store
        .finish_link_connection(&link.org, &link.row.id, &prepared.new, &done)
        .await?;
    tracing::info!(connection = %connection.id, link = %link.row.id, "connection made through Link");
    start_connection(state, &connection, prepared.connector).await;
    back_to_organization(link, &public, &connection.id)
}

/// Renews a connection's credentials in place (same id, token, records and history), after
/// checking them live as a reconnect does, and resumes its syncs.
async fn renew(
    state: &AppState,
    link: &Link,
    connection: &Connection,
    entered: &Entered,
) -> Result<String, ServiceError> {
    let (sealed, connector) =
        service::check_new_credentials(&deps(state), &link.org, connection, &entered.credentials)
            .await?;
    let data = json!({
        "system": connection.system,
        "end_user": link.end_user,
        "link_token_id": link.row.id,
        "previous_status": connection.status,
    });
    let (public, done) = completion(
        state,
        link,
        &connection.id,
        "connection.reauthorized",
        data,
        None,
    )?;
    let renewed = state
        .store
        .finish_link_reauthorization(
            &link.org,
            &link.row.id,
            &ConnId(connection.id.clone()),
            &sealed,
            &done,
        )
        .await?;
    tracing::info!(connection = %renewed.id, link = %link.row.id, "connection re-authorized through Link");
    if let Err(e) = state.runtimes.adopt(&renewed, connector) {
        tracing::warn!(connection = %renewed.id, error = %e, "cannot keep the connection's connector");
    }
    initial_sync(state, &renewed).await;
    back_to_organization(link, &public, &renewed.id)
}
