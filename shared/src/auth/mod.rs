//! Who is calling: the verified [`Principal`], the credential precheck that finds it, the access
//! rules routes declare, org scoping, and CSRF for cookie sessions.
//!
//! The precheck (Coder's `PrecheckAPIKey`) runs once, before rate limiting and routing, and fully
//! validates whatever credential is present — expiry, revocation, user still active — without
//! ever rejecting by itself. Routes then declare [`Access`](crate::router::Access); soft failures
//! (missing, expired, revoked) are 401 only where a user is required, hard failures (a store that
//! does not answer) are 503 wherever a credential matters, even on optional-auth routes.

pub mod agents;
pub mod cookies;
pub mod csrf;
pub mod external;
pub mod maintenance;
pub mod permissions;
pub mod precheck;
pub mod tickets;

use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::store::StoreError;

/// Account role within an org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Operator,
    User,
    /// Reads the audit log, nothing else beyond a user's rights.
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::User => "user",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "operator" => Some(Role::Operator),
            "user" => Some(Role::User),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }
}

/// How much a credential may do. Login sessions are `Full`; personal access tokens carry the
/// scope they were created with, and never more than their owner has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Safe methods only (GET, HEAD, OPTIONS).
    Read,
    /// Everything the owner may do.
    Full,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Full => "full",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "full" => Some(Scope::Full),
            _ => None,
        }
    }
}

/// What authenticated the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An access token of a login session; `cookie` when it came in the session cookie (then
    /// CSRF applies to unsafe methods).
    Session { session_id: String, cookie: bool },
    /// A personal access token.
    ApiKey { key_id: String },
    /// A token verified by the external authority (`token_verifier_url`).
    External,
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub org_id: String,
    pub username: String,
    pub role: Role,
    /// The setup admin: manages orgs across the platform.
    pub platform_admin: bool,
    pub scope: Scope,
    pub credential: Credential,
}

impl Principal {
    /// `user:<id>` for logs and audit rows.
    pub fn label(&self) -> String {
        format!("user:{}", self.user_id)
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    pub fn session_id(&self) -> Option<&str> {
        match &self.credential {
            Credential::Session { session_id, .. } => Some(session_id),
            Credential::ApiKey { .. } | Credential::External => None,
        }
    }

    /// The login session behind this request, or 403 `login_session_required`.
    ///
    /// The one gate for everything that mints or changes credentials (personal access tokens,
    /// tickets, MFA enrolment and removal, password changes, CSRF tokens): an allow-list of
    /// credential kinds, so a kind added later (another external authority, a new token type)
    /// mints nothing until it is listed here. Today only [`Credential::Session`] is: a key or an
    /// externally verified token never widens itself into a longer-lived credential.
    pub fn require_login_session(&self) -> Result<&str, ApiError> {
        match &self.credential {
            Credential::Session { session_id, .. } => Ok(session_id),
            Credential::ApiKey { .. } | Credential::External => Err(ApiError::forbidden(
                "login_session_required",
                "only a login session may do this; sign in with your password",
            )),
        }
    }

    pub fn via_cookie(&self) -> bool {
        matches!(self.credential, Credential::Session { cookie: true, .. })
    }

    /// The org every query of this request is scoped to.
    pub fn tenant(&self) -> Tenant {
        Tenant {
            org_id: self.org_id.clone(),
        }
    }
}

/// A verified streaming agent (`X-Agent-API-Key` bound to its agent id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPrincipal {
    pub agent_id: String,
    pub org_id: String,
    pub name: String,
}

impl AgentPrincipal {
    /// `agent:<id>` for logs and audit rows.
    pub fn label(&self) -> String {
        format!("agent:{}", self.agent_id)
    }

    /// The org every query of this request is scoped to.
    pub fn tenant(&self) -> Tenant {
        Tenant {
            org_id: self.org_id.clone(),
        }
    }
}

