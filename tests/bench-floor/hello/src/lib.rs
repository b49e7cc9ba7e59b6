//! The hello-world floor of `scripts/bench spin`: what Spin itself costs per request (instantiate,
//! route, answer 200 "ok"), with nothing of ours in the way. Served by `tests/bench-floor/spin.toml`,
//! never by the app's `spin.toml`.

/// The Spin entry point (wasm only, so the workspace still builds natively). The SDK's export
/// macro expands to `unsafe` ABI glue, so this module alone allows it.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod entry {
    #[spin_sdk::http_component]
    fn handle(_req: spin_sdk::http::Request) -> spin_sdk::http::Response {
        // An explicit length, as the app's responses have (otherwise Spin streams it chunked).
        spin_sdk::http::Response::builder()
            .status(200)
            .header("content-type", "text/plain")
            .header("content-length", "2")
            .body("ok")
            .build()
    }
}
