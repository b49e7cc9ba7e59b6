//! Which tree entries are manifests (§2.4 step 4), how a file's documents are read (step 6) and
//! how duplicate names are settled (step 7). Pure functions: the engine ([`super`]) feeds them.

use serde::Serialize;
use serde_json::Value;

use super::github::TreeEntry;
use shared::manifest::{self, Manifest};
use shared::yaml;

/// The most YAML files a repository may hold (more fails the sync).
pub const MAX_CANDIDATES: usize = 1000;
/// A larger file is skipped with a warning.
pub const MAX_FILE_BYTES: u64 = 256 * 1024;
/// The most documents one file may hold.
pub const MAX_DOCUMENTS: usize = 20;
/// The deepest nesting a synced document may have.
pub const MAX_DEPTH: usize = 32;
/// The most templates one repository may hold (more fails the sync).
pub const MAX_TEMPLATES: usize = 500;

/// A problem with one file (or one document of it), shown in `sync_warnings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub path: String,
    /// The document's index in a multi-document file (0-based), when the problem is one document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc: Option<usize>,
    pub reason: String,
}

impl Warning {
    pub fn file(path: &str, reason: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            doc: None,
            reason: reason.into(),
        }
    }
}

/// A YAML blob of the tree that may hold manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub path: String,
    pub blob_sha: String,
    pub size: u64,
}

/// The candidates of a tree, sorted by path bytes: blobs (not symlinks `120000`, not submodules
/// `160000`) whose path ends in `.yaml`/`.yml` (any ASCII case) and has no segment starting with
/// `.` (so `.github/workflows` is skipped). More than [`MAX_CANDIDATES`] is an error.
pub fn candidates(tree: Vec<TreeEntry>) -> Result<Vec<Candidate>, String> {
    let mut out: Vec<Candidate> = tree
        .into_iter()
        .filter(|e| e.kind == "blob" && e.mode != "120000" && e.mode != "160000")
        .filter(|e| is_yaml_path(&e.path))
        .map(|e| Candidate {
            path: e.path,
            blob_sha: e.sha,
            size: e.size.unwrap_or(0),
        })
        .collect();
    if out.len() > MAX_CANDIDATES {
        return Err(format!("too many YAML files (more than {MAX_CANDIDATES})"));
    }
    out.sort_unstable_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    Ok(out)
}

/// A `.yaml`/`.yml` path none of whose segments is hidden (or empty).
pub fn is_yaml_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    (lower.ends_with(".yaml") || lower.ends_with(".yml"))
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && !seg.starts_with('.'))
}

/// What one file held.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub templates: Vec<Manifest>,
    pub warnings: Vec<Warning>,
}

impl Parsed {
    /// The memo's outcome: `template` when it held at least one, else `invalid` when something
    /// was refused, else `ignored` (another `kind`, an empty file).
    pub fn outcome(&self) -> &'static str {
        if !self.templates.is_empty() {
            "template"
        } else if !self.warnings.is_empty() {
            "invalid"
        } else {
            "ignored"
        }
    }
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Reads every document of a file: UTF-8 (a BOM stripped), YAML without aliases or anchors, at
/// most [`MAX_DOCUMENTS`] documents nested at most [`MAX_DEPTH`] deep. Documents of
/// `kind: Template` are validated (§2.2); other kinds are ignored; refusals are warnings.
pub fn parse_file(path: &str, bytes: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let Ok(text) = std::str::from_utf8(bytes) else {
        parsed.warnings.push(Warning::file(path, "not UTF-8 text"));
        return parsed;
    };
    let docs = match yaml::parse_documents(text) {
        Ok(docs) => docs,
        Err(e) => {
            parsed.warnings.push(Warning::file(path, e.0));
            return parsed;
        }
    };
    if docs.len() > MAX_DOCUMENTS {
        parsed.warnings.push(Warning::file(
            path,
            format!("more than {MAX_DOCUMENTS} YAML documents"),
        ));
        return parsed;
    }
    for (index, doc) in docs.into_iter().enumerate() {
        let is_template = matches!(doc.get("kind"), Some(Value::String(k)) if k == "Template");
        if !is_template {
            continue;
        }
        let refuse = |reason: String| Warning {
            path: path.to_owned(),
            doc: Some(index),
            reason,
        };
        if depth(&doc) > MAX_DEPTH {
            parsed
                .warnings
                .push(refuse(format!("nested deeper than {MAX_DEPTH} levels")));
            continue;
        }
        match manifest::validate(doc) {
            Ok(m) => parsed.templates.push(m),
            Err(e) => parsed.warnings.push(refuse(e.0)),
        }
    }
    parsed
}

/// One template found by the sync, with the file it came from.
#[derive(Debug, Clone)]
pub struct Found {
    pub path: String,
    pub name: String,
    /// `None`: the file's blob is unchanged since it was last read (not fetched again).
    pub manifest: Option<Manifest>,
    /// Its catalog row holds this file's version (so an unfetched one needs no write).
    pub stored: bool,
}

