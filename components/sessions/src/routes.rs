//! The `sessions` route table: sessions and their connections, quotas, metrics, the agents'
//! administration (admins) and the agents' side (registration, heartbeats, the command queue,
//! status reports).

use shared::RouteTable;

use crate::handlers::{
    admin_agents, agents, commands, connections, metrics, quotas, sessions, tickets,
};

pub fn table() -> RouteTable {
    let mut routes = agents::routes();
    routes.extend(admin_agents::routes());
    routes.extend(sessions::routes());
    routes.extend(connections::routes());
    routes.extend(commands::routes());
    routes.extend(quotas::routes());
    routes.extend(metrics::routes());
    routes.extend(tickets::routes());
    RouteTable::new(routes)
}
