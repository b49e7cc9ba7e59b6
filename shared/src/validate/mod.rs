//! "Parse, don't validate" newtypes for the user-supplied values every component handles.
//!
//! The StreamSpace seed (Go) checked strings with regex validators (`ValidateUsername`,
//! `ValidateEmail`, `ValidateResourceName`, `ValidateNamespace`, `ValidateContainerImage`,
//! `ValidateResourceQuantity`) and then passed the same unchecked `string` on. Here each rule is a
//! type instead: a value of [`Username`], [`Email`], … can only be built by its `parse` (also
//! [`FromStr`](std::str::FromStr), `TryFrom` and serde `Deserialize`), so holding one *is* the
//! proof that it was checked, and a JSON body with a bad value fails deserialisation with a
//! [`ValidationError`] message that says what is wrong and what is allowed.
//!
//! The parsers are small hand-written state machines (no regex crate: size matters in wasm), and
//! they never panic on any input. They accept ASCII only, so Unicode look-alikes (`ⅼ`, `а`,
//! full-width letters, zero-width spaces) are rejected everywhere.
//!
//! These types are about *shape*, not about security blocklists: SQL injection is prevented by
//! bound query parameters in the store layer, never by refusing words like `SELECT` or quotes in
//! free text. (A username can't contain a quote because of the username grammar, not because
//! quotes are "dangerous".)
//!
//! | type | accepts |
//! | --- | --- |
//! | [`Username`] | 3–50 ASCII letters, digits, `_`, `-`, `.`; starts with a letter or digit; no `..`; case preserved |
//! | [`Email`] | `local@domain`, ≤ 254 chars; dot-atom local part of 1–64 chars; ≥ 2 domain labels of 1–63 letters/digits/`-` (no leading/trailing `-`), last label alphabetic ≥ 2 chars; no IP literals, quotes, whitespace or control chars; domain stored lowercased |
//! | [`ResourceName`] | Kubernetes DNS-1123 subdomain: 1–253 chars of `a-z 0-9 - .`, dot-separated parts that each start and end with `a-z0-9` |
//! | [`Namespace`] | Kubernetes DNS-1123 label: 1–63 chars of `a-z 0-9 -`, starting and ending with `a-z0-9` |
//! | [`ContainerImage`] | Docker reference `[host[:port]/]path[:tag][@digest]`, lowercase path components, name ≤ 255 chars |
//! | [`CpuQuantity`] | `0.5`, `2`, `1.25` (≤ 3 significant decimals) or `500m`; 0 to 1,000,000 cores; exposes [`CpuQuantity::millicores`] |
//! | [`MemoryQuantity`] | whole bytes with optional suffix `Ki Mi Gi Ti Pi Ei` / `k M G T P E` (`128Mi`, `2Gi`, `1.5Gi`); exposes [`MemoryQuantity::bytes`] |
//!
//! Every type has `parse`, `FromStr`, `as_str`, `Display`, `AsRef<str>`, `TryFrom<&str>`,
//! `TryFrom<String>`, `From<T> for String`, and serialises as a plain JSON string. Quantities keep
//! the text they were given (`"0.5"` stays `"0.5"`) and expose the parsed value.

mod email;
mod error;
mod image;
mod names;
mod quantity;

pub use email::Email;
pub use error::{FieldKind, ValidationError};
pub use image::ContainerImage;
pub use names::{Namespace, ResourceName, Username};
pub use quantity::{CpuQuantity, MemoryQuantity};

/// The trait impls every newtype shares; the type provides `parse` and `as_str`.
macro_rules! string_newtype {
    ($ty:ident) => {
        impl ::std::str::FromStr for $ty {
            type Err = $crate::validate::ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = $crate::validate::ValidationError;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = $crate::validate::ValidationError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.as_str().to_owned()
            }
        }

        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                let s = <String as ::serde::Deserialize>::deserialize(deserializer)?;
                Self::parse(&s).map_err(<D::Error as ::serde::de::Error>::custom)
            }
        }
    };
}
pub(crate) use string_newtype;

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Body {
        username: Username,
        email: Email,
        name: ResourceName,
        namespace: Namespace,
        image: ContainerImage,
        cpu: CpuQuantity,
        memory: MemoryQuantity,
    }

    const GOOD: &str = r#"{"username":"Alice_1","email":"a.b@Example.COM","name":"web.app-1","namespace":"team-a","image":"ghcr.io/org/app:1.0","cpu":"0.5","memory":"128Mi"}"#;

    #[test]
    fn json_body_round_trips() {
        let body: Body = serde_json::from_str(GOOD).unwrap();
        assert_eq!(body.username.as_str(), "Alice_1");
        assert_eq!(body.email.as_str(), "a.b@example.com", "domain lowercased");
        assert_eq!(body.cpu.millicores(), 500);
        assert_eq!(body.memory.bytes(), 128 * 1024 * 1024);
        let json = serde_json::to_string(&body).unwrap();
        assert_eq!(json, GOOD.replace("Example.COM", "example.com"));
        let again: Body = serde_json::from_str(&json).unwrap();
        assert_eq!(again, body);
    }

    #[test]
    fn json_body_with_bad_field_fails_with_clear_message() {
        let cases = [
            ("username", "\"a b\"", "invalid username"),
            ("email", "\"no-at-sign\"", "invalid email"),
            ("name", "\"Web\"", "invalid resource name"),
            ("namespace", "\"-x\"", "invalid namespace"),
            ("image", "\"nginx:\"", "invalid container image"),
            ("cpu", "\"-1\"", "invalid CPU quantity"),
            ("memory", "\"1e3\"", "invalid memory quantity"),
            ("memory", "128", "invalid type"),
        ];
        for (field, bad, want) in cases {
            let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
            v[field] = serde_json::from_str(bad).unwrap();
            let err = serde_json::from_value::<Body>(v).unwrap_err().to_string();
            assert!(err.contains(want), "{field}={bad}: {err}");
        }
    }

    #[test]
    fn deserialising_huge_value_does_not_echo_it() {
        let long = "x".repeat(10_000);
        let err = serde_json::from_str::<Username>(&format!("\"{long}\"")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.len() < 600, "{} bytes: {msg}", msg.len());
    }

    #[test]
    fn conversions_agree() {
        let u: Username = "bob.smith".parse().unwrap();
        assert_eq!(Username::try_from("bob.smith").unwrap(), u);
        assert_eq!(Username::try_from(String::from("bob.smith")).unwrap(), u);
        assert_eq!(u.to_string(), "bob.smith");
        assert_eq!(AsRef::<str>::as_ref(&u), "bob.smith");
        assert_eq!(String::from(u), "bob.smith");
        assert!("a".parse::<Username>().is_err());
    }
}
