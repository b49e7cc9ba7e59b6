//! The `catalog` route table. Its prefixes are owned by this component in `spin.toml`; each
//! route is also an operation of `infra/openapi.json`.

use shared::RouteTable;

use crate::handlers::templates;

pub fn table() -> RouteTable {
    RouteTable::new(templates::routes())
}
