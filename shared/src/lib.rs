//! The library every StreamSpace component links: the request pipeline ([`pipeline`], its order
//! written down there), the error envelope ([`error`]), typed extraction ([`extract`],
//! [`pagination`], [`validate`]), the store traits with their Spin and native implementations
//! ([`store`]), migrations ([`migrations`]) and configuration ([`config`]).
//!
//! Business logic never touches `spin_sdk`; only [`store::spin`] and [`spin_entry`] do.

#![forbid(unsafe_code)]
// Tests may unwrap; request paths may not (workspace lints).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod access_log;
pub mod agents;
pub mod audit;
pub mod auth;
pub mod body_limit;
pub mod client_ip;
pub mod compression;
pub mod config;
pub mod context;
pub mod cors;
pub mod error;
pub mod error_codes;
pub mod extract;
pub mod http;
pub mod ids;
pub mod input_guard;
pub mod license;
pub mod manifest;
pub mod method_gate;
pub mod migrations;
pub mod pagination;
pub mod pipeline;
pub mod rate_limit;
pub mod repositories;
pub mod request_id;
pub mod router;
pub mod secrets;
pub mod security_headers;
pub mod services;
pub mod sessions;
pub mod spin_entry;
pub mod sql_file;
pub mod store;
pub mod templates;
#[cfg(feature = "native")]
pub mod testing;
pub mod time;
pub mod validate;
pub mod yaml;

pub use crate::context::Cx;
pub use crate::error::{ApiError, ApiResult};
pub use crate::http::Response;
pub use crate::router::{Access, Route, RouteTable};
pub use ::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
