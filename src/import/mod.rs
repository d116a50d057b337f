//! `costbench import`: suites teams already have (promptfoo configs, OpenAI Evals) turned into
//! costbench suites, a providers file and an import report.
//!
//! Each source format is one file that reads its own files into [`Case`]s: one task with its
//! prompt templates and graders, where every per-task value of a grader (an expected string, a
//! regex) is a task variable the grader's template reads. This module then groups the cases
//! whose prompt and graders have the same shape into one suite each (a costbench suite has one
//! prompt and one grader list for all its tasks), writes constant values back into the graders
//! so the files read as if written by hand, and writes the suites, their tasks files, the
//! providers file and `IMPORT_REPORT.md`. Nothing the source says is dropped silently: whatever
//! was not mapped, or mapped only approximately, becomes a [`Note`] in the report.

pub mod openai_evals;
pub mod promptfoo;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::config::{ConfigError, DocPath, Loader};
use crate::grade::template::environment;
use crate::grade::{GraderSpec, template_variables};

/// What happened to one construct of the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NoteKind {
    /// Not imported at all; the suite behaves as if it were absent.
    Dropped,
    /// Written as a `command` grader stub that fails as a grader error until it is ported.
    NeedsPorting,
    /// Written as a comment, to be enabled by hand (or by a costbench that knows it).
    Commented,
    /// Imported with a difference in behaviour the note explains.
    Approximated,
}

impl NoteKind {
    fn label(self) -> &'static str {
        match self {
            NoteKind::Dropped => "not imported",
            NoteKind::NeedsPorting => "needs porting",
            NoteKind::Commented => "commented out",
            NoteKind::Approximated => "approximated",
        }
    }
}

/// One construct of the source that was not mapped one to one.
#[derive(Debug, Clone)]
pub struct Note {
    /// Where in the source (`file:line:col: path`, or `file: row 3`).
    pub at: String,
    /// What it was (`assertion type \`similar\``).
    pub construct: String,
    /// What happened to it.
    pub kind: NoteKind,
    /// Why, and what to do.
    pub message: String,
}

/// The prompt of a case: templates over the case's variables.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PromptDraft {
    /// System message template.
    pub system: Option<String>,
    /// Few-shot (user, assistant) turns.
    pub examples: Vec<(String, String)>,
    /// User message template.
    pub user: String,
}

/// How a per-case value is written into a grader template, so a value shared by every case
/// of a suite can be written into the grader itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inline {
    /// The grader's string holds `{{ var }}`.
    Template,
    /// The grader's string holds `{{ var | regex_escape }}`.
    Regex,
    /// Read by name (a command grader's `expected_var`): stays a variable.
    Keep,
}

/// One grader of a case, as it will be written.
#[derive(Debug, Clone)]
pub struct GraderDraft {
    /// The grader entry (a costbench `graders:` item).
    pub spec: Value,
    /// A comment written above it (where it came from).
    pub comment: String,
    /// Per-case values the spec reads: (variable, value, how the spec embeds it).
    pub bindings: Vec<(String, Value, Inline)>,
}

/// One task to import.
#[derive(Debug, Clone)]
pub struct Case {
    /// Preferred task id (made unique per suite).
    pub id: String,
    /// Task variables (the source's own).
    pub vars: Map<String, Value>,
    /// Which prompt of the import it uses (an index into [`Import::prompts`]).
    pub prompt: usize,
    /// This case's own prompt templates, when they differ from its prompt's (a sample that
    /// carries its own chat); cases with the same templates still share a suite.
    pub own_prompt: Option<PromptDraft>,
    /// Its graders; a spec may carry a `weight` (kept only under a score threshold).
    pub graders: Vec<GraderDraft>,
    /// The source's pass threshold on the weighted score of the graders, and where it is set.
    pub threshold: Option<(f64, String)>,
}

