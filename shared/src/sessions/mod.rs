//! Streaming sessions as every component sees them (SPEC-wave2 §1): quota arithmetic, field
//! rules, and the domain functions other components run in their own unit of work (disabling a
//! user ends its sessions; revoking an agent fails them) — see the README's "How components hand
//! work to each other".

pub mod admission;
pub mod fields;
pub mod lifecycle;
pub mod machine;
pub mod quota;
