//! Bearer secrets: minted here, shown to their owner once, stored only as a [`TokenHash`].
//!
//! Every token is 256 random bits. Prefixed kinds are `<prefix><43 base64url chars>` (32 bytes,
//! no padding); agent keys are 64 lowercase hex characters (the wire format agents already use);
//! CSRF tokens carry no prefix because they never travel as a bearer credential.
//!
//! Why SHA-256 and not a slow KDF: a slow hash only helps when the input can be guessed (a
//! password). A 256-bit random token cannot be brute-forced from its hash, whatever the hash
//! speed, and the precheck must find the token with one indexed `WHERE token_hash = ?` query —
//! which a salted KDF would make impossible (it would need a scan that runs the KDF per row).

use std::fmt;

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ids::hex;
use crate::store::{Random, StoreError};

/// Random bytes in every new token: 256 bits.
pub const TOKEN_BYTES: usize = 32;

/// Length of the random part of a prefixed token: 32 bytes as base64url without padding.
pub const TOKEN_BODY_LEN: usize = 43;

/// Length of an agent key: 32 bytes as lowercase hex.
pub const AGENT_KEY_LEN: usize = 64;

/// What a bearer secret is for. The prefix makes a leaked token recognisable (secret scanners,
/// logs) and lets the precheck pick the right table before touching the store.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Short-lived access token, `ssa_`.
    Access,
    /// Rotating refresh token, `ssr_`.
    Refresh,
    /// Personal access token, `ssp_`.
    PersonalAccess,
    /// One-time ticket for the streaming connection (30 s, single use), `sst_`.
    Ticket,
    /// Browser login session carried in the HttpOnly cookie, `sss_`.
    Session,
    /// Agent API key: no prefix, 64 lowercase hex characters.
    AgentKey,
    /// Double-submit CSRF token: no prefix, 43 base64url characters.
    Csrf,
}

impl TokenKind {
    /// Every kind, for tests and for code that must consider them all.
    pub const ALL: [TokenKind; 7] = [
        TokenKind::Access,
        TokenKind::Refresh,
        TokenKind::PersonalAccess,
        TokenKind::Ticket,
        TokenKind::Session,
        TokenKind::AgentKey,
        TokenKind::Csrf,
    ];

    /// The prefix a token of this kind starts with; empty for agent keys and CSRF tokens.
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::Access => "ssa_",
            TokenKind::Refresh => "ssr_",
            TokenKind::PersonalAccess => "ssp_",
            TokenKind::Ticket => "sst_",
            TokenKind::Session => "sss_",
            TokenKind::AgentKey | TokenKind::Csrf => "",
        }
    }

    /// A stable lowercase name, for logs and database columns.
    pub fn name(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
            TokenKind::PersonalAccess => "personal_access",
            TokenKind::Ticket => "ticket",
            TokenKind::Session => "session",
            TokenKind::AgentKey => "agent_key",
            TokenKind::Csrf => "csrf",
        }
    }

    /// True when `token` has exactly the shape of a token of this kind.
    pub fn matches(self, token: &str) -> bool {
        match self {
            TokenKind::AgentKey => is_agent_key(token),
            TokenKind::Csrf => is_base64url_body(token),
            _ => token
                .strip_prefix(self.prefix())
                .is_some_and(is_base64url_body),
        }
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A plaintext secret (token, key, backup code). It is shown to its owner once and then dropped;
/// `Debug` never prints it and there is no `Display`, so it cannot slip into a log line by
/// accident. Read it deliberately with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a plaintext secret.
    pub fn new(plaintext: impl Into<String>) -> Self {
        Self(plaintext.into())
    }

    /// The plaintext, for the one response that hands it out (or for hashing).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The plaintext, by value.
    pub fn into_exposed(self) -> String {
        self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(**redacted**)")
    }
}

/// SHA-256 of a token's full text (prefix included), as 64 lowercase hex characters: the only
/// form in which a bearer secret is stored and looked up.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash(String);

impl TokenHash {
    /// Hashes a token as presented (no trimming or case folding: tokens are exact).
    pub fn of(token: &str) -> Self {
        Self(hex(&Sha256::digest(token.as_bytes())))
    }

