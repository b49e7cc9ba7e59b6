//! Kubernetes-style CPU and memory quantities.
//!
//! A deliberately strict subset of the Kubernetes quantity grammar: no signs, no exponents
//! (`1e3`), no bare leading `.` (`.5`), and only the suffixes that make sense for each resource.
//! All arithmetic is checked; out-of-range values are errors, never panics or wrap-arounds.

use super::error::{bad_char, FieldKind, ValidationError};
use super::string_newtype;

/// Longest quantity text accepted (quantities are short; this bounds the work done).
const MAX_TEXT_LEN: usize = 64;

/// A CPU amount: cores as a decimal (`0.5`, `2`, `1.25`) or whole millicores (`500m`).
///
/// Decimals may have more than 3 places only if the extra ones are zeros (`0.5000`), i.e. the
/// value must be whole millicores. The range is 0 to 1,000,000 cores. The original text is kept
/// for display; [`CpuQuantity::millicores`] gives the value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CpuQuantity {
    text: String,
    millicores: u64,
}

impl CpuQuantity {
    /// 1,000,000 cores.
    pub const MAX_MILLICORES: u64 = 1_000_000_000;

    /// Parses and checks a CPU quantity.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let err = |problem: String| ValidationError::new(FieldKind::CpuQuantity, s, problem);
        let (number, suffix) = split_quantity(s).map_err(err)?;
        let millicores = match suffix {
            "" => scale(number, 1000, 3)
                .map_err(|e| err(e.describe("has more than 3 decimal places (finer than 1m)")))?,
            "m" if number.frac.is_some() => {
                return Err(err(
                    "has a fractional millicore value (millicores must be whole, e.g. 500m)".into(),
                ));
            }
            "m" => scale(number, 1, 0).map_err(|e| err(e.describe("")))?,
            _ => {
                return Err(err(format!(
                    "has the unknown suffix '{suffix}' (CPU takes only 'm' for millicores)"
                )));
            }
        };
        if millicores > u128::from(Self::MAX_MILLICORES) {
            return Err(err("is more than 1000000 cores".into()));
        }
        let millicores =
            u64::try_from(millicores).map_err(|_| err("is more than 1000000 cores".into()))?;
        Ok(Self {
            text: s.to_owned(),
            millicores,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The amount in thousandths of a core (`"0.5"` → 500, `"2"` → 2000, `"250m"` → 250).
    pub fn millicores(&self) -> u64 {
        self.millicores
    }
}
string_newtype!(CpuQuantity);

/// A memory amount in bytes: a whole number with an optional binary (`Ki Mi Gi Ti Pi Ei`) or
/// decimal (`k M G T P E`) suffix. A decimal is fine if it lands on whole bytes (`1.5Gi`,
/// `0.5Ki`). The original text is kept for display; [`MemoryQuantity::bytes`] gives the value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemoryQuantity {
    text: String,
    bytes: u64,
}

impl MemoryQuantity {
    /// Parses and checks a memory quantity.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let err = |problem: String| ValidationError::new(FieldKind::MemoryQuantity, s, problem);
        let (number, suffix) = split_quantity(s).map_err(err)?;
        let multiplier: u128 = match suffix {
            "" => 1,
            "Ki" => 1 << 10,
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            "Ti" => 1 << 40,
            "Pi" => 1 << 50,
            "Ei" => 1 << 60,
            "k" => 1_000,
            "M" => 1_000_000,
            "G" => 1_000_000_000,
            "T" => 1_000_000_000_000,
            "P" => 1_000_000_000_000_000,
            "E" => 1_000_000_000_000_000_000,
            "m" => {
                return Err(err(
                    "has the suffix 'm', which means thousandths of a byte; did you mean 'Mi' \
                     or 'M'?"
                        .into(),
                ));
            }
            "K" | "KB" | "kB" | "KiB" => {
                return Err(err(format!(
                    "has the unknown suffix '{suffix}'; did you mean 'Ki' or 'k'?"
                )));
            }
            _ => {
                return Err(err(format!(
                    "has the unknown suffix '{suffix}' (use Ki, Mi, Gi, Ti, Pi, Ei or k, M, G, \
                     T, P, E)"
                )));
            }
        };
        let bytes = scale(number, multiplier, 18)
            .map_err(|e| err(e.describe("has more than 18 significant decimal places")))?;
        let bytes = u64::try_from(bytes)
            .map_err(|_| err(format!("is too large (more than {} bytes)", u64::MAX)))?;
        Ok(Self {
            text: s.to_owned(),
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The amount in bytes (`"128Mi"` → 134217728, `"1G"` → 1000000000).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}
string_newtype!(MemoryQuantity);

const EXPONENT: &str = "uses exponent notation, which is not accepted (write the number out)";

/// `e3`, `E-2`, `e+1`: what Kubernetes would read as an exponent.
fn is_exponent(suffix: &str) -> bool {
    let mut chars = suffix.chars();
    matches!(chars.next(), Some('e' | 'E'))
        && chars
            .as_str()
            .trim_start_matches(['+', '-'])
            .starts_with(|c: char| c.is_ascii_digit())
}

/// The numeric part of a quantity: `int[.frac]`, with the fraction's trailing zeros dropped.
#[derive(Debug, Clone, Copy)]
struct Number<'a> {
    int: &'a str,
    frac: Option<&'a str>,
}

/// Splits `digits[.digits]suffix`, checking everything but the suffix's meaning.
fn split_quantity(s: &str) -> Result<(Number<'_>, &str), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.starts_with('-') {
        return Err("is negative".into());
    }
    if s.starts_with('+') {
        return Err("has a '+' sign (write the number alone)".into());
    }
    if s.char_indices()
        .any(|(i, c)| matches!(c, 'e' | 'E') && s.get(i..).is_some_and(is_exponent))
    {
        return Err(EXPONENT.into());
    }
    if let Some((pos, c)) = s
        .chars()
        .enumerate()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '.'))
    {
        return Err(bad_char(c, pos));
    }
    if s.len() > MAX_TEXT_LEN {
        return Err(format!(
            "is too long ({} characters, at most {MAX_TEXT_LEN})",
            s.len()
        ));
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    if !number.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("must start with a digit (e.g. 0.5, not .5)".into());
    }
    let number = match number.split_once('.') {
        None => Number {
            int: number,
            frac: None,
        },
        Some((_, frac)) if frac.contains('.') => return Err("has more than one '.'".into()),
        Some((_, "")) => return Err("has no digits after '.'".into()),
        Some((int, frac)) => Number {
            int,
            frac: Some(frac.trim_end_matches('0')),
        },
    };
    Ok((number, suffix))
}

