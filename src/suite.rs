//! Suites: the YAML task files, validated into a plan before anything is called.
//!
//! Loading reports every problem at once (unknown keys, wrong types, duplicate task ids,
//! template variables a task lacks, unreadable task files, unknown grader types), each with
//! file, line, column and dotted path, so a suite fails at load time and never at call 412.

use std::cell::Cell;
use std::collections::{BTreeSet, HashSet};
use std::hash::{Hash, Hasher};
use std::io::{BufRead, Read};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use minijinja::Environment;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::{ConfigError, DocPath, Loader, Problem};
use crate::grade::template::{describe, environment};
use crate::grade::{
    Accept, CompiledGrader, Composition, GraderSpec, Vars, fingerprint, take_runtime, take_weight,
    template_variables,
};
use crate::providers::{Message, Money};

/// Most samples per task per provider (`repeats`).
pub const MAX_REPEATS: u32 = 10_000;

/// Most outcomes (tasks × repeats) one suite may ask of each provider; beyond this a run
/// cannot finish in any reasonable time and its plan alone would exhaust memory.
pub const MAX_OUTCOMES: u64 = 100_000_000;

/// Longest line of a JSONL tasks file, or record of a CSV one. Reading stops at the first
/// longer one, so a file such as `/dev/zero` fails fast instead of growing memory.
pub const MAX_TASK_LINE_BYTES: u64 = 16 * 1024 * 1024;

/// Request body fields costbench or the providers file sets; a suite's `params` must not
/// override them, or the request would go to another model, conversation or answer format than
/// the one priced and graded. Each comes with the reason given to the user.
const RESERVED_PARAMS: &[(&str, &str)] = &[
    ("model", "is set by the providers file"),
    ("messages", "is built from the suite's prompt"),
    ("contents", "is built from the suite's prompt"),
    ("system", "is built from the suite's prompt.system"),
    (
        "systemInstruction",
        "is built from the suite's prompt.system",
    ),
    (
        "stream",
        "is chosen by costbench, which reads whole answers",
    ),
    (
        "stream_options",
        "is chosen by costbench, which reads whole answers",
    ),
    (
        "n",
        "would ask for several answers per call while one is graded; use `repeats`",
    ),
    (
        "candidateCount",
        "would ask for several answers per call while one is graded; use `repeats`",
    ),
];

/// A few-shot turn inserted between the system prompt and the task's user prompt.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(expecting = "a mapping with keys user and assistant")]
pub struct Example {
    /// The example user turn (a template).
    pub user: String,
    /// The example assistant answer (a template).
    pub assistant: String,
}

