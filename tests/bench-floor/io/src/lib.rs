//! The I/O floor of `scripts/bench spin`: per request, what the app cannot avoid paying on its own
//! schema — open the `default` database, set `synchronous = NORMAL` on the fresh connection (as the
//! app does; not on a database server, `sqlite_synchronous = "server"`, which refuses
//! `PRAGMA x=y`), then one autocommit upsert (the limiter's own `ADMIT` statement on `rate_limits`)
//! and one autocommit insert into `audit_log`. `/io/setup` creates the schema once with the app's
//! migrations (which also turn WAL on for a local file). Served by `tests/bench-floor/spin.toml`,
//! never by the app's `spin.toml`.
//!
//! `scripts/bench-libsql-floor` isolates what stalls on libSQL with `?mode=` (default: the floor
//! above): `open-only` (open + the pragma, no statement), `read-only` (one `SELECT` on
//! `rate_limits`), `insert-only` (one audit insert), `upsert-same-key` (one `ADMIT` on the shared
//! key), `upsert-own-key` (one `ADMIT` on `key=`, which the load generator sets per connection),
//! `two-inserts` (two autocommit audit inserts) and `txn` (`BEGIN IMMEDIATE`, two audit inserts,
//! `COMMIT`: a transaction across host calls, the shape issue 11 forbids).

/// The Spin entry point (wasm only, so the workspace still builds natively). The SDK's export
/// macro expands to `unsafe` ABI glue, so this module alone allows it.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod entry {
    use spin_sdk::http::{Request, Response};
    use spin_sdk::sqlite3::{Connection, Value};

    #[spin_sdk::http_component]
    fn handle(req: Request) -> Response {
        let result = if req.path().ends_with("/setup") {
            setup()
        } else {
            let param = |name: &str| {
                req.query()
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                    .unwrap_or_default()
                    .to_owned()
            };
            floor(&param("mode"), &param("key"))
        };
        let (status, body) = match result {
            Ok(()) => (200, "ok".to_owned()),
            Err(e) => (500, e),
        };
        // An explicit length, as the app's responses have (otherwise Spin streams it chunked).
        Response::builder()
            .status(status)
            .header("content-type", "text/plain")
            .header("content-length", body.len().to_string())
            .body(body)
            .build()
    }

    fn now_us() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    }

    fn server() -> bool {
        spin_sdk::variables::get("sqlite_synchronous")
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("server"))
    }

    /// The app's migrations (the same `migrate` the components run; it turns WAL on for a local
    /// file and applies only what the database lacks).
    fn setup() -> Result<(), String> {
        use shared::store::SqlOpener;
        let conn = shared::store::spin::SpinSql
            .open()
            .map_err(|e| format!("{e:?}"))?;
        shared::migrations::migrate(conn.as_ref(), now_us() / 1000).map_err(|e| format!("{e:?}"))
    }

    type Sql = spin_sdk::sqlite3::Error;

    fn err(e: Sql) -> String {
        format!("{e:?}")
    }

    /// The limiter's `ADMIT` on `key`, with a limit so high that every request is admitted (the
    /// upsert always writes).
    fn admit(conn: &Connection, key: &str, now: i64) -> Result<(), String> {
        conn.execute(
            shared::rate_limit::ADMIT,
            &[
                Value::Text(key.to_owned()),
                Value::Integer(now),
                Value::Integer(1),
                Value::Integer(1_000_000_000_000_000),
            ],
        )
        .map_err(err)?;
        Ok(())
    }

    /// One autocommit insert into `audit_log` with a fresh random id.
    fn audit(conn: &Connection, now: i64) -> Result<(), String> {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).map_err(|e| format!("{e:?}"))?;
        let id = shared::ids::hex(&random);
        conn.execute(
            "INSERT INTO audit_log (id, request_id, ts, principal, method, path, action, status,
                client_ip, user_agent, duration_ms, prev_hash, hash)
             VALUES (?, ?, ?, 'anonymous', 'GET', '/io', 'GET /io', 200, '127.0.0.1',
                'streamspace-bench', 0.5, ?, ?)",
            &[
                Value::Text(format!("ev-{id}")),
                Value::Text(format!("rq-{id}")),
                Value::Integer(now / 1000),
                Value::Text("0".repeat(64)),
                Value::Text(id.repeat(2)),
            ],
        )
        .map_err(err)?;
        Ok(())
    }

    fn floor(mode: &str, key: &str) -> Result<(), String> {
        let conn = Connection::open("default").map_err(err)?;
        if !server() {
            conn.execute("PRAGMA synchronous = NORMAL", &[])
                .map_err(err)?;
        }
        let now = now_us();
        const SHARED_KEY: &str = "api:bench-floor";
        match mode {
            "" | "floor" => {
                admit(&conn, SHARED_KEY, now)?;
                audit(&conn, now)?;
            }
            "open-only" => {}
            "read-only" => {
                conn.execute(
                    "SELECT tat FROM rate_limits WHERE key = ?",
                    &[Value::Text(SHARED_KEY.to_owned())],
                )
                .map_err(err)?;
            }
            "insert-only" => audit(&conn, now)?,
            "upsert-same-key" => admit(&conn, SHARED_KEY, now)?,
            "upsert-own-key" => admit(&conn, &format!("api:bench-floor:{key}"), now)?,
            "two-inserts" => {
                audit(&conn, now)?;
                audit(&conn, now)?;
            }
            "txn" => {
                conn.execute("BEGIN IMMEDIATE", &[]).map_err(err)?;
                let body = audit(&conn, now).and_then(|()| audit(&conn, now));
                match body {
                    Ok(()) => {
                        conn.execute("COMMIT", &[]).map_err(err)?;
                    }
                    Err(e) => {
                        let _ = conn.execute("ROLLBACK", &[]);
                        return Err(e);
                    }
                }
            }
            other => return Err(format!("unknown mode {other:?}")),
        }
        Ok(())
    }
}
