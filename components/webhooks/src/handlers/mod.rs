//! Thin HTTP handlers: extract, call the domain module, answer.

pub mod deliveries;
pub mod repositories;
pub mod sync;
pub mod webhooks;
