//! Webhook signature verification (SPEC-wave2 §3.1–§3.4): pure functions over the raw body bytes,
//! no store and no HTTP, so the receivers call them before any parse.
//!
//! - [`github_sha256`]: GitHub's `X-Hub-Signature-256: sha256=<hex>` (SHA-1 `X-Hub-Signature` is
//!   never accepted);
//! - [`plain_hmac`]: StreamSpace's `X-Webhook-Signature: <hex>` (any case, `sha256=` tolerated);
//! - [`standard`]: Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`),
//!   symmetric `v1` signatures over `msg_id.timestamp.payload`.
//!
//! Every comparison is `hmac::Mac::verify_slice`: constant time and length-checked (a bare `v1,`,
//! a truncated or an extended signature never verifies; svix PR #1190). Each function takes every
//! configured secret (rotation: old and new both verify) and passes if any one matches.
//!
//! Secrets of zero length are skipped, and an empty list never verifies (fail closed): the caller
//! answers `webhook_not_configured` before calling when nothing is configured.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The byte length of an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;
/// Standard Webhooks key length bounds ("Between 24 bytes (192 bits) and 64 bytes (512 bits)").
const STANDARD_KEY_MIN: usize = 24;
const STANDARD_KEY_MAX: usize = 64;
/// At most this many entries in a `webhook-signature` header (§3.4).
const STANDARD_MAX_SIGNATURES: usize = 20;

/// Header names, as reported in [`VerifyError::Missing`] / [`VerifyError::Malformed`].
pub const GITHUB_SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
pub const PLAIN_SIGNATURE_HEADER: &str = "X-Webhook-Signature";
pub const STANDARD_ID_HEADER: &str = "webhook-id";
pub const STANDARD_TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const STANDARD_SIGNATURE_HEADER: &str = "webhook-signature";

