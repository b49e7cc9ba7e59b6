//! YAML documents read into JSON values, safely.
//!
//! Built on `saphyr-parser`'s event stream (pure Rust, YAML 1.2) rather than a loader, so that
//! this module decides what a document may hold:
//! - scalars resolve by the YAML 1.2 **core schema**: `true`/`false` (three spellings each), `null`
//!   and `~`, decimal/octal (`0o`)/hex (`0x`) integers and decimal floats; everything else,
//!   including YAML 1.1's `yes`, `no`, `on`, `off`, is a string. Quoted and block scalars are
//!   always strings, as is anything tagged `!!str`;
//! - anchors and aliases are refused (no "billion laughs" expansion, no shared nodes);
//! - nesting is limited to [`MAX_DEPTH`] collections;
//! - mapping keys must be scalars and unique;
//! - `.inf` and `.nan` (no JSON form) stay strings.

use saphyr_parser::{Event, Parser, ScalarStyle, Tag};
use serde_json::{Map, Number, Value};

/// The deepest nesting of sequences and mappings a document may have.
pub const MAX_DEPTH: usize = 32;

/// Why a YAML text was refused (a message for the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError(pub String);

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(message: impl Into<String>) -> Result<T, YamlError> {
    Err(YamlError(message.into()))
}

enum Frame {
    Seq(Vec<Value>),
    Map(Map<String, Value>, Option<String>),
}

/// Every document of a YAML stream (`---`-separated), in order.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, YamlError> {
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut current: Option<Value> = None;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| YamlError(format!("invalid YAML: {e}")))?;
        let line = span.start.line();
        let value = match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd => continue,
            Event::DocumentStart(_) => {
                current = None;
                continue;
            }
            Event::DocumentEnd => {
                docs.push(current.take().unwrap_or(Value::Null));
                continue;
            }
            Event::Alias(_) => return err(format!("line {line}: YAML aliases are not allowed")),
            Event::Scalar(text, style, anchor, tag) => {
                refuse_anchor(anchor, line)?;
                resolve_scalar(&text, style, tag.as_deref(), line)?
            }
            Event::SequenceStart(anchor, tag) => {
                refuse_anchor(anchor, line)?;
                refuse_tag(tag.as_deref(), "seq", line)?;
                push(&mut stack, Frame::Seq(Vec::new()), line)?;
                continue;
            }
            Event::MappingStart(anchor, tag) => {
                refuse_anchor(anchor, line)?;
                refuse_tag(tag.as_deref(), "map", line)?;
                push(&mut stack, Frame::Map(Map::new(), None), line)?;
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items)) => Value::Array(items),
                _ => return err(format!("line {line}: unbalanced sequence")),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(map, None)) => Value::Object(map),
                _ => return err(format!("line {line}: unbalanced mapping")),
            },
        };
        // A finished node: into its parent, or it is the document's root.
        match stack.last_mut() {
            None => current = Some(value),
            Some(Frame::Seq(items)) => items.push(value),
            Some(Frame::Map(map, key)) => match key.take() {
                Some(k) => {
                    map.insert(k, value);
                }
                None => {
                    let k = match value {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Null => "null".to_owned(),
                        Value::Array(_) | Value::Object(_) => {
                            return err(format!("line {line}: mapping keys must be scalars"))
                        }
                    };
                    if map.contains_key(&k) {
                        return err(format!("line {line}: duplicate key `{k}`"));
                    }
                    *key = Some(k);
                }
            },
        }
    }
    Ok(docs)
}

/// Exactly one document (an empty text or a stream of several is an error).
pub fn parse_one(text: &str) -> Result<Value, YamlError> {
    let mut docs = parse_documents(text)?;
    match docs.len() {
        1 => Ok(docs.remove(0)),
        0 => err("the YAML text holds no document"),
        n => err(format!(
            "the YAML text holds {n} documents; one was expected"
        )),
    }
}

fn push(stack: &mut Vec<Frame>, frame: Frame, line: usize) -> Result<(), YamlError> {
    if stack.len() >= MAX_DEPTH {
        return err(format!(
            "line {line}: nesting deeper than {MAX_DEPTH} levels"
        ));
    }
    stack.push(frame);
    Ok(())
}

fn refuse_anchor(anchor: usize, line: usize) -> Result<(), YamlError> {
    if anchor != 0 {
        return err(format!("line {line}: YAML anchors are not allowed"));
    }
    Ok(())
}

/// A collection may carry its own core tag (`!!seq`, `!!map`) and nothing else.
fn refuse_tag(tag: Option<&Tag>, expected: &str, line: usize) -> Result<(), YamlError> {
    match tag {
        None => Ok(()),
        Some(t) if t.is_yaml_core_schema() && t.suffix == expected => Ok(()),
        Some(t) => err(format!("line {line}: tag `{t}` is not supported")),
    }
}

fn resolve_scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    line: usize,
) -> Result<Value, YamlError> {
    if let Some(t) = tag {
        if !t.is_yaml_core_schema() {
            return err(format!("line {line}: tag `{t}` is not supported"));
        }
        let resolved = core_scalar(text);
        return match (t.suffix.as_str(), resolved) {
            ("str", _) => Ok(Value::String(text.to_owned())),
            ("null", v @ Value::Null)
            | ("bool", v @ Value::Bool(_))
            | ("int" | "float", v @ Value::Number(_)) => Ok(v),
            (other, _) => err(format!(
                "line {line}: `{text}` is not a valid !!{other} value"
            )),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.to_owned()));
    }
    Ok(core_scalar(text))
}