    /// Parses a stored hash: exactly 64 lowercase hex characters.
    pub fn from_hex(s: &str) -> Option<Self> {
        is_lower_hex_64(s).then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Mints a token of `kind` and its hash. Store the hash; hand the secret out once.
pub fn new_token(random: &dyn Random, kind: TokenKind) -> Result<(Secret, TokenHash), StoreError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    random.fill(&mut bytes)?;
    let text = match kind {
        TokenKind::AgentKey => hex(&bytes),
        _ => {
            let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            let prefix = kind.prefix();
            let mut text = String::with_capacity(prefix.len() + body.len());
            text.push_str(prefix);
            text.push_str(&body);
            text
        }
    };
    let hash = TokenHash::of(&text);
    Ok((Secret(text), hash))
}

/// Mints an agent API key (64 lowercase hex characters) and its hash.
pub fn new_agent_key(random: &dyn Random) -> Result<(Secret, TokenHash), StoreError> {
    new_token(random, TokenKind::AgentKey)
}

/// Classifies a presented credential by prefix and shape, before any store lookup, so that
/// garbage costs no query. Returns `None` for anything malformed — and for CSRF tokens, which have
/// no prefix and are never accepted as a bearer credential (check them with
/// `TokenKind::Csrf.matches`).
pub fn kind_of(token: &str) -> Option<TokenKind> {
    if is_agent_key(token) {
        return Some(TokenKind::AgentKey);
    }
    let (prefix, body) = token.split_at_checked(4)?;
    let kind = match prefix {
        "ssa_" => TokenKind::Access,
        "ssr_" => TokenKind::Refresh,
        "ssp_" => TokenKind::PersonalAccess,
        "sst_" => TokenKind::Ticket,
        "sss_" => TokenKind::Session,
        _ => return None,
    };
    is_base64url_body(body).then_some(kind)
}

/// True for exactly 64 lowercase hex characters (the agent key format; uppercase is refused so
/// that one key has one spelling and one hash).
pub fn is_agent_key(s: &str) -> bool {
    is_lower_hex_64(s)
}

/// Compares two secrets without a data-dependent early exit. Lengths are not hidden (they are
/// public for every format here).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn is_lower_hex_64(s: &str) -> bool {
    s.len() == AGENT_KEY_LEN && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_base64url_body(s: &str) -> bool {
    s.len() == TOKEN_BODY_LEN
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OsRandom;

    /// A deterministic source: fills with a counter, so tests can predict tokens.
    struct Fixed(u8);
    impl Random for Fixed {
        fn fill(&self, buf: &mut [u8]) -> Result<(), StoreError> {
            buf.fill(self.0);
            Ok(())
        }
    }

    struct Broken;
    impl Random for Broken {
        fn fill(&self, _: &mut [u8]) -> Result<(), StoreError> {
            Err(StoreError::new(
                crate::store::StoreKind::Random,
                "no entropy",
            ))
        }
    }

    #[test]
    fn new_tokens_have_their_kinds_shape_and_classify_back() {
        for kind in TokenKind::ALL {
            let (secret, hash) = new_token(&OsRandom, kind).unwrap();
            let text = secret.expose();
            assert!(text.starts_with(kind.prefix()), "{kind}");
            assert!(kind.matches(text), "{kind}: {text}");
            assert_eq!(hash, TokenHash::of(text));
            if kind == TokenKind::Csrf {
                assert_eq!(kind_of(text), None, "CSRF is never a bearer credential");
            } else {
                assert_eq!(kind_of(text), Some(kind), "{text}");
            }
            for other in TokenKind::ALL {
                if other != kind {
                    assert!(!other.matches(text), "{kind} token matched {other}");
                }
            }
        }
    }

    #[test]
    fn new_tokens_are_fresh() {
        let (a, ha) = new_token(&OsRandom, TokenKind::Access).unwrap();
        let (b, hb) = new_token(&OsRandom, TokenKind::Access).unwrap();
        assert_ne!(a.expose(), b.expose());
        assert_ne!(ha, hb);
    }

    #[test]
    fn token_layout_is_prefix_plus_base64url_of_32_bytes() {
        let (secret, _) = new_token(&Fixed(0xff), TokenKind::PersonalAccess).unwrap();
        assert_eq!(secret.expose(), format!("ssp_{}8", "_".repeat(42)));
        assert_eq!(secret.expose().len(), 4 + TOKEN_BODY_LEN);
        let (key, _) = new_agent_key(&Fixed(0xab)).unwrap();
        assert_eq!(key.expose(), "ab".repeat(32));
    }

    #[test]
    fn random_failure_is_an_error_not_a_weak_token() {
        assert!(new_token(&Broken, TokenKind::Access).is_err());
        assert!(new_agent_key(&Broken).is_err());
    }

    #[test]
    fn token_hash_is_sha256_hex_of_the_full_text() {
        // FIPS 180-2 "abc" vector.
        assert_eq!(
            TokenHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            TokenHash::of("").as_str(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(TokenHash::of("ssa_x"), TokenHash::of("ssr_x"));
    }

    #[test]
    fn token_hash_from_hex_round_trips_and_rejects_other_shapes() {
        let h = TokenHash::of("ssa_whatever");
        assert_eq!(TokenHash::from_hex(h.as_str()), Some(h.clone()));
        assert_eq!(h.to_string(), h.as_str());
        assert_eq!(TokenHash::from_hex(&h.as_str().to_uppercase()), None);
        assert_eq!(TokenHash::from_hex(&h.as_str()[1..]), None);
        assert_eq!(TokenHash::from_hex(&format!("{}0", h.as_str())), None);
        assert_eq!(TokenHash::from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn kind_of_rejects_malformed_tokens() {
        let body = "A".repeat(TOKEN_BODY_LEN);
        assert_eq!(kind_of(&format!("ssa_{body}")), Some(TokenKind::Access));
        assert_eq!(kind_of(&format!("ssr_{body}")), Some(TokenKind::Refresh));
        assert_eq!(kind_of(&format!("sst_{body}")), Some(TokenKind::Ticket));
        assert_eq!(kind_of(&format!("sss_{body}")), Some(TokenKind::Session));
        let cases = [
            ("", "empty"),
            ("ssa_", "prefix only"),
            (&format!("ssa_{}", &body[1..]), "body too short"),
            (&format!("ssa_{body}A"), "body too long"),
            (&format!("SSA_{body}"), "prefix is case-sensitive"),
            (&format!("ssx_{body}"), "unknown prefix"),
            (&format!("ssa_{}=", &body[1..]), "padding"),
            (&format!("ssa_{}+", &body[1..]), "standard base64 alphabet"),
            (&format!("ssa_{}é", &body[2..]), "non-ASCII"),
            (&format!(" ssa_{body}"), "leading space"),
            (&body, "CSRF-shaped, no prefix"),
            (&"a".repeat(63), "63 hex"),
            (&"a".repeat(65), "65 hex"),
            (&"A".repeat(64), "uppercase hex"),
            ("é", "shorter than a prefix, multibyte"),
            ("ssé", "split inside a char"),
        ];
        for (token, why) in cases {
            assert_eq!(kind_of(token), None, "{why}: {token:?}");
        }
    }

    #[test]
    fn agent_key_shape() {
        assert!(is_agent_key(&"0123456789abcdef".repeat(4)));
        assert!(!is_agent_key(&"0123456789ABCDEF".repeat(4)));
        assert!(!is_agent_key(&"0123456789abcdeg".repeat(4)));
        assert!(!is_agent_key(""));
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("ssa_supersecret");
        assert_eq!(format!("{s:?}"), "Secret(**redacted**)");
        assert_eq!(format!("{:?}", Some(&s)), "Some(Secret(**redacted**))");
        assert_eq!(s.clone().into_exposed(), "ssa_supersecret");
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"abc", b""));
    }

    proptest::proptest! {
        #[test]
        fn kind_of_never_panics(s in "\\PC{0,80}") {
            let _ = kind_of(&s);
        }

        #[test]
        fn any_base64url_body_with_a_known_prefix_classifies(body in "[A-Za-z0-9_-]{43}") {
            proptest::prop_assert_eq!(kind_of(&format!("ssp_{body}")), Some(TokenKind::PersonalAccess));
        }
    }
}
