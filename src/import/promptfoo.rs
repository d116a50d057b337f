//! promptfoo configs (`promptfooconfig.yaml`) → cases for [`super::write`].
//!
//! Follows promptfoo's own reading of a config: prompts inline or from `file://` (text files
//! split at lines holding only `---`, chat prompts as a JSON/YAML list of messages or one a line
//! in JSONL, CSV files of `prompt,label`), tests inline or from CSV (with the `__expected`,
//! `__expectedN`, `__description`, `__metadata:*`, `__threshold` and `__metric` columns), JSON,
//! JSONL and YAML files, `defaultTest` inline or from a file, string-list variables expanded into
//! one test per combination, per-test `prompts:` filters, and assertion values rendered with the
//! test's variables (promptfoo renders them with Nunjucks; costbench's minijinja reads the same
//! syntax for everything but custom filters). Assertions map to graders one by one; what has no
//! grader becomes a stub or a note.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value, json};

use super::{
    GraderDraft, Import, Inline, NamedPrompt, NoteKind, PromptDraft, extension, located,
    parse_json, parse_jsonl, placeholder, read_named, resolve, scalar_text, slug, structured,
    stub_grader,
};
use crate::config::{ConfigError, DocPath, Loader, Problem};

/// The grading model promptfoo uses when a config names none.
const DEFAULT_JUDGE: &str = "openai:gpt-4.1";

/// promptfoo's assertion types, for reading `type:value` strings in CSV `__expected` columns.
const ASSERTION_TYPES: &[&str] = &[
    "answer-relevance",
    "assert-set",
    "bleu",
    "classifier",
    "contains-all",
    "contains-any",
    "contains-html",
    "contains-json",
    "contains-sql",
    "contains-xml",
    "contains",
    "context-faithfulness",
    "context-recall",
    "context-relevance",
    "conversation-relevance",
    "cost",
    "equals",
    "factuality",
    "finish-reason",
    "g-eval",
    "gleu",
    "guardrails",
    "icontains-all",
    "icontains-any",
    "icontains",
    "is-html",
    "is-json",
    "is-refusal",
    "is-sql",
    "is-valid-function-call",
    "is-valid-openai-function-call",
    "is-valid-openai-tools-call",
    "is-xml",
    "javascript",
    "latency",
    "levenshtein",
    "llm-rubric",
    "max-score",
    "meteor",
    "model-graded-closedqa",
    "model-graded-factuality",
    "moderation",
    "perplexity-score",
    "perplexity",
    "pi",
    "python",
    "regex",
    "rouge-n",
    "ruby",
    "select-best",
    "similar",
    "starts-with",
    "tool-call-f1",
    "webhook",
    "word-count",
];

/// Assertion types whose CSV value is a list written with commas.
const LIST_TYPES: &[&str] = &[
    "contains-all",
    "contains-any",
    "icontains-all",
    "icontains-any",
];

/// One test as read from any file, before `defaultTest` is merged in.
#[derive(Debug, Clone, Default)]
struct TestDef {
    at: String,
    description: Option<String>,
    vars: Map<String, Value>,
    /// Assertions with their locations.
    asserts: Vec<(Value, String)>,
    threshold: Option<f64>,
    metadata: Option<Value>,
    prompts: Option<Vec<String>>,
    options: Map<String, Value>,
}

/// A prompt with the label promptfoo gives it (for `prompts:` filters).
struct PromptDef {
    label: String,
    explicit_label: Option<String>,
    origin: String,
    prompt: PromptDraft,
}

struct Reader {
    imp: Import,
    base: PathBuf,
    /// Hard errors in files other than the config (their own locations).
    problems: Vec<Problem>,
    render_env: Environment<'static>,
    var_prefix: String,
}

/// Reads a promptfoo config and everything it names.
pub fn import(config: &Path) -> Result<Import, ConfigError> {
    let mut l = Loader::open(config)?;
    let root = l.root.clone();
    let Some(top) = root.as_object() else {
        return Err(ConfigError::at_file(
            config,
            "a promptfoo config is a mapping with prompts, providers and tests",
        ));
    };
    let base = config.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut render_env = Environment::new();
    render_env.set_undefined_behavior(UndefinedBehavior::Lenient);
    render_env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    let mut r = Reader {
        imp: Import {
            source_kind: "promptfoo",
            source: config.to_path_buf(),
            ..Import::default()
        },
        base,
        problems: Vec::new(),
        render_env,
        var_prefix: "_a".into(),
    };
    let description = top
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let dir_name = config
        .canonicalize()
        .ok()
        .and_then(|p| p.parent()?.file_name()?.to_str().map(str::to_string))
        .unwrap_or_default();
    r.imp.name = [slug(&description), slug(&dir_name), "promptfoo".into()]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_default();
    r.imp.description = description;
    let top_path = DocPath::default();
    const KNOWN: &[&str] = &[
        "description",
        "prompts",
        "providers",
        "targets",
        "tests",
        "defaultTest",
    ];
    // Keys that change nothing a suite could say (where promptfoo writes its own output).
    const HARMLESS: &[&str] = &[
        "$schema",
        "outputPath",
        "sharing",
        "writeLatestResults",
        "tags",
    ];
    for k in top.keys() {
        if !KNOWN.contains(&k.as_str()) && !HARMLESS.contains(&k.as_str()) {
            let at = located(&mut l, &top_path.key(k));
            let what = match k.as_str() {
                "scenarios" => {
                    "scenarios (variable sets crossed with tests) are not imported; write each combination as a test"
                }
                "env" => {
                    "environment settings are not imported; costbench reads keys from the variables named in providers.yaml"
                }
                "nunjucksFilters" => {
                    "custom Nunjucks filters are JavaScript; templates using them fail validation until rewritten"
                }
                "assertionTemplates" => {
                    "assertion templates are imported only where a test does not `$ref` them"
                }
                "evaluateOptions" => {
                    "evaluation options (concurrency, repeats, delays) are not imported; see the suite's `repeats` and providers' `max_concurrency`"
                }
                _ => "not a construct costbench has",
            };
            r.imp
                .note(at, format!("top-level `{k}`"), NoteKind::Dropped, what);
        }
    }

    let prompts = r.read_prompts(&mut l, top.get("prompts"))?;
    if let Some(p) = top.get("providers").or_else(|| top.get("targets")) {
        let key = if top.contains_key("providers") {
            "providers"
        } else {
            "targets"
        };
        r.read_providers(&mut l, p, &top_path.key(key));
    }
    let default = match top.get("defaultTest") {
        Some(v) => r.read_default(&mut l, v)?,
        None => TestDef::default(),
    };
    let mut tests = Vec::new();
    if let Some(t) = top.get("tests") {
        r.read_tests_value(&mut l, t, &top_path.key("tests"), &mut tests)?;
    }
    if !l.problems.is_empty() || !r.problems.is_empty() {
        let mut problems = l.problems;
        problems.extend(r.problems);
        return Err(ConfigError { problems });
    }
    if tests.is_empty() {
        return Err(ConfigError::at_file(
            config,
            "the config has no tests: costbench needs at least one task to run",
        ));
    }
    if tests
        .iter()
        .any(|t| t.vars.keys().any(|k| k.starts_with("_a")))
    {
        r.var_prefix = "_import_a".into();
    }

    r.imp.prompts = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| NamedPrompt {
            suffix: p
                .explicit_label
                .as_deref()
                .map(slug)
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| format!("p{}", i + 1)),
            origin: p.origin.clone(),
            prompt: p.prompt.clone(),
        })
        .collect();
    for (ti, test) in tests.iter().enumerate() {
        r.add_test(ti, test, &default, &prompts);
    }
    if r.imp.cases.is_empty() {
        return Err(ConfigError::at_file(
            config,
            "no test could be imported (see the notes above); nothing to write",
        ));
    }
    Ok(r.imp)
}