/// Why a delivery did not verify. Nothing in it carries a secret or an expected signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The named header is absent (or empty).
    Missing(&'static str),
    /// The named header does not have the required shape.
    Malformed(&'static str),
    /// Well-formed, but no signature matches any configured secret.
    Mismatch,
    /// Standard Webhooks: the timestamp is outside the tolerance (either way).
    Stale,
    /// A configured secret (or the variable holding it) is unusable: a misconfiguration, for the
    /// log. The text names the problem, never the secret.
    BadSecret(String),
}

impl VerifyError {
    /// A message safe to show to the client: it names the header or the problem, never a secret,
    /// an expected signature or the misconfiguration's details.
    pub fn message(&self) -> String {
        match self {
            Self::Missing(header) => format!("missing {header} header"),
            Self::Malformed(header) => format!("malformed {header} header"),
            Self::Mismatch => "invalid webhook signature".to_owned(),
            Self::Stale => "webhook timestamp outside the allowed tolerance".to_owned(),
            Self::BadSecret(_) => "webhook secret misconfigured".to_owned(),
        }
    }
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for VerifyError {}

/// GitHub: `X-Hub-Signature-256: sha256=<64 hex>` (hex in either case; the prefix exactly
/// `sha256=`), HMAC-SHA256(secret bytes, raw body), tried against each secret.
///
/// Absent or empty → `Missing`; any other shape (a `sha1=` value included) → `Malformed`; no
/// secret matches → `Mismatch`.
pub fn github_sha256(
    secrets: &[Vec<u8>],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), VerifyError> {
    let value = present(header, GITHUB_SIGNATURE_HEADER)?;
    let tag = value
        .strip_prefix("sha256=")
        .and_then(hex_tag)
        .ok_or(VerifyError::Malformed(GITHUB_SIGNATURE_HEADER))?;
    hex_hmac_matches(secrets, body, &tag)
}

/// StreamSpace's plain form: `X-Webhook-Signature: <64 hex>` = hex(HMAC-SHA256(secret, raw body)),
/// hex in any case, a leading `sha256=` (any case) tolerated.
///
/// Absent or empty → `Missing`; not 64 hex digits → `Malformed`; no secret matches → `Mismatch`.
pub fn plain_hmac(
    secrets: &[Vec<u8>],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), VerifyError> {
    let value = present(header, PLAIN_SIGNATURE_HEADER)?;
    let hex = match value.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("sha256=") => value.get(7..).unwrap_or(""),
        _ => value,
    };
    let tag = hex_tag(hex).ok_or(VerifyError::Malformed(PLAIN_SIGNATURE_HEADER))?;
    hex_hmac_matches(secrets, body, &tag)
}

/// A Standard Webhooks symmetric secret: `whsec_` + standard (padded) base64, the prefix optional
/// (the reference libraries accept both), decoding to 24–64 bytes. Anything else is `BadSecret`.
pub fn standard_secret(text: &str) -> Result<Vec<u8>, VerifyError> {
    let text = text.trim();
    let encoded = text.strip_prefix("whsec_").unwrap_or(text);
    if encoded.is_empty() {
        return Err(VerifyError::BadSecret(
            "standard webhook secret is empty".to_owned(),
        ));
    }
    let key = BASE64.decode(encoded).map_err(|_| {
        VerifyError::BadSecret(
            "standard webhook secret is not standard base64 (optionally prefixed with whsec_)"
                .to_owned(),
        )
    })?;
    if !(STANDARD_KEY_MIN..=STANDARD_KEY_MAX).contains(&key.len()) {
        return Err(VerifyError::BadSecret(format!(
            "standard webhook secret decodes to {} bytes; it must be {STANDARD_KEY_MIN} to {STANDARD_KEY_MAX}",
            key.len()
        )));
    }
    Ok(key)
}

/// Standard Webhooks, symmetric (`v1`): HMAC-SHA256(key, `{msg_id}.{timestamp}.{body}`), base64
/// (standard alphabet, padded), compared against every `v1,<base64>` entry of the space-separated
/// `webhook-signature` header, for every key in `secrets` (decoded keys, see [`standard_secret`]).
///
/// Checked in this order:
/// 1. a header absent or empty → `Missing(<its name>)`, in the order id, timestamp, signature;
/// 2. `webhook-id` not `^[A-Za-z0-9_-]{1,128}$`, `webhook-timestamp` not `^[0-9]{1,12}$`, or the
///    signature header with more than 20 entries or an entry that is not `<version>,<value>` →
///    `Malformed(<its name>)`;
/// 3. `|now_s − timestamp| > tolerance_s` → `Stale` (the boundary itself is accepted, as in the
///    reference library);
/// 4. no `v1` entry matches any key → `Mismatch`. Entries of other versions (`v1a,` Ed25519,
///    deferred) are ignored; a `v1` value that is not base64 of 32 bytes simply never matches.
///
/// The timestamp is signed as its decimal integer (leading zeros dropped), as the reference
/// libraries do after parsing it.
pub fn standard(
    secrets: &[Vec<u8>],
    msg_id: Option<&str>,
    timestamp: Option<&str>,
    signature_header: Option<&str>,
    body: &[u8],
    now_s: i64,
    tolerance_s: i64,
) -> Result<(), VerifyError> {
    let msg_id = present(msg_id, STANDARD_ID_HEADER)?;
    let timestamp = present(timestamp, STANDARD_TIMESTAMP_HEADER)?;
    let signature_header = present(signature_header, STANDARD_SIGNATURE_HEADER)?;

    let id_ok = (1..=128).contains(&msg_id.len())
        && msg_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !id_ok {
        return Err(VerifyError::Malformed(STANDARD_ID_HEADER));
    }
    let ts: i64 =
        if (1..=12).contains(&timestamp.len()) && timestamp.bytes().all(|b| b.is_ascii_digit()) {
            timestamp
                .parse()
                .map_err(|_| VerifyError::Malformed(STANDARD_TIMESTAMP_HEADER))?
        } else {
            return Err(VerifyError::Malformed(STANDARD_TIMESTAMP_HEADER));
        };
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    let mut entries = 0usize;
    for entry in signature_header.split_ascii_whitespace() {
        entries += 1;
        if entries > STANDARD_MAX_SIGNATURES {
            return Err(VerifyError::Malformed(STANDARD_SIGNATURE_HEADER));
        }
        let Some((version, value)) = entry.split_once(',') else {
            return Err(VerifyError::Malformed(STANDARD_SIGNATURE_HEADER));
        };
        if version.is_empty() {
            return Err(VerifyError::Malformed(STANDARD_SIGNATURE_HEADER));
        }
        if version != "v1" {
            continue; // `v1a` (Ed25519) and unknown versions: ignored.
        }
        match BASE64.decode(value) {
            Ok(tag) if tag.len() == TAG_LEN => candidates.push(tag),
            _ => {} // Not base64 of a 32-byte MAC: it can never match.
        }
    }

    let age = i128::from(now_s) - i128::from(ts);
    if age.abs() > i128::from(tolerance_s.max(0)) {
        return Err(VerifyError::Stale);
    }

    let ts_text = ts.to_string();
    for key in secrets.iter().filter(|k| !k.is_empty()) {
        let Ok(mut mac) = <HmacSha256 as KeyInit>::new_from_slice(key) else {
            continue;
        };
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(ts_text.as_bytes());
        mac.update(b".");
        mac.update(body);
        // Every candidate is compared (no early exit on the first mismatch of another entry).
        let mut matched = false;
        for tag in &candidates {
            matched |= mac.clone().verify_slice(tag).is_ok();
        }
        if matched {
            return Ok(());
        }
    }
    Err(VerifyError::Mismatch)
}

/// The secrets of `github_webhook_secret` / `webhook_secret`: one secret, or several separated by
/// commas (rotation: both the old and the new one verify during the switch). Each is trimmed of
/// surrounding whitespace and used as its raw UTF-8 bytes; empty pieces are dropped. Whitespace
/// inside a secret is kept (GitHub's documented example secret is "It's a Secret to Everybody"),
/// so only commas separate; a secret cannot contain a comma. Unset or blank → empty (fail closed:
/// `webhook_not_configured`).
pub fn secrets_from_variable(value: Option<&str>) -> Vec<Vec<u8>> {
    value
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.as_bytes().to_vec())
        .collect()
}

