//! Session request fields: Go-style durations and tags (SPEC-wave2 §1.5).

use crate::ApiError;

/// `idle_timeout`: 1 minute to 7 days.
const IDLE_MIN_S: u64 = 60;
const IDLE_MAX_S: u64 = 7 * 24 * 3600;
/// `max_session_duration`: 1 minute to 30 days.
const MAX_DURATION_MIN_S: u64 = 60;
const MAX_DURATION_MAX_S: u64 = 30 * 24 * 3600;

const MAX_TAGS: usize = 20;
const MAX_TAG_CHARS: usize = 64;

/// Digits allowed in one duration part (`{1,5}`).
const MAX_PART_DIGITS: usize = 5;

/// A Go-style duration `^([0-9]{1,5}h)?([0-9]{1,5}m)?([0-9]{1,5}s)?$`, not empty, in seconds.
/// Parts come in the order h, m, s, each at most once (`1h30m`, `90s`, `2h5s`).
pub fn parse_duration(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut total: u64 = 0;
    // Units still allowed, in order.
    let mut units: &[(char, u64)] = &[('h', 3600), ('m', 60), ('s', 1)];
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > MAX_PART_DIGITS {
            return None;
        }
        let (number, tail) = rest.split_at(digits);
        let mut chars = tail.chars();
        let unit = chars.next()?;
        let position = units.iter().position(|(u, _)| *u == unit)?;
        let (_, factor) = units.get(position)?;
        let n: u64 = number.parse().ok()?;
        total = total.checked_add(n.checked_mul(*factor)?)?;
        units = units.get(position + 1..)?;
        rest = chars.as_str();
    }
    Some(total)
}

/// The shortest Go-ish form: `30m`, `8h`, `1h30m`, `1m30s`; 0 is `0s`.
pub fn format_duration(secs: u64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(h, 'h'), (m, 'm'), (s, 's')] {
        if n != 0 {
            out.push_str(&n.to_string());
            out.push(unit);
        }
    }
    out
}

fn duration_field(
    field: &str,
    value: &str,
    min: u64,
    max: u64,
    max_text: &str,
) -> Result<u64, ApiError> {
    let range = format!("between 1m and {} ({max_text})", format_duration(max));
    match parse_duration(value) {
        Some(secs) if (min..=max).contains(&secs) => Ok(secs),
        Some(_) => Err(ApiError::bad_request(
            "invalid_field",
            format!("{field} must be {range}"),
        )),
        None => Err(ApiError::bad_request(
            "invalid_field",
            format!(
                "{field} must be a duration of hours, minutes and seconds such as 30m, 8h or \
                 1h30m (each part at most 5 digits, in the order h, m, s), {range}"
            ),
        )),
    }
}

/// `idle_timeout`: a duration from 1 minute to 7 days, in seconds.
pub fn idle_timeout(value: &str) -> Result<u64, ApiError> {
    duration_field("idle_timeout", value, IDLE_MIN_S, IDLE_MAX_S, "7 days")
}

/// `max_session_duration`: a duration from 1 minute to 30 days, in seconds.
pub fn max_duration(value: &str) -> Result<u64, ApiError> {
    duration_field(
        "max_session_duration",
        value,
        MAX_DURATION_MIN_S,
        MAX_DURATION_MAX_S,
        "30 days",
    )
}

