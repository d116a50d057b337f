//! The `number` grader: extracts a number from free-form output and
//! compares it with an expected value within a tolerance.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use ::regex::{Regex, RegexBuilder};

use super::template::{TemplateId, TemplateSet};
use super::text::snippet;
use super::{Check, GradeConfigError, Vars};

/// `type: number` — passes when the picked number in the output is within
/// tolerance of `value`.
///
/// Numbers are recognised as written by people and models: `-3`, `+3`,
/// `−3` (Unicode minus), `1,234.5` (comma thousands separators), `.5`,
/// `1e3`, `$12.50` / `€12` / `£` / `¥` prefixes, and `42%` (read as 42, the
/// number as written). A `-` directly after a letter or digit is a hyphen,
/// not a sign, so `2024-05-01` yields 2024, 5 and 1.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NumberSpec {
    /// Expected number: a YAML number, or a template rendering to one
    /// (the same formats as above are accepted, e.g. "1,234" or "$5").
    pub value: NumberValue,
    /// Absolute tolerance, ≥ 0; default 0 (exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// Relative tolerance as a fraction of |expected|, ≥ 0; default 0. When
    /// both are set the larger allowance wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_tolerance: Option<f64>,
    /// Which number to use when the output has several; default `last`
    /// (the final answer after any reasoning).
    #[serde(default, skip_serializing_if = "Pick::is_default")]
    pub pick: Pick,
    /// Optional regex (not a template) narrowing where to look: numbers are
    /// taken from its first capture group, or from the whole match if it
    /// has none, e.g. `'(?i)answer:\s*(.+)'`. No match fails the grader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Invert the result (pass when the number is NOT within tolerance).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negate: bool,
}

/// Expected value of a `number` grader.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged, expecting = "a number, or a template rendering to one")]
pub enum NumberValue {
    /// A literal YAML number; integers are kept exactly (an f64 would round
    /// 9007199254740993 to 9007199254740992).
    Number(serde_json::Number),
    /// A template rendering to a number.
    Template(String),
}

/// Which number of the output a `number` grader compares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pick {
    /// The first number.
    First,
    /// The last number (default).
    #[default]
    Last,
    /// The only number: fails if the output has zero or several.
    Only,
}

impl Pick {
    /// Keeps the default out of serialised specs.
    fn is_default(&self) -> bool {
        *self == Pick::Last
    }
}

/// The expected value, parsed at load time when possible.
#[derive(Debug, Clone)]
enum Expected {
    Fixed(Num),
    Templated(TemplateId),
}

/// Compiled `number` grader.
#[derive(Debug, Clone)]
pub(crate) struct NumberGrader {
    templates: TemplateSet,
    expected: Expected,
    tolerance: Num,
    relative_tolerance: Num,
    pick: Pick,
    pattern: Option<Regex>,
}

/// An exact decimal: `mant` × 10^-`scale`. Enough for every number people and models write
/// (38 significant digits); larger ones fall back to f64 comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dec {
    mant: i128,
    scale: u32,
}

/// Scales beyond this are not worth exact arithmetic (10^-60 and smaller).
const MAX_SCALE: u32 = 60;

