//! The `contains`, `contains-any` and `contains-all` graders: substring
//! checks against rendered needles.

use serde::{Deserialize, Serialize};

use super::template::{TemplateId, TemplateSet, scalar_string, scalar_strings};
use super::text::{Normalize, NormalizeSet, snippet};
use super::{Check, GradeConfigError, Vars};

/// `type: contains` — passes when the output contains `value`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContainsSpec {
    /// Substring to look for (template, must not render empty).
    #[serde(deserialize_with = "scalar_string")]
    pub value: String,
    /// Normalisation applied to both the output and the needle; default `[]`
    /// (use `[lowercase]` for a case-insensitive match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<Vec<Normalize>>,
    /// Invert the result (pass when the output does NOT contain `value`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negate: bool,
}

/// `type: contains-any` / `type: contains-all` — passes when the output
/// contains at least one / every one of `values`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContainsManySpec {
    /// Substrings to look for (templates, each must not render empty; at least one).
    #[serde(deserialize_with = "scalar_strings")]
    pub values: Vec<String>,
    /// Normalisation applied to both the output and the needles; default `[]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<Vec<Normalize>>,
    /// Invert the result (`contains-any` + negate = contains none of them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negate: bool,
}

/// How the needles combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `contains` (one needle) and `contains-all`.
    All,
    /// `contains-any`.
    Any,
}

/// Compiled substring grader.
#[derive(Debug, Clone)]
pub(crate) struct ContainsGrader {
    templates: TemplateSet,
    needles: Vec<TemplateId>,
    mode: Mode,
    normalize: NormalizeSet,
}

impl ContainsGrader {
    /// Compiles a `contains` spec.
    pub(crate) fn compile_one(spec: &ContainsSpec) -> Result<Self, GradeConfigError> {
        Self::build(
            "contains",
            &[("value".to_owned(), &spec.value)],
            Mode::All,
            spec.normalize.as_deref(),
        )
    }

