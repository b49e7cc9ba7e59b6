//! End-to-end smoke test of the host against a throwaway spin-sdk guest.
//!
//! The guest is deliberately not part of the repo: a spin-sdk 5.2 `cdylib`
//! (`#[http_component]`, built with `cargo build --target wasm32-wasip2
//! --release`) answering `/ping`, `/headers` (dumps `spin-*` headers),
//! `/echo`, `/kv`, `/kv-denied`, `/sql`, `/sql-denied`, `/var?name=`, `/out`,
//! `/out-denied` and `/trap`, and printing one JSON line per request. Point
//! `SPIN_TEST_HOST_FIXTURE` at its `.wasm`; without it the test returns early.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Instant;

use spin_test_host::{HostOptions, RunningHost};

fn fixture() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os("SPIN_TEST_HOST_FIXTURE")?);
    p.exists().then_some(p)
}

/// Minimal keep-alive HTTP/1.1 client (Content-Length or chunked bodies).
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(base: &str) -> Self {
        let stream = TcpStream::connect(base.trim_start_matches("http://")).unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            reader: BufReader::new(stream),
        }
    }

    fn request(&mut self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.reader.get_mut().write_all(&req).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let (mut len, mut chunked) = (None, false);
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let l = line.trim_end().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.strip_prefix("content-length:") {
                len = Some(v.trim().parse::<usize>().unwrap());
            }
            if l.starts_with("transfer-encoding:") && l.contains("chunked") {
                chunked = true;
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line).unwrap();
                let n = usize::from_str_radix(line.trim(), 16).unwrap();
                let mut chunk = vec![0; n + 2];
                self.reader.read_exact(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            let mut buf = vec![0; len.unwrap_or(0)];
            self.reader.read_exact(&mut buf).unwrap();
            body = buf;
        }
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

fn get(base: &str, path: &str) -> (u16, String) {
    Client::connect(base).request("GET", path, b"")
}

fn fake_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nupstream",
            );
        }
    });
    addr.to_string()
}

fn write_app(wasm: &PathBuf) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "spin-test-host-smoke-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = format!(
        r#"spin_manifest_version = 2
[application]
name = "probe"
[variables]
upstream = {{ required = true }}
greeting = {{ default = "hello" }}
[[trigger.http]]
route = "/..."
component = "probe"
[[trigger.http]]
route = "/api/..."
component = "probe"
[[trigger.http]]
route = "/ping"
component = "probe"
[component.probe]
source = {wasm:?}
key_value_stores = ["default"]
sqlite_databases = ["default"]
allowed_outbound_hosts = ["http://{{{{ upstream }}}}"]
[component.probe.variables]
target = "http://{{{{ upstream }}}}/x"
greeting = "{{{{ greeting }}}}, world"
[component.probe.build]
command = "ignored"
"#
    );
    let path = dir.join("spin.toml");
    std::fs::write(&path, manifest).unwrap();
    (path, dir.join("state"))
}

#[test]
fn smoke_end_to_end() {
    let Some(wasm) = fixture() else {
        eprintln!("skipping: no probe fixture (set SPIN_TEST_HOST_FIXTURE)");
        return;
    };
    let upstream = fake_upstream();
    let (manifest, state) = write_app(&wasm);

    // A required variable without a value refuses to start, like Spin.
    assert!(RunningHost::start(HostOptions::new(&manifest, &state)).is_err());

    let host =
        RunningHost::start(HostOptions::new(&manifest, &state).variable("upstream", &upstream))
            .unwrap();
    let base = host.base_url();

    assert_eq!(get(&base, "/ping"), (200, "pong".into()));
    assert_eq!(get(&base, "/.well-known/spin/health").0, 200);

    let (status, headers) = get(&base, "/headers?a=1");
    assert_eq!(status, 200);
    assert!(headers.contains("spin-path-info=/headers\n"), "{headers}");
    assert!(headers.contains("spin-matched-route=/...\n"), "{headers}");
    assert!(headers.contains("spin-component-route=\n"), "{headers}");
    assert!(
        headers.contains("spin-full-url=http://localhost/headers?a=1\n"),
        "{headers}"
    );
    assert!(headers.contains("spin-client-addr=127.0.0.1:"), "{headers}");

    let mut c = Client::connect(&base);
    assert_eq!(c.request("POST", "/echo", b"body!"), (200, "body!".into()));
    assert_eq!(
        c.request("POST", "/kv", b"v1"),
        (200, "v1 [\"k\"] true".into())
    );
    let (_, denied) = get(&base, "/kv-denied");
    assert!(denied.contains("AccessDenied"), "{denied}");

    let (status, sql) = get(&base, "/sql");
    assert_eq!(status, 200, "{sql}");
    assert!(sql.starts_with("id=1 changes=1"), "{sql}");
    assert!(sql.contains("Text(\"a\")") && sql.contains("Real(1.5)") && sql.contains("Null"));
    assert!(get(&base, "/sql-denied").1.contains("AccessDenied"));

    assert_eq!(get(&base, "/var?name=greeting").1, "Ok(\"hello, world\")");
    assert!(get(&base, "/var?name=upstream").1.contains("Undefined"));
    assert!(get(&base, "/var?name=Bad").1.contains("InvalidName"));

    assert_eq!(get(&base, "/out"), (200, "upstream 200 upstream".into()));
    let (_, denied) = get(&base, "/out-denied");
    assert!(denied.to_lowercase().contains("denied"), "{denied}");

    assert_eq!(get(&base, "/trap"), (500, String::new()));

    // Fault injection and counters.
    let faults = host.faults();
    let opens = faults.sqlite_open_count();
    faults.set_sqlite_unavailable(true);
    let (status, body) = get(&base, "/sql");
    assert_eq!(status, 503);
    assert!(
        body.contains("injected fault: sqlite unavailable"),
        "{body}"
    );
    faults.set_sqlite_unavailable(false);
    assert_eq!(faults.sqlite_open_count(), opens + 1);
    faults.set_kv_unavailable(true);
    assert!(get(&base, "/kv")
        .1
        .contains("injected fault: key-value unavailable"));
    faults.set_kv_unavailable(false);
    assert!(faults.sqlite_execute_count() >= 3);

    let lines = host.take_guest_log_lines();
    assert!(
        lines.iter().any(|l| l.contains("\"path\":\"/ping\"")),
        "{lines:?}"
    );
    assert!(host.guest_log_lines().is_empty());

    // A second host in the same process reuses the compiled component.
    let t = Instant::now();
    let second =
        RunningHost::start(HostOptions::new(&manifest, &state).variable("upstream", &upstream))
            .unwrap();
    assert!(t.elapsed().as_secs() < 5, "component was recompiled");
    assert_eq!(get(&second.base_url(), "/api/x").0, 404); // guest's own 404
    second.shutdown();

    // Warm latency: sequential requests over one keep-alive connection.
    let n = 1000;
    let t = Instant::now();
    for _ in 0..n {
        assert_eq!(c.request("GET", "/ping", b"").0, 200);
    }
    let per = t.elapsed() / n;
    eprintln!("warm latency: {n} sequential requests, {per:?} per request");
    host.shutdown();
}
