//! What every server-rendered page shares: the security headers (a Content-Security-Policy
//! that allows no script at all and styles only from this server, no caching, no referrer),
//! the checks that a form post comes from our own pages, form parsing, the embedded style
//! sheets, and friendly HTML error pages carrying the request id.

use askama::Template;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ironbridge_model::ErrorCode;

use crate::context;
use crate::error::ApiError;

/// The one style sheet of the Link and dashboard pages, compiled into the binary.
const STYLE: &str = include_str!("../assets/ironbridge.css");

/// Who may frame a page and where its forms may go.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Origins allowed to frame the page besides our own (`None`: nobody may frame it, not
    /// even we).
    pub frame_ancestors: Option<Vec<String>>,
    /// Origins a form may be sent to (or redirected to after a post) besides our own.
    pub form_action: Vec<String>,
}

impl Policy {
    /// A page nobody may frame (the dashboard, errors outside Link).
    pub fn strict() -> Self {
        Policy::default()
    }

    /// The Content-Security-Policy: nothing but our own style sheets and images, no script
    /// of any kind, no plugins, no `<base>`.
    pub fn csp(&self) -> String {
        let frames = match &self.frame_ancestors {
            None => "'none'".to_string(),
            Some(extra) => std::iter::once("'self'")
                .chain(extra.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" "),
        };
        let forms = std::iter::once("'self'")
            .chain(self.form_action.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        format!(
            "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; img-src 'self'; style-src 'self'; form-action {forms}; frame-ancestors {frames}"
        )
    }
}

/// Sets the security headers of a page on `response`.
pub fn secure(mut response: Response, policy: &Policy) -> Response {
    let headers = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&policy.csp()) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    // A page that may be framed by listed origins cannot say so with X-Frame-Options (it has
    // no allow-list); browsers follow `frame-ancestors` then.
    if policy.frame_ancestors.is_none() {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Link pages carry their token in the address: it must never leave in a Referer to
    // another origin. `same-origin` rather than `no-referrer`: under `no-referrer` browsers
    // send `Origin: null` with our own form posts, which the origin check must refuse.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, max-age=0"),
    );
    response
}

/// Renders `template` as a page with `status` and the security headers of `policy`.
pub fn page(status: StatusCode, template: &impl Template, policy: &Policy) -> Response {
    match template.render() {
        Ok(body) => secure(
            (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                body,
            )
                .into_response(),
            policy,
        ),
        Err(e) => PageError::from(ApiError::internal(e)).into_response(),
    }
}

/// A 303 to `location` (after a form post), with the security headers.
pub fn see_other(location: &str, policy: &Policy) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => secure(
            (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
            policy,
        ),
        Err(e) => PageError::from(ApiError::internal(e)).into_response(),
    }
}

/// The origin (`scheme://host[:port]`) of an absolute URL.
pub fn origin_of(url: &ironbridge_core::netguard::Url) -> String {
    url.origin().ascii_serialization()
}

/// Refuses a form post that does not come from one of our own pages: a browser says where a
/// request comes from in `Sec-Fetch-Site` and `Origin`; either naming another site refuses
/// it. (The form's own token, checked by the caller, covers clients that send neither.)
pub fn check_same_origin(headers: &HeaderMap) -> Result<(), PageError> {
    let refused = || {
        PageError::new(
            StatusCode::FORBIDDEN,
            "This form was sent from another site",
            "For your security, forms on this page can only be sent from the page itself. Go back to the page and try again.",
        )
    };
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("");
        if site != "same-origin" && site != "none" {
            return Err(refused());
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let authority = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .unwrap_or("");
        // Our own address as the browser used it: `Host`, or the host a reverse proxy says
        // it received (a page cannot make a browser send that header to another site, so
        // trusting it here gives a forger nothing).
        let ours = [header::HOST.as_str(), "x-forwarded-host"]
            .into_iter()
            .filter_map(|name| headers.get(name).and_then(|h| h.to_str().ok()))
            .filter_map(|v| v.split(',').next())
            .map(str::trim)
            .any(|host| !host.is_empty() && authority.eq_ignore_ascii_case(host));
        if !ours {
            return Err(refused());
        }
    }
    Ok(())
}

