//! The `sessions` route table: sessions and their connections, quotas, the agents'
//! administration (admins) and the agents' side (registration, heartbeats, the command queue,
//! status reports). The org's metrics are served by the catalog component (size budget).

use shared::RouteTable;

use crate::handlers::{admin_agents, agents, commands, connections, quotas, sessions, tickets};

pub fn table() -> RouteTable {
    let mut routes = agents::routes();
    routes.extend(admin_agents::routes());
    routes.extend(sessions::routes());
    routes.extend(connections::routes());
    routes.extend(commands::routes());
    routes.extend(quotas::routes());
    routes.extend(tickets::routes());
    RouteTable::new(routes)
}
