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

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Stats {
    requests: u64,
    latencies_us: Vec<u32>,
    statuses: BTreeMap<u16, u64>,
    timeouts: u64,
    failed: u64,
    first_5xx: Option<String>,
    /// Answers per whole second since the start (a stall shows as a run of zeros).
    per_second: BTreeMap<u64, u64>,
}

fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    let bad = |m: &str| std::io::Error::other(m.to_owned());
    buf.clear();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(bad("connection closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status"))?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(bad("connection closed mid-body"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(status)
}

fn closes(buf: &[u8]) -> bool {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end])
        .to_ascii_lowercase()
        .lines()
        .any(|l| l.starts_with("connection:") && l.contains("close"))
}

fn worker(
    addr: SocketAddr,
    request: String,
    stop: &AtomicBool,
    timeout: Duration,
    origin: Instant,
) -> Stats {
    let mut stats = Stats::default();
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(16 * 1024);
    while !stop.load(Ordering::Relaxed) {
        let mut conn = match stream.take() {
            Some(s) => s,
            None => match connect(addr, timeout) {
                Ok(s) => s,
                Err(_) => {
                    stats.failed += 1;
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            },
        };
        let t = Instant::now();
        let answer = conn
            .write_all(request.as_bytes())
            .and_then(|()| read_response(&mut conn, &mut buf));
        match answer {
            Ok(status) => {
                stats
                    .latencies_us
                    .push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                stats.requests += 1;
                *stats.statuses.entry(status).or_default() += 1;
                *stats
                    .per_second
                    .entry(origin.elapsed().as_secs())
                    .or_default() += 1;
                if status >= 500 && stats.first_5xx.is_none() {
                    let text = String::from_utf8_lossy(&buf);
                    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
                    stats.first_5xx = Some(body.chars().take(300).collect());
                }
                if !closes(&buf) {
                    stream = Some(conn);
                }
            }
            Err(e) => {
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) {
                    stats.timeouts += 1;
                } else {
                    stats.failed += 1;
                }
            }
        }
    }
    stats
}

fn request(authority: &str, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: streamspace-bench\r\n\r\n")
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[idx.min(sorted.len() - 1)]) / 1000.0
}

fn load(authority: &str, path: &str, connections: usize, seconds: u64, timeout: Duration) {
    let addr: SocketAddr = authority.parse().unwrap_or_else(|_| {
        eprintln!("authority is ip:port");
        std::process::exit(2)
    });
    let stop = Arc::new(AtomicBool::new(false));
    let origin = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|id| {
            let stop = stop.clone();
            let req = request(authority, &path.replace("{conn}", &id.to_string()));
            std::thread::spawn(move || worker(addr, req, &stop, timeout, origin))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let measured = origin.elapsed();
    let mut all = Stats::default();
    for w in workers {
        let Ok(part) = w.join() else { continue };
        all.requests += part.requests;
        all.timeouts += part.timeouts;
        all.failed += part.failed;
        all.latencies_us.extend(part.latencies_us);
        if all.first_5xx.is_none() {
            all.first_5xx = part.first_5xx;
        }
        for (k, n) in part.statuses {
            *all.statuses.entry(k).or_default() += n;
        }
        for (k, n) in part.per_second {
            *all.per_second.entry(k).or_default() += n;
        }
    }
    let drained = origin.elapsed();
    all.latencies_us.sort_unstable();
    let statuses: Vec<String> = all
        .statuses
        .iter()
        .map(|(c, n)| format!("{c}x{n}"))
        .collect();
    let timeline: Vec<String> = (0..=drained.as_secs())
        .map(|s| all.per_second.get(&s).copied().unwrap_or(0).to_string())
        .collect();
    // Answered requests over the load's own duration (as scripts/bench: elapsed until stop).
    let rps = all.requests as f64 / measured.as_secs_f64().max(1e-9);
    println!(
        "rps={rps:.0} p50_ms={:.1} p99_ms={:.1} max_ms={:.1} answered={} statuses={} unanswered={} conn_errors={} drain_s={:.1} per_second={} first_5xx={:?}",
        percentile(&all.latencies_us, 50.0),
        percentile(&all.latencies_us, 99.0),
        all.latencies_us.last().map_or(0.0, |v| f64::from(*v) / 1000.0),
        all.requests,
        if statuses.is_empty() { "-".to_owned() } else { statuses.join(",") },
        all.timeouts,
        all.failed,
        (drained - measured).as_secs_f64(),
        timeline.join(","),
        all.first_5xx.unwrap_or_default(),
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
                let text = String::from_utf8_lossy(&buf);
                let body: String = text
                    .split("\r\n\r\n")
                    .nth(1)
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect();
                last = format!("{status} {body}");
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
