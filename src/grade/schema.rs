//! The `json_schema` grader: the output (or the JSON found in it, as the `json` grader finds
//! it) must validate against a JSON Schema, given inline or as a file beside the suite.
//!
//! Validation uses the `jsonschema` crate without its default features, so a `$ref` to a remote
//! or file URI is never fetched: it fails when the schema is compiled, at suite load.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::json::parse_output;
use super::text::clip;
use super::{Check, GradeConfigError};

/// `type: json_schema` — exactly one of `schema` (inline) or `schema_file`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JsonSchemaSpec {
    /// The schema inline (YAML or JSON syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// A JSON (or YAML) schema file, relative to the suite file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_file: Option<String>,
    /// Accept text around the JSON, as the `json` grader's `allow_prose`; default `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_prose: bool,
}

/// Compiled `json_schema` grader.
#[derive(Clone)]
pub(crate) struct SchemaGrader {
    validator: Arc<jsonschema::Validator>,
    allow_prose: bool,
}

impl std::fmt::Debug for SchemaGrader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaGrader")
            .field("allow_prose", &self.allow_prose)
            .finish_non_exhaustive()
    }
}

impl SchemaGrader {
    /// Reads (from `dir` for `schema_file`) and compiles the schema.
    pub(crate) fn compile(spec: &JsonSchemaSpec, dir: &Path) -> Result<Self, GradeConfigError> {
        let err = |field: &str, m: String| GradeConfigError::new("json_schema", field, m);
        let (field, schema) = match (&spec.schema, &spec.schema_file) {
            (Some(s), None) => ("schema", s.clone()),
            (None, Some(f)) => {
                let path = dir.join(f);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    err(
                        "schema_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                let parsed = serde_json::from_str::<Value>(&text).or_else(|json_err| {
                    serde_saphyr::from_str::<Value>(&text).map_err(|_| {
                        err(
                            "schema_file",
                            format!("{} is not JSON or YAML: {json_err}", path.display()),
                        )
                    })
                })?;
                ("schema_file", parsed)
            }
            _ => {
                return Err(err(
                    "schema",
                    "give exactly one of `schema` (inline) or `schema_file`".into(),
                ));
            }
        };
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| err(field, format!("invalid JSON Schema: {e}")))?;
        Ok(Self {
            validator: Arc::new(validator),
            allow_prose: spec.allow_prose,
        })
    }

    /// Parses the output and validates it; the reason names the first failing instance path.
    pub(crate) fn check(&self, output: &str) -> Check {
        let doc = match parse_output(output, self.allow_prose) {
            Ok(doc) => doc,
            Err(e) => return Check::Fail(e),
        };
        let mut errors = self.validator.iter_errors(&doc);
        let Some(first) = errors.next() else {
            return Check::Pass("valid against the schema".to_owned());
        };
        let at = match first.instance_path().as_str() {
            "" => "root".to_owned(),
            p => p.to_owned(),
        };
        let more = errors.count();
        let more = if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        };
        Check::Fail(format!("at {at}: {}{more}", clip(&first.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grader(yaml: &str, dir: &Path) -> Result<SchemaGrader, GradeConfigError> {
        SchemaGrader::compile(&serde_saphyr::from_str(yaml).unwrap(), dir)
    }

    const INLINE: &str = r#"{schema: {type: object, required: [name, items],
        properties: {name: {type: string}, items: {type: array, items: {type: object,
        required: [qty], properties: {qty: {type: integer, minimum: 1}}}}}}}"#;

    #[test]
    fn valid_output_passes_in_a_fence_or_in_prose() {
        let g = grader(INLINE, Path::new(".")).unwrap();
        let ok = r#"{"name": "a", "items": [{"qty": 2}]}"#;
        assert_eq!(g.check(ok), Check::Pass("valid against the schema".into()));
        assert!(matches!(
            g.check(&format!("```json\n{ok}\n```")),
            Check::Pass(_)
        ));
        assert!(matches!(g.check(&format!("Here: {ok}")), Check::Fail(_)));
        let g = grader(
            &INLINE.replace("}}}}}}}", "}}}}}}, allow_prose: true}"),
            Path::new("."),
        )
        .unwrap();
        assert!(matches!(
            g.check(&format!("Here: {ok} done")),
            Check::Pass(_)
        ));
    }

    #[test]
    fn reason_names_the_first_failing_path() {
        let g = grader(INLINE, Path::new(".")).unwrap();
        match g.check(r#"{"name": "a", "items": [{"qty": 2}, {"qty": 0}]}"#) {
            Check::Fail(r) => assert!(r.starts_with("at /items/1/qty: 0 is less than"), "{r}"),
            other => panic!("{other:?}"),
        }
        match g.check(r#"{"name": 3}"#) {
            Check::Fail(r) => {
                assert!(r.starts_with("at "), "{r}");
                assert!(r.contains("more)"), "two problems: {r}");
            }
            other => panic!("{other:?}"),
        }
        match g.check("not json") {
            Check::Fail(r) => assert!(r.contains("expected ident"), "{r}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn schema_file_is_read_relative_to_the_suite() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("schemas")).unwrap();
        std::fs::write(
            dir.path().join("schemas/t.json"),
            r#"{"type": "array", "maxItems": 1}"#,
        )
        .unwrap();
        let g = grader("{schema_file: schemas/t.json}", dir.path()).unwrap();
        assert!(matches!(g.check("[1]"), Check::Pass(_)));
        match g.check("[1, 2]") {
            Check::Fail(r) => assert!(r.starts_with("at root:"), "{r}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_schemas_are_config_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = |y: &str| grader(y, dir.path()).unwrap_err().to_string();
        assert!(e("{schema: {type: objekt}}").contains("invalid JSON Schema"));
        assert!(e("{schema_file: nope.json}").contains("cannot read"));
        assert!(e("{}").contains("exactly one of"));
        assert!(e("{schema: {}, schema_file: x.json}").contains("exactly one of"));
        std::fs::write(dir.path().join("bad.json"), "{: nope").unwrap();
        assert!(e("{schema_file: bad.json}").contains("is not JSON or YAML"));
    }

    #[test]
    // Remote resolution is compiled out: a remote $ref must fail at load, never fetch.
    fn remote_refs_are_not_fetched() {
        let e = grader(
            "{schema: {$ref: 'https://example.com/schema.json'}}",
            Path::new("."),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("invalid JSON Schema"), "{e}");
    }
}
