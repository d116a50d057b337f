//! The `fields` grader: extraction scored field by field. Each expected field sits at a JSON
//! pointer with its own normalisation (text steps, a number tolerance, or an ISO date); the
//! grade's score is the field-level F1 and the output is accepted at `min_f1` (default 1.0).
//!
//! Counting (the usual field-level extraction convention): a field whose expected value renders
//! empty should be absent; a field present in the output (not null, not "") is *predicted*; a
//! predicted field equal to its expected value is a true positive. Precision = TP / predicted,
//! recall = TP / fields expected present, F1 their harmonic mean (1 when nothing was expected
//! and nothing predicted). A wrong value counts against both precision and recall.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::confusion::{Detail, FieldCount};
use super::json::parse_output;
use super::number::{self, Num};
use super::template::{TemplateId, TemplateSet, scalar_string};
use super::text::{Normalize, NormalizeSet, clip, snippet};
use super::{Check, GradeConfigError, Vars};

/// How many wrong fields a reason names before summarising.
const MAX_LISTED: usize = 3;

/// `type: fields` — `fields` maps a JSON pointer to an expected value (a template) or to
/// `{value, normalize, tolerance, date}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FieldsSpec {
    /// JSON pointer → expected value or field settings, in report order.
    pub fields: serde_json::Map<String, Value>,
    /// Smallest field-level F1 that is accepted, in (0, 1]; default 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_f1: Option<f64>,
    /// Accept text around the JSON, as the `json` grader's `allow_prose`; default `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_prose: bool,
}

/// One field's settings in the long form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldEntry {
    /// Expected value (template); empty means "should be absent".
    #[serde(deserialize_with = "scalar_string")]
    value: String,
    /// Text normalisation of both sides; default `[trim]`.
    #[serde(default)]
    normalize: Option<Vec<Normalize>>,
    /// Compare as numbers within this absolute tolerance.
    #[serde(default)]
    tolerance: Option<f64>,
    /// Compare as ISO 8601 calendar dates (YYYY-MM-DD, strict).
    #[serde(default)]
    date: bool,
}

/// How one field is compared.
#[derive(Debug, Clone)]
enum Compare {
    Text(NormalizeSet),
    Number(Num),
    Date,
}

/// One compiled field.
#[derive(Debug, Clone)]
struct Field {
    pointer: String,
    value: TemplateId,
    compare: Compare,
}

/// Compiled `fields` grader.
#[derive(Debug, Clone)]
pub(crate) struct FieldsGrader {
    templates: TemplateSet,
    fields: Vec<Field>,
    min_f1: f64,
    allow_prose: bool,
}

/// Field-level counts for one output.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct FieldScore {
    /// Fields present and right.
    pub tp: usize,
    /// Fields present in the output (not null, not empty).
    pub predicted: usize,
    /// Fields expected to be present.
    pub expected: usize,
}

impl FieldScore {
    /// TP / predicted (1 when nothing was predicted).
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.predicted)
    }
    /// TP / expected (1 when nothing was expected).
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.expected)
    }
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

