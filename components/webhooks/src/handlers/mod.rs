//! Thin HTTP handlers: extract, call the domain module, answer.

pub mod repositories;
pub mod sync;