/// A prompt shared by cases: a name suffix for its suites and the templates.
#[derive(Debug, Clone)]
pub struct NamedPrompt {
    /// Suffix for the suite name when an import has several prompts (`""` when it has one).
    pub suffix: String,
    /// Where it came from, for the suite's description.
    pub origin: String,
    /// Templates.
    pub prompt: PromptDraft,
}

/// What a source importer produces.
#[derive(Debug, Default)]
pub struct Import {
    /// Which importer (`promptfoo`, `openai-evals`).
    pub source_kind: &'static str,
    /// The file imported.
    pub source: PathBuf,
    /// Base name of the suites written (`support-bot`); also their workload class.
    pub name: String,
    /// What the source says it tests.
    pub description: String,
    /// The prompts.
    pub prompts: Vec<NamedPrompt>,
    /// The tasks.
    pub cases: Vec<Case>,
    /// Request parameters for every suite (`temperature`, `max_tokens`).
    pub params: Map<String, Value>,
    /// Providers-file entries the source names.
    pub providers: Vec<Value>,
    /// Everything not mapped one to one.
    pub notes: Vec<Note>,
    /// Python grader programs to write to `graders/` (file name, text).
    pub programs: BTreeMap<String, String>,
}

impl Import {
    /// Records a note.
    pub fn note(
        &mut self,
        at: impl Into<String>,
        construct: impl Into<String>,
        kind: NoteKind,
        message: impl Into<String>,
    ) {
        self.notes.push(Note {
            at: at.into(),
            construct: construct.into(),
            kind,
            message: message.into(),
        });
    }

    /// Adds a provider entry unless one with its id is already there; returns the id.
    pub fn add_provider(&mut self, entry: Value) -> String {
        let id = entry["id"].as_str().unwrap_or_default().to_string();
        if !self.providers.iter().any(|p| p["id"] == entry["id"]) {
            self.providers.push(entry);
        }
        id
    }
}

/// The location text of a path inside a loaded YAML/JSON file.
pub fn located(l: &mut Loader, path: &DocPath) -> String {
    l.problem(path, "");
    let p = l.problems.pop().expect("just pushed");
    p.to_string().trim_end_matches(": ").to_string()
}

/// The stub every check that could not be converted is written as: a `command` grader whose
/// program reports a grader error (never a pass or a fail) naming the check.
pub const STUB_PROGRAM: &str = "graders/needs-porting.sh";

const STUB_TEXT: &str = "#!/bin/sh
# Written by `costbench import`: stands in for a check that has no costbench grader yet.
# It reads the grader request (JSON on stdin), then fails, so every outcome it grades is a
# grader error: counted and shown, never a silent pass. Port the check (the original is in
# the task variable named by `expected_var`, and in IMPORT_REPORT.md) to a program that
# speaks the protocol in costbench's graders/README.md, or delete the grader to go without it.
cat >/dev/null
echo \"needs porting: the $1 check imported from $2 has no costbench equivalent yet (see IMPORT_REPORT.md)\" >&2
exit 3
";

/// A stub grader for a check of `kind` from `source`; `code` (the original check, when it has
/// one) travels to it as the task's expected value so it stays next to the task.
pub fn stub_grader(
    kind: &str,
    source: &str,
    code: Option<(String, Value)>,
) -> (Value, Vec<(String, Value, Inline)>) {
    let mut spec = json!({"type": "command", "program": STUB_PROGRAM, "args": [kind, source]});
    let mut bindings = Vec::new();
    if let Some((var, value)) = code {
        spec["expected_var"] = Value::String(var.clone());
        bindings.push((var, value, Inline::Keep));
    }
    (spec, bindings)
}

/// Whether this build's suites know the `judge` grader kind (`type: judge, provider, rubric`).
pub fn judge_supported() -> bool {
    serde_json::from_value::<GraderSpec>(json!({"type": "judge", "provider": "p", "rubric": "r"}))
        .is_ok()
}

