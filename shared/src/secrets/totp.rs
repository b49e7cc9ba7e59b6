//! Time-based one-time passwords (RFC 6238) as authenticator apps expect them: HMAC-SHA-1,
//! 6 digits, 30-second steps, accepted one step either side of now for clock drift.
//!
//! SHA-1 is here only because RFC 6238's default is what every authenticator app implements;
//! HMAC-SHA-1 is not affected by SHA-1's collision weakness.
//!
//! Replay: [`verify_totp`] returns the matched time step. The caller stores the last step used and
//! passes it to [`verify_totp_after`] next time, so a code is never accepted twice — not even
//! within its own 90-second window.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::store::{Random, StoreError};

/// Length of a new secret: 160 bits, RFC 4226's recommendation for HMAC-SHA-1.
pub const TOTP_SECRET_BYTES: usize = 20;
/// Digits in a code.
pub const TOTP_DIGITS: u32 = 6;
/// Seconds per time step.
pub const TOTP_STEP_SECONDS: i64 = 30;
/// Steps accepted either side of the current one.
pub const TOTP_WINDOW: i64 = 1;

/// A TOTP shared secret. `Debug` is redacted. It is stored (it must be, to verify codes) and shown
/// to the user once, as base32, during setup.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// Parses the base32 form ([`base32_decode`]); `None` if malformed or empty.
    pub fn from_base32(s: &str) -> Option<Self> {
        base32_decode(s).filter(|b| !b.is_empty()).map(Self)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// RFC 4648 base32, uppercase, no padding: the form authenticator apps take.
    pub fn to_base32(&self) -> String {
        base32_encode(&self.0)
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(**redacted**)")
    }
}

/// A fresh 20-byte secret.
pub fn new_totp_secret(random: &dyn Random) -> Result<TotpSecret, StoreError> {
    let mut bytes = vec![0u8; TOTP_SECRET_BYTES];
    random.fill(&mut bytes)?;
    Ok(TotpSecret(bytes))
}

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32, uppercase, without `=` padding.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits: u32 = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(base32_char(buffer >> bits));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(base32_char(buffer << (5 - bits)));
    }
    out
}

fn base32_char(index: u32) -> char {
    // `index & 31` is always a valid position.
    BASE32_ALPHABET
        .get((index & 31) as usize)
        .map_or('A', |&c| char::from(c))
}

/// Decodes RFC 4648 base32 without padding. Letters may be either case; trailing `=` padding is
/// tolerated. Refuses anything else: other characters, impossible lengths (1, 3 or 6 characters
/// past a multiple of 8) and non-zero leftover bits, so each byte string has one spelling.
pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    if matches!(s.len() % 8, 1 | 3 | 6) {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits: u32 = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    (buffer == 0).then_some(out)
}

/// The HOTP value (RFC 4226 §5.3, dynamic truncation) for `counter`, as `digits` decimal digits
/// with leading zeros. `digits` is clamped to 1..=9.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> String {
    let digits = digits.clamp(1, 9);
    let value = hotp_value(secret, counter) % 10u32.pow(digits);
    format!("{value:0width$}", width = digits as usize)
}

/// The 31-bit dynamically truncated HMAC-SHA-1 of the counter.
fn hotp_value(secret: &[u8], counter: u64) -> u32 {
    // HMAC accepts keys of any length, so this never fails; a zero value would simply never match
    // a code that the user's app shows.
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(secret) else {
        return 0;
    };
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest.get(19).copied().unwrap_or(0) & 0x0f);
    let mut word = [0u8; 4];
    if let Some(bytes) = digest.get(offset..offset + 4) {
        word.copy_from_slice(bytes);
    }
    u32::from_be_bytes(word) & 0x7fff_ffff
}

/// The time step containing `unix_seconds` (floor division, so it is monotonic for any time).
pub fn totp_step(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(TOTP_STEP_SECONDS)
}

/// The 6-digit code for the step containing `unix_seconds`. Times before 1970 use step 0.
pub fn totp_code(secret: &[u8], unix_seconds: i64) -> String {
    let counter = u64::try_from(totp_step(unix_seconds)).unwrap_or(0);
    hotp(secret, counter, TOTP_DIGITS)
}

