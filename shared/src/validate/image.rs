//! Container image references, after the Docker / OCI distribution reference grammar.

use super::error::{bad_char, FieldKind, ValidationError};
use super::string_newtype;

/// A container image reference `[registry[:port]/]path[:tag][@digest]`.
///
/// * **registry** — the first `/`-separated component, when there is more than one and it
///   contains `.` or `:` or is `localhost`: a domain (labels of letters, digits and inner `-`)
///   with an optional port 1–65535. IPv6 literals are not accepted.
/// * **path** — components of lowercase letters and digits, separated inside a component by `.`,
///   `_`, `__` or one or more `-`, joined by `/`.
/// * **tag** — `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
/// * **digest** — `sha256:` + 64 lowercase hex, `sha512:` + 128 lowercase hex, or another
///   `algorithm:hex` with at least 32 hex digits.
///
/// The name (registry and path) is at most 255 characters. The text is kept as given; no
/// `docker.io/library/` normalisation is applied.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerImage {
    text: String,
    registry: Option<String>,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ContainerImage {
    /// Longest name (registry and path) accepted.
    pub const MAX_NAME_LEN: usize = 255;
    /// Longest tag accepted.
    pub const MAX_TAG_LEN: usize = 128;
    /// Longest whole reference accepted (name, tag and a generous digest).
    pub const MAX_LEN: usize = 1024;

    /// Parses and checks an image reference.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let err = |problem: String| ValidationError::new(FieldKind::ContainerImage, s, problem);
        if s.is_empty() {
            return Err(err("is empty".into()));
        }
        if let Some((pos, c)) = s.chars().enumerate().find(|&(_, c)| {
            !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@' | '+'))
        }) {
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

        let (rest, digest) = match s.split_once('@') {
            Some((_, d)) if d.contains('@') => {
                return Err(err("has more than one '@'".into()));
            }
            Some((r, d)) => (r, Some(d)),
            None => (s, None),
        };
        let (name, tag) = match (rest.rfind(':'), rest.rfind('/')) {
            (Some(colon), slash) if slash.is_none_or(|slash| colon > slash) => {
                (rest.get(..colon).unwrap_or_default(), rest.get(colon + 1..))
            }
            _ => (rest, None),
        };

        if name.is_empty() {
            return Err(err("has an empty name".into()));
        }
        if name.len() > Self::MAX_NAME_LEN {
            return Err(err(format!(
                "has a name of {} characters (at most {})",
                name.len(),
                Self::MAX_NAME_LEN
            )));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first), path)
            }
            _ => (None, name),
        };
        if let Some(registry) = registry {
            check_registry(registry).map_err(err)?;
        }
        check_path(repository).map_err(err)?;
        if let Some(tag) = tag {
            check_tag(tag).map_err(err)?;
        }
        if let Some(digest) = digest {
            check_digest(digest).map_err(err)?;
        }
        Ok(Self {
            text: s.to_owned(),
            registry: registry.map(str::to_owned),
            repository: repository.to_owned(),
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The registry host and optional port (`ghcr.io`, `localhost:5000`), if one was given.
    pub fn registry(&self) -> Option<&str> {
        self.registry.as_deref()
    }

    /// The repository path without the registry (`nginx`, `library/nginx`, `org/app`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag without the `:`, if one was given.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest `algorithm:hex` without the `@`, if one was given.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }
}
string_newtype!(ContainerImage);

fn check_registry(registry: &str) -> Result<(), String> {
    let (host, port) = match registry.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (registry, None),
    };
    if host.is_empty() {
        return Err(format!("has the registry '{registry}' with an empty host"));
    }
    for label in host.split('.') {
        let ok = !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "has the registry host '{host}', which must be dot-separated labels of letters, \
                 digits and inner '-'"
            ));
        }
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p > 0);
        if !valid {
            return Err(format!(
                "has the registry port '{port}', which must be 1-65535"
            ));
        }
    }
    Ok(())
}