/// Whether this build's suites take `accept: score >= X` with a `weight` per grader: probed by
/// loading a two-line suite, so an import written by a costbench that has composition uses it.
pub fn composition_supported() -> bool {
    let Ok(dir) = tempfile::tempdir() else {
        return false;
    };
    let path = dir.path().join("probe.yaml");
    let probe = "suite: probe\nprompt: {user: x}\naccept: score >= 0.5\n\
                 graders:\n  - {type: contains, value: x, weight: 2}\n  - {type: contains, value: y}\n\
                 tasks: [{id: a, vars: {}}]\n";
    std::fs::write(&path, probe).is_ok() && crate::suite::load_suite(&path).is_ok()
}

/// Lower-case ASCII slug of `s` (`Support bot v2` → `support-bot-v2`), at most 48 characters.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 48 {
            break;
        }
    }
    out.trim_end_matches('-').to_string()
}

/// The placeholder a grader template uses for a per-case value.
pub fn placeholder(var: &str, how: Inline) -> String {
    match how {
        Inline::Regex => format!("{{{{ {var} | regex_escape }}}}"),
        _ => format!("{{{{ {var} }}}}"),
    }
}

/// A value as grader text: strings as they are, numbers and booleans as written.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `s` as a template that renders to itself.
pub fn literal_template(s: &str) -> String {
    if s.contains("{{") || s.contains("{%") || s.contains("{#") {
        format!("{{% raw %}}{s}{{% endraw %}}")
    } else {
        s.to_string()
    }
}

/// Checks a prompt or grader template compiles in costbench's template language.
pub fn check_template(src: &str) -> Result<BTreeSet<String>, String> {
    environment()
        .template_from_str(src)
        .map_err(|e| crate::grade::template::describe(&e))?;
    template_variables(src)
}

/// One suite as written.
#[derive(Debug)]
pub struct SuiteOut {
    /// Suite name (and file stem).
    pub name: String,
    /// Its tasks.
    pub tasks: usize,
    /// Its graders.
    pub graders: usize,
}

/// What [`write`] produced.
#[derive(Debug)]
pub struct Written {
    /// The suites.
    pub suites: Vec<SuiteOut>,
    /// The providers file, when the source names providers.
    pub providers: Option<PathBuf>,
    /// The report file.
    pub report: PathBuf,
    /// The report's notes (for printing).
    pub notes: Vec<Note>,
}

/// A suite being assembled from cases of one shape.
struct Group {
    threshold: Option<(f64, String)>,
    prompt: PromptDraft,
    prompt_index: usize,
    graders: Vec<GraderDraft>,
    tasks: Vec<(String, Map<String, Value>)>,
}

/// Groups cases by the shape of their prompt and graders; each group becomes one suite.
fn group(import: &Import) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    for case in &import.cases {
        let prompt = case
            .own_prompt
            .clone()
            .unwrap_or_else(|| import.prompts[case.prompt].prompt.clone());
        let specs: Vec<&Value> = case.graders.iter().map(|g| &g.spec).collect();
        let threshold = case.threshold.as_ref().map(|t| t.0);
        let key = json!([case.prompt, prompt, specs, threshold]).to_string();
        let mut vars = case.vars.clone();
        for g in &case.graders {
            for (var, value, _) in &g.bindings {
                vars.insert(var.clone(), value.clone());
            }
        }
        let at = match keys.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                keys.push(key);
                groups.push(Group {
                    threshold: case.threshold.clone(),
                    prompt,
                    prompt_index: case.prompt,
                    graders: case.graders.clone(),
                    tasks: Vec::new(),
                });
                groups.len() - 1
            }
        };
        groups[at].tasks.push((case.id.clone(), vars));
    }
    for g in &mut groups {
        inline_constants(g);
    }
    groups
}