/// Checks `code` against the steps within ±[`TOTP_WINDOW`] of now. Returns the matched step (the
/// latest if several match), or `None`. `code` must be exactly six ASCII digits — no spaces, no
/// signs; the caller may strip a space the user typed in the middle. All candidates are compared,
/// each in constant time.
pub fn verify_totp(secret: &[u8], code: &str, unix_seconds: i64) -> Option<i64> {
    verify_totp_after(secret, code, unix_seconds, None)
}

/// [`verify_totp`] that also refuses every step at or before `last_used_step` (the step stored
/// after the previous successful code), so a code is never accepted twice.
pub fn verify_totp_after(
    secret: &[u8],
    code: &str,
    unix_seconds: i64,
    last_used_step: Option<i64>,
) -> Option<i64> {
    if code.len() != TOTP_DIGITS as usize || !code.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let now = totp_step(unix_seconds);
    let mut matched = None;
    for step in now.saturating_sub(TOTP_WINDOW)..=now.saturating_add(TOTP_WINDOW) {
        let Ok(counter) = u64::try_from(step) else {
            continue;
        };
        let candidate = hotp(secret, counter, TOTP_DIGITS);
        let equal: bool = candidate.as_bytes().ct_eq(code.as_bytes()).into();
        let fresh = last_used_step.is_none_or(|last| step > last);
        if equal && fresh {
            matched = Some(step);
        }
    }
    matched
}

