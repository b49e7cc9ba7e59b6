//! The `sessions` route table. Sessions, connections and quotas arrive with their issue; agents
//! register and heartbeat here already.

use shared::RouteTable;

use crate::handlers::agents;

pub fn table() -> RouteTable {
    RouteTable::new(agents::routes())
}
