//! The `json` grader: the output must be JSON (optionally inside a Markdown
//! code fence), contain required keys, and hold expected values at JSON
//! pointers.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::number::{self, Num};
use super::template::{TemplateId, TemplateSet};
use super::text::{Normalize, NormalizeSet, clip, fenced_body, snippet};
use super::{Check, GradeConfigError, Vars};

/// How many failures a reason spells out before summarising the rest.
const MAX_LISTED_PROBLEMS: usize = 3;

/// How many `{` / `[` start positions `allow_prose` tries; bounds the cost
/// on long outputs that are mostly not JSON.
const MAX_PROSE_CANDIDATES: usize = 64;

/// `type: json` — passes when the output parses as JSON, has every
/// `required` key and matches every `expect` entry.
///
/// The output is trimmed and may be wrapped in one Markdown code fence
/// (```` ```json … ``` ````), which is removed.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JsonSpec {
    /// Keys that must exist (value may be null): a plain name means a key
    /// of the top-level object; an entry starting with `/` is a JSON
    /// pointer (RFC 6901), e.g. `/items/0/sku`. Not templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<String>,
    /// Map of JSON pointer → expected value. A string is a template; after
    /// rendering it is compared by the target's type: number → numeric
    /// (within `tolerance`; "12.50", "1,234", "$5" are accepted), boolean →
    /// "true"/"false", null → "null", array/object → parsed as JSON, string →
    /// equality after `normalize`. Any other YAML value (number, boolean,
    /// list, map) must match structurally: same types, same object keys,
    /// numbers within `tolerance`; strings nested in it are compared the
    /// same way as above but are not templates.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub expect: serde_json::Map<String, Value>,
    /// Normalisation applied to both sides of every string comparison in
    /// `expect`; default `[]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<Vec<Normalize>>,
    /// Absolute tolerance for numeric comparisons in `expect`, ≥ 0; default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// Accept text around the JSON (e.g. "Here you go: {...}"): the first
    /// `{`/`[` that starts a valid JSON value is used; default `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_prose: bool,
    /// Invert the result (e.g. with no other fields: pass when the output
    /// is NOT valid JSON).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negate: bool,
}

/// A compiled `required` entry.
#[derive(Debug, Clone)]
enum Required {
    /// Top-level object key.
    Key(String),
    /// JSON pointer.
    Pointer(String),
}

/// A compiled `expect` value.
#[derive(Debug, Clone)]
enum Expected {
    /// A string template, coerced to the target's type after rendering.
    Text(TemplateId),
    /// A non-string literal, matched structurally.
    Value(Value),
}

/// Compiled `json` grader.
#[derive(Debug, Clone)]
pub(crate) struct JsonGrader {
    templates: TemplateSet,
    required: Vec<Required>,
    expect: Vec<(String, Expected)>,
    normalize: NormalizeSet,
    tolerance: Num,
    allow_prose: bool,
}

/// Validates RFC 6901 syntax: empty (whole document) or `/`-separated
/// tokens where `~` is only used as `~0` / `~1`.
fn validate_pointer(p: &str) -> Result<(), String> {
    if !p.is_empty() && !p.starts_with('/') {
        return Err(format!(
            "`{p}` is not a JSON pointer (did you mean `/{p}`?)"
        ));
    }
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!("`{p}`: `~` must be followed by 0 or 1"));
        }
    }
    Ok(())
}

impl JsonGrader {
    /// Validates pointers and tolerance; compiles string templates.
    pub(crate) fn compile(spec: &JsonSpec) -> Result<Self, GradeConfigError> {
        let mut required = Vec::with_capacity(spec.required.len());
        for (i, r) in spec.required.iter().enumerate() {
            let field = format!("required[{i}]");
            if r.is_empty() {
                return Err(GradeConfigError::new("json", &field, "must not be empty"));
            }
            if r.starts_with('/') {
                validate_pointer(r).map_err(|e| GradeConfigError::new("json", &field, e))?;
                required.push(Required::Pointer(r.clone()));
            } else {
                required.push(Required::Key(r.clone()));
            }
        }
        let mut templates = TemplateSet::new();
        let mut expect = Vec::with_capacity(spec.expect.len());
        for (ptr, value) in &spec.expect {
            let field = format!("expect[{ptr}]");
            validate_pointer(ptr).map_err(|e| GradeConfigError::new("json", &field, e))?;
            let expected = match value {
                Value::String(src) => Expected::Text(templates.add("json", &field, src)?),
                other => Expected::Value(other.clone()),
            };
            expect.push((ptr.clone(), expected));
        }
        let tolerance = match spec.tolerance {
            None => Num::zero(),
            Some(t) if t.is_finite() && t >= 0.0 => Num::from_f64(t),
            Some(t) => {
                return Err(GradeConfigError::new(
                    "json",
                    "tolerance",
                    format!("must be a finite number ≥ 0, got {t}"),
                ));
            }
        };
        Ok(Self {
            templates,
            required,
            expect,
            normalize: NormalizeSet::from_config(spec.normalize.as_deref(), &[]),
            tolerance,
            allow_prose: spec.allow_prose,
        })
    }

