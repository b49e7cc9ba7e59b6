//! GitHub's HTTP API as a [`RepoProvider`] (SPEC-wave2 §2.4 steps 2, 3 and 5): the branch's
//! commit (`Accept: application/vnd.github.sha`, a plain-text sha), the recursive tree, and raw
//! files from `raw.githubusercontent.com` (not API calls: they do not count against the rate
//! limit). Both locations come from `github_api_url` / `github_raw_url` (Decision 4), so GitHub
//! Enterprise (`https://ghe.example/api/v3`) and the tests' fixture server work unchanged.

use shared::store::{LocalFuture, Outbound, OutboundRequest, OutboundResponse};
use shared::time::Timestamp;

use super::SyncError;

/// The API version every call pins (GitHub's recommendation).
pub const API_VERSION: &str = "2022-11-28";
/// GitHub refuses API calls without a `User-Agent`.
pub const USER_AGENT: &str = "streamspace-on-spin";
/// The largest tree answer read (GitHub's own recursive limit is 7 MB).
pub const MAX_TREE_BYTES: usize = 8 << 20;

/// One entry of a recursive tree (`type` is `blob`, `tree` or `commit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    pub path: String,
    pub mode: String,
    pub kind: String,
    pub sha: String,
    /// Blobs only.
    pub size: Option<u64>,
}

/// GitHub's tree answer `{sha, url, tree:[{path, mode, type, sha, size?, url}], truncated}`,
/// read field by field (GitHub adds fields; only these are used); `truncated` fails the sync.
pub fn read_tree(body: &[u8]) -> Result<Vec<TreeEntry>, SyncError> {
    let unreadable = || SyncError::new("GitHub answered an unreadable tree");
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| unreadable())?;
    if value.get("truncated").and_then(serde_json::Value::as_bool) == Some(true) {
        return Err(SyncError::new("repository tree too large"));
    }
    let entries = value
        .get("tree")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(unreadable)?;
    entries
        .iter()
        .map(|e| {
            let text = |key: &str| {
                e.get(key)
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(unreadable)
            };
            Ok(TreeEntry {
                path: text("path")?,
                mode: text("mode")?,
                kind: text("type")?,
                sha: text("sha")?,
                size: e.get("size").and_then(serde_json::Value::as_u64),
            })
        })
        .collect()
}

/// Where a repository's files come from. GitHub today; GitLab and Gitea later (Decision 6).
pub trait RepoProvider {
    /// The commit sha the branch points at.
    fn resolve_commit(&self) -> LocalFuture<'_, Result<String, SyncError>>;
    /// Every entry of the commit's tree (recursive).
    fn tree<'a>(&'a self, commit: &'a str) -> LocalFuture<'a, Result<Vec<TreeEntry>, SyncError>>;
    /// A file's bytes at the commit.
    fn raw<'a>(
        &'a self,
        commit: &'a str,
        path: &'a str,
    ) -> LocalFuture<'a, Result<Vec<u8>, SyncError>>;
}

/// A GitHub repository reached through the outbound HTTP of the request.
pub struct GitHub<'a> {
    pub outbound: &'a dyn Outbound,
    /// `github_api_url` without a trailing `/`.
    pub api_url: String,
    /// `github_raw_url` without a trailing `/`.
    pub raw_url: String,
    pub owner: String,
    pub repo: String,
    pub branch: String,
    /// The repository's own credential (`Authorization` value), sent to the API and raw hosts.
    pub credential: Option<String>,
    /// `github_token` (`Bearer …`), sent to the API only, for public repositories.
    pub api_token: Option<String>,
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters stay as they are), so a
/// directory named `administration,business` or a file with a space or `#` is fetched exactly.
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes each `/`-separated segment of a path.
pub fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

/// Standard base64 with padding (for `Authorization: Basic`).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `owner` and `repo` of a repository's `url_key` (`github.com/owner/repo`).
pub fn owner_repo(url_key: &str) -> Option<(String, String)> {
    let mut parts = url_key.split('/');
    let (_host, owner, repo) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || owner.is_empty() || repo.is_empty() {
        return None;
    }
    Some((owner.to_owned(), repo.to_owned()))
}

