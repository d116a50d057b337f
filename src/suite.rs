//! Suites: the YAML task files, validated into a plan before anything is called.
//!
//! Loading reports every problem at once (unknown keys, wrong types, duplicate task ids,
//! template variables a task lacks, unreadable task files, unknown grader types), each with
//! file, line, column and dotted path, so a suite fails at load time and never at call 412.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::{ConfigError, DocPath, Loader, Problem};
use crate::grade::{CompiledGrader, GraderSpec, Vars, template_variables};
use crate::providers::{Message, Money};

/// A few-shot turn inserted between the system prompt and the task's user prompt.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Example {
    /// The example user turn (a template).
    pub user: String,
    /// The example assistant answer (a template).
    pub assistant: String,
}

/// The prompt templates of a suite.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Prompt {
    /// System message template.
    pub system: Option<String>,
    /// User message template.
    pub user: String,
    /// Few-shot turns.
    #[serde(default)]
    pub examples: Vec<Example>,
}

/// One task: an id and the variables its templates and graders use.
///
/// Variables are kept as compact JSON text, not a parsed map: a large suite's tasks then cost
/// about their size on disk, and the run parses one task's variables only when it renders it.
#[derive(Debug, Clone)]
pub struct Task {
    /// Unique id within the suite.
    pub id: String,
    /// Template variables, a JSON object.
    pub vars_json: Box<str>,
}

impl Task {
    /// The variables as a map.
    pub fn vars(&self) -> Vars {
        serde_json::from_str(&self.vars_json).unwrap_or_default()
    }
}

/// The scalar fields of a suite file; lists are read item by item to report every problem.
#[derive(Deserialize)]
struct SuiteHead {
    suite: String,
    #[serde(default)]
    description: String,
    #[serde(default = "default_workload")]
    workload: String,
    quality_threshold: Option<f64>,
    #[serde(default)]
    rejection_cost_usd: Money,
    #[serde(default = "one")]
    repeats: u32,
    prompt: Prompt,
    #[serde(default)]
    params: serde_json::Map<String, Value>,
    graders: Vec<Value>,
    #[serde(default)]
    tasks: Vec<Value>,
    tasks_file: Option<String>,
}

fn default_workload() -> String {
    "default".into()
}
fn one() -> u32 {
    1
}

#[derive(Deserialize)]
struct TaskLine {
    id: TaskId,
    #[serde(default)]
    vars: Vars,
}

/// Task ids may be written as numbers; they are compared as text.
#[derive(Deserialize)]
#[serde(untagged)]
enum TaskId {
    S(String),
    I(i64),
}

impl TaskId {
    fn text(self) -> String {
        match self {
            TaskId::S(s) => s,
            TaskId::I(i) => i.to_string(),
        }
    }
}

/// A validated suite, ready to run.
pub struct Suite {
    /// Unique suite name.
    pub name: String,
    /// What the suite measures.
    pub description: String,
    /// Workload class; routing groups by it.
    pub workload: String,
    /// Acceptance a provider must reach to qualify for this workload.
    pub quality_threshold: Option<f64>,
    /// Downstream cost of one rejected output.
    pub rejection_cost: Money,
    /// Samples per task per provider.
    pub repeats: u32,
    /// Request parameters passed through to the provider.
    pub params: serde_json::Map<String, Value>,
    /// Grader configs as written.
    pub grader_specs: Vec<GraderSpec>,
    /// Graders compiled once.
    pub graders: Vec<CompiledGrader>,
    /// Tasks in file order.
    pub tasks: Vec<Task>,
    /// Where the suite was read from.
    pub path: PathBuf,
    /// SHA-256 over everything that changes what is asked (prompt, params, tasks, repeats).
    pub fingerprint: String,
    env: Environment<'static>,
    examples: usize,
    has_system: bool,
}

impl std::fmt::Debug for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suite").field("name", &self.name).finish()
    }
}

impl Suite {
    /// Renders the chat messages for one task.
    pub fn messages(&self, task: &Task) -> Result<Vec<Message>, String> {
        let ctx = minijinja::Value::from(minijinja::value::Serde(task.vars()));
        let render = |name: &str| -> Result<String, String> {
            self.env
                .get_template(name)
                .and_then(|t| t.render(&ctx))
                .map_err(|e| format!("task `{}`: {name}: {e}", task.id))
        };
        let mut out = Vec::with_capacity(2 + 2 * self.examples);
        let msg = |role: &str, content: String| Message {
            role: role.into(),
            content,
        };
        if self.has_system {
            out.push(msg("system", render("prompt.system")?));
        }
        for i in 0..self.examples {
            out.push(msg("user", render(&format!("prompt.examples[{i}].user"))?));
            out.push(msg(
                "assistant",
                render(&format!("prompt.examples[{i}].assistant"))?,
            ));
        }
        out.push(msg("user", render("prompt.user")?));
        Ok(out)
    }
}

