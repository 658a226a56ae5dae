//! The storage seam of the dashboard: an organization's people (email and an argon2 hash of
//! their password), their sessions and one-time sign-in links (by token hash only), and the
//! organization's API request log.

use async_trait::async_trait;
use ironbridge_model::Timestamp;

use super::{OrgId, StoreResult};

/// A person who signs in to an organization's dashboard.
#[derive(Clone, PartialEq, Eq)]
pub struct DashboardUser {
    /// `usr_…`.
    pub id: String,
    /// Their organization.
    pub org_id: String,
    /// Lowercased e-mail address, unique across organizations (one sign-in page).
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Creation time.
    pub created_at: Timestamp,
}

impl std::fmt::Debug for DashboardUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashboardUser")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .finish_non_exhaustive()
    }
}

/// A signed-in session, as a request finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardSession {
    /// `ses_…`.
    pub id: String,
    /// The organization it reaches, and no other.
    pub org_id: String,
    /// Who signed in.
    pub user_id: String,
    /// Their e-mail address.
    pub email: String,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// A new session (its token only as a hash) or one-time sign-in link.
#[derive(Clone)]
pub struct NewDashboardToken {
    /// `ses_…` or `sil_…`.
    pub id: String,
    /// Who it signs in.
    pub user_id: String,
    /// SHA-256 of its secret.
    pub token_hash: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// One API request of an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLogEntry {
    /// The organization whose credential made it.
    pub org_id: String,
    /// `req_…` (time-ordered; also the `X-Request-Id` answered).
    pub request_id: String,
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// Status answered.
    pub status: i32,
    /// Microseconds from receipt to answer.
    pub latency_us: i64,
    /// When it was received.
    pub created_at: Timestamp,
}

/// Storage of the dashboard's people, sessions and request log. Lookups by a secret's hash
/// come first (they say which organization); everything else names the organization.
#[async_trait]
pub trait DashboardStore {
    /// Adds a person; `Conflict` when the e-mail address is taken.
    async fn create_dashboard_user(&self, org: &OrgId, user: &DashboardUser) -> StoreResult<()>;

    /// The person with this (lowercased) e-mail address.
    async fn find_dashboard_user(&self, email: &str) -> StoreResult<Option<DashboardUser>>;

    /// Starts a session.
    async fn create_dashboard_session(
        &self,
        org: &OrgId,
        session: &NewDashboardToken,
    ) -> StoreResult<()>;

    /// The live session with this token hash at `now` (`None`: unknown, ended or expired).
    async fn find_dashboard_session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> StoreResult<Option<DashboardSession>>;

    /// Ends a session of the organization (signing out).
    async fn end_dashboard_session(&self, org: &OrgId, id: &str, now: Timestamp)
    -> StoreResult<()>;

    /// Stores a one-time sign-in link.
    async fn create_sign_in_link(&self, org: &OrgId, link: &NewDashboardToken) -> StoreResult<()>;

    /// Uses a sign-in link once: the person it signs in, if it is live at `now` and unused.
    async fn use_sign_in_link(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> StoreResult<Option<DashboardUser>>;

    /// Appends request log entries (of any organizations) in one transaction; an entry
    /// already written is kept as it is.
    async fn write_request_log(&self, entries: &[RequestLogEntry]) -> StoreResult<()>;

    /// The organization's requests newest first, before `before` (a request id) when given,
    /// or only the one with `request_id`.
    async fn list_request_log(
        &self,
        org: &OrgId,
        request_id: Option<&str>,
        before: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<RequestLogEntry>>;

    /// Deletes entries received before `before`; answers how many.
    async fn purge_request_log(&self, before: Timestamp) -> StoreResult<u64>;
}