/// The message list of a chat prompt as a costbench prompt, or why it cannot be one.
pub fn chat_prompt(messages: &[Value]) -> Result<PromptDraft, String> {
    let mut system = None;
    let mut turns: Vec<(String, String)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or_default();
        let Some(content) = m["content"].as_str() else {
            return Err(format!(
                "message {} has no text content (images, parts and tool calls are not imported)",
                i + 1
            ));
        };
        turns.push((role.to_string(), content.to_string()));
    }
    let mut rest = &turns[..];
    if let Some((first, tail)) = rest.split_first()
        && (first.0 == "system" || first.0 == "developer")
    {
        system = Some(first.1.clone());
        rest = tail;
    }
    let Some((last, pairs)) = rest.split_last() else {
        return Err("the chat has no user message".into());
    };
    if last.0 != "user" {
        return Err(format!(
            "the chat ends with a `{}` message; costbench asks with a final user message",
            last.0
        ));
    }
    if pairs.len() % 2 != 0 {
        return Err(
            "its messages do not alternate user, assistant, ..., user after the system message"
                .into(),
        );
    }
    let mut examples = Vec::new();
    for pair in pairs.chunks(2) {
        if pair[0].0 != "user" || pair[1].0 != "assistant" {
            return Err(format!(
                "its messages do not alternate user and assistant (found `{}` then `{}`)",
                pair[0].0, pair[1].0
            ));
        }
        examples.push((pair[0].1.clone(), pair[1].1.clone()));
    }
    Ok(PromptDraft {
        system,
        examples,
        user: last.1.clone(),
    })
}

/// promptfoo's `isAllowedPrompt`: an exact label, a `group` prefix of `group:...`, or `group:*`.
fn allowed(label: &str, explicit: Option<&str>, filters: &[String]) -> bool {
    let labels = [Some(label), explicit];
    filters.iter().any(|f| {
        labels.iter().flatten().any(|l| {
            *l == f
                || l.starts_with(&format!("{f}:"))
                || f.strip_suffix('*').is_some_and(|p| l.starts_with(p))
        })
    })
}

/// Nunjucks' `dump` filter is minijinja's `tojson`; other templates read the same.
fn translate_template(s: &str) -> String {
    static DUMP: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\|\s*dump\b").expect("valid regex"));
    DUMP.replace_all(s, "| tojson").into_owned()
}

impl Reader {
    fn note(
        &mut self,
        at: impl Into<String>,
        what: impl Into<String>,
        kind: NoteKind,
        msg: impl Into<String>,
    ) {
        self.imp.note(at, what, kind, msg);
    }

    // ----------------------------------------------------------------------------------
    // Prompts
    // ----------------------------------------------------------------------------------

