pub mod audit_log;
pub mod maintenance;
pub mod ops;
pub mod verify;