/// Why [`scale`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScaleError {
    TooLarge,
    TooPrecise,
    NotWhole,
}

impl ScaleError {
    fn describe(self, too_precise: &str) -> String {
        match self {
            Self::TooLarge => "is too large".into(),
            Self::TooPrecise => too_precise.into(),
            Self::NotWhole => "is not a whole number of bytes".into(),
        }
    }
}

/// `number × multiplier`, which must be a whole number; at most `max_frac` significant
/// fractional digits (which keeps every intermediate inside `u128`).
fn scale(number: Number<'_>, multiplier: u128, max_frac: usize) -> Result<u128, ScaleError> {
    let int = digits_value(number.int).ok_or(ScaleError::TooLarge)?;
    let whole = int.checked_mul(multiplier).ok_or(ScaleError::TooLarge)?;
    let frac = number.frac.unwrap_or_default();
    if frac.is_empty() {
        return Ok(whole);
    }
    if frac.len() > max_frac {
        return Err(ScaleError::TooPrecise);
    }
    let frac_len = u32::try_from(frac.len()).map_err(|_| ScaleError::TooPrecise)?;
    let denominator = 10u128.checked_pow(frac_len).ok_or(ScaleError::TooPrecise)?;
    let numerator = digits_value(frac)
        .and_then(|f| f.checked_mul(multiplier))
        .ok_or(ScaleError::TooLarge)?;
    if numerator % denominator != 0 {
        return Err(ScaleError::NotWhole);
    }
    whole
        .checked_add(numerator / denominator)
        .ok_or(ScaleError::TooLarge)
}