/// The `otpauth://` URL that authenticator apps read from a QR code (Google Authenticator's Key
/// URI format). Issuer and account are percent-encoded; the label is `Issuer:account`.
pub fn otpauth_url(secret_b32: &str, issuer: &str, account: &str) -> String {
    let issuer = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_STEP_SECONDS}",
        account = percent_encode(account),
        secret = percent_encode(secret_b32),
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters (space becomes `%20`, which every
/// authenticator app reads; `+` would not be decoded as a space in the label).
fn percent_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OsRandom;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn base32_rfc4648_vectors() {
        let vectors: [(&str, &str); 7] = [
            ("", ""),
            ("f", "MY======"),
            ("fo", "MZXQ===="),
            ("foo", "MZXW6==="),
            ("foob", "MZXW6YQ="),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI======"),
        ];
        for (plain, padded) in vectors {
            let unpadded = padded.trim_end_matches('=');
            assert_eq!(base32_encode(plain.as_bytes()), unpadded, "{plain}");
            assert_eq!(base32_decode(unpadded).unwrap(), plain.as_bytes());
            assert_eq!(base32_decode(padded).unwrap(), plain.as_bytes());
            assert_eq!(
                base32_decode(&unpadded.to_lowercase()).unwrap(),
                plain.as_bytes()
            );
        }
    }

    #[test]
    fn base32_rejects_malformed_input() {
        for bad in [
            "M",
            "MZX",
            "MZXW6Y",
            "MZXW6YT1",
            "MZXW 6YTB",
            "MZXW6YTB!",
            "MZ",
            "MZXR",
        ] {
            assert_eq!(base32_decode(bad), None, "{bad}");
        }
        // "MZ" leaves non-zero trailing bits ("MY" is the canonical spelling of "f").
        assert_eq!(base32_decode("MY"), Some(b"f".to_vec()));
    }

    #[test]
    fn hotp_rfc4226_appendix_d() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in (0u64..).zip(expected) {
            assert_eq!(hotp(RFC_SECRET, counter, 6), code, "counter {counter}");
        }
    }

    #[test]
    fn totp_rfc6238_appendix_b_sha1() {
        let vectors: [(i64, &str); 6] = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (t, code8) in vectors {
            let counter = u64::try_from(totp_step(t)).unwrap();
            assert_eq!(hotp(RFC_SECRET, counter, 8), code8, "t={t}");
            assert_eq!(totp_code(RFC_SECRET, t), &code8[2..], "t={t}");
            assert_eq!(verify_totp(RFC_SECRET, &code8[2..], t), Some(totp_step(t)));
        }
    }

    #[test]
    fn window_is_one_step_each_side() {
        let t = 1_234_567_890;
        let step = totp_step(t);
        for (offset, accepted) in [(-2, false), (-1, true), (0, true), (1, true), (2, false)] {
            let code = totp_code(RFC_SECRET, t + offset * TOTP_STEP_SECONDS);
            let got = verify_totp(RFC_SECRET, &code, t);
            if accepted {
                assert_eq!(got, Some(step + offset), "offset {offset}");
            } else {
                assert_eq!(got, None, "offset {offset}");
            }
        }
    }

    #[test]
    fn a_code_is_never_accepted_twice() {
        let t = 1_234_567_890;
        let code = totp_code(RFC_SECRET, t);
        let step = verify_totp_after(RFC_SECRET, &code, t, None).unwrap();
        assert_eq!(verify_totp_after(RFC_SECRET, &code, t, Some(step)), None);
        // Still refused 30 s later, when the same code is inside the window as "previous step".
        assert_eq!(
            verify_totp_after(RFC_SECRET, &code, t + 30, Some(step)),
            None
        );
        // The next step's code is fine.
        let next = totp_code(RFC_SECRET, t + 30);
        assert_eq!(
            verify_totp_after(RFC_SECRET, &next, t + 30, Some(step)),
            Some(step + 1)
        );
    }

    #[test]
    fn code_shape_is_exactly_six_ascii_digits() {
        let t = 59;
        let good = totp_code(RFC_SECRET, t);
        assert_eq!(good, "287082");
        for bad in [
            "28708",
            "2870820",
            "28708a",
            " 287082",
            "287082 ",
            "287 082",
            "+87082",
            "-87082",
            "",
            "２８７０８２",
        ] {
            assert_eq!(verify_totp(RFC_SECRET, bad, t), None, "{bad:?}");
        }
    }

    #[test]
    fn times_before_the_epoch_do_not_panic() {
        assert_eq!(totp_step(-1), -1);
        let _ = totp_code(RFC_SECRET, i64::MIN);
        let _ = verify_totp(RFC_SECRET, "000000", i64::MIN);
        let _ = verify_totp(RFC_SECRET, "000000", i64::MAX);
        // Step 0 is reachable from step -1's window.
        assert_eq!(
            verify_totp(RFC_SECRET, &totp_code(RFC_SECRET, 0), -1),
            Some(0)
        );
    }

    #[test]
    fn new_secret_is_20_random_bytes_and_round_trips_base32() {
        let s = new_totp_secret(&OsRandom).unwrap();
        assert_eq!(s.as_bytes().len(), TOTP_SECRET_BYTES);
        let b32 = s.to_base32();
        assert_eq!(b32.len(), 32);
        assert_eq!(TotpSecret::from_base32(&b32), Some(s.clone()));
        assert_ne!(s, new_totp_secret(&OsRandom).unwrap());
        assert_eq!(format!("{s:?}"), "TotpSecret(**redacted**)");
        assert_eq!(TotpSecret::from_base32(""), None);
    }

    #[test]
    fn otpauth_url_format() {
        assert_eq!(
            otpauth_url("JBSWY3DPEHPK3PXP", "StreamSpace", "alice@example.com"),
            "otpauth://totp/StreamSpace:alice%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=StreamSpace&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(
            otpauth_url("AB", "Acme Co: Dev", "bob smith/é&x=1"),
            "otpauth://totp/Acme%20Co%3A%20Dev:bob%20smith%2F%C3%A9%26x%3D1?secret=AB&issuer=Acme%20Co%3A%20Dev&algorithm=SHA1&digits=6&period=30"
        );
    }

    proptest::proptest! {
        #[test]
        fn base32_round_trips(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let encoded = base32_encode(&bytes);
            proptest::prop_assert_eq!(encoded.len(), (bytes.len() * 8).div_ceil(5));
            proptest::prop_assert_eq!(base32_decode(&encoded), Some(bytes));
        }

        #[test]
        fn base32_decode_is_canonical(s in "[A-Za-z2-7=]{0,40}") {
            // Whatever decodes re-encodes to the same text, up to case and padding.
            if let Some(bytes) = base32_decode(&s) {
                proptest::prop_assert_eq!(base32_encode(&bytes), s.trim_end_matches('=').to_uppercase());
            }
        }

        #[test]
        fn verify_accepts_the_current_code(secret in proptest::collection::vec(proptest::num::u8::ANY, 1..40), t in 0i64..4_000_000_000) {
            let code = totp_code(&secret, t);
            proptest::prop_assert_eq!(code.len(), 6);
            proptest::prop_assert!(verify_totp(&secret, &code, t).is_some());
        }
    }
}