/// The prompt templates of a suite.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(expecting = "a mapping with keys user, system and examples")]
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
#[serde(
    expecting = "a mapping with keys suite, prompt, graders, tasks or tasks_file, and \
                     optionally description, workload, quality_threshold, margin, \
                     rejection_cost_usd, repeats, params and accept"
)]
struct SuiteHead {
    suite: String,
    #[serde(default)]
    description: String,
    #[serde(default = "default_workload")]
    workload: String,
    quality_threshold: Option<f64>,
    margin: Option<f64>,
    #[serde(default)]
    rejection_cost_usd: Money,
    #[serde(default = "one")]
    repeats: u32,
    prompt: Prompt,
    #[serde(default)]
    params: serde_json::Map<String, Value>,
    graders: Vec<Value>,
    #[serde(default)]
    accept: Option<String>,
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
#[serde(expecting = "a task: a mapping with keys id and vars")]
struct TaskLine {
    id: TaskId,
    #[serde(default)]
    vars: Vars,
}

/// Task ids may be written as numbers; they are compared as text.
#[derive(Deserialize)]
#[serde(untagged, expecting = "a task id: a string or an integer")]
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
    /// Non-inferiority margin for `compare`, fixed before the run (acceptance-rate units).
    pub margin: Option<f64>,
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
    /// How many tasks it has ([`Suite::for_each_task`] reads them).
    pub task_count: u64,
    /// Positions in `graders` of the checks marked `runtime: true` (they can run at serving
    /// time, so a cascade may escalate on them).
    pub runtime_graders: Vec<usize>,
    /// How the graders' verdicts make an accepted outcome (`accept:` and each `weight`).
    pub composition: Composition,
    /// Which graders these are: a fingerprint of the set, and its JSON
    /// (`{"accept", "graders": [{"kind", "fingerprint", "weight"}]}`), stored with every grade.
    pub grader_set: (String, String),
    /// Each judge grader's provider id, with where it was written, to check against the
    /// providers file once that is read.
    pub judges: Vec<(String, Problem)>,
    /// Where the suite was read from.
    pub path: PathBuf,
    /// SHA-256 over everything that changes what is asked (prompt, params, tasks, repeats).
    pub fingerprint: String,
    /// Inline tasks, in order; the YAML budget bounds how many there can be.
    inline: Vec<Task>,
    /// The tasks file, read again when its tasks are needed instead of held in memory: on a
    /// large suite they were the largest thing a run kept.
    tasks_file: Option<PathBuf>,
    /// The fingerprint's hash state after the document and the inline tasks, from which a
    /// new read of the tasks file proves it still holds the tasks that were validated.
    file_hash: Sha256,
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
    /// What grading needs of this suite.
    pub fn grading(&self) -> crate::grade::stored::SuiteGrading<'_> {
        crate::grade::stored::SuiteGrading {
            graders: &self.graders,
            composition: &self.composition,
            grader_set: &self.grader_set,
        }
    }

    /// Renders the chat messages for one task; an error names the task and the template.
    pub fn messages(&self, task: &Task) -> Result<Vec<Message>, String> {
        render_messages(
            &self.env,
            self.has_system,
            self.examples,
            &task.id,
            &task.vars(),
        )
    }

    /// Calls `f` with each task and its position, in file order: the inline tasks, then the
    /// tasks file, read again. A tasks file that no longer holds the tasks validated at load
    /// is a [`TasksChanged`] error, found at the latest after its last task was handed to `f`.
    pub fn for_each_task<E: From<TasksChanged>>(
        &self,
        mut f: impl FnMut(usize, &Task) -> Result<(), E>,
    ) -> Result<(), E> {
        for (i, t) in self.inline.iter().enumerate() {
            f(i, t)?;
        }
        let Some(file) = &self.tasks_file else {
            return Ok(());
        };
        let changed = |why: String| TasksChanged {
            file: file.clone(),
            why,
        };
        let mut hash = self.file_hash.clone();
        let mut idx = self.inline.len();
        let mut result = Ok(());
        let read = read_tasks_file(file, &mut |item| match item {
            TaskRead::Problem(p) => {
                result = Err(changed(p.to_string()).into());
                false
            }
            TaskRead::Task { id, vars, .. } => {
                let task = fingerprint_task(&mut hash, id, vars);
                let r = f(idx, &task);
                idx += 1;
                let ok = r.is_ok();
                result = r;
                ok
            }
        });
        result?;
        read.map_err(|e| changed(format!("cannot read it: {e}")))?;
        if idx as u64 != self.task_count || hex::encode(hash.finalize()) != self.fingerprint {
            return Err(changed("it holds other tasks now".into()).into());
        }
        Ok(())
    }
}

/// A tasks file that no longer holds the tasks validated when its suite was loaded.
#[derive(Debug, thiserror::Error)]
#[error(
    "tasks file {} changed after its suite was loaded ({why}); run the command again",
    .file.display()
)]
pub struct TasksChanged {
    /// The tasks file.
    pub file: PathBuf,
    /// What differs.
    pub why: String,
}

/// Adds one task to a suite fingerprint and returns it in its stored form.
fn fingerprint_task(hash: &mut Sha256, id: String, vars: Vars) -> Task {
    let vars = Value::Object(vars);
    hash.update(id.as_bytes());
    hash.update([0]);
    hash.update(canonical_json(&vars).as_bytes());
    Task {
        id,
        vars_json: vars.to_string().into_boxed_str(),
    }
}

