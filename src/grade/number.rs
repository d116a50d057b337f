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
#[serde(untagged)]
pub enum NumberValue {
    /// A literal YAML number.
    Number(f64),
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
    Fixed(f64),
    Templated(TemplateId),
}

/// Compiled `number` grader.
#[derive(Debug, Clone)]
pub(crate) struct NumberGrader {
    templates: TemplateSet,
    expected: Expected,
    tolerance: f64,
    relative_tolerance: f64,
    pick: Pick,
    pattern: Option<Regex>,
}

/// Checks a tolerance field: finite and non-negative.
fn tolerance(field: &str, v: Option<f64>) -> Result<f64, GradeConfigError> {
    match v {
        None => Ok(0.0),
        Some(t) if t.is_finite() && t >= 0.0 => Ok(t),
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
            NumberValue::Number(n) if n.is_finite() => Expected::Fixed(*n),
            NumberValue::Number(n) => {
                return Err(GradeConfigError::new(
                    "number",
                    "value",
                    format!("must be finite, got {n}"),
                ));
            }
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

    /// Extracts, picks and compares.
    pub(crate) fn check(&self, output: &str, vars: &Vars) -> Check {
        let expected = match &self.expected {
            Expected::Fixed(n) => *n,
            Expected::Templated(id) => match self.templates.render(*id, vars) {
                Ok(s) => match parse_expected(&s) {
                    Ok(n) => n,
                    Err(e) => return Check::Error(format!("`value`: {e}")),
                },
                Err(e) => return Check::Error(e),
            },
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
        let allowed = self.tolerance.max(self.relative_tolerance * expected.abs());
        let want = if allowed > 0.0 {
            format!("{expected} ± {allowed}")
        } else {
            expected.to_string()
        };
        // NaN-safe: a non-finite `found` makes the comparison false.
        if (found - expected).abs() <= allowed {
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

/// Iterates over the numbers in `text`, in order.
pub(crate) fn numbers(text: &str) -> impl Iterator<Item = f64> + '_ {
    number_re()
        .into_iter()
        .flat_map(|re| re.captures_iter(text))
        .filter_map(move |caps| {
            let whole = caps.get(0)?;
            let sign = caps.get(1).map_or("", |m| m.as_str());
            // A sign glued to a preceding word or number is a hyphen/operator.
            let glued = text[..whole.start()]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric);
            let negative = matches!(sign, "-" | "−") && !glued;
            let mut s = String::with_capacity(whole.len());
            if negative {
                s.push('-');
            }
            s.extend(caps.get(2)?.as_str().chars().filter(|c| *c != ','));
            if let Some(exp) = caps.get(3) {
                s.push_str(exp.as_str());
            }
            s.parse::<f64>().ok()
        })
}

/// Parses an expected value: a plain float, or text holding exactly one
/// number in the formats above.
fn parse_expected(s: &str) -> Result<f64, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<f64>()
        && n.is_finite()
    {
        return Ok(n);
    }
    let mut it = numbers(t);
    match (it.next(), it.next()) {
        (Some(n), None) if n.is_finite() => Ok(n),
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
        numbers(text).collect()
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
        // Non-finite numbers cannot come from serde-saphyr (its policy
        // rejects .inf) but can from other front ends.
        let base: NumberSpec = serde_saphyr::from_str("{value: 1}").unwrap();
        let bad_value = NumberSpec {
            value: NumberValue::Number(f64::INFINITY),
            ..base.clone()
        };
        assert_eq!(
            NumberGrader::compile(&bad_value).unwrap_err().field,
            "value"
        );
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
        assert!(matches!(g.expected, Expected::Fixed(n) if n == 1000.0));
    }

    #[test]
    fn huge_numbers_do_not_pass_or_panic() {
        let g = grader("{value: 1}");
        let huge = format!("1{}", "0".repeat(400));
        assert!(matches!(g.check(&huge, &Vars::new()), Check::Fail(_)));
        assert!(matches!(g.check("1e999", &Vars::new()), Check::Fail(_)));
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