/// Keeps the first template of each name (files in path order, documents in file order); every
/// later one is a warning naming where the name was first defined.
pub fn dedupe(found: Vec<Found>, warnings: &mut Vec<Warning>) -> Vec<Found> {
    // (name, path of its first definition), sorted by name for binary search.
    let mut first: Vec<(String, String)> = Vec::new();
    let mut kept = Vec::with_capacity(found.len());
    for f in found {
        let at = first.binary_search_by(|(name, _)| name.as_str().cmp(&f.name));
        if let Ok(i) = at {
            let origin = &first[i].1;
            warnings.push(Warning::file(
                &f.path,
                format!(
                    "duplicate template name '{}' (first defined in {origin})",
                    f.name
                ),
            ));
            continue;
        }
        if let Err(i) = at {
            first.insert(i, (f.name.clone(), f.path.clone()));
        }
        kept.push(f);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, mode: &str, kind: &str, size: u64) -> TreeEntry {
        TreeEntry {
            path: path.into(),
            mode: mode.into(),
            kind: kind.into(),
            sha: format!("sha-{path}"),
            size: Some(size),
        }
    }

    #[test]
    fn candidates_follow_the_rules() {
        let tree = vec![
            entry("browsers/firefox.yaml", "100644", "blob", 10),
            entry("browsers", "040000", "tree", 0),
            entry("a/B.YML", "100755", "blob", 10),
            entry("link.yaml", "120000", "blob", 10),
            entry("sub.yaml", "160000", "commit", 0),
            entry("module.yaml", "160000", "blob", 0),
            entry(".github/workflows/ci.yml", "100644", "blob", 10),
            entry("x/.hidden.yaml", "100644", "blob", 10),
            entry("README.md", "100644", "blob", 10),
            entry("notes.yaml.txt", "100644", "blob", 10),
            entry("administration,business/odoo.yaml", "100644", "blob", 10),
            entry("big.yaml", "100644", "blob", 10_000_000),
        ];
        let paths: Vec<String> = candidates(tree)
            .unwrap()
            .into_iter()
            .map(|c| c.path)
            .collect();
        assert_eq!(
            paths,
            vec![
                "a/B.YML",
                "administration,business/odoo.yaml",
                "big.yaml",
                "browsers/firefox.yaml"
            ],
            "symlinks, submodules, hidden segments and other extensions are skipped; sorted by bytes"
        );
    }

    #[test]
    fn more_than_a_thousand_yaml_files_is_refused() {
        let tree: Vec<TreeEntry> = (0..=MAX_CANDIDATES)
            .map(|i| entry(&format!("t/{i}.yaml"), "100644", "blob", 1))
            .collect();
        assert!(candidates(tree)
            .unwrap_err()
            .contains("too many YAML files"));
    }

    const FIREFOX: &str = "apiVersion: stream.space/v1alpha1\nkind: Template\nmetadata: {name: firefox}\nspec: {displayName: Firefox, baseImage: lscr.io/linuxserver/firefox:latest}\n";

    #[test]
    fn every_document_is_read_and_other_kinds_ignored() {
        let text = format!(
            "\u{feff}{FIREFOX}---\nkind: TemplateCatalog\nitems: []\n---\n{}---\napiVersion: stream.space/v1alpha1\nkind: Template\nmetadata: {{name: bad}}\nspec: {{displayName: Bad}}\n",
            FIREFOX.replace("firefox}", "chromium}")
        );
        let parsed = parse_file("multi.yaml", text.as_bytes());
        let names: Vec<&str> = parsed.templates.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, vec!["firefox", "chromium"]);
        assert_eq!(parsed.warnings.len(), 1);
        assert_eq!(parsed.warnings[0].doc, Some(3));
        assert!(
            parsed.warnings[0].reason.contains("baseImage"),
            "{:?}",
            parsed.warnings
        );
        assert_eq!(parsed.outcome(), "template");
    }

    #[test]
    fn unsafe_or_broken_files_are_warnings() {
        let many = "---\na: 1\n".repeat(MAX_DOCUMENTS + 1);
        let cases: &[(&[u8], &str)] = &[
            (b"\xff\xfe", "not UTF-8"),
            (b"a: &x [1]\nb: *x\n", "anchor"),
            (b"a: [1,\n", "invalid YAML"),
            (many.as_bytes(), "more than 20"),
        ];
        for (bytes, reason) in cases {
            let parsed = parse_file("f.yaml", bytes);
            assert!(parsed.templates.is_empty());
            assert_eq!(parsed.outcome(), "invalid", "{reason}");
            assert!(
                parsed.warnings[0]
                    .reason
                    .to_lowercase()
                    .contains(&reason.to_lowercase()),
                "{reason}: {:?}",
                parsed.warnings
            );
        }
        let deep = format!(
            "kind: Template\nx: {}1{}\n",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        let parsed = parse_file("deep.yaml", deep.as_bytes());
        assert!(
            parsed.warnings[0].reason.contains("deeper than 32 levels"),
            "{:?}",
            parsed.warnings
        );
        assert_eq!(
            parse_file("catalog.yaml", b"kind: TemplateCatalog\n").outcome(),
            "ignored"
        );
        assert_eq!(parse_file("empty.yaml", b"").outcome(), "ignored");
    }

    #[test]
    fn the_first_duplicate_by_path_order_wins() {
        let firefox = manifest::from_yaml(FIREFOX).unwrap();
        let found = |path: &str, manifest: Option<Manifest>| Found {
            path: path.into(),
            name: "firefox".into(),
            manifest,
            stored: false,
        };
        let found = vec![
            found("a/firefox.yaml", Some(firefox.clone())),
            found("b/firefox.yaml", None),
            found("c/other.yaml", Some(firefox)),
        ];
        let mut warnings = Vec::new();
        let kept = dedupe(found, &mut warnings);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].path, "a/firefox.yaml");
        assert_eq!(warnings.len(), 2);
        assert_eq!(warnings[0].path, "b/firefox.yaml");
        assert_eq!(
            warnings[0].reason,
            "duplicate template name 'firefox' (first defined in a/firefox.yaml)"
        );
    }
}