/// The decoded keys of one source in `standard_webhook_secrets` (§3.1): a JSON object from source
/// name to its secrets, each `whsec_<base64>` (prefix optional), several for rotation:
///
/// ```json
/// {"billing": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"],
///  "ci": "whsec_…"}
/// ```
///
/// (a single string stands for a one-element list).
///
/// - Unset or blank variable → `Ok(vec![])`: nothing configured (`webhook_not_configured`).
/// - Set, and `source` is not one of its keys → `Ok(vec![])` as well: the caller, which knows the
///   variable is set, answers `unknown_source`.
/// - Not a JSON object, or this source's value not a non-empty string/list of strings, or one of
///   its secrets not decoding to 24–64 bytes ([`standard_secret`]) → `BadSecret`
///   (`webhook_misconfigured`). Other sources' secrets are not checked here.
pub fn standard_secrets_for(
    value: Option<&str>,
    source: &str,
) -> Result<Vec<Vec<u8>>, VerifyError> {
    let text = value.unwrap_or("").trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let parsed: serde_json::Value = serde_json::from_str(text).map_err(|_| {
        VerifyError::BadSecret("standard_webhook_secrets is not valid JSON".to_owned())
    })?;
    let serde_json::Value::Object(map) = parsed else {
        return Err(VerifyError::BadSecret(
            "standard_webhook_secrets must be a JSON object {\"<source>\": [\"whsec_…\", …]}"
                .to_owned(),
        ));
    };
    let Some(entry) = map.get(source) else {
        return Ok(Vec::new());
    };
    let shape_error = || {
        VerifyError::BadSecret(format!(
            "standard_webhook_secrets[{source:?}] must be a non-empty list of whsec_ strings"
        ))
    };
    let texts: Vec<&str> = match entry {
        serde_json::Value::String(s) => vec![s.as_str()],
        serde_json::Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().ok_or_else(shape_error))
            .collect::<Result<_, _>>()?,
        _ => return Err(shape_error()),
    };
    if texts.is_empty() {
        return Err(shape_error());
    }
    texts
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            standard_secret(t).map_err(|e| match e {
                VerifyError::BadSecret(why) => VerifyError::BadSecret(format!(
                    "standard_webhook_secrets[{source:?}][{i}]: {why}"
                )),
                other => other,
            })
        })
        .collect()
}

/// The header's value, or `Missing` when absent or blank. Surrounding whitespace is dropped.
fn present<'a>(value: Option<&'a str>, name: &'static str) -> Result<&'a str, VerifyError> {
    match value.map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(VerifyError::Missing(name)),
    }
}

/// Exactly 64 hex digits (either case) → the 32-byte tag.
fn hex_tag(text: &str) -> Option<[u8; TAG_LEN]> {
    let bytes = text.as_bytes();
    if bytes.len() != TAG_LEN * 2 {
        return None;
    }
    let mut out = [0u8; TAG_LEN];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let hi = hex_digit(*pair.first()?)?;
        let lo = hex_digit(*pair.get(1)?)?;
        *slot = (hi << 4) | lo;
    }
    Some(out)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// HMAC-SHA256(secret, body) against `tag`, for each non-empty secret; any match passes.