/// Renders a suite's prompt templates (compiled into `env`) with one task's variables.
fn render_messages(
    env: &Environment<'static>,
    has_system: bool,
    examples: usize,
    id: &str,
    vars: &Vars,
) -> Result<Vec<Message>, String> {
    let ctx = minijinja::Value::from(minijinja::value::Serde(vars));
    let render = |name: &str| -> Result<String, String> {
        env.get_template(name)
            .and_then(|t| t.render(&ctx))
            .map_err(|e| format!("task `{id}`: {name}: {}", describe(&e)))
    };
    let mut out = Vec::with_capacity(2 + 2 * examples);
    let msg = |role: &str, content: String| Message {
        role: role.into(),
        content,
    };
    if has_system {
        out.push(msg("system", render("prompt.system")?));
    }
    for i in 0..examples {
        out.push(msg("user", render(&format!("prompt.examples[{i}].user"))?));
        out.push(msg(
            "assistant",
            render(&format!("prompt.examples[{i}].assistant"))?,
        ));
    }
    out.push(msg("user", render("prompt.user")?));
    Ok(out)
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
    } else if head.repeats > MAX_REPEATS {
        l.problem(
            &top.key("repeats"),
            format!("must be at most {MAX_REPEATS}, got {}", head.repeats),
        );
    }
    if let Some(q) = head.quality_threshold
        && !(0.0..=1.0).contains(&q)
    {
        l.problem(&top.key("quality_threshold"), "must be between 0 and 1");
    }
    if let Some(m) = head.margin
        && !(m > 0.0 && m < 1.0)
    {
        l.problem(
            &top.key("margin"),
            format!("must be above 0 and below 1 (got {m}); 0.02 means two points of acceptance"),
        );
    }
    for (key, why) in RESERVED_PARAMS {
        if head.params.contains_key(*key) {
            l.problem(
                &top.key("params").key(key),
                format!("`{key}` {why}; remove it from params"),
            );
        }
    }

    // Templates: compile each, and collect the variables every task must define.
    let mut env = environment();
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
    let mut prompts_ok = true;
    for (name, src) in &templates {
        let doc = name_to_path(name);
        match env.add_template_owned(name.clone(), src.clone()) {
            Ok(()) => match template_variables(src) {
                Ok(vars) => needed.extend(vars.into_iter().map(|v| (v, name.clone()))),
                Err(e) => {
                    prompts_ok = false;
                    l.problem(&doc, e)
                }
            },
            Err(e) => {
                prompts_ok = false;
                l.problem(&doc, format!("invalid template: {}", describe(&e)))
            }
        }
    }

    let mut grader_specs = Vec::new();
    let mut graders = Vec::new();
    let mut runtime_graders = Vec::new();
    let accept = match head.accept.as_deref().map(Accept::parse) {
        None => Accept::All,
        Some(Ok(a)) => a,
        Some(Err(e)) => {
            l.problem(&top.key("accept"), e);
            Accept::All
        }
    };
    let mut weights = Vec::new();
    let mut judges = Vec::new();
    for (i, g) in head.graders.iter().enumerate() {
        let p = top.key("graders").index(i);
        let mut g = g.clone();
        let runtime = take_runtime(&mut g).unwrap_or_else(|e| {
            l.problem(&p.key("runtime"), e);
            false
        });
        let weight = take_weight(&mut g).unwrap_or_else(|e| {
            l.problem(&p.key("weight"), e);
            None
        });
        if weight.is_some() && !matches!(accept, Accept::Score(_)) {
            l.problem(
                &p.key("weight"),
                format!(
                    "a weight counts only with `accept: score >= X` (this suite accepts by \
                     `{accept}`); remove it or set the suite's accept rule"
                ),
            );
        }
        let Some(spec) = l.field::<GraderSpec>(&p, &g) else {
            continue;
        };
        weights.push(weight.unwrap_or(1.0));
        if let GraderSpec::Judge(j) = &spec {
            judges.push((
                j.provider.clone(),
                l.problem_at(&p.key("provider"), String::new()),
            ));
        }
        if runtime {
            // A check that reads the task's reference data (an `equals` against the expected
            // label) cannot run at serving time, where no reference exists.
            let mut uses: BTreeSet<String> = spec
                .templates()
                .iter()
                .filter_map(|t| template_variables(t).ok())
                .flatten()
                .collect();
            // Graders that read task variables by name rather than through a template: the
            // code grader's tests and a command grader's expected answer are reference data.
            match &spec {
                GraderSpec::Code(c) => {
                    uses.insert(c.test_var.clone().unwrap_or_else(|| "test".into()));
                }
                GraderSpec::Command(c) => uses.extend(c.expected_var.clone()),
                _ => {}
            }
            if uses.is_empty() {
                runtime_graders.push(i);
            } else {
                l.problem(
                    &p.key("runtime"),
                    format!(
                        "a {} grader that reads the task's variables ({}) cannot run at serving time, \
                         where there is no reference answer; mark only checks without task \
                         variables (JSON validity, a fixed regex) `runtime: true`",
                        spec.kind(),
                        uses.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
        match spec.compile_in(path.parent().unwrap_or(Path::new(""))) {
            Ok(c) => graders.push((i, c)),
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
    if matches!(accept, Accept::Score(_))
        && weights.iter().all(|w| *w == 0.0)
        && !weights.is_empty()
    {
        l.problem(
            &top.key("graders"),
            "every weight is 0: no score can be computed",
        );
    }
    let composition = Composition { accept, weights };
    let grader_set = grader_set(&grader_specs, &composition);

    // Tasks: inline, then from the tasks file, each checked as it is read (a large tasks file
    // is never held in memory twice), located where it was written.
    let needed: BTreeSet<(String, String)> = needed.into_iter().collect();
    let mut check = TaskCheck {
        needed: &needed,
        graders: &graders,
        prompts: prompts_ok.then_some((
            &env,
            head.prompt.system.is_some(),
            head.prompt.examples.len(),
        )),
        render_problems: 0,
        seen: HashSet::new(),
        suspects: Vec::new(),
        count: 0,
        inline: Vec::new(),
        hash: Sha256::new(),
    };
    check.hash.update(canonical_json(&root).as_bytes());
    for (i, t) in head.tasks.iter().enumerate() {
        let p = top.key("tasks").index(i);
        if let Some(line) = l.field::<TaskLine>(&p, t) {
            check.add(&mut l, line.id.text(), line.vars, TaskOrigin::Inline(&p));
        }
    }
    let file_hash = check.hash.clone();
    let mut tasks_file = None;
    if let Some(f) = &head.tasks_file {
        let file_key = top.key("tasks_file");
        match tasks_file_path(path, f) {
            Err(e) => l.problem(&file_key, e),
            Ok(file) => {
                let problems_before = l.problems.len();
                let read = read_tasks_file(&file, &mut |item| match item {
                    TaskRead::Problem(p) => {
                        l.problems.push(p);
                        true
                    }
                    TaskRead::Task { id, vars, line } => {
                        check.add(&mut l, id, vars, TaskOrigin::File(&file, line));
                        let more = !check.full();
                        if !more {
                            l.problems.push(at(&file, line, 1, too_many_tasks()));
                        }
                        more
                    }
                });
                match read {
                    Err(e) => l.problem(
                        &file_key,
                        format!("cannot read tasks file {}: {e}", file.display()),
                    ),
                    // An empty file would validate as "0 tasks" and a run would do nothing.
                    Ok(()) if check.count == 0 && l.problems.len() == problems_before => l.problem(
                        &file_key,
                        format!("tasks file {} has no tasks", file.display()),
                    ),
                    Ok(()) => {}
                }
                tasks_file = Some(file);
            }
        }
    }
    check.confirm_duplicates(&mut l, tasks_file.as_deref());
    if check.count == 0 && head.tasks_file.is_none() {
        l.problem(&top.key("tasks"), "no tasks: give `tasks` or `tasks_file`");
    }
    let outcomes = check.count * u64::from(head.repeats);
    if outcomes > MAX_OUTCOMES && head.repeats <= MAX_REPEATS {
        l.problem(
            &top.key("repeats"),
            format!(
                "{} tasks × {} repeats = {outcomes} outcomes per provider, more than the {MAX_OUTCOMES} \
                 one suite may ask for; lower repeats or split the tasks into several suites",
                check.count,
                head.repeats
            ),
        );
    }
    let fingerprint = hex::encode(check.hash.finalize());
    let task_count = check.count;
    let mut inline = check.inline;
    inline.shrink_to_fit();

    let suite = Suite {
        name: head.suite,
        description: head.description,
        workload: head.workload,
        quality_threshold: head.quality_threshold,
        margin: head.margin,
        rejection_cost: head.rejection_cost_usd,
        repeats: head.repeats,
        params: head.params,
        grader_specs,
        graders: graders.into_iter().map(|(_, g)| g).collect(),
        task_count,
        runtime_graders,
        composition,
        grader_set,
        judges,
        path: path.to_path_buf(),
        fingerprint,
        inline,
        tasks_file,
        file_hash,
        examples: head.prompt.examples.len(),
        has_system: head.prompt.system.is_some(),
        env,
    };
    l.finish(Some(suite))
}

/// The fingerprint and JSON of a suite's grader set (see [`Suite::grader_set`]).
fn grader_set(specs: &[GraderSpec], c: &Composition) -> (String, String) {
    let graders: Vec<Value> = specs
        .iter()
        .zip(&c.weights)
        .map(|(s, w)| serde_json::json!({"kind": s.kind(), "fingerprint": fingerprint(s), "weight": w}))
        .collect();
    let v = serde_json::json!({"accept": c.accept.to_string(), "graders": graders});
    let text = canonical_json(&v);
    let fp = hex::encode(Sha256::digest(text.as_bytes()));
    (fp[..16].to_string(), text)
}

/// Resolves `tasks_file` against the suite's folder. A relative path must stay inside that
/// folder: `../x.jsonl` usually means a suite copied away from its data, and reading whatever
/// sits there instead is worse than an error. An absolute path says the user means it.
fn tasks_file_path(suite: &Path, f: &str) -> Result<PathBuf, String> {
    let rel = Path::new(f);
    if f.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if rel.is_absolute() {
        return Ok(rel.to_path_buf());
    }
    // Resolved lexically: `data/../x` needs no `data` folder, and the result must stay inside.
    let mut inside = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(part) => inside.push(part),
            Component::CurDir => {}
            Component::ParentDir if inside.pop() => {}
            _ => {
                return Err(format!(
                    "`{f}` points outside the suite's folder; write an absolute path if you \
                     mean a file outside the suite's folder"
                ));
            }
        }
    }
    Ok(suite.parent().unwrap_or(Path::new(".")).join(inside))
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

/// Prompt renders that fail at load before the rest are skipped: a template that fails for
/// every task (say, out of fuel) must not cost a render per task nor bury other problems.
const MAX_RENDER_PROBLEMS: usize = 10;

/// Checks tasks one at a time: unique ids, every needed variable, that the prompts and the
/// graders' task-dependent parts (a regex or number built from a variable) work for this
/// task, and the suite fingerprint. Only inline tasks are kept.
struct TaskCheck<'a> {
    needed: &'a BTreeSet<(String, String)>,
    /// Compiled graders with their index in `graders:`.
    graders: &'a [(usize, CompiledGrader)],
    /// The prompt environment, whether it has a system prompt, and the number of examples;
    /// `None` when a prompt template did not compile (already reported).
    prompts: Option<(&'a Environment<'static>, bool, usize)>,
    render_problems: usize,
    /// A 64-bit hash of every id so far: 8 bytes a task whatever the ids' length. A repeated
    /// hash makes a suspect, which [`TaskCheck::confirm_duplicates`] checks against the ids.
    seen: HashSet<u64>,
    suspects: Vec<Suspect>,
    /// Tasks so far.
    count: u64,
    inline: Vec<Task>,
    hash: Sha256,
}

/// A task whose id hash was seen before: a duplicate id, unless two ids share a hash.
struct Suspect {
    /// Its position among the suite's tasks.
    ordinal: u64,
    /// Where its problem goes in the loader's list, so problems keep their order.
    at: usize,
    problem: Problem,
    id: String,
}

fn id_hash(id: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

impl TaskCheck<'_> {
    fn add(&mut self, l: &mut Loader, id: String, vars: Vars, origin: TaskOrigin<'_>) {
        if !self.seen.insert(id_hash(&id)) {
            origin.report(l, "id", format!("duplicate task id `{id}`"));
            if let Some(problem) = l.problems.pop() {
                self.suspects.push(Suspect {
                    ordinal: self.count,
                    at: l.problems.len(),
                    problem,
                    id: id.clone(),
                });
            }
        }
        let mut complete = true;
        for (var, user) in self.needed {
            if !vars.contains_key(var) {
                complete = false;
                origin.report(
                    l,
                    "vars",
                    format!("task `{id}` lacks variable `{var}` used by {user}"),
                );
            }
        }
        // A missing variable is reported once above, not again as each failing render.
        if complete {
            for (i, g) in self.graders {
                if let Err(e) = g.check_task(&vars) {
                    origin.report(l, "vars", format!("task `{id}`: graders[{i}]: {e}"));
                }
            }
            if let Some((env, system, examples)) = self.prompts
                && self.render_problems < MAX_RENDER_PROBLEMS
                && let Err(e) = render_messages(env, system, examples, &id, &vars)
            {
                self.render_problems += 1;
                origin.report(l, "vars", e);
            }
        }
        let task = fingerprint_task(&mut self.hash, id, vars);
        if let TaskOrigin::Inline(_) = origin {
            self.inline.push(task);
        }
        self.count += 1;
    }

    /// True once the suite holds more tasks than any run may ask for; reading stops there.
    fn full(&self) -> bool {
        self.count >= MAX_OUTCOMES
    }

    /// Reports each suspect whose id an earlier task really has, where it was found. Runs
    /// only when some id hash repeated (almost always a duplicate id): it reads the tasks'
    /// ids once more, the tasks file's from the file.
    fn confirm_duplicates(&mut self, l: &mut Loader, file: Option<&Path>) {
        if self.suspects.is_empty() {
            return;
        }
        let ids: HashSet<&str> = self.suspects.iter().map(|s| s.id.as_str()).collect();
        let mut seen: HashSet<String> = HashSet::new();
        let mut duplicates: HashSet<u64> = HashSet::new();
        let mut ordinal = 0u64;
        let count = self.count;
        let mut visit = |id: &str| {
            if ids.contains(id) && !seen.insert(id.to_string()) {
                duplicates.insert(ordinal);
            }
            ordinal += 1;
            ordinal < count
        };
        for t in &self.inline {
            visit(&t.id);
        }
        if let Some(file) = file {
            // Read without error before; if it fails now, the run's own read reports it.
            let _ = read_tasks_file(file, &mut |item| match item {
                TaskRead::Task { id, .. } => visit(&id),
                TaskRead::Problem(_) => true,
            });
        }
        // Last first, so each insertion leaves the earlier positions valid.
        for s in std::mem::take(&mut self.suspects).into_iter().rev() {
            if duplicates.contains(&s.ordinal) {
                l.problems.insert(s.at, s.problem);
            }
        }
    }
}

/// Why reading a tasks file stopped early: a line or record over [`MAX_TASK_LINE_BYTES`].
#[derive(Debug, thiserror::Error)]
#[error("longer than {} MiB", MAX_TASK_LINE_BYTES / (1024 * 1024))]
struct TooLong;

/// A reader that fails with [`TooLong`] once more than [`MAX_TASK_LINE_BYTES`] were read past
/// `mark`, the byte offset where the current CSV record started; the csv crate has no record
/// size limit of its own.
struct RecordCap<R> {
    inner: R,
    read: u64,
    mark: Rc<Cell<u64>>,
}

impl<R: Read> Read for RecordCap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.read.saturating_sub(self.mark.get()) > MAX_TASK_LINE_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                TooLong,
            ));
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// One item read from a tasks file.
enum TaskRead {
    /// A task and its line.
    Task { id: String, vars: Vars, line: usize },
    /// A malformed line or record, located.
    Problem(Problem),
}

/// What a tasks file reader hands each item to; returning false stops reading.
type TaskSink<'s> = dyn FnMut(TaskRead) -> bool + 's;

/// Reads a JSONL (`{"id":..,"vars":{..}}` a line) or CSV (`id` column, others are vars) file,
/// streaming; malformed lines are problems located at their line.
fn read_tasks_file(file: &Path, sink: &mut TaskSink<'_>) -> std::io::Result<()> {
    let is_csv = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let f = std::fs::File::open(file)?;
    if is_csv {
        read_csv(file, f, sink)
    } else {
        read_jsonl(file, std::io::BufReader::new(f), sink)
    }
}

/// A problem located in a tasks file.
fn at(file: &Path, line: usize, col: usize, message: String) -> Problem {
    Problem {
        file: file.to_path_buf(),
        line_col: Some((line, col)),
        path: DocPath::default(),
        message,
    }
}

fn read_csv(file: &Path, f: std::fs::File, sink: &mut TaskSink<'_>) -> std::io::Result<()> {
    let too_long = |e: &csv::Error| match e.kind() {
        csv::ErrorKind::Io(io) => io.get_ref().is_some_and(|i| i.is::<TooLong>()),
        _ => false,
    };
    let mark = Rc::new(Cell::new(0));
    let mut rdr = csv::ReaderBuilder::new().from_reader(RecordCap {
        inner: f,
        read: 0,
        mark: mark.clone(),
    });
    let headers = match rdr.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            sink(TaskRead::Problem(at(
                file,
                1,
                1,
                format!("invalid CSV header: {e}"),
            )));
            return Ok(());
        }
    };
    let Some(id_col) = headers.iter().position(|h| h == "id") else {
        sink(TaskRead::Problem(at(
            file,
            1,
            1,
            "CSV header has no `id` column".into(),
        )));
        return Ok(());
    };
    let mut rec = csv::StringRecord::new();
    loop {
        let start = rdr.position().clone();
        mark.set(start.byte());
        let line = start.line() as usize;
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {
                let mut vars = Vars::new();
                for (i, (h, v)) in headers.iter().zip(rec.iter()).enumerate() {
                    if i != id_col {
                        vars.insert(h.to_string(), Value::String(v.to_string()));
                    }
                }
                let id = rec.get(id_col).unwrap_or("").to_string();
                let line = rec.position().map_or(line, |p| p.line() as usize);
                if !sink(TaskRead::Task { id, vars, line }) {
                    break;
                }
            }
            Err(e) if too_long(&e) => {
                sink(TaskRead::Problem(at(
                    file,
                    line,
                    1,
                    format!("record is {TooLong}; reading stops here"),
                )));
                break;
            }
            Err(e) => {
                if let csv::ErrorKind::Io(_) = e.kind() {
                    return Err(std::io::Error::other(e.to_string()));
                }
                let line = e.position().map_or(line, |p| p.line() as usize);
                let problem = at(file, line, 1, format!("invalid CSV record: {e}"));
                if !sink(TaskRead::Problem(problem)) {
                    break;
                }
            }
        }
    }
    Ok(())
}

