//! Email addresses (the practical dot-atom subset of RFC 5321/5322).

use super::error::{bad_char, FieldKind, ValidationError};
use super::string_newtype;

/// An email address `local@domain`, ≤ 254 characters.
///
/// The local part is 1–64 characters of letters, digits and ``!#$%&'*+/=?^_`{|}~-``, with `.`
/// allowed except first, last or doubled; its case is preserved. The domain has at least two
/// dot-separated labels of 1–63 letters, digits or `-` (not first or last), the last one
/// alphabetic and at least 2 long; it is stored lowercased. Quoted local parts, IP-literal
/// domains (`[127.0.0.1]`), whitespace and control characters are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email {
    text: String,
    at: usize,
}

impl Email {
    pub const MAX_LEN: usize = 254;
    pub const MAX_LOCAL_LEN: usize = 64;
    pub const MAX_LABEL_LEN: usize = 63;

    /// Parses and checks an email address, lowercasing the domain.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let err = |problem: String| ValidationError::new(FieldKind::Email, s, problem);
        if s.is_empty() {
            return Err(err("is empty".into()));
        }
        if s.contains("@[") {
            return Err(err(
                "has an IP-literal domain ([...]), which is not accepted".into(),
            ));
        }
        if let Some((pos, c)) = s
            .chars()
            .enumerate()
            .find(|&(_, c)| !(is_atext(c) || c == '.' || c == '@'))
        {
            return Err(err(bad_char(c, pos)));
        }
        // ASCII only from here on.
        if s.len() > Self::MAX_LEN {
            return Err(err(format!(
                "is too long ({} characters, at most {})",
                s.len(),
                Self::MAX_LEN
            )));
        }
        let (local, domain) = match s.split_once('@') {
            None => return Err(err("has no '@'".into())),
            Some((_, d)) if d.contains('@') => return Err(err("has more than one '@'".into())),
            Some(parts) => parts,
        };
        check_local(local).map_err(err)?;
        check_domain(domain).map_err(err)?;
        let text = format!("{local}@{}", domain.to_ascii_lowercase());
        Ok(Self {
            text,
            at: local.len(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The part before `@`, case preserved.
    pub fn local_part(&self) -> &str {
        self.text.get(..self.at).unwrap_or_default()
    }

    /// The part after `@`, lowercased.
    pub fn domain(&self) -> &str {
        self.text.get(self.at + 1..).unwrap_or_default()
    }
}
string_newtype!(Email);

/// RFC 5322 `atext`: letters, digits and ``!#$%&'*+/=?^_`{|}~-``.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c)
}

fn check_local(local: &str) -> Result<(), String> {
    if local.is_empty() {
        return Err("has an empty local part (before '@')".into());
    }
    if local.len() > Email::MAX_LOCAL_LEN {
        return Err(format!(
            "has a local part of {} characters (at most {})",
            local.len(),
            Email::MAX_LOCAL_LEN
        ));
    }
    if local.starts_with('.') || local.ends_with('.') {
        return Err("has a local part that starts or ends with '.'".into());
    }
    if local.contains("..") {
        return Err("has '..' in the local part".into());
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("has an empty domain (after '@')".into());
    }
    if let Some(c) = domain
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
    {
        return Err(format!(
            "has '{c}' in the domain, which allows only letters, digits, '-' and '.'"
        ));
    }
    let mut labels = 0usize;
    let mut last = "";
    for label in domain.split('.') {
        if label.is_empty() {
            return Err("has an empty domain label (leading, trailing or double '.')".into());
        }
        if label.len() > Email::MAX_LABEL_LEN {
            return Err(format!(
                "has a domain label of {} characters (at most {})",
                label.len(),
                Email::MAX_LABEL_LEN
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("has a domain label that starts or ends with '-'".into());
        }
        labels += 1;
        last = label;
    }
    if labels < 2 {
        return Err("has a domain without a '.' (e.g. example.com is needed)".into());
    }
    if last.len() < 2 || !last.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(format!(
            "has the top-level domain '{last}', which must be at least 2 letters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_cases() {
        let local64 = "l".repeat(64);
        let long_ok = format!(
            "{local64}@{}.{}.{}.com",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(57)
        );
        assert_eq!(long_ok.len(), 254);
        let cases = [
            ("user@example.com", "user@example.com", "plain"),
            (
                "First.Last@Example.COM",
                "First.Last@example.com",
                "domain lowercased, local kept",
            ),
            (
                "o'brien@example.ie",
                "o'brien@example.ie",
                "apostrophe is atext",
            ),
            (
                "a+tag@sub.example.co.uk",
                "a+tag@sub.example.co.uk",
                "plus tag and subdomains",
            ),
            ("x@a-b.io", "x@a-b.io", "dash inside label"),
            (
                "!#$%&'*+/=?^_`{|}~-@example.org",
                "!#$%&'*+/=?^_`{|}~-@example.org",
                "every atext symbol",
            ),
            (
                "1@2.xn",
                "1@2.xn",
                "numeric labels before an alphabetic TLD",
            ),
            (long_ok.as_str(), long_ok.as_str(), "254 characters"),
        ];
        for (input, stored, why) in cases {
            let e = Email::parse(input).unwrap_or_else(|e| panic!("{why}: {input:?}: {e}"));
            assert_eq!(e.as_str(), stored, "{why}");
            assert_eq!(
                format!("{}@{}", e.local_part(), e.domain()),
                stored,
                "{why}"
            );
        }
        let e = Email::parse("Bob@EXAMPLE.com").unwrap();
        assert_eq!(e.local_part(), "Bob");
        assert_eq!(e.domain(), "example.com");
    }

    #[test]
    fn invalid_cases() {
        let too_long = format!(
            "{}@{}.{}.{}.com",
            "l".repeat(64),
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(58)
        );
        let long_local = format!("{}@example.com", "l".repeat(65));
        let long_label = format!("a@{}.com", "d".repeat(64));
        let cases = [
            ("", "empty", "is empty"),
            (too_long.as_str(), "255 characters", "too long"),
            (
                long_local.as_str(),
                "65-char local part",
                "local part of 65",
            ),
            (long_label.as_str(), "64-char label", "domain label of 64"),
            ("plainaddress", "no at", "no '@'"),
            ("a@b@example.com", "two ats", "more than one '@'"),
            ("@example.com", "empty local", "empty local part"),
            ("user@", "empty domain", "empty domain"),
            (
                ".user@example.com",
                "leading dot",
                "starts or ends with '.'",
            ),
            (
                "user.@example.com",
                "trailing dot",
                "starts or ends with '.'",
            ),
            ("us..er@example.com", "double dot", "'..'"),
            ("user@localhost", "single label", "without a '.'"),
            ("user@example.c", "one-letter TLD", "at least 2 letters"),
            ("user@example.123", "numeric TLD", "at least 2 letters"),
            ("user@1.2.3.4", "IPv4 as domain", "at least 2 letters"),
            ("user@[127.0.0.1]", "IP literal", "IP-literal"),
            ("user@[IPv6:::1]", "IPv6 literal", "IP-literal"),
            ("user@-example.com", "label starts with dash", "'-'"),
            ("user@example-.com", "label ends with dash", "'-'"),
            ("user@example..com", "empty label", "empty domain label"),
            (
                "user@.example.com",
                "leading dot in domain",
                "empty domain label",
            ),
            (
                "user@example.com.",
                "trailing dot in domain",
                "empty domain label",
            ),
            (
                "user@exa_mple.com",
                "underscore in domain",
                "'_' in the domain",
            ),
            ("user@exa+mple.com", "plus in domain", "'+' in the domain"),
            ("a b@example.com", "space", "whitespace"),
            (" user@example.com", "leading space", "whitespace"),
            (
                "user@example.com\n",
                "header injection newline",
                "whitespace",
            ),
            (
                "user@example.com\r\nBcc: x@y.com",
                "CRLF injection",
                "whitespace",
            ),
            ("us\u{7f}er@example.com", "DEL", "control character"),
            ("\"john doe\"@example.com", "quoted local part", "quote"),
            ("<script>@example.com", "markup", "'<'"),
            ("user;rm -rf@example.com", "shell", "';'"),
            ("user@exаmple.com", "Cyrillic a look-alike", "non-ASCII"),
            ("usér@example.com", "accented letter", "non-ASCII"),
            ("user@example.com(comment)", "comment", "'('"),
            ("user@example,com", "comma", "','"),
            ("../etc", "path traversal", "no '@'"),
        ];
        for (s, why, want) in cases {
            let e = Email::parse(s).map(|_| ()).unwrap_err();
            assert_eq!(e.field_kind(), "email", "{why}");
            assert!(e.problem().contains(want), "{why}: {s:?}: {e}");
        }
    }

    #[test]
    fn serde_round_trip_and_error() {
        let e: Email = serde_json::from_str("\"A@B.Example\"").unwrap();
        assert_eq!(e.as_str(), "A@b.example");
        assert_eq!(serde_json::to_string(&e).unwrap(), "\"A@b.example\"");
        let err = serde_json::from_str::<Email>("\"nope\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid email \"nope\": has no '@'"),
            "{err}"
        );
    }

    proptest! {
        #[test]
        fn generated_addresses_parse_and_round_trip(
            local in "[A-Za-z0-9+_-]{1,20}(\\.[A-Za-z0-9+_-]{1,20}){0,2}",
            labels in prop::collection::vec("[A-Za-z0-9]([A-Za-z0-9-]{0,10}[A-Za-z0-9])?", 1..4),
            tld in "[A-Za-z]{2,6}",
        ) {
            let s = format!("{local}@{}.{tld}", labels.join("."));
            let e = Email::parse(&s).unwrap();
            prop_assert_eq!(e.local_part(), local.as_str());
            prop_assert_eq!(e.domain(), s[local.len() + 1..].to_ascii_lowercase());
            prop_assert_eq!(Email::parse(e.as_str()).unwrap(), e);
        }

        #[test]
        fn random_strings_never_panic(s in ".{0,300}") {
            if let Ok(e) = Email::parse(&s) {
                prop_assert_eq!(Email::parse(e.as_str()).unwrap(), e);
            }
        }

        #[test]
        fn near_miss_strings_never_panic(s in "[a-zA-Z0-9.@ \\[\\]-]{0,40}") {
            match Email::parse(&s) {
                Ok(e) => prop_assert_eq!(e.as_str().matches('@').count(), 1),
                Err(e) => prop_assert!(e.to_string().len() < 1000),
            }
        }
    }
}