    /// The `expect` templates rendered for a task, in `expect` order (`None` for literal
    /// values).
    pub(crate) fn rendered<'a>(&'a self, vars: &Vars) -> Result<Vec<Option<Cow<'a, str>>>, String> {
        self.expect
            .iter()
            .map(|(_, e)| match e {
                Expected::Text(id) => self.templates.render(*id, vars).map(Some),
                Expected::Value(_) => Ok(None),
            })
            .collect()
    }

    /// Parses the output, then checks `required` and `expect`.
    pub(crate) fn check(&self, output: &str, vars: &Vars) -> Check {
        // Rendered first: a template that fails is a grader error whatever the output is.
        let rendered = match self.rendered(vars) {
            Ok(r) => r,
            Err(e) => return Check::Error(e),
        };
        let doc = match parse_output(output, self.allow_prose) {
            Ok(doc) => doc,
            Err(e) => return Check::Fail(e),
        };
        let mut problems = Vec::new();
        for r in &self.required {
            match r {
                Required::Key(k) => {
                    if !doc.as_object().is_some_and(|o| o.contains_key(k)) {
                        let why = if doc.is_object() {
                            ""
                        } else {
                            " (output is not an object)"
                        };
                        problems.push(format!("missing required key \"{k}\"{why}"));
                    }
                }
                Required::Pointer(p) => {
                    if doc.pointer(p).is_none() {
                        problems.push(format!("missing required {p}"));
                    }
                }
            }
        }
        for ((ptr, expected), text) in self.expect.iter().zip(&rendered) {
            let at = if ptr.is_empty() { "root" } else { ptr };
            let actual = doc.pointer(ptr);
            let (ok, want) = match (expected, text) {
                (_, Some(text)) => {
                    let ok = actual.is_some_and(|a| self.text_matches(text, a));
                    (ok, snippet(text))
                }
                (Expected::Value(v), None) => {
                    let ok = actual.is_some_and(|a| self.value_matches(v, a));
                    (ok, clip(&v.to_string()))
                }
                (Expected::Text(_), None) => (false, String::new()),
            };
            if !ok {
                let found = actual.map_or_else(|| "nothing".to_owned(), |a| clip(&a.to_string()));
                problems.push(format!("at {at}: expected {want}, found {found}"));
            }
        }
        if problems.is_empty() {
            return Check::Pass(format!(
                "valid JSON, {} required present, {} expected values match",
                self.required.len(),
                self.expect.len()
            ));
        }
        let extra = problems.len().saturating_sub(MAX_LISTED_PROBLEMS);
        let mut reason = problems
            .into_iter()
            .take(MAX_LISTED_PROBLEMS)
            .collect::<Vec<_>>()
            .join("; ");
        if extra > 0 {
            reason.push_str(&format!("; and {extra} more"));
        }
        Check::Fail(reason)
    }

    /// Compares expected text with a JSON value, coercing by the value's type.
    fn text_matches(&self, text: &str, actual: &Value) -> bool {
        match actual {
            Value::String(s) => self.normalize.apply(text) == self.normalize.apply(s),
            Value::Number(n) => number::parse_expected(text)
                .is_ok_and(|x| Num::from_json(n).is_some_and(|y| self.close(&x, &y))),
            Value::Bool(b) => text
                .trim()
                .eq_ignore_ascii_case(if *b { "true" } else { "false" }),
            Value::Null => text.trim() == "null",
            Value::Array(_) | Value::Object(_) => serde_json::from_str::<Value>(text)
                .is_ok_and(|parsed| self.value_matches(&parsed, actual)),
        }
    }

    /// Structural comparison of a literal expected value with the output.
    fn value_matches(&self, expected: &Value, actual: &Value) -> bool {
        match (expected, actual) {
            (Value::String(s), a) => self.text_matches(s, a),
            (Value::Number(a), Value::Number(b)) => match (Num::from_json(a), Num::from_json(b)) {
                (Some(x), Some(y)) => self.close(&x, &y),
                _ => false,
            },
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Null, Value::Null) => true,
            (Value::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| self.value_matches(x, y))
            }
            (Value::Object(a), Value::Object(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(k, x)| b.get(k).is_some_and(|y| self.value_matches(x, y)))
            }
            _ => false,
        }
    }

    /// Numeric equality within the absolute tolerance, exact for integers and decimals.
    fn close(&self, expected: &Num, actual: &Num) -> bool {
        actual.within(expected, &self.tolerance, &Num::zero()).0
    }
}

