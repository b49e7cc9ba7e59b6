//! A fixture GitHub for sync tests: a tiny HTTP/1.1 server on 127.0.0.1 that answers the three
//! requests a catalog sync makes exactly as GitHub does (SPEC-wave2 §2.4, Decision 4):
//!
//! - `GET /repos/{owner}/{repo}/commits/{branch}` — with `Accept: application/vnd.github.sha`
//!   the 40-hex sha as plain text (else `{"sha": …}`); 404 `{"message":"Not Found",…}` for an
//!   unknown repository, 422 "No commit found for SHA" for an unknown branch (as GitHub does);
//! - `GET /repos/{owner}/{repo}/git/trees/{sha}?recursive=1` — `{sha, url, tree:[{path, mode,
//!   type, sha, size?, url}], truncated}` with directories (`tree`, `040000`), symlinks (`blob`,
//!   `120000`) and submodules (`commit`, `160000`, no size);
//! - `GET /{owner}/{repo}/{sha}/{path}` (the raw host; percent-encoded segments decoded) — the
//!   bytes, or `404: Not Found`.
//!
//! API answers carry GitHub's rate-limit headers (`X-RateLimit-Limit/Remaining/Used/Reset/
//! Resource`); when the budget is spent they are 403 "API rate limit exceeded". A path prefix
//! such as GitHub Enterprise's `/api/v3` is accepted in front of the API paths. Every request is
//! recorded (path, `Authorization`), so tests can count API calls and raw fetches.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// One file of a fixture repository.
#[derive(Debug, Clone)]
pub struct FixtureFile {
    pub content: Vec<u8>,
    /// `100644`, `100755`, `120000` (symlink: the content is the target) or `160000` (submodule).
    pub mode: &'static str,
}

/// One request the fixture received.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// The request target as sent (percent-encoding kept, query included).
    pub target: String,
    pub accept: Option<String>,
    pub authorization: Option<String>,
    pub api_version: Option<String>,
}

impl SeenRequest {
    /// An API call (`/repos/…`, any prefix), as opposed to a raw fetch.
    pub fn is_api(&self) -> bool {
        self.target.contains("/repos/")
    }
}

#[derive(Default)]
struct Repo {
    /// branch → files at its head.
    branches: HashMap<String, BTreeMap<String, FixtureFile>>,
}

#[derive(Default)]
struct State {
    repos: HashMap<(String, String), Repo>,
    /// Every commit ever served: its files (so an older commit's raw files still answer).
    commits: HashMap<String, BTreeMap<String, FixtureFile>>,
    seen: Vec<SeenRequest>,
    /// Answer every API call with this status and body (a GitHub outage).
    api_failure: Option<(u16, String)>,
    /// Mark trees `truncated` (a repository past GitHub's recursive limit).
    truncated: bool,
    rate_limit: u32,
    rate_used: u32,
    /// Raw files are answered this late (a slow GitHub).
    raw_delay_ms: u64,
}

