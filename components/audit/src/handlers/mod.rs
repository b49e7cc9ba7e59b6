pub mod maintenance;
pub mod ops;
