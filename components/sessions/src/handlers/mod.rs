pub mod admin_agents;
pub mod agents;
pub mod commands;
pub mod connections;
pub mod quotas;
pub mod sessions;
pub mod tickets;