/// Writes per-case values that every task of the group shares into the graders and the
/// prompt, and drops them from the tasks.
fn inline_constants(g: &mut Group) {
    inline_prompt_constants(g);
    let mut bound: Vec<(String, Inline)> = Vec::new();
    for d in &g.graders {
        for (var, _, how) in &d.bindings {
            if !bound.iter().any(|(v, _)| v == var) {
                bound.push((var.clone(), *how));
            }
        }
    }
    for (var, how) in bound {
        if how == Inline::Keep {
            continue;
        }
        let first = g.tasks.first().and_then(|(_, v)| v.get(&var)).cloned();
        let Some(text) = first.as_ref().and_then(scalar_text) else {
            continue;
        };
        if !g.tasks.iter().all(|(_, v)| v.get(&var) == first.as_ref()) {
            continue;
        }
        let replacement = match how {
            Inline::Regex => ::regex::escape(&text),
            _ => literal_template(&text),
        };
        let needle = placeholder(&var, how);
        for d in &mut g.graders {
            replace_in(&mut d.spec, &needle, &replacement);
            d.bindings.retain(|(v, _, _)| *v != var);
        }
        for (_, vars) in &mut g.tasks {
            vars.shift_remove(&var);
        }
    }
}

/// A prompt field that is just `{{ var }}` (a sample's own system message or few-shot turn)
/// whose value every task shares becomes that text, unless a grader reads the variable too.
fn inline_prompt_constants(g: &mut Group) {
    let graders_text = g
        .graders
        .iter()
        .map(|d| d.spec.to_string())
        .collect::<String>();
    let mut fields: Vec<&mut String> = Vec::new();
    if let Some(s) = g.prompt.system.as_mut() {
        fields.push(s);
    }
    for (u, a) in g.prompt.examples.iter_mut() {
        fields.push(u);
        fields.push(a);
    }
    for f in fields {
        let Some(var) = f
            .strip_prefix("{{ ")
            .and_then(|r| r.strip_suffix(" }}"))
            .filter(|v| v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .map(str::to_string)
        else {
            continue;
        };
        if graders_text.contains(&var) {
            continue;
        }
        let first = g.tasks.first().and_then(|(_, v)| v.get(&var)).cloned();
        let Some(Value::String(text)) = first.clone() else {
            continue;
        };
        if g.tasks.iter().all(|(_, v)| v.get(&var) == first.as_ref()) {
            *f = literal_template(&text);
            for (_, vars) in &mut g.tasks {
                vars.shift_remove(&var);
            }
        }
    }
}

fn replace_in(v: &mut Value, needle: &str, with: &str) {
    match v {
        Value::String(s) if s.contains(needle) => *s = s.replace(needle, with),
        Value::Array(a) => a.iter_mut().for_each(|x| replace_in(x, needle, with)),
        Value::Object(m) => m.values_mut().for_each(|x| replace_in(x, needle, with)),
        _ => {}
    }
}

/// Every variable the prompt's templates read.
fn prompt_variables(p: &PromptDraft) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut add = |s: &str| {
        if let Ok(v) = template_variables(s) {
            out.extend(v);
        }
    };
    if let Some(s) = &p.system {
        add(s);
    }
    for (u, a) in &p.examples {
        add(u);
        add(a);
    }
    add(&p.user);
    out
}

