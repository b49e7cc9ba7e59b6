//! The closed-loop HTTP/1.1 load both benchmark tools use (`scripts/bench`'s `bench` binary and
//! `scripts/bench-libsql-floor`'s `loadgen`, each includes this file with `#[path]`): N keep-alive
//! clients, each sending its next request as soon as the last is answered, every request bounded
//! by a timeout, so a stalled server costs at most `duration + timeout`. Standard library only,
//! so `loadgen` compiles with one `rustc` call.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Stats {
    /// Requests answered (any status).
    pub requests: u64,
    pub non_2xx: u64,
    /// From the start until the clients were told to stop.
    pub elapsed: Duration,
    /// Sorted once the load is over.
    pub latencies_us: Vec<u32>,
    /// Answered requests by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests with no answer within the timeout (the server stalled).
    pub timeouts: u64,
    /// Requests lost to a refused or dropped connection.
    pub failed: u64,
    /// The body of the first 5xx answer (what the server said went wrong).
    pub first_5xx: Option<String>,
    /// Answers per whole second since the start (a stall shows as a run of zeros).
    pub answers_by_second: BTreeMap<u64, u64>,
}

impl Stats {
    /// The `p`th percentile latency in ms.
    pub fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let idx = ((p / 100.0) * (self.latencies_us.len() - 1) as f64).round() as usize;
        f64::from(self.latencies_us[idx.min(self.latencies_us.len() - 1)]) / 1000.0
    }

    /// Answered requests per second of the load's own duration.
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn status(&self, code: u16) -> u64 {
        self.statuses.get(&code).copied().unwrap_or(0)
    }

    /// No answer within the timeout, or nothing answered at all.
    pub fn stalled(&self) -> bool {
        self.timeouts > 0 || self.requests == 0
    }

    pub fn statuses_text(&self) -> String {
        let mut parts: Vec<String> = self
            .statuses
            .iter()
            .map(|(code, n)| format!("{code}×{n}"))
            .collect();
        if self.timeouts > 0 {
            parts.push(format!("unanswered×{}", self.timeouts));
        }
        if self.failed > 0 {
            parts.push(format!("connection-errors×{}", self.failed));
        }
        parts.join(" ")
    }

    /// Counts one answer with status `status` that took `took`; `buf` holds the response.
    pub fn record(&mut self, status: u16, took: Duration, buf: &[u8], origin: Instant) {
        self.latencies_us
            .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
        self.requests += 1;
        *self.statuses.entry(status).or_default() += 1;
        *self
            .answers_by_second
            .entry(origin.elapsed().as_secs())
            .or_default() += 1;
        if !(200..300).contains(&status) {
            self.non_2xx += 1;
        }
        if status >= 500 && self.first_5xx.is_none() {
            self.first_5xx = Some(body_text(buf, 300));
        }
    }

    /// Adds a client's counts to the run's.
    pub fn add(&mut self, part: Stats) {
        self.requests += part.requests;
        self.non_2xx += part.non_2xx;
        self.timeouts += part.timeouts;
        self.failed += part.failed;
        self.latencies_us.extend(part.latencies_us);
        if self.first_5xx.is_none() {
            self.first_5xx = part.first_5xx;
        }
        for (code, n) in part.statuses {
            *self.statuses.entry(code).or_default() += n;
        }
        for (second, n) in part.answers_by_second {
            *self.answers_by_second.entry(second).or_default() += n;
        }
    }
}

/// Builds request number `seq` of client `client` (the whole HTTP/1.1 request).
pub type MakeRequest = Arc<dyn Fn(usize, u64) -> String + Send + Sync>;

/// `connections` keep-alive clients sending `make`'s requests for `duration`.
pub fn load(
    authority: &str,
    connections: usize,
    duration: Duration,
    timeout: Duration,
    make: MakeRequest,
) -> std::io::Result<Stats> {
    let addr: SocketAddr = authority.parse().map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "authority is ip:port")
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let origin = Instant::now();
    let clients: Vec<_> = (0..connections)
        .map(|id| {
            let stop = stop.clone();
            let make = make.clone();
            std::thread::spawn(move || client(addr, id, &*make, &stop, timeout, origin))
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut stats = Stats {
        elapsed: origin.elapsed(),
        ..Stats::default()
    };
    for c in clients {
        let part = c
            .join()
            .map_err(|_| std::io::Error::other("a load client panicked"))?;
        stats.add(part);
    }
    stats.latencies_us.sort_unstable();
    Ok(stats)
}

fn client(
    addr: SocketAddr,
    id: usize,
    make: &(dyn Fn(usize, u64) -> String + Send + Sync),
    stop: &AtomicBool,
    timeout: Duration,
    origin: Instant,
) -> Stats {
    let mut stats = Stats::default();
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        exchange(
            &mut stream,
            addr,
            timeout,
            &make(id, seq),
            &mut buf,
            &mut stats,
            origin,
        );
        seq += 1;
    }
    stats
}

/// One request on the kept connection (or a new one), its answer read into `buf` and counted in
/// `stats`: answered (by status), unanswered within the timeout, or lost with the connection.
/// The connection is kept for the next request unless the answer closes it.
pub fn exchange(
    stream: &mut Option<TcpStream>,
    addr: SocketAddr,
    timeout: Duration,
    request: &str,
    buf: &mut Vec<u8>,
    stats: &mut Stats,
    origin: Instant,
) {
    let mut conn = match stream.take() {
        Some(s) => s,
        None => match connect(addr, timeout) {
            Ok(s) => s,
            Err(_) => {
                stats.failed += 1;
                std::thread::sleep(Duration::from_millis(50));
                return;
            }
        },
    };
    let t = Instant::now();
    let answer = conn
        .write_all(request.as_bytes())
        .and_then(|()| read_response(&mut conn, buf));
    match answer {
        Ok(status) => {
            stats.record(status, t.elapsed(), buf, origin);
            if !closes(buf) {
                *stream = Some(conn);
            }
        }
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            stats.timeouts += 1
        }
        Err(_) => stats.failed += 1,
    }
}

pub fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

/// The first `max` characters of the body of the response in `buf`.
pub fn body_text(buf: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(buf);
    text.split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .chars()
        .take(max)
        .collect()
}

/// Whether the response in `buf` (from [`read_response`]) ends its connection.
pub fn closes(buf: &[u8]) -> bool {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end])
        .to_ascii_lowercase()
        .lines()
        .any(|l| l.starts_with("connection:") && l.contains("close"))
}

/// Reads one response with a Content-Length body (or a bodiless 204/304); returns its status.
pub fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
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
        .ok_or_else(|| bad("no status"))?;
    let declared = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok());
    let length: usize = match declared {
        Some(n) => n,
        None if status == 204 || status == 304 => 0,
        None => return Err(bad("response without Content-Length")),
    };
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(bad("connection closed mid-body"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(status)
}
