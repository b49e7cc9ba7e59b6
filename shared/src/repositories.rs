//! Catalog repositories, the parts more than one component needs (SPEC-wave2 §2.3, Decision 3):
//! the repository URL guard ([`parse_url`]), git ref rules ([`check_branch`]) and the per-repository
//! GitHub webhook secrets ([`webhook_secrets`]). The routes live in the catalog component.
//!
//! **URL guard** (SSRF): a repository URL is `https://{host}/{owner}/{repo}[.git][/]` and nothing
//! else — `https` only; no userinfo, port, query, fragment, percent-encoding, backslash,
//! whitespace or non-ASCII; the host is one of `repository_hosts` (comma-separated, ASCII
//! case-insensitive exact match, so `github.com.evil.example` is not `github.com`) and never an IP
//! literal; owner `[A-Za-z0-9-]{1,39}`, repo `[A-Za-z0-9._-]{1,100}` (not `.` or `..`); at most
//! 2048 characters. Its key (`url_key`) is `host/owner/repo` lowercased without `.git`.

use crate::secrets::seal::{self, SealKey, PURPOSE_WEBHOOK_SECRET};
use crate::services::Services;
use crate::store::{Database, Value as Sql};
use crate::{ApiError, ApiResult};

/// The longest repository URL.
pub const URL_MAX_CHARS: usize = 2048;
/// The default of `repository_hosts`.
pub const DEFAULT_HOSTS: &str = "github.com";
/// How long a rotated-out webhook secret keeps verifying: 24 h.
pub const WEBHOOK_SECRET_GRACE_MS: i64 = 24 * 3600 * 1000;

/// A repository URL that passed the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoUrl {
    /// Lowercased host, one of `repository_hosts`.
    pub host: String,
    /// As written (GitHub is case-insensitive; the key is lowercased).
    pub owner: String,
    /// As written, without `.git`.
    pub repo: String,
    /// `host/owner/repo`, lowercased.
    pub url_key: String,
}

/// The path GitHub's per-repository webhook posts to (Decision 3).
pub fn webhook_path(repository_id: &str) -> String {
    format!("/api/v1/webhooks/github/{repository_id}")
}

/// `repository_hosts` (comma-separated), default `github.com`.
pub fn allowed_hosts(services: &Services) -> ApiResult<String> {
    Ok(services
        .settings()
        .raw("repository_hosts")?
        .unwrap_or_else(|| DEFAULT_HOSTS.to_owned()))
}