impl Dec {
    /// Parses `[-]digits[.digits][e[+-]digits]` (no separators), or `None` when it does not
    /// fit exactly.
    fn parse(s: &str) -> Option<Dec> {
        let (neg, s) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (num, exp) = match s.find(['e', 'E']) {
            Some(i) => (&s[..i], s[i + 1..].parse::<i64>().ok()?),
            None => (s, 0),
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let mut mant: i128 = 0;
        for c in int.chars().chain(frac.chars()) {
            let d = c.to_digit(10)?;
            mant = mant.checked_mul(10)?.checked_add(i128::from(d))?;
        }
        let mut scale = i64::try_from(frac.len()).ok()?.checked_sub(exp)?;
        while scale < 0 {
            mant = mant.checked_mul(10)?;
            scale += 1;
        }
        let scale = u32::try_from(scale).ok().filter(|s| *s <= MAX_SCALE)?;
        Some(Dec {
            mant: if neg { -mant } else { mant },
            scale,
        })
    }

    /// Both values as mantissas of one common scale, or `None` on overflow.
    fn align(self, other: Dec) -> Option<(i128, i128, u32)> {
        let scale = self.scale.max(other.scale);
        let up = |d: Dec| d.mant.checked_mul(10i128.checked_pow(scale - d.scale)?);
        Some((up(self)?, up(other)?, scale))
    }

    fn abs(self) -> Dec {
        Dec {
            mant: self.mant.saturating_abs(),
            scale: self.scale,
        }
    }

    fn mul(self, other: Dec) -> Option<Dec> {
        Some(Dec {
            mant: self.mant.checked_mul(other.mant)?,
            scale: self.scale.checked_add(other.scale)?,
        })
    }

    fn sub(self, other: Dec) -> Option<Dec> {
        let (a, b, scale) = self.align(other)?;
        Some(Dec {
            mant: a.checked_sub(b)?,
            scale,
        })
    }

    /// `self <= other`, or `None` on overflow.
    fn le(self, other: Dec) -> Option<bool> {
        let (a, b, _) = self.align(other)?;
        Some(a <= b)
    }

    fn max(self, other: Dec) -> Option<Dec> {
        Some(if self.le(other)? { other } else { self })
    }
}

impl std::fmt::Display for Dec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits = self.mant.unsigned_abs().to_string();
        let sign = if self.mant < 0 { "-" } else { "" };
        let scale = self.scale as usize;
        let (int, frac) = if digits.len() > scale {
            digits.split_at(digits.len() - scale)
        } else {
            ("0", digits.as_str())
        };
        let frac = format!("{frac:0>scale$}");
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            write!(f, "{sign}{int}")
        } else {
            write!(f, "{sign}{int}.{frac}")
        }
    }
}

/// A number as written, with its exact value when it fits and its nearest f64.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Num {
    /// The number as written (sign, digits with any thousands separators, exponent), so
    /// reasons quote it exactly rather than as a rounded float.
    text: String,
    exact: Option<Dec>,
    float: f64,
}

impl Num {
    /// A number from its written `text` and its plain form `plain` (separators removed).
    fn new(text: String, plain: &str) -> Option<Num> {
        Some(Num {
            exact: Dec::parse(plain),
            float: plain.parse::<f64>().ok()?,
            text,
        })
    }

    /// A YAML or JSON number, exact when it is an integer (serde_json keeps those as
    /// integers); other numbers as the shortest text that reads back as the same f64.
    pub(crate) fn from_json(n: &serde_json::Number) -> Option<Num> {
        let text = n.to_string();
        let num = Num::new(text.clone(), &text)?;
        num.float.is_finite().then_some(num)
    }

    /// A tolerance or other f64 setting, read as the shortest decimal that is that f64
    /// (0.01 is 0.01, not 0.01000000000000000020816681711721685).
    pub(crate) fn from_f64(x: f64) -> Num {
        let text = x.to_string();
        Num {
            exact: Dec::parse(&text),
            float: x,
            text,
        }
    }

    /// Zero.
    pub(crate) fn zero() -> Num {
        Num::from_f64(0.0)
    }

