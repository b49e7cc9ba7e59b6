//! The `catalog` route table. Its prefixes are owned by this component in `spin.toml`; each
//! route is also an operation of `infra/openapi.json`.

use shared::RouteTable;

use crate::handlers::{catalog, repositories, sync, templates};

pub fn table() -> RouteTable {
    let mut routes = templates::routes();
    // Registered once the access matrix has a catalog-template fixture (through a sync).
    let _ = catalog::routes;
    routes.extend(repositories::routes());
    routes.extend(sync::routes());
    RouteTable::new(routes)
}
