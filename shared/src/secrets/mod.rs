//! Credential primitives of the identity layer: minting, hashing and checking secrets. No store
//! access and no policy about lifetimes here — the auth component owns those; this module only
//! makes sure every secret is strong, typed, never logged, and compared and stored safely.
//!
//! - [`token`]: bearer secrets (access, refresh, personal access, ticket, session, agent key, CSRF):
//!   256 random bits, typed by prefix, stored and looked up as SHA-256 ([`TokenHash`]).
//! - [`password`]: argon2id password hashes (PHC strings), the timing-equal [`dummy_verify`] for
//!   unknown users, and the password policy.
//! - [`totp`]: RFC 6238 TOTP for MFA, with the replay guard (a code is never accepted twice), base32
//!   and the `otpauth://` URL.
//! - [`backup`]: single-use MFA backup codes.
//!
//! Threat model, briefly:
//! - A stolen database must not yield working credentials: bearer secrets and backup codes are
//!   stored only as hashes, passwords as argon2id. (TOTP secrets are necessarily recoverable; a
//!   database thief has the second factor but still needs the password.)
//! - Online guessing: tokens are 256 bits; passwords cost a slow hash per attempt and are
//!   rate-limited upstream; TOTP and backup codes are only tried after the password.
//! - Side channels: secrets are compared in constant time; an unknown user costs a full password
//!   verify; malformed credentials are refused by shape before any store lookup.
//! - Leaks through logs: [`Secret`], [`PasswordHash`] and [`TotpSecret`] print as `**redacted**`.

pub mod backup;
pub mod password;
pub mod seal;
pub mod token;
pub mod totp;

pub use backup::{backup_code_hash, new_backup_codes, normalise_backup_code};
pub use password::{
    check_password_policy, dummy_verify, hash_password, needs_rehash, verify_password,
    PasswordError, PasswordHash,
};
pub use token::{
    constant_time_eq, is_agent_key, kind_of, new_agent_key, new_token, Secret, TokenHash, TokenKind,
};
pub use totp::{
    base32_decode, base32_encode, new_totp_secret, otpauth_url, totp_code, verify_totp,
    verify_totp_after, TotpSecret,
};