    /// Whether `self` is within `max(abs_tol, rel_tol × |expected|)` of `expected`: exactly
    /// when every value fits a [`Dec`], else in f64. Returns the verdict and the allowance
    /// (for the reason; `None` when it is zero).
    pub(crate) fn within(
        &self,
        expected: &Num,
        abs_tol: &Num,
        rel_tol: &Num,
    ) -> (bool, Option<String>) {
        let exact = (|| {
            let (f, e) = (self.exact?, expected.exact?);
            let allowed = abs_tol.exact?.max(rel_tol.exact?.mul(e.abs())?)?;
            Some((f.sub(e)?.abs().le(allowed)?, allowed))
        })();
        if let Some((ok, allowed)) = exact {
            return (ok, (allowed.mant != 0).then(|| allowed.to_string()));
        }
        let allowed = abs_tol.float.max(rel_tol.float * expected.float.abs());
        // NaN-safe: a non-finite value makes the comparison false.
        let ok = (self.float - expected.float).abs() <= allowed;
        (ok, (allowed > 0.0).then(|| allowed.to_string()))
    }
}

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Checks a tolerance field: finite and non-negative.
fn tolerance(field: &str, v: Option<f64>) -> Result<Num, GradeConfigError> {
    match v {
        None => Ok(Num::zero()),
        Some(t) if t.is_finite() && t >= 0.0 => Ok(Num::from_f64(t)),
        Some(t) => Err(GradeConfigError::new(
            "number",
            field,
            format!("must be a finite number ≥ 0, got {t}"),
        )),
    }
}

impl NumberGrader {
    /// Validates tolerances, the expected value and the pattern.
    pub(crate) fn compile(spec: &NumberSpec) -> Result<Self, GradeConfigError> {
        let mut templates = TemplateSet::new();
        let expected = match &spec.value {
            NumberValue::Number(n) => Expected::Fixed(Num::from_json(n).ok_or_else(|| {
                GradeConfigError::new("number", "value", format!("must be finite, got {n}"))
            })?),
            NumberValue::Template(src) => {
                let id = templates.add("number", "value", src)?;
                match templates.literal(id) {
                    // A plain string is validated now rather than failing every task.
                    Some(lit) => Expected::Fixed(
                        parse_expected(lit)
                            .map_err(|e| GradeConfigError::new("number", "value", e))?,
                    ),
                    None => Expected::Templated(id),
                }
            }
        };
        let pattern = spec
            .pattern
            .as_deref()
            .map(|p| {
                RegexBuilder::new(p)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| GradeConfigError::new("number", "pattern", e.to_string()))
            })
            .transpose()?;
        Ok(Self {
            templates,
            expected,
            tolerance: tolerance("tolerance", spec.tolerance)?,
            relative_tolerance: tolerance("relative_tolerance", spec.relative_tolerance)?,
            pick: spec.pick,
            pattern,
        })
    }

    /// The expected number for a task.
    pub(crate) fn expected(&self, vars: &Vars) -> Result<Num, String> {
        match &self.expected {
            Expected::Fixed(n) => Ok(n.clone()),
            Expected::Templated(id) => {
                let s = self.templates.render(*id, vars)?;
                parse_expected(&s).map_err(|e| format!("`value`: {e}"))
            }
        }
    }

    /// Extracts, picks and compares.
    pub(crate) fn check(&self, output: &str, vars: &Vars) -> Check {
        let expected = match self.expected(vars) {
            Ok(n) => n,
            Err(e) => return Check::Error(e),
        };
        let region = match &self.pattern {
            None => output,
            Some(re) => match re.captures(output) {
                Some(caps) => caps
                    .get(1)
                    .or_else(|| caps.get(0))
                    .map_or("", |m| m.as_str()),
                None => {
                    return Check::Fail(format!(
                        "/{}/ did not match {}",
                        re.as_str(),
                        snippet(output)
                    ));
                }
            },
        };
        let found = match self.pick {
            Pick::First => numbers(region).next(),
            Pick::Last => numbers(region).last(),
            Pick::Only => {
                let mut it = numbers(region);
                match (it.next(), it.next()) {
                    (Some(n), None) => Some(n),
                    (None, _) => None,
                    (Some(_), Some(_)) => {
                        let count = 2 + it.count();
                        return Check::Fail(format!(
                            "expected exactly one number, found {count} in {}",
                            snippet(region)
                        ));
                    }
                }
            }
        };
        let Some(found) = found else {
            return Check::Fail(format!("no number found in {}", snippet(region)));
        };
        let (ok, allowed) = found.within(&expected, &self.tolerance, &self.relative_tolerance);
        let want = match allowed {
            Some(a) => format!("{expected} ± {a}"),
            None => expected.to_string(),
        };
        if ok {
            Check::Pass(format!("found {found} (expected {want})"))
        } else {
            Check::Fail(format!(
                "expected {want}, found {found} in {}",
                snippet(region)
            ))
        }
    }
}

