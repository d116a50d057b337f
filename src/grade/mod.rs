//! Graders: decide whether one model output is an accepted outcome.
//!
//! Owns the YAML grader specs ([`GraderSpec`]), their load-time validation
//! and compilation ([`CompiledGrader`]), per-output [`Verdict`]s, and
//! parallel batch grading ([`grade_all`]). Each grader kind lives in its own
//! file; shared template and text helpers live in `template.rs` / `text.rs`.

pub mod code;
pub mod command;
pub mod confusion;
pub mod contains;
pub mod equals;
pub mod fields;
pub mod json;
pub mod judge;
pub mod label;
pub mod number;
mod process;
pub mod regex;
pub mod schema;
pub mod stored;
pub mod template;
pub mod text;
mod worker;

use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use code::CodeSpec;
pub use command::CommandSpec;
pub use contains::{ContainsManySpec, ContainsSpec};
pub use equals::EqualsSpec;
pub use fields::FieldsSpec;
pub use json::JsonSpec;
pub use judge::{JudgeSpec, Judges};
pub use label::LabelSpec;
pub use number::{NumberSpec, NumberValue, Pick};
#[cfg(target_os = "linux")]
pub use process::{file_isolation, network_isolation};
pub use regex::RegexSpec;
pub use schema::JsonSchemaSpec;
pub use template::template_variables;
pub use text::Normalize;

/// Task variables that grader templates are rendered with.
pub type Vars = serde_json::Map<String, serde_json::Value>;

/// One entry of a suite's `graders:` list, as written in YAML.
///
/// Each variant's struct has `deny_unknown_fields`; that (not the enum-level
/// attribute) is what rejects misspelt keys inside an internally tagged enum.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(
    tag = "type",
    rename_all = "kebab-case",
    deny_unknown_fields,
    expecting = "a grader: a mapping with a `type` key (equals, contains, contains-any, \
                 contains-all, regex, number, json, json_schema, fields, label, command, \
                 code or judge) and that type's fields"
)]
pub enum GraderSpec {
    /// `type: equals` — the whole output equals a value.
    Equals(EqualsSpec),
    /// `type: contains` — the output contains a substring.
    Contains(ContainsSpec),
    /// `type: contains-any` — the output contains at least one of several substrings.
    ContainsAny(ContainsManySpec),
    /// `type: contains-all` — the output contains every one of several substrings.
    ContainsAll(ContainsManySpec),
    /// `type: regex` — a regular expression matches the output.
    Regex(RegexSpec),
    /// `type: number` — a number extracted from the output is close to a value.
    Number(NumberSpec),
    /// `type: json` — the output is JSON with required keys and expected values.
    Json(JsonSpec),
    /// `type: json_schema` — the output's JSON validates against a JSON Schema.
    #[serde(rename = "json_schema", alias = "json-schema")]
    JsonSchema(JsonSchemaSpec),
    /// `type: fields` — extraction scored by field-level F1 at JSON pointers.
    Fields(FieldsSpec),
    /// `type: label` — classification against a declared label set.
    Label(LabelSpec),
    /// `type: command` — an external grader program decides.
    Command(CommandSpec),
    /// `type: code` — the output is a Python solution run against the task's tests.
    Code(CodeSpec),
    /// `type: judge` — an LLM judge with a rubric decides.
    Judge(JudgeSpec),
}