/// Writes the suites, tasks files, providers file, grader programs and the report into `out`.
pub fn write(mut import: Import, out: &Path) -> anyhow::Result<Written> {
    use anyhow::Context;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let judge_ok = judge_supported();
    let composition_ok = composition_supported();
    let mut groups = group(&import);
    let several_prompts = import.prompts.len() > 1;
    let mut shapes_per_prompt: BTreeMap<usize, usize> = BTreeMap::new();
    for g in &groups {
        *shapes_per_prompt.entry(g.prompt_index).or_default() += 1;
    }
    let mut seen_per_prompt: BTreeMap<usize, usize> = BTreeMap::new();
    let mut suites = Vec::new();
    let mut used_names = BTreeSet::new();
    let mut stub_used = false;
    let mut missing_vars_noted = BTreeSet::new();
    for g in &mut groups {
        let named = &import.prompts[g.prompt_index];
        let mut name = import.name.clone();
        if several_prompts && !named.suffix.is_empty() {
            name = format!("{name}-{}", named.suffix);
        }
        let n = seen_per_prompt.entry(g.prompt_index).or_default();
        *n += 1;
        if shapes_per_prompt[&g.prompt_index] > 1 {
            name = format!("{name}-{n}");
        }
        while !used_names.insert(name.clone()) {
            name.push('x');
        }
        // promptfoo and Evals render a variable a task lacks as empty text; costbench refuses
        // it at load, so the import writes the empty text into the task.
        for var in prompt_variables(&g.prompt) {
            let lacking = g
                .tasks
                .iter()
                .filter(|(_, v)| !v.contains_key(&var))
                .count();
            if lacking > 0 {
                for (_, v) in &mut g.tasks {
                    v.entry(var.clone()).or_insert(Value::String(String::new()));
                }
                if missing_vars_noted.insert(var.clone()) {
                    import.notes.push(Note {
                        at: format!("suite {name}"),
                        construct: format!("variable `{var}`"),
                        kind: NoteKind::Approximated,
                        message: format!(
                            "{lacking} task(s) do not set `{var}`, which the prompt reads; they get \
                             an empty string, as the source renders an undefined variable"
                        ),
                    });
                }
            }
        }
        let file = out.join(format!("{name}.yaml"));
        let tasks_name = format!("{name}.tasks.jsonl");
        let mut ids = BTreeSet::new();
        let mut lines = String::new();
        for (i, (id, vars)) in g.tasks.iter().enumerate() {
            let mut id = if id.is_empty() {
                format!("t{}", i + 1)
            } else {
                id.clone()
            };
            if !ids.insert(id.clone()) {
                id = format!("{id}-{}", i + 1);
                ids.insert(id.clone());
            }
            lines.push_str(&json!({"id": id, "vars": vars}).to_string());
            lines.push('\n');
        }
        std::fs::write(out.join(&tasks_name), lines)
            .with_context(|| format!("cannot write {tasks_name}"))?;

        let mut head = Map::new();
        head.insert("suite".into(), json!(name));
        let desc = if import.description.is_empty() {
            format!("Imported from {} ({})", import.source_kind, named.origin)
        } else {
            format!(
                "{} (imported from {}, {})",
                import.description, import.source_kind, named.origin
            )
        };
        head.insert("description".into(), json!(desc));
        head.insert("workload".into(), json!(import.name));
        let mut prompt = Map::new();
        if let Some(s) = &g.prompt.system {
            prompt.insert("system".into(), json!(s));
        }
        prompt.insert("user".into(), json!(g.prompt.user));
        if !g.prompt.examples.is_empty() {
            prompt.insert(
                "examples".into(),
                g.prompt
                    .examples
                    .iter()
                    .map(|(u, a)| json!({"user": u, "assistant": a}))
                    .collect(),
            );
        }
        head.insert("prompt".into(), Value::Object(prompt));
        if !import.params.is_empty() {
            head.insert("params".into(), Value::Object(import.params.clone()));
        }
        head.insert("tasks_file".into(), json!(tasks_name));
        // promptfoo's test threshold: pass when the weighted score reaches it.
        let mut threshold_comment = None;
        match &g.threshold {
            Some((th, _)) if composition_ok => {
                head.insert("accept".into(), json!(format!("score >= {th}")));
            }
            Some((th, at)) => {
                threshold_comment = Some(format!(
                    "# The source passes a task when the weighted score of its checks reaches {th}:\n\
                     # `accept: score >= {th}` with each `weight`, in a costbench that has them.\n"
                ));
                import.notes.push(Note {
                    at: at.clone(),
                    construct: format!("threshold {th} (and assertion weights)"),
                    kind: NoteKind::Approximated,
                    message: "this costbench build has no `accept: score >= X`: it accepts only \
                              when every grader passes (stricter than the source)"
                        .into(),
                });
            }
            None => {}
        }
        if !(composition_ok && g.threshold.is_some()) {
            // Without a score rule weights change no verdict (in promptfoo neither).
            for d in &mut g.graders {
                if let Some(w) = d
                    .spec
                    .as_object_mut()
                    .and_then(|m| m.shift_remove("weight"))
                    && g.threshold.is_some()
                {
                    let w = w.as_f64().map_or(w.to_string(), |x| x.to_string());
                    d.comment.push_str(&format!(" (weight {w} in the source)"));
                }
            }
        }
        let head_yaml = serde_saphyr::to_string(&Value::Object(head))
            .context("cannot write the suite as YAML")?;

        let mut text = format!(
            "# Written by `costbench import {}` from {}.\n# Review IMPORT_REPORT.md before trusting its figures.\n",
            import.source_kind,
            import.source.display()
        );
        text.push_str(&head_yaml);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        if let Some(c) = threshold_comment {
            text.push_str(&c);
        }
        text.push_str("graders:\n");
        let mut live = 0;
        for d in &g.graders {
            let is_judge = d.spec["type"] == "judge";
            if d.spec["program"] == STUB_PROGRAM {
                stub_used = true;
            }
            let _ = writeln!(text, "  # {}", d.comment.replace('\n', " "));
            if is_judge && !judge_ok {
                let _ = writeln!(
                    text,
                    "  # This costbench has no `judge` grader: enable the line below with one that does.\n  # - {}",
                    d.spec
                );
            } else {
                live += 1;
                let _ = writeln!(text, "  - {}", d.spec);
            }
        }
        if live == 0 {
            // A suite needs a grader; without one nothing could be accepted. Say so instead.
            stub_used = true;
            let (spec, _) = stub_grader("missing", "the source gave this test no check", None);
            let why = if g.graders.is_empty() {
                "The source gives these tasks no check costbench can run"
            } else {
                "Every check above is commented out"
            };
            let _ = writeln!(
                text,
                "  # {why}: every outcome is a grader error until one is added.\n  - {spec}"
            );
            live = 1;
        }
        std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
        suites.push(SuiteOut {
            name,
            tasks: g.tasks.len(),
            graders: live,
        });
    }
    if judge_ok {
        // nothing commented
    } else if groups
        .iter()
        .any(|g| g.graders.iter().any(|d| d.spec["type"] == "judge"))
    {
        import.notes.push(Note {
            at: "every suite with an LLM-graded check".into(),
            construct: "judge grader".into(),
            kind: NoteKind::Commented,
            message: "this costbench build has no `judge` grader kind, so each judge is written \
                      as a comment (`# - {\"type\": \"judge\", ...}`) with the rubric; a costbench \
                      with judges validates it once the line is enabled"
                .into(),
        });
    }
    if stub_used {
        let p = out.join(STUB_PROGRAM);
        write_program(&p, STUB_TEXT)?;
    }
    for (name, text) in &import.programs {
        write_program(&out.join("graders").join(name), text)?;
    }
    let providers = if import.providers.is_empty() {
        None
    } else {
        let p = out.join("providers.yaml");
        let body = serde_saphyr::to_string(&json!({"providers": import.providers}))
            .context("cannot write the providers file")?;
        let text = format!(
            "# Written by `costbench import {}` from {}. Keys are read from the environment\n\
             # variables named by api_key_env; check each price before relying on a cost.\n{body}",
            import.source_kind,
            import.source.display()
        );
        std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
        Some(p)
    };
    import.notes = merge_notes(std::mem::take(&mut import.notes));
    let report = out.join("IMPORT_REPORT.md");
    std::fs::write(
        &report,
        report_markdown(&import, &suites, providers.is_some()),
    )
    .with_context(|| format!("cannot write {}", report.display()))?;
    Ok(Written {
        suites,
        providers,
        report,
        notes: import.notes,
    })
}

