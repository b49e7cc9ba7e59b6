//! Random identifiers and secrets. IDs are UUIDv4 (never sequential); secrets are ≥ 128 random bits.

use crate::store::{Random, StoreError};

/// A random UUIDv4 in its canonical lowercase form.
pub fn uuid_v4(random: &dyn Random) -> Result<String, StoreError> {
    let mut b = [0u8; 16];
    random.fill(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// `n` random bytes, base64url without padding (for nonces and opaque tokens).
pub fn random_base64url(random: &dyn Random, n: usize) -> Result<String, StoreError> {
    use base64::Engine;
    let mut buf = vec![0u8; n];
    random.fill(&mut buf)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

/// True for a canonical lowercase UUID (any version).
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OsRandom;

    #[test]
    fn uuid_v4_shape() {
        let id = uuid_v4(&OsRandom).unwrap();
        assert!(is_uuid(&id), "{id}");
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(id, uuid_v4(&OsRandom).unwrap());
    }

    #[test]
    fn is_uuid_rejects_other_shapes() {
        assert!(!is_uuid("not-a-uuid"));
        assert!(!is_uuid("00000000-0000-4000-8000-00000000000G"));
        assert!(!is_uuid("00000000-0000-4000-8000-00000000000A"));
        assert!(is_uuid("00000000-0000-4000-8000-00000000000a"));
    }
}