/// The org scope of a request. Data functions take a `&Tenant` and filter by it, so a handler
/// cannot query across orgs by forgetting a `WHERE`; a foreign org's id simply is not found (404).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    org_id: String,
}

impl Tenant {
    pub fn org_id(&self) -> &str {
        &self.org_id
    }

    /// A tenant chosen explicitly (platform admins acting on another org, setup).
    pub fn of_org(org_id: impl Into<String>) -> Self {
        Self {
            org_id: org_id.into(),
        }
    }
}

/// The precheck's verdict, kept on the request.
#[derive(Debug, Clone)]
pub enum AuthState {
    /// No credential presented.
    Anonymous,
    Verified(Principal),
    /// A verified agent.
    Agent(AgentPrincipal),
    /// A credential that is genuine but not for this request (an agent key sent with another
    /// agent's id: 403), or a credential request that is malformed (400). Answered wherever a
    /// credential is required.
    Refused(ApiError),
    /// A credential was presented but is not valid (soft: 401 where auth is required).
    Invalid {
        code: &'static str,
        message: String,
    },
    /// The credential could not be checked (hard: 503).
    Unavailable(StoreError),
}

impl AuthState {
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            AuthState::Verified(p) => Some(p),
            _ => None,
        }
    }

    /// `user:<id>` or `agent:<id>` once verified.
    pub fn label(&self) -> Option<String> {
        match self {
            AuthState::Verified(p) => Some(p.label()),
            AuthState::Agent(a) => Some(a.label()),
            _ => None,
        }
    }

    pub(crate) fn invalid(code: &'static str, message: &str) -> Self {
        AuthState::Invalid {
            code,
            message: message.to_owned(),
        }
    }

    /// The 401/503 for a route that requires a user.
    pub fn require(&self) -> Result<&Principal, ApiError> {
        match self {
            AuthState::Verified(p) => Ok(p),
            AuthState::Anonymous => Err(ApiError::unauthorized(
                "unauthenticated",
                "authentication required",
            )),
            AuthState::Invalid { code, message } => {
                Err(ApiError::unauthorized(code, message.clone()))
            }
            AuthState::Refused(err) => Err(err.clone()),
            AuthState::Unavailable(err) => Err(err.clone().into()),
            AuthState::Agent(_) => Err(ApiError::forbidden(
                "user_required",
                "this route is for users; agents cannot call it",
            )),
        }
    }

    /// The 401/403/503 for a route that requires an agent.
    pub fn require_agent(&self) -> Result<&AgentPrincipal, ApiError> {
        match self {
            AuthState::Agent(a) => Ok(a),
            AuthState::Refused(err) => Err(err.clone()),
            AuthState::Unavailable(err) => Err(err.clone().into()),
            AuthState::Invalid { code, message } => {
                Err(ApiError::unauthorized(code, message.clone()))
            }
            AuthState::Anonymous | AuthState::Verified(_) => Err(ApiError::unauthorized(
                "agent_credentials_required",
                "X-Agent-API-Key and the agent id are required",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(credential: Credential) -> Principal {
        Principal {
            user_id: "u".to_owned(),
            org_id: "o".to_owned(),
            username: "u".to_owned(),
            role: Role::Admin,
            platform_admin: true,
            scope: Scope::Full,
            credential,
        }
    }

    #[test]
    fn only_a_login_session_may_mint_credentials() {
        for cookie in [false, true] {
            let p = principal(Credential::Session {
                session_id: "s1".to_owned(),
                cookie,
            });
            assert_eq!(p.require_login_session().unwrap(), "s1");
        }
        // Full scope, platform admin: still refused, the credential kind decides.
        for credential in [
            Credential::ApiKey {
                key_id: "k".to_owned(),
            },
            Credential::External,
        ] {
            let err = principal(credential).require_login_session().unwrap_err();
            assert_eq!(
                (err.status, err.code),
                (http::StatusCode::FORBIDDEN, "login_session_required")
            );
        }
    }
}