/// The YAML 1.2 core schema's resolution of a plain scalar.
fn core_scalar(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = core_int(text) {
        return n;
    }
    if is_core_float(text) {
        if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(text.to_owned())
}

fn core_int(text: &str) -> Option<Value> {
    let (digits, radix, signed) = if let Some(rest) = text.strip_prefix("0o") {
        (rest, 8, false)
    } else if let Some(rest) = text.strip_prefix("0x") {
        (rest, 16, false)
    } else {
        (text, 10, true)
    };
    let unsigned = if signed {
        digits.strip_prefix(['-', '+']).unwrap_or(digits)
    } else {
        digits
    };
    if unsigned.is_empty() || !unsigned.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    if radix == 10 {
        if let Ok(n) = digits.parse::<i64>() {
            return Some(Value::Number(n.into()));
        }
        if let Ok(n) = digits.trim_start_matches('+').parse::<u64>() {
            return Some(Value::Number(n.into()));
        }
        // Beyond 64 bits: a float, as the core schema's int has no bound but JSON numbers do.
        return digits
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number);
    }
    u64::from_str_radix(unsigned, radix)
        .ok()
        .map(|n| Value::Number(n.into()))
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_core_float(text: &str) -> bool {
    let s = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && frac.bytes().all(|b| b.is_ascii_digit()),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn core_schema_keeps_yes_and_on_as_strings() {
        let v =
            parse_one("a: yes\nb: no\nc: on\nd: off\ne: true\nf: False\ng: ~\nh:\ni: y").unwrap();
        assert_eq!(
            v,
            json!({"a":"yes","b":"no","c":"on","d":"off","e":true,"f":false,"g":null,"h":null,"i":"y"})
        );
    }

    #[test]
    fn numbers_resolve_by_the_core_schema() {
        let v = parse_one(
            "a: 1000\nb: -3\nc: 0x1F\nd: 0o17\ne: 1.5\nf: .5\ng: 1e3\nh: 012\ni: '1000'\nj: 1_000\nk: .inf\nl: 1.2.3",
        )
        .unwrap();
        assert_eq!(v["a"], json!(1000));
        assert_eq!(v["b"], json!(-3));
        assert_eq!(v["c"], json!(31));
        assert_eq!(v["d"], json!(15));
        assert_eq!(v["e"], json!(1.5));
        assert_eq!(v["f"], json!(0.5));
        assert_eq!(v["g"], json!(1000.0));
        assert_eq!(v["h"], json!(12), "1.2 core: a leading zero is decimal");
        assert_eq!(v["i"], json!("1000"), "quoted stays a string");
        assert_eq!(
            v["j"],
            json!("1_000"),
            "1.1 underscores are not numbers in 1.2"
        );
        assert_eq!(v["k"], json!(".inf"), "no JSON form: kept as text");
        assert_eq!(v["l"], json!("1.2.3"));
    }

    #[test]
    fn str_tag_and_block_scalars_are_strings() {
        let v = parse_one(
            "a: !!str true\nb: |\n  line one\n  line two\nc: >-\n  folded\n  text\nd: \"yes\"",
        )
        .unwrap();
        assert_eq!(v["a"], json!("true"));
        assert_eq!(v["b"], json!("line one\nline two\n"));
        assert_eq!(v["c"], json!("folded text"));
        assert_eq!(v["d"], json!("yes"));
    }

    #[test]
    fn aliases_and_anchors_are_refused() {
        let e = parse_one("a: &x [1, 2]\nb: *x").unwrap_err();
        assert!(e.0.contains("anchors"), "{e}");
        let e = parse_one("a: &x 1").unwrap_err();
        assert!(e.0.contains("anchors"), "{e}");
        let e = parse_documents("a: *x").unwrap_err();
        assert!(e.0.contains("alias") || e.0.contains("invalid YAML"), "{e}");
    }

    #[test]
    fn billion_laughs_is_refused_before_any_expansion() {
        let bomb = "a: &a [\"lol\",\"lol\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b]\n";
        assert!(parse_one(bomb).is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!(
            "{}1{}",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        let e = parse_one(&deep).unwrap_err();
        assert!(e.0.contains("nesting"), "{e}");
        let ok = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse_one(&ok).is_ok());
    }

    #[test]
    fn duplicate_and_complex_keys_are_refused() {
        assert!(parse_one("a: 1\na: 2")
            .unwrap_err()
            .0
            .contains("duplicate key"));
        assert!(parse_one("? [1, 2]\n: x")
            .unwrap_err()
            .0
            .contains("scalars"));
    }

    #[test]
    fn unknown_tags_are_refused() {
        assert!(parse_one("a: !python/object 1").is_err());
        assert!(parse_one("a: !!int abc").is_err());
    }

    #[test]
    fn multi_document_streams() {
        let docs = parse_documents("---\nkind: Template\n---\nkind: Other\n...\n").unwrap();
        assert_eq!(
            docs,
            vec![json!({"kind":"Template"}), json!({"kind":"Other"})]
        );
        assert!(parse_one("---\na: 1\n---\nb: 2")
            .unwrap_err()
            .0
            .contains("2 documents"));
        assert!(parse_one("").is_err());
        assert!(parse_one("a: [1, 2")
            .unwrap_err()
            .0
            .starts_with("invalid YAML"));
    }
}
