//! Migrations as numbered `.sql` files (`shared/migrations/NNNN_name.sql`), embedded at build
//! time and split into single statements at compile time ([`crate::sql_file!`]), since Spin's
//! `execute` runs one statement per call.
//!
//! File format: statements end with a `;` at the end of a line; a statement must therefore not
//! end a line with `;` before its end (a trigger body writes `BEGIN …; END` on one line).
//!
//! The text is compacted at compile time before it is split ([`compact`]): `--` comments go and
//! every run of whitespace outside quotes becomes one space, or one newline where it held one. The
//! comments document the schema in the source; every component embeds every migration, and the
//! compacted text is a third smaller (about 6.7 KB less in each `.wasm`).

/// Compacts SQL text (see the module doc): drops `--` comments, and turns each run of whitespace
/// outside `'…'` and `"…"` into one newline (if it held one) or one space; leading and trailing
/// whitespace goes. Writes into `out` when given, and returns the compacted length.
const fn compact_into(text: &[u8], mut out: Option<&mut [u8]>) -> usize {
    let mut n = 0;
    let mut i = 0;
    let mut quote = 0u8;
    // A whitespace run is pending: 1 = a space, 2 = a newline.
    let mut gap = 0u8;
    while i < text.len() {
        let c = text[i];
        if quote == 0 {
            if c == b'-' && i + 1 < text.len() && text[i + 1] == b'-' {
                while i < text.len() && text[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            if matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
                if c == b'\n' {
                    gap = 2;
                } else if gap == 0 {
                    gap = 1;
                }
                i += 1;
                continue;
            }
            if c == b'\'' || c == b'"' {
                quote = c;
            }
        } else if c == quote {
            quote = 0;
        }
        if gap != 0 && n > 0 {
            if let Some(buf) = &mut out {
                buf[n] = if gap == 2 { b'\n' } else { b' ' };
            }
            n += 1;
        }
        gap = 0;
        if let Some(buf) = &mut out {
            buf[n] = c;
        }
        n += 1;
        i += 1;
    }
    n
}

/// The length of `text` compacted.
pub const fn compact_len(text: &str) -> usize {
    compact_into(text.as_bytes(), None)
}

/// `text` compacted, into an array of exactly [`compact_len`] bytes.
pub const fn compact<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    compact_into(text.as_bytes(), Some(&mut out));
    out
}

/// The compacted bytes as text (compaction only drops ASCII, so they stay UTF-8).
pub const fn as_str(bytes: &'static [u8]) -> &'static str {
    match core::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(_) => "",
    }
}

/// Where the statement at or after `from` starts and ends (`;` excluded); `None` when only blank
/// lines and comments are left.
const fn next(text: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    // Skip blank lines and whole-line comments.
    let start = loop {
        let mut j = i;
        while j < text.len() && matches!(text[j], b' ' | b'\t' | b'\r') {
            j += 1;
        }
        if j >= text.len() {
            return None;
        }
        if text[j] == b'\n' {
            i = j + 1;
            continue;
        }
        if text[j] == b'-' && j + 1 < text.len() && text[j + 1] == b'-' {
            while j < text.len() && text[j] != b'\n' {
                j += 1;
            }
            i = j + 1;
            continue;
        }
        break j;
    };
    let mut k = start;
    while k < text.len() {
        if text[k] == b';' {
            let mut e = k + 1;
            while e < text.len() && matches!(text[e], b' ' | b'\t' | b'\r') {
                e += 1;
            }
            if e >= text.len() || text[e] == b'\n' {
                return Some((start, k));
            }
        }
        k += 1;
    }
    // The last statement may omit its `;`: it runs to the end, without trailing whitespace.
    let mut end = text.len();
    while end > start && matches!(text[end - 1], b' ' | b'\t' | b'\r' | b'\n') {
        end -= 1;
    }
    Some((start, end))
}

/// How many statements `text` holds.
pub const fn count(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut n = 0;
    let mut at = 0;
    while let Some((_, end)) = next(bytes, at) {
        n += 1;
        at = end + 1;
    }
    n
}