impl GraderSpec {
    /// The YAML `type` of this grader ("equals", "contains-any", ...).
    pub fn kind(&self) -> &'static str {
        match self {
            GraderSpec::Equals(_) => "equals",
            GraderSpec::Contains(_) => "contains",
            GraderSpec::ContainsAny(_) => "contains-any",
            GraderSpec::ContainsAll(_) => "contains-all",
            GraderSpec::Regex(_) => "regex",
            GraderSpec::Number(_) => "number",
            GraderSpec::Json(_) => "json",
            GraderSpec::JsonSchema(_) => "json_schema",
            GraderSpec::Fields(_) => "fields",
            GraderSpec::Label(_) => "label",
            GraderSpec::Command(_) => "command",
            GraderSpec::Code(_) => "code",
            GraderSpec::Judge(_) => "judge",
        }
    }

    /// Every template source this grader renders per task, so the suite
    /// loader can check (with [`template_variables`]) that each task defines
    /// the variables they use.
    pub fn templates(&self) -> Vec<&str> {
        match self {
            GraderSpec::Equals(s) => vec![s.value.as_str()],
            GraderSpec::Contains(s) => vec![s.value.as_str()],
            GraderSpec::ContainsAny(s) | GraderSpec::ContainsAll(s) => {
                s.values.iter().map(String::as_str).collect()
            }
            GraderSpec::Regex(s) => vec![s.pattern.as_str()],
            GraderSpec::Number(s) => match &s.value {
                NumberValue::Number(_) => Vec::new(),
                NumberValue::Template(t) => vec![t.as_str()],
            },
            GraderSpec::Json(s) => s.expect.values().filter_map(|v| v.as_str()).collect(),
            GraderSpec::Fields(s) => s
                .fields
                .values()
                .filter_map(|v| v.as_str().or_else(|| v.get("value")?.as_str()))
                .collect(),
            GraderSpec::Label(s) => vec![s.expected.as_str()],
            GraderSpec::Judge(s) => vec![s.rubric.as_str()],
            GraderSpec::JsonSchema(_) | GraderSpec::Command(_) | GraderSpec::Code(_) => Vec::new(),
        }
    }

    /// Validates the spec and precompiles its templates and regexes; call
    /// once at suite load. Errors name the grader type and the field. Files a
    /// grader names (a schema, a program) are resolved against the current directory.
    pub fn compile(&self) -> Result<CompiledGrader, GradeConfigError> {
        self.compile_in(Path::new(""))
    }

    /// [`GraderSpec::compile`] with files resolved against `dir`, the suite file's folder.
    pub fn compile_in(&self, dir: &Path) -> Result<CompiledGrader, GradeConfigError> {
        let (negate, inner) = match self {
            GraderSpec::Equals(s) => (s.negate, Inner::Equals(equals::EqualsGrader::compile(s)?)),
            GraderSpec::Contains(s) => (
                s.negate,
                Inner::Contains(contains::ContainsGrader::compile_one(s)?),
            ),
            GraderSpec::ContainsAny(s) => (
                s.negate,
                Inner::Contains(contains::ContainsGrader::compile_many(
                    s,
                    contains::Mode::Any,
                )?),
            ),
            GraderSpec::ContainsAll(s) => (
                s.negate,
                Inner::Contains(contains::ContainsGrader::compile_many(
                    s,
                    contains::Mode::All,
                )?),
            ),
            GraderSpec::Regex(s) => (s.negate, Inner::Regex(regex::RegexGrader::compile(s)?)),
            GraderSpec::Number(s) => (s.negate, Inner::Number(number::NumberGrader::compile(s)?)),
            GraderSpec::Json(s) => (s.negate, Inner::Json(json::JsonGrader::compile(s)?)),
            GraderSpec::JsonSchema(s) => (
                false,
                Inner::JsonSchema(schema::SchemaGrader::compile(s, dir)?),
            ),
            GraderSpec::Fields(s) => (false, Inner::Fields(fields::FieldsGrader::compile(s)?)),
            GraderSpec::Label(s) => (false, Inner::Label(label::LabelGrader::compile(s)?)),
            GraderSpec::Command(s) => (
                false,
                Inner::Command(command::CommandGrader::compile(s, dir)?),
            ),
            GraderSpec::Code(s) => (false, Inner::Code(code::CodeGrader::compile(s)?)),
            GraderSpec::Judge(s) => (false, Inner::Judge(judge::JudgeGrader::compile(s)?)),
        };
        Ok(CompiledGrader {
            kind: self.kind(),
            negate,
            inner,
        })
    }
}

/// Takes the `runtime` key off one `graders:` entry as written, before the entry is read as a
/// [`GraderSpec`]: `runtime: true` marks a check that can also run at serving time (a JSON or
/// regex check, unlike an `equals` against the reference answer), which `route` may let
/// escalate a cascade. It is kept apart from the spec so that no grader kind has to know of it.
pub fn take_runtime(entry: &mut serde_json::Value) -> Result<bool, String> {
    let Some(map) = entry.as_object_mut() else {
        return Ok(false);
    };
    match map.remove("runtime") {
        None => Ok(false),
        Some(serde_json::Value::Bool(b)) => Ok(b),
        Some(other) => Err(format!(
            "`runtime` must be true or false (got {other}): true marks a check that can run at serving time"
        )),
    }
}

