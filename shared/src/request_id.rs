//! Request ids (pipeline stage 1). A client's `X-Request-ID` is kept only when it is short and of a
//! safe charset (it reaches logs and audit rows); otherwise a UUIDv4 is minted. The id is echoed in
//! the response and in every error envelope.
//!
//! Ordering: first, so that every later answer — even a 405 or 413 — carries it.

use crate::ids::uuid_v4;
use crate::store::Random;

pub const HEADER: &str = "x-request-id";
pub const MAX_LEN: usize = 128;

/// True when `id` may be logged as given: 1–128 chars of `A-Z a-z 0-9 - _ . :`.
pub fn is_acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The client's id when acceptable, else a fresh UUIDv4 (or a fixed marker if even randomness
/// failed, so the pipeline can still answer).
pub fn resolve(client: Option<&str>, random: &dyn Random) -> String {
    match client {
        Some(id) if is_acceptable(id) => id.to_owned(),
        _ => uuid_v4(random).unwrap_or_else(|_| "unavailable".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OsRandom;

    #[test]
    fn keeps_a_valid_client_id() {
        assert_eq!(resolve(Some("abc-123_x.y:z"), &OsRandom), "abc-123_x.y:z");
    }

    #[test]
    fn replaces_bad_ids() {
        for bad in [
            "",
            "has space",
            "new\nline",
            "<script>",
            &"a".repeat(129),
            "ünïcode",
        ] {
            let id = resolve(Some(bad), &OsRandom);
            assert_ne!(id, bad);
            assert!(crate::ids::is_uuid(&id), "{bad:?} -> {id}");
        }
        assert!(crate::ids::is_uuid(&resolve(None, &OsRandom)));
    }

    #[test]
    fn boundary_length() {
        assert!(is_acceptable(&"a".repeat(128)));
        assert!(!is_acceptable(&"a".repeat(129)));
    }
}
