//! `scripts/bench`: serves the built components with the test host and measures them with a
//! keep-alive load generator on loopback. Prints figures; it never fails on time.
//!
//! Environment: `BENCH_SECONDS` (per route, default 10), `BENCH_CONNECTIONS` (default 16),
//! `E2E_BASE_URL` (measure a running server, e.g. a real `spin up`, instead of the test host).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use spin_test_host::{HostOptions, RunningHost};

fn main() -> Result<()> {
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let connections: usize = env_or("BENCH_CONNECTIONS", 16);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");

    let state_dir = std::env::temp_dir().join(format!("streamspace-bench-{}", std::process::id()));
    let (base, host) = match std::env::var("E2E_BASE_URL") {
        Ok(base) => (base, None),
        Err(_) => {
            // Limits high enough never to refuse: the limiter still runs (and costs what it costs).
            let mut options = HostOptions::new(root.join("spin.toml"), &state_dir);
            for name in [
                "rate_limit_api_per_minute",
                "rate_limit_login_per_minute",
                "rate_limit_login_per_hour",
                "rate_limit_login_ip_per_minute",
                "rate_limit_login_ip_per_hour",
                "rate_limit_login_user_per_hour",
                "rate_limit_mint_per_minute",
            ] {
                options = options.variable(name, "1000000");
            }
            let host = RunningHost::start(options)?;
            (host.base_url(), Some(host))
        }
    };
    let authority = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    println!("target: {base} ({connections} connections, {seconds} s per route, keep-alive)");
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let token = login_latency(&authority)?;
    let bearer = format!("Authorization: Bearer {token}\r\n");
    for (path, extra) in [
        ("/health", ""),
        ("/version", ""),
        ("/api/v1/auth/no-such-route", ""),
        ("/api/v1/users/me", bearer.as_str()),
    ] {
        // Warm up: compile caches, SQLite file, WAL.
        run(
            &authority,
            path,
            extra,
            connections.min(4),
            Duration::from_millis(500),
        )?;
        let before = host.as_ref().map(|h| h.faults().sqlite_execute_count());
        let stats = run(
            &authority,
            path,
            extra,
            connections,
            Duration::from_secs(seconds),
        )?;
        let executes = host
            .as_ref()
            .zip(before)
            .map(|(h, b)| (h.faults().sqlite_execute_count() - b) as f64 / stats.requests as f64);
        println!(
            "GET {path:<28} {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  ({} requests, {} non-2xx){}",
            stats.requests as f64 / stats.elapsed.as_secs_f64(),
            stats.percentile(50.0),
            stats.percentile(99.0),
            stats.percentile(100.0),
            stats.requests,
            stats.non_2xx,
            executes.map_or(String::new(), |e| format!("  sqlite statements/request {e:.2}")),
        );
    }

    schema_check_cost(&state_dir)?;
    if host.is_some() {
        rate_limit_accuracy(&root)?;
    }
    audit_scaling()?;

    println!("component sizes (release .wasm):");
    for name in ["audit", "auth", "sessions", "catalog", "webhooks"] {
        let file = root.join(format!(
            "target/wasm32-wasip2/release/streamspace_{name}.wasm"
        ));
        let size = std::fs::metadata(&file)
            .with_context(|| format!("{}", file.display()))?
            .len();
        println!(
            "  {name:<10} {size:>8} bytes ({:.0} KiB)",
            size as f64 / 1024.0
        );
    }
    if let Some(host) = host {
        host.shutdown();
    }
    let _ = std::fs::remove_dir_all(&state_dir);
    Ok(())
}

/// The "is the schema current?" check every request that opens SQLite pays: one
/// `PRAGMA user_version` on the fresh connection (plus the per-connection `synchronous` pragma).
fn schema_check_cost(state_dir: &std::path::Path) -> Result<()> {
    let db = state_dir.join("sqlite_db.db");
    if !db.exists() {
        println!("schema check: skipped (no local database; measuring a remote server)");
        return Ok(());
    }
    let conn = rusqlite::Connection::open(&db)?;
    let n = 100_000;
    let started = Instant::now();
    for _ in 0..n {
        let _: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    }
    let per_check = started.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let started = Instant::now();
    let opens = 2_000;
    for _ in 0..opens {
        let c = rusqlite::Connection::open(&db)?;
        let _: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    }
    let per_open = started.elapsed().as_secs_f64() * 1e6 / f64::from(opens);
    println!(
        "schema check: PRAGMA user_version {per_check:.2} µs on an open connection; fresh connection + check {per_open:.1} µs (native rusqlite)"
    );
    Ok(())
}

