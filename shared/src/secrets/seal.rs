//! Secrets sealed at rest: XChaCha20-Poly1305 (RustCrypto `chacha20poly1305`) under the key in
//! the secret variable `repository_secret_key`.
//!
//! - **Key format**: 32 bytes, written as 64 hex digits or as base64 (standard or URL-safe alphabet,
//!   padded or not). Anything else is a configuration error (503 `configuration_error`, and
//!   `GET /health` names the variable); unset or empty means "no key" ([`SealKey::from_settings`]
//!   answers `None`) and callers fail closed. Generate one with `openssl rand -hex 32`.
//! - **Blob**: `version (1 byte, 0x01) || nonce (24 random bytes from Random) || ciphertext || tag
//!   (16 bytes)`.
//! - **Associated data** binds a blob to its row and purpose, so a sealed value copied into another
//!   row or column does not open: `b"streamspace-seal-v1\0" || purpose || b"\0" || row_id`
//!   ([`associated_data`]). The purposes in use are [`PURPOSE_AUTH_SECRET`] (column
//!   `repositories.auth_secret_sealed`, row id = the repository id) and [`PURPOSE_WEBHOOK_SECRET`]
//!   (both `repositories.webhook_secret_sealed` and `previous_webhook_secret_sealed`: rotation moves
//!   the current blob to the previous column of the same row unchanged).
//!
//! Opening: `open(&key, PURPOSE_AUTH_SECRET, repository_id, blob)` gives the plaintext bytes.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::config::{ConfigError, Settings};
use crate::store::{Random, StoreError};
use crate::{ApiError, ApiResult};

/// The variable holding the key.
pub const KEY_VARIABLE: &str = "repository_secret_key";
/// The first byte of every blob of this format.
pub const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const AAD_PREFIX: &[u8] = b"streamspace-seal-v1\0";

/// A repository's git credential (`repositories.auth_secret_sealed`).
pub const PURPOSE_AUTH_SECRET: &str = "repositories.auth_secret";
/// A repository's GitHub webhook secret (`repositories.webhook_secret_sealed` and
/// `previous_webhook_secret_sealed`).
pub const PURPOSE_WEBHOOK_SECRET: &str = "repositories.webhook_secret";

/// A 256-bit sealing key. Prints redacted.
#[derive(Clone)]
pub struct SealKey([u8; 32]);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(**redacted**)")
    }
}

/// Why a blob did not open. Never carries plaintext or key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Not a blob of this format (too short, unknown version).
    Malformed,
    /// Authentication failed: another key, another row or purpose, or tampered bytes.
    Rejected,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OpenError::Malformed => "sealed value is malformed",
            OpenError::Rejected => {
                "sealed value did not open (another key, another row, or tampered)"
            }
        })
    }
}

impl std::error::Error for OpenError {}

/// Parses a key: 64 hex digits, or base64 (standard or URL-safe, padded or not) of 32 bytes.
/// The error never echoes the value.
pub fn parse_key(text: &str) -> Result<SealKey, String> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex_decode(text)
    } else {
        [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
    };
    bytes
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .map(SealKey)
        .ok_or_else(|| "must be 32 bytes as 64 hex digits or base64".to_owned())
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    let nibble = |b: u8| (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    digits
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some(nibble(*hi)? << 4 | nibble(*lo)?),
            _ => None,
        })
        .collect()
}

impl SealKey {
    /// The key from `repository_secret_key`: `None` when unset or empty; a malformed value is a
    /// configuration error (503 `configuration_error`).
    pub fn from_settings(settings: &Settings<'_>) -> Result<Option<SealKey>, StoreError> {
        match settings.raw(KEY_VARIABLE)? {
            None => Ok(None),
            Some(text) => parse_key(&text).map(Some).map_err(|reason| {
                ConfigError {
                    variable: KEY_VARIABLE,
                    reason,
                }
                .into()
            }),
        }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }
}

/// The associated data binding a blob to `purpose` and `row_id`.
pub fn associated_data(purpose: &str, row_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_PREFIX.len() + purpose.len() + 1 + row_id.len());
    aad.extend_from_slice(AAD_PREFIX);
    aad.extend_from_slice(purpose.as_bytes());
    aad.push(0);
    aad.extend_from_slice(row_id.as_bytes());
    aad
}

/// Seals `plaintext` for the column `purpose` of row `row_id`, with a fresh random nonce.
pub fn seal(
    key: &SealKey,
    random: &dyn Random,
    purpose: &str,
    row_id: &str,
    plaintext: &[u8],
) -> ApiResult<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    random.fill(&mut nonce)?;
    let aad = associated_data(purpose, row_id);
    let sealed = key
        .cipher()
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| ApiError::internal("seal: plaintext too long"))?;
    let mut blob = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
    blob.push(VERSION);
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&sealed);
    Ok(blob)
}