    fn read_prompts(
        &mut self,
        l: &mut Loader,
        v: Option<&Value>,
    ) -> Result<Vec<PromptDef>, ConfigError> {
        let path = DocPath::default().key("prompts");
        let mut out = Vec::new();
        match v {
            None => {
                // promptfoo's default prompt passes the `prompt` variable through.
                out.push(PromptDef {
                    label: "{{prompt}}".into(),
                    explicit_label: None,
                    origin: "the default prompt `{{prompt}}`".into(),
                    prompt: PromptDraft {
                        system: None,
                        examples: vec![],
                        user: "{{prompt}}".into(),
                    },
                });
            }
            Some(Value::String(s)) => self.prompt_entry(l, &path, s, None, &mut out)?,
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let p = path.index(i);
                    match item {
                        Value::String(s) => self.prompt_entry(l, &p, s, None, &mut out)?,
                        Value::Object(m) => {
                            let label = m.get("label").and_then(Value::as_str).map(str::to_string);
                            let raw = m
                                .get("raw")
                                .or_else(|| m.get("id"))
                                .and_then(Value::as_str)
                                .map(str::to_string);
                            for k in m.keys() {
                                if !["label", "raw", "id"].contains(&k.as_str()) {
                                    let at = located(l, &p.key(k));
                                    self.note(at, format!("prompt `{k}`"), NoteKind::Dropped, "per-prompt settings are not imported; set `params` in the suite");
                                }
                            }
                            match raw {
                                Some(raw) => self.prompt_entry(l, &p, &raw, label, &mut out)?,
                                None => l.problem(&p, "a prompt needs `raw` or `id`"),
                            }
                        }
                        other => l.problem(
                            &p,
                            format!("a prompt is a string or a mapping, not {other}"),
                        ),
                    }
                }
            }
            // The legacy form: `prompts: {file://a.txt: label_a}`.
            Some(Value::Object(m)) => {
                for (raw, label) in m {
                    let p = path.key(raw);
                    self.prompt_entry(l, &p, raw, label.as_str().map(str::to_string), &mut out)?;
                }
            }
            Some(other) => l.problem(
                &path,
                format!("prompts must be a string, a list or a mapping, not {other}"),
            ),
        }
        Ok(out)
    }

    fn prompt_entry(
        &mut self,
        l: &mut Loader,
        path: &DocPath,
        raw: &str,
        label: Option<String>,
        out: &mut Vec<PromptDef>,
    ) -> Result<(), ConfigError> {
        let at = located(l, path);
        let Some(reference) = raw.strip_prefix("file://") else {
            let prompt = match serde_json::from_str::<Value>(raw) {
                Ok(Value::Array(msgs)) => match chat_prompt(&msgs) {
                    Ok(p) => p,
                    Err(why) => {
                        self.note(
                            at,
                            "chat prompt",
                            NoteKind::Dropped,
                            format!("not imported: {why}"),
                        );
                        return Ok(());
                    }
                },
                _ => PromptDraft {
                    system: None,
                    examples: vec![],
                    user: raw.to_string(),
                },
            };
            return self.push_prompt(
                &at,
                label.clone().unwrap_or_else(|| raw.to_string()),
                label,
                "an inline prompt".into(),
                prompt,
                out,
            );
        };
        if reference.contains('*')
            || [".py:", ".js:", ".ts:"]
                .iter()
                .any(|f| reference.contains(f))
        {
            self.note(
                at,
                format!("prompt `{raw}`"),
                NoteKind::Dropped,
                "globs and functions of prompt files are not imported; name each file",
            );
            return Ok(());
        }
        let file = resolve(&self.base, reference);
        let ext = extension(&file);
        if ["js", "cjs", "mjs", "ts", "py", "sh", "rb"].contains(&ext.as_str()) {
            self.note(at, format!("prompt `{raw}`"), NoteKind::Dropped, "prompt functions are programs; costbench prompts are templates: write the prompt they build as a template");
            return Ok(());
        }
        let text = match read_named(&file, &at) {
            Ok(t) => t,
            Err(e) => {
                self.problems.extend(e.problems);
                return Ok(());
            }
        };
        let shown = reference.to_string();
        match ext.as_str() {
            "json" => {
                let v = parse_json(&file, &text)?;
                self.chat_or_note(&at, &shown, &file, v, label, out)?;
            }
            "yaml" | "yml" => {
                let v = Loader::from_str(&file, &text)?.root;
                self.chat_or_note(&at, &shown, &file, v, label, out)?;
            }
            "jsonl" => {
                for (line, v) in parse_jsonl(&file, &text)? {
                    let raw_line = v.to_string();
                    let at_line = format!("{}:{line}", file.display());
                    let Value::Array(msgs) = v else {
                        self.note(
                            at_line,
                            "prompt line",
                            NoteKind::Dropped,
                            "a JSONL prompt line must be a list of messages",
                        );
                        continue;
                    };
                    match chat_prompt(&msgs) {
                        Ok(p) => {
                            let lab = match &label {
                                Some(lb) => format!("{lb}: {raw_line}"),
                                None => format!("{shown}: {raw_line}"),
                            };
                            self.push_prompt(
                                &at_line,
                                lab,
                                label.clone(),
                                format!("{shown} line {line}"),
                                p,
                                out,
                            )?;
                        }
                        Err(why) => self.note(
                            at_line,
                            "chat prompt",
                            NoteKind::Dropped,
                            format!("not imported: {why}"),
                        ),
                    }
                }
            }
            "csv" => {
                let mut rdr = csv::ReaderBuilder::new().from_reader(text.as_bytes());
                let headers = rdr
                    .headers()
                    .map_err(|e| ConfigError::at_file(&file, format!("invalid CSV: {e}")))?
                    .clone();
                let pi = headers
                    .iter()
                    .position(|h| h.trim() == "prompt")
                    .unwrap_or(0);
                let li = headers.iter().position(|h| h.trim() == "label");
                for (row, rec) in rdr.records().enumerate() {
                    let rec = rec.map_err(|e| {
                        ConfigError::at_file(
                            &file,
                            format!("invalid CSV at record {}: {e}", row + 1),
                        )
                    })?;
                    let text = rec.get(pi).unwrap_or_default().to_string();
                    let lab = li
                        .and_then(|i| rec.get(i))
                        .map(str::to_string)
                        .filter(|s| !s.is_empty());
                    let explicit = lab
                        .clone()
                        .or_else(|| label.clone().map(|lb| format!("{lb}: {text}")));
                    let p = PromptDraft {
                        system: None,
                        examples: vec![],
                        user: text.clone(),
                    };
                    self.push_prompt(
                        &format!("{}: row {}", file.display(), row + 1),
                        explicit.clone().unwrap_or(text),
                        explicit,
                        format!("{shown} row {}", row + 1),
                        p,
                        out,
                    )?;
                }
            }
            _ => {
                // Text: several prompts separated by lines holding only `---`.
                let mut parts = Vec::new();
                let mut buf: Vec<&str> = Vec::new();
                for line in text.lines() {
                    if line.trim() == "---" {
                        parts.push(buf.join("\n").trim().to_string());
                        buf.clear();
                    } else {
                        buf.push(line);
                    }
                }
                parts.push(buf.join("\n").trim().to_string());
                let parts: Vec<String> = parts.into_iter().filter(|p| !p.is_empty()).collect();
                let several = parts.len() > 1;
                for (i, part) in parts.into_iter().enumerate() {
                    let lab = match &label {
                        Some(lb) => format!("{lb}: {shown}: {part}"),
                        None => format!("{shown}: {part}"),
                    };
                    let explicit = match (&label, several) {
                        (Some(lb), true) => Some(format!("{lb}-{}", i + 1)),
                        (Some(lb), false) => Some(lb.clone()),
                        (None, _) => None,
                    };
                    let origin = if several {
                        format!("{shown}, prompt {} of its `---`-separated prompts", i + 1)
                    } else {
                        shown.clone()
                    };
                    let p = PromptDraft {
                        system: None,
                        examples: vec![],
                        user: part,
                    };
                    self.push_prompt(&at, lab, explicit, origin, p, out)?;
                }
            }
        }
        Ok(())
    }

    fn chat_or_note(
        &mut self,
        at: &str,
        shown: &str,
        file: &Path,
        v: Value,
        label: Option<String>,
        out: &mut Vec<PromptDef>,
    ) -> Result<(), ConfigError> {
        match v {
            Value::Array(msgs) => match chat_prompt(&msgs) {
                Ok(p) => {
                    let lab = label
                        .clone()
                        .unwrap_or_else(|| format!("{shown}: {}", Value::Array(msgs.clone())));
                    self.push_prompt(at, lab, label, shown.to_string(), p, out)
                }
                Err(why) => {
                    self.note(
                        at,
                        format!("chat prompt {}", file.display()),
                        NoteKind::Dropped,
                        format!("not imported: {why}"),
                    );
                    Ok(())
                }
            },
            _ => {
                self.note(
                    at,
                    format!("prompt file {}", file.display()),
                    NoteKind::Dropped,
                    "a JSON or YAML prompt file must hold a list of chat messages",
                );
                Ok(())
            }
        }
    }

    fn push_prompt(
        &mut self,
        at: &str,
        label: String,
        explicit_label: Option<String>,
        origin: String,
        mut prompt: PromptDraft,
        out: &mut Vec<PromptDef>,
    ) -> Result<(), ConfigError> {
        let mut fields: Vec<&mut String> = vec![&mut prompt.user];
        if let Some(s) = prompt.system.as_mut() {
            fields.push(s);
        }
        for (u, a) in prompt.examples.iter_mut() {
            fields.push(u);
            fields.push(a);
        }
        let mut bad = None;
        for f in fields {
            let t = translate_template(f);
            if t != *f {
                self.imp.note(
                    at,
                    "Nunjucks filter `dump`",
                    NoteKind::Approximated,
                    "written as minijinja's `tojson` (JSON of the value)",
                );
            }
            *f = t;
            if let Err(e) = super::check_template(f) {
                bad = Some(e);
            }
        }
        if let Some(e) = bad {
            self.note(at, "prompt template", NoteKind::Dropped, format!("costbench's template language cannot read it ({e}); rewrite it in minijinja syntax"));
            return Ok(());
        }
        out.push(PromptDef {
            label,
            explicit_label,
            origin,
            prompt,
        });
        Ok(())
    }

    // ----------------------------------------------------------------------------------
    // Providers
    // ----------------------------------------------------------------------------------

    fn read_providers(&mut self, l: &mut Loader, v: &Value, path: &DocPath) {
        let items: Vec<(DocPath, Value)> = match v {
            Value::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, x)| (path.index(i), x.clone()))
                .collect(),
            other => vec![(path.clone(), other.clone())],
        };
        for (p, item) in items {
            let at = located(l, &p);
            let (id, label, config) = match &item {
                Value::String(s) => (s.clone(), None, Map::new()),
                Value::Object(m) => (
                    m.get("id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    m.get("label").and_then(Value::as_str).map(str::to_string),
                    m.get("config")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default(),
                ),
                _ => (String::new(), None, Map::new()),
            };
            if let Value::Object(m) = &item {
                for k in m.keys() {
                    if !["id", "label", "config"].contains(&k.as_str()) {
                        self.note(at.clone(), format!("provider `{k}`"), NoteKind::Dropped, "costbench runs every suite on every provider (use `--only`); per-provider prompts, transforms and delays are not imported");
                    }
                }
            }
            match provider_entry(&id, label.as_deref(), &config) {
                Ok((entry, notes)) => {
                    for n in notes {
                        self.note(
                            at.clone(),
                            format!("provider `{id}`"),
                            NoteKind::Approximated,
                            n,
                        );
                    }
                    self.imp.add_provider(entry);
                }
                Err(why) => self.note(at, format!("provider `{id}`"), NoteKind::Dropped, why),
            }
        }
    }

    // ----------------------------------------------------------------------------------
    // Tests
    // ----------------------------------------------------------------------------------

    fn read_default(&mut self, l: &mut Loader, v: &Value) -> Result<TestDef, ConfigError> {
        let path = DocPath::default().key("defaultTest");
        match v {
            Value::String(s) => {
                let at = located(l, &path);
                let file = resolve(&self.base, s);
                let text = read_named(&file, &at)?;
                let mut fl = structured(&file, &text)?;
                let root = fl.root.clone();
                let t = self.test_from_yaml(&mut fl, &DocPath::default(), &root)?;
                if !fl.problems.is_empty() {
                    return Err(ConfigError {
                        problems: fl.problems,
                    });
                }
                Ok(t)
            }
            Value::Object(_) => self.test_from_yaml(l, &path, v),
            other => {
                l.problem(
                    &path,
                    format!("defaultTest must be a mapping or a file:// reference, not {other}"),
                );
                Ok(TestDef::default())
            }
        }
    }

    fn read_tests_value(
        &mut self,
        l: &mut Loader,
        v: &Value,
        path: &DocPath,
        out: &mut Vec<TestDef>,
    ) -> Result<(), ConfigError> {
        match v {
            Value::String(s) => {
                let at = located(l, path);
                self.read_tests_file(s, &at, out)
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = path.index(i);
                    match item {
                        Value::String(s) => {
                            let at = located(l, &p);
                            self.read_tests_file(s, &at, out)?;
                        }
                        Value::Object(m) if m.contains_key("path") => {
                            let at = located(l, &p);
                            self.note(at, "test generator", NoteKind::Dropped, "tests generated by a program are not imported; export them to CSV, JSON or YAML first");
                        }
                        Value::Object(_) => out.push(self.test_from_yaml(l, &p, item)?),
                        other => l.problem(
                            &p,
                            format!("a test is a mapping or a file reference, not {other}"),
                        ),
                    }
                }
                Ok(())
            }
            other => {
                l.problem(
                    path,
                    format!("tests must be a list or a file reference, not {other}"),
                );
                Ok(())
            }
        }
    }

    fn read_tests_file(
        &mut self,
        reference: &str,
        at: &str,
        out: &mut Vec<TestDef>,
    ) -> Result<(), ConfigError> {
        let r = reference.strip_prefix("file://").unwrap_or(reference);
        if r.contains('*') || r.contains("://") {
            self.note(at, format!("tests `{reference}`"), NoteKind::Dropped, "globs and remote datasets (huggingface://, Google Sheets) are not imported; download the file and name it");
            return Ok(());
        }
        let file = resolve(&self.base, r);
        let ext = extension(&file);
        if !["csv", "json", "jsonl", "yaml", "yml"].contains(&ext.as_str()) {
            self.note(at, format!("tests `{reference}`"), NoteKind::Dropped, "only CSV, JSON, JSONL and YAML test files are imported (programs and spreadsheets are not)");
            return Ok(());
        }
        let text = read_named(&file, at)?;
        match ext.as_str() {
            "csv" => self.read_csv(&file, &text, out),
            "jsonl" => {
                for (line, v) in parse_jsonl(&file, &text)? {
                    let loc = format!("{}:{line}", file.display());
                    out.push(self.test_from_value(&v, &loc, &mut |p: &DocPath| {
                        if p.0.is_empty() {
                            loc.clone()
                        } else {
                            format!("{loc}: {p}")
                        }
                    })?);
                }
                Ok(())
            }
            _ => {
                let mut fl = structured(&file, &text)?;
                let root = fl.root.clone();
                let base = self.base.clone();
                // Files a test file names are relative to that file.
                self.base = file.parent().unwrap_or(Path::new("")).to_path_buf();
                let res = match &root {
                    Value::Array(items) => {
                        let mut r = Ok(());
                        for (i, item) in items.iter().enumerate() {
                            match self.test_from_yaml(&mut fl, &DocPath::default().index(i), item) {
                                Ok(t) => out.push(t),
                                Err(e) => {
                                    r = Err(e);
                                    break;
                                }
                            }
                        }
                        r
                    }
                    Value::Object(_) => self
                        .test_from_yaml(&mut fl, &DocPath::default(), &root)
                        .map(|t| out.push(t)),
                    _ => Err(ConfigError::at_file(
                        &file,
                        "a tests file holds a list of tests",
                    )),
                };
                self.base = base;
                res?;
                if !fl.problems.is_empty() {
                    return Err(ConfigError {
                        problems: fl.problems,
                    });
                }
                Ok(())
            }
        }
    }

    fn test_from_yaml(
        &mut self,
        l: &mut Loader,
        path: &DocPath,
        v: &Value,
    ) -> Result<TestDef, ConfigError> {
        let mut loc = |p: &DocPath| {
            let mut full = path.clone();
            full.0.extend(p.0.iter().cloned());
            located(l, &full)
        };
        self.test_from_value(v, &loc(&DocPath::default()), &mut loc)
    }

    /// Reads one test mapping; `loc` gives the location text of a path inside it.
    fn test_from_value(
        &mut self,
        v: &Value,
        at: &str,
        loc: &mut dyn FnMut(&DocPath) -> String,
    ) -> Result<TestDef, ConfigError> {
        let here = DocPath::default();
        let Some(m) = v.as_object() else {
            return Err(ConfigError::at_file(
                Path::new(at),
                format!("a test is a mapping, not {v}"),
            ));
        };
        let mut t = TestDef {
            at: at.to_string(),
            ..TestDef::default()
        };
        for (k, val) in m {
            match k.as_str() {
                "description" => t.description = scalar_text(val),
                "vars" => match val {
                    Value::Object(vars) => t.vars = vars.clone(),
                    _ => self.note(
                        loc(&here.key("vars")),
                        "test `vars` file",
                        NoteKind::Dropped,
                        "variables read from other files are not imported; write them in the test",
                    ),
                },
                "assert" => {
                    if let Value::Array(items) = val {
                        for (i, a) in items.iter().enumerate() {
                            t.asserts
                                .push((a.clone(), loc(&here.key("assert").index(i))));
                        }
                    }
                }
                "threshold" => t.threshold = val.as_f64(),
                "metadata" => t.metadata = Some(val.clone()),
                "prompts" => {
                    t.prompts = Some(match val {
                        Value::Array(a) => a.iter().filter_map(scalar_text).collect(),
                        other => scalar_text(other).into_iter().collect(),
                    })
                }
                "options" => t.options = val.as_object().cloned().unwrap_or_default(),
                other => {
                    let why = match other {
                        "provider" | "providers" => {
                            "costbench runs every suite on every provider; use `--only`"
                        }
                        "providerOutput" => {
                            "a fixed output is not a task; costbench asks the providers"
                        }
                        "assertScoringFunction" => {
                            "custom scoring functions are programs; costbench accepts when every grader passes"
                        }
                        _ => "not a construct costbench has",
                    };
                    self.note(
                        loc(&here.key(other)),
                        format!("test `{other}`"),
                        NoteKind::Dropped,
                        why,
                    );
                }
            }
        }
        Ok(t)
    }

    fn read_csv(
        &mut self,
        file: &Path,
        text: &str,
        out: &mut Vec<TestDef>,
    ) -> Result<(), ConfigError> {
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(false)
            .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
        let headers: Vec<String> = rdr
            .headers()
            .map_err(|e| ConfigError::at_file(file, format!("invalid CSV: {e}")))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let mut noted = BTreeSet::new();
        for (row, rec) in rdr.records().enumerate() {
            let rec = rec.map_err(|e| {
                let line = e.position().map(|p| p.line() as usize);
                ConfigError {
                    problems: vec![Problem {
                        file: file.to_path_buf(),
                        line_col: line.map(|l| (l, 1)),
                        path: DocPath::default(),
                        message: format!("invalid CSV: {e}"),
                    }],
                }
            })?;
            let line = rec.position().map(|p| p.line()).unwrap_or(row as u64 + 2);
            let at = format!("{}:{line}", file.display());
            let mut t = TestDef {
                at: at.clone(),
                ..TestDef::default()
            };
            let mut metric: Option<String> = None;
            let mut metadata = Map::new();
            for (h, value) in headers.iter().zip(rec.iter()) {
                if h.starts_with("__expected") {
                    if !value.trim().is_empty() {
                        t.asserts
                            .push((assertion_from_string(value.trim()), format!("{at}: {h}")));
                    }
                } else if h == "__description" {
                    t.description = Some(value.to_string());
                } else if h == "__threshold" {
                    t.threshold = value.trim().parse().ok();
                } else if h == "__metric" {
                    metric = Some(value.to_string());
                } else if let Some(key) = h.strip_prefix("__metadata:") {
                    if value.trim().is_empty() {
                        continue;
                    }
                    if let Some(key) = key.strip_suffix("[]") {
                        let items: Vec<Value> = split_unescaped_commas(value)
                            .into_iter()
                            .map(Value::String)
                            .collect();
                        metadata.insert(key.to_string(), Value::Array(items));
                    } else {
                        metadata.insert(key.to_string(), json!(value));
                    }
                } else if h == "__prefix" || h == "__suffix" {
                    t.options
                        .insert(h.trim_start_matches('_').to_string(), json!(value));
                } else if h.starts_with("__") {
                    if noted.insert(h.clone()) {
                        let why = if h == "__metadata" {
                            "a `__metadata` column needs a key (`__metadata:category`); promptfoo ignores it too"
                        } else {
                            "this special column is not imported"
                        };
                        self.note(
                            format!("{}: column {h}", file.display()),
                            format!("CSV column `{h}`"),
                            NoteKind::Dropped,
                            why,
                        );
                    }
                } else {
                    t.vars.insert(h.clone(), json!(value));
                }
            }
            if let Some(m) = metric {
                for (a, _) in &mut t.asserts {
                    a["metric"] = json!(m);
                }
            }
            if !metadata.is_empty() {
                t.metadata = Some(Value::Object(metadata));
            }
            out.push(t);
        }
        Ok(())
    }

    // ----------------------------------------------------------------------------------
    // One test → cases
    // ----------------------------------------------------------------------------------

    fn add_test(&mut self, index: usize, test: &TestDef, default: &TestDef, prompts: &[PromptDef]) {
        let mut vars = default.vars.clone();
        for (k, v) in &test.vars {
            vars.insert(k.clone(), v.clone());
        }
        // Variables read from files hold the file's content, as promptfoo loads them.
        for (k, v) in vars.iter_mut() {
            let Some(reference) = v
                .as_str()
                .and_then(|s| s.strip_prefix("file://"))
                .map(str::to_string)
            else {
                continue;
            };
            match self.load_var_file(&reference) {
                Ok(loaded) => *v = loaded,
                Err(why) => {
                    self.note(
                        test.at.clone(),
                        format!("variable `{k}` = file://{reference}"),
                        NoteKind::Dropped,
                        format!("test not imported: {why}"),
                    );
                    return;
                }
            }
        }
        let combos = expand(&vars);
        if combos.len() > 10_000 {
            self.note(
                test.at.clone(),
                "list variables",
                NoteKind::Dropped,
                format!(
                    "test not imported: its list variables expand to {} tests",
                    combos.len()
                ),
            );
            return;
        }
        let threshold = test.threshold.or(default.threshold);
        let mut options = default.options.clone();
        options.extend(test.options.clone());
        let judge_provider = options
            .get("provider")
            .and_then(|p| p.as_str().or_else(|| p.get("id")?.as_str()))
            .map(str::to_string);
        for k in options.keys() {
            if k != "provider" {
                let why = match k.as_str() {
                    "transform" | "postprocess" => {
                        "the output transform is not applied: every grader sees the raw output"
                    }
                    "prefix" | "suffix" => "the prompt prefix/suffix is not applied",
                    _ => "not imported",
                };
                self.note(
                    test.at.clone(),
                    format!("test option `{k}`"),
                    NoteKind::Approximated,
                    why,
                );
            }
        }
        let filters = test.prompts.clone();
        let targets: Vec<usize> = (0..prompts.len())
            .filter(|&i| {
                filters.as_ref().is_none_or(|f| {
                    allowed(&prompts[i].label, prompts[i].explicit_label.as_deref(), f)
                })
            })
            .collect();
        if targets.is_empty() {
            self.note(
                test.at.clone(),
                "test `prompts` filter",
                NoteKind::Dropped,
                "no prompt of the config matches it; test not imported",
            );
            return;
        }
        let desc = test
            .description
            .clone()
            .or_else(|| default.description.clone());
        for (ci, combo) in combos.into_iter().enumerate() {
            let mut id = format!("t{}", index + 1);
            if let Some(d) = &desc {
                let s = slug(d);
                if !s.is_empty() {
                    id = format!(
                        "{id}-{}",
                        s.chars().take(40).collect::<String>().trim_end_matches('-')
                    );
                }
            }
            if ci > 0 {
                id = format!("{id}-{}", ci + 1);
            }
            let mut graders = Vec::new();
            let mut n = 0;
            let all: Vec<(Value, String)> = default
                .asserts
                .iter()
                .chain(&test.asserts)
                .cloned()
                .collect();
            for (a, at) in &all {
                let before = graders.len();
                self.map_assertion(
                    a,
                    at,
                    &mut n,
                    &combo,
                    judge_provider.as_deref(),
                    &mut graders,
                );
                // Kept by `write` only where a score threshold makes weights count.
                if let Some(w) = a
                    .get("weight")
                    .and_then(Value::as_f64)
                    .filter(|w| *w != 1.0)
                {
                    for d in &mut graders[before..] {
                        d.spec["weight"] = json!(w);
                    }
                }
            }
            let mut case_vars = combo.clone();
            if let Some(m) = test.metadata.as_ref().or(default.metadata.as_ref()) {
                case_vars.insert("_metadata".into(), m.clone());
            }
            if let Some(d) = &desc {
                case_vars.insert("_description".into(), json!(d));
            }
            for &p in &targets {
                self.imp.cases.push(super::Case {
                    id: id.clone(),
                    vars: case_vars.clone(),
                    prompt: p,
                    own_prompt: None,
                    graders: graders.clone(),
                    threshold: threshold.map(|t| (t, test.at.clone())),
                });
            }
        }
    }

    fn load_var_file(&mut self, reference: &str) -> Result<Value, String> {
        if reference.contains('*') {
            return Err("globbed variable files are not imported".into());
        }
        let file = resolve(&self.base, reference);
        let ext = extension(&file);
        if [
            "js", "cjs", "mjs", "ts", "py", "rb", "sh", "png", "jpg", "jpeg", "gif", "webp", "pdf",
            "mp3", "mp4", "wav",
        ]
        .contains(&ext.as_str())
        {
            return Err(format!(
                "a `.{ext}` variable is a program or a binary file, which costbench tasks do not hold"
            ));
        }
        let text = crate::config::read_capped(&file, crate::config::MAX_CONFIG_BYTES)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        match ext.as_str() {
            "json" => serde_json::from_str(&text)
                .map_err(|e| format!("{}: invalid JSON: {e}", file.display())),
            "yaml" | "yml" => Loader::from_str(&file, &text)
                .map(|l| l.root)
                .map_err(|e| e.to_string()),
            _ => Ok(Value::String(text)),
        }
    }

    /// Renders an assertion value with the test's variables, as promptfoo does with Nunjucks.
    fn render(&mut self, s: &str, vars: &Map<String, Value>, at: &str) -> String {
        if !s.contains("{{") && !s.contains("{%") {
            return s.to_string();
        }
        match self.render_env.render_str(
            &translate_template(s),
            minijinja::Value::from(minijinja::value::Serde(vars)),
        ) {
            Ok(r) => r,
            Err(e) => {
                self.note(
                    at,
                    "assertion value template",
                    NoteKind::Approximated,
                    format!(
                        "could not be rendered ({}); compared as written",
                        crate::grade::template::describe(&e)
                    ),
                );
                s.to_string()
            }
        }
    }

    fn map_assertion(
        &mut self,
        a: &Value,
        at: &str,
        n: &mut usize,
        vars: &Map<String, Value>,
        default_judge: Option<&str>,
        out: &mut Vec<GraderDraft>,
    ) {
        let Some(m) = a.as_object() else {
            self.note(
                at,
                "assertion",
                NoteKind::Dropped,
                format!("an assertion is a mapping, not {a}"),
            );
            return;
        };
        if m.contains_key("$ref") {
            self.note(
                at,
                "assertion `$ref`",
                NoteKind::Dropped,
                "assertion templates are not imported; write the assertion out",
            );
            return;
        }
        let full = m
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let (negate, kind) = match full.strip_prefix("not-") {
            Some(k) => (true, k.to_string()),
            None => (false, full.clone()),
        };
        let weight = m.get("weight").and_then(Value::as_f64).unwrap_or(1.0);
        if weight == 0.0 {
            self.note(at, format!("`{full}` with weight 0"), NoteKind::Dropped, "a zero-weight assertion never changes promptfoo's verdict, so no grader is written");
            return;
        }
        let comment = comment_for(&full, a);
        for k in m.keys() {
            if ![
                "type",
                "value",
                "weight",
                "metric",
                "threshold",
                "provider",
                "config",
            ]
            .contains(&k.as_str())
            {
                self.note(at, format!("`{full}` key `{k}`"), NoteKind::NeedsPorting, "the assertion depends on it (an output transform or a custom grading prompt), so it is written as a stub");
                self.stub(&full, a, n, out);
                return;
            }
        }
        // Values may come from files (text, or JSON/YAML for schemas and objects).
        let mut value = m.get("value").cloned();
        if let Some(Value::String(s)) = &value
            && let Some(r) = s.strip_prefix("file://")
            && !["javascript", "python", "ruby"].contains(&kind.as_str())
        {
            match self.load_var_file(r) {
                Ok(v) => value = Some(v),
                Err(why) => {
                    self.note(
                        at,
                        format!("`{full}` value {s}"),
                        NoteKind::NeedsPorting,
                        why,
                    );
                    self.stub(&full, a, n, out);
                    return;
                }
            }
        }
        if let Some(Value::String(s)) = &value {
            value = Some(Value::String(self.render(s, vars, at)));
        }
        let prefix = self.var_prefix.clone();
        let next_var = |n: &mut usize| {
            *n += 1;
            format!("{prefix}{n}")
        };
        let neg = |mut spec: Value| {
            if negate {
                spec["negate"] = json!(true);
            }
            spec
        };
        let text = value.as_ref().and_then(scalar_text);
        let draft = |spec: Value, bindings: Vec<(String, Value, Inline)>| GraderDraft {
            spec,
            comment: comment.clone(),
            bindings,
        };
        match kind.as_str() {
            "equals" => match (&value, &text) {
                (_, Some(t)) => {
                    let v = next_var(n);
                    let ph = placeholder(&v, Inline::Template);
                    out.push(draft(
                        neg(json!({"type": "equals", "value": ph, "normalize": []})),
                        vec![(v, json!(t), Inline::Template)],
                    ));
                }
                (Some(obj @ (Value::Object(_) | Value::Array(_))), None) if !negate => {
                    out.push(draft(
                        json!({"type": "json_schema", "schema": {"const": obj}}),
                        vec![],
                    ));
                }
                _ => self.unmapped(
                    &full,
                    at,
                    a,
                    n,
                    "needs a text value (or, not negated, a JSON value)",
                    out,
                ),
            },
            "contains" | "icontains" => match &text {
                Some(t) if !t.is_empty() => {
                    let v = next_var(n);
                    let mut spec =
                        json!({"type": "contains", "value": placeholder(&v, Inline::Template)});
                    if kind == "icontains" {
                        spec["normalize"] = json!(["lowercase"]);
                    }
                    out.push(draft(neg(spec), vec![(v, json!(t), Inline::Template)]));
                }
                _ => self.unmapped(&full, at, a, n, "needs a non-empty text value", out),
            },
            "contains-any" | "contains-all" | "icontains-any" | "icontains-all" => {
                let items: Vec<String> = match &value {
                    Some(Value::Array(xs)) => xs.iter().filter_map(scalar_text).collect(),
                    Some(Value::String(s)) => s.split(',').map(|x| x.trim().to_string()).collect(),
                    _ => vec![],
                };
                if items.is_empty() || items.iter().any(String::is_empty) {
                    self.unmapped(&full, at, a, n, "needs a list of non-empty values", out);
                    return;
                }
                let base = next_var(n);
                let mut values = Vec::new();
                let mut bindings = Vec::new();
                for (k, item) in items.iter().enumerate() {
                    let v = format!("{base}_{}", k + 1);
                    values.push(placeholder(&v, Inline::Template));
                    bindings.push((v, json!(item), Inline::Template));
                }
                let ty = kind.trim_start_matches('i');
                let mut spec = json!({"type": ty, "values": values});
                if kind.starts_with('i') {
                    spec["normalize"] = json!(["lowercase"]);
                }
                out.push(draft(neg(spec), bindings));
            }
            "starts-with" => match &text {
                Some(t) => {
                    let v = next_var(n);
                    let pattern = format!("^{}", placeholder(&v, Inline::Regex));
                    out.push(draft(
                        neg(json!({"type": "regex", "pattern": pattern, "normalize": []})),
                        vec![(v, json!(t), Inline::Regex)],
                    ));
                }
                None => self.unmapped(&full, at, a, n, "needs a text value", out),
            },
            "regex" => match &text {
                Some(t) => match regex::Regex::new(t) {
                    Ok(_) => {
                        let v = next_var(n);
                        out.push(draft(neg(json!({"type": "regex", "pattern": placeholder(&v, Inline::Template), "normalize": []})), vec![(v, json!(t), Inline::Template)]));
                    }
                    Err(e) => {
                        let first = e.to_string().lines().last().unwrap_or_default().to_string();
                        self.unmapped(&full, at, a, n, &format!("its JavaScript regex is not one Rust's regex crate reads (lookaround and backreferences are not supported): {first}"), out)
                    }
                },
                None => self.unmapped(&full, at, a, n, "needs a pattern", out),
            },
            "is-json" | "contains-json" => {
                let prose = kind == "contains-json";
                let schema = match &value {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) if s.trim().is_empty() => None,
                    Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                        Ok(v @ Value::Object(_)) => Some(v),
                        _ => {
                            self.unmapped(
                                &full,
                                at,
                                a,
                                n,
                                "its value is neither empty nor a JSON schema",
                                out,
                            );
                            return;
                        }
                    },
                    Some(v @ Value::Object(_)) => Some(v.clone()),
                    Some(_) => {
                        self.unmapped(&full, at, a, n, "its value is not a JSON schema", out);
                        return;
                    }
                };
                match schema {
                    None => {
                        let mut spec = json!({"type": "json"});
                        if prose {
                            spec["allow_prose"] = json!(true);
                        }
                        out.push(draft(neg(spec), vec![]));
                    }
                    Some(_) if negate => self.unmapped(
                        &full,
                        at,
                        a,
                        n,
                        "costbench's json_schema grader cannot be negated",
                        out,
                    ),
                    Some(s) => {
                        let mut spec = json!({"type": "json_schema", "schema": s});
                        if prose {
                            spec["allow_prose"] = json!(true);
                            self.note(at, format!("`{full}` with a schema"), NoteKind::Approximated, "promptfoo accepts any JSON value in the output that matches; costbench validates the first one it finds");
                        }
                        out.push(draft(spec, vec![]));
                    }
                }
            }
            "llm-rubric" if !negate => {
                match &text {
                    Some(rubric) => {
                        let pf = m
                            .get("provider")
                            .and_then(|p| p.as_str().or_else(|| p.get("id")?.as_str()))
                            .map(str::to_string)
                            .or_else(|| default_judge.map(str::to_string));
                        let pf_id = pf.clone().unwrap_or_else(|| DEFAULT_JUDGE.to_string());
                        let judge =
                            match provider_entry(&pf_id, None, &Map::new()) {
                                Ok((entry, _)) => self.imp.add_provider(entry),
                                Err(why) => {
                                    self.unmapped(&full, at, a, n,
                                &format!(
                                    "its grading provider `{pf_id}` cannot be imported: {why}"
                                ),
                                out,
                            );
                                    return;
                                }
                            };
                        if pf.is_none() {
                            self.note(at, "llm-rubric grading model", NoteKind::Approximated, format!("the config names none, so the judge is `{judge}` (promptfoo's default grader, {DEFAULT_JUDGE}), added to providers.yaml"));
                        }
                        let v = next_var(n);
                        let mut spec = json!({"type": "judge", "provider": judge, "rubric": placeholder(&v, Inline::Template)});
                        // The judge's score must reach it, as promptfoo's llm-rubric threshold.
                        if let Some(th) = m.get("threshold").and_then(Value::as_f64) {
                            spec["threshold"] = json!(th);
                        }
                        out.push(draft(spec, vec![(v, json!(rubric), Inline::Template)]));
                    }
                    None => self.unmapped(&full, at, a, n, "needs a rubric", out),
                }
            }
            "cost" | "latency" => {
                let what = if kind == "cost" {
                    "costbench measures cost itself: the cost per accepted outcome and its interval; a per-call cost limit is not a grader"
                } else {
                    "costbench measures latency itself (p50/p95 per provider; the routing policy's p95 SLO); a per-call limit is not a grader"
                };
                self.note(at, format!("assertion `{full}`"), NoteKind::Dropped, what);
            }
            "assert-set" if !m.contains_key("threshold") => {
                if let Some(Value::Array(items)) = m.get("assert") {
                    for item in items {
                        self.map_assertion(item, at, n, vars, default_judge, out);
                    }
                }
            }
            "javascript" | "python" | "ruby" | "webhook" => {
                self.note(at, format!("assertion `{full}`"), NoteKind::NeedsPorting, format!("{kind} checks are code costbench does not run; written as a `command` grader stub (a grader error until ported to graders/)"));
                self.stub(&full, a, n, out);
            }
            _ => self.unmapped(&full, at, a, n, "costbench has no grader for it", out),
        }
    }

    fn unmapped(
        &mut self,
        full: &str,
        at: &str,
        a: &Value,
        n: &mut usize,
        why: &str,
        out: &mut Vec<GraderDraft>,
    ) {
        self.note(
            at,
            format!("assertion `{full}`"),
            NoteKind::NeedsPorting,
            format!("{why}; written as a `command` grader stub (a grader error until ported)"),
        );
        self.stub(full, a, n, out);
    }

    fn stub(&mut self, full: &str, a: &Value, n: &mut usize, out: &mut Vec<GraderDraft>) {
        *n += 1;
        let var = format!("{}{}", self.var_prefix, n);
        let original = match a.get("value") {
            Some(Value::String(s)) => json!(s),
            _ => json!(a.to_string()),
        };
        let (spec, bindings) = stub_grader(full, "promptfoo", Some((var, original)));
        out.push(GraderDraft {
            spec,
            comment: comment_for(full, a),
            bindings,
        });
    }
}

