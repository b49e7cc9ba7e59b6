//! The error a failed sync stores (`repositories.error_message`, shown by the repository routes):
//! never a secret, never URL userinfo, at most 1 KiB (§2.4 step 9). **FIX:** StreamSpace stores
//! git's output, which contains the clone URL `https://TOKEN@github.com/…`.

/// The longest stored error, in bytes.
pub const MAX_ERROR_BYTES: usize = 1024;

const REDACTED: &str = "[redacted]";

/// `message` with every occurrence of the `secrets` (tokens, `user:pass`, their halves), URL
/// userinfo (`scheme://user:pass@host` → `scheme://[redacted]@host`) and credential words after
/// `Bearer`/`Basic`/`token` removed, control characters replaced, cut to [`MAX_ERROR_BYTES`] on a
/// character boundary.
pub fn sanitize(message: &str, secrets: &[&str]) -> String {
    let mut text = message.to_owned();
    let mut secrets: Vec<&str> = secrets.iter().copied().filter(|s| s.len() >= 4).collect();
    // Longest first, so a secret that contains another is removed whole.
    secrets.sort_unstable_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in secrets {
        text = text.replace(secret, REDACTED);
    }
    let text = strip_userinfo(&text);
    let text = strip_scheme_words(&text);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.len() > MAX_ERROR_BYTES {
        let mut cut = MAX_ERROR_BYTES;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// Replaces the userinfo of every `scheme://userinfo@host` with `[redacted]`.
fn strip_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the first `/`, `?`, `#` or whitespace.
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str(REDACTED);
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Replaces the word after `Bearer`, `Basic` or `token` (any case) — an `Authorization` value
/// echoed by a transport error.
fn strip_scheme_words(text: &str) -> String {
    let words: Vec<&str> = text.split(' ').collect();
    let mut out: Vec<&str> = Vec::with_capacity(words.len());
    let mut redact_next = false;
    for word in words {
        if redact_next && !word.is_empty() {
            out.push(REDACTED);
            redact_next = false;
            continue;
        }
        let bare = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        redact_next = ["bearer", "basic", "token"]
            .iter()
            .any(|w| bare.eq_ignore_ascii_case(w))
            && word.len() == bare.len() + usize::from(word.ends_with(':'));
        out.push(word);
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_userinfo_never_survive() {
        let cases: &[(&str, &[&str], &str)] = &[
            (
                "connect https://ghp_abc123secret@github.com/o/r failed",
                &[],
                "connect https://[redacted]@github.com/o/r failed",
            ),
            (
                "https://user:pa55@raw.example:8443/x and http://h/ok",
                &[],
                "https://[redacted]@raw.example:8443/x and http://h/ok",
            ),
            (
                "sent ghp_abc123secret to x",
                &["ghp_abc123secret"],
                "sent [redacted] to x",
            ),
            (
                "header Authorization: Bearer abcdefg rejected",
                &[],
                "header Authorization: Bearer [redacted] rejected",
            ),
            ("auth Basic dXNlcjpwYXNz", &[], "auth Basic [redacted]"),
            (
                "user alice:hunter22 refused",
                &["alice:hunter22", "hunter22"],
                "user [redacted] refused",
            ),
            ("line\nbreak\u{7}", &[], "line break "),
            (
                "repository or branch not found",
                &[],
                "repository or branch not found",
            ),
            ("the tokenizer failed", &[], "the tokenizer failed"),
        ];
        for (input, secrets, expected) in cases {
            assert_eq!(sanitize(input, secrets), *expected, "{input}");
        }
    }

    #[test]
    fn errors_are_cut_to_one_kib_on_a_character_boundary() {
        let long = "é".repeat(2000);
        let out = sanitize(&long, &[]);
        assert!(out.len() <= MAX_ERROR_BYTES);
        assert!(out.len() >= MAX_ERROR_BYTES - 1);
        assert!(out.chars().all(|c| c == 'é'));
    }
}