/// Checks a repository URL against the guard; `Err` says why (for a 400 `invalid_url`).
pub fn parse_url(text: &str, hosts: &str) -> Result<RepoUrl, String> {
    let refuse = |why: &str| Err(format!("url {why}"));
    if text.chars().count() > URL_MAX_CHARS {
        return refuse("must be at most 2048 characters");
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return refuse("must be ASCII without spaces or control characters");
    }
    if text.contains('%') {
        return refuse("must not contain percent-encoding");
    }
    if text.contains('\\') {
        return refuse("must not contain backslashes");
    }
    let Some(rest) = text
        .get(..8)
        .filter(|scheme| scheme.eq_ignore_ascii_case("https://"))
        .and_then(|_| text.get(8..))
    else {
        return refuse("must start with https://");
    };
    if rest.contains('?') || rest.contains('#') {
        return refuse("must not have a query or fragment");
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return refuse("must not contain credentials (userinfo)");
    }
    if authority.starts_with('[') || is_ip_like(authority.split(':').next().unwrap_or_default()) {
        return refuse("must not name an IP address");
    }
    if authority.contains(':') {
        return refuse("must not contain a port");
    }
    let host = authority.to_ascii_lowercase();
    if host.is_empty() {
        return refuse("must name a host");
    }
    let allowed = hosts
        .split(',')
        .map(str::trim)
        .any(|h| !h.is_empty() && h.eq_ignore_ascii_case(&host));
    if !allowed {
        return refuse(&format!(
            "host must be one of the allowed repository hosts ({})",
            hosts
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let path = path.strip_prefix('/').unwrap_or_default();
    let path = path.strip_suffix('/').unwrap_or(path);
    let mut segments = path.split('/');
    let (Some(owner), Some(repo), None) = (segments.next(), segments.next(), segments.next())
    else {
        return refuse("path must be /{owner}/{repo}");
    };
    let owner_ok = (1..=39).contains(&owner.len())
        && owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !owner_ok {
        return refuse("owner must be 1-39 letters, digits or '-'");
    }
    let repo = repo.strip_suffix(".git").unwrap_or(repo);
    let repo_ok = (1..=100).contains(&repo.len())
        && repo
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !repo.bytes().all(|b| b == b'.');
    if !repo_ok {
        return refuse("repository name must be 1-100 letters, digits, '.', '_' or '-'");
    }
    Ok(RepoUrl {
        url_key: format!("{host}/{owner}/{repo}").to_ascii_lowercase(),
        host,
        owner: owner.to_owned(),
        repo: repo.to_owned(),
    })
}

/// Whether a host looks like an IPv4 address in any notation (dotted, decimal, octal, hex), so
/// it is refused even when listed: a name's last label is never all digits or `0x…`. (IPv6
/// literals are bracketed, refused by the caller.)
fn is_ip_like(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    let last = host.rsplit('.').next().unwrap_or_default();
    !last.is_empty()
        && (last.bytes().all(|b| b.is_ascii_digit())
            || last.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("0x")))
}

/// Git's ref-name rules for a branch (SPEC-wave2 §2.3); `Err` says which one failed.
pub fn check_branch(branch: &str) -> Result<(), String> {
    let refuse = |why: &str| Err(format!("branch {why}"));
    if branch.is_empty() || branch.len() > 255 {
        return refuse("must be 1-255 characters");
    }
    if branch
        .chars()
        .any(|c| c.is_control() || c == ' ' || "~^:?*[\\".contains(c))
    {
        return refuse("must not contain spaces, control characters or any of ~^:?*[\\");
    }
    if branch.contains("..") || branch.contains("//") || branch.contains("@{") {
        return refuse("must not contain '..', '//' or '@{'");
    }
    if branch == "@" {
        return refuse("must not be '@'");
    }
    if branch.starts_with(['/', '.']) || branch.ends_with(['/', '.']) {
        return refuse("must not start or end with '/' or '.'");
    }
    if branch
        .split('/')
        .any(|part| part.starts_with('.') || part.ends_with(".lock"))
    {
        return refuse("components must not start with '.' or end with '.lock'");
    }
    Ok(())
}

/// The GitHub webhook secrets that verify a delivery to `/webhooks/github/{repository_id}`: the
/// current one, then (for [`WEBHOOK_SECRET_GRACE_MS`] after a rotation) the previous one. Each is
/// the secret's text as GitHub was given it (the HMAC key bytes). Empty when the repository has
/// none (created while no `repository_secret_key` was set). 404 when the repository does not
/// exist; 503 `configuration_error` when it has sealed secrets but the key is unset, malformed or
/// not the one they were sealed with (fail closed, never "no secret").
pub fn webhook_secrets(
    db: &Database,
    services: &Services,
    repository_id: &str,
) -> ApiResult<Vec<Vec<u8>>> {
    let rows = db.execute(
        "SELECT webhook_secret_sealed, previous_webhook_secret_sealed,
                previous_webhook_secret_expires_at
           FROM repositories WHERE id = ?",
        &[Sql::from(repository_id)],
    )?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::not_found("no such repository"))?;
    let now = services.now_ms();
    let mut blobs = Vec::new();
    if let Sql::Blob(current) = row.value("webhook_secret_sealed")? {
        blobs.push(current.clone());
    }
    if let Sql::Blob(previous) = row.value("previous_webhook_secret_sealed")? {
        if row
            .opt_i64("previous_webhook_secret_expires_at")?
            .is_some_and(|until| until > now)
        {
            blobs.push(previous.clone());
        }
    }
    if blobs.is_empty() {
        return Ok(Vec::new());
    }
    let key = SealKey::from_settings(&services.settings())?.ok_or_else(|| {
        ApiError::configuration(format!(
            "{}: not set, but repository {repository_id} has a sealed webhook secret",
            seal::KEY_VARIABLE
        ))
    })?;
    blobs
        .iter()
        .map(|blob| {
            seal::open(&key, PURPOSE_WEBHOOK_SECRET, repository_id, blob).map_err(|e| {
                ApiError::configuration(format!(
                    "{}: webhook secret of repository {repository_id}: {e}",
                    seal::KEY_VARIABLE
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: &str = "github.com";

    #[test]
    fn url_guard_accepts_repository_urls() {
        for (url, key, owner, repo) in [
            (
                "https://github.com/org/repo",
                "github.com/org/repo",
                "org",
                "repo",
            ),
            (
                "https://github.com/Org/Repo.git",
                "github.com/org/repo",
                "Org",
                "Repo",
            ),
            (
                "https://GitHub.com/org/repo/",
                "github.com/org/repo",
                "org",
                "repo",
            ),
            (
                "HTTPS://github.com/org/repo.git/",
                "github.com/org/repo",
                "org",
                "repo",
            ),
            (
                "https://github.com/a-b/x.y_z-1",
                "github.com/a-b/x.y_z-1",
                "a-b",
                "x.y_z-1",
            ),
            (
                "https://github.com/JoshuaAFerguson/streamspace-templates",
                "github.com/joshuaaferguson/streamspace-templates",
                "JoshuaAFerguson",
                "streamspace-templates",
            ),
        ] {
            let got = parse_url(url, HOSTS).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(got.url_key, key, "{url}");
            assert_eq!(
                (got.owner.as_str(), got.repo.as_str()),
                (owner, repo),
                "{url}"
            );
            assert_eq!(got.host, "github.com");
        }
        let multi = " gitlab.example , GHE.corp.example ";
        assert_eq!(
            parse_url("https://ghe.corp.example/o/r", multi)
                .unwrap()
                .url_key,
            "ghe.corp.example/o/r"
        );
    }

    #[test]
    fn url_guard_refuses_ssrf_shapes() {
        let long = format!("https://github.com/o/{}", "r".repeat(2048));
        for (url, why) in [
            ("http://github.com/o/r", "https"),
            ("git://github.com/o/r", "https"),
            ("file:///etc/passwd", "https"),
            ("ssh://git@github.com/o/r", "https"),
            ("git@github.com:o/r.git", "https"),
            ("https://github.com.evil.example/o/r", "allowed"),
            ("https://evil.example/github.com/o/r", "allowed"),
            ("https://github.co/o/r", "allowed"),
            ("https://xgithub.com/o/r", "allowed"),
            ("https://github.com./o/r", "allowed"),
            ("https://user:pass@github.com/o/r", "userinfo"),
            ("https://token@github.com/o/r", "userinfo"),
            ("https://github.com@evil.example/o/r", "userinfo"),
            ("https://github.com:443/o/r", "port"),
            ("https://github.com:22/o/r", "port"),
            ("https://127.0.0.1/o/r", "IP"),
            ("https://169.254.169.254/latest/meta-data", "IP"),
            ("https://2130706433/o/r", "IP"),
            ("https://0x7f000001/o/r", "IP"),
            ("https://0177.0.0.1/o/r", "IP"),
            ("https://[::1]/o/r", "IP"),
            ("https://[fd00::1]:443/o/r", "IP"),
            ("https://[::ffff:127.0.0.1]/o/r", "IP"),
            ("https://github.com/o/r?ref=main", "query"),
            ("https://github.com/o/r#main", "fragment"),
            ("https://github.com/o/%2e%2e", "percent"),
            ("https://github.com/o%2Fr/x", "percent"),
            ("https://github.com/o/r%2f..%2f..", "percent"),
            ("https://github%2ecom/o/r", "percent"),
            ("https://github.com\\@evil.example/o/r", "backslash"),
            ("https://github.com/o/r\\..", "backslash"),
            ("https://github.com/o/..", "repository name"),
            ("https://github.com/o/.", "repository name"),
            ("https://github.com/o/.git", "repository name"),
            ("https://github.com/../r", "owner"),
            ("https://github.com/o", "path"),
            ("https://github.com/", "path"),
            ("https://github.com", "path"),
            ("https://github.com/o/r/tree/main", "path"),
            ("https://github.com//o/r", "path"),
            ("https://github.com/o//r", "path"),
            ("https://github.com/o_x/r", "owner"),
            ("https://github.com/o/r r", "ASCII"),
            ("https://github.com/o/r\n", "ASCII"),
            ("https://github.com/ö/r", "ASCII"),
            ("https:/github.com/o/r", "https"),
            ("https:///o/r", "host"),
            ("", "https"),
        ] {
            let err = parse_url(url, HOSTS).expect_err(url);
            assert!(err.contains(why), "{url}: {err}");
        }
        assert!(parse_url(&long, HOSTS).unwrap_err().contains("2048"));
        let owner40 = format!("https://github.com/{}/r", "o".repeat(40));
        assert!(parse_url(&owner40, HOSTS).unwrap_err().contains("owner"));
        let repo101 = format!("https://github.com/o/{}", "r".repeat(101));
        assert!(parse_url(&repo101, HOSTS).is_err());
        // An IP literal stays refused even when an operator lists it.
        assert!(parse_url("https://10.0.0.1/o/r", "10.0.0.1")
            .unwrap_err()
            .contains("IP"));
        // An empty host list allows nothing.
        assert!(parse_url("https://github.com/o/r", " , ").is_err());
    }

    #[test]
    fn branch_follows_git_ref_rules() {
        for ok in [
            "main",
            "release/1.2",
            "feature/x-y_z",
            "v1.0.0",
            "a@b",
            "ünïcode",
            &"b".repeat(255),
        ] {
            assert!(check_branch(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            &"b".repeat(256),
            "a..b",
            "a//b",
            "a@{1}",
            "@",
            "has space",
            "tab\tx",
            "nul\0x",
            "del\u{7f}x",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[b",
            "a\\b",
            "/main",
            "main/",
            ".main",
            "main.",
            "main.lock",
            "a/.hidden",
            "a.lock/b",
        ] {
            assert!(check_branch(bad).is_err(), "{bad:?}");
        }
    }
}
