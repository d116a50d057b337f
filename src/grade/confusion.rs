//! What `label` and `fields` graders saw on each output, kept with its verdict ([`Detail`]), and
//! its sums per suite × grader × provider: a confusion matrix for `label` graders and per-field
//! precision, recall and F1 for `fields` graders (the JSON report's `graders` section).
//!
//! Field counting follows `fields.rs`: a field is *expected* when its expected value is not
//! empty, *predicted* when the output has it (not null, not ""), *correct* when predicted,
//! expected and equal. Precision = correct / predicted, recall = correct / expected, F1 their
//! harmonic mean; sums are micro-averaged over outputs (each field's counts added up).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a grader saw, beyond pass or fail, stored with the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Detail {
    /// A `label` grader: the expected label and the one the output named (`None`: outside
    /// the label set).
    Label {
        /// The task's label, as declared.
        expected: String,
        /// The output's label, as declared; `None` when it named none of them.
        predicted: Option<String>,
    },
    /// A `fields` grader: one entry per field, in the grader's order.
    Fields {
        /// Per-field counts.
        fields: Vec<FieldCount>,
    },
}

/// One field of one output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldCount {
    /// The field's JSON pointer.
    pub pointer: String,
    /// Whether a value was expected (the expected value is not empty).
    pub expected: bool,
    /// Whether the output has the field.
    pub predicted: bool,
    /// Whether the output's value is the expected one.
    pub correct: bool,
}

/// The label an output outside the declared set is counted under.
pub const OUTSIDE: &str = "(outside the label set)";

/// A `label` grader's confusion matrix for one provider.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LabelMatrix {
    /// Suite name.
    pub suite: String,
    /// The grader's position in the suite's `graders:` list.
    pub grader: usize,
    /// Provider id.
    pub provider: String,
    /// Row and column labels: every label seen, in order, and [`OUTSIDE`] last when an output
    /// named no label.
    pub labels: Vec<String>,
    /// `matrix[i][j]`: outputs whose expected label is `labels[i]` and which named `labels[j]`.
    pub matrix: Vec<Vec<u64>>,
    /// Outputs counted.
    pub outputs: u64,
    /// Share of outputs naming the expected label.
    pub accuracy: Option<f64>,
}

/// One field's sums for one provider.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FieldFigures {
    /// The field's JSON pointer (`*` for the micro-average over all fields).
    pub pointer: String,
    /// Outputs where the field was expected.
    pub expected: u64,
    /// Outputs that had the field.
    pub predicted: u64,
    /// Outputs with the right value.
    pub correct: u64,
    /// correct / predicted (`null` when never predicted).
    pub precision: Option<f64>,
    /// correct / expected (`null` when never expected).
    pub recall: Option<f64>,
    /// Harmonic mean of precision and recall.
    pub f1: Option<f64>,
}

/// A `fields` grader's per-field figures for one provider.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FieldsTable {
    /// Suite name.
    pub suite: String,
    /// The grader's position in the suite's `graders:` list.
    pub grader: usize,
    /// Provider id.
    pub provider: String,
    /// Outputs counted.
    pub outputs: u64,
    /// Per field, in the grader's order, then the micro-average (`pointer` `*`).
    pub fields: Vec<FieldFigures>,
}

/// The `graders` section of the report: label matrices and field tables.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct GraderDetails {
    /// One per suite × `label` grader × provider.
    pub confusion: Vec<LabelMatrix>,
    /// One per suite × `fields` grader × provider.
    pub fields: Vec<FieldsTable>,
}

impl GraderDetails {
    /// Whether there is nothing to show.
    pub fn is_empty(&self) -> bool {
        self.confusion.is_empty() && self.fields.is_empty()
    }
}

/// The part of a stored verdict these sums read.
#[derive(Deserialize)]
struct StoredDetail {
    #[serde(default)]
    detail: Option<Detail>,
}

/// (grader position, provider).
type GraderOf = (usize, String);

/// (expected, predicted) label → outputs.
type LabelCells = BTreeMap<(String, Option<String>), u64>;

/// Outputs, and per pointer in first-seen order: [expected, predicted, correct].
type FieldCells = (u64, Vec<(String, [u64; 3])>);

/// Sums the details of one suite's stored verdicts, per grader and provider.
#[derive(Debug, Default)]
pub struct Tally {
    labels: BTreeMap<GraderOf, LabelCells>,
    fields: BTreeMap<GraderOf, FieldCells>,
}

impl Tally {
    /// Adds one outcome's stored verdicts (a JSON list); unreadable text is skipped.
    pub fn add(&mut self, provider: &str, verdicts: &str) {
        // Most verdicts have no detail: skip the parse when the text cannot hold one.
        if !verdicts.contains("\"detail\"") {
            return;
        }
        let Ok(list) = serde_json::from_str::<Vec<StoredDetail>>(verdicts) else {
            return;
        };
        for (i, v) in list.into_iter().enumerate() {
            match v.detail {
                Some(Detail::Label {
                    expected,
                    predicted,
                }) => {
                    *self
                        .labels
                        .entry((i, provider.to_string()))
                        .or_default()
                        .entry((expected, predicted))
                        .or_default() += 1;
                }
                Some(Detail::Fields { fields }) => {
                    let (n, acc) = self.fields.entry((i, provider.to_string())).or_default();
                    *n += 1;
                    for f in fields {
                        let at = match acc.iter().position(|(p, _)| *p == f.pointer) {
                            Some(at) => at,
                            None => {
                                acc.push((f.pointer.clone(), [0; 3]));
                                acc.len() - 1
                            }
                        };
                        let c = &mut acc[at].1;
                        c[0] += u64::from(f.expected);
                        c[1] += u64::from(f.predicted);
                        c[2] += u64::from(f.correct && f.predicted && f.expected);
                    }
                }
                None => {}
            }
        }
    }