    /// Compiles a `contains-any` / `contains-all` spec.
    pub(crate) fn compile_many(
        spec: &ContainsManySpec,
        mode: Mode,
    ) -> Result<Self, GradeConfigError> {
        let kind = match mode {
            Mode::Any => "contains-any",
            Mode::All => "contains-all",
        };
        if spec.values.is_empty() {
            return Err(GradeConfigError::new(
                kind,
                "values",
                "must list at least one value",
            ));
        }
        let fields: Vec<(String, &String)> = spec
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("values[{i}]"), v))
            .collect();
        Self::build(kind, &fields, mode, spec.normalize.as_deref())
    }

    /// Shared compilation: every needle is a template; empty literals are
    /// rejected because "contains empty string" can never fail.
    fn build(
        kind: &'static str,
        fields: &[(String, &String)],
        mode: Mode,
        normalize: Option<&[Normalize]>,
    ) -> Result<Self, GradeConfigError> {
        let mut templates = TemplateSet::new();
        let mut needles = Vec::with_capacity(fields.len());
        for (field, src) in fields {
            if src.is_empty() {
                return Err(GradeConfigError::new(kind, field, "must not be empty"));
            }
            needles.push(templates.add(kind, field, src)?);
        }
        Ok(Self {
            templates,
            needles,
            mode,
            normalize: NormalizeSet::from_config(normalize, &[]),
        })
    }

    /// The rendered, normalised needles for a task; an empty one is an error, since it
    /// would match everything.
    pub(crate) fn needles(&self, vars: &Vars) -> Result<Vec<String>, String> {
        let mut out = Vec::with_capacity(self.needles.len());
        for id in &self.needles {
            let rendered = self.templates.render(*id, vars)?;
            let needle = self.normalize.apply(&rendered);
            if needle.is_empty() {
                return Err(format!(
                    "needle {} is empty after rendering",
                    snippet(&rendered)
                ));
            }
            out.push(needle.into_owned());
        }
        Ok(out)
    }

    /// Renders and normalises the needles, then searches the output.
    pub(crate) fn check(&self, output: &str, vars: &Vars) -> Check {
        let needles = match self.needles(vars) {
            Ok(n) => n,
            Err(e) => return Check::Error(e),
        };
        let haystack = self.normalize.apply(output);
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for needle in &needles {
            if haystack.contains(needle.as_str()) {
                found.push(snippet(needle));
            } else {
                missing.push(snippet(needle));
            }
        }
        let in_output = snippet(&haystack);
        match self.mode {
            Mode::All if missing.is_empty() => Check::Pass(format!("found {}", found.join(", "))),
            Mode::All => Check::Fail(format!("missing {} in {in_output}", missing.join(", "))),
            Mode::Any if !found.is_empty() => Check::Pass(format!("found {}", found.join(", "))),
            Mode::Any => Check::Fail(format!(
                "none of {} found in {in_output}",
                missing.join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn one(yaml: &str) -> ContainsGrader {
        ContainsGrader::compile_one(&serde_saphyr::from_str(yaml).unwrap()).unwrap()
    }

    fn many(yaml: &str, mode: Mode) -> ContainsGrader {
        ContainsGrader::compile_many(&serde_saphyr::from_str(yaml).unwrap(), mode).unwrap()
    }

    fn vars(v: serde_json::Value) -> Vars {
        match v {
            serde_json::Value::Object(m) => m,
            _ => Vars::new(),
        }
    }

    #[test]
    fn contains_is_case_sensitive_by_default() {
        let g = one("{value: refund}");
        assert!(matches!(
            g.check("a refund is due", &Vars::new()),
            Check::Pass(_)
        ));
        assert!(matches!(
            g.check("A Refund is due", &Vars::new()),
            Check::Fail(_)
        ));
        let g = one("{value: Refund, normalize: [lowercase]}");
        assert!(matches!(
            g.check("a REFUND is due", &Vars::new()),
            Check::Pass(_)
        ));
    }

    #[test]
    fn any_and_all() {
        let any = many("{values: ['yes', yeah], normalize: [lowercase]}", Mode::Any);
        assert!(matches!(
            any.check("Yeah sure", &Vars::new()),
            Check::Pass(_)
        ));
        let Check::Fail(r) = any.check("No", &Vars::new()) else {
            panic!("expected failure");
        };
        assert_eq!(r, r#"none of "yes", "yeah" found in "no""#);

        let all = many("{values: ['{{ city }}', '{{ date }}']}", Mode::All);
        let v = vars(json!({"city": "Paris", "date": "May 3"}));
        assert!(matches!(all.check("Paris on May 3", &v), Check::Pass(_)));
        let Check::Fail(r) = all.check("Paris soon", &v) else {
            panic!("expected failure");
        };
        assert_eq!(r, r#"missing "May 3" in "Paris soon""#);
    }

    #[test]
    fn empty_values_are_config_errors() {
        let spec: ContainsManySpec = serde_saphyr::from_str("{values: []}").unwrap();
        let err = ContainsGrader::compile_many(&spec, Mode::Any).unwrap_err();
        assert_eq!(err.field, "values");
        let spec: ContainsManySpec = serde_saphyr::from_str("{values: [a, '']}").unwrap();
        let err = ContainsGrader::compile_many(&spec, Mode::All).unwrap_err();
        assert_eq!(err.field, "values[1]");
        assert_eq!(
            err.to_string(),
            "contains-all grader, field `values[1]`: must not be empty"
        );
    }

    #[test]
    fn needle_rendering_empty_is_error_not_pass() {
        let g = one("{value: '{{ x }}'}");
        assert!(matches!(
            g.check("anything", &vars(json!({"x": ""}))),
            Check::Error(_)
        ));
    }

    #[test]
    fn integer_values_are_text_but_lossy_scalars_are_rejected() {
        let g = many("{values: [1, '2.50']}", Mode::All);
        assert!(matches!(g.check("1 2.50", &Vars::new()), Check::Pass(_)));
        assert!(serde_saphyr::from_str::<ContainsManySpec>("{values: [yes]}").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>(), needle in any::<String>()) {
            let g = one("{value: '{{ n }}', normalize: [strip_punctuation, lowercase]}");
            let _ = g.check(&s, &vars(json!({"n": needle})));
        }
    }
}