/// Loads and validates a suite file, reporting every problem at once.
pub fn load_suite(path: &Path) -> Result<Suite, ConfigError> {
    let mut l = Loader::open(path)?;
    let root = l.root.clone();
    let top = DocPath::default();
    let Some(head) = l.field::<SuiteHead>(&top, &root) else {
        return l.finish(None);
    };

    if head.suite.trim().is_empty() {
        l.problem(&top.key("suite"), "must not be empty");
    }
    if head.repeats == 0 {
        l.problem(&top.key("repeats"), "must be at least 1");
    }
    if let Some(q) = head.quality_threshold
        && !(0.0..=1.0).contains(&q)
    {
        l.problem(&top.key("quality_threshold"), "must be between 0 and 1");
    }

    // Templates: compile each, and collect the variables every task must define.
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let mut templates: Vec<(String, String)> = Vec::new();
    if let Some(s) = &head.prompt.system {
        templates.push(("prompt.system".into(), s.clone()));
    }
    for (i, ex) in head.prompt.examples.iter().enumerate() {
        templates.push((format!("prompt.examples[{i}].user"), ex.user.clone()));
        templates.push((
            format!("prompt.examples[{i}].assistant"),
            ex.assistant.clone(),
        ));
    }
    templates.push(("prompt.user".into(), head.prompt.user.clone()));
    let mut needed: Vec<(String, String)> = Vec::new(); // (variable, used by)
    for (name, src) in &templates {
        let doc = name_to_path(name);
        match env.add_template_owned(name.clone(), src.clone()) {
            Ok(()) => match template_variables(src) {
                Ok(vars) => needed.extend(vars.into_iter().map(|v| (v, name.clone()))),
                Err(e) => l.problem(&doc, e),
            },
            Err(e) => l.problem(&doc, format!("invalid template: {e}")),
        }
    }

    let mut grader_specs = Vec::new();
    let mut graders = Vec::new();
    for (i, g) in head.graders.iter().enumerate() {
        let p = top.key("graders").index(i);
        let Some(spec) = l.field::<GraderSpec>(&p, g) else {
            continue;
        };
        match spec.compile() {
            Ok(c) => graders.push(c),
            Err(e) => l.problem(&p, e.to_string()),
        }
        for src in spec.templates() {
            match template_variables(src) {
                Ok(vars) => needed.extend(vars.into_iter().map(|v| (v, format!("graders[{i}]")))),
                Err(e) => l.problem(&p, e),
            }
        }
        grader_specs.push(spec);
    }
    if head.graders.is_empty() {
        l.problem(&top.key("graders"), "no graders: nothing could be accepted");
    }

    // Tasks: inline, then from the tasks file, each checked as it is read (a large tasks file
    // is never held in memory twice), located where it was written.
    let needed: BTreeSet<(String, String)> = needed.into_iter().collect();
    let mut check = TaskCheck {
        needed: &needed,
        seen: HashSet::new(),
        tasks: Vec::new(),
        hash: Sha256::new(),
    };
    check.hash.update(canonical_json(&root).as_bytes());
    for (i, t) in head.tasks.iter().enumerate() {
        let p = top.key("tasks").index(i);
        if let Some(line) = l.field::<TaskLine>(&p, t) {
            check.add(&mut l, line.id.text(), line.vars, TaskOrigin::Inline(&p));
        }
    }
    if let Some(f) = &head.tasks_file {
        let file = path.parent().unwrap_or(Path::new(".")).join(f);
        if let Err(e) = read_tasks_file(&file, &mut l, &mut check) {
            l.problem(
                &top.key("tasks_file"),
                format!("cannot read tasks file {}: {e}", file.display()),
            );
        }
    }
    if check.tasks.is_empty() && head.tasks_file.is_none() {
        l.problem(&top.key("tasks"), "no tasks: give `tasks` or `tasks_file`");
    }
    let fingerprint = hex(&check.hash.finalize());
    let mut tasks = check.tasks;
    tasks.shrink_to_fit();

    let suite = Suite {
        name: head.suite,
        description: head.description,
        workload: head.workload,
        quality_threshold: head.quality_threshold,
        rejection_cost: head.rejection_cost_usd,
        repeats: head.repeats,
        params: head.params,
        grader_specs,
        graders,
        tasks,
        path: path.to_path_buf(),
        fingerprint,
        examples: head.prompt.examples.len(),
        has_system: head.prompt.system.is_some(),
        env,
    };
    l.finish(Some(suite))
}

