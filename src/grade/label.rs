//! The `label` grader: classification against a declared label set. The answer (after
//! normalisation) must be one of `labels`; an answer outside the set is wrong and the reason
//! says so, apart from a wrong label inside the set.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::confusion::Detail;
use super::template::{TemplateId, TemplateSet, scalar_string, scalar_strings};
use super::text::{Normalize, NormalizeSet, snippet};
use super::{Check, GradeConfigError, Vars};

/// `type: label` — the output is exactly one label of `labels`, and it is `expected`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSpec {
    /// The label set (at least two, distinct after normalisation).
    #[serde(deserialize_with = "scalar_strings")]
    pub labels: Vec<String>,
    /// The right label for a task, a template such as `"{{ label }}"`.
    #[serde(deserialize_with = "scalar_string")]
    pub expected: String,
    /// Normalisation of the output and the labels; default `[trim, lowercase]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<Vec<Normalize>>,
}

/// Compiled `label` grader.
#[derive(Debug, Clone)]
pub(crate) struct LabelGrader {
    templates: TemplateSet,
    expected: TemplateId,
    /// Labels as written, and normalised (same order).
    labels: Vec<(String, String)>,
    normalize: NormalizeSet,
}

impl LabelGrader {
    /// Checks the label set and compiles `expected`.
    pub(crate) fn compile(spec: &LabelSpec) -> Result<Self, GradeConfigError> {
        let normalize = NormalizeSet::from_config(
            spec.normalize.as_deref(),
            &[Normalize::Trim, Normalize::Lowercase],
        );
        if spec.labels.len() < 2 {
            return Err(GradeConfigError::new(
                "label",
                "labels",
                "declare at least two labels",
            ));
        }
        let mut labels: Vec<(String, String)> = Vec::with_capacity(spec.labels.len());
        for (i, l) in spec.labels.iter().enumerate() {
            let n = normalize.apply(l).into_owned();
            if n.is_empty() {
                return Err(GradeConfigError::new(
                    "label",
                    &format!("labels[{i}]"),
                    "must not be empty",
                ));
            }
            if let Some((first, _)) = labels.iter().find(|(_, m)| *m == n) {
                return Err(GradeConfigError::new(
                    "label",
                    &format!("labels[{i}]"),
                    format!(
                        "{} is the same label as {} after normalisation",
                        snippet(l),
                        snippet(first)
                    ),
                ));
            }
            labels.push((l.clone(), n));
        }
        let mut templates = TemplateSet::new();
        let expected = templates.add("label", "expected", &spec.expected)?;
        Ok(Self {
            templates,
            expected,
            labels,
            normalize,
        })
    }

    /// The task's expected label, normalised; it must be in the set.
    pub(crate) fn expected<'a>(&'a self, vars: &Vars) -> Result<&'a str, String> {
        let raw = self.templates.render(self.expected, vars)?;
        let n = self.normalize.apply(&raw);
        self.find(&n).ok_or_else(|| {
            format!(
                "expected label {} is not in labels [{}]",
                snippet(&raw),
                self.label_list()
            )
        })
    }

    /// The label as written whose normalised form is `n`.
    fn find(&self, n: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(_, m)| m == n)
            .map(|(l, _)| l.as_str())
    }

    fn label_list(&self) -> String {
        self.labels
            .iter()
            .map(|(l, _)| l.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The label an output names, or `None` when it is outside the set.
    pub(crate) fn answer<'a>(&'a self, output: &str) -> Option<&'a str> {
        let n: Cow<'_, str> = self.normalize.apply(output);
        self.find(&n)
    }

    /// Compares the output's label with the expected one.
    #[cfg(test)]
    pub(crate) fn check(&self, output: &str, vars: &Vars) -> Check {
        self.check_detailed(output, vars).0
    }

    /// [`LabelGrader::check`], and the expected and predicted labels for the report's
    /// confusion matrix (none when the task's expected label cannot be rendered).
    pub(crate) fn check_detailed(&self, output: &str, vars: &Vars) -> (Check, Option<Detail>) {
        let expected = match self.expected(vars) {
            Ok(e) => e,
            Err(e) => return (Check::Error(e), None),
        };
        let predicted = self.answer(output);
        let detail = Detail::Label {
            expected: expected.to_string(),
            predicted: predicted.map(str::to_string),
        };
        let check = match predicted {
            None => Check::Fail(format!(
                "answer {} is not one of the labels [{}]; expected {expected}",
                snippet(output),
                self.label_list()
            )),
            Some(got) if got == expected => Check::Pass(format!("label {got}")),
            Some(got) => Check::Fail(format!("label {got}, expected {expected}")),
        };
        (check, Some(detail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn grader(yaml: &str) -> Result<LabelGrader, GradeConfigError> {
        LabelGrader::compile(&serde_saphyr::from_str(yaml).unwrap())
    }

    fn vars(label: &str) -> Vars {
        match json!({ "label": label }) {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    const SPEC: &str = "{labels: [billing, bug, Account], expected: '{{ label }}'}";

    #[test]
    fn right_wrong_and_outside_the_set() {
        let g = grader(SPEC).unwrap();
        assert_eq!(
            g.check("  Billing\n", &vars("billing")),
            Check::Pass("label billing".into())
        );
        assert_eq!(
            g.check("account", &vars("ACCOUNT")),
            Check::Pass("label Account".into())
        );
        assert_eq!(
            g.check("bug", &vars("billing")),
            Check::Fail("label bug, expected billing".into())
        );
        assert_eq!(
            g.check("billing or bug", &vars("billing")),
            Check::Fail(
                "answer \"billing or bug\" is not one of the labels [billing, bug, Account]; \
                 expected billing"
                    .into()
            )
        );
    }

    #[test]
    fn normalisation_is_configurable() {
        let g = grader("{labels: ['Yes', 'No'], expected: 'Yes', normalize: []}").unwrap();
        assert!(matches!(g.check("Yes", &Vars::new()), Check::Pass(_)));
        assert!(matches!(g.check("yes", &Vars::new()), Check::Fail(_)));
        let g = grader(
            "{labels: ['yes', 'no'], expected: 'yes', normalize: [trim, lowercase, strip_punctuation]}",
        )
        .unwrap();
        assert!(matches!(g.check("Yes.", &Vars::new()), Check::Pass(_)));
    }

    #[test]
    fn expected_outside_the_set_is_a_task_error() {
        let g = grader(SPEC).unwrap();
        assert_eq!(
            g.expected(&vars("refund")).unwrap_err(),
            "expected label \"refund\" is not in labels [billing, bug, Account]"
        );
        assert!(matches!(g.check("bug", &vars("refund")), Check::Error(_)));
        assert!(matches!(g.check("bug", &Vars::new()), Check::Error(_)));
    }

    #[test]
    fn bad_label_sets_are_config_errors() {
        let e = |y: &str| grader(y).unwrap_err().to_string();
        assert_eq!(
            e("{labels: [a], expected: a}"),
            "label grader, field `labels`: declare at least two labels"
        );
        assert_eq!(
            e("{labels: [a, ' A '], expected: a}"),
            "label grader, field `labels[1]`: \" A \" is the same label as \"a\" after normalisation"
        );
        assert!(e("{labels: [a, '  '], expected: a}").contains("must not be empty"));
        assert!(e("{labels: [a, b], expected: '{{ x'}").contains("invalid template"));
    }
}
