//! The `catalog` route table. Its prefixes are owned by this component in `spin.toml`; each
//! route is also an operation of `infra/openapi.json`. Repositories and their sync are served by
//! the `webhooks` component (it receives the pushes that ask for syncs). The org's metrics
//! (`/api/v1/metrics`, sessions, users, agents and commands counted) are served here: the
//! sessions component is at its size budget, and they are read-only SQL over the shared database.

use shared::RouteTable;

use crate::handlers::{catalog, metrics, templates};

pub fn table() -> RouteTable {
    let mut routes = templates::routes();
    routes.extend(catalog::routes());
    routes.extend(metrics::routes());
    RouteTable::new(routes)
}
