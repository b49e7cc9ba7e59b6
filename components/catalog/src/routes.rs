//! The `catalog` route table. Its prefixes are owned by this component in `spin.toml`; each
//! route is also an operation of `infra/openapi.json`. Repositories and their sync are served by
//! the `webhooks` component (it receives the pushes that ask for syncs).

use shared::RouteTable;

use crate::handlers::{catalog, templates};

pub fn table() -> RouteTable {
    let mut routes = templates::routes();
    routes.extend(catalog::routes());
    RouteTable::new(routes)
}