    /// The matrices and tables of `suite`, appended to `out`.
    pub fn finish(self, suite: &str, out: &mut GraderDetails) {
        for ((grader, provider), cells) in self.labels {
            let mut labels: Vec<String> = Vec::new();
            let mut outside = false;
            for (e, p) in cells.keys() {
                for l in [Some(e), p.as_ref()] {
                    match l {
                        Some(l) if !labels.contains(l) => labels.push(l.clone()),
                        Some(_) => {}
                        None => outside = true,
                    }
                }
            }
            labels.sort();
            if outside {
                labels.push(OUTSIDE.to_string());
            }
            let at = |l: &str| labels.iter().position(|x| x == l).unwrap_or(0);
            let mut matrix = vec![vec![0u64; labels.len()]; labels.len()];
            let (mut outputs, mut right) = (0, 0);
            for ((e, p), n) in &cells {
                let col = at(p.as_deref().unwrap_or(OUTSIDE));
                matrix[at(e)][col] += n;
                outputs += n;
                if p.as_deref() == Some(e.as_str()) {
                    right += n;
                }
            }
            out.confusion.push(LabelMatrix {
                suite: suite.to_string(),
                grader,
                provider,
                labels,
                matrix,
                outputs,
                accuracy: (outputs > 0).then(|| right as f64 / outputs as f64),
            });
        }
        for ((grader, provider), (outputs, per)) in self.fields {
            let mut total = [0u64; 3];
            let mut fields: Vec<FieldFigures> = per
                .into_iter()
                .map(|(pointer, c)| {
                    for k in 0..3 {
                        total[k] += c[k];
                    }
                    figures(pointer, c)
                })
                .collect();
            fields.push(figures("*".into(), total));
            out.fields.push(FieldsTable {
                suite: suite.to_string(),
                grader,
                provider,
                outputs,
                fields,
            });
        }
    }
}

fn figures(pointer: String, [expected, predicted, correct]: [u64; 3]) -> FieldFigures {
    let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
    let precision = ratio(correct, predicted);
    let recall = ratio(correct, expected);
    let f1 = match (precision, recall) {
        (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    };
    FieldFigures {
        pointer,
        expected,
        predicted,
        correct,
        precision,
        recall,
        f1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn label(expected: &str, predicted: Option<&str>) -> String {
        json!([{"passed": predicted == Some(expected), "reason": "",
                "detail": {"kind": "label", "expected": expected, "predicted": predicted}}])
        .to_string()
    }

    #[test]
    fn label_matrix_counts_expected_by_predicted_with_outside_last() {
        let mut t = Tally::default();
        for (e, p) in [
            ("billing", Some("billing")),
            ("billing", Some("bug")),
            ("bug", Some("bug")),
            ("bug", None),
            ("billing", Some("billing")),
        ] {
            t.add("p", &label(e, p));
        }
        t.add("q", &label("bug", Some("billing")));
        // A verdict without detail (another grader kind) adds nothing.
        t.add("p", r#"[{"passed": true, "reason": "ok"}]"#);
        let mut out = GraderDetails::default();
        t.finish("s", &mut out);
        assert_eq!(out.confusion.len(), 2);
        let m = &out.confusion[0];
        assert_eq!((m.provider.as_str(), m.grader, m.outputs), ("p", 0, 5));
        assert_eq!(m.labels, ["billing", "bug", OUTSIDE]);
        assert_eq!(m.matrix, [[2, 1, 0], [0, 1, 1], [0, 0, 0]]);
        assert_eq!(m.accuracy, Some(0.6));
        assert_eq!(out.confusion[1].matrix, [[0, 0], [1, 0]]);
    }

    #[test]
    fn field_figures_are_micro_averaged() {
        let mut t = Tally::default();
        let f = |e: bool, p: bool, c: bool| json!({"pointer": "/a", "expected": e, "predicted": p, "correct": c});
        let g = |e: bool, p: bool, c: bool| json!({"pointer": "/b", "expected": e, "predicted": p, "correct": c});
        for fields in [
            json!([f(true, true, true), g(true, false, false)]),
            json!([f(true, true, false), g(false, true, false)]),
        ] {
            let v = json!([{"passed": false, "reason": "", "score": 0.5},
                           {"passed": false, "reason": "", "detail": {"kind": "fields", "fields": fields}}]);
            t.add("p", &v.to_string());
        }
        let mut out = GraderDetails::default();
        t.finish("s", &mut out);
        let tab = &out.fields[0];
        assert_eq!((tab.grader, tab.outputs), (1, 2));
        let a = &tab.fields[0];
        assert_eq!((a.expected, a.predicted, a.correct), (2, 2, 1));
        assert_eq!(
            (a.precision, a.recall, a.f1),
            (Some(0.5), Some(0.5), Some(0.5))
        );
        let b = &tab.fields[1];
        assert_eq!(
            (b.precision, b.recall, b.f1),
            (Some(0.0), Some(0.0), Some(0.0))
        );
        let all = &tab.fields[2];
        assert_eq!(all.pointer, "*");
        assert_eq!((all.expected, all.predicted, all.correct), (3, 3, 1));
        assert!((all.f1.unwrap() - 1.0 / 3.0).abs() < 1e-12);
    }
}
