//! The `equals` grader: the (normalised) output must equal a rendered value.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::template::{TemplateId, TemplateSet, scalar_string};
use super::text::{Normalize, NormalizeSet, snippet};
use super::{Check, GradeConfigError, Vars};

/// Normalisation used when `normalize` is omitted: LLM outputs nearly always
/// carry stray leading/trailing whitespace or a final newline.
const DEFAULT_NORMALIZE: &[Normalize] = &[Normalize::Trim];

/// `type: equals` — passes when the output equals `value` after
/// normalisation.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EqualsSpec {
    /// Expected output (template). Numbers/booleans are accepted as text
    /// (quote values like "1.50" whose spelling matters).
    #[serde(deserialize_with = "scalar_string")]
    pub value: String,
    /// Normalisation applied to both the output and `value`; default `[trim]`,
    /// `[]` compares exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<Vec<Normalize>>,
    /// Invert the result (pass when the output does NOT equal `value`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negate: bool,
}

/// Compiled `equals` grader.
#[derive(Debug, Clone)]
pub(crate) struct EqualsGrader {
    templates: TemplateSet,
    value: TemplateId,
    normalize: NormalizeSet,
}

impl EqualsGrader {
    /// Compiles the `value` template.
    pub(crate) fn compile(spec: &EqualsSpec) -> Result<Self, GradeConfigError> {
        let mut templates = TemplateSet::new();
        let value = templates.add("equals", "value", &spec.value)?;
        Ok(Self {
            templates,
            value,
            normalize: NormalizeSet::from_config(spec.normalize.as_deref(), DEFAULT_NORMALIZE),
        })
    }

    /// The rendered expected value for a task.
    pub(crate) fn expected<'a>(&'a self, vars: &Vars) -> Result<Cow<'a, str>, String> {
        self.templates.render(self.value, vars)
    }

    /// Compares the normalised output with the normalised rendered value.
    pub(crate) fn check(&self, output: &str, vars: &Vars) -> Check {
        let expected = match self.expected(vars) {
            Ok(v) => v,
            Err(e) => return Check::Error(e),
        };
        let expected = self.normalize.apply(&expected);
        let got = self.normalize.apply(output);
        if got == expected {
            return Check::Pass(format!("equals {}", snippet(&expected)));
        }
        // Both strings may be truncated in the reason, so point at the
        // first difference to make long mismatches diagnosable.
        let at = got
            .chars()
            .zip(expected.chars())
            .take_while(|(a, b)| a == b)
            .count();
        Check::Fail(format!(
            "expected {}, got {} (first difference at char {at})",
            snippet(&expected),
            snippet(&got)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn grader(yaml: &str) -> EqualsGrader {
        EqualsGrader::compile(&serde_saphyr::from_str(yaml).unwrap()).unwrap()
    }

    fn vars(v: serde_json::Value) -> Vars {
        match v {
            serde_json::Value::Object(m) => m,
            _ => Vars::new(),
        }
    }

    #[test]
    fn default_trims_but_is_case_sensitive() {
        let g = grader("{value: billing}");
        assert!(matches!(
            g.check(" billing\n", &Vars::new()),
            Check::Pass(_)
        ));
        assert!(matches!(g.check("Billing", &Vars::new()), Check::Fail(_)));
    }

    #[test]
    fn explicit_empty_normalize_is_exact() {
        let g = grader("{value: billing, normalize: []}");
        assert!(matches!(g.check("billing\n", &Vars::new()), Check::Fail(_)));
        assert!(matches!(g.check("billing", &Vars::new()), Check::Pass(_)));
    }

    #[test]
    fn template_and_normalize_apply_to_both_sides() {
        let g = grader("{value: '{{ label }}', normalize: [trim, lowercase]}");
        let v = vars(json!({"label": " Bug "}));
        assert!(matches!(g.check("BUG\n", &v), Check::Pass(_)));
    }

    #[test]
    fn numeric_yaml_value_is_text() {
        let g = grader("{value: 42}");
        assert!(matches!(g.check("42", &Vars::new()), Check::Pass(_)));
    }

    #[test]
    fn failure_reason_shows_both_sides_and_position() {
        let g = grader("{value: billing}");
        let Check::Fail(r) = g.check("bulling", &Vars::new()) else {
            panic!("expected failure");
        };
        assert_eq!(
            r,
            r#"expected "billing", got "bulling" (first difference at char 1)"#
        );
    }

    #[test]
    fn missing_var_is_error() {
        let g = grader("{value: '{{ label }}'}");
        let Check::Error(r) = g.check("x", &Vars::new()) else {
            panic!("expected error");
        };
        assert!(r.contains("label"), "{r}");
    }

    proptest! {
        #[test]
        fn never_panics_and_matches_itself(s in any::<String>()) {
            let g = grader("{value: '{{ x }}', normalize: [trim, lowercase, collapse_whitespace, strip_punctuation, strip_code_fences]}");
            let v = vars(json!({"x": s.clone()}));
            prop_assert!(matches!(g.check(&s, &v), Check::Pass(_)));
        }
    }
}
