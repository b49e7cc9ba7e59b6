//! The request path writes its audit row unsealed (one insert, no lock held across calls); the
//! sealer links it into the hash chain after the response — without anyone reading the log.

use std::time::Duration;

use crate::helpers::TestApp;
use crate::setup::wait_for;

/// (rows, unsealed rows) in the database file beside the server.
fn seal_state(app: &TestApp) -> (i64, i64) {
    let db = rusqlite::Connection::open(app.database_path().unwrap()).unwrap();
    db.query_row(
        "SELECT count(*), coalesce(sum(hash = ''), 0) FROM audit_log",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[test]
fn audit_rows_are_sealed_after_the_response_without_an_audit_read() {
    let app = TestApp::spawn();
    if app.database_path().is_none() {
        return;
    }
    for _ in 0..5 {
        assert_eq!(app.get("/api/v1/version").status, 200);
    }
    // The last request's sealer runs after its response: give it a moment.
    let state = wait_for(
        Duration::from_secs(10),
        Duration::from_millis(20),
        "every row is sealed",
        || match seal_state(&app) {
            (rows, 0) => Ok((rows, 0)),
            state => Err(format!("{state:?}")),
        },
    );
    assert!(state.0 >= 5, "{state:?}");
    // And the chain they form verifies.
    let admin = app.admin();
    let r = app.authed("GET", "/api/v1/admin/audit/verify", &admin.access);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(
        (v["ok"].as_bool(), v["complete"].as_bool()),
        (Some(true), Some(true)),
        "{v}"
    );
}
