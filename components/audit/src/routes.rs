//! The `audit` route table.

use shared::{Access, Route, RouteTable};

use crate::handlers::{audit_log, maintenance, ops, verify};

pub fn table() -> RouteTable {
    let mut routes = vec![
        Route::get("/health", Access::Public, ops::health).quiet(),
        Route::get("/version", Access::Public, ops::version),
        Route::get("/api/v1/version", Access::Public, ops::version),
        Route::get("/api/openapi.json", Access::Public, ops::openapi),
    ];
    routes.extend(maintenance::routes());
    routes.extend(audit_log::routes());
    routes.extend(verify::routes());
    RouteTable::new(routes)
}