fn too_many_tasks() -> String {
    format!("more than {MAX_OUTCOMES} tasks; reading stops here")
}

fn read_jsonl(
    file: &Path,
    mut reader: impl BufRead,
    sink: &mut TaskSink<'_>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut line = 0;
    loop {
        buf.clear();
        // `take` bounds what one line may buffer: `lines()` would read `/dev/zero` forever.
        let n = (&mut reader)
            .take(MAX_TASK_LINE_BYTES + 1)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        line += 1;
        if buf.len() as u64 > MAX_TASK_LINE_BYTES && buf.last() != Some(&b'\n') {
            sink(TaskRead::Problem(at(
                file,
                line,
                1,
                format!("line is {TooLong}; reading stops here"),
            )));
            break;
        }
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t,
            Err(e) => {
                let col = e.valid_up_to() + 1;
                let problem = at(file, line, col, "line is not UTF-8 text".into());
                if !sink(TaskRead::Problem(problem)) {
                    break;
                }
                continue;
            }
        };
        // Editors on Windows start UTF-8 files with a byte order mark; it is not data.
        let text = if line == 1 {
            text.strip_prefix('\u{feff}').unwrap_or(text)
        } else {
            text
        };
        if text.trim().is_empty() {
            continue;
        }
        let more = match parse_task_line(text) {
            Ok((t, unknown)) => {
                let mut more = true;
                for u in unknown {
                    more &= sink(TaskRead::Problem(at(
                        file,
                        line,
                        1,
                        format!("unknown key `{u}`"),
                    )));
                }
                more && sink(TaskRead::Task {
                    id: t.id.text(),
                    vars: t.vars,
                    line,
                })
            }
            Err((col, message)) => sink(TaskRead::Problem(at(file, line, col, message))),
        };
        if !more {
            break;
        }
    }
    Ok(())
}

