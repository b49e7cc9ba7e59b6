//! The audit log (DESIGN §6): one row per request, written in the same transaction as a mutating
//! request's own writes (the unit of work the pipeline opens around the handler), hash-chained
//! for tamper evidence ([`chain`]), with sensitive body fields redacted ([`redact`]).

pub mod chain;
pub mod redact;