impl FieldsGrader {
    /// Validates pointers and settings, and compiles the expected-value templates.
    pub(crate) fn compile(spec: &FieldsSpec) -> Result<Self, GradeConfigError> {
        let err = |field: &str, m: String| GradeConfigError::new("fields", field, m);
        if spec.fields.is_empty() {
            return Err(err("fields", "give at least one field".into()));
        }
        let min_f1 = spec.min_f1.unwrap_or(1.0);
        if !(min_f1 > 0.0 && min_f1 <= 1.0) {
            return Err(err(
                "min_f1",
                format!("must be above 0 and at most 1, got {min_f1}"),
            ));
        }
        let mut templates = TemplateSet::new();
        let mut fields = Vec::with_capacity(spec.fields.len());
        for (pointer, v) in &spec.fields {
            let at = format!("fields[{pointer}]");
            if !pointer.starts_with('/') {
                return Err(err(
                    &at,
                    format!("`{pointer}` is not a JSON pointer (did you mean `/{pointer}`?)"),
                ));
            }
            let entry = match v {
                Value::String(s) => FieldEntry {
                    value: s.clone(),
                    normalize: None,
                    tolerance: None,
                    date: false,
                },
                Value::Number(n) => FieldEntry {
                    value: n.to_string(),
                    normalize: None,
                    tolerance: None,
                    date: false,
                },
                Value::Object(_) => {
                    serde_json::from_value(v.clone()).map_err(|e| err(&at, e.to_string()))?
                }
                other => {
                    return Err(err(
                        &at,
                        format!(
                            "expected a value or {{value, normalize, tolerance, date}}, got {other}"
                        ),
                    ));
                }
            };
            let compare = match (entry.tolerance, entry.date, &entry.normalize) {
                (Some(_), true, _) => {
                    return Err(err(
                        &at,
                        "give `tolerance` or `date: true`, not both".into(),
                    ));
                }
                (Some(_), _, Some(_)) | (_, true, Some(_)) => {
                    return Err(err(
                        &at,
                        "`normalize` applies to text; drop it for a number or a date".into(),
                    ));
                }
                (Some(t), false, None) if t.is_finite() && t >= 0.0 => {
                    Compare::Number(Num::from_f64(t))
                }
                (Some(t), false, None) => {
                    return Err(err(
                        &at,
                        format!("tolerance must be a finite number ≥ 0, got {t}"),
                    ));
                }
                (None, true, None) => Compare::Date,
                (None, false, n) => {
                    Compare::Text(NormalizeSet::from_config(n.as_deref(), &[Normalize::Trim]))
                }
            };
            let value = templates.add("fields", &at, &entry.value)?;
            // A literal expected value is checked now rather than once per task.
            if let Some(lit) = templates.literal(value) {
                expected_ok(&compare, lit).map_err(|e| err(&at, e))?;
            }
            fields.push(Field {
                pointer: pointer.clone(),
                value,
                compare,
            });
        }
        Ok(Self {
            templates,
            fields,
            min_f1,
            allow_prose: spec.allow_prose,
        })
    }

    /// Every field's expected text for a task, checked against its comparison.
    pub(crate) fn rendered(&self, vars: &Vars) -> Result<Vec<String>, String> {
        self.fields
            .iter()
            .map(|f| {
                let text = self.templates.render(f.value, vars)?.into_owned();
                expected_ok(&f.compare, &text)
                    .map_err(|e| format!("fields[{}]: {e}", f.pointer))?;
                Ok(text)
            })
            .collect()
    }

    /// Field-level counts for one output, a line per wrong field, and each field's counts.
    pub(crate) fn score(
        &self,
        output: &str,
        vars: &Vars,
    ) -> Result<(FieldScore, Vec<String>, Vec<FieldCount>), Check> {
        let expected = self.rendered(vars).map_err(Check::Error)?;
        let doc = parse_output(output, self.allow_prose).map_err(Check::Fail)?;
        let mut s = FieldScore::default();
        let mut wrong = Vec::new();
        let mut counts = Vec::with_capacity(self.fields.len());
        for (f, want) in self.fields.iter().zip(&expected) {
            let got = doc.pointer(&f.pointer).filter(|v| !is_empty(v));
            let want_present = !want.trim().is_empty();
            s.expected += usize::from(want_present);
            s.predicted += usize::from(got.is_some());
            let correct = want_present && got.is_some_and(|g| matches(&f.compare, want, g));
            counts.push(FieldCount {
                pointer: f.pointer.clone(),
                expected: want_present,
                predicted: got.is_some(),
                correct,
            });
            match (got, want_present) {
                (Some(_), true) if correct => s.tp += 1,
                (None, false) => {}
                (g, _) => wrong.push(format!(
                    "{}: expected {}, found {}",
                    f.pointer,
                    if want_present {
                        snippet(want)
                    } else {
                        "nothing".into()
                    },
                    g.map_or_else(|| "nothing".to_owned(), |g| clip(&g.to_string()))
                )),
            }
        }
        Ok((s, wrong, counts))
    }

    /// Scores the output and accepts it at `min_f1`.
    #[cfg(test)]
    pub(crate) fn check(&self, output: &str, vars: &Vars) -> Check {
        self.check_detailed(output, vars).0
    }

