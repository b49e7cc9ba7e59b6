//! The `webhooks` route table: the catalog's git repositories and their sync (GitHub pushes ask
//! for syncs, so the sync engine lives with the receivers). Its prefixes are owned by this
//! component in `spin.toml`; each route is also an operation of `infra/openapi.json`.

use shared::RouteTable;

use crate::handlers::{deliveries, repositories, sync, webhooks};

pub fn table() -> RouteTable {
    let mut routes = repositories::routes();
    routes.extend(sync::routes());
    routes.extend(webhooks::routes());
    routes.extend(deliveries::routes());
    RouteTable::new(routes)
}