fn header<'r>(response: &'r OutboundResponse, name: &str) -> Option<&'r str> {
    response
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// Why GitHub refused an API call, in words an operator can act on.
pub fn refusal(response: &OutboundResponse, what: &str) -> SyncError {
    let limited = header(response, "x-ratelimit-remaining") == Some("0");
    match response.status {
        // GitHub: 404 for an unknown (or invisible) repository, 422 "No commit found for SHA"
        // for an unknown branch.
        404 | 422 => SyncError::new("repository or branch not found"),
        401 | 403 | 429 if limited || response.status == 429 => {
            let resets = header(response, "x-ratelimit-reset")
                .and_then(|v| v.parse::<i64>().ok())
                .map(|s| Timestamp::from_ms(s.saturating_mul(1000)).to_rfc3339());
            SyncError::new(match resets {
                Some(at) => format!("GitHub rate limit exceeded (resets at {at})"),
                None => "GitHub rate limit exceeded".to_owned(),
            })
        }
        401 | 403 => SyncError::new("authentication failed"),
        status => SyncError::new(format!("GitHub answered {status} to {what}")),
    }
}

fn is_hex_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl GitHub<'_> {
    fn repo_path(&self) -> String {
        format!(
            "{}/repos/{}/{}",
            self.api_url,
            encode_segment(&self.owner),
            encode_segment(&self.repo)
        )
    }

    fn api_request(&self, url: String, accept: &str) -> OutboundRequest {
        let mut headers = vec![
            ("accept".to_owned(), accept.to_owned()),
            ("x-github-api-version".to_owned(), API_VERSION.to_owned()),
            ("user-agent".to_owned(), USER_AGENT.to_owned()),
        ];
        if let Some(auth) = self.credential.as_ref().or(self.api_token.as_ref()) {
            headers.push(("authorization".to_owned(), auth.clone()));
        }
        OutboundRequest {
            method: shared::Method::GET,
            url,
            headers,
            body: Vec::new(),
        }
    }

    async fn send(
        &self,
        request: OutboundRequest,
        what: &str,
    ) -> Result<OutboundResponse, SyncError> {
        self.outbound
            .send(request)
            .await
            .map_err(|e| SyncError::new(format!("{what}: {}", e.message)))
    }
}