/// A grader spec that failed validation at load time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{grader} grader, field `{field}`: {message}")]
pub struct GradeConfigError {
    /// Grader type, e.g. "regex".
    pub grader: &'static str,
    /// Offending field, e.g. `pattern` or `values[2]`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl GradeConfigError {
    /// Builds an error for `field` of a `grader` spec.
    pub(crate) fn new(grader: &'static str, field: &str, message: impl Into<String>) -> Self {
        Self {
            grader,
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Result of one grader on one output.
///
/// Three states: accepted (`passed`), rejected (neither `passed` nor `error`), or the grader
/// could not run (`error` is set, `passed` is false): an error says nothing about the output,
/// so reports can tell a broken grader from a bad answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether the grader accepted the output.
    pub passed: bool,
    /// Short human-readable explanation (expected vs found), unescaped.
    pub reason: String,
    /// Why the grader could not judge the output (a template that failed to render, a rendered
    /// regex or number that is invalid); absent when it judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A graded score in 0..1 from graders that give one (`fields`: field F1; `command`: the
    /// program's `score`); absent for pass/fail graders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// What a `label` or `fields` grader saw (labels, per-field counts), for the report's
    /// confusion matrices and field figures; absent for other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<confusion::Detail>,
}

/// The status of one graded output: the store's contract, decided here.
pub use crate::store::GradeStatus;

/// Raw outcome of a grader before `negate` is applied.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Check {
    /// The condition holds.
    Pass(String),
    /// The condition does not hold (`negate` turns this into a pass).
    Fail(String),
    /// The grader could not run (template render error, bad rendered regex
    /// or number): always a failure, even under `negate`.
    Error(String),
    /// A verdict with a score in 0..1 (`fields`, `command`).
    Scored {
        /// Whether the output is accepted.
        passed: bool,
        /// The score behind it.
        score: f64,
        /// Why.
        reason: String,
    },
}

/// The per-kind compiled graders.
#[derive(Debug, Clone)]
enum Inner {
    Equals(equals::EqualsGrader),
    Contains(contains::ContainsGrader),
    Regex(regex::RegexGrader),
    Number(number::NumberGrader),
    Json(json::JsonGrader),
    JsonSchema(schema::SchemaGrader),
    Fields(fields::FieldsGrader),
    Label(label::LabelGrader),
    Command(command::CommandGrader),
    Code(code::CodeGrader),
    Judge(judge::JudgeGrader),
}

/// A validated grader with its templates and regexes compiled; cheap to
/// run and `Send + Sync` for parallel grading.
#[derive(Debug, Clone)]
pub struct CompiledGrader {
    kind: &'static str,
    negate: bool,
    inner: Inner,
}

impl CompiledGrader {
    /// The YAML `type` this grader was compiled from.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The judge's provider id, for a `judge` grader.
    pub fn judge_provider(&self) -> Option<&str> {
        self.as_judge().map(|j| j.provider.as_str())
    }

    pub(crate) fn as_judge(&self) -> Option<&judge::JudgeGrader> {
        match &self.inner {
            Inner::Judge(j) => Some(j),
            _ => None,
        }
    }

    /// Stops the workers a persistent `command` grader started (their stdin is closed, then
    /// what did not exit is killed, and all are reaped); the next output starts new ones.
    /// Other kinds keep no process between outputs.
    pub fn stop_workers(&self) {
        if let Inner::Command(g) = &self.inner {
            g.stop_workers();
        }
    }

    /// Checks, without an output, the parts of this grader that depend on a task's
    /// variables (templates render, a rendered regex or number is valid), so the suite
    /// loader can report a grader that would fail for a task before anything is called.
    pub fn check_task(&self, vars: &Vars) -> Result<(), String> {
        match &self.inner {
            Inner::Equals(g) => g.expected(vars).map(drop),
            Inner::Contains(g) => g.needles(vars).map(drop),
            Inner::Regex(g) => g.regex(vars).map(drop),
            Inner::Number(g) => g.expected(vars).map(drop),
            Inner::Json(g) => g.rendered(vars).map(drop),
            Inner::JsonSchema(_) => Ok(()),
            Inner::Fields(g) => g.rendered(vars).map(drop),
            Inner::Label(g) => g.expected(vars).map(drop),
            Inner::Command(g) => g.check_task(vars),
            Inner::Code(g) => g.parts(vars).map(drop),
            Inner::Judge(g) => g.rubric(vars).map(drop),
        }
    }

    /// Grades one output. Never panics: render errors become verdicts with `error` set, and
    /// malformed outputs failing verdicts with a reason.
    pub fn grade(&self, output: &str, vars: &Vars) -> Verdict {
        self.grade_for(output, vars, "")
    }

