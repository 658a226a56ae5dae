//! Request and response bodies of the dashboard's accounts: the people of an organization who
//! sign in to its dashboard (admin API keys are for machines).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::timestamp::Timestamp;

/// Body of `POST /v1/dashboard-users`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DashboardUserIn {
    /// Their e-mail address, with which they sign in (unique across the server).
    #[schema(example = "dev@example.com", max_length = 320)]
    pub email: String,
    /// Their password: 12 to 200 characters. Stored only as an argon2id hash.
    #[schema(
        example = "correct horse battery staple",
        min_length = 12,
        max_length = 200
    )]
    pub password: String,
}

/// A dashboard account (never its password).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DashboardUserOut {
    /// `usr_…`.
    pub id: String,
    /// E-mail address, lowercased.
    pub email: String,
    /// Creation time.
    pub created_at: Timestamp,
}