/// One note per (kind, construct, message), in the order of what matters most, naming where it
/// first occurs and how many other places share it: a CSV of 10,000 rows with a `similar`
/// column is one line of the report, not 10,000.
fn merge_notes(notes: Vec<Note>) -> Vec<Note> {
    let mut out: Vec<(Note, usize)> = Vec::new();
    for n in notes {
        match out
            .iter_mut()
            .find(|(o, _)| o.kind == n.kind && o.construct == n.construct && o.message == n.message)
        {
            Some((_, more)) => *more += 1,
            None => out.push((n, 0)),
        }
    }
    let mut merged: Vec<Note> = out
        .into_iter()
        .map(|(mut n, more)| {
            if more > 0 {
                n.at = format!("{} (and {more} more)", n.at);
            }
            n
        })
        .collect();
    merged.sort_by_key(|n| n.kind);
    merged
}

fn write_program(path: &Path, text: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} executable", path.display()))?;
    }
    Ok(())
}

/// Escapes text for a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('\n', " ")
        .replace('<', "&lt;")
}

fn report_markdown(import: &Import, suites: &[SuiteOut], providers: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Import report\n");
    let _ = writeln!(
        s,
        "Source: {} `{}`.\n",
        import.source_kind,
        import.source.display()
    );
    let _ = writeln!(s, "## Written\n");
    for suite in suites {
        let _ = writeln!(
            s,
            "- `{}.yaml`: {} tasks, {} graders (tasks in `{}.tasks.jsonl`)",
            suite.name, suite.tasks, suite.graders, suite.name
        );
    }
    if providers {
        let _ = writeln!(
            s,
            "- `providers.yaml`: {} providers named by the source",
            import.providers.len()
        );
    }
    let names: Vec<String> = suites.iter().map(|s| format!("{}.yaml", s.name)).collect();
    let _ = writeln!(
        s,
        "\nCheck them with `costbench validate {}{}`.\n",
        names.join(" "),
        if providers {
            " --providers providers.yaml"
        } else {
            ""
        }
    );
    let _ = writeln!(s, "## Not mapped one to one ({})\n", import.notes.len());
    if import.notes.is_empty() {
        let _ = writeln!(
            s,
            "Everything in the source was mapped to a costbench equivalent."
        );
        return s;
    }
    let _ = writeln!(s, "| what happened | where | construct | details |");
    let _ = writeln!(s, "|---|---|---|---|");
    for n in &import.notes {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            n.kind.label(),
            cell(&n.at),
            cell(&n.construct),
            cell(&n.message)
        );
    }
    s
}