/// The fields of an `application/x-www-form-urlencoded` body, in order.
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// The value of field `name` of a parsed form.
pub fn form_value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The style sheets of the Link and dashboard pages: static, cheap, and fetched with every
/// page, so they are not counted against a client address's limit.
pub fn asset_routes() -> Vec<crate::routes::Route> {
    use axum::http::Method;
    use axum::routing::get;
    vec![
        crate::routes::Route::new(Method::GET, "/assets/ironbridge.css", get(style)),
        crate::routes::Route::new(Method::GET, "/assets/brand/{colour}", get(brand_style)),
    ]
}

/// `GET /assets/ironbridge.css`.
pub async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

/// `GET /assets/brand/{rrggbb}`: a style sheet setting the organization's accent colour, so
/// pages stay free of inline styles under the Content-Security-Policy.
pub async fn brand_style(Path(colour): Path<String>) -> Response {
    if colour.len() != 6 || !colour.bytes().all(|b| b.is_ascii_hexdigit()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let colour = colour.to_ascii_lowercase();
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        format!(":root {{ --brand: #{colour}; }}\n"),
    )
        .into_response()
}

/// The header and accent of a page: the organization's brand on Link, Ironbridge's on the
/// dashboard.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// Name shown at the top.
    pub brand: String,
    /// Accent colour without `#` (empty: the default).
    pub colour: String,
    /// A second line under the name (empty: none).
    pub subtitle: String,
}

impl Chrome {
    /// Ironbridge's own.
    pub fn ironbridge() -> Self {
        Chrome {
            brand: "Ironbridge".into(),
            ..Chrome::default()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: &'a Chrome,
    title: &'a str,
    message: &'a str,
    request_id: String,
}

/// A failure shown as a page: a title, a message for people, the request id for support
/// (boxed: results stay small on the happy path).
#[derive(Debug)]
pub struct PageError(Box<PageErrorInner>);

/// The parts of a [`PageError`].
#[derive(Debug)]
pub struct PageErrorInner {
    /// HTTP status.
    pub status: StatusCode,
    /// Headline.
    pub title: String,
    /// What happened and what to do; never internals.
    pub message: String,
    /// Look of the page.
    pub chrome: Chrome,
    /// Its framing and form policy.
    pub policy: Policy,
}

impl std::ops::Deref for PageError {
    type Target = PageErrorInner;
    fn deref(&self) -> &PageErrorInner {
        &self.0
    }
}

impl PageError {
    /// An error page with Ironbridge's look that nobody may frame.
    pub fn new(status: StatusCode, title: impl Into<String>, message: impl Into<String>) -> Self {
        PageError(Box::new(PageErrorInner {
            status,
            title: title.into(),
            message: message.into(),
            chrome: Chrome::ironbridge(),
            policy: Policy::strict(),
        }))
    }

    /// The same error with this look and policy (a Link's brand, its framing).
    pub fn within(mut self, chrome: &Chrome, policy: &Policy) -> Self {
        self.0.chrome = chrome.clone();
        self.0.policy = policy.clone();
        self
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        let status =
            StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(request_id = %context::current_request_id(), code = %e.code, cause = e.internal.as_deref().unwrap_or(""), "page failed");
        }
        let (title, message) = match e.code {
            ErrorCode::NotFound => ("Not found", e.message.clone()),
            ErrorCode::RateLimitExceeded => ("Too many requests", e.message.clone()),
            _ if status.is_server_error() => (
                "Something went wrong",
                "Something went wrong on our side. Try again in a moment; if it keeps happening, quote the reference below.".to_string(),
            ),
            _ => ("This did not work", e.message.clone()),
        };
        PageError::new(status, title, message)
    }
}

impl From<ironbridge_core::store::StoreError> for PageError {
    fn from(e: ironbridge_core::store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let this = *self.0;
        let template = ErrorPage {
            chrome: &this.chrome,
            title: &this.title,
            message: &this.message,
            request_id: context::current_request_id(),
        };
        match template.render() {
            Ok(body) => secure(
                (
                    this.status,
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    body,
                )
                    .into_response(),
                &this.policy,
            ),
            Err(_) => secure(
                (this.status, "Something went wrong.").into_response(),
                &this.policy,
            ),
        }
    }
}