/// Opens a blob sealed by [`seal`] for the same `purpose` and `row_id` under the same key.
pub fn open(key: &SealKey, purpose: &str, row_id: &str, blob: &[u8]) -> Result<Vec<u8>, OpenError> {
    let (version, rest) = blob.split_first().ok_or(OpenError::Malformed)?;
    if *version != VERSION || rest.len() < NONCE_LEN + TAG_LEN {
        return Err(OpenError::Malformed);
    }
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let nonce = <[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| OpenError::Malformed)?;
    let aad = associated_data(purpose, row_id);
    key.cipher()
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: sealed,
                aad: &aad,
            },
        )
        .map_err(|_| OpenError::Rejected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A deterministic Random for tests: a counter.
    struct Counter(Cell<u8>);

    impl Random for Counter {
        fn fill(&self, buf: &mut [u8]) -> Result<(), StoreError> {
            for b in buf {
                let n = self.0.get().wrapping_add(1);
                self.0.set(n);
                *b = n;
            }
            Ok(())
        }
    }

    const HEX_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn key() -> SealKey {
        parse_key(HEX_KEY).unwrap()
    }

    #[test]
    fn round_trip() {
        let random = Counter(Cell::new(0));
        let blob = seal(&key(), &random, PURPOSE_AUTH_SECRET, "repo-1", b"ghp_token").unwrap();
        assert_eq!(blob[0], VERSION);
        assert_eq!(blob.len(), 1 + NONCE_LEN + b"ghp_token".len() + TAG_LEN);
        assert!(
            !blob.windows(9).any(|w| w == b"ghp_token"),
            "plaintext visible"
        );
        let opened = open(&key(), PURPOSE_AUTH_SECRET, "repo-1", &blob).unwrap();
        assert_eq!(opened, b"ghp_token");
        // A fresh nonce each time: the same plaintext seals differently.
        let again = seal(&key(), &random, PURPOSE_AUTH_SECRET, "repo-1", b"ghp_token").unwrap();
        assert_ne!(blob, again);
        // The empty plaintext works too.
        let empty = seal(&key(), &random, PURPOSE_AUTH_SECRET, "repo-1", b"").unwrap();
        assert_eq!(
            open(&key(), PURPOSE_AUTH_SECRET, "repo-1", &empty).unwrap(),
            b""
        );
    }

    #[test]
    fn tampered_blob_is_rejected() {
        let random = Counter(Cell::new(7));
        let blob = seal(&key(), &random, PURPOSE_AUTH_SECRET, "repo-1", b"secret").unwrap();
        for i in 1..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                open(&key(), PURPOSE_AUTH_SECRET, "repo-1", &bad),
                Err(OpenError::Rejected),
                "byte {i}"
            );
        }
        let mut bad = blob.clone();
        bad[0] = 2;
        assert_eq!(
            open(&key(), PURPOSE_AUTH_SECRET, "repo-1", &bad),
            Err(OpenError::Malformed)
        );
        assert_eq!(
            open(
                &key(),
                PURPOSE_AUTH_SECRET,
                "repo-1",
                &blob[..blob.len() - 1]
            ),
            Err(OpenError::Rejected)
        );
        assert_eq!(
            open(&key(), PURPOSE_AUTH_SECRET, "repo-1", &blob[..20]),
            Err(OpenError::Malformed)
        );
        assert_eq!(
            open(&key(), PURPOSE_AUTH_SECRET, "repo-1", &[]),
            Err(OpenError::Malformed)
        );
    }

    #[test]
    fn sealed_secret_moved_to_another_row_or_column_does_not_open() {
        let random = Counter(Cell::new(0));
        let blob = seal(&key(), &random, PURPOSE_AUTH_SECRET, "repo-1", b"secret").unwrap();
        assert_eq!(
            open(&key(), PURPOSE_AUTH_SECRET, "repo-2", &blob),
            Err(OpenError::Rejected)
        );
        assert_eq!(
            open(&key(), PURPOSE_WEBHOOK_SECRET, "repo-1", &blob),
            Err(OpenError::Rejected)
        );
        // No ambiguity between purpose and row id at the separator.
        assert_ne!(associated_data("ab", "c"), associated_data("a", "bc"));
    }

    #[test]
    fn wrong_key_is_rejected() {
        let random = Counter(Cell::new(0));
        let blob = seal(&key(), &random, PURPOSE_AUTH_SECRET, "repo-1", b"secret").unwrap();
        let other = parse_key(&"ab".repeat(32)).unwrap();
        assert_eq!(
            open(&other, PURPOSE_AUTH_SECRET, "repo-1", &blob),
            Err(OpenError::Rejected)
        );
    }

    #[test]
    fn key_formats() {
        let raw: Vec<u8> = (0u8..32).collect();
        for text in [
            HEX_KEY.to_owned(),
            HEX_KEY.to_ascii_uppercase(),
            STANDARD.encode(&raw),
            STANDARD_NO_PAD.encode(&raw),
            URL_SAFE.encode(&raw),
            format!("  {HEX_KEY}\n"),
        ] {
            let key = parse_key(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(key.0.as_slice(), raw.as_slice(), "{text}");
        }
        for bad in [
            "",
            "short",
            &HEX_KEY[..62],
            &format!("{HEX_KEY}00"),
            &STANDARD.encode([0u8; 31]),
            &STANDARD.encode([0u8; 33]),
            &"zz".repeat(32),
        ] {
            let err = parse_key(bad).unwrap_err();
            assert!(!err.contains(bad) || bad.is_empty(), "echoed: {err}");
        }
        assert_eq!(format!("{:?}", key()), "SealKey(**redacted**)");
    }
}
