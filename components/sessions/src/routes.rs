//! The `sessions` route table. Its prefixes are owned by this component in `spin.toml`; the routes
//! themselves arrive with their issues (each one added here and to `infra/openapi.json`).

use shared::RouteTable;

pub fn table() -> RouteTable {
    RouteTable::new(Vec::new())
}