/// Extracts the JSON document from an output: trimmed, one optional code
/// fence removed, and with `allow_prose` the first embedded JSON value.
pub(crate) fn parse_output(output: &str, allow_prose: bool) -> Result<Value, String> {
    let t = output.trim().trim_start_matches('\u{feff}').trim_start();
    let (body, after) = match fenced_body(t) {
        Some((body, after)) => (body.trim(), after.trim()),
        None => (t, ""),
    };
    let err = if after.is_empty() {
        match serde_json::from_str::<Value>(body) {
            Ok(v) => return Ok(v),
            Err(e) => e.to_string(),
        }
    } else {
        "text after the code fence".to_owned()
    };
    if allow_prose {
        let starts = t.match_indices(['{', '[']).take(MAX_PROSE_CANDIDATES);
        for (i, _) in starts {
            let mut stream = serde_json::Deserializer::from_str(&t[i..]).into_iter::<Value>();
            if let Some(Ok(v)) = stream.next() {
                return Ok(v);
            }
        }
        return Err(format!("no JSON value found in {}", snippet(t)));
    }
    Err(format!("output is not valid JSON ({err}): {}", snippet(t)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn grader(yaml: &str) -> JsonGrader {
        JsonGrader::compile(&serde_saphyr::from_str(yaml).unwrap()).unwrap()
    }

    fn vars(v: Value) -> Vars {
        match v {
            Value::Object(m) => m,
            _ => Vars::new(),
        }
    }

    fn passes(g: &JsonGrader, out: &str, v: &Vars) -> bool {
        matches!(g.check(out, v), Check::Pass(_))
    }

    const BRIEF: &str =
        r#"{required: ["name", "total"], expect: {"/total": "{{ total }}", "/currency": "EUR"}}"#;

    #[test]
    fn brief_example_with_fence() {
        let g = grader(BRIEF);
        let v = vars(json!({"total": "12.50"}));
        let out = "```json\n{\"name\": \"A\", \"total\": 12.5, \"currency\": \"EUR\"}\n```\n";
        assert!(passes(&g, out, &v), "{:?}", g.check(out, &v));
        let Check::Fail(r) = g.check(r#"{"total": 13, "currency": "USD"}"#, &v) else {
            panic!("expected failure");
        };
        assert_eq!(
            r,
            r#"missing required key "name"; at /total: expected "12.50", found 13; at /currency: expected "EUR", found "USD""#
        );
    }

    #[test]
    fn invalid_json_fails_with_parse_error() {
        let g = grader("{}");
        let Check::Fail(r) = g.check("{\"a\": ", &Vars::new()) else {
            panic!("expected failure");
        };
        assert!(
            r.starts_with("output is not valid JSON (EOF while parsing"),
            "{r}"
        );
        assert!(!passes(&g, "Here: {\"a\": 1}", &Vars::new()));
        assert!(!passes(
            &g,
            "```json\n{}\n```\nHope this helps!",
            &Vars::new()
        ));
    }

    #[test]
    fn allow_prose_finds_embedded_json() {
        let g = grader("{allow_prose: true, expect: {/a: 1}}");
        assert!(passes(
            &g,
            "Sure [see below]: {\"a\": 1} done",
            &Vars::new()
        ));
        assert!(passes(
            &g,
            "```json\n{\"a\": 1}\n```\nHope this helps!",
            &Vars::new()
        ));
        assert!(!passes(&g, "no json here", &Vars::new()));
    }

    #[test]
    fn required_pointers_and_top_level_keys() {
        let g = grader("{required: [a, /b/0/c]}");
        assert!(passes(&g, r#"{"a": null, "b": [{"c": 1}]}"#, &Vars::new()));
        let Check::Fail(r) = g.check(r#"[1]"#, &Vars::new()) else {
            panic!("expected failure");
        };
        assert_eq!(
            r,
            r#"missing required key "a" (output is not an object); missing required /b/0/c"#
        );
    }

    #[test]
    fn rendered_text_coerces_to_target_type() {
        let g = grader(
            r#"{expect: {/n: "{{ n }}", /b: "{{ b }}", /z: "null", /o: '{"k": [1, "x"]}', /s: "{{ s }}"}, normalize: [lowercase]}"#,
        );
        let v = vars(json!({"n": "1,234", "b": true, "s": "PARIS"}));
        let out = r#"{"n": 1234.0, "b": true, "z": null, "o": {"k": [1.0, "X"]}, "s": "Paris"}"#;
        assert!(passes(&g, out, &v), "{:?}", g.check(out, &v));
        let out = r#"{"n": "1234", "b": true, "z": null, "o": {"k": [1, "x"]}, "s": "Paris"}"#;
        assert!(
            !passes(&g, out, &v),
            "a string target compares as text: \"1,234\" != \"1234\""
        );
        let out = r#"{"n": 1235, "b": true, "z": null, "o": {"k": [1, "x"]}, "s": "Paris"}"#;
        assert!(!passes(&g, out, &v));
    }

    #[test]
    fn literal_values_match_structurally() {
        let g = grader("{expect: {/a: 1, /b: [true, null], /c: {x: 2}}, tolerance: 0.5}");
        assert!(passes(
            &g,
            r#"{"a": 1.4, "b": [true, null], "c": {"x": 2}}"#,
            &Vars::new()
        ));
        assert!(!passes(
            &g,
            r#"{"a": "1", "b": [true, null], "c": {"x": 2}}"#,
            &Vars::new()
        ));
        assert!(!passes(
            &g,
            r#"{"a": 1, "b": [true], "c": {"x": 2}}"#,
            &Vars::new()
        ));
        assert!(!passes(
            &g,
            r#"{"a": 1, "b": [true, null], "c": {"x": 2, "y": 3}}"#,
            &Vars::new()
        ));
    }

    #[test]
    fn root_pointer() {
        let g = grader("{expect: {'': [1, 2]}}");
        assert!(passes(&g, "[1, 2]", &Vars::new()));
        let Check::Fail(r) = g.check("[2, 1]", &Vars::new()) else {
            panic!("expected failure");
        };
        assert_eq!(r, r#"at root: expected [1,2], found [2,1]"#);
    }

    #[test]
    fn config_errors_name_fields() {
        for (yaml, field) in [
            ("{expect: {total: 1}}", "expect[total]"),
            ("{expect: {'/a~2': 1}}", "expect[/a~2]"),
            ("{required: ['/a~']}", "required[0]"),
            ("{required: ['']}", "required[0]"),
            ("{expect: {/a: '{{ x '}}", "expect[/a]"),
            ("{tolerance: -1}", "tolerance"),
        ] {
            let spec: JsonSpec = serde_saphyr::from_str(yaml).unwrap();
            let err = JsonGrader::compile(&spec).unwrap_err();
            assert_eq!(err.field, field, "{yaml}: {err}");
        }
        let spec: JsonSpec = serde_saphyr::from_str("{expect: {total: 1}}").unwrap();
        assert_eq!(
            JsonGrader::compile(&spec).unwrap_err().to_string(),
            "json grader, field `expect[total]`: `total` is not a JSON pointer (did you mean `/total`?)"
        );
    }

    #[test]
    fn pointer_escapes() {
        let g = grader("{required: ['/a~1b', '/c~0d']}");
        assert!(passes(&g, r#"{"a/b": 1, "c~d": 2}"#, &Vars::new()));
    }

    #[test]
    fn deeply_nested_output_does_not_overflow() {
        let g = grader("{allow_prose: true}");
        let deep = "[".repeat(100_000);
        assert!(matches!(g.check(&deep, &Vars::new()), Check::Fail(_)));
    }

    #[test]
    fn missing_var_is_error() {
        let g = grader(BRIEF);
        assert!(matches!(
            g.check(
                r#"{"name": 1, "total": 1, "currency": "EUR"}"#,
                &Vars::new()
            ),
            Check::Error(_)
        ));
    }

    #[test]
    // Regression: expected numbers were compared as f64, so 9007199254740992 matched an
    // output of 9007199254740993.
    fn big_integers_in_expect_compare_exactly() {
        let g = grader("{expect: {/n: 9007199254740992, /t: '{{ t }}'}}");
        let v = vars(json!({"t": "9007199254740992"}));
        assert!(passes(
            &g,
            r#"{"n": 9007199254740992, "t": 9007199254740992}"#,
            &v
        ));
        let Check::Fail(r) = g.check(r#"{"n": 9007199254740993, "t": 9007199254740993}"#, &v)
        else {
            panic!("expected failure");
        };
        assert_eq!(
            r,
            "at /n: expected 9007199254740992, found 9007199254740993; \
             at /t: expected \"9007199254740992\", found 9007199254740993"
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>()) {
            let g = grader("{allow_prose: true, required: [a, /b/0], expect: {/a: '{{ x }}', /b: [1, 'y']}}");
            let _ = g.check(&s, &vars(json!({"x": "1"})));
        }

        #[test]
        fn any_json_value_round_trips(v in json_value()) {
            let g = grader("{expect: {'': '{{ doc }}'}}");
            let out = format!("```json\n{v}\n```");
            // A string target is compared as text, not as a JSON literal.
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            let res = g.check(&out, &vars(json!({"doc": text})));
            prop_assert!(matches!(res, Check::Pass(_)), "{:?} for {}", res, out);
        }
    }

    /// Arbitrary JSON values of small depth.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-1e6f64..1e6).prop_map(|f| json!(f)),
            any::<i32>().prop_map(|i| json!(i)),
            "[a-z ]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
