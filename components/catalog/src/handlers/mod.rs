//! Thin HTTP handlers: extract, call the domain module, answer.

pub mod catalog;
pub mod repositories;
pub mod sync;
pub mod templates;
