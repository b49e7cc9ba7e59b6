//! Thin HTTP handlers: extract, call the domain module, answer.

pub mod catalog;
pub mod metrics;
pub mod templates;