/// The comment above a grader: the assertion it came from, and its metric name.
fn comment_for(full: &str, a: &Value) -> String {
    match a.get("metric").and_then(Value::as_str) {
        Some(mt) => format!("promptfoo `{full}` (metric: {mt})"),
        None => format!("promptfoo `{full}`"),
    }
}

/// promptfoo's `assertionFromString` (a CSV `__expected` cell) as an assertion mapping.
fn assertion_from_string(s: &str) -> Value {
    for prefix in ["javascript:", "fn:", "eval:"] {
        if let Some(body) = s.strip_prefix(prefix) {
            return json!({"type": "javascript", "value": body.trim()});
        }
    }
    for prefix in ["grade:", "llm-rubric:"] {
        if let Some(body) = s.strip_prefix(prefix) {
            return json!({"type": "llm-rubric", "value": body});
        }
    }
    if let Some(body) = s.strip_prefix("python:") {
        return json!({"type": "python", "value": body.trim()});
    }
    if let Some(f) = s.strip_prefix("file://") {
        if f.ends_with(".py") || f.contains(".py:") {
            return json!({"type": "python", "value": s});
        }
        if [".js", ".ts", ".mjs", ".cjs"]
            .iter()
            .any(|e| f.ends_with(e) || f.contains(&format!("{e}:")))
        {
            return json!({"type": "javascript", "value": s});
        }
    }
    static RE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        let types = ASSERTION_TYPES
            .iter()
            .map(|t| regex::escape(t))
            .collect::<Vec<_>>()
            .join("|");
        regex::Regex::new(&format!(
            r"^(not-)?({types})(?:\((\d+(?:\.\d+)?)\))?(?::([\s\S]*))?$"
        ))
        .expect("valid regex")
    });
    let Some(c) = RE.captures(s) else {
        return json!({"type": "equals", "value": s});
    };
    let not = c.get(1).map_or("", |m| m.as_str());
    let ty = &c[2];
    let value = c.get(4).map(|m| m.as_str());
    let mut a = json!({"type": format!("{not}{ty}")});
    if LIST_TYPES.contains(&ty) {
        if let Some(v) = value {
            a["value"] = json!(v.split(',').map(str::trim).collect::<Vec<_>>());
        }
    } else if ty == "is-json" || ty == "contains-json" {
        if let Some(v) = value {
            a["value"] = json!(v);
        }
    } else if let Some(v) = value {
        a["value"] = json!(v.trim());
    }
    if let Some(th) = c.get(3).and_then(|m| m.as_str().parse::<f64>().ok()) {
        a["threshold"] = json!(th);
    }
    a
}

