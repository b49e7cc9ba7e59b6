//! MFA backup codes: ten single-use codes, shown once when MFA is enabled, for when the
//! authenticator is lost. Format `xxxxx-xxxxx` over an alphabet without look-alikes (no 0/o, 1/l/i).
//!
//! Stored as SHA-256 of the normalised code, like tokens — not argon2 — on purpose:
//! - A code is ~49.5 bits (10 characters from 31), single use, and only tried after the password
//!   has been verified, with login attempts rate-limited: online guessing is hopeless.
//! - Offline, a stolen database would let a GPU search one code's 2^49.5 space in about a day —
//!   but the same database holds the TOTP secret in recoverable form (it must, to verify codes),
//!   so the thief already has the second factor. A slow hash would protect nothing extra.
//! - A fast hash keeps redemption one indexed lookup (`WHERE user_id = ? AND code_hash = ?`),
//!   where argon2 would have to be run against each of the user's unused codes on every attempt.

use crate::secrets::token::{Secret, TokenHash};
use crate::store::{Random, StoreError};

/// Codes issued at once.
pub const BACKUP_CODE_COUNT: usize = 10;
/// Characters in a code (without the dash).
pub const BACKUP_CODE_CHARS: usize = 10;
/// The characters a code is made of: digits 2–9 and lowercase letters except i, l, o.
pub const BACKUP_CODE_ALPHABET: &[u8; 31] = b"23456789abcdefghjkmnpqrstuvwxyz";

/// Random bytes at or above this are redrawn, so that `byte % 31` is uniform (248 = 8 × 31).
const REJECT_FROM: u8 = 248;

/// Ten fresh codes, each with the hash to store. Show the secrets once.
pub fn new_backup_codes(random: &dyn Random) -> Result<Vec<(Secret, TokenHash)>, StoreError> {
    let mut codes = Vec::with_capacity(BACKUP_CODE_COUNT);
    for _ in 0..BACKUP_CODE_COUNT {
        let plain = random_code(random)?;
        let hash = TokenHash::of(&plain);
        let mut shown = String::with_capacity(BACKUP_CODE_CHARS + 1);
        let (left, right) = plain.split_at(BACKUP_CODE_CHARS / 2);
        shown.push_str(left);
        shown.push('-');
        shown.push_str(right);
        codes.push((Secret::new(shown), hash));
    }
    Ok(codes)
}

/// Ten uniformly drawn alphabet characters (rejection sampling, no modulo bias).
fn random_code(random: &dyn Random) -> Result<String, StoreError> {
    let mut code = String::with_capacity(BACKUP_CODE_CHARS);
    // 16 bytes usually suffice (each byte is kept with probability 248/256); refill if not.
    let mut pool = [0u8; 16];
    while code.len() < BACKUP_CODE_CHARS {
        random.fill(&mut pool)?;
        for &b in &pool {
            if code.len() == BACKUP_CODE_CHARS {
                break;
            }
            if b < REJECT_FROM {
                if let Some(&c) = BACKUP_CODE_ALPHABET.get(usize::from(b % 31)) {
                    code.push(char::from(c));
                }
            }
        }
    }
    Ok(code)
}

/// The canonical form of a code as typed: surrounding whitespace and dashes/spaces removed,
/// lowercased; `None` unless exactly ten alphabet characters remain.
pub fn normalise_backup_code(input: &str) -> Option<String> {
    let code: String = input
        .trim()
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let valid =
        code.len() == BACKUP_CODE_CHARS && code.bytes().all(|b| BACKUP_CODE_ALPHABET.contains(&b));
    valid.then_some(code)
}

/// The stored hash for a code as typed, or `None` if it cannot be a backup code (no lookup needed).
pub fn backup_code_hash(input: &str) -> Option<TokenHash> {
    normalise_backup_code(input).map(|c| TokenHash::of(&c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OsRandom;
    use std::cell::Cell;
    use std::collections::HashSet;

    #[test]
    fn ten_distinct_well_formed_codes() {
        let codes = new_backup_codes(&OsRandom).unwrap();
        assert_eq!(codes.len(), BACKUP_CODE_COUNT);
        let mut seen = HashSet::new();
        for (secret, hash) in &codes {
            let shown = secret.expose();
            assert_eq!(shown.len(), 11, "{shown}");
            assert_eq!(&shown[5..6], "-");
            let normal = normalise_backup_code(shown).unwrap();
            assert_eq!(normal, shown.replace('-', ""));
            assert_eq!(&TokenHash::of(&normal), hash);
            assert_eq!(backup_code_hash(shown).as_ref(), Some(hash));
            assert!(seen.insert(normal));
        }
    }

    #[test]
    fn normalisation_accepts_how_people_type() {
        let want = Some("abcde23456".to_owned());
        for typed in [
            "abcde-23456",
            "ABCDE-23456",
            " abcde23456 ",
            "abcde 23456",
            "AbCdE-2345-6",
        ] {
            assert_eq!(normalise_backup_code(typed), want, "{typed:?}");
        }
        for bad in [
            "",
            "abcde-2345",
            "abcde-234567",
            "abcde-2345o",
            "abcde-2345l",
            "abcde-2345i",
            "abcde-23450",
            "abcde-23451",
            "abcde_23456",
            "abcdé-23456",
        ] {
            assert_eq!(normalise_backup_code(bad), None, "{bad:?}");
            assert_eq!(backup_code_hash(bad), None, "{bad:?}");
        }
    }

    /// A source that yields the bytes 0, 1, 2, … so that rejection is exercised deterministically.
    struct Counting(Cell<u8>);
    impl Random for Counting {
        fn fill(&self, buf: &mut [u8]) -> Result<(), StoreError> {
            for b in buf {
                *b = self.0.get();
                self.0.set(self.0.get().wrapping_add(1));
            }
            Ok(())
        }
    }

    #[test]
    fn bytes_above_the_rejection_bound_are_redrawn() {
        // Starting at 240: 240..=247 are kept, 248..=255 are dropped, then 0, 1, ... are kept.
        let codes = new_backup_codes(&Counting(Cell::new(240))).unwrap();
        let first = codes[0].0.expose();
        // 240 % 31 = 23 → 's' … 247 % 31 = 30 → 'z'; then 0 → '2', 1 → '3'.
        assert_eq!(first, "stuvw-xyz23");
    }

    #[test]
    fn alphabet_has_no_look_alikes_or_duplicates() {
        let set: HashSet<u8> = BACKUP_CODE_ALPHABET.iter().copied().collect();
        assert_eq!(set.len(), 31);
        for c in b"01ilo" {
            assert!(!set.contains(c));
        }
    }

    #[test]
    fn characters_are_roughly_uniform() {
        let mut counts = [0usize; 31];
        for _ in 0..200 {
            for (secret, _) in new_backup_codes(&OsRandom).unwrap() {
                for b in secret.expose().bytes().filter(|b| *b != b'-') {
                    let i = BACKUP_CODE_ALPHABET.iter().position(|c| *c == b).unwrap();
                    counts[i] += 1;
                }
            }
        }
        // 20,000 draws, 645 expected per character; a biased modulo would skew the first 8.
        for (i, n) in counts.iter().enumerate() {
            assert!((450..850).contains(n), "char {i}: {n}");
        }
    }
}