/// Statement `n` of `text` (empty when there is none).
pub const fn nth(text: &str, n: usize) -> &str {
    let bytes = text.as_bytes();
    let mut at = 0;
    let mut i = 0;
    while let Some((start, end)) = next(bytes, at) {
        if i == n {
            let (_, tail) = bytes.split_at(start);
            let (statement, _) = tail.split_at(end - start);
            return match core::str::from_utf8(statement) {
                Ok(s) => s,
                Err(_) => "",
            };
        }
        i += 1;
        at = end + 1;
    }
    ""
}

/// The first `N` statements of `text`.
pub const fn split<const N: usize>(text: &'static str) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = nth(text, i);
        i += 1;
    }
    out
}

/// The statements of a `.sql` file (path relative to `shared/src/`), embedded, compacted and
/// split at compile time: `&'static [&'static str]`.
#[macro_export]
macro_rules! sql_file {
    ($path:literal) => {{
        const RAW: &str = include_str!($path);
        const LEN: usize = $crate::sql_file::compact_len(RAW);
        const BYTES: [u8; LEN] = $crate::sql_file::compact::<LEN>(RAW);
        const TEXT: &str = $crate::sql_file::as_str(&BYTES);
        const N: usize = $crate::sql_file::count(TEXT);
        const STATEMENTS: [&str; N] = $crate::sql_file::split::<N>(TEXT);
        &STATEMENTS
    }};
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::MIGRATIONS;

    #[test]
    fn statements_comments_and_blank_lines() {
        let text = "-- header\n--\n\nCREATE TABLE t (\n    a INTEGER -- inline\n) STRICT;\n\n  -- between\nCREATE TRIGGER x BEGIN SELECT 1; END;\nDROP INDEX i";
        assert_eq!(count(text), 3);
        assert_eq!(
            nth(text, 0),
            "CREATE TABLE t (\n    a INTEGER -- inline\n) STRICT"
        );
        assert_eq!(nth(text, 1), "CREATE TRIGGER x BEGIN SELECT 1; END");
        assert_eq!(nth(text, 2), "DROP INDEX i");
        assert_eq!(nth(text, 3), "");
        assert_eq!(count("-- only a comment\n\n"), 0);
        assert_eq!(split::<2>("A;\r\nB;  \n"), ["A", "B"]);
    }

    fn compacted(text: &str) -> String {
        let mut out = vec![0u8; compact_len(text)];
        compact_into(text.as_bytes(), Some(&mut out));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn compaction_drops_comments_and_whitespace_but_never_inside_quotes() {
        let text = "-- header\n\nCREATE TABLE t (\n    a TEXT DEFAULT '  -- kept  ', -- inline\n\tb \"x  y\"\n) STRICT; -- after\n\n  -- between\nCREATE TRIGGER x BEGIN SELECT 'it''s  --'; END;\n";
        let out = compacted(text);
        assert_eq!(
            out,
            "CREATE TABLE t (\na TEXT DEFAULT '  -- kept  ',\nb \"x  y\"\n) STRICT;\nCREATE TRIGGER x BEGIN SELECT 'it''s  --'; END;"
        );
        assert_eq!(count(&out), 2);
        assert_eq!(
            nth(&out, 1),
            "CREATE TRIGGER x BEGIN SELECT 'it''s  --'; END"
        );
    }

    /// Every file in `shared/migrations/` is a migration, in order, named as listed, and no
    /// statement is empty; numbered files cannot be forgotten or left unlisted.
    #[test]
    fn every_numbered_file_is_a_listed_migration() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let from_files: Vec<String> = MIGRATIONS
            .iter()
            .filter(|m| {
                files
                    .iter()
                    .any(|f| f.starts_with(&format!("{:04}_", m.version)))
            })
            .map(|m| format!("{:04}_{}.sql", m.version, m.name))
            .collect();
        assert_eq!(
            files, from_files,
            "file names are NNNN_<migration name>.sql"
        );
        for file in &files {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            let version: i64 = file[..4].parse().unwrap();
            let m = MIGRATIONS.iter().find(|m| m.version == version).unwrap();
            // Compaction keeps every statement: the raw file's, each with comments and
            // whitespace runs folded.
            let parsed: Vec<String> = (0..count(&text))
                .map(|i| compacted(nth(&text, i)))
                .collect();
            assert_eq!(
                parsed, m.statements,
                "{file} is what migration {version} runs"
            );
            assert!(m.statements.iter().all(|s| !s.trim().is_empty()), "{file}");
        }
    }
}