    /// [`CompiledGrader::grade`] for an output of `provider` (the `command` grader sends it).
    pub fn grade_for(&self, output: &str, vars: &Vars, provider: &str) -> Verdict {
        let mut detail = None;
        let check = match &self.inner {
            Inner::Equals(g) => g.check(output, vars),
            Inner::Contains(g) => g.check(output, vars),
            Inner::Regex(g) => g.check(output, vars),
            Inner::Number(g) => g.check(output, vars),
            Inner::Json(g) => g.check(output, vars),
            Inner::JsonSchema(g) => g.check(output),
            Inner::Fields(g) => {
                let (c, d) = g.check_detailed(output, vars);
                detail = d;
                c
            }
            Inner::Label(g) => {
                let (c, d) = g.check_detailed(output, vars);
                detail = d;
                c
            }
            Inner::Command(g) => g.check(output, vars, provider),
            Inner::Code(g) => g.check(output, vars),
            // Judges call a provider; `grade::stored` runs them with the run's providers.
            Inner::Judge(g) => Check::Error(format!(
                "judge `{}` was not called: judges run only when grading a stored run",
                g.provider
            )),
        };
        let mut verdict = match (check, self.negate) {
            (Check::Pass(reason), false) => Verdict::judged(true, reason),
            (Check::Fail(reason), false) => Verdict::judged(false, reason),
            (Check::Pass(reason), true) => Verdict::judged(false, format!("negated, but {reason}")),
            (Check::Fail(reason), true) => Verdict::judged(true, format!("negated: {reason}")),
            (Check::Error(reason), _) => Verdict {
                passed: false,
                reason: format!("error: {reason}"),
                error: Some(reason),
                score: None,
                detail: None,
            },
            (
                Check::Scored {
                    passed,
                    score,
                    reason,
                },
                negate,
            ) => Verdict {
                passed: passed != negate,
                reason,
                error: None,
                score: Some(score),
                detail: None,
            },
        };
        verdict.detail = detail;
        verdict
    }
}

impl Verdict {
    /// A verdict of a grader that judged the output.
    fn judged(passed: bool, reason: String) -> Verdict {
        Verdict {
            passed,
            reason,
            error: None,
            score: None,
            detail: None,
        }
    }
}

/// One output to grade together with its task's variables.
#[derive(Debug, Clone, Copy)]
pub struct GradeInput<'a> {
    /// The model output.
    pub output: &'a str,
    /// The task's template variables.
    pub vars: &'a Vars,
    /// The provider that wrote the output (sent to `command` graders).
    pub provider: &'a str,
}

/// All verdicts for one output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradeOutcome {
    /// True when every grader passed (vacuously true with no graders).
    pub accepted: bool,
    /// The first grader error, as `graders[i]: message`, when some grader could not run;
    /// such an output is neither accepted nor judged rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// One verdict per grader, in grader order.
    pub verdicts: Vec<Verdict>,
}

impl GradeOutcome {
    /// Builds the outcome of one output from its verdicts, in grader order.
    pub fn from_verdicts(verdicts: Vec<Verdict>) -> GradeOutcome {
        GradeOutcome {
            accepted: verdicts.iter().all(|v| v.passed),
            error: verdicts
                .iter()
                .enumerate()
                .find_map(|(i, v)| v.error.as_ref().map(|e| format!("graders[{i}]: {e}"))),
            verdicts,
        }
    }

    /// Accepted, rejected, or not judged because a grader could not run.
    pub fn status(&self) -> GradeStatus {
        match (&self.error, self.accepted) {
            (Some(_), _) => GradeStatus::Error,
            (None, true) => GradeStatus::Accepted,
            (None, false) => GradeStatus::Rejected,
        }
    }
}

/// Grades every (output, vars) item against all graders in parallel with
/// rayon; acceptance = every grader passes. Results are in input order.
pub fn grade_all(graders: &[CompiledGrader], items: &[GradeInput<'_>]) -> Vec<GradeOutcome> {
    items
        .par_iter()
        .map(|item| {
            GradeOutcome::from_verdicts(
                graders
                    .iter()
                    .map(|g| g.grade_for(item.output, item.vars, item.provider))
                    .collect(),
            )
        })
        .collect()
}

/// The verdicts of every local grader on every item, in parallel on rayon; `None` where a
/// grader is a judge (judges call a provider, on tokio: see [`stored`]). In input order.
pub fn grade_local(
    graders: &[CompiledGrader],
    items: &[GradeInput<'_>],
) -> Vec<Vec<Option<Verdict>>> {
    items
        .par_iter()
        .map(|item| {
            graders
                .iter()
                .map(|g| {
                    (g.as_judge().is_none())
                        .then(|| g.grade_for(item.output, item.vars, item.provider))
                })
                .collect()
        })
        .collect()
}

/// How a suite's verdicts make an accepted outcome (`accept:` in the suite file).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Accept {
    /// Every grader passes (the default).
    #[default]
    All,
    /// At least one grader passes.
    Any,
    /// The weighted mean score reaches this (a verdict without a score counts 1 or 0).
    Score(f64),
}

impl Accept {
    /// Reads `all`, `any` or `score >= X` (X in 0..1).
    pub fn parse(s: &str) -> Result<Accept, String> {
        let t = s.trim();
        let bad = || {
            format!(
                "`{s}` is not an acceptance rule: write all, any, or score >= X (X between 0 and 1)"
            )
        };
        match t {
            "all" => Ok(Accept::All),
            "any" => Ok(Accept::Any),
            _ => {
                let x = t
                    .strip_prefix("score")
                    .map(str::trim_start)
                    .and_then(|r| r.strip_prefix(">="))
                    .ok_or_else(bad)?
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| bad())?;
                if (0.0..=1.0).contains(&x) {
                    Ok(Accept::Score(x))
                } else {
                    Err(bad())
                }
            }
        }
    }
}