/// Prints what was written and every note, one a line (the report's content, for the terminal).
pub fn print_summary(w: &Written, out: &Path) {
    for s in &w.suites {
        println!(
            "wrote {}: {} tasks, {} graders",
            out.join(format!("{}.yaml", s.name)).display(),
            s.tasks,
            s.graders
        );
    }
    if let Some(p) = &w.providers {
        println!("wrote {}", p.display());
    }
    println!("wrote {}", w.report.display());
    if w.notes.is_empty() {
        println!("everything was mapped");
    } else {
        println!("{} construct(s) not mapped one to one:", w.notes.len());
        for n in &w.notes {
            println!(
                "  {} {}: {}: {}",
                n.kind.label(),
                n.at,
                n.construct,
                n.message
            );
        }
    }
}

/// A file named by the source: relative to `base`, which it may name with `file://`.
pub fn resolve(base: &Path, reference: &str) -> PathBuf {
    let r = reference.strip_prefix("file://").unwrap_or(reference);
    let p = Path::new(r);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// A file's extension, lower case (`""` without one).
pub fn extension(file: &Path) -> String {
    file.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// A JSON or YAML file the source names, parsed with the locations of its errors (and, for YAML,
/// of its nodes).
pub fn structured(file: &Path, text: &str) -> Result<Loader, ConfigError> {
    if extension(file) == "json" {
        let root = parse_json(file, text)?;
        let mut l = Loader::from_str(file, "{}")?;
        l.root = root;
        Ok(l)
    } else {
        Loader::from_str(file, text)
    }
}

/// Reads a file the source names, as a located error when it cannot.
pub fn read_named(path: &Path, named_at: &str) -> Result<String, ConfigError> {
    crate::config::read_capped(path, crate::config::MAX_CONFIG_BYTES)
        .map_err(|e| ConfigError::at_file(path, format!("{e} (named at {named_at})")))
}

/// Parses a JSON file the source names, with the line and column of a syntax error.
pub fn parse_json(path: &Path, text: &str) -> Result<Value, ConfigError> {
    serde_json::from_str(text).map_err(|e| ConfigError {
        problems: vec![crate::config::Problem {
            file: path.to_path_buf(),
            line_col: Some((e.line(), e.column())),
            path: DocPath::default(),
            message: format!("invalid JSON: {e}"),
        }],
    })
}

/// Parses a JSONL file: one JSON value a non-blank line, errors with their line.
pub fn parse_jsonl(path: &Path, text: &str) -> Result<Vec<(usize, Value)>, ConfigError> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text.trim_start_matches('\u{feff}').lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(v) => out.push((i + 1, v)),
            Err(e) => problems.push(crate::config::Problem {
                file: path.to_path_buf(),
                line_col: Some((i + 1, e.column())),
                path: DocPath::default(),
                message: format!("invalid JSON: {e}"),
            }),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ConfigError { problems })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(id: &str, value: &str) -> Case {
        Case {
            id: id.into(),
            vars: Map::new(),
            prompt: 0,
            own_prompt: None,
            threshold: None,
            graders: vec![GraderDraft {
                spec: json!({"type": "contains", "value": placeholder("_a1", Inline::Template)}),
                comment: String::new(),
                bindings: vec![("_a1".into(), json!(value), Inline::Template)],
            }],
        }
    }

    fn import_of(cases: Vec<Case>) -> Import {
        Import {
            prompts: vec![NamedPrompt {
                suffix: String::new(),
                origin: String::new(),
                prompt: PromptDraft {
                    system: None,
                    examples: vec![],
                    user: "q".into(),
                },
            }],
            cases,
            ..Import::default()
        }
    }

    #[test]
    fn cases_of_one_shape_share_a_suite_and_keep_their_own_values() {
        let groups = group(&import_of(vec![case("a", "Paris"), case("b", "Rome")]));
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].graders[0].spec["value"], "{{ _a1 }}");
        assert_eq!(groups[0].tasks[1].1["_a1"], "Rome");
    }

    #[test]
    fn a_value_every_task_shares_is_written_into_the_grader() {
        let groups = group(&import_of(vec![case("a", "{{x}}"), case("b", "{{x}}")]));
        assert_eq!(
            groups[0].graders[0].spec["value"],
            "{% raw %}{{x}}{% endraw %}"
        );
        assert!(!groups[0].tasks[0].1.contains_key("_a1"));
    }

    #[test]
    fn the_same_note_in_many_places_is_one_line_that_counts_them() {
        let n = |at: &str, kind| Note {
            at: at.into(),
            construct: "assertion `similar`".into(),
            kind,
            message: "no grader".into(),
        };
        let merged = merge_notes(vec![
            n("t.csv:2", NoteKind::NeedsPorting),
            n("t.csv:3", NoteKind::NeedsPorting),
            n("t.csv:4", NoteKind::NeedsPorting),
            n("c.yaml:1:1", NoteKind::Dropped),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].kind, NoteKind::Dropped);
        assert_eq!(merged[1].at, "t.csv:2 (and 2 more)");
    }

    #[test]
    fn slugs_are_short_and_plain() {
        assert_eq!(slug("Support bot: v2!"), "support-bot-v2");
        assert_eq!(slug("  "), "");
    }
}