/// The running fixture; stopped on drop.
pub struct GitHubFixture {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A content hash in the shape of a git sha (40 hex digits): it changes when the content does.
pub fn fake_sha(data: &[u8]) -> String {
    let mut out = String::with_capacity(40);
    for seed in 0..5u32 {
        let mut h: u32 = 0x811c_9dc5 ^ seed.wrapping_mul(0x9e37_79b9);
        for b in data {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
        h ^= u32::try_from(data.len())
            .unwrap_or(u32::MAX)
            .rotate_left(seed);
        out.push_str(&format!("{h:08x}"));
    }
    out
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl GitHubFixture {
    /// Binds a free loopback port and serves until dropped.
    pub fn start() -> std::io::Result<GitHubFixture> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(State {
            rate_limit: 5000,
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let state = state.clone();
                        std::thread::spawn(move || {
                            let _ = serve(stream, &state);
                        });
                    }
                }
            })
        };
        Ok(GitHubFixture {
            port,
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>`: the API URL, the raw URL and both origins.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sets a branch's files (a new commit when they differ from the current ones).
    pub fn set_files(&self, owner: &str, repo: &str, branch: &str, files: &[(&str, FixtureFile)]) {
        let files: BTreeMap<String, FixtureFile> = files
            .iter()
            .map(|(path, file)| ((*path).to_owned(), file.clone()))
            .collect();
        let mut state = lock(&self.state);
        state
            .repos
            .entry((owner.to_owned(), repo.to_owned()))
            .or_default()
            .branches
            .insert(branch.to_owned(), files.clone());
        let sha = commit_sha(&files);
        state.commits.insert(sha, files);
    }

    /// Deletes a branch (its commits stay readable).
    pub fn remove_branch(&self, owner: &str, repo: &str, branch: &str) {
        if let Some(r) = lock(&self.state)
            .repos
            .get_mut(&(owner.to_owned(), repo.to_owned()))
        {
            r.branches.remove(branch);
        }
    }

    /// The sha the branch points at (`None` for an unknown repository or branch).
    pub fn head(&self, owner: &str, repo: &str, branch: &str) -> Option<String> {
        let state = lock(&self.state);
        state
            .repos
            .get(&(owner.to_owned(), repo.to_owned()))
            .and_then(|r| r.branches.get(branch))
            .map(commit_sha)
    }

    /// Every API call answers `status` with `body` (`None`: normal service again).
    pub fn fail_api(&self, failure: Option<(u16, &str)>) {
        lock(&self.state).api_failure = failure.map(|(s, b)| (s, b.to_owned()));
    }

    /// Trees are answered `truncated: true`.
    pub fn truncate_trees(&self, truncated: bool) {
        lock(&self.state).truncated = truncated;
    }

    /// The API budget left before 403 "rate limit exceeded".
    pub fn set_rate_limit_remaining(&self, remaining: u32) {
        let mut state = lock(&self.state);
        state.rate_used = state.rate_limit.saturating_sub(remaining);
    }

    /// Raw files are answered `ms` late.
    pub fn delay_raw(&self, ms: u64) {
        lock(&self.state).raw_delay_ms = ms;
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<SeenRequest> {
        lock(&self.state).seen.clone()
    }

    /// Forgets the requests seen so far.
    pub fn reset_counts(&self) {
        lock(&self.state).seen.clear();
    }

    pub fn api_calls(&self) -> usize {
        self.seen().iter().filter(|r| r.is_api()).count()
    }

    /// The raw fetches so far (request targets).
    pub fn raw_fetches(&self) -> Vec<String> {
        self.seen()
            .into_iter()
            .filter(|r| !r.is_api())
            .map(|r| r.target)
            .collect()
    }
}

impl Drop for GitHubFixture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn commit_sha(files: &BTreeMap<String, FixtureFile>) -> String {
    let mut listing = Vec::new();
    for (path, file) in files {
        listing.extend_from_slice(path.as_bytes());
        listing.push(0);
        listing.extend_from_slice(file.mode.as_bytes());
        listing.extend_from_slice(fake_sha(&file.content).as_bytes());
    }
    fake_sha(&listing)
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Answer {
    status: u16,
    content_type: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn json_answer(status: u16, value: &serde_json::Value) -> Answer {
    Answer {
        status,
        content_type: "application/json; charset=utf-8",
        headers: Vec::new(),
        body: value.to_string().into_bytes(),
    }
}

fn not_found_api() -> Answer {
    json_answer(
        404,
        &serde_json::json!({"message": "Not Found",
            "documentation_url": "https://docs.github.com/rest", "status": "404"}),
    )
}

fn serve(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Ok(()); // the wake-up connection of Drop
    }
    let target = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let mut seen = SeenRequest {
        target: target.clone(),
        accept: None,
        authorization: None,
        api_version: None,
    };
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = Some(value.trim().to_owned());
            match name.trim().to_ascii_lowercase().as_str() {
                "accept" => seen.accept = value,
                "authorization" => seen.authorization = value,
                "x-github-api-version" => seen.api_version = value,
                _ => {}
            }
        }
    }
    let (answer, delay) = {
        let mut state = lock(state);
        state.seen.push(seen.clone());
        let delay = if seen.is_api() { 0 } else { state.raw_delay_ms };
        (answer(&mut state, &seen), delay)
    };
    std::thread::sleep(Duration::from_millis(delay));
    let mut out = stream;
    let reason = match answer.status {
        200 => "OK",
        403 => "Forbidden",
        404 => "Not Found",
        _ => "Status",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n",
        answer.status,
        answer.content_type,
        answer.body.len()
    );
    for (name, value) in &answer.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.write_all(&answer.body)?;
    out.flush()
}

fn answer(state: &mut State, seen: &SeenRequest) -> Answer {
    let (path, query) = seen
        .target
        .split_once('?')
        .unwrap_or((seen.target.as_str(), ""));
    if let Some(at) = path.find("/repos/") {
        let mut answer = api(state, &path[at + "/repos/".len()..], query, seen);
        let reset = 1_900_000_000u64;
        let remaining = state.rate_limit.saturating_sub(state.rate_used);
        answer.headers.extend([
            ("x-ratelimit-limit".to_owned(), state.rate_limit.to_string()),
            ("x-ratelimit-remaining".to_owned(), remaining.to_string()),
            ("x-ratelimit-used".to_owned(), state.rate_used.to_string()),
            ("x-ratelimit-reset".to_owned(), reset.to_string()),
            ("x-ratelimit-resource".to_owned(), "core".to_owned()),
            (
                "x-github-api-version-selected".to_owned(),
                "2022-11-28".to_owned(),
            ),
        ]);
        return answer;
    }
    raw(state, path)
}

fn api(state: &mut State, rest: &str, query: &str, seen: &SeenRequest) -> Answer {
    if state.rate_used >= state.rate_limit {
        return json_answer(
            403,
            &serde_json::json!({"message": "API rate limit exceeded for 127.0.0.1. (But here's the good news: Authenticated requests get a higher rate limit.)",
                "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"}),
        );
    }
    state.rate_used += 1;
    if let Some((status, body)) = &state.api_failure {
        return Answer {
            status: *status,
            content_type: "application/json; charset=utf-8",
            headers: Vec::new(),
            body: body.clone().into_bytes(),
        };
    }
    let parts: Vec<&str> = rest.splitn(4, '/').collect();
    let [owner, repo, kind, tail] = parts.as_slice() else {
        return not_found_api();
    };
    let key = (percent_decode(owner), percent_decode(repo));
    match *kind {
        "commits" => {
            let branch = percent_decode(tail);
            let Some(repo) = state.repos.get(&key) else {
                return not_found_api();
            };
            // GitHub answers 422 for a ref that does not exist in an existing repository.
            let Some(files) = repo.branches.get(&branch) else {
                return json_answer(
                    422,
                    &serde_json::json!({"message": format!("No commit found for SHA: {branch}"),
                        "documentation_url": "https://docs.github.com/rest/commits/commits#get-a-commit",
                        "status": "422"}),
                );
            };
            let sha = commit_sha(files);
            if seen.accept.as_deref() == Some("application/vnd.github.sha") {
                Answer {
                    status: 200,
                    content_type: "application/vnd.github.sha; charset=utf-8",
                    headers: Vec::new(),
                    body: sha.into_bytes(),
                }
            } else {
                json_answer(200, &serde_json::json!({"sha": sha}))
            }
        }
        "git" => {
            let Some(sha) = tail.strip_prefix("trees/") else {
                return not_found_api();
            };
            if !state.repos.contains_key(&key) {
                return not_found_api();
            }
            let Some(files) = state.commits.get(sha) else {
                return not_found_api();
            };
            let recursive = query
                .split('&')
                .any(|p| p == "recursive=1" || p == "recursive=true");
            json_answer(200, &tree_json(sha, files, recursive, state.truncated))
        }
        _ => not_found_api(),
    }
}

fn tree_json(
    sha: &str,
    files: &BTreeMap<String, FixtureFile>,
    recursive: bool,
    truncated: bool,
) -> serde_json::Value {
    let mut entries: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for (path, file) in files {
        // Parent directories.
        let segments: Vec<&str> = path.split('/').collect();
        for depth in 1..segments.len() {
            let dir = segments[..depth].join("/");
            entries.entry(dir.clone()).or_insert_with(|| {
                serde_json::json!({"path": dir, "mode": "040000", "type": "tree",
                    "sha": fake_sha(dir.as_bytes()), "url": "https://api.github.invalid/tree"})
            });
        }
        if !recursive && segments.len() > 1 {
            continue;
        }
        let blob_sha = fake_sha(&file.content);
        let entry = if file.mode == "160000" {
            serde_json::json!({"path": path, "mode": "160000", "type": "commit", "sha": blob_sha})
        } else {
            serde_json::json!({"path": path, "mode": file.mode, "type": "blob", "sha": blob_sha,
                "size": file.content.len(), "url": "https://api.github.invalid/blob"})
        };
        entries.insert(path.clone(), entry);
    }
    if !recursive {
        entries.retain(|path, _| !path.contains('/'));
    }
    serde_json::json!({
        "sha": sha,
        "url": format!("https://api.github.invalid/trees/{sha}"),
        "tree": entries.into_values().collect::<Vec<_>>(),
        "truncated": truncated,
    })
}

fn raw(state: &State, path: &str) -> Answer {
    let text_404 = || Answer {
        status: 404,
        content_type: "text/plain; charset=utf-8",
        headers: Vec::new(),
        body: b"404: Not Found".to_vec(),
    };
    // /{owner}/{repo}/{sha}/{path…}
    let parts: Vec<&str> = path.trim_start_matches('/').splitn(4, '/').collect();
    let [owner, repo, sha, file] = parts.as_slice() else {
        return text_404();
    };
    if !state
        .repos
        .contains_key(&(percent_decode(owner), percent_decode(repo)))
    {
        return text_404();
    }
    let file_path: Vec<String> = file.split('/').map(percent_decode).collect();
    let file_path = file_path.join("/");
    match state
        .commits
        .get(*sha)
        .and_then(|files| files.get(&file_path))
    {
        Some(f) if f.mode != "160000" => Answer {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            headers: vec![("x-content-type-options".to_owned(), "nosniff".to_owned())],
            body: f.content.clone(),
        },
        _ => text_404(),
    }
}