impl std::fmt::Display for Accept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Accept::All => f.write_str("all"),
            Accept::Any => f.write_str("any"),
            Accept::Score(x) => write!(f, "score >= {x}"),
        }
    }
}

/// A suite's acceptance rule and each grader's weight (1 unless given; used by `score >= X`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Composition {
    /// The rule.
    pub accept: Accept,
    /// Weight per grader, in grader order; empty means every weight is 1.
    pub weights: Vec<f64>,
}

impl Composition {
    /// The weighted mean score of `verdicts` (a verdict's `score`, else 1 passed / 0 failed);
    /// `None` when no weight is above 0.
    pub fn score(&self, verdicts: &[Verdict]) -> Option<f64> {
        let (mut sum, mut total) = (0.0, 0.0);
        for (i, v) in verdicts.iter().enumerate() {
            let w = self.weights.get(i).copied().unwrap_or(1.0);
            let s = v.score.unwrap_or(if v.passed { 1.0 } else { 0.0 });
            sum += w * s;
            total += w;
        }
        (total > 0.0).then(|| sum / total)
    }

    /// Composes an output's verdicts. A grader error makes the outcome an error under every
    /// rule: an unjudged grader could have changed any of them.
    pub fn outcome(&self, verdicts: Vec<Verdict>) -> GradeOutcome {
        let mut o = GradeOutcome::from_verdicts(verdicts);
        o.accepted = o.error.is_none()
            && match self.accept {
                Accept::All => o.verdicts.iter().all(|v| v.passed),
                Accept::Any => o.verdicts.iter().any(|v| v.passed) || o.verdicts.is_empty(),
                Accept::Score(x) => self.score(&o.verdicts).is_none_or(|s| s >= x),
            };
        o
    }
}

/// Takes the `weight` key off one `graders:` entry as written (as [`take_runtime`] does):
/// a weight belongs to the suite's composition, not to any grader kind.
pub fn take_weight(entry: &mut serde_json::Value) -> Result<Option<f64>, String> {
    let Some(map) = entry.as_object_mut() else {
        return Ok(None);
    };
    match map.remove("weight") {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(w) if w.is_finite() && w >= 0.0 => Ok(Some(w)),
            _ => Err(format!(
                "`weight` must be a number of at least 0 (got {v}); it weighs this grader's \
                 score under `accept: score >= X`"
            )),
        },
    }
}

