//! The `audit` component: operations routes (health, version, the OpenAPI document) and, with the
//! audit issue, the audit log's query, export, verification and retention.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod audit_query;
pub mod handlers;
pub mod routes;

pub use routes::table;

/// The Spin entry point (wasm only, so the crate also links natively for tests). The SDK's export
/// macro expands to `unsafe` ABI glue, so this module alone allows it; no code of ours uses it.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod entry {
    #[spin_sdk::http_component]
    async fn handle(req: spin_sdk::http::IncomingRequest, out: spin_sdk::http::ResponseOutparam) {
        shared::spin_entry::serve(super::routes::table(), req, out).await
    }
}
