//! The `regex` grader: a regular expression (Rust `regex` syntax) must match
//! somewhere in the normalised output.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use ::regex::{Regex, RegexBuilder};

use super::template::{TemplateId, TemplateSet, scalar_string};
use super::text::{Normalize, NormalizeSet, snippet};
use super::{Check, GradeConfigError, Vars};

/// Normalisation used when `normalize` is omitted: without it `^bug$`
/// would fail on the ubiquitous trailing newline.
const DEFAULT_NORMALIZE: &[Normalize] = &[Normalize::Trim];

/// Cap on compiled program size; user patterns (possibly with task data
/// spliced in) must not be able to exhaust memory.
const SIZE_LIMIT: usize = 1 << 20;

/// `type: regex` — passes when `pattern` matches anywhere in the output
/// (anchor with `^…$` for a full match).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegexSpec {
    /// Rust-regex pattern (template; use `{{ var | regex_escape }}` to embed
    /// task text literally). Inline flags like `(?s)` and `(?m)` work.
    #[serde(deserialize_with = "scalar_string")]
    pub pattern: String,
    /// Match case-sensitively; default `true`.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub case_sensitive: bool,
    /// Normalisation applied to the output only; default `[trim]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<Vec<Normalize>>,
    /// Invert the result (pass when the pattern does NOT match).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negate: bool,
}

/// Serde default for `case_sensitive`.
fn yes() -> bool {
    true
}

/// Omits `case_sensitive` from serialised specs when it has its default.
fn is_true(b: &bool) -> bool {
    *b
}

/// The pattern, compiled once when it has no template syntax.
#[derive(Debug, Clone)]
enum Pattern {
    Static(Regex),
    /// Rendered and compiled on every call (costlier, but task-specific).
    Templated(TemplateId),
}

/// Compiled `regex` grader.
#[derive(Debug, Clone)]
pub(crate) struct RegexGrader {
    templates: TemplateSet,
    pattern: Pattern,
    case_sensitive: bool,
    normalize: NormalizeSet,
}

/// Compiles a pattern with the grader's flags and size limit.
fn build(pattern: &str, case_sensitive: bool) -> Result<Regex, ::regex::Error> {
    RegexBuilder::new(pattern)
        .case_insensitive(!case_sensitive)
        .size_limit(SIZE_LIMIT)
        .build()
}

impl RegexGrader {
    /// Validates and (when static) compiles the pattern.
    pub(crate) fn compile(spec: &RegexSpec) -> Result<Self, GradeConfigError> {
        if spec.pattern.is_empty() {
            return Err(GradeConfigError::new(
                "regex",
                "pattern",
                "must not be empty",
            ));
        }
        let mut templates = TemplateSet::new();
        let id = templates.add("regex", "pattern", &spec.pattern)?;
        // Without template syntax the pattern is fixed, so compile it now.
        let pattern = match templates.literal(id) {
            Some(src) => Pattern::Static(
                build(src, spec.case_sensitive)
                    .map_err(|e| GradeConfigError::new("regex", "pattern", e.to_string()))?,
            ),
            None => Pattern::Templated(id),
        };
        Ok(Self {
            templates,
            pattern,
            case_sensitive: spec.case_sensitive,
            normalize: NormalizeSet::from_config(spec.normalize.as_deref(), DEFAULT_NORMALIZE),
        })
    }

    /// The regex for a task: the static one, or the pattern rendered with the task's
    /// variables and compiled.
    pub(crate) fn regex(&self, vars: &Vars) -> Result<Cow<'_, Regex>, String> {
        let id = match &self.pattern {
            Pattern::Static(re) => return Ok(Cow::Borrowed(re)),
            Pattern::Templated(id) => *id,
        };
        let src = self.templates.render(id, vars)?;
        build(&src, self.case_sensitive)
            .map(Cow::Owned)
            .map_err(|e| {
                // regex errors span several lines (caret diagrams); a verdict reason must stay
                // on one.
                let msg = e
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                format!("rendered pattern {} is invalid: {msg}", snippet(&src))
            })
    }

    /// Searches the normalised output for the pattern.
    pub(crate) fn check(&self, output: &str, vars: &Vars) -> Check {
        let re = match self.regex(vars) {
            Ok(re) => re,
            Err(e) => return Check::Error(e),
        };
        let text = self.normalize.apply(output);
        match re.find(&text) {
            Some(m) => Check::Pass(format!("/{}/ matched {}", re.as_str(), snippet(m.as_str()))),
            None => Check::Fail(format!(
                "/{}/ did not match {}",
                re.as_str(),
                snippet(&text)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn grader(yaml: &str) -> RegexGrader {
        RegexGrader::compile(&serde_saphyr::from_str(yaml).unwrap()).unwrap()
    }

    fn vars(v: serde_json::Value) -> Vars {
        match v {
            serde_json::Value::Object(m) => m,
            _ => Vars::new(),
        }
    }

    #[test]
    fn anchored_pattern_with_default_trim() {
        let g = grader("{pattern: '^(billing|bug|account)$'}");
        assert!(matches!(g.pattern, Pattern::Static(_)));
        assert!(matches!(g.check("bug\n", &Vars::new()), Check::Pass(_)));
        let Check::Fail(r) = g.check("a bug", &Vars::new()) else {
            panic!("expected failure");
        };
        assert_eq!(r, r#"/^(billing|bug|account)$/ did not match "a bug""#);
    }

    #[test]
    fn case_insensitive_option() {
        let g = grader("{pattern: '^bug$', case_sensitive: false}");
        assert!(matches!(g.check("BUG", &Vars::new()), Check::Pass(_)));
        let g = grader("{pattern: '^bug$'}");
        assert!(matches!(g.check("BUG", &Vars::new()), Check::Fail(_)));
    }

    #[test]
    fn templated_pattern_with_escape() {
        let g = grader("{pattern: '^{{ x | regex_escape }}$'}");
        assert!(matches!(g.pattern, Pattern::Templated(_)));
        let v = vars(json!({"x": "a.b"}));
        assert!(matches!(g.check("a.b", &v), Check::Pass(_)));
        assert!(matches!(g.check("axb", &v), Check::Fail(_)));
    }

    #[test]
    fn templated_pattern_rendering_invalid_regex_is_error() {
        let g = grader("{pattern: '{{ x }}'}");
        let Check::Error(r) = g.check("a", &vars(json!({"x": "(unclosed"}))) else {
            panic!("expected error");
        };
        assert_eq!(
            r,
            r#"rendered pattern "(unclosed" is invalid: regex parse error: (unclosed ^ error: unclosed group"#
        );
    }

    #[test]
    fn bad_pattern_is_config_error_naming_field() {
        let spec: RegexSpec = serde_saphyr::from_str("{pattern: '(billing'}").unwrap();
        let err = RegexGrader::compile(&spec).unwrap_err();
        assert_eq!(err.field, "pattern");
        assert!(
            err.to_string()
                .starts_with("regex grader, field `pattern`:"),
            "{err}"
        );
    }

    #[test]
    fn oversized_pattern_is_rejected_not_built() {
        let spec: RegexSpec = serde_saphyr::from_str("{pattern: '(\\w{1000}){1000}'}").unwrap();
        assert!(RegexGrader::compile(&spec).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>(), p in any::<String>()) {
            let g = grader("{pattern: '{{ p }}'}");
            let _ = g.check(&s, &vars(json!({"p": p})));
            let g = grader("{pattern: '(?s)^.*$', normalize: [collapse_whitespace]}");
            prop_assert!(matches!(g.check(&s, &Vars::new()), Check::Pass(_)));
        }
    }
}
