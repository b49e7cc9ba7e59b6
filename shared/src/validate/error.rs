//! The one error every parser in this module returns.

use std::fmt;

/// How many characters of the rejected input an error message echoes back.
const ECHO_MAX_CHARS: usize = 64;

/// Which kind of value failed to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldKind {
    Username,
    Email,
    ResourceName,
    Namespace,
    ContainerImage,
    CpuQuantity,
    MemoryQuantity,
}

impl FieldKind {
    /// A stable machine-readable name, e.g. `"resource_name"` (for API error details).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::Email => "email",
            Self::ResourceName => "resource_name",
            Self::Namespace => "namespace",
            Self::ContainerImage => "container_image",
            Self::CpuQuantity => "cpu_quantity",
            Self::MemoryQuantity => "memory_quantity",
        }
    }

    /// The human name used in messages, e.g. `"resource name"`.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::Email => "email",
            Self::ResourceName => "resource name",
            Self::Namespace => "namespace",
            Self::ContainerImage => "container image",
            Self::CpuQuantity => "CPU quantity",
            Self::MemoryQuantity => "memory quantity",
        }
    }

    /// What a valid value of this kind looks like, as one sentence.
    pub const fn rule(self) -> &'static str {
        match self {
            Self::Username => {
                "username must be 3-50 characters of letters, digits, '_', '-' or '.', \
                 starting with a letter or digit and without '..'"
            }
            Self::Email => {
                "email must be local@domain with at most 254 characters: a local part of 1-64 \
                 letters, digits, '.' or !#$%&'*+/=?^_`{|}~- (no leading, trailing or double '.') \
                 and a domain of at least two dot-separated labels of letters, digits or '-' \
                 ending in an alphabetic top-level domain"
            }
            Self::ResourceName => {
                "resource name must be 1-253 characters of lowercase letters, digits, '-' or '.', \
                 in dot-separated parts that each start and end with a letter or digit"
            }
            Self::Namespace => {
                "namespace must be 1-63 characters of lowercase letters, digits or '-', \
                 starting and ending with a letter or digit"
            }
            Self::ContainerImage => {
                "container image must look like [registry[:port]/]path[:tag][@digest], \
                 e.g. nginx:1.25 or ghcr.io/org/app@sha256:<64 hex>, with lowercase path \
                 components and a name of at most 255 characters"
            }
            Self::CpuQuantity => {
                "CPU quantity must be a non-negative number of cores with at most 3 decimal \
                 places (e.g. 0.5, 2) or whole millicores (e.g. 500m), at most 1000000 cores"
            }
            Self::MemoryQuantity => {
                "memory quantity must be a non-negative whole number of bytes with an optional \
                 suffix Ki, Mi, Gi, Ti, Pi, Ei or k, M, G, T, P, E (e.g. 128Mi, 2Gi, 1.5G)"
            }
        }
    }
}

impl fmt::Display for FieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a value was rejected: which kind, what was wrong, and (via [`FieldKind::rule`]) what is
/// allowed. The echoed input is escaped and cut to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    kind: FieldKind,
    input: String,
    problem: String,
}

impl ValidationError {
    pub(crate) fn new(kind: FieldKind, input: &str, problem: impl Into<String>) -> Self {
        Self {
            kind,
            input: echo(input),
            problem: problem.into(),
        }
    }

    /// The machine-readable kind name, e.g. `"username"`.
    pub fn field_kind(&self) -> &'static str {
        self.kind.as_str()
    }

    /// The kind as an enum.
    pub fn kind(&self) -> FieldKind {
        self.kind
    }

    /// What was wrong, e.g. `"contains ' ' at position 2"`.
    pub fn problem(&self) -> &str {
        &self.problem
    }

    /// What is allowed.
    pub fn rule(&self) -> &'static str {
        self.kind.rule()
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.input.is_empty() {
            write!(
                f,
                "invalid {}: {}; {}",
                self.kind.label(),
                self.problem,
                self.rule()
            )
        } else {
            write!(
                f,
                "invalid {} \"{}\": {}; {}",
                self.kind.label(),
                self.input,
                self.problem,
                self.rule()
            )
        }
    }
}

impl std::error::Error for ValidationError {}

