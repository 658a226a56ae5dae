//! The storage seam of Link: single-use link tokens, the in-flight claim that keeps two
//! submissions of one token from both making a connection, the finish that makes (or
//! re-authorizes) the connection, writes its event and spends the token in one transaction,
//! and the one-time exchange of the public token.

use async_trait::async_trait;
use ironbridge_model::Timestamp;

use super::{ConnId, Connection, Event, NewConnection, OrgId, StoreResult};

/// A link token as stored (its secret only as a hash).
#[derive(Clone, PartialEq, Eq)]
pub struct LinkToken {
    /// `lnk_…`.
    pub id: String,
    /// Owning organization.
    pub org_id: String,
    /// SHA-256 of the `ibl_…` token.
    pub token_hash: String,
    /// The end user (JSON object).
    pub end_user: String,
    /// The systems offered (JSON array of ids).
    pub systems: String,
    /// The connection to re-authorize, if any.
    pub connection_id: Option<String>,
    /// Where Link ends.
    pub redirect_url: String,
    /// Brand name shown on the pages.
    pub brand_name: Option<String>,
    /// Brand colour `#rrggbb`.
    pub brand_colour: Option<String>,
    /// The certificate Ironbridge generated for this Link (NetSuite option A), once asked for.
    pub certificate_id: Option<String>,
    /// When the token stops working.
    pub expires_at: Timestamp,
    /// Creation time.
    pub created_at: Timestamp,
    /// When a submission started checking credentials (cleared if it failed).
    pub claimed_at: Option<Timestamp>,
    /// When Link made or re-authorized the connection: the token is spent.
    pub completed_at: Option<Timestamp>,
    /// The connection made or re-authorized.
    pub result_connection_id: Option<String>,
    /// SHA-256 of the public token handed to the redirect URL.
    pub public_token_hash: Option<String>,
    /// The new connection's token, encrypted, until the public token is exchanged.
    pub connection_token: Option<String>,
    /// When the public token was exchanged.
    pub exchanged_at: Option<Timestamp>,
}

impl std::fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkToken")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .field("expires_at", &self.expires_at)
            .field("completed_at", &self.completed_at)
            .finish_non_exhaustive()
    }
}

/// What finishing a Link records on its token.
#[derive(Clone)]
pub struct LinkCompletion {
    /// SHA-256 of the public token.
    pub public_token_hash: String,
    /// The new connection's token, encrypted (`None` for a re-authorization: the connection
    /// keeps its token).
    pub connection_token: Option<String>,
    /// The event announcing it (`connection.created` or `connection.reauthorized`).
    pub event: Event,
    /// When.
    pub now: Timestamp,
}

/// Storage of link tokens. Every method but the lookup by hash names the organization, so
/// another tenant's token reads as absent.
#[async_trait]
pub trait LinkStore {
    /// Stores a new link token.
    async fn create_link_token(&self, org: &OrgId, token: &LinkToken) -> StoreResult<()>;

    /// The link token with this hash, whatever its state (the caller checks expiry and use).
    async fn find_link_token(&self, token_hash: &str) -> StoreResult<Option<LinkToken>>;

    /// Records the certificate generated for this link token unless one already is, and
    /// answers the one recorded (so two concurrent requests agree on one certificate).
    async fn set_link_certificate(
        &self,
        org: &OrgId,
        id: &str,
        certificate_id: &str,
    ) -> StoreResult<String>;

    /// Takes the token for one submission: true unless it is spent, or another submission
    /// claimed it after `stale_before` (an older claim is from a request that died).
    async fn claim_link_token(
        &self,
        org: &OrgId,
        id: &str,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> StoreResult<bool>;

    /// Gives a claim back after a submission failed (the customer may try again).
    async fn release_link_token(&self, org: &OrgId, id: &str) -> StoreResult<()>;

    /// In one transaction: stores `new` (taking a credit), writes `done.event`, and spends
    /// the token. `Conflict` if the token is already spent.
    async fn finish_link_connection(
        &self,
        org: &OrgId,
        id: &str,
        new: &NewConnection,
        done: &LinkCompletion,
    ) -> StoreResult<Connection>;

    /// In one transaction: replaces the credentials of the organization's connection `conn`
    /// (which must not be disconnected), clears its error streak and sets it `online` (with
    /// its status event), writes `done.event`, and spends the token.
    async fn finish_link_reauthorization(
        &self,
        org: &OrgId,
        id: &str,
        conn: &ConnId,
        credentials: &str,
        done: &LinkCompletion,
    ) -> StoreResult<Connection>;

    /// Exchanges a public token of the organization once: marks it exchanged, erases the
    /// stored connection token and answers the row as it was. `None`: no such public token
    /// in this organization, already exchanged, or completed before `completed_after`.
    async fn exchange_public_token(
        &self,
        org: &OrgId,
        public_token_hash: &str,
        now: Timestamp,
        completed_after: Timestamp,
    ) -> StoreResult<Option<LinkToken>>;
}