/// Parses one JSONL line: exactly one JSON object, nothing before or after it. Returns the
/// task and its unknown keys, or the 1-based column and message of the problem.
fn parse_task_line(text: &str) -> Result<(TaskLine, Vec<String>), (usize, String)> {
    let lead = text.len() - text.trim_start().len();
    if !text[lead..].starts_with('{') {
        return Err((
            lead + 1,
            "invalid task: expected one JSON object a line, like {\"id\": \"t1\", \"vars\": {...}}"
                .into(),
        ));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let mut unknown = Vec::new();
    let task: TaskLine = serde_ignored::deserialize(&mut de, |p| unknown.push(p.to_string()))
        .map_err(|e| {
            (
                e.column().max(1),
                format!("invalid task: {}", json_error_text(&e)),
            )
        })?;
    de.end().map_err(|e| {
        (
            e.column().max(1),
            "invalid task: more text after the JSON object; write exactly one object a line"
                .to_string(),
        )
    })?;
    Ok((task, unknown))
}

/// serde_json's message without its own " at line 1 column 47" suffix: the problem already
/// carries the file's line and column.
fn json_error_text(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const SUITE: &str = "suite: s\nprompt:\n  user: \"task {{ q }}\"\ngraders:\n  - {type: contains, value: \"a\"}\ntasks:\n  - {id: t1, vars: {q: one}}\ntasks_file: tasks.jsonl\n";

    fn suite_with(tasks: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("suite.yaml");
        std::fs::write(&path, SUITE).unwrap();
        std::fs::write(dir.path().join("tasks.jsonl"), tasks).unwrap();
        (dir, path)
    }

    fn problems(path: &Path) -> Vec<String> {
        let e = load_suite(path).expect_err("the suite is invalid");
        let dir = path.parent().unwrap().display().to_string();
        e.problems
            .iter()
            .map(|p| p.to_string().replace(&dir, "DIR"))
            .collect()
    }

    // Duplicate ids are found from 8-byte hashes rather than a set of every id, and still
    // reported where the duplicate was written, in file order among the other problems.
    #[test]
    fn duplicate_ids_are_reported_at_their_line_in_file_order() {
        let (_dir, path) = suite_with(concat!(
            r#"{"id": "t2", "vars": {"q": "two"}}"#,
            "\n",
            r#"{"id": "t1", "vars": {"q": "again"}}"#,
            "\n",
            r#"{"id": "t3", "vars": {}}"#,
            "\n",
            r#"{"id": "t2", "vars": {"q": "two"}}"#,
            "\n",
        ));
        assert_eq!(
            problems(&path),
            [
                "DIR/tasks.jsonl:2:1: duplicate task id `t1`",
                "DIR/tasks.jsonl:3:1: task `t3` lacks variable `q` used by prompt.user",
                "DIR/tasks.jsonl:4:1: duplicate task id `t2`",
            ]
        );
    }

    // Two different ids may share a 64-bit hash; only an id an earlier task really has is a
    // duplicate.
    #[test]
    fn a_shared_id_hash_alone_is_not_a_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("suite.yaml");
        let needed = BTreeSet::new();
        let task = |id: &str| Task {
            id: id.into(),
            vars_json: "{}".into(),
        };
        let suspect = |ordinal: u64, id: &str| Suspect {
            ordinal,
            at: 0,
            problem: at(&file, 1, 1, format!("duplicate task id `{id}`")),
            id: id.into(),
        };
        let mut l = Loader::from_str(&file, "suite: s\n").unwrap();
        let mut check = TaskCheck {
            needed: &needed,
            graders: &[],
            prompts: None,
            render_problems: 0,
            seen: HashSet::new(),
            // As if `b` had hashed like `a`, and the second `a` like both.
            suspects: vec![suspect(1, "b"), suspect(2, "a")],
            count: 3,
            inline: vec![task("a"), task("b"), task("a")],
            hash: Sha256::new(),
        };
        check.confirm_duplicates(&mut l, None);
        let found: Vec<String> = l.problems.iter().map(|p| p.message.clone()).collect();
        assert_eq!(found, ["duplicate task id `a`"]);
    }

    #[test]
    fn tasks_are_read_again_from_the_file_and_a_changed_file_is_refused() {
        let (dir, path) = suite_with(concat!(
            r#"{"id": "t2", "vars": {"q": "two", "n": 2}}"#,
            "\n",
            r#"{"id": "t3", "vars": {"q": "three"}}"#,
            "\n",
        ));
        let suite = load_suite(&path).unwrap();
        assert_eq!(suite.task_count, 3);
        let mut seen = Vec::new();
        suite
            .for_each_task(|i, t| {
                seen.push((i, t.id.clone(), t.vars_json.to_string()));
                Ok::<(), TasksChanged>(())
            })
            .unwrap();
        assert_eq!(
            seen,
            [
                (0, "t1".into(), r#"{"q":"one"}"#.into()),
                (1, "t2".into(), r#"{"q":"two","n":2}"#.into()),
                (2, "t3".into(), r#"{"q":"three"}"#.into()),
            ]
        );

        std::fs::write(
            dir.path().join("tasks.jsonl"),
            concat!(
                r#"{"id": "t2", "vars": {"q": "two", "n": 3}}"#,
                "\n",
                r#"{"id": "t3", "vars": {"q": "three"}}"#,
                "\n",
            ),
        )
        .unwrap();
        let e = suite
            .for_each_task(|_, _| Ok::<(), TasksChanged>(()))
            .unwrap_err();
        assert!(
            e.to_string().contains("changed after its suite was loaded"),
            "{e}"
        );
        std::fs::write(dir.path().join("tasks.jsonl"), "{\"id\": \n").unwrap();
        let e = suite
            .for_each_task(|_, _| Ok::<(), TasksChanged>(()))
            .unwrap_err();
        assert!(e.to_string().contains("tasks.jsonl:1:"), "{e}");
    }
}