/// The number-recognition regex (see [`NumberSpec`] for the formats);
/// `None` only if the constant failed to compile, which a test rules out.
fn number_re() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| {
        // ASCII digits only: `\d` is Unicode-aware and f64 parsing is not.
        // Groups: 1 sign, 2 digits (with optional thousands commas and
        // fraction, or a bare fraction), 3 exponent.
        Regex::new(
            r"([-−+]?)[$€£¥]?((?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?|\.[0-9]+)([eE][-+]?[0-9]+)?",
        )
        .ok()
    })
    .as_ref()
}

/// Iterates over the numbers in `text`, in order, each as written.
pub(crate) fn numbers(text: &str) -> impl Iterator<Item = Num> + '_ {
    number_re()
        .into_iter()
        .flat_map(|re| re.captures_iter(text))
        .filter_map(move |caps| {
            let whole = caps.get(0)?;
            let sign = caps.get(1)?;
            // A sign glued to a preceding word or number is a hyphen/operator.
            let glued = text[..whole.start()]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric);
            let negative = matches!(sign.as_str(), "-" | "−") && !glued;
            let digits = caps.get(2)?.as_str();
            let exp = caps.get(3).map_or("", |m| m.as_str());
            let written = if negative { sign.as_str() } else { "" };
            let plain = format!(
                "{}{}{exp}",
                if negative { "-" } else { "" },
                digits.replace(',', "")
            );
            Num::new(format!("{written}{digits}{exp}"), &plain)
        })
}

