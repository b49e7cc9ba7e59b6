//! The black-box suite: HTTP only, against the test host or a real Spin (`E2E_BASE_URL`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access_matrix;
mod agents;
mod api_docs;
mod api_keys;
mod audit_capture;
mod audit_query;
mod audit_sealing;
mod catalog_browse;
mod catalog_sync;
mod contract_fuzz;
mod durability;
mod external;
mod foundation;
mod hardening_auth;
mod hardening_net;
mod helpers;
mod identity;
mod license;
mod rate_limits;
mod repositories;
mod sessions;
mod setup;
mod teams;
mod templates;
mod users;
mod webhooks;