    /// [`FieldsGrader::check`], and each field's counts for the report's per-field figures
    /// (none when the output is not JSON or the task's values cannot be rendered).
    pub(crate) fn check_detailed(&self, output: &str, vars: &Vars) -> (Check, Option<Detail>) {
        let (s, wrong, counts) = match self.score(output, vars) {
            Ok(r) => r,
            Err(c) => return (c, None),
        };
        let detail = Detail::Fields { fields: counts };
        let f1 = s.f1();
        let mut reason = format!(
            "field F1 {f1:.3} (precision {:.3} = {}/{}, recall {:.3} = {}/{})",
            s.precision(),
            s.tp,
            s.predicted,
            s.recall(),
            s.tp,
            s.expected
        );
        if !wrong.is_empty() {
            let extra = wrong.len().saturating_sub(MAX_LISTED);
            reason.push_str("; ");
            reason.push_str(
                &wrong
                    .into_iter()
                    .take(MAX_LISTED)
                    .collect::<Vec<_>>()
                    .join("; "),
            );
            if extra > 0 {
                reason.push_str(&format!("; and {extra} more"));
            }
        }
        // A hair of slack so 0.8 written in YAML accepts an F1 computed as 0.7999999999.
        let passed = f1 + 1e-12 >= self.min_f1;
        if !passed {
            reason.push_str(&format!("; below min_f1 {}", self.min_f1));
        }
        (
            Check::Scored {
                passed,
                score: f1,
                reason,
            },
            Some(detail),
        )
    }
}

/// Null and "" count as absent.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// An expected value must parse for its comparison (empty means "absent").
fn expected_ok(c: &Compare, text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Ok(());
    }
    match c {
        Compare::Text(_) => Ok(()),
        Compare::Number(_) => number::parse_expected(text).map(drop),
        Compare::Date => parse_date(text)
            .map(drop)
            .ok_or_else(|| format!("{} is not a YYYY-MM-DD date", snippet(text))),
    }
}