fn check_path(path: &str) -> Result<(), String> {
    for component in path.split('/') {
        if component.is_empty() {
            return Err("has an empty path component (leading, trailing or double '/')".into());
        }
        if let Some(c) = component.chars().find(char::is_ascii_uppercase) {
            return Err(format!(
                "has the uppercase letter '{c}' in the repository path, which must be lowercase"
            ));
        }
        if !is_path_component(component.as_bytes()) {
            return Err(format!(
                "has the path component '{component}', which must be lowercase letters and \
                 digits separated by '.', '_', '__' or '-'"
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*`
fn is_path_component(bytes: &[u8]) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        // One or more alphanumerics.
        let start = i;
        while bytes.get(i).copied().is_some_and(alnum) {
            i += 1;
        }
        if i == start {
            return false;
        }
        // Then the end, or a separator.
        let sep_len = match bytes.get(i) {
            None => return true,
            Some(b'.') => 1,
            Some(b'_') if bytes.get(i + 1) == Some(&b'_') => 2,
            Some(b'_') => 1,
            Some(b'-') => bytes
                .get(i..)
                .map_or(0, |r| r.iter().take_while(|&&b| b == b'-').count()),
            Some(_) => return false,
        };
        i += sep_len;
    }
}

fn check_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() {
        return Err("has an empty tag after ':'".into());
    }
    if tag.len() > ContainerImage::MAX_TAG_LEN {
        return Err(format!(
            "has a tag of {} characters (at most {})",
            tag.len(),
            ContainerImage::MAX_TAG_LEN
        ));
    }
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if !tag.starts_with(word) || !tag.chars().all(|c| word(c) || c == '.' || c == '-') {
        return Err(format!(
            "has the tag '{tag}', which must be letters, digits, '_', '.' or '-' and not start \
             with '.' or '-'"
        ));
    }
    Ok(())
}

fn check_digest(digest: &str) -> Result<(), String> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err("has a digest without 'algorithm:' (e.g. sha256:<64 hex>)".into());
    };
    let lower_hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let ok = match algorithm {
        "sha256" => hex.len() == 64 && lower_hex(hex),
        "sha512" => hex.len() == 128 && lower_hex(hex),
        _ => {
            is_digest_algorithm(algorithm)
                && hex.len() >= 32
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "has an invalid '{algorithm}' digest (sha256 needs 64 lowercase hex digits, sha512 \
             128, other algorithms at least 32)"
        ))
    }
}

/// `[A-Za-z][A-Za-z0-9]* ([+._-] [A-Za-z][A-Za-z0-9]*)*`
fn is_digest_algorithm(algorithm: &str) -> bool {
    algorithm.split(['+', '.', '_', '-']).all(|part| {
        part.starts_with(|c: char| c.is_ascii_alphabetic())
            && part.chars().all(|c| c.is_ascii_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn valid_cases() {
        let digest = format!("ghcr.io/org/app@sha256:{SHA}");
        let tagged_digest = format!("ghcr.io/org/app:v1.2@sha256:{SHA}");
        let sha512 = format!("app@sha512:{SHA}{SHA}");
        let other = "app@blake3:0123456789ABCDEF0123456789abcdef";
        let long_path = format!("a/{}", "b".repeat(253));
        let long_tag = format!("app:{}", "t".repeat(128));
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            ("nginx", None, "nginx", None, None, "bare name"),
            ("nginx:latest", None, "nginx", Some("latest"), None, "tag"),
            (
                "library/nginx",
                None,
                "library/nginx",
                None,
                None,
                "two path components",
            ),
            (
                "docker.io/library/nginx:1.25",
                Some("docker.io"),
                "library/nginx",
                Some("1.25"),
                None,
                "docker hub",
            ),
            (
                "localhost:5000/app",
                Some("localhost:5000"),
                "app",
                None,
                None,
                "local registry with port",
            ),
            (
                "localhost/app:dev",
                Some("localhost"),
                "app",
                Some("dev"),
                None,
                "localhost without port",
            ),
            (
                "localhost:5000",
                None,
                "localhost",
                Some("5000"),
                None,
                "no slash: ':5000' is a tag",
            ),
            (
                "registry.example.com:443/team/sub/app:v2",
                Some("registry.example.com:443"),
                "team/sub/app",
                Some("v2"),
                None,
                "nested path",
            ),
            (
                "10.0.0.1:5000/app",
                Some("10.0.0.1:5000"),
                "app",
                None,
                None,
                "IPv4 registry",
            ),
            (
                "My-Registry.example.com/app",
                Some("My-Registry.example.com"),
                "app",
                None,
                None,
                "registry host may have uppercase",
            ),
            (
                &digest,
                Some("ghcr.io"),
                "org/app",
                None,
                Some(&digest[16..]),
                "sha256 digest",
            ),
            (
                &tagged_digest,
                Some("ghcr.io"),
                "org/app",
                Some("v1.2"),
                Some(&tagged_digest[21..]),
                "tag and digest",
            ),
            (
                &sha512,
                None,
                "app",
                None,
                Some(&sha512[4..]),
                "sha512 digest",
            ),
            (
                other,
                None,
                "app",
                None,
                Some("blake3:0123456789ABCDEF0123456789abcdef"),
                "other algorithm, 32 hex",
            ),
            ("my_app", None, "my_app", None, None, "underscore"),
            ("my__app", None, "my__app", None, None, "double underscore"),
            ("my---app", None, "my---app", None, None, "dash run"),
            (
                "my.app",
                None,
                "my.app",
                None,
                None,
                "dot inside a single component (no slash, not a registry)",
            ),
            (
                "app:V1_x.y-Z",
                None,
                "app",
                Some("V1_x.y-Z"),
                None,
                "tag allows uppercase",
            ),
            (
                "app:_x",
                None,
                "app",
                Some("_x"),
                None,
                "tag may start with '_'",
            ),
            (
                &long_path,
                None,
                &long_path,
                None,
                None,
                "255-character name",
            ),
            (
                &long_tag,
                None,
                "app",
                Some(&long_tag[4..]),
                None,
                "128-character tag",
            ),
        ];
        for (input, registry, repository, tag, digest, why) in cases {
            let img =
                ContainerImage::parse(input).unwrap_or_else(|e| panic!("{why}: {input:?}: {e}"));
            assert_eq!(img.as_str(), input, "{why}");
            assert_eq!(img.registry(), registry, "{why}");
            assert_eq!(img.repository(), repository, "{why}");
            assert_eq!(img.tag(), tag, "{why}");
            assert_eq!(img.digest(), digest, "{why}");
        }
    }

    #[test]
    fn invalid_cases() {
        let long_name = format!("a/{}", "b".repeat(254));
        let long_tag = format!("app:{}", "t".repeat(129));
        let cases = [
            ("", "empty", "is empty"),
            ("Nginx", "uppercase repository", "uppercase letter 'N'"),
            (
                "library/Nginx:1",
                "uppercase in later component",
                "uppercase",
            ),
            ("nginx:", "empty tag", "empty tag"),
            ("nginx:.x", "tag starts with dot", "the tag '.x'"),
            ("nginx:-x", "tag starts with dash", "the tag '-x'"),
            (long_tag.as_str(), "129-character tag", "tag of 129"),
            (long_name.as_str(), "256-character name", "name of 256"),
            ("nginx@", "empty digest", "without 'algorithm:'"),
            (
                "nginx@sha256:abc",
                "short sha256",
                "invalid 'sha256' digest",
            ),
            (
                "nginx@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
                "uppercase sha256",
                "invalid 'sha256'",
            ),
            ("nginx@md5:0123", "short other digest", "invalid 'md5'"),
            (
                "nginx@1x:0123456789abcdef0123456789abcdef",
                "algorithm starts with digit",
                "invalid '1x'",
            ),
            ("nginx@sha256:a@b", "two ats", "more than one '@'"),
            (":latest", "no name", "empty name"),
            ("/nginx", "leading slash", "empty path component"),
            ("nginx/", "trailing slash", "empty path component"),
            ("a//b", "double slash", "empty path component"),
            ("ghcr.io/", "registry only", "empty path component"),
            ("-nginx", "leading dash", "path component '-nginx'"),
            ("nginx-", "trailing dash", "path component 'nginx-'"),
            ("ng___inx", "triple underscore", "path component"),
            ("ng._inx", "mixed separators", "path component"),
            ("a/.b", "component starts with dot", "path component '.b'"),
            (
                "a/b:c/d",
                "colon in a later component",
                "path component 'b:c'",
            ),
            ("a/b+c", "plus in path", "path component 'b+c'"),
            (
                "-bad.io/app",
                "registry label starts with dash",
                "registry host",
            ),
            ("bad..io/app", "empty registry label", "registry host"),
            ("bad_reg.io/app", "underscore in registry", "registry host"),
            ("localhost:0/app", "port zero", "registry port '0'"),
            ("localhost:99999/app", "port too big", "registry port"),
            ("localhost:/app", "empty port", "registry port ''"),
            ("localhost:50x/app", "non-numeric port", "registry port"),
            (":5000/app", "empty host", "empty host"),
            ("[::1]:5000/app", "IPv6 registry", "'['"),
            (
                "../etc",
                "path traversal ('..' has a dot, so it is read as a registry)",
                "registry host '..'",
            ),
            (
                "app/../etc",
                "path traversal inside the path",
                "path component '..'",
            ),
            ("a b", "space", "whitespace"),
            ("nginx\n", "newline", "whitespace"),
            ("<script>", "markup", "'<'"),
            (";rm -rf", "shell", "';'"),
            ("nginx;rm -rf /", "shell after name", "';'"),
            ("nginx$(id)", "command substitution", "'$'"),
            ("nginx`id`", "backtick", "quote"),
            ("nginx|sh", "pipe", "'|'"),
            ("nginx&&x", "and", "'&'"),
            ("ngіnx", "Cyrillic i look-alike", "non-ASCII"),
        ];
        for (s, why, want) in cases {
            let e = ContainerImage::parse(s).map(|_| ()).unwrap_err();
            assert_eq!(e.field_kind(), "container_image", "{why}");
            assert!(e.problem().contains(want), "{why}: {s:?}: {e}");
        }
    }

    #[test]
    fn path_component_grammar() {
        for ok in [
            "a",
            "a1",
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a--b",
            "a.b_c__d-e---f",
            "0",
        ] {
            assert!(is_path_component(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "", ".", "a.", ".a", "a..b", "a___b", "a_.b", "a-.b", "A", "a:b", "-", "_a",
        ] {
            assert!(!is_path_component(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn very_long_input_is_rejected_cheaply() {
        let s = format!("app@sha256:{}", "a".repeat(5000));
        let e = ContainerImage::parse(&s).map(|_| ()).unwrap_err();
        assert!(e.problem().contains("too long"), "{e}");
        assert!(e.to_string().len() < 700);
    }

    #[test]
    fn serde_round_trip() {
        let img = ContainerImage::parse("docker.io/library/nginx:1.25").unwrap();
        let json = serde_json::to_string(&img).unwrap();
        assert_eq!(json, "\"docker.io/library/nginx:1.25\"");
        assert_eq!(serde_json::from_str::<ContainerImage>(&json).unwrap(), img);
        let err = serde_json::from_str::<ContainerImage>("\"Nginx\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid container image \"Nginx\""), "{err}");
    }

    proptest! {
        #[test]
        fn generated_references_parse(
            registry in proptest::option::of("[a-z0-9]{1,10}\\.[a-z]{2,5}(:[1-9][0-9]{0,3})?"),
            path in prop::collection::vec("[a-z0-9]{1,8}((\\.|_|__|-+)[a-z0-9]{1,8}){0,2}", 1..4),
            tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
            digest in proptest::option::of("[0-9a-f]{64}"),
        ) {
            // A first component with '.' would be read as a registry host; docker does the same.
            prop_assume!(registry.is_some() || !path[0].contains('.'));
            let mut s = String::new();
            if let Some(r) = &registry {
                s.push_str(r);
                s.push('/');
            }
            let repository = path.join("/");
            s.push_str(&repository);
            if let Some(t) = &tag {
                s.push(':');
                s.push_str(t);
            }
            if let Some(d) = &digest {
                s.push_str("@sha256:");
                s.push_str(d);
            }
            let img = ContainerImage::parse(&s).unwrap();
            prop_assert_eq!(img.registry(), registry.as_deref());
            prop_assert_eq!(img.repository(), repository.as_str());
            prop_assert_eq!(img.tag(), tag.as_deref());
            prop_assert_eq!(img.digest().map(|d| d.len()), digest.map(|d| d.len() + 7));
            prop_assert_eq!(ContainerImage::parse(img.as_str()).unwrap(), img);
        }

        #[test]
        fn random_strings_never_panic(s in ".{0,300}") {
            if let Ok(img) = ContainerImage::parse(&s) {
                prop_assert_eq!(ContainerImage::parse(img.as_str()).unwrap(), img);
            }
        }

        #[test]
        fn near_miss_strings_never_panic(s in "[a-zA-Z0-9./:@_+-]{0,80}") {
            if let Ok(img) = ContainerImage::parse(&s) {
                prop_assert_eq!(ContainerImage::parse(img.as_str()).unwrap(), img.clone());
                prop_assert!(!img.repository().is_empty());
                prop_assert!(img.repository().bytes().all(|b| !b.is_ascii_uppercase()));
            }
        }
    }
}
