//! The load generator of `scripts/bench-libsql-floor`: the same closed loop as `scripts/bench`'s
//! (tests/e2e/src/bin/bench.rs `load`/`worker`: N keep-alive HTTP/1.1 clients, each sending its
//! next request as soon as the last is answered, every request bounded by a timeout), std only so
//! that the script compiles it with one `rustc` call instead of building the e2e crate (wasmtime).
//! Not part of any crate.
//!
//! `loadgen load AUTHORITY PATH CONNECTIONS SECONDS TIMEOUT_S` prints one line of `key=value`
//! figures; `{conn}` in PATH becomes the client's number (a key of its own per connection).
//! `loadgen recover AUTHORITY PATH TIMEOUT_S LIMIT_S` sends one request at a time (each bounded by
//! TIMEOUT_S) until one is answered 2xx or LIMIT_S pass; prints how long that took.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "closed_loop.rs"]
mod closed_loop;
use closed_loop::{body_text, connect, read_response};

fn request(authority: &str, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: streamspace-bench\r\n\r\n")
}

fn load(authority: &str, path: &str, connections: usize, seconds: u64, timeout: Duration) {
    let authority_owned = authority.to_owned();
    let path = path.to_owned();
    let make: closed_loop::MakeRequest = Arc::new(move |id, _| {
        request(&authority_owned, &path.replace("{conn}", &id.to_string()))
    });
    let origin = Instant::now();
    let stats = closed_loop::load(authority, connections, Duration::from_secs(seconds), timeout, make)
        .unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        });
    let drained = origin.elapsed();
    let statuses: Vec<String> = stats
        .statuses
        .iter()
        .map(|(c, n)| format!("{c}x{n}"))
        .collect();
    let timeline: Vec<String> = (0..=drained.as_secs())
        .map(|s| stats.answers_by_second.get(&s).copied().unwrap_or(0).to_string())
        .collect();
    // Answered requests over the load's own duration (as scripts/bench: elapsed until stop).
    println!(
        "rps={:.0} p50_ms={:.1} p99_ms={:.1} max_ms={:.1} answered={} statuses={} unanswered={} conn_errors={} drain_s={:.1} per_second={} first_5xx={:?}",
        stats.per_second(),
        stats.percentile(50.0),
        stats.percentile(99.0),
        stats.latencies_us.last().map_or(0.0, |v| f64::from(*v) / 1000.0),
        stats.requests,
        if statuses.is_empty() { "-".to_owned() } else { statuses.join(",") },
        stats.timeouts,
        stats.failed,
        (drained - stats.elapsed).as_secs_f64(),
        timeline.join(","),
        stats.first_5xx.clone().unwrap_or_default(),
    );
}

fn recover(authority: &str, path: &str, timeout: Duration, limit: Duration) {
    let addr: SocketAddr = authority.parse().unwrap_or_else(|_| {
        eprintln!("authority is ip:port");
        std::process::exit(2)
    });
    let start = Instant::now();
    let mut tries = 0u32;
    let mut last = String::new();
    let mut buf = Vec::new();
    while start.elapsed() < limit {
        tries += 1;
        let t = Instant::now();
        let result = connect(addr, timeout).and_then(|mut s| {
            s.write_all(request(authority, path).as_bytes())?;
            read_response(&mut s, &mut buf)
        });
        match result {
            Ok(status) if (200..300).contains(&status) => {
                println!(
                    "recovered_after_s={:.1} tries={tries} last_latency_ms={:.1} last_failure={last:?}",
                    start.elapsed().as_secs_f64(),
                    t.elapsed().as_secs_f64() * 1000.0
                );
                return;
            }
            Ok(status) => {
                last = format!("{status} {}", body_text(&buf, 200));
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => {
                last = format!("{:?} after {:.1}s", e.kind(), t.elapsed().as_secs_f64());
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    println!(
        "recovered_after_s=NEVER(>{:.0}) tries={tries} last_failure={last:?}",
        limit.as_secs_f64()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let num = |i: usize| -> u64 {
        args.get(i).and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            eprintln!("usage: see the file's header");
            std::process::exit(2)
        })
    };
    match args.get(1).map(String::as_str) {
        Some("load") => load(
            &args[2],
            &args[3],
            num(4) as usize,
            num(5),
            Duration::from_secs(num(6)),
        ),
        Some("recover") => recover(
            &args[2],
            &args[3],
            Duration::from_secs(num(4)),
            Duration::from_secs(num(5)),
        ),
        _ => {
            eprintln!("usage: loadgen load|recover …");
            std::process::exit(2)
        }
    }
}
