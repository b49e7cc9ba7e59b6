//! Usernames and Kubernetes object names.

use super::error::{bad_char, FieldKind, ValidationError};
use super::string_newtype;

/// A login name: 3–50 ASCII letters, digits, `_`, `-`, `.`; starts with a letter or digit; no
/// `..`. Case is preserved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);

impl Username {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 50;

    /// Parses and checks a username.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let err = |problem: String| ValidationError::new(FieldKind::Username, s, problem);
        if s.is_empty() {
            return Err(err("is empty".into()));
        }
        if let Some((pos, c)) = s
            .chars()
            .enumerate()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(err(bad_char(c, pos)));
        }
        // All ASCII from here on, so byte length is character count.
        check_len(s.len(), Self::MIN_LEN, Self::MAX_LEN).map_err(err)?;
        if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(err("must start with a letter or digit".into()));
        }
        if s.contains("..") {
            return Err(err("contains '..'".into()));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_newtype!(Username);

/// A Kubernetes DNS-1123 subdomain (most object names): 1–253 chars of lowercase letters,
/// digits, `-` and `.`, in dot-separated parts that each start and end with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceName(String);

impl ResourceName {
    pub const MAX_LEN: usize = 253;

    /// Parses and checks a resource name.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let err = |problem: String| ValidationError::new(FieldKind::ResourceName, s, problem);
        if s.is_empty() {
            return Err(err("is empty".into()));
        }
        check_k8s_chars(s, true).map_err(err)?;
        check_len(s.len(), 1, Self::MAX_LEN).map_err(err)?;
        for part in s.split('.') {
            check_label_edges(part, "each dot-separated part").map_err(err)?;
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_newtype!(ResourceName);

/// A Kubernetes DNS-1123 label (namespace names): 1–63 chars of lowercase letters, digits and
/// `-`, starting and ending with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(String);

impl Namespace {
    pub const MAX_LEN: usize = 63;

    /// Parses and checks a namespace name.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let err = |problem: String| ValidationError::new(FieldKind::Namespace, s, problem);
        if s.is_empty() {
            return Err(err("is empty".into()));
        }
        check_k8s_chars(s, false).map_err(err)?;
        check_len(s.len(), 1, Self::MAX_LEN).map_err(err)?;
        check_label_edges(s, "it").map_err(err)?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_newtype!(Namespace);

fn check_len(len: usize, min: usize, max: usize) -> Result<(), String> {
    if len < min {
        Err(format!("is too short ({len} characters, at least {min})"))
    } else if len > max {
        Err(format!("is too long ({len} characters, at most {max})"))
    } else {
        Ok(())
    }
}

/// Only `a-z`, `0-9`, `-` (and `.` when `dots`), with a pointed message for uppercase.
fn check_k8s_chars(s: &str, dots: bool) -> Result<(), String> {
    for (pos, c) in s.chars().enumerate() {
        let ok = c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.');
        if ok {
            continue;
        }
        return Err(if c.is_ascii_uppercase() {
            format!("contains the uppercase letter '{c}' at position {pos} (Kubernetes names are lowercase)")
        } else {
            bad_char(c, pos)
        });
    }
    Ok(())
}

/// A non-empty label that starts and ends with a letter or digit (chars already checked).
fn check_label_edges(label: &str, what: &str) -> Result<(), String> {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    if label.is_empty() {
        Err("has an empty dot-separated part (leading, trailing or double '.')".into())
    } else if !label.starts_with(alnum) || !label.ends_with(alnum) {
        Err(format!("{what} must start and end with a letter or digit"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn username_cases() {
        let valid = [
            ("abc", "minimum length"),
            ("Alice", "case preserved"),
            ("bob.smith", "single dot"),
            ("bob_smith-2", "underscore and dash"),
            ("9lives", "starts with digit"),
            ("a-.", "trailing punctuation is allowed by the seed rules"),
            ("a._-b", "mixed separators without '..'"),
            (&"a".repeat(50), "maximum length"),
        ];
        for (s, why) in valid {
            let u = Username::parse(s).unwrap_or_else(|e| panic!("{why}: {s:?}: {e}"));
            assert_eq!(u.as_str(), s, "{why}");
        }
        let invalid = [
            ("", "empty", "is empty"),
            ("ab", "too short", "too short"),
            (&"a".repeat(51), "too long", "too long"),
            ("../etc", "path traversal", "'/'"),
            ("..abc", "leading dots", "must start with a letter or digit"),
            ("a..b", "double dot", "contains '..'"),
            (".abc", "leading dot", "must start"),
            ("-abc", "leading dash", "must start"),
            ("_abc", "leading underscore", "must start"),
            ("a b", "space", "whitespace"),
            ("abc\n", "newline", "whitespace"),
            ("ab\u{0}c", "NUL", "control character"),
            ("<script>", "markup", "'<'"),
            (";rm -rf", "shell", "';'"),
            ("bob'--", "quote", "quote"),
            ("admin@x", "at sign", "'@'"),
            ("аdmin", "Cyrillic a look-alike", "non-ASCII"),
            ("admin\u{200b}", "zero-width space", "non-ASCII"),
            ("ａｄｍｉｎ", "full-width letters", "non-ASCII"),
        ];
        for (s, why, want) in invalid {
            let e = Username::parse(s).map(|_| ()).unwrap_err();
            assert_eq!(e.field_kind(), "username", "{why}");
            assert!(e.problem().contains(want), "{why}: {s:?}: {e}");
        }
    }

    #[test]
    fn resource_name_cases() {
        let valid = [
            ("a", "single char"),
            ("0", "single digit"),
            ("web-app", "dash"),
            ("web.app-1", "dots and dashes"),
            ("my-app.v1.example", "many parts"),
            ("a--b", "double dash inside"),
            ("123", "all digits"),
        ];
        let max = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert_eq!(max.len(), 253);
        for (s, why) in valid
            .iter()
            .copied()
            .chain([(max.as_str(), "maximum length")])
        {
            let n = ResourceName::parse(s).unwrap_or_else(|e| panic!("{why}: {s:?}: {e}"));
            assert_eq!(n.as_str(), s, "{why}");
        }
        let too_long = format!("{max}a");
        let invalid = [
            ("", "empty", "is empty"),
            (too_long.as_str(), "too long", "too long"),
            ("Web", "uppercase", "uppercase letter 'W'"),
            ("webApp", "camel case", "uppercase letter 'A'"),
            ("-web", "leading dash", "start and end"),
            ("web-", "trailing dash", "start and end"),
            (".web", "leading dot", "empty dot-separated part"),
            ("web.", "trailing dot", "empty dot-separated part"),
            ("a..b", "double dot", "empty dot-separated part"),
            ("a-.b", "part ends with dash", "start and end"),
            ("a.-b", "part starts with dash", "start and end"),
            ("../etc", "path traversal", "'/'"),
            ("a b", "space", "whitespace"),
            ("a_b", "underscore", "'_'"),
            ("<script>", "markup", "'<'"),
            (";rm -rf", "shell", "';'"),
            ("wеb", "Cyrillic e look-alike", "non-ASCII"),
        ];
        for (s, why, want) in invalid {
            let e = ResourceName::parse(s).map(|_| ()).unwrap_err();
            assert_eq!(e.field_kind(), "resource_name", "{why}");
            assert!(e.problem().contains(want), "{why}: {s:?}: {e}");
        }
    }

    #[test]
    fn namespace_cases() {
        let max = "n".repeat(63);
        let valid = [
            ("default", "plain"),
            ("kube-system", "dash"),
            ("a", "single char"),
            ("team-1", "digit at end"),
            ("1team", "digit at start"),
            (max.as_str(), "maximum length"),
        ];
        for (s, why) in valid {
            let n = Namespace::parse(s).unwrap_or_else(|e| panic!("{why}: {s:?}: {e}"));
            assert_eq!(n.as_str(), s, "{why}");
        }
        let too_long = "n".repeat(64);
        let invalid = [
            ("", "empty", "is empty"),
            (too_long.as_str(), "too long", "too long"),
            ("Default", "uppercase", "uppercase"),
            ("team.a", "dot", "'.'"),
            ("-team", "leading dash", "start and end"),
            ("team-", "trailing dash", "start and end"),
            ("team_a", "underscore", "'_'"),
            ("../etc", "path traversal", "'.'"),
            ("a b", "space", "whitespace"),
            ("<script>", "markup", "'<'"),
            (";rm -rf", "shell", "';'"),
            ("dеfault", "Cyrillic e look-alike", "non-ASCII"),
        ];
        for (s, why, want) in invalid {
            let e = Namespace::parse(s).map(|_| ()).unwrap_err();
            assert_eq!(e.field_kind(), "namespace", "{why}");
            assert!(e.problem().contains(want), "{why}: {s:?}: {e}");
        }
    }

    #[test]
    fn serde_round_trips() {
        let u = Username::parse("Alice.B").unwrap();
        assert_eq!(serde_json::to_string(&u).unwrap(), "\"Alice.B\"");
        assert_eq!(serde_json::from_str::<Username>("\"Alice.B\"").unwrap(), u);
        let r = ResourceName::parse("web.app").unwrap();
        assert_eq!(
            serde_json::from_str::<ResourceName>(&serde_json::to_string(&r).unwrap()).unwrap(),
            r
        );
        let n = Namespace::parse("team-a").unwrap();
        assert_eq!(
            serde_json::from_str::<Namespace>(&serde_json::to_string(&n).unwrap()).unwrap(),
            n
        );
        let e = serde_json::from_str::<Namespace>("\"Team\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid namespace \"Team\""), "{e}");
    }

    proptest! {
        #[test]
        fn generated_k8s_labels_parse(s in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?") {
            let n = Namespace::parse(&s).unwrap();
            prop_assert_eq!(n.as_str(), s.as_str());
            prop_assert!(ResourceName::parse(&s).is_ok());
        }

        #[test]
        fn generated_subdomains_parse(parts in prop::collection::vec("[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", 1..10)) {
            let s = parts.join(".");
            let n = ResourceName::parse(&s).unwrap();
            prop_assert_eq!(ResourceName::parse(n.as_str()).unwrap(), n);
        }

        #[test]
        fn generated_usernames_parse(s in "[A-Za-z0-9][A-Za-z0-9_-]{2,49}") {
            let u = Username::parse(&s).unwrap();
            prop_assert_eq!(Username::parse(u.as_str()).unwrap(), u);
        }

        #[test]
        fn random_strings_never_panic_and_round_trip(s in ".{0,300}") {
            if let Ok(u) = Username::parse(&s) {
                prop_assert_eq!(Username::parse(u.as_str()).unwrap(), u);
            }
            if let Ok(n) = ResourceName::parse(&s) {
                prop_assert_eq!(ResourceName::parse(n.as_str()).unwrap(), n);
            }
            if let Ok(n) = Namespace::parse(&s) {
                prop_assert_eq!(Namespace::parse(n.as_str()).unwrap(), n);
            }
        }

        #[test]
        fn near_miss_strings_never_panic(s in "[a-zA-Z0-9._ -]{0,70}") {
            for r in [Username::parse(&s).map(|_| ()), ResourceName::parse(&s).map(|_| ()), Namespace::parse(&s).map(|_| ())] {
                if let Err(e) = r {
                    prop_assert!(!e.to_string().is_empty());
                }
            }
            // Every valid namespace is a valid resource name.
            if Namespace::parse(&s).is_ok() {
                prop_assert!(ResourceName::parse(&s).is_ok());
            }
        }
    }
}