/// The fingerprint of one grader's config: the first 16 hex digits of the SHA-256 of its
/// spec as canonical JSON (the files a spec names are not read into it).
///
/// A `command` grader's `persistent` is left out: it says how costbench talks to the program
/// (one process per output, or one per worker over JSON Lines), not which program, arguments
/// or expected value decide, so switching it for speed keeps stored grades comparable and the
/// report does not show a second grader version. A program that gives different verdicts in
/// the two modes is broken (graders/README.md asks each reply to depend on its request only).
pub fn fingerprint(spec: &GraderSpec) -> String {
    use sha2::Digest;
    let mut v = serde_json::to_value(spec).unwrap_or_default();
    if let (GraderSpec::Command(_), Some(map)) = (spec, v.as_object_mut()) {
        map.remove("persistent");
    }
    let h = sha2::Sha256::digest(crate::suite::canonical_json(&v).as_bytes());
    hex::encode(h)[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn spec(yaml: &str) -> GraderSpec {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn vars(v: serde_json::Value) -> Vars {
        match v {
            serde_json::Value::Object(m) => m,
            _ => Vars::new(),
        }
    }

    /// The example suite from the design brief.
    const SUITE: &str = r#"
- {type: equals, value: "{{ label }}", normalize: [trim, lowercase]}
- {type: contains, value: "refund"}
- {type: contains-any, values: ["yes", "yeah"], normalize: [lowercase]}
- {type: contains-all, values: ["{{ city }}", "{{ date }}"]}
- {type: regex, pattern: "^(billing|bug|account)$"}
- {type: number, value: "{{ answer }}", tolerance: 0.01}
- {type: json, required: ["name", "total"], expect: {"/total": "{{ total }}", "/currency": "EUR"}}
"#;

    fn suite() -> Vec<GraderSpec> {
        serde_saphyr::from_str(SUITE).unwrap()
    }

    #[test]
    fn suite_example_parses_compiles_and_reports_templates() {
        let specs = suite();
        let kinds: Vec<_> = specs.iter().map(GraderSpec::kind).collect();
        assert_eq!(
            kinds,
            [
                "equals",
                "contains",
                "contains-any",
                "contains-all",
                "regex",
                "number",
                "json"
            ]
        );
        let templates: Vec<&str> = specs.iter().flat_map(GraderSpec::templates).collect();
        assert!(templates.contains(&"{{ city }}"));
        assert!(templates.contains(&"{{ total }}"));
        assert!(templates.contains(&"EUR"));
        let vars: std::collections::BTreeSet<String> = templates
            .iter()
            .flat_map(|t| template_variables(t).unwrap())
            .collect();
        assert_eq!(
            vars.into_iter().collect::<Vec<_>>(),
            ["answer", "city", "date", "label", "total"]
        );
        for s in &specs {
            let c = s.compile().unwrap();
            assert_eq!(c.kind(), s.kind());
        }
    }

    #[test]
    fn unknown_key_is_rejected_by_serde_saphyr() {
        let err = serde_saphyr::from_str::<GraderSpec>("{type: equals, value: x, valeu: y}")
            .unwrap_err()
            .to_string();
        println!("unknown key error: {err}");
        assert!(err.contains("unknown field `valeu`"), "{err}");
    }

    #[test]
    fn unknown_type_is_rejected_by_serde_saphyr() {
        let err = serde_saphyr::from_str::<GraderSpec>("{type: equal, value: x}")
            .unwrap_err()
            .to_string();
        println!("unknown type error: {err}");
        assert!(err.contains("unknown variant `equal`"), "{err}");
    }

    #[test]
    fn unknown_key_and_type_are_rejected_via_json_value() {
        // The suite loader goes YAML -> serde_json::Value -> GraderSpec.
        let v: serde_json::Value =
            serde_saphyr::from_str("{type: equals, value: x, valeu: y}").unwrap();
        let err = serde_json::from_value::<GraderSpec>(v)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "unknown field `valeu`, expected one of `value`, `normalize`, `negate`"
        );
        let v: serde_json::Value = serde_saphyr::from_str("{type: equal, value: x}").unwrap();
        let err = serde_json::from_value::<GraderSpec>(v)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("unknown variant `equal`, expected one of `equals`"),
            "{err}"
        );
    }

    #[test]
    fn missing_type_is_rejected() {
        let err = serde_saphyr::from_str::<GraderSpec>("{value: x}")
            .unwrap_err()
            .to_string();
        println!("missing type error: {err}");
        assert!(err.contains("type"), "{err}");
    }

    #[test]
    fn spec_round_trips_through_json() {
        for s in suite() {
            let text = serde_json::to_string(&s).unwrap();
            let back: GraderSpec = serde_json::from_str(&text).unwrap();
            assert_eq!(back, s, "{text}");
        }
    }

    #[test]
    fn negate_flips_pass_and_fail_but_not_errors() {
        let g = spec("{type: contains, value: 'as an AI', negate: true}")
            .compile()
            .unwrap();
        let v = g.grade("Sure, here it is.", &Vars::new());
        assert!(v.passed, "{v:?}");
        let v = g.grade("as an AI model I cannot", &Vars::new());
        assert!(!v.passed, "{v:?}");
        assert!(v.reason.starts_with("negated"), "{v:?}");
        let g = spec("{type: contains, value: '{{ x }}', negate: true}")
            .compile()
            .unwrap();
        let v = g.grade("anything", &Vars::new());
        assert!(!v.passed, "render errors must not be negated: {v:?}");
        assert!(v.reason.starts_with("error:"), "{v:?}");
    }

    #[test]
    // Regression: a grader that could not run (a template failing for an output) looked like
    // a rejection; the outcome now says it was not judged.
    fn grader_errors_are_a_third_status() {
        let graders: Vec<CompiledGrader> = [
            "{type: contains, value: x}",
            "{type: equals, value: '{{ missing }}'}",
        ]
        .iter()
        .map(|y| spec(y).compile().unwrap())
        .collect();
        let v = Vars::new();
        let item = |output| GradeInput {
            output,
            vars: &v,
            provider: "p",
        };
        let out = grade_all(&graders, &[item("x"), item("y")]);
        for o in &out {
            assert_eq!(o.status(), GradeStatus::Error, "{o:?}");
            assert!(!o.accepted);
            assert_eq!(
                o.error.as_deref(),
                Some("graders[1]: cannot render `value`: task does not define missing")
            );
        }
        let json = serde_json::to_value(&out[0].verdicts).unwrap();
        assert_eq!(json[0], json!({"passed": true, "reason": "found \"x\""}));
        assert_eq!(
            json[1]["error"],
            "cannot render `value`: task does not define missing"
        );
        let ok = grade_all(&graders[..1], &[item("x"), item("y")]);
        assert_eq!(ok[0].status(), GradeStatus::Accepted);
        assert_eq!(ok[1].status(), GradeStatus::Rejected);
        assert!(graders[1].check_task(&v).is_err());
        assert!(graders[0].check_task(&v).is_ok());
    }

    #[test]
    fn grade_all_keeps_order_and_requires_every_grader() {
        let graders: Vec<CompiledGrader> = [
            "{type: contains, value: '{{ word }}'}",
            "{type: regex, pattern: '^\\w+ \\d+$'}",
        ]
        .iter()
        .map(|y| spec(y).compile().unwrap())
        .collect();
        let vs: Vec<Vars> = (0..200)
            .map(|i| vars(json!({"word": format!("w{i}")})))
            .collect();
        let outputs: Vec<String> = (0..200)
            .map(|i| {
                if i % 3 == 0 {
                    format!("w{i} {i}")
                } else {
                    format!("x{i} {i}")
                }
            })
            .collect();
        let items: Vec<GradeInput<'_>> = outputs
            .iter()
            .zip(&vs)
            .map(|(o, v)| GradeInput {
                output: o,
                vars: v,
                provider: "p",
            })
            .collect();
        let out = grade_all(&graders, &items);
        assert_eq!(out.len(), 200);
        for (i, o) in out.iter().enumerate() {
            assert_eq!(o.accepted, i % 3 == 0, "item {i}: {o:?}");
            assert_eq!(o.verdicts.len(), 2);
            assert!(o.verdicts[1].passed, "regex holds for all: {o:?}");
        }
    }

    #[test]
    fn grade_all_with_no_graders_accepts() {
        let v = Vars::new();
        let out = grade_all(
            &[],
            &[GradeInput {
                output: "x",
                vars: &v,
                provider: "p",
            }],
        );
        assert_eq!(
            out,
            vec![GradeOutcome {
                accepted: true,
                error: None,
                verdicts: vec![]
            }]
        );
    }

    #[test]
    fn compiled_grader_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CompiledGrader>();
    }

    #[test]
    fn grading_a_batch_in_parallel_keeps_every_verdict_in_order() {
        // Its speed is measured by `cargo bench --bench grading`, not asserted here.
        let graders: Vec<CompiledGrader> = suite().iter().map(|s| s.compile().unwrap()).collect();
        let v = vars(
            json!({"label": "Bug", "city": "Paris", "date": "May 3", "answer": 42,
                            "total": "12.5"}),
        );
        let good = r#"```json
{"name": "refund yes", "total": 12.5, "currency": "EUR", "city": "Paris May 3"}
```"#;
        let items: Vec<GradeInput<'_>> = (0..2000)
            .map(|i| GradeInput {
                output: if i % 2 == 0 { good } else { "no json here" },
                vars: &v,
                provider: "p",
            })
            .collect();
        let out = grade_all(&graders, &items);
        assert_eq!(out.len(), 2000);
        assert!(out[0].verdicts[6].passed, "{:?}", out[0].verdicts[6]);
        assert!(!out[1].verdicts[6].passed, "{:?}", out[1].verdicts[6]);
        assert!(out.iter().step_by(2).all(|o| o.verdicts[6].passed));
    }

    fn v(passed: bool, score: Option<f64>) -> Verdict {
        Verdict {
            passed,
            reason: String::new(),
            error: None,
            score,
            detail: None,
        }
    }

    #[test]
    fn accept_rules_parse_and_print() {
        assert_eq!(Accept::parse("all"), Ok(Accept::All));
        assert_eq!(Accept::parse(" any "), Ok(Accept::Any));
        assert_eq!(Accept::parse("score >= 0.75"), Ok(Accept::Score(0.75)));
        assert_eq!(Accept::parse("score>=1"), Ok(Accept::Score(1.0)));
        for bad in ["most", "score > 0.5", "score >= 1.5", "score >= x", ""] {
            assert!(Accept::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Accept::Score(0.75).to_string(), "score >= 0.75");
    }

    #[test]
    fn all_any_and_weighted_score_compose_verdicts() {
        let verdicts = || vec![v(true, None), v(false, Some(0.5)), v(false, None)];
        let all = Composition::default();
        assert!(!all.outcome(verdicts()).accepted);
        assert!(
            all.outcome(vec![v(true, None), v(true, Some(0.2))])
                .accepted
        );
        let any = Composition {
            accept: Accept::Any,
            weights: vec![],
        };
        assert!(any.outcome(verdicts()).accepted);
        assert!(!any.outcome(vec![v(false, None)]).accepted);
        // (3·1 + 1·0.5 + 0·0) / 4 = 0.875; with equal weights (1 + 0.5 + 0) / 3 = 0.5.
        let weighted = Composition {
            accept: Accept::Score(0.8),
            weights: vec![3.0, 1.0, 0.0],
        };
        assert_eq!(weighted.score(&verdicts()), Some(0.875));
        assert!(weighted.outcome(verdicts()).accepted);
        let equal = Composition {
            accept: Accept::Score(0.8),
            weights: vec![],
        };
        assert_eq!(equal.score(&verdicts()), Some(0.5));
        assert!(!equal.outcome(verdicts()).accepted);
    }

    #[test]
    fn a_grader_error_is_an_error_under_every_rule() {
        let mut broken = v(false, None);
        broken.error = Some("judge call failed".into());
        for accept in [Accept::All, Accept::Any, Accept::Score(0.0)] {
            let c = Composition {
                accept,
                weights: vec![],
            };
            let o = c.outcome(vec![v(true, None), broken.clone()]);
            assert_eq!(o.status(), GradeStatus::Error, "{accept}");
            assert!(!o.accepted);
        }
    }

    #[test]
    fn weights_are_taken_off_the_entry_and_checked() {
        let mut e = json!({"type": "contains", "value": "x", "weight": 2});
        assert_eq!(take_weight(&mut e), Ok(Some(2.0)));
        assert_eq!(e, json!({"type": "contains", "value": "x"}));
        assert_eq!(take_weight(&mut e), Ok(None));
        for bad in [json!({"weight": -1}), json!({"weight": "heavy"})] {
            let mut e = bad;
            assert!(take_weight(&mut e).is_err());
        }
    }

    #[test]
    fn fingerprints_follow_the_config() {
        let a = fingerprint(&spec("{type: contains, value: x}"));
        assert_eq!(a.len(), 16);
        assert_eq!(a, fingerprint(&spec("{value: x, type: contains}")));
        assert_ne!(a, fingerprint(&spec("{type: contains, value: z}")));
    }

    #[test]
    // `persistent` is transport, not judgement: the same program and arguments keep their
    // fingerprint in both modes, while the arguments still count.
    fn a_command_graders_mode_is_not_in_its_fingerprint() {
        let one_shot = spec("{type: command, program: g.py, args: [--strict]}");
        let persistent = spec("{type: command, program: g.py, args: [--strict], persistent: true}");
        assert_ne!(one_shot, persistent);
        assert_eq!(fingerprint(&one_shot), fingerprint(&persistent));
        assert_ne!(
            fingerprint(&one_shot),
            fingerprint(&spec("{type: command, program: g.py}"))
        );
        let json = serde_json::to_value(&persistent).unwrap();
        assert_eq!(json["persistent"], true, "kept in the stored spec");
        assert!(
            serde_json::to_value(&one_shot)
                .unwrap()
                .get("persistent")
                .is_none()
        );
    }

    proptest! {
        #[test]
        fn no_grader_panics_on_arbitrary_output(output in any::<String>()) {
            let v = vars(json!({"label": "a", "city": "b", "date": "c", "answer": 1, "total": 2}));
            let mut specs = suite();
            specs.push(spec("{type: number, value: 3, pick: only}"));
            specs.push(spec("{type: json, allow_prose: true, expect: {'': {a: [1, '2']}}}"));
            specs.push(spec("{type: equals, value: x, normalize: [trim, lowercase, collapse_whitespace, strip_punctuation, strip_code_fences], negate: true}"));
            for s in specs {
                let g = s.compile().unwrap();
                let verdict = g.grade(&output, &v);
                prop_assert!(!verdict.reason.is_empty());
                let _ = g.grade(&output, &Vars::new());
            }
        }

        #[test]
        fn no_grader_panics_on_json_like_output(output in r#"[\[\]{}",:0-9a-z\- .eE`\n]{0,60}"#) {
            let v = vars(json!({"total": "1,5"}));
            for y in [
                "{type: json, required: [a, /b/0], expect: {/a: '{{ total }}', /b: [1]}}",
                "{type: json, allow_prose: true, expect: {/a: true}}",
                "{type: number, value: '{{ total }}', relative_tolerance: 0.1}",
            ] {
                let g = spec(y).compile().unwrap();
                let _ = g.grade(&output, &v);
            }
        }
    }
}