/// The value of an all-digit string, `None` on overflow.
fn digits_value(digits: &str) -> Option<u128> {
    digits.bytes().try_fold(0u128, |acc, b| {
        acc.checked_mul(10)?
            .checked_add(u128::from(b.wrapping_sub(b'0')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cpu_valid_cases() {
        let cases = [
            ("500m", 500, "millicores"),
            ("0.5", 500, "half a core"),
            ("2", 2000, "whole cores"),
            ("1.25", 1250, "two decimals"),
            ("0.001", 1, "one millicore as a decimal"),
            ("0.5000", 500, "extra zero places land on whole millicores"),
            ("0", 0, "zero"),
            ("0m", 0, "zero millicores"),
            ("007", 7000, "leading zeros"),
            ("1000000", 1_000_000_000, "maximum in cores"),
            ("1000000000m", 1_000_000_000, "maximum in millicores"),
            ("1000000.000", 1_000_000_000, "maximum with zero decimals"),
        ];
        for (s, want, why) in cases {
            let q = CpuQuantity::parse(s).unwrap_or_else(|e| panic!("{why}: {s:?}: {e}"));
            assert_eq!(q.millicores(), want, "{why}");
            assert_eq!(q.as_str(), s, "{why}: text kept");
        }
    }

    #[test]
    fn cpu_invalid_cases() {
        let long = format!("0.{}", "0".repeat(70));
        let cases = [
            ("", "empty", "is empty"),
            ("-1", "negative", "negative"),
            ("-500m", "negative millicores", "negative"),
            ("+1", "plus sign", "'+' sign"),
            ("1e3", "exponent", "exponent"),
            ("1E3", "upper exponent", "exponent"),
            ("1e-3", "negative exponent", "exponent"),
            ("1.5m", "fractional millicores", "fractional millicore"),
            (
                "0.0005",
                "finer than a millicore",
                "more than 3 decimal places",
            ),
            (
                "1.2345",
                "four significant decimals",
                "more than 3 decimal places",
            ),
            (
                "1000000.001",
                "just over the maximum",
                "more than 1000000 cores",
            ),
            (
                "1000000001m",
                "over the maximum in millicores",
                "more than 1000000 cores",
            ),
            (
                "99999999999999999999999999999999999999999",
                "huge",
                "too large",
            ),
            (long.as_str(), "too long", "too long"),
            (".5", "bare leading dot", "must start with a digit"),
            ("m", "suffix only", "must start with a digit"),
            ("1.", "trailing dot", "no digits after '.'"),
            ("1.2.3", "two dots", "more than one '.'"),
            ("2Gi", "memory suffix", "unknown suffix 'Gi'"),
            ("1k", "decimal suffix", "unknown suffix 'k'"),
            ("500M", "uppercase M", "unknown suffix 'M'"),
            ("1 ", "trailing space", "whitespace"),
            ("a b", "space", "whitespace"),
            ("1,5", "comma decimal", "','"),
            ("../etc", "path traversal", "'/'"),
            ("<script>", "markup", "'<'"),
            (";rm -rf", "shell", "';'"),
            ("５00m", "full-width digit", "non-ASCII"),
        ];
        for (s, why, want) in cases {
            let e = CpuQuantity::parse(s).map(|_| ()).unwrap_err();
            assert_eq!(e.field_kind(), "cpu_quantity", "{why}");
            assert!(e.problem().contains(want), "{why}: {s:?}: {e}");
        }
    }

    #[test]
    fn memory_valid_cases() {
        let cases: [(&str, u64, &str); 22] = [
            ("0", 0, "zero"),
            ("1", 1, "one byte"),
            ("1024", 1024, "plain bytes"),
            ("1Ki", 1024, "kibibyte"),
            ("128Mi", 128 << 20, "mebibytes"),
            ("2Gi", 2 << 30, "gibibytes"),
            ("1Ti", 1 << 40, "tebibyte"),
            ("1Pi", 1 << 50, "pebibyte"),
            ("15Ei", 15 << 60, "largest whole exbibytes that fit"),
            ("1k", 1_000, "kilobyte"),
            ("1M", 1_000_000, "megabyte"),
            ("1G", 1_000_000_000, "gigabyte"),
            ("1T", 1_000_000_000_000, "terabyte"),
            ("1P", 1_000_000_000_000_000, "petabyte"),
            (
                "18E",
                18_000_000_000_000_000_000,
                "largest whole exabytes that fit",
            ),
            ("1.5Gi", 3 << 29, "decimal landing on whole bytes"),
            ("0.5Ki", 512, "half a kibibyte"),
            ("0.1k", 100, "tenth of a kilobyte"),
            ("1.000", 1, "zero decimals"),
            (
                "0.000000000000000001E",
                1,
                "18 decimal places of an exabyte",
            ),
            ("18446744073709551615", u64::MAX, "u64::MAX bytes"),
            ("0.25Ki", 256, "quarter kibibyte"),
        ];
        for (s, want, why) in cases {
            let q = MemoryQuantity::parse(s).unwrap_or_else(|e| panic!("{why}: {s:?}: {e}"));
            assert_eq!(q.bytes(), want, "{why}");
            assert_eq!(q.as_str(), s, "{why}: text kept");
        }
    }

    #[test]
    fn memory_invalid_cases() {
        let cases = [
            ("", "empty", "is empty"),
            ("-1", "negative", "negative"),
            ("-1Gi", "negative with suffix", "negative"),
            ("+1Gi", "plus sign", "'+' sign"),
            ("1e3", "exponent", "exponent"),
            ("1E3", "upper exponent", "exponent"),
            ("1e+3", "signed exponent", "exponent"),
            ("1.1", "fraction of a byte", "not a whole number of bytes"),
            ("0.3Ki", "non-whole kibibyte fraction", "not a whole number"),
            (
                "0.0000000000000000001E",
                "19 decimal places",
                "more than 18",
            ),
            ("16Ei", "2^64 overflows", "too large"),
            ("19E", "over u64 in exabytes", "too large"),
            ("18446744073709551616", "u64::MAX + 1", "too large"),
            (
                "999999999999999999999999999999999999999999Ei",
                "u128 overflow",
                "too large",
            ),
            ("128m", "milli suffix", "did you mean 'Mi'"),
            ("1K", "uppercase K", "did you mean 'Ki' or 'k'"),
            ("1KB", "KB", "did you mean 'Ki'"),
            ("1GB", "GB", "unknown suffix 'GB'"),
            ("1gi", "lowercase binary suffix", "unknown suffix 'gi'"),
            ("1Gib", "trailing junk", "unknown suffix 'Gib'"),
            ("Gi", "suffix only", "must start with a digit"),
            (".5Gi", "bare leading dot", "must start with a digit"),
            ("1.Gi", "dot before suffix", "no digits after '.'"),
            ("1.2.3", "two dots", "more than one '.'"),
            ("2 Gi", "space", "whitespace"),
            ("../etc", "path traversal", "'/'"),
            ("<script>", "markup", "'<'"),
            (";rm -rf", "shell", "';'"),
            ("1Мi", "Cyrillic M look-alike", "non-ASCII"),
        ];
        for (s, why, want) in cases {
            let e = MemoryQuantity::parse(s).map(|_| ()).unwrap_err();
            assert_eq!(e.field_kind(), "memory_quantity", "{why}");
            assert!(e.problem().contains(want), "{why}: {s:?}: {e}");
        }
    }

    #[test]
    fn exponent_detection() {
        for yes in ["e3", "E3", "e-3", "e+10"] {
            assert!(is_exponent(yes), "{yes}");
        }
        for no in ["", "e", "E", "Ei", "e-", "k", "3"] {
            assert!(!is_exponent(no), "{no}");
        }
    }

    #[test]
    fn serde_round_trips() {
        let c: CpuQuantity = serde_json::from_str("\"250m\"").unwrap();
        assert_eq!(c.millicores(), 250);
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"250m\"");
        let m: MemoryQuantity = serde_json::from_str("\"2Gi\"").unwrap();
        assert_eq!(m.bytes(), 2 << 30);
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"2Gi\"");
        let e = serde_json::from_str::<CpuQuantity>("\"1.5m\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("invalid CPU quantity \"1.5m\": has a fractional millicore"),
            "{e}"
        );
        let e = serde_json::from_str::<MemoryQuantity>("\"1e3\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("invalid memory quantity \"1e3\": uses exponent"),
            "{e}"
        );
    }

    proptest! {
        #[test]
        fn cpu_millicores_round_trip(mc in 0u64..=CpuQuantity::MAX_MILLICORES) {
            let as_m = CpuQuantity::parse(&format!("{mc}m")).unwrap();
            prop_assert_eq!(as_m.millicores(), mc);
            let as_cores = CpuQuantity::parse(&format!("{}.{:03}", mc / 1000, mc % 1000)).unwrap();
            prop_assert_eq!(as_cores.millicores(), mc);
            prop_assert_eq!(CpuQuantity::parse(as_cores.as_str()).unwrap(), as_cores);
        }

        #[test]
        fn memory_suffixes_multiply(n in 0u64..1024, idx in 0usize..12) {
            let suffixes = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "k", "M", "G", "T", "P", "E"];
            let mults: [u64; 12] = [1, 1 << 10, 1 << 20, 1 << 30, 1 << 40, 1 << 50, 1_000, 1_000_000, 1_000_000_000, 1_000_000_000_000, 1_000_000_000_000_000, 1_000_000_000_000_000_000];
            let s = format!("{n}{}", suffixes[idx]);
            let parsed = MemoryQuantity::parse(&s);
            match n.checked_mul(mults[idx]) {
                Some(want) => prop_assert_eq!(parsed.unwrap().bytes(), want),
                None => prop_assert!(parsed.unwrap_err().problem().contains("too large")),
            }
        }

        #[test]
        fn memory_plain_bytes_round_trip(n in any::<u64>()) {
            let q = MemoryQuantity::parse(&n.to_string()).unwrap();
            prop_assert_eq!(q.bytes(), n);
            prop_assert_eq!(MemoryQuantity::parse(q.as_str()).unwrap(), q);
        }

        #[test]
        fn random_strings_never_panic(s in ".{0,100}") {
            if let Ok(q) = CpuQuantity::parse(&s) {
                prop_assert_eq!(CpuQuantity::parse(q.as_str()).unwrap(), q);
            }
            if let Ok(q) = MemoryQuantity::parse(&s) {
                prop_assert_eq!(MemoryQuantity::parse(q.as_str()).unwrap(), q);
            }
        }

        #[test]
        fn near_miss_strings_never_panic(s in "[0-9.]{0,45}(m|k|Ki|Mi|Gi|Ei|E|e[0-9])?") {
            let cpu = CpuQuantity::parse(&s);
            if let Ok(q) = &cpu {
                prop_assert!(q.millicores() <= CpuQuantity::MAX_MILLICORES);
            }
            let _ = MemoryQuantity::parse(&s);
        }
    }
}
