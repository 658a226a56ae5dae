//! Request and response bodies of Link, the hosted pages in which an organization's end
//! customer connects their own system: link tokens, and the exchange of the public token a
//! finished Link hands back for the connection and its token.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{ConnectionOut, EndUser, SystemId};
use crate::timestamp::Timestamp;

/// The organization's brand, shown on the Link pages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkBrand {
    /// The organization's name as the end customer knows it (at most 100 characters).
    #[schema(example = "Acme Procurement", max_length = 100)]
    #[serde(default)]
    pub name: Option<String>,
    /// Accent colour, `#rrggbb`.
    #[schema(example = "#0b5fff", pattern = "^#[0-9a-fA-F]{6}$")]
    #[serde(default)]
    pub colour: Option<String>,
}

/// Body of `POST /v1/link-tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkTokenIn {
    /// The organization's customer who will connect their system.
    pub end_user: EndUser,
    /// The systems offered (default: every system a customer can connect through Link).
    #[serde(default)]
    pub systems: Option<Vec<SystemId>>,
    /// A connection of the organization whose credentials the customer renews in place
    /// (same id, token, records and history), e.g. one in `reauthorization_required`.
    #[serde(default)]
    #[schema(example = "conn_06h0gkq5972aqxy3vg3mv0kk30")]
    pub connection_id: Option<String>,
    /// Where the customer's browser goes when Link ends: an absolute http(s) URL. On success
    /// it receives `public_token` (and `connection_id`) in its query; when the customer gives
    /// up, `error=cancelled`.
    #[schema(
        example = "https://app.example.com/integrations/done",
        max_length = 2000
    )]
    pub redirect_url: String,
    /// Name and colour shown on the pages.
    #[serde(default)]
    pub brand: Option<LinkBrand>,
}

/// A link token, answered once by `POST /v1/link-tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LinkTokenOut {
    /// `lnk_…`.
    pub id: String,
    /// The single-use token (`ibl_…`). Shown once; only its hash is kept.
    #[schema(example = "ibl_7Hq2…")]
    pub link_token: String,
    /// Path of the hosted Link page on this server (`/link/{link_token}`): open it, or embed it
    /// in an iframe from `redirect_url`'s origin.
    #[schema(example = "/link/ibl_7Hq2…")]
    pub url: String,
    /// When the token stops working.
    pub expires_at: Timestamp,
    /// The customer.
    pub end_user: EndUser,
    /// The systems offered.
    pub systems: Vec<SystemId>,
    /// The connection being re-authorized, if any.
    pub connection_id: Option<String>,
    /// Where Link ends.
    pub redirect_url: String,
}

/// Body of `POST /v1/link-tokens/exchange`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkExchangeIn {
    /// The `public_token` Link added to the redirect URL (`ibp_…`).
    #[schema(example = "ibp_3Kd9…")]
    pub public_token: String,
}

/// What a finished Link made, answered once per public token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LinkExchangeOut {
    /// The connection made or re-authorized.
    pub connection: ConnectionOut,
    /// The new connection's API token (shown once). `null` after a re-authorization: the
    /// connection keeps the token it had.
    #[schema(example = "ibc_7Hq2…")]
    pub token: Option<String>,
    /// Whether Link renewed an existing connection's credentials rather than making one.
    pub reauthorized: bool,
}