impl RepoProvider for GitHub<'_> {
    fn resolve_commit(&self) -> LocalFuture<'_, Result<String, SyncError>> {
        Box::pin(async move {
            let url = format!("{}/commits/{}", self.repo_path(), encode_path(&self.branch));
            let request = self.api_request(url, "application/vnd.github.sha");
            let response = self.send(request, "resolving the branch").await?;
            if response.status != 200 {
                return Err(refusal(&response, "the commit request"));
            }
            let sha = String::from_utf8_lossy(&response.body)
                .trim()
                .to_ascii_lowercase();
            if !is_hex_sha(&sha) {
                return Err(SyncError::new("GitHub answered an unreadable commit sha"));
            }
            Ok(sha)
        })
    }

    fn tree<'a>(&'a self, commit: &'a str) -> LocalFuture<'a, Result<Vec<TreeEntry>, SyncError>> {
        Box::pin(async move {
            let url = format!("{}/git/trees/{commit}?recursive=1", self.repo_path());
            let request = self.api_request(url, "application/vnd.github+json");
            let response = self.send(request, "reading the tree").await?;
            if response.status != 200 {
                return Err(refusal(&response, "the tree request"));
            }
            if response.body.len() > MAX_TREE_BYTES {
                return Err(SyncError::new("repository tree too large"));
            }
            read_tree(&response.body)
        })
    }

    fn raw<'a>(
        &'a self,
        commit: &'a str,
        path: &'a str,
    ) -> LocalFuture<'a, Result<Vec<u8>, SyncError>> {
        Box::pin(async move {
            let url = format!(
                "{}/{}/{}/{commit}/{}",
                self.raw_url,
                encode_segment(&self.owner),
                encode_segment(&self.repo),
                encode_path(path)
            );
            let mut headers = vec![("user-agent".to_owned(), USER_AGENT.to_owned())];
            if let Some(auth) = &self.credential {
                headers.push(("authorization".to_owned(), auth.clone()));
            }
            let request = OutboundRequest {
                method: shared::Method::GET,
                url,
                headers,
                body: Vec::new(),
            };
            let response = self.send(request, "fetching a file").await?;
            match response.status {
                200 => Ok(response.body),
                429 => Err(refusal(&response, "a raw file request")),
                status => Err(SyncError::new(format!(
                    "fetching {path}: GitHub answered {status}"
                ))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded_and_slashes_kept_between_them() {
        assert_eq!(
            encode_path("browsers/firefox.yaml"),
            "browsers/firefox.yaml"
        );
        assert_eq!(
            encode_path("administration,business/odoo.yaml"),
            "administration%2Cbusiness/odoo.yaml"
        );
        assert_eq!(encode_path("a b/c#d?.yml"), "a%20b/c%23d%3F.yml");
        assert_eq!(encode_path("x/%2e%2e/y.yaml"), "x/%252e%252e/y.yaml");
        assert_eq!(encode_segment("feature/x"), "feature%2Fx");
        assert_eq!(encode_path("é.yaml"), "%C3%A9.yaml");
        assert_eq!(encode_path("~a_b-c.yaml"), "~a_b-c.yaml");
    }

    #[test]
    fn trees_are_read_as_github_writes_them() {
        let body = br#"{"sha":"abc","url":"u","tree":[
            {"path":"a","mode":"040000","type":"tree","sha":"1","url":"u"},
            {"path":"a/b.yaml","mode":"100644","type":"blob","sha":"2","size":12,"url":"u"},
            {"path":"m","mode":"160000","type":"commit","sha":"3"}],"truncated":false}"#;
        let tree = read_tree(body).unwrap();
        assert_eq!(tree.len(), 3);
        assert_eq!(tree[1].size, Some(12));
        assert_eq!(tree[2].size, None);
        let truncated = br#"{"sha":"abc","tree":[],"truncated":true}"#;
        assert_eq!(
            read_tree(truncated).unwrap_err().0,
            "repository tree too large"
        );
        assert!(read_tree(b"[]").is_err());
        assert!(read_tree(br#"{"tree":[{"path":"a"}]}"#).is_err());
    }

    #[test]
    fn basic_credentials_are_base64() {
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b""), "");
    }

    #[test]
    fn owner_and_repo_come_from_the_url_key() {
        assert_eq!(
            owner_repo("github.com/joshuaaferguson/streamspace-templates"),
            Some(("joshuaaferguson".into(), "streamspace-templates".into()))
        );
        assert_eq!(owner_repo("github.com/only"), None);
        assert_eq!(owner_repo("github.com/a/b/c"), None);
    }

    fn answer(status: u16, headers: &[(&str, &str)]) -> OutboundResponse {
        OutboundResponse {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: Vec::new(),
        }
    }

    #[test]
    fn refusals_name_the_cause() {
        assert_eq!(
            refusal(&answer(404, &[]), "x").0,
            "repository or branch not found"
        );
        assert_eq!(
            refusal(&answer(422, &[]), "x").0,
            "repository or branch not found"
        );
        assert_eq!(refusal(&answer(401, &[]), "x").0, "authentication failed");
        assert_eq!(
            refusal(&answer(403, &[("X-RateLimit-Remaining", "1")]), "x").0,
            "authentication failed"
        );
        assert_eq!(
            refusal(
                &answer(
                    403,
                    &[
                        ("X-RateLimit-Remaining", "0"),
                        ("X-RateLimit-Reset", "1700000000")
                    ]
                ),
                "x"
            )
            .0,
            "GitHub rate limit exceeded (resets at 2023-11-14T22:13:20.000Z)"
        );
        assert_eq!(
            refusal(&answer(500, &[]), "the tree request").0,
            "GitHub answered 500 to the tree request"
        );
    }
}