/// The input as shown in messages, inside `"`: control and non-ASCII characters, `"` and `\`
/// escaped, at most 64 characters of it.
fn echo(input: &str) -> String {
    let mut out = String::new();
    for (i, c) in input.chars().enumerate() {
        if i == ECHO_MAX_CHARS {
            out.push_str("...");
            break;
        }
        if matches!(c, '"' | '\\') {
            out.push('\\');
            out.push(c);
        } else {
            out.push_str(&describe_char(c));
        }
    }
    out
}

/// One character, printable ASCII as-is, anything else escaped (`\u{200b}`, `\n`).
pub(crate) fn describe_char(c: char) -> String {
    if c.is_ascii_graphic() || c == ' ' {
        c.to_string()
    } else {
        c.escape_default().to_string()
    }
}

/// The shared "bad character" problem text.
pub(crate) fn bad_char(c: char, pos: usize) -> String {
    if c.is_whitespace() {
        format!("contains whitespace at position {pos}")
    } else if c.is_control() {
        format!(
            "contains a control character ({}) at position {pos}",
            describe_char(c)
        )
    } else if matches!(c, '\'' | '"' | '`') {
        format!("contains a quote character ({c}) at position {pos}")
    } else if !c.is_ascii() {
        format!(
            "contains the non-ASCII character '{}' at position {pos}",
            describe_char(c)
        )
    } else {
        format!("contains '{c}' at position {pos}, which is not allowed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_kind_problem_and_rule() {
        let e = ValidationError::new(FieldKind::Username, "a b", bad_char(' ', 1));
        assert_eq!(e.field_kind(), "username");
        assert_eq!(e.kind(), FieldKind::Username);
        assert_eq!(e.problem(), "contains whitespace at position 1");
        assert_eq!(
            e.to_string(),
            "invalid username \"a b\": contains whitespace at position 1; username must be 3-50 \
             characters of letters, digits, '_', '-' or '.', starting with a letter or digit and \
             without '..'"
        );
    }

    #[test]
    fn empty_input_is_not_echoed() {
        let e = ValidationError::new(FieldKind::Namespace, "", "is empty");
        assert!(e
            .to_string()
            .starts_with("invalid namespace: is empty; namespace must"));
    }

    #[test]
    fn echo_is_truncated_and_escaped() {
        let long = "y".repeat(1000);
        let e = ValidationError::new(FieldKind::Email, &long, "is too long");
        let msg = e.to_string();
        assert!(msg.contains(&format!("\"{}...\"", "y".repeat(64))), "{msg}");
        assert!(!msg.contains(&"y".repeat(65)));

        assert_eq!(echo("a\nb\u{200b}\u{0}"), "a\\nb\\u{200b}\\u{0}");
        assert_eq!(echo(r#""x"@y\z"#), r#"\"x\"@y\\z"#);
        assert_eq!(echo(&"é".repeat(64)).chars().count(), 64 * "\\u{e9}".len());
    }

    #[test]
    fn bad_char_descriptions() {
        assert_eq!(bad_char('\t', 0), "contains whitespace at position 0");
        assert_eq!(
            bad_char('\u{7}', 3),
            "contains a control character (\\u{7}) at position 3"
        );
        assert_eq!(
            bad_char('а', 2),
            "contains the non-ASCII character '\\u{430}' at position 2"
        );
        assert_eq!(
            bad_char(';', 5),
            "contains ';' at position 5, which is not allowed"
        );
        assert_eq!(
            bad_char('"', 1),
            "contains a quote character (\") at position 1"
        );
    }

    #[test]
    fn kinds_have_distinct_names_and_rules_start_with_label() {
        let all = [
            FieldKind::Username,
            FieldKind::Email,
            FieldKind::ResourceName,
            FieldKind::Namespace,
            FieldKind::ContainerImage,
            FieldKind::CpuQuantity,
            FieldKind::MemoryQuantity,
        ];
        for (i, a) in all.iter().enumerate() {
            assert!(a.rule().starts_with(a.label()), "{a}");
            assert_eq!(a.to_string(), a.as_str());
            for b in &all[i + 1..] {
                assert_ne!(a.as_str(), b.as_str());
            }
        }
    }
}