const ADMIN: &str = "bench-admin";
const PASSWORD: &str = "bench password not for production";

/// First-user setup (or login, on a server where it ran before), then sequential logins, each
/// followed by a logout so the session cap never interferes. Returns a live access token.
fn login_latency(authority: &str) -> Result<String> {
    let mut stream = TcpStream::connect(authority)?;
    stream.set_nodelay(true)?;
    let mut buf = Vec::new();
    let setup = format!(
        r#"{{"username":"{ADMIN}","email":"{ADMIN}@example.com","password":"{PASSWORD}","org_name":"Bench"}}"#
    );
    let (status, _) = post(
        &mut stream,
        authority,
        "/api/v1/auth/setup",
        &setup,
        None,
        &mut buf,
    )?;
    if status != 201 && status != 409 {
        bail!("setup answered {status}");
    }
    let login = format!(r#"{{"username":"{ADMIN}","password":"{PASSWORD}"}}"#);
    let mut latencies = Vec::new();
    let mut token = String::new();
    for i in 0..40 {
        let t = Instant::now();
        let (status, body) = post(
            &mut stream,
            authority,
            "/api/v1/auth/login",
            &login,
            None,
            &mut buf,
        )?;
        let elapsed = t.elapsed();
        if status != 200 {
            bail!("login answered {status}: {body}");
        }
        token = body
            .split("\"access_token\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .context("no access_token")?
            .to_owned();
        if i < 39 {
            post(
                &mut stream,
                authority,
                "/api/v1/auth/logout",
                "",
                Some(&token),
                &mut buf,
            )?;
        }
        latencies.push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
    }
    latencies.sort_unstable();
    let stats = Stats {
        requests: 40,
        non_2xx: 0,
        elapsed: Duration::ZERO,
        latencies_us: latencies,
    };
    println!(
        "POST /api/v1/auth/login (argon2id m=19 MiB t=2 p=1, sequential)  p50 {:.2} ms  p99 {:.2} ms",
        stats.percentile(50.0),
        stats.percentile(99.0)
    );
    Ok(token)
}

fn post(
    stream: &mut TcpStream,
    authority: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
    buf: &mut Vec<u8>,
) -> Result<(u16, String)> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let status = read_response(stream, buf)?;
    let text = String::from_utf8_lossy(buf).into_owned();
    Ok((status, text))
}

/// How audit queries and chain verification grow with the table (native rusqlite, the same SQL
/// the components run). `BENCH_AUDIT_ROWS` (default `100000,1000000`).
fn audit_scaling() -> Result<()> {
    use shared::audit::chain::{self, Record};
    use shared::store::native::NativeSql;
    let sizes: Vec<u64> = std::env::var("BENCH_AUDIT_ROWS")
        .unwrap_or_else(|_| "100000,1000000".to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let key = b"bench-audit-key";
    for rows in sizes {
        let sql = NativeSql::temp();
        let db = shared::migrations::open_database(&sql, shared::config::Synchronous::Normal, 0)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let t = Instant::now();
        let mut n = 0u64;
        while n < rows {
            db.begin().map_err(|e| anyhow::anyhow!("{e}"))?;
            for _ in 0..10_000.min(rows - n) {
                n += 1;
                let record = Record {
                    id: format!("ev-{n}"),
                    request_id: format!("rq-{n}"),
                    ts: 1_795_413_600_000 + i64::try_from(n)? * 10,
                    principal: Some(format!("user:u{}", n % 50)),
                    user_id: Some(format!("u{}", n % 50)),
                    org_id: Some(format!("org-{}", n % 5)),
                    method: if n.is_multiple_of(4) {
                        "POST".into()
                    } else {
                        "GET".into()
                    },
                    path: "/api/v1/users/me".into(),
                    action: if n.is_multiple_of(4) {
                        "POST /api/v1/users".into()
                    } else {
                        "GET /api/v1/users/me".into()
                    },
                    resource_type: Some("users".into()),
                    status: if n.is_multiple_of(10) { 401 } else { 200 },
                    duration_ms: 1.25,
                    ..Record::default()
                };
                chain::append(&db, key, &record).map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            db.commit().map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let insert_us = t.elapsed().as_secs_f64() * 1e6 / rows as f64;
        let timed = |sql_text: &str| -> Result<f64> {
            let t = Instant::now();
            db.execute(sql_text, &[])
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(t.elapsed().as_secs_f64() * 1000.0)
        };
        let newest_page =
            timed("SELECT * FROM audit_log WHERE org_id = 'org-3' ORDER BY seq DESC LIMIT 51")?;
        let filtered = timed("SELECT * FROM audit_log WHERE org_id = 'org-3' AND action = 'POST /api/v1/users' AND status = 401 ORDER BY seq DESC LIMIT 51")?;
        let stats =
            timed("SELECT action, count(*) FROM audit_log WHERE org_id = 'org-3' GROUP BY action")?;
        let t = Instant::now();
        let report = chain::verify(&db, key, true).map_err(|e| anyhow::anyhow!("{e}"))?;
        let verify_s = t.elapsed().as_secs_f64();
        println!(
            "audit {rows} rows: append {insert_us:.1} µs/row; newest page {newest_page:.2} ms; filtered page {filtered:.2} ms; stats {stats:.1} ms; verify {verify_s:.2} s ({} checked, ok {})",
            report.checked, report.ok
        );
    }
    Ok(())
}

/// 50 concurrent clients on one key (one client IP) against a 600/min limit: how many are
/// admitted, against the exact GCRA allowance (the burst plus what refills while they run).
fn rate_limit_accuracy(root: &std::path::Path) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("streamspace-bench-rl-{}", std::process::id()));
    let host = RunningHost::start(
        HostOptions::new(root.join("spin.toml"), &dir).variable("rate_limit_api_per_minute", "600"),
    )?;
    let authority = host.base_url().trim_start_matches("http://").to_owned();
    let seconds = 3;
    let stats = run(&authority, "/version", "", 50, Duration::from_secs(seconds))?;
    let admitted = stats.requests - stats.non_2xx;
    let expected = 600 + (stats.elapsed.as_secs_f64() * 10.0).floor() as u64;
    println!(
        "rate limit accuracy: 50 clients, one key, 600/min for {:.1} s: {} of {} requests admitted (exact allowance {}, burst 600 + 10/s)",
        stats.elapsed.as_secs_f64(),
        admitted,
        stats.requests,
        expected
    );
    host.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

struct Stats {
    requests: u64,
    non_2xx: u64,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

impl Stats {
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let idx = ((p / 100.0) * (self.latencies_us.len() - 1) as f64).round() as usize;
        f64::from(self.latencies_us[idx.min(self.latencies_us.len() - 1)]) / 1000.0
    }
}

fn run(
    authority: &str,
    path: &str,
    extra_headers: &str,
    connections: usize,
    duration: Duration,
) -> Result<Stats> {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let stop = stop.clone();
            let authority = authority.to_owned();
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: streamspace-bench\r\n{extra_headers}\r\n"
            );
            std::thread::spawn(move || worker(&authority, &request, &stop))
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut stats = Stats {
        requests: 0,
        non_2xx: 0,
        elapsed: started.elapsed(),
        latencies_us: Vec::new(),
    };
    for w in workers {
        let (lat, non_2xx) = w.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
        stats.requests += lat.len() as u64;
        stats.non_2xx += non_2xx;
        stats.latencies_us.extend(lat);
    }
    stats.latencies_us.sort_unstable();
    Ok(stats)
}

fn worker(authority: &str, request: &str, stop: &AtomicBool) -> Result<(Vec<u32>, u64)> {
    let mut stream = TcpStream::connect(authority)?;
    stream.set_nodelay(true)?;
    let mut latencies = Vec::new();
    let mut non_2xx = 0;
    let mut buf = Vec::with_capacity(16 * 1024);
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        stream.write_all(request.as_bytes())?;
        let status = read_response(&mut stream, &mut buf)?;
        latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
        if !(200..300).contains(&status) {
            non_2xx += 1;
        }
    }
    Ok((latencies, non_2xx))
}

/// Reads one response with a Content-Length body; returns its status.
fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<u16> {
    buf.clear();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            bail!("connection closed");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("status")?;
    let declared = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok());
    let length: usize = match declared {
        Some(n) => n,
        None if status == 204 || status == 304 => 0,
        None => bail!("response without Content-Length"),
    };
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            bail!("connection closed mid-body");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(status)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