fn hex_hmac_matches(secrets: &[Vec<u8>], body: &[u8], tag: &[u8]) -> Result<(), VerifyError> {
    let mut matched = false;
    for key in secrets.iter().filter(|k| !k.is_empty()) {
        let Ok(mut mac) = <HmacSha256 as KeyInit>::new_from_slice(key) else {
            continue;
        };
        mac.update(body);
        matched |= mac.verify_slice(tag).is_ok();
    }
    if matched {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    // ---------------------------------------------------------------- GitHub (X-Hub-Signature-256)

    const GH_DOCS_SECRET: &str = "It's a Secret to Everybody";
    const GH_DOCS_SIG: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    /// Source: docs.github.com, webhooks/using-webhooks/validating-webhook-deliveries.
    #[test]
    fn verify_github_docs_vector() {
        let s = keys(&[GH_DOCS_SECRET]);
        assert_eq!(
            github_sha256(&s, b"Hello, World!", Some(GH_DOCS_SIG)),
            Ok(())
        );
    }

    /// GitHub docs vector with the hex upper-cased: the spec's format is `[0-9a-fA-F]{64}`.
    #[test]
    fn verify_github_accepts_uppercase_hex() {
        let s = keys(&[GH_DOCS_SECRET]);
        let upper = format!(
            "sha256={}",
            GH_DOCS_SIG["sha256=".len()..].to_ascii_uppercase()
        );
        assert_eq!(github_sha256(&s, b"Hello, World!", Some(&upper)), Ok(()));
    }

    /// Source: octokit/webhooks-methods.js test/verify.test.ts (valid signature).
    #[test]
    fn verify_github_octokit_valid() {
        let s = keys(&["mysecret"]);
        let body = b"{\n  \"foo\": \"bar\"\n}\n";
        let sig = "sha256=e3eccac34c43c7dc1cbb905488b1b81347fcc700a7b025697a9d07862256023f";
        assert_eq!(github_sha256(&s, body, Some(sig)), Ok(()));
    }

    /// Source: octokit/webhooks-methods.js test/verify.test.ts — the three "must be false" cases.
    #[test]
    fn verify_github_octokit_must_fail() {
        let body = b"{\n  \"foo\": \"bar\"\n}\n";
        let good = "sha256=e3eccac34c43c7dc1cbb905488b1b81347fcc700a7b025697a9d07862256023f";
        // Signature `sha256=xxxccac3…`.
        let xxx = "sha256=xxxccac34c43c7dc1cbb905488b1b81347fcc700a7b025697a9d07862256023f";
        assert!(github_sha256(&keys(&["mysecret"]), body, Some(xxx)).is_err());
        // Signature `foo`.
        assert_eq!(
            github_sha256(&keys(&["mysecret"]), body, Some("foo")),
            Err(VerifyError::Malformed(GITHUB_SIGNATURE_HEADER))
        );
        // Secret `foo`.
        assert_eq!(
            github_sha256(&keys(&["foo"]), body, Some(good)),
            Err(VerifyError::Mismatch)
        );
    }

    const ISSUE71_UPPER: &str =
        "{\n  \"foo\": \"Foo\\n\\u001B[34mbar: ♥♥♥♥♥♥♥♥\\nthis-is-lost\\u001B[0m\\u001B[2K\"\n}\n";

    /// Source: octokit/webhooks-methods.js issue #71 (GitHub escapes `\u001B` uppercase; verify the
    /// received bytes, never a re-serialisation).
    #[test]
    fn verify_github_octokit_issue71_uppercase_escape() {
        let s = keys(&["development"]);
        let sig = "sha256=9dacf9003316b09be07df56d86a2d0d6872e42a1e6c72c3bad9ff915a7c5603e";
        assert!(ISSUE71_UPPER.contains("\\u001B"));
        assert_eq!(
            github_sha256(&s, ISSUE71_UPPER.as_bytes(), Some(sig)),
            Ok(())
        );
    }

    /// octokit issue #71, negative: the lowercase-`\u001b` bytes have a different MAC (`4d36a36c…`;
    /// full value derived with Python `hmac`, not published), so the uppercase signature fails on
    /// them — a raw-bytes verifier does not normalise.
    #[test]
    fn verify_github_issue71_lowercase_bytes_do_not_match_the_uppercase_signature() {
        let s = keys(&["development"]);
        let lower = ISSUE71_UPPER.replace("u001B", "u001b");
        let upper_sig = "sha256=9dacf9003316b09be07df56d86a2d0d6872e42a1e6c72c3bad9ff915a7c5603e";
        assert_eq!(
            github_sha256(&s, lower.as_bytes(), Some(upper_sig)),
            Err(VerifyError::Mismatch)
        );
        let lower_sig = "sha256=4d36a36c949302c91d2dc62970d7807ceb4c7b75c7fb1c6cb5dfc249e6180560";
        assert_eq!(github_sha256(&s, lower.as_bytes(), Some(lower_sig)), Ok(()));
    }

    /// Source: octokit/webhooks-methods.js — secret `development`, payload `{"foo": "\\u001b"}`
    /// pretty-printed (two backslashes in the bytes).
    #[test]
    fn verify_github_octokit_escaped_backslash() {
        let s = keys(&["development"]);
        let body = b"{\n  \"foo\": \"\\\\u001b\"\n}\n";
        let sig = "sha256=87316067e2011fae39998b18c46a14d83b3e7c3ffdd88fb2ee5afb7d11288e60";
        assert_eq!(github_sha256(&s, body, Some(sig)), Ok(()));
    }

    /// Must-fail: only the legacy SHA-1 header (`X-Hub-Signature`) → the SHA-256 header is missing;
    /// and a `sha1=` value in the SHA-256 header is malformed.
    #[test]
    fn verify_github_sha1_only_is_refused() {
        let s = keys(&[GH_DOCS_SECRET]);
        assert_eq!(
            github_sha256(&s, b"Hello, World!", None),
            Err(VerifyError::Missing(GITHUB_SIGNATURE_HEADER))
        );
        assert_eq!(
            github_sha256(&s, b"Hello, World!", Some("")),
            Err(VerifyError::Missing(GITHUB_SIGNATURE_HEADER))
        );
        let sha1 = "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59"; // a SHA-1-sized value
        assert_eq!(
            github_sha256(&s, b"Hello, World!", Some(sha1)),
            Err(VerifyError::Malformed(GITHUB_SIGNATURE_HEADER))
        );
    }

    /// Must-fail (§3.1): empty, truncated, extended, bit-flipped, wrong prefix, bare hex (GitHub
    /// requires `sha256=`), wrong body; all on the GitHub docs vector.
    #[test]
    fn verify_github_tampered_signatures_fail() {
        let s = keys(&[GH_DOCS_SECRET]);
        let body = b"Hello, World!";
        let hex = &GH_DOCS_SIG["sha256=".len()..];
        let malformed = Err(VerifyError::Malformed(GITHUB_SIGNATURE_HEADER));
        assert_eq!(github_sha256(&s, body, Some("sha256=")), malformed);
        assert_eq!(
            github_sha256(&s, body, Some(&GH_DOCS_SIG[..GH_DOCS_SIG.len() - 2])),
            malformed
        );
        assert_eq!(
            github_sha256(&s, body, Some(&format!("{GH_DOCS_SIG}00"))),
            malformed
        );
        assert_eq!(github_sha256(&s, body, Some(hex)), malformed);
        assert_eq!(
            github_sha256(&s, body, Some(&format!("SHA256={hex}"))),
            malformed
        );
        assert_eq!(
            github_sha256(&s, body, Some(&format!("sha512={hex}"))),
            malformed
        );
        // Bit-flipped: last hex digit 7 → 6.
        let flipped = format!("{}6", &GH_DOCS_SIG[..GH_DOCS_SIG.len() - 1]);
        assert_eq!(
            github_sha256(&s, body, Some(&flipped)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            github_sha256(&s, b"Hello, World?", Some(GH_DOCS_SIG)),
            Err(VerifyError::Mismatch)
        );
    }

    /// Rotation: any configured secret verifies; none configured (or only empty ones) never does.
    #[test]
    fn verify_github_rotation_and_fail_closed() {
        let body = b"Hello, World!";
        let both = keys(&["old-secret", GH_DOCS_SECRET]);
        assert_eq!(github_sha256(&both, body, Some(GH_DOCS_SIG)), Ok(()));
        assert_eq!(
            github_sha256(&keys(&["old-secret"]), body, Some(GH_DOCS_SIG)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            github_sha256(&[], body, Some(GH_DOCS_SIG)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            github_sha256(&[Vec::new()], body, Some(GH_DOCS_SIG)),
            Err(VerifyError::Mismatch)
        );
    }

    // ------------------------------------------------------------ StreamSpace plain (X-Webhook-Signature)

    /// Derived (Python `hmac`, not published): the GitHub docs inputs in the plain form.
    #[test]
    fn verify_plain_derived_docs_inputs() {
        let s = keys(&[GH_DOCS_SECRET]);
        let hex = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(plain_hmac(&s, b"Hello, World!", Some(hex)), Ok(()));
        assert_eq!(
            plain_hmac(&s, b"Hello, World!", Some(&hex.to_ascii_uppercase())),
            Ok(())
        );
        assert_eq!(
            plain_hmac(&s, b"Hello, World!", Some(&format!("sha256={hex}"))),
            Ok(())
        );
        assert_eq!(
            plain_hmac(&s, b"Hello, World!", Some(&format!("SHA256={hex}"))),
            Ok(())
        );
    }

    /// Derived (Python `hmac`, not published): seed 000's own example inputs
    /// (`NewWebhookAuth("your-secret-key-here")`).
    #[test]
    fn verify_plain_derived_seed_example() {
        let s = keys(&["your-secret-key-here"]);
        let body = br#"{"event": "push", "repo": "streamspace"}"#;
        let hex = "daae6566d59d6f43349c236d707e2bde30ab2897b21ea1aabceba638bc5708a0";
        assert_eq!(plain_hmac(&s, body, Some(hex)), Ok(()));
        // The seed's illustrative signature is not a real MAC.
        let illustrative = "a1b2c3d4e5f67890abcdef1234567890abcdef1234567890abcdef1234567890";
        assert_eq!(
            plain_hmac(&s, body, Some(illustrative)),
            Err(VerifyError::Mismatch)
        );
    }

    /// Derived (Python `hmac`, not published): a repository sync body.
    #[test]
    fn verify_plain_derived_repository_sync_body() {
        let s = keys(&[GH_DOCS_SECRET]);
        let body = br#"{"repository_url":"https://github.com/streamspace-dev/streamspace-templates","branch":"main","ref":"refs/heads/main"}"#;
        let hex = "2488abf68ee715ae98b88b34643720f7a8c9328ea464e4246c5e2e6b3e8eb601";
        assert_eq!(plain_hmac(&s, body, Some(hex)), Ok(()));
    }

    /// Must-fail for the plain form: missing, empty, truncated, extended, non-hex, bit-flipped.
    #[test]
    fn verify_plain_must_fail() {
        let s = keys(&[GH_DOCS_SECRET]);
        let body = b"Hello, World!";
        let hex = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let missing = Err(VerifyError::Missing(PLAIN_SIGNATURE_HEADER));
        let malformed = Err(VerifyError::Malformed(PLAIN_SIGNATURE_HEADER));
        assert_eq!(plain_hmac(&s, body, None), missing);
        assert_eq!(plain_hmac(&s, body, Some("  ")), missing);
        assert_eq!(plain_hmac(&s, body, Some("sha256=")), malformed);
        assert_eq!(plain_hmac(&s, body, Some(&hex[..63])), malformed);
        assert_eq!(plain_hmac(&s, body, Some(&format!("{hex}0"))), malformed);
        assert_eq!(
            plain_hmac(&s, body, Some(&hex.replace('7', "g"))),
            malformed
        );
        let flipped = format!("{}6", &hex[..63]);
        assert_eq!(
            plain_hmac(&s, body, Some(&flipped)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(plain_hmac(&[], body, Some(hex)), Err(VerifyError::Mismatch));
    }

    // ---------------------------------------------------------------------------- Standard Webhooks

    const RUST_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const RUST_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const RUST_TS: i64 = 1_649_367_553;
    const RUST_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const RUST_SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    const JS_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const JS_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const JS_TS: i64 = 1_614_265_330;
    const JS_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const JS_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn key(text: &str) -> Vec<Vec<u8>> {
        vec![standard_secret(text).unwrap()]
    }

    /// Verify the JS/Python/Go vector at `now` with tolerance 300.
    fn js(sig: Option<&str>, now: i64) -> Result<(), VerifyError> {
        let ts = JS_TS.to_string();
        standard(
            &key(JS_SECRET),
            Some(JS_ID),
            Some(&ts),
            sig,
            JS_BODY,
            now,
            300,
        )
    }

    /// Source: standard-webhooks libraries/rust/src/lib.rs `test_sign` (24-byte key).
    #[test]
    fn verify_standard_rust_test_sign_vector() {
        assert_eq!(standard_secret(RUST_SECRET).unwrap().len(), 24);
        let ts = RUST_TS.to_string();
        let r = standard(
            &key(RUST_SECRET),
            Some(RUST_ID),
            Some(&ts),
            Some(RUST_SIG),
            RUST_BODY,
            RUST_TS,
            300,
        );
        assert_eq!(r, Ok(()));
    }

    /// Source: standard-webhooks JS `webhook.test.ts`, Python `test_webhooks.py`, Go
    /// `webhook_test.go` (identical vector).
    #[test]
    fn verify_standard_js_python_go_vector() {
        assert_eq!(js(Some(JS_SIG), JS_TS), Ok(()));
    }

    /// Source: JS/Python/Go suites — the same secret without the `whsec_` prefix also works.
    #[test]
    fn verify_standard_secret_without_prefix() {
        let bare = standard_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(bare, standard_secret(JS_SECRET).unwrap());
        let ts = JS_TS.to_string();
        let r = standard(
            &[bare],
            Some(JS_ID),
            Some(&ts),
            Some(JS_SIG),
            JS_BODY,
            JS_TS,
            300,
        );
        assert_eq!(r, Ok(()));
    }

    /// Derived (Python `hmac`, not published): the Standard Webhooks spec's example message signed
    /// with the JS suite's secret.
    #[test]
    fn verify_standard_derived_spec_example_message() {
        let body = br#"{"type":"contact.created","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":"1f81eb52-5198-4599-803e-771906343485"}}"#;
        let sig = "v1,ARw42xaAApl/nxRo+iPGYwSaMQaOwMo2eyH5JBRA+bQ=";
        let r = standard(
            &key(JS_SECRET),
            Some("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"),
            Some("1674087231"),
            Some(sig),
            body,
            1_674_087_231,
            300,
        );
        assert_eq!(r, Ok(()));
    }

    /// Source: Rust `test_no_verify` — an unrelated signature fails (on both vectors' inputs).
    #[test]
    fn verify_standard_rust_test_no_verify() {
        let bad = "v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=";
        assert_eq!(js(Some(bad), JS_TS), Err(VerifyError::Mismatch));
        let ts = RUST_TS.to_string();
        let r = standard(
            &key(RUST_SECRET),
            Some(RUST_ID),
            Some(&ts),
            Some(bad),
            RUST_BODY,
            RUST_TS,
            300,
        );
        assert_eq!(r, Err(VerifyError::Mismatch));
    }

    /// Source: Python suite — the last character changed (`…1OE=` → `…1OA=`) fails.
    #[test]
    fn verify_standard_python_last_char_changed() {
        let bad = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=";
        assert_eq!(js(Some(bad), JS_TS), Err(VerifyError::Mismatch));
    }

    /// Source: JS/Python/Go suites — `v1,dawfeoifkpqwoekfpqoekf` (not a MAC) fails.
    #[test]
    fn verify_standard_garbage_signature() {
        assert_eq!(
            js(Some("v1,dawfeoifkpqwoekfpqoekf"), JS_TS),
            Err(VerifyError::Mismatch)
        );
    }

    /// Source: Rust `test_verify_partial_signature` (svix PR #1190): a bare `v1,` and the signature
    /// cut to its first 8 characters fail — the comparison is length-checked.
    #[test]
    fn verify_standard_partial_signatures_fail() {
        assert_eq!(js(Some("v1,"), JS_TS), Err(VerifyError::Mismatch));
        let b64 = &JS_SIG["v1,".len()..];
        assert_eq!(
            js(Some(&format!("v1,{}", &b64[..8])), JS_TS),
            Err(VerifyError::Mismatch)
        );
        // Also truncated by one byte of MAC, and extended.
        let mut tag = BASE64.decode(b64).unwrap();
        tag.pop();
        assert_eq!(
            js(Some(&format!("v1,{}", BASE64.encode(&tag))), JS_TS),
            Err(VerifyError::Mismatch)
        );
        let mut long = BASE64.decode(b64).unwrap();
        long.push(0);
        assert_eq!(
            js(Some(&format!("v1,{}", BASE64.encode(&long))), JS_TS),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            js(Some(&format!("{JS_SIG}AAAA")), JS_TS),
            Err(VerifyError::Mismatch)
        );
    }

    /// §3.1 must-fail: a bit-flipped MAC, and the signature under another version (`v2`, `v1a`).
    #[test]
    fn verify_standard_bit_flipped_and_wrong_version() {
        let mut tag = BASE64.decode(&JS_SIG["v1,".len()..]).unwrap();
        tag[0] ^= 1;
        assert_eq!(
            js(Some(&format!("v1,{}", BASE64.encode(&tag))), JS_TS),
            Err(VerifyError::Mismatch)
        );
        let b64 = &JS_SIG["v1,".len()..];
        assert_eq!(
            js(Some(&format!("v2,{b64}")), JS_TS),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            js(Some(&format!("v1a,{b64}")), JS_TS),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            js(Some(&format!("V1,{b64}")), JS_TS),
            Err(VerifyError::Mismatch)
        );
        // Duplicate valid entries still verify; an ignored `v1a` beside a valid one is fine.
        assert_eq!(js(Some(&format!("{JS_SIG} {JS_SIG}")), JS_TS), Ok(()));
        assert_eq!(js(Some(&format!("v1a,{b64} {JS_SIG}")), JS_TS), Ok(()));
    }

    /// Source: all suites — timestamps `now ± 301` fail with tolerance 300; ±300 is accepted
    /// (Rust reference: rejects `now - ts > 300` and `ts > now + 300`).
    #[test]
    fn verify_standard_timestamp_tolerance_both_ways() {
        assert_eq!(js(Some(JS_SIG), JS_TS + 301), Err(VerifyError::Stale));
        assert_eq!(js(Some(JS_SIG), JS_TS - 301), Err(VerifyError::Stale));
        assert_eq!(js(Some(JS_SIG), JS_TS + 300), Ok(()));
        assert_eq!(js(Some(JS_SIG), JS_TS - 300), Ok(()));
        // Extreme clocks do not overflow.
        assert_eq!(js(Some(JS_SIG), i64::MIN), Err(VerifyError::Stale));
        assert_eq!(js(Some(JS_SIG), i64::MAX), Err(VerifyError::Stale));
    }

    /// Source: all suites — removing any one of the three headers fails, naming it.
    #[test]
    fn verify_standard_missing_headers() {
        let s = key(JS_SECRET);
        let ts = JS_TS.to_string();
        let run = |id: Option<&str>, t: Option<&str>, sig: Option<&str>| {
            standard(&s, id, t, sig, JS_BODY, JS_TS, 300)
        };
        assert_eq!(
            run(None, Some(&ts), Some(JS_SIG)),
            Err(VerifyError::Missing(STANDARD_ID_HEADER))
        );
        assert_eq!(
            run(Some(JS_ID), None, Some(JS_SIG)),
            Err(VerifyError::Missing(STANDARD_TIMESTAMP_HEADER))
        );
        assert_eq!(
            run(Some(JS_ID), Some(&ts), None),
            Err(VerifyError::Missing(STANDARD_SIGNATURE_HEADER))
        );
        assert_eq!(
            run(Some(JS_ID), Some(&ts), Some("")),
            Err(VerifyError::Missing(STANDARD_SIGNATURE_HEADER))
        );
    }

    /// Source: all suites — a signature header `hello` fails (here: malformed, no `version,`).
    #[test]
    fn verify_standard_hello_fails() {
        assert_eq!(
            js(Some("hello"), JS_TS),
            Err(VerifyError::Malformed(STANDARD_SIGNATURE_HEADER))
        );
    }

    /// Source: Python suite (JS/Go use `v1,Ceo5qEr0…` as junk) — several signatures: the list with
    /// the valid one verifies, the same list without it fails.
    #[test]
    fn verify_standard_multi_signature() {
        let junk = [
            "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ=",
            "v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q=",
            "v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE=",
        ];
        let with = format!("{} {} {JS_SIG} {}", junk[0], junk[1], junk[2]);
        assert_eq!(js(Some(&with), JS_TS), Ok(()));
        let without = junk.join(" ");
        assert_eq!(js(Some(&without), JS_TS), Err(VerifyError::Mismatch));
        // JS/Go junk entries.
        let js_junk = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
        assert_eq!(
            js(Some(&format!("{js_junk} {JS_SIG} {js_junk}")), JS_TS),
            Ok(())
        );
        assert_eq!(
            js(Some(&format!("{js_junk} {js_junk}")), JS_TS),
            Err(VerifyError::Mismatch)
        );
    }

    /// §3.4 header shapes: id, timestamp and signature-list limits → `Malformed`.
    #[test]
    fn verify_standard_malformed_headers() {
        let s = key(JS_SECRET);
        let ts = JS_TS.to_string();
        let run = |id: &str, t: &str, sig: &str| {
            standard(&s, Some(id), Some(t), Some(sig), JS_BODY, JS_TS, 300)
        };
        let bad_id = Err(VerifyError::Malformed(STANDARD_ID_HEADER));
        assert_eq!(run("msg.1", &ts, JS_SIG), bad_id);
        assert_eq!(run(&"a".repeat(129), &ts, JS_SIG), bad_id);
        let bad_ts = Err(VerifyError::Malformed(STANDARD_TIMESTAMP_HEADER));
        assert_eq!(run(JS_ID, "-1614265330", JS_SIG), bad_ts);
        assert_eq!(run(JS_ID, "1614265330.5", JS_SIG), bad_ts);
        assert_eq!(run(JS_ID, "1234567890123", JS_SIG), bad_ts);
        let bad_sig = Err(VerifyError::Malformed(STANDARD_SIGNATURE_HEADER));
        let twenty_one = vec![JS_SIG; 21].join(" ");
        assert_eq!(run(JS_ID, &ts, &twenty_one), bad_sig);
        assert_eq!(run(JS_ID, &ts, &format!("{JS_SIG} ,abc")), bad_sig);
        let twenty = vec![JS_SIG; 20].join(" ");
        assert_eq!(run(JS_ID, &ts, &twenty), Ok(()));
        // Leading zeros: signed as the integer, as the reference libraries do.
        assert_eq!(run(JS_ID, &format!("00{ts}"), JS_SIG), Ok(()));
    }

    /// Rotation for Standard Webhooks: any configured key verifies; none never does.
    #[test]
    fn verify_standard_rotation_and_fail_closed() {
        let ts = JS_TS.to_string();
        let both = vec![
            standard_secret(RUST_SECRET).unwrap(),
            standard_secret(JS_SECRET).unwrap(),
        ];
        assert_eq!(
            standard(
                &both,
                Some(JS_ID),
                Some(&ts),
                Some(JS_SIG),
                JS_BODY,
                JS_TS,
                300
            ),
            Ok(())
        );
        assert_eq!(
            standard(
                &key(RUST_SECRET),
                Some(JS_ID),
                Some(&ts),
                Some(JS_SIG),
                JS_BODY,
                JS_TS,
                300
            ),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            standard(
                &[],
                Some(JS_ID),
                Some(&ts),
                Some(JS_SIG),
                JS_BODY,
                JS_TS,
                300
            ),
            Err(VerifyError::Mismatch)
        );
    }

    /// §3.4: keys must decode (standard base64, `whsec_` optional) to 24–64 bytes.
    #[test]
    fn verify_standard_secret_bounds() {
        let b64 = |n: usize| format!("whsec_{}", BASE64.encode(vec![7u8; n]));
        assert!(matches!(
            standard_secret(&b64(23)),
            Err(VerifyError::BadSecret(_))
        ));
        assert_eq!(standard_secret(&b64(24)).unwrap().len(), 24);
        assert_eq!(standard_secret(&b64(64)).unwrap().len(), 64);
        assert!(matches!(
            standard_secret(&b64(65)),
            Err(VerifyError::BadSecret(_))
        ));
        assert!(matches!(
            standard_secret("whsec_"),
            Err(VerifyError::BadSecret(_))
        ));
        assert!(matches!(
            standard_secret(""),
            Err(VerifyError::BadSecret(_))
        ));
        assert!(matches!(
            standard_secret("whsec_not base64!!"),
            Err(VerifyError::BadSecret(_))
        ));
        // URL-safe alphabet is not the standard one.
        assert!(matches!(
            standard_secret("whsec_C2FVsBQIhrscChlQIMV-b5sSYspob7oD"),
            Err(VerifyError::BadSecret(_))
        ));
    }

    // ------------------------------------------------------------------------ variables and messages

    #[test]
    fn verify_secrets_from_variable_splits_on_commas_only() {
        assert!(secrets_from_variable(None).is_empty());
        assert!(secrets_from_variable(Some(" , ,")).is_empty());
        assert_eq!(
            secrets_from_variable(Some("It's a Secret to Everybody, new-one ,\nthird\n")),
            keys(&["It's a Secret to Everybody", "new-one", "third"])
        );
    }

    #[test]
    fn verify_standard_secrets_for_format() {
        let var = format!(r#"{{"billing":["{JS_SECRET}","{RUST_SECRET}"],"ci":"{RUST_SECRET}"}}"#);
        let billing = standard_secrets_for(Some(&var), "billing").unwrap();
        assert_eq!(billing.len(), 2);
        assert_eq!(billing[0], standard_secret(JS_SECRET).unwrap());
        assert_eq!(standard_secrets_for(Some(&var), "ci").unwrap().len(), 1);
        // Unknown source, and nothing configured: empty (the caller tells them apart).
        assert_eq!(standard_secrets_for(Some(&var), "other"), Ok(Vec::new()));
        assert_eq!(standard_secrets_for(None, "billing"), Ok(Vec::new()));
        assert_eq!(standard_secrets_for(Some("  "), "billing"), Ok(Vec::new()));
        // Misconfigurations.
        for bad in [
            "not json",
            r#"["whsec_x"]"#,
            r#"{"billing":[]}"#,
            r#"{"billing":[1]}"#,
            r#"{"billing":{"k":"v"}}"#,
            r#"{"billing":["whsec_dG9vc2hvcnQ="]}"#,
        ] {
            assert!(
                matches!(
                    standard_secrets_for(Some(bad), "billing"),
                    Err(VerifyError::BadSecret(_))
                ),
                "{bad}"
            );
        }
        // A bad secret of another source does not break this one.
        let mixed = format!(r#"{{"billing":["{JS_SECRET}"],"ci":["whsec_short"]}}"#);
        assert_eq!(
            standard_secrets_for(Some(&mixed), "billing").unwrap().len(),
            1
        );
    }

    /// The client-facing message never carries the secret, nor the misconfiguration's details.
    #[test]
    fn verify_error_messages_never_echo_secrets() {
        let secret_text = "whsec_dG9vc2hvcnQ=";
        let err =
            standard_secrets_for(Some(&format!(r#"{{"s":["{secret_text}"]}}"#)), "s").unwrap_err();
        let VerifyError::BadSecret(detail) = &err else {
            panic!("{err:?}")
        };
        assert!(!detail.contains("dG9vc2hvcnQ"), "{detail}");
        assert!(!err.message().contains("dG9vc2hvcnQ"));
        assert_eq!(err.message(), "webhook secret misconfigured");
        assert_eq!(
            VerifyError::Missing(GITHUB_SIGNATURE_HEADER).message(),
            "missing X-Hub-Signature-256 header"
        );
        assert_eq!(VerifyError::Mismatch.message(), "invalid webhook signature");
        assert_eq!(VerifyError::Stale.to_string(), VerifyError::Stale.message());
    }
}