/// Splits at commas not preceded by a backslash (promptfoo's `__metadata:key[]` cells).
fn split_unescaped_commas(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                cur.push(',');
                chars.next();
            }
            ',' => out.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

/// promptfoo's variable expansion: a list of strings makes one test per value (every
/// combination when several are lists); any other list stays one value.
fn expand(vars: &Map<String, Value>) -> Vec<Map<String, Value>> {
    let mut combos = vec![Map::new()];
    for (k, v) in vars {
        let values: Vec<Value> = match v {
            Value::Array(xs) if !xs.is_empty() && xs.iter().all(Value::is_string) => xs.clone(),
            other => vec![other.clone()],
        };
        let mut next = Vec::with_capacity(combos.len() * values.len());
        for c in &combos {
            for val in &values {
                let mut c = c.clone();
                c.insert(k.clone(), val.clone());
                next.push(c);
            }
            if next.len() > 10_001 {
                return next;
            }
        }
        combos = next;
    }
    combos
}

/// A costbench providers entry for a promptfoo provider id, with notes on what differs.
pub fn provider_entry(
    id: &str,
    label: Option<&str>,
    config: &Map<String, Value>,
) -> Result<(Value, Vec<String>), String> {
    let mut notes = Vec::new();
    let parts: Vec<&str> = id.splitn(3, ':').collect();
    let (vendor, model) = match parts.as_slice() {
        [v, "chat" | "messages" | "completion" | "responses", m] => (*v, m.to_string()),
        [v, m] => (*v, m.to_string()),
        [v, a, b] => (*v, format!("{a}:{b}")),
        _ => return Err("not a `vendor:model` provider id".into()),
    };
    let responses = parts.get(1) == Some(&"responses");
    let (protocol, base_url, key) = match vendor {
        "openai" if responses => (
            "openai-responses",
            "https://api.openai.com/v1",
            Some("OPENAI_API_KEY"),
        ),
        "openai" => (
            "openai",
            "https://api.openai.com/v1",
            Some("OPENAI_API_KEY"),
        ),
        "anthropic" => (
            "anthropic",
            "https://api.anthropic.com",
            Some("ANTHROPIC_API_KEY"),
        ),
        "google" | "gemini" => (
            "gemini",
            "https://generativelanguage.googleapis.com",
            Some("GEMINI_API_KEY"),
        ),
        "deepseek" => (
            "openai",
            "https://api.deepseek.com/v1",
            Some("DEEPSEEK_API_KEY"),
        ),
        "openrouter" => (
            "openai",
            "https://openrouter.ai/api/v1",
            Some("OPENROUTER_API_KEY"),
        ),
        "mistral" => (
            "openai",
            "https://api.mistral.ai/v1",
            Some("MISTRAL_API_KEY"),
        ),
        "groq" => (
            "openai",
            "https://api.groq.com/openai/v1",
            Some("GROQ_API_KEY"),
        ),
        "togetherai" => (
            "openai",
            "https://api.together.xyz/v1",
            Some("TOGETHER_API_KEY"),
        ),
        "xai" => ("openai", "https://api.x.ai/v1", Some("XAI_API_KEY")),
        "fireworks" => (
            "openai",
            "https://api.fireworks.ai/inference/v1",
            Some("FIREWORKS_API_KEY"),
        ),
        "ollama" => ("openai", "http://127.0.0.1:11434/v1", None),
        _ => {
            return Err(format!(
                "costbench speaks OpenAI-compatible, Anthropic and Gemini APIs; `{vendor}` providers are not imported (add it to providers.yaml by hand if it has such an API)"
            ));
        }
    };
    if model.is_empty()
        || (vendor == "openai" && parts.len() == 3 && !["chat", "responses"].contains(&parts[1]))
    {
        return Err(format!("`{id}` is not a chat model costbench can call"));
    }
    let cid = label
        .map(slug)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| slug(&format!("{vendor}-{model}")));
    let mut entry = json!({
        "id": cid,
        "protocol": protocol,
        "base_url": base_url,
        "model": model,
    });
    if let Some(k) = config.get("apiKeyEnvar").and_then(Value::as_str).or(key) {
        entry["api_key_env"] = json!(k);
    }
    if let Some(u) = config
        .get("apiBaseUrl")
        .or_else(|| config.get("baseUrl"))
        .and_then(Value::as_str)
    {
        entry["base_url"] = json!(u);
    }
    if crate::providers::catalog::Catalog::builtin()
        .find(&model)
        .is_some()
    {
        entry["price"] = json!("catalog");
    } else {
        notes.push(format!("`{model}` is not in costbench's price catalog: add its `price` to providers.yaml, or its costs stay unknown"));
    }
    let mut extra = Map::new();
    for (k, v) in config {
        match k.as_str() {
            "apiKeyEnvar" | "apiBaseUrl" | "baseUrl" => {}
            "temperature" | "max_tokens" | "top_p" | "seed" | "max_completion_tokens" | "presence_penalty" | "frequency_penalty" => {
                extra.insert(k.clone(), v.clone());
            }
            "apiKey" => notes.push("its inline API key is not copied (keys never go in files); export it in the variable named by api_key_env".into()),
            _ => notes.push(format!("config `{k}` is not imported")),
        }
    }
    if !extra.is_empty() {
        entry["extra_body"] = Value::Object(extra);
    }
    Ok((entry, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_assertion_strings_read_like_promptfoo() {
        assert_eq!(
            assertion_from_string("Paris"),
            json!({"type": "equals", "value": "Paris"})
        );
        assert_eq!(
            assertion_from_string("contains: Hello"),
            json!({"type": "contains", "value": "Hello"})
        );
        assert_eq!(
            assertion_from_string("not-icontains:sorry"),
            json!({"type": "not-icontains", "value": "sorry"})
        );
        assert_eq!(
            assertion_from_string("contains-any: <b>,</span>"),
            json!({"type": "contains-any", "value": ["<b>", "</span>"]})
        );
        assert_eq!(
            assertion_from_string("similar(0.9):hi"),
            json!({"type": "similar", "value": "hi", "threshold": 0.9})
        );
        assert_eq!(assertion_from_string("is-json"), json!({"type": "is-json"}));
        assert_eq!(
            assertion_from_string("fn:output.length < 9"),
            json!({"type": "javascript", "value": "output.length < 9"})
        );
        assert_eq!(
            assertion_from_string("grade:is polite"),
            json!({"type": "llm-rubric", "value": "is polite"})
        );
    }

    #[test]
    fn chat_prompts_become_system_examples_and_user() {
        let msgs = json!([
            {"role": "system", "content": "s"},
            {"role": "user", "content": "u1"},
            {"role": "assistant", "content": "a1"},
            {"role": "user", "content": "{{q}}"}
        ]);
        let p = chat_prompt(msgs.as_array().unwrap()).unwrap();
        assert_eq!(p.system.as_deref(), Some("s"));
        assert_eq!(p.examples, vec![("u1".to_string(), "a1".to_string())]);
        assert_eq!(p.user, "{{q}}");
        let bad = json!([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]);
        assert!(chat_prompt(bad.as_array().unwrap()).is_err());
    }

    #[test]
    fn prompt_filters_match_labels_groups_and_wildcards() {
        let f = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(allowed("short", Some("short"), &f(&["short"])));
        assert!(allowed("grp: x", None, &f(&["grp"])));
        assert!(allowed("grp:x", None, &f(&["grp:*"])));
        assert!(!allowed("long", Some("long"), &f(&["short"])));
    }

    #[test]
    fn string_lists_expand_into_every_combination() {
        let vars = json!({"a": ["1", "2"], "b": ["x", "y"], "c": [1, 2]});
        let combos = expand(vars.as_object().unwrap());
        assert_eq!(combos.len(), 4);
        assert_eq!(combos[3]["b"], "y");
        assert_eq!(combos[0]["c"], json!([1, 2]));
    }

    #[test]
    fn provider_ids_map_to_protocols_and_key_variables() {
        let (e, _) =
            provider_entry("anthropic:messages:claude-sonnet-4-5", None, &Map::new()).unwrap();
        assert_eq!(e["protocol"], "anthropic");
        assert_eq!(e["api_key_env"], "ANTHROPIC_API_KEY");
        assert_eq!(e["model"], "claude-sonnet-4-5");
        let (e, _) = provider_entry("openai:chat:gpt-4.1-mini", Some("Mini"), &Map::new()).unwrap();
        assert_eq!(
            (e["id"].as_str(), e["model"].as_str()),
            (Some("mini"), Some("gpt-4.1-mini"))
        );
        assert!(provider_entry("bedrock:anthropic.claude", None, &Map::new()).is_err());
        assert!(provider_entry("echo", None, &Map::new()).is_err());
    }
}