/// At most 20 tags, each trimmed and lowercased, 1–64 characters of `a-z 0-9 space . _ : / -`;
/// duplicates are dropped, the first occurrence keeps its place.
pub fn normalize_tags(tags: &[String]) -> Result<Vec<String>, ApiError> {
    if tags.len() > MAX_TAGS {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!(
                "tags: at most {MAX_TAGS} tags are allowed (got {})",
                tags.len()
            ),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for (i, tag) in tags.iter().enumerate() {
        let tag = tag.trim().to_lowercase();
        let allowed = |c: char| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, ' ' | '.' | '_' | ':' | '/' | '-')
        };
        let len = tag.chars().count();
        if !(1..=MAX_TAG_CHARS).contains(&len) || !tag.chars().all(allowed) {
            return Err(ApiError::bad_request(
                "invalid_field",
                format!(
                    "tags[{i}] must be 1-{MAX_TAG_CHARS} characters (after trimming) of \
                     letters, digits, spaces, '.', '_', ':', '/' or '-'"
                ),
            ));
        }
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(err: ApiError) -> String {
        assert_eq!(err.status.as_u16(), 400);
        assert_eq!(err.code, "invalid_field");
        err.message
    }

    fn tags(list: &[&str]) -> Result<Vec<String>, ApiError> {
        normalize_tags(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn durations_parse_the_go_subset() {
        for (text, secs) in [
            ("30m", 1800),
            ("8h", 28_800),
            ("1h30m", 5400),
            ("90s", 90),
            ("2h5s", 7205),
            ("1h1m1s", 3661),
            ("0s", 0),
            ("00001h", 3600),
            ("99999h99999m99999s", 99_999 * 3600 + 99_999 * 60 + 99_999),
        ] {
            assert_eq!(parse_duration(text), Some(secs), "{text}");
        }
        for text in [
            "", "h", "m30", "30", "100000s", "1m1h", "1h1h", "1s1m", "1d", "1.5h", "-1h", "+1h",
            " 1h", "1h ", "1H", "1h30", "1hm", "30mm", "1µs", "１h",
        ] {
            assert_eq!(parse_duration(text), None, "{text:?}");
        }
    }

    #[test]
    fn durations_format_shortest() {
        for (secs, text) in [
            (0, "0s"),
            (90, "1m30s"),
            (1800, "30m"),
            (28_800, "8h"),
            (5400, "1h30m"),
            (3601, "1h1s"),
            (604_800, "168h"),
        ] {
            assert_eq!(format_duration(secs), text);
            assert_eq!(parse_duration(text), Some(secs), "round trip {text}");
        }
    }

    #[test]
    fn idle_timeout_range_is_one_minute_to_seven_days() {
        assert_eq!(idle_timeout("1m").unwrap(), 60);
        assert_eq!(idle_timeout("60s").unwrap(), 60);
        assert_eq!(idle_timeout("168h").unwrap(), 604_800);
        assert_eq!(idle_timeout("30m").unwrap(), 1800);
        let short = message(idle_timeout("59s").unwrap_err());
        assert_eq!(short, "idle_timeout must be between 1m and 168h (7 days)");
        assert_eq!(message(idle_timeout("168h1s").unwrap_err()), short);
        let bad = message(idle_timeout("1d").unwrap_err());
        assert!(bad.starts_with("idle_timeout must be a duration"), "{bad}");
        assert!(bad.ends_with("between 1m and 168h (7 days)"), "{bad}");
        assert!(message(idle_timeout("").unwrap_err()).starts_with("idle_timeout"));
    }

    #[test]
    fn max_duration_range_is_one_minute_to_thirty_days() {
        assert_eq!(max_duration("8h").unwrap(), 28_800);
        assert_eq!(max_duration("720h").unwrap(), 2_592_000);
        assert_eq!(max_duration("1m").unwrap(), 60);
        assert_eq!(
            message(max_duration("720h1s").unwrap_err()),
            "max_session_duration must be between 1m and 720h (30 days)"
        );
        assert_eq!(
            message(max_duration("0s").unwrap_err()),
            "max_session_duration must be between 1m and 720h (30 days)"
        );
        assert!(message(max_duration("8 hours").unwrap_err())
            .starts_with("max_session_duration must be a duration"));
    }

    #[test]
    fn tags_are_trimmed_lowercased_and_deduplicated_in_order() {
        assert_eq!(
            tags(&[" Dev ", "project-a", "dev", "a.b_c:d/e f", "PROJECT-A"]).unwrap(),
            vec!["dev", "project-a", "a.b_c:d/e f"]
        );
        assert_eq!(tags(&[]).unwrap(), Vec::<String>::new());
        assert!(tags(&[&"x".repeat(64)]).is_ok());
        let twenty: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
        assert_eq!(normalize_tags(&twenty).unwrap().len(), 20);
    }

    #[test]
    fn bad_tags_are_rejected() {
        let twenty_one: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
        assert_eq!(
            message(normalize_tags(&twenty_one).unwrap_err()),
            "tags: at most 20 tags are allowed (got 21)"
        );
        for bad in [
            "",
            "   ",
            &"x".repeat(65),
            "a,b",
            "tag!",
            "é",
            "a\tb",
            "a\nb",
            "<script>",
        ] {
            let err = message(tags(&["ok", bad]).unwrap_err());
            assert!(
                err.starts_with("tags[1] must be 1-64 characters"),
                "{bad:?}: {err}"
            );
        }
    }
}