/// Where a task was written, for messages.
enum TaskOrigin<'a> {
    Inline(&'a DocPath),
    File(&'a Path, usize),
}

impl TaskOrigin<'_> {
    fn report(&self, l: &mut Loader, key: &str, message: String) {
        match self {
            TaskOrigin::Inline(p) => l.problem(&p.key(key), message),
            TaskOrigin::File(file, line) => l.problems.push(Problem {
                file: file.to_path_buf(),
                line_col: Some((*line, 1)),
                path: DocPath::default(),
                message,
            }),
        }
    }
}

/// Checks tasks one at a time: unique ids, every needed variable, and the suite fingerprint.
struct TaskCheck<'a> {
    needed: &'a BTreeSet<(String, String)>,
    seen: HashSet<String>,
    tasks: Vec<Task>,
    hash: Sha256,
}

impl TaskCheck<'_> {
    fn add(&mut self, l: &mut Loader, id: String, vars: Vars, origin: TaskOrigin<'_>) {
        if !self.seen.insert(id.clone()) {
            origin.report(l, "id", format!("duplicate task id `{id}`"));
        }
        for (var, user) in self.needed {
            if !vars.contains_key(var) {
                origin.report(
                    l,
                    "vars",
                    format!("task `{id}` lacks variable `{var}` used by {user}"),
                );
            }
        }
        let vars = Value::Object(vars);
        self.hash.update(id.as_bytes());
        self.hash.update([0]);
        self.hash.update(canonical_json(&vars).as_bytes());
        self.tasks.push(Task {
            id,
            vars_json: vars.to_string().into_boxed_str(),
        });
    }
}

/// Reads a JSONL (`{"id":..,"vars":{..}}` a line) or CSV (`id` column, others are vars) file,
/// streaming; malformed lines are problems located at their line.
fn read_tasks_file(file: &Path, l: &mut Loader, check: &mut TaskCheck<'_>) -> std::io::Result<()> {
    use std::io::BufRead;
    let at = |line: usize, col: usize, message: String| Problem {
        file: file.to_path_buf(),
        line_col: Some((line, col)),
        path: DocPath::default(),
        message,
    };
    let is_csv = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let reader = std::io::BufReader::new(std::fs::File::open(file)?);
    if is_csv {
        let mut rdr = csv::ReaderBuilder::new().from_reader(reader);
        let headers = match rdr.headers() {
            Ok(h) => h.clone(),
            Err(e) => {
                l.problems
                    .push(at(1, 1, format!("invalid CSV header: {e}")));
                return Ok(());
            }
        };
        let Some(id_col) = headers.iter().position(|h| h == "id") else {
            l.problems
                .push(at(1, 1, "CSV header has no `id` column".into()));
            return Ok(());
        };
        for rec in rdr.records() {
            match rec {
                Ok(r) => {
                    let line = r.position().map_or(0, |p| p.line() as usize);
                    let mut vars = Vars::new();
                    for (i, (h, v)) in headers.iter().zip(r.iter()).enumerate() {
                        if i != id_col {
                            vars.insert(h.to_string(), Value::String(v.to_string()));
                        }
                    }
                    let id = r.get(id_col).unwrap_or("").to_string();
                    check.add(l, id, vars, TaskOrigin::File(file, line));
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line() as usize);
                    l.problems
                        .push(at(line, 1, format!("invalid CSV record: {e}")));
                }
            }
        }
    } else {
        for (i, raw) in reader.lines().enumerate() {
            let raw = raw?;
            if raw.trim().is_empty() {
                continue;
            }
            let mut unknown = Vec::new();
            let parsed: Result<TaskLine, _> =
                serde_ignored::deserialize(&mut serde_json::Deserializer::from_str(&raw), |p| {
                    unknown.push(p.to_string())
                });
            for u in unknown {
                l.problems.push(at(i + 1, 1, format!("unknown key `{u}`")));
            }
            match parsed {
                Ok(t) => check.add(l, t.id.text(), t.vars, TaskOrigin::File(file, i + 1)),
                Err(e) => l
                    .problems
                    .push(at(i + 1, e.column(), format!("invalid task: {e}"))),
            }
        }
    }
    Ok(())
}

/// Turns a template name like `prompt.examples[0].user` into its document path.
fn name_to_path(name: &str) -> DocPath {
    let mut p = DocPath::default();
    for part in name.split('.') {
        match part.split_once('[') {
            Some((k, rest)) => {
                p = p.key(k);
                if let Ok(i) = rest.trim_end_matches(']').parse() {
                    p = p.index(i);
                }
            }
            None => p = p.key(part),
        }
    }
    p
}

/// JSON with object keys sorted at every level, so equal data hashes equally.
pub fn canonical_json(v: &Value) -> String {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), sort(&m[k]))).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    sort(v).to_string()
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