/// Parses an expected value: text holding exactly one finite number in the
/// formats above (`"12.50"`, `"1,234"`, `"$5"`, `"-3"`, `"1e3"`).
pub(crate) fn parse_expected(s: &str) -> Result<Num, String> {
    let t = s.trim();
    let mut it = numbers(t);
    match (it.next(), it.next()) {
        (Some(n), None) if n.float.is_finite() => Ok(n),
        _ => Err(format!("{} is not a single finite number", snippet(t))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn grader(yaml: &str) -> NumberGrader {
        NumberGrader::compile(&serde_saphyr::from_str(yaml).unwrap()).unwrap()
    }

    fn vars(v: serde_json::Value) -> Vars {
        match v {
            serde_json::Value::Object(m) => m,
            _ => Vars::new(),
        }
    }

    fn all(text: &str) -> Vec<f64> {
        numbers(text).map(|n| n.float).collect()
    }

    #[test]
    fn recognises_common_formats() {
        assert!(number_re().is_some());
        assert_eq!(all("1,234.5"), [1234.5]);
        assert_eq!(all("it is -3 today"), [-3.0]);
        assert_eq!(all("costs $12.50."), [12.5]);
        assert_eq!(all("-$12"), [-12.0]);
        assert_eq!(all("1e3"), [1000.0]);
        assert_eq!(all("42%"), [42.0]);
        assert_eq!(all("−7 and .5"), [-7.0, 0.5]);
        assert_eq!(all("2024-05-01"), [2024.0, 5.0, 1.0]);
        assert_eq!(all("1234,567"), [1234.0, 567.0]);
        assert_eq!(all("no digits"), Vec::<f64>::new());
        assert_eq!(all("٣ Arabic-Indic digits are ignored"), Vec::<f64>::new());
    }

    #[test]
    fn default_pick_is_last() {
        let g = grader("{value: 42}");
        assert!(matches!(
            g.check("3 steps... so the answer is 42.", &Vars::new()),
            Check::Pass(_)
        ));
        let Check::Fail(r) = g.check("42 or maybe 41", &Vars::new()) else {
            panic!("expected failure");
        };
        assert_eq!(r, r#"expected 42, found 41 in "42 or maybe 41""#);
    }

    #[test]
    fn pick_first_and_only() {
        let g = grader("{value: 42, pick: first}");
        assert!(matches!(
            g.check("42 or maybe 41", &Vars::new()),
            Check::Pass(_)
        ));
        let g = grader("{value: 42, pick: only}");
        assert!(matches!(g.check("42", &Vars::new()), Check::Pass(_)));
        let Check::Fail(r) = g.check("42 or 41 or 40", &Vars::new()) else {
            panic!("expected failure");
        };
        assert!(r.starts_with("expected exactly one number, found 3"), "{r}");
    }

    #[test]
    fn tolerances() {
        let g = grader("{value: '{{ answer }}', tolerance: 0.01}");
        let v = vars(json!({"answer": 2.34567}));
        assert!(matches!(g.check("x is 2.34", &v), Check::Pass(_)));
        assert!(matches!(g.check("x is 2.3", &v), Check::Fail(_)));
        let g = grader("{value: 1000, relative_tolerance: 0.001}");
        assert!(matches!(g.check("1,001", &Vars::new()), Check::Pass(_)));
        assert!(matches!(g.check("1,002", &Vars::new()), Check::Fail(_)));
        let g = grader("{value: 1000, tolerance: 5, relative_tolerance: 0.001}");
        assert!(matches!(g.check("1004", &Vars::new()), Check::Pass(_)));
    }

    #[test]
    fn default_is_exact() {
        let g = grader("{value: 0.3}");
        assert!(matches!(g.check("0.30", &Vars::new()), Check::Pass(_)));
        assert!(matches!(g.check("0.31", &Vars::new()), Check::Fail(_)));
    }

    #[test]
    fn expected_from_formatted_template() {
        let g = grader("{value: '{{ total }}'}");
        assert!(matches!(
            g.check("1234", &vars(json!({"total": "$1,234"}))),
            Check::Pass(_)
        ));
        let Check::Error(r) = g.check("1", &vars(json!({"total": "n/a"}))) else {
            panic!("expected error");
        };
        assert!(r.contains("not a single finite number"), "{r}");
    }

    #[test]
    fn pattern_narrows_search() {
        let g = grader(r#"{value: 7, pattern: '(?i)answer:\s*(.+)', pick: first}"#);
        assert!(matches!(
            g.check("I tried 3 and 5.\nAnswer: 7 apples", &Vars::new()),
            Check::Pass(_)
        ));
        assert!(matches!(g.check("7", &Vars::new()), Check::Fail(_)));
    }

    #[test]
    fn config_errors_name_fields() {
        for (yaml, field) in [
            ("{value: 1, tolerance: -0.1}", "tolerance"),
            ("{value: 'abc'}", "value"),
            ("{value: 1, pattern: '('}", "pattern"),
        ] {
            let spec: NumberSpec = serde_saphyr::from_str(yaml).unwrap();
            let err = NumberGrader::compile(&spec).unwrap_err();
            assert_eq!(err.field, field, "{yaml}: {err}");
        }
        // A non-finite value cannot be written (serde_json::Number holds none); a
        // non-finite tolerance can come from other front ends.
        let base: NumberSpec = serde_saphyr::from_str("{value: 1}").unwrap();
        let bad_rel = NumberSpec {
            relative_tolerance: Some(f64::NAN),
            ..base
        };
        assert_eq!(
            NumberGrader::compile(&bad_rel).unwrap_err().to_string(),
            "number grader, field `relative_tolerance`: must be a finite number ≥ 0, got NaN"
        );
    }

    #[test]
    fn string_literal_value_is_parsed_at_load() {
        let g = grader("{value: '1e3'}");
        assert!(matches!(&g.expected, Expected::Fixed(n) if n.float == 1000.0));
    }

    #[test]
    fn huge_numbers_do_not_pass_or_panic() {
        let g = grader("{value: 1}");
        let huge = format!("1{}", "0".repeat(400));
        assert!(matches!(g.check(&huge, &Vars::new()), Check::Fail(_)));
        assert!(matches!(g.check("1e999", &Vars::new()), Check::Fail(_)));
    }

    #[test]
    // Regression: integers past 2^53 were compared as f64, so 9007199254740992 accepted
    // 9007199254740993 and the reason quoted the output as the rounded float.
    fn big_integers_compare_exactly_and_are_quoted_as_written() {
        let g = grader("{value: 9007199254740992}");
        let Check::Fail(r) = g.check("9007199254740993", &Vars::new()) else {
            panic!("expected failure");
        };
        assert_eq!(
            r,
            r#"expected 9007199254740992, found 9007199254740993 in "9007199254740993""#
        );
        assert!(matches!(
            g.check("9,007,199,254,740,992", &Vars::new()),
            Check::Pass(_)
        ));
        let g = grader("{value: '{{ n }}'}");
        let v = vars(json!({"n": "123456789012345678901234567890"}));
        assert!(matches!(
            g.check("123456789012345678901234567891", &v),
            Check::Fail(_)
        ));
        let Check::Pass(r) = g.check("123456789012345678901234567890", &v) else {
            panic!("expected pass");
        };
        assert_eq!(
            r,
            "found 123456789012345678901234567890 (expected 123456789012345678901234567890)"
        );
    }

    #[test]
    // Regression: tolerances were applied in f64, so ± 0.5 around 2^53 accepted 2^53 + 1.
    fn tolerances_are_exact_decimals() {
        let g = grader("{value: 9007199254740992, tolerance: 0.5}");
        assert!(matches!(
            g.check("9007199254740993", &Vars::new()),
            Check::Fail(_)
        ));
        let g = grader("{value: 0.3, tolerance: 0.1}");
        // 0.4 - 0.3 is 0.10000000000000003 in f64; exactly it is 0.1, within tolerance.
        let Check::Pass(r) = g.check("0.4", &Vars::new()) else {
            panic!("expected pass");
        };
        assert_eq!(r, "found 0.4 (expected 0.3 ± 0.1)");
        let g = grader("{value: 200, relative_tolerance: 0.005}");
        assert!(matches!(g.check("201", &Vars::new()), Check::Pass(_)));
        assert!(matches!(g.check("201.01", &Vars::new()), Check::Fail(_)));
    }

    #[test]
    fn numbers_keep_their_written_text() {
        let texts: Vec<String> = numbers("-$1,234.50 and 2024-05 and −7 and 1e3")
            .map(|n| n.to_string())
            .collect();
        assert_eq!(texts, ["-1,234.50", "2024", "05", "−7", "1e3"]);
        assert_eq!(
            Dec::parse("1.50e-3").map(|d| d.to_string()).as_deref(),
            Some("0.0015")
        );
        assert_eq!(
            Dec::parse("-12e2").map(|d| d.to_string()).as_deref(),
            Some("-1200")
        );
        assert_eq!(Dec::parse(&"9".repeat(40)), None);
        assert_eq!(Dec::parse("1e-99"), None);
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>()) {
            for y in ["{value: 1, pick: only}", "{value: 1, pick: first, pattern: '(\\d)'}", "{value: 1}"] {
                let _ = grader(y).check(&s, &Vars::new());
            }
        }

        #[test]
        fn round_trips_printed_numbers(n in -1e12f64..1e12) {
            let g = grader("{value: '{{ n }}'}");
            let v = vars(json!({"n": n}));
            let out = format!("The answer is {n}.");
            prop_assert!(matches!(g.check(&out, &v), Check::Pass(_)), "{}", out);
        }
    }
}
