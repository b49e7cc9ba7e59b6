//! The `webhooks` component. Inbound webhooks (GitHub, Standard Webhooks and plain HMAC senders)
//! and what they drive: the catalog's git repositories and their sync over GitHub's HTTP API.
//!
//! Spin routes this component's prefixes (see `spin.toml`) here; every request goes through the
//! shared pipeline, and paths without a route answer the 404 envelope.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod deliveries;
pub mod handlers;
pub mod receivers;
pub mod repositories;
pub mod routes;
pub mod sync;
pub mod verify;

pub use routes::table;

/// The Spin entry point (wasm only, so the crate also links natively for tests). The SDK's export
/// macro expands to `unsafe` ABI glue, so this module alone allows it; no code of ours uses it.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod entry {
    #[spin_sdk::http_component]
    async fn handle(req: spin_sdk::http::IncomingRequest, out: spin_sdk::http::ResponseOutparam) {
        // The syncs a webhook requests run after its response (Decision 2).
        shared::spin_entry::serve_with_deferred(super::routes::table(), req, out).await
    }
}