/// Whether the output's value `got` equals the expected text under `c`.
fn matches(c: &Compare, want: &str, got: &Value) -> bool {
    let got_text = match got {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match c {
        Compare::Text(n) => n.apply(want) == n.apply(&got_text),
        Compare::Number(tol) => {
            let actual = match got {
                Value::Number(n) => Num::from_json(n),
                Value::String(s) => number::parse_expected(s).ok(),
                _ => None,
            };
            match (number::parse_expected(want), actual) {
                (Ok(w), Some(a)) => a.within(&w, tol, &Num::zero()).0,
                _ => false,
            }
        }
        Compare::Date => match (parse_date(want), parse_date(&got_text)) {
            (Some(w), Some(g)) => w == g,
            _ => false,
        },
    }
}

/// A strict ISO 8601 calendar date `YYYY-MM-DD` (a real day: month 1–12, leap years honoured).
fn parse_date(s: &str) -> Option<(u16, u8, u8)> {
    let b = s.trim().as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u16> {
        b[r].iter().try_fold(0u16, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u16::from(c - b'0'))
        })
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days).contains(&d).then_some((y, m as u8, d as u8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn grader(yaml: &str) -> Result<FieldsGrader, GradeConfigError> {
        FieldsGrader::compile(&serde_saphyr::from_str(yaml).unwrap())
    }

    fn vars(v: Value) -> Vars {
        match v {
            Value::Object(m) => m,
            _ => Vars::new(),
        }
    }

    const SPEC: &str = r#"{fields: {
        /number: '{{ number }}',
        /customer: {value: '{{ customer }}', normalize: [trim, lowercase]},
        /total: {value: '{{ total }}', tolerance: 0.01},
        /date: {value: '{{ date }}', date: true},
        /po: '{{ po }}'}}"#;

    fn task() -> Vars {
        vars(
            json!({"number": "INV-7", "customer": "ACME Corp", "total": "1,234.50",
                    "date": "2026-02-28", "po": ""}),
        )
    }

    fn scored(c: Check) -> (bool, f64, String) {
        match c {
            Check::Scored {
                passed,
                score,
                reason,
            } => (passed, score, reason),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn perfect_extraction_passes_with_f1_one() {
        let g = grader(SPEC).unwrap();
        let out = r#"{"number": "INV-7", "customer": " acme corp ", "total": 1234.499,
                      "date": "2026-02-28", "po": null}"#;
        let (passed, score, reason) = scored(g.check(out, &task()));
        assert!(passed, "{reason}");
        assert_eq!(score, 1.0);
        assert_eq!(
            reason,
            "field F1 1.000 (precision 1.000 = 4/4, recall 1.000 = 4/4)"
        );
    }

    #[test]
    fn wrong_missing_and_extra_fields_count_in_precision_and_recall() {
        let g = grader(SPEC).unwrap();
        // total wrong (off by 1), date missing, po present though absent expected.
        let out = r#"{"number": "INV-7", "customer": "Acme Corp", "total": "1,235.50",
                      "po": "PO-1"}"#;
        let (passed, score, reason) = scored(g.check(out, &task()));
        assert!(!passed);
        // TP 2, predicted 4, expected 4: P = R = 0.5.
        assert!((score - 0.5).abs() < 1e-12, "{score}");
        assert!(reason.starts_with("field F1 0.500 (precision 0.500 = 2/4, recall 0.500 = 2/4); /total: expected \"1,234.50\", found \"1,235.50\"; /date: expected \"2026-02-28\", found nothing; /po: expected nothing, found \"PO-1\""), "{reason}");
        assert!(reason.ends_with("below min_f1 1"), "{reason}");
        let g = grader(&format!("{}, min_f1: 0.5}}", &SPEC[..SPEC.len() - 1])).unwrap();
        assert!(scored(g.check(out, &task())).0);
    }

    #[test]
    fn dates_are_strict_iso() {
        assert_eq!(parse_date("2024-02-29"), Some((2024, 2, 29)));
        for bad in [
            "2023-02-29",
            "2026-13-01",
            "2026-1-01",
            "26-01-01",
            "2026/01/01",
            "2026-01-32",
            "２０２６-01-01",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        let g = grader("{fields: {/d: {value: '2026-01-05', date: true}}}").unwrap();
        assert!(scored(g.check(r#"{"d": " 2026-01-05 "}"#, &Vars::new())).0);
        assert!(!scored(g.check(r#"{"d": "Jan 5, 2026"}"#, &Vars::new())).0);
    }

    #[test]
    fn unparseable_output_fails_and_bad_task_values_are_errors() {
        let g = grader(SPEC).unwrap();
        assert!(matches!(g.check("no json", &task()), Check::Fail(_)));
        let mut t = task();
        t.insert("date".into(), json!("yesterday"));
        match g.check("{}", &t) {
            Check::Error(e) => {
                assert_eq!(e, "fields[/date]: \"yesterday\" is not a YYYY-MM-DD date")
            }
            other => panic!("{other:?}"),
        }
        assert!(g.rendered(&t).is_err());
        assert!(matches!(g.check("{}", &Vars::new()), Check::Error(_)));
    }

    #[test]
    fn nothing_expected_and_nothing_found_is_perfect() {
        let g = grader("{fields: {/a: ''}}").unwrap();
        assert_eq!(scored(g.check("{}", &Vars::new())).1, 1.0);
        assert_eq!(scored(g.check(r#"{"a": 1}"#, &Vars::new())).1, 0.0);
    }

    #[test]
    fn config_errors_name_the_field() {
        let e = |y: &str| grader(y).unwrap_err().to_string();
        assert_eq!(
            e("{fields: {}}"),
            "fields grader, field `fields`: give at least one field"
        );
        assert!(e("{fields: {a: x}}").contains("did you mean `/a`"));
        assert!(e("{fields: {/a: x}, min_f1: 0}").contains("min_f1"));
        assert!(e("{fields: {/a: {value: x, tolerance: 1, date: true}}}").contains("not both"));
        assert!(e("{fields: {/a: {value: x, tolerance: -1}}}").contains("tolerance"));
        assert!(
            e("{fields: {/a: {value: 1, tolerance: 1, normalize: [trim]}}}")
                .contains("applies to text")
        );
        assert!(e("{fields: {/a: {value: x, valeu: y}}}").contains("unknown field `valeu`"));
        assert_eq!(
            e("{fields: {/a: {value: 'May 5', date: true}}}"),
            "fields grader, field `fields[/a]`: \"May 5\" is not a YYYY-MM-DD date"
        );
        assert!(
            e("{fields: {/a: {value: abc, tolerance: 0.1}}}")
                .contains("not a single finite number")
        );
        assert!(e("{fields: {/a: [1]}}").contains("expected a value"));
    }
}
