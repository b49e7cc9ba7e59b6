//! `Cx`: what a handler gets — the request, its id, its path parameters and the per-request
//! services — with typed extractors (`json`, `query`, `param`, `page`).

use std::cell::RefCell;
use std::rc::Rc;
use std::str::FromStr;

use http::Method;
use serde::de::DeserializeOwned;

use crate::auth::{AgentPrincipal, Principal, Tenant};
use crate::error::{ApiError, ApiResult};
use crate::extract;
use crate::http::RequestHead;
use crate::pagination::PageRequest;
use crate::router::Params;
use crate::services::Services;
use crate::store::{Database, Kv};

/// Who a route's access check let through.
#[derive(Debug, Clone)]
pub enum Caller {
    Nobody,
    User(Principal),
    Agent(AgentPrincipal),
}

/// The request context handed to a handler.
pub struct Cx {
    pub request_id: String,
    pub method: Method,
    pub head: RequestHead,
    /// The client's address: the peer, or behind trusted proxies the resolved
    /// `X-Forwarded-For` hop (what the rate limiter and the audit row use). `head.client_ip` is
    /// the raw peer.
    pub client_ip: Option<std::net::IpAddr>,
    pub body: Vec<u8>,
    pub services: Rc<Services>,
    /// The verified user, on routes that are not `Public`.
    pub principal: Option<Principal>,
    /// The verified agent, on agent routes.
    pub agent: Option<AgentPrincipal>,
    params: Params,
    target_org: TargetOrg,
    actor: TargetOrg,
}

/// The org a handler reports acting on ([`Cx::set_target_org`]); the pipeline keeps a handle and
/// records it in the request's audit row as `target_org_id` when it is not the actor's own org.
#[derive(Debug, Clone, Default)]
pub struct TargetOrg(Rc<RefCell<Option<String>>>);

impl TargetOrg {
    pub fn get(&self) -> Option<String> {
        self.0.borrow().clone()
    }
}

impl Cx {
    pub fn new(
        request_id: String,
        method: Method,
        head: RequestHead,
        body: Vec<u8>,
        services: Rc<Services>,
        caller: Caller,
        params: Params,
    ) -> Self {
        let (principal, agent) = match caller {
            Caller::Nobody => (None, None),
            Caller::User(p) => (Some(p), None),
            Caller::Agent(a) => (None, Some(a)),
        };
        Self {
            request_id,
            method,
            client_ip: head.client_ip,
            head,
            body,
            services,
            principal,
            agent,
            params,
            target_org: TargetOrg::default(),
            actor: TargetOrg::default(),
        }
    }

    /// Reports that this request acts on `org_id`'s resources (the platform admin inside another
    /// org): the audit row then names it as `target_org_id`, so that org's admins see the action
    /// in their audit log. Calling it with the caller's own org records nothing extra.
    pub fn set_target_org(&self, org_id: &str) {
        *self.target_org.0.borrow_mut() = Some(org_id.to_owned());
    }

    /// Names the caller of a public route once the handler has verified it some other way than
    /// a credential (a webhook's signature: `webhook:github`). The access log and the audit row
    /// record it as the principal; on a route with a verified principal it is ignored.
    pub fn set_actor(&self, label: &str) {
        *self.actor.0.borrow_mut() = Some(label.to_owned());
    }

    /// The handle the pipeline reads the reported actor back from.
    pub fn actor_handle(&self) -> TargetOrg {
        self.actor.clone()
    }

    /// The handle the pipeline reads the reported target org back from.
    pub fn target_org_handle(&self) -> TargetOrg {
        self.target_org.clone()
    }

    /// The verified agent; 401 when there is none (cannot happen behind `Access::Agent`).
    pub fn agent(&self) -> ApiResult<&AgentPrincipal> {
        self.agent.as_ref().ok_or_else(|| {
            ApiError::unauthorized(
                "agent_credentials_required",
                "agent authentication required",
            )
        })
    }

    /// The verified caller; 401 when there is none (cannot happen behind `User`/`AnyRole`).
    pub fn user(&self) -> ApiResult<&Principal> {
        self.principal
            .as_ref()
            .ok_or_else(|| ApiError::unauthorized("unauthenticated", "authentication required"))
    }

    /// The org scope of the caller.
    pub fn tenant(&self) -> ApiResult<Tenant> {
        Ok(self.user()?.tenant())
    }

    /// The body as `T`; unknown fields and wrong types are a 400 naming the field.
    pub fn json<T: DeserializeOwned>(&self) -> ApiResult<T> {
        extract::json_body(self.head.header("content-type"), &self.body)
    }

    /// The query string as `T`.
    pub fn query<T: DeserializeOwned>(&self) -> ApiResult<T> {
        extract::query(&self.head.query)
    }

    /// The path parameter `name` (declared as `{name}` in the route) parsed as `T`.
    pub fn param<T: FromStr>(&self, name: &str) -> ApiResult<T> {
        let raw = self
            .params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| ApiError::internal(format!("route has no parameter `{name}`")))?;
        extract::path_param(raw, name)
    }

    /// The page requested by `?limit=` and `?cursor=`.
    pub fn page(&self) -> ApiResult<PageRequest> {
        PageRequest::from_query(&self.head.query)
    }

    pub fn db(&self) -> ApiResult<&Database> {
        Ok(self.services.db()?)
    }

    pub fn kv(&self) -> ApiResult<&Kv> {
        Ok(self.services.kv()?)
    }

    pub fn now_ms(&self) -> i64 {
        self.services.now_ms()
    }
}
