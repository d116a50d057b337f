//! OpenAI Evals → cases for [`super::write`]: the open-source `openai/evals` registry (a YAML
//! of eval specs, each naming a class and a samples JSONL) and the hosted Evals API's eval
//! definition (`data_source_config` + `testing_criteria`, with its items in a JSONL file and,
//! optionally, the run that names the prompt template and model).
//!
//! Templates: the hosted API's `{{item.x}}` is the task variable `x` in costbench's minijinja
//! (`{{ x }}`); `{{sample.output_text}}` is the output every grader reads.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::promptfoo::{chat_prompt, provider_entry};
use super::{
    Case, GraderDraft, Import, NamedPrompt, NoteKind, PromptDraft, located, parse_json,
    parse_jsonl, read_named, slug, stub_grader,
};
use crate::config::{ConfigError, DocPath, Loader};

/// The judge model when a model-graded spec names none (the evals CLI passes it at run time).
const DEFAULT_JUDGE: &str = "openai:gpt-4.1";

/// `evals.elsuite.utils.fuzzy_match`, ported: both sides normalised (lower case, no
/// punctuation, no articles, single spaces), then either contains the other.
const FUZZY_MATCH_PY: &str = r#"#!/usr/bin/env python3
# Written by `costbench import openai-evals`: OpenAI Evals' FuzzyMatch check
# (evals/elsuite/utils.py: normalize + fuzzy_match) as a costbench `command` grader.
# Passes when the normalised output contains a normalised ideal answer or is contained in one.
import json, re, string, sys

def normalize(s):
    s = s.lower()
    s = "".join(c for c in s if c not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())

def fuzzy_match(a, b):
    a, b = normalize(a), normalize(b)
    if a == "" or b == "":
        return a == b
    return a in b or b in a

req = json.load(sys.stdin)
ideal = req.get("expected")
ideal = ideal if isinstance(ideal, list) else [ideal]
ideal = [str(i) for i in ideal if i is not None]
out = req.get("output", "")
hit = next((i for i in ideal if fuzzy_match(out, i)), None)
reason = f"matches {hit!r}" if hit is not None else f"matches none of {ideal!r}"
print(json.dumps({"pass": hit is not None, "reason": reason}))
"#;

/// Reads an OpenAI Evals file: a registry YAML, or a hosted eval definition (JSON) with its
/// items (`data`) and optionally its run (`run`: the prompt template, model and sampling).
pub fn import(file: &Path, data: Option<&Path>, run: Option<&Path>) -> Result<Import, ConfigError> {
    let ext = super::extension(file);
    let mut imp = Import {
        source_kind: "openai-evals",
        source: file.to_path_buf(),
        ..Import::default()
    };
    if ext == "json" {
        hosted(&mut imp, file, data, run)?;
    } else {
        if data.is_some() || run.is_some() {
            return Err(ConfigError::at_file(
                file,
                "--data and --run belong to a hosted eval definition (JSON); a registry YAML names its samples itself",
            ));
        }
        registry(&mut imp, file)?;
    }
    if imp.cases.is_empty() {
        return Err(ConfigError::at_file(
            file,
            "no sample could be imported; nothing to write",
        ));
    }
    Ok(imp)
}

/// `{{item.x}}` → `{{ x }}`; the text stays otherwise as written.
fn item_templates(s: &str) -> String {
    static ITEM: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\{\{\s*item\.([A-Za-z_][\w.]*)\s*\}\}").expect("valid regex")
    });
    ITEM.replace_all(s, "{{ $1 }}").into_owned()
}

fn is_output(s: &str) -> bool {
    static OUT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^\s*\{\{\s*sample\.output_text\s*\}\}\s*$").expect("valid regex")
    });
    OUT.is_match(s)
}

/// The text of a hosted message's content (a string, an `input_text`, or a list of them).
fn content_text(c: &Value) -> Option<String> {
    match c {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m.get("text").and_then(Value::as_str).map(str::to_string),
        Value::Array(parts) => {
            let texts: Option<Vec<String>> = parts.iter().map(content_text).collect();
            texts.map(|t| t.join("\n"))
        }
        _ => None,
    }
}

/// Hosted or registry chat messages as `{role, content}` with text content; evals' few-shot
/// `system` messages named `example_user` / `example_assistant` become user and assistant turns.
fn plain_messages(msgs: &[Value]) -> Result<Vec<Value>, String> {
    msgs.iter()
        .enumerate()
        .map(|(i, m)| {
            let mut role = m["role"].as_str().unwrap_or_default().to_string();
            match m["name"].as_str() {
                Some("example_user") => role = "user".into(),
                Some("example_assistant") => role = "assistant".into(),
                _ => {}
            }
            let text = content_text(&m["content"])
                .ok_or_else(|| format!("message {} has no text content", i + 1))?;
            Ok(json!({"role": role, "content": text}))
        })
        .collect()
}

/// A sample's own chat as prompt templates over variables it gets (`system`, `example_N_user`,
/// `example_N_assistant`, `input`).
fn sample_prompt(input: &Value, vars: &mut Map<String, Value>) -> Result<PromptDraft, String> {
    match input {
        Value::String(s) => {
            vars.insert("input".into(), json!(s));
            Ok(PromptDraft {
                system: None,
                examples: vec![],
                user: "{{ input }}".into(),
            })
        }
        Value::Array(msgs) => {
            let p = chat_prompt(&plain_messages(msgs)?)?;
            let mut out = PromptDraft {
                system: None,
                examples: vec![],
                user: "{{ input }}".into(),
            };
            if let Some(s) = p.system {
                vars.insert("system".into(), json!(s));
                out.system = Some("{{ system }}".into());
            }
            for (i, (u, a)) in p.examples.into_iter().enumerate() {
                let (ku, ka) = (
                    format!("example_{}_user", i + 1),
                    format!("example_{}_assistant", i + 1),
                );
                vars.insert(ku.clone(), json!(u));
                vars.insert(ka.clone(), json!(a));
                out.examples
                    .push((format!("{{{{ {ku} }}}}"), format!("{{{{ {ka} }}}}")));
            }
            vars.insert("input".into(), json!(p.user));
            Ok(out)
        }
        other => Err(format!(
            "its input is neither text nor a list of messages: {other}"
        )),
    }
}

/// Matches any of the `ideal` answers (a list variable), anchored at the start or not.
fn any_ideal_pattern(anchored: bool) -> String {
    format!(
        "{}(?:{{% for i in ideal %}}{{{{ i | regex_escape }}}}{{% if not loop.last %}}|{{% endif %}}{{% endfor %}})",
        if anchored { "^" } else { "" }
    )
}

fn registry(imp: &mut Import, file: &Path) -> Result<(), ConfigError> {
    let mut l = Loader::open(file)?;
    let root = l.root.clone();
    let Some(top) = root.as_object() else {
        return Err(ConfigError::at_file(
            file,
            "an evals registry file is a mapping of eval names to specs",
        ));
    };
    let dir = file.parent().unwrap_or(Path::new("")).to_path_buf();
    let specs: Vec<(&String, &Map<String, Value>)> = top
        .iter()
        .filter_map(|(k, v)| Some((k, v.as_object()?)))
        .filter(|(_, v)| v.contains_key("class"))
        .collect();
    if specs.is_empty() {
        return Err(ConfigError::at_file(
            file,
            "no eval spec (an entry with `class` and `args`) in this file",
        ));
    }
    imp.name = slug(
        &specs
            .first()
            .map(|(k, _)| k.split('.').next().unwrap_or(k).to_string())
            .unwrap_or_default(),
    );
    if let Some(desc) = top.values().find_map(|v| v.get("description")?.as_str()) {
        imp.description = desc.to_string();
    }
    for (k, v) in top {
        if v.get("class").is_none() && v.get("id").is_none() {
            let at = located(&mut l, &DocPath::default().key(k));
            imp.note(
                at,
                format!("registry entry `{k}`"),
                NoteKind::Dropped,
                "neither an eval spec nor an eval alias",
            );
        }
    }
    for (ei, (key, spec)) in specs.iter().enumerate() {
        let path = DocPath::default().key(key);
        let at = located(&mut l, &path);
        let class = spec["class"].as_str().unwrap_or_default().to_string();
        let args = spec
            .get("args")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let Some(samples) = args.get("samples_jsonl").and_then(Value::as_str) else {
            l.problem(&path.key("args"), "needs `samples_jsonl`");
            continue;
        };
        // The registry's samples live in registry/data/, beside registry/evals/.
        let candidates = [
            dir.join(samples),
            dir.join("../data").join(samples),
            dir.join("data").join(samples),
        ];
        let Some(samples_file) = candidates.iter().find(|p| p.is_file()).cloned() else {
            let where_ = located(&mut l, &path.key("args").key("samples_jsonl"));
            return Err(ConfigError::at_file(
                &candidates[0],
                format!(
                    "samples file not found (named at {where_}; also looked in ../data/ and data/)"
                ),
            ));
        };
        let text = read_named(&samples_file, &at)?;
        let lines = parse_jsonl(&samples_file, &text)?;
        imp.prompts.push(NamedPrompt {
            suffix: slug(
                key.strip_prefix(&format!("{}.", key.split('.').next().unwrap_or_default()))
                    .unwrap_or(key),
            ),
            origin: format!("eval `{key}`, {}", samples_file.display()),
            prompt: PromptDraft {
                system: None,
                examples: vec![],
                user: "{{ input }}".into(),
            },
        });
        for k in args.keys() {
            if ![
                "samples_jsonl",
                "ignore_case",
                "modelgraded_spec",
                "eval_type",
            ]
            .contains(&k.as_str())
            {
                let a = located(&mut l, &path.key("args").key(k));
                imp.note(
                    a,
                    format!("eval arg `{k}`"),
                    NoteKind::Dropped,
                    "not imported",
                );
            }
        }
        let graders = class_graders(imp, &mut l, &path, &class, &args, &dir);
        let Some(graders) = graders else { continue };
        for (line, sample) in lines {
            let sat = format!("{}:{line}", samples_file.display());
            let Some(m) = sample.as_object() else {
                imp.note(
                    sat,
                    "sample",
                    NoteKind::Dropped,
                    "a sample is a JSON object",
                );
                continue;
            };
            let mut vars = Map::new();
            for (k, v) in m {
                if k != "input" && k != "ideal" {
                    vars.insert(k.clone(), v.clone());
                }
            }
            let prompt = match sample_prompt(m.get("input").unwrap_or(&Value::Null), &mut vars) {
                Ok(p) => p,
                Err(why) => {
                    imp.note(
                        sat,
                        "sample",
                        NoteKind::Dropped,
                        format!("not imported: {why}"),
                    );
                    continue;
                }
            };
            let ideal = match m.get("ideal") {
                // As text: the graders compare and regex-escape strings.
                Some(Value::Array(xs)) => xs
                    .iter()
                    .map(|x| Value::String(super::scalar_text(x).unwrap_or_else(|| x.to_string())))
                    .collect(),
                Some(v @ Value::String(_)) => vec![v.clone()],
                Some(Value::Null) | None => vec![],
                Some(other) => vec![Value::String(other.to_string())],
            };
            if ideal.is_empty() && class.contains(".basic.") {
                imp.note(
                    sat,
                    "sample",
                    NoteKind::Dropped,
                    "not imported: it has no `ideal` answer to match",
                );
                continue;
            }
            vars.insert("ideal".into(), Value::Array(ideal));
            imp.cases.push(Case {
                id: format!("s{line}"),
                vars,
                prompt: ei,
                own_prompt: Some(prompt),
                graders: graders.clone(),
                threshold: None,
            });
        }
    }
    if !l.problems.is_empty() {
        return Err(ConfigError {
            problems: l.problems,
        });
    }
    Ok(())
}

/// The graders an evals class stands for; `None` when the spec is unusable.
fn class_graders(
    imp: &mut Import,
    l: &mut Loader,
    path: &DocPath,
    class: &str,
    args: &Map<String, Value>,
    dir: &Path,
) -> Option<Vec<GraderDraft>> {
    let at = located(l, &path.key("class"));
    let short = class.rsplit(':').next().unwrap_or(class);
    let draft = |spec: Value, comment: &str| GraderDraft {
        spec,
        comment: comment.to_string(),
        bindings: vec![],
    };
    Some(match class {
        "evals.elsuite.basic.match:Match" => vec![draft(
            json!({"type": "regex", "pattern": any_ideal_pattern(true), "normalize": []}),
            "OpenAI Evals Match: the output starts with an ideal answer",
        )],
        "evals.elsuite.basic.includes:Includes" => {
            let ignore_case = args
                .get("ignore_case")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let mut spec =
                json!({"type": "regex", "pattern": any_ideal_pattern(false), "normalize": []});
            if ignore_case {
                spec["case_sensitive"] = json!(false);
            }
            vec![draft(
                spec,
                "OpenAI Evals Includes: the output contains an ideal answer",
            )]
        }
        "evals.elsuite.basic.fuzzy_match:FuzzyMatch" => {
            imp.programs
                .insert("fuzzy_match.py".into(), FUZZY_MATCH_PY.into());
            vec![draft(
                json!({"type": "command", "program": "graders/fuzzy_match.py", "expected_var": "ideal"}),
                "OpenAI Evals FuzzyMatch (evals' normalize + fuzzy_match, ported to graders/fuzzy_match.py)",
            )]
        }
        c if c.starts_with("evals.elsuite.modelgraded") => {
            let spec_name = args
                .get("modelgraded_spec")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let spec_file = [
                dir.join("../modelgraded"),
                dir.join("modelgraded"),
                dir.to_path_buf(),
            ]
            .iter()
            .map(|d| d.join(format!("{spec_name}.yaml")))
            .find(|p| p.is_file());
            let rubric = match spec_file.as_ref().and_then(|f| Loader::open(f).ok()) {
                Some(sl) => {
                    let prompt = &sl.root[spec_name]["prompt"];
                    let text = match prompt {
                        Value::String(s) => Some(s.clone()),
                        Value::Array(msgs) => plain_messages(msgs).ok().map(|ms| {
                            ms.iter()
                                .map(|m| m["content"].as_str().unwrap_or_default().to_string())
                                .collect::<Vec<_>>()
                                .join("\n\n")
                        }),
                        _ => None,
                    };
                    imp.note(at.clone(), format!("model-graded spec `{spec_name}`"), NoteKind::Approximated, "its prompt is the judge's rubric; evals' `{input}`/`{completion}` slots and its choice strings and scores are the judge's own format now");
                    text
                }
                None => None,
            };
            let rubric = rubric.unwrap_or_else(|| {
                imp.note(at.clone(), format!("model-graded spec `{spec_name}`"), NoteKind::Approximated, "its spec file (registry/modelgraded/) was not found next to the registry: the rubric only names it; write it out");
                format!("Grade the answer as OpenAI Evals' `{spec_name}` model-graded spec would.")
            });
            let judge = match provider_entry(DEFAULT_JUDGE, None, &Map::new()) {
                Ok((e, _)) => imp.add_provider(e),
                Err(_) => return None,
            };
            imp.note(at.clone(), "judge model", NoteKind::Approximated, format!("the evals CLI picks the grading model at run time; the import uses `{judge}` ({DEFAULT_JUDGE}), added to providers.yaml"));
            vec![draft(
                json!({"type": "judge", "provider": judge, "rubric": super::literal_template(&rubric)}),
                &format!("OpenAI Evals model-graded `{spec_name}`"),
            )]
        }
        _ => {
            imp.note(at, format!("eval class `{class}`"), NoteKind::NeedsPorting, "costbench has no equivalent; written as a `command` grader stub (a grader error until ported)");
            let (spec, bindings) = stub_grader(short, "openai-evals", None);
            vec![GraderDraft {
                spec,
                comment: format!("OpenAI Evals {class}"),
                bindings,
            }]
        }
    })
}

fn hosted(
    imp: &mut Import,
    file: &Path,
    data: Option<&Path>,
    run: Option<&Path>,
) -> Result<(), ConfigError> {
    let text = read_named(file, "the command line")?;
    let def = parse_json(file, &text)?;
    let Some(criteria) = def.get("testing_criteria").and_then(Value::as_array) else {
        return Err(ConfigError::at_file(
            file,
            "not an eval definition: it has no `testing_criteria` (a registry YAML has the .yaml extension)",
        ));
    };
    let fname = file.file_stem().and_then(|s| s.to_str()).unwrap_or("eval");
    imp.name = [
        def["name"].as_str().map(slug).unwrap_or_default(),
        slug(fname),
    ]
    .into_iter()
    .find(|s| !s.is_empty())
    .unwrap_or_else(|| "openai-eval".into());
    imp.description = def["metadata"]["description"]
        .as_str()
        .or(def["name"].as_str())
        .unwrap_or_default()
        .to_string();
    let at = |p: &str| format!("{}: {p}", file.display());
    if let Some(dsc) = def.get("data_source_config") {
        let t = dsc["type"].as_str().unwrap_or_default();
        if t != "custom" {
            imp.note(at("data_source_config.type"), format!("data source `{t}`"), NoteKind::Approximated, "stored completions and logs live on OpenAI's platform; the import reads the items given with --data instead");
        }
    }

    // The run: prompt template, model and sampling parameters.
    let run_def = match run {
        Some(r) => {
            let t = read_named(r, "--run")?;
            Some((r.to_path_buf(), parse_json(r, &t)?))
        }
        None => None,
    };
    let ds = run_def
        .as_ref()
        .map(|(_, v)| v.get("data_source").cloned().unwrap_or(v.clone()));
    let mut items: Vec<(String, Value)> = Vec::new();
    if let Some(d) = data {
        let t = read_named(d, "--data")?;
        for (line, v) in parse_jsonl(d, &t)? {
            let item = v.get("item").cloned().unwrap_or(v);
            items.push((format!("{}:{line}", d.display()), item));
        }
    } else if let Some(content) = ds.as_ref().and_then(|d| d["source"]["content"].as_array()) {
        let rf: PathBuf = run_def.as_ref().map(|(p, _)| p.clone()).unwrap_or_default();
        for (i, row) in content.iter().enumerate() {
            items.push((
                format!("{}: data_source.source.content[{i}]", rf.display()),
                row.get("item").cloned().unwrap_or(row.clone()),
            ));
        }
    } else {
        return Err(ConfigError::at_file(
            file,
            "an eval definition holds no items: give them with --data ITEMS.jsonl (one `{\"item\": {...}}` a line, as uploaded to OpenAI), or a --run file whose data_source has file_content",
        ));
    }
    let mut template: Option<PromptDraft> = None;
    let mut item_reference: Option<String> = None;
    if let Some(d) = &ds {
        let im = &d["input_messages"];
        match im["type"].as_str() {
            Some("template") => {
                let msgs = im["template"].as_array().cloned().unwrap_or_default();
                let plain = plain_messages(&msgs)
                    .map_err(|e| ConfigError::at_file(file, format!("run input_messages: {e}")))?;
                let converted: Vec<Value> = plain
                    .iter()
                    .map(|m| json!({"role": m["role"], "content": item_templates(m["content"].as_str().unwrap_or_default())}))
                    .collect();
                let p = chat_prompt(&converted)
                    .map_err(|e| ConfigError::at_file(file, format!("run input_messages: {e}")))?;
                template = Some(p);
            }
            Some("item_reference") => {
                item_reference = im["item_reference"]
                    .as_str()
                    .map(|s| s.trim_start_matches("item.").to_string());
            }
            _ => {}
        }
        if let Some(model) = d["model"].as_str() {
            match provider_entry(&format!("openai:{model}"), None, &Map::new()) {
                Ok((e, _)) => {
                    imp.add_provider(e);
                }
                Err(why) => imp.note("--run", format!("model `{model}`"), NoteKind::Dropped, why),
            }
        }
        if let Some(sp) = d["sampling_params"].as_object() {
            for (k, v) in sp {
                match k.as_str() {
                    "temperature" | "top_p" | "seed" => {
                        imp.params.insert(k.clone(), v.clone());
                    }
                    "max_completion_tokens" => {
                        imp.params.insert("max_tokens".into(), v.clone());
                    }
                    other => imp.note(
                        "--run",
                        format!("sampling param `{other}`"),
                        NoteKind::Dropped,
                        "not imported; set it in the suite's params or the provider's extra_body",
                    ),
                }
            }
        }
    }
    if template.is_none() && item_reference.is_none() {
        if items.iter().all(|(_, i)| i.get("input").is_some()) {
            item_reference = Some("input".into());
            imp.note(at("(no --run)"), "prompt", NoteKind::Approximated, "no run names the prompt: each item's `input` is sent as the prompt (as `item_reference: item.input` would)");
        } else {
            return Err(ConfigError::at_file(
                file,
                "no prompt: give the run definition with --run RUN.json (its data_source.input_messages), or items with an `input` field",
            ));
        }
    }
    imp.prompts.push(NamedPrompt {
        suffix: String::new(),
        origin: file.display().to_string(),
        prompt: template.clone().unwrap_or(PromptDraft {
            system: None,
            examples: vec![],
            user: "{{ input }}".into(),
        }),
    });

    let mut graders = Vec::new();
    for (i, c) in criteria.iter().enumerate() {
        let cat = at(&format!("testing_criteria[{i}]"));
        criterion_graders(imp, c, &cat, i, &mut graders);
    }
    for (n, (iat, item)) in items.into_iter().enumerate() {
        let Some(m) = item.as_object() else {
            imp.note(iat, "item", NoteKind::Dropped, "an item is a JSON object");
            continue;
        };
        let mut vars = m.clone();
        let own = match &item_reference {
            Some(field) => {
                let input = vars.get(field).cloned().unwrap_or(Value::Null);
                match sample_prompt(&input, &mut vars) {
                    Ok(p) => Some(p),
                    Err(why) => {
                        imp.note(
                            iat,
                            "item",
                            NoteKind::Dropped,
                            format!("not imported: {why}"),
                        );
                        continue;
                    }
                }
            }
            None => None,
        };
        imp.cases.push(Case {
            id: format!("i{}", n + 1),
            vars,
            prompt: 0,
            own_prompt: own,
            graders: graders.clone(),
            threshold: None,
        });
    }
    Ok(())
}

fn criterion_graders(
    imp: &mut Import,
    c: &Value,
    at: &str,
    index: usize,
    out: &mut Vec<GraderDraft>,
) {
    let ty = c["type"].as_str().unwrap_or_default();
    let name = c["name"].as_str().unwrap_or(ty);
    let comment = format!("OpenAI Evals `{ty}` \"{name}\"");
    let mut stub = |imp: &mut Import, why: String| {
        imp.note(
            at,
            format!("testing criterion `{ty}` \"{name}\""),
            NoteKind::NeedsPorting,
            format!("{why}; written as a `command` grader stub (a grader error until ported)"),
        );
        let var = format!("_criterion_{}", index + 1);
        let (spec, bindings) = stub_grader(ty, "openai-evals", Some((var, json!(c.to_string()))));
        out.push(GraderDraft {
            spec,
            comment: comment.clone(),
            bindings,
        });
    };
    match ty {
        "string_check" => {
            let mut input = c["input"].as_str().unwrap_or_default().to_string();
            let mut reference = c["reference"].as_str().unwrap_or_default().to_string();
            let op = c["operation"].as_str().unwrap_or_default();
            if !is_output(&input) && is_output(&reference) && (op == "eq" || op == "ne") {
                std::mem::swap(&mut input, &mut reference);
            }
            if !is_output(&input) {
                stub(
                    imp,
                    "it compares something other than `{{sample.output_text}}` with its reference"
                        .into(),
                );
                return;
            }
            let value = item_templates(&reference);
            if value.contains("sample.") {
                stub(imp, "its reference reads the sample".into());
                return;
            }
            let spec = match op {
                "eq" => json!({"type": "equals", "value": value, "normalize": []}),
                "ne" => json!({"type": "equals", "value": value, "normalize": [], "negate": true}),
                "like" => json!({"type": "contains", "value": value}),
                "ilike" => json!({"type": "contains", "value": value, "normalize": ["lowercase"]}),
                other => {
                    stub(imp, format!("operation `{other}` is unknown"));
                    return;
                }
            };
            out.push(GraderDraft {
                spec,
                comment,
                bindings: vec![],
            });
        }
        "score_model" | "label_model" => {
            let msgs = c["input"].as_array().cloned().unwrap_or_default();
            let Ok(plain) = plain_messages(&msgs) else {
                stub(imp, "its prompt has content other than text".into());
                return;
            };
            let mut rubric = plain
                .iter()
                .map(|m| {
                    item_templates(m["content"].as_str().unwrap_or_default())
                        .replace("{{sample.output_text}}", "[the answer]")
                })
                .collect::<Vec<_>>()
                .join("\n\n");
            if ty == "label_model" {
                let labels = |k: &str| {
                    c[k].as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default()
                };
                rubric.push_str(&format!(
                    "\n\nPass only if the label is one of: {}. (Labels: {}.)",
                    labels("passing_labels"),
                    labels("labels")
                ));
            } else {
                let th = c["pass_threshold"].as_f64();
                let range = c["range"]
                    .as_array()
                    .map(|r| {
                        r.iter()
                            .map(Value::to_string)
                            .collect::<Vec<_>>()
                            .join(" to ")
                    })
                    .unwrap_or_else(|| "0 to 1".into());
                rubric.push_str(&format!(
                    "\n\nScore from {range}; pass at {} or above.",
                    th.map(|t| t.to_string())
                        .unwrap_or_else(|| "the top of the range".into())
                ));
            }
            let model = c["model"].as_str().unwrap_or("gpt-4.1");
            let judge = match provider_entry(&format!("openai:{model}"), None, &Map::new()) {
                Ok((e, _)) => imp.add_provider(e),
                Err(why) => {
                    stub(imp, format!("its model cannot be imported: {why}"));
                    return;
                }
            };
            imp.note(at, format!("testing criterion `{ty}` \"{name}\""), NoteKind::Approximated, format!("judged by `{judge}` with its messages (and {}) as the rubric; the judge's own verdict format replaces OpenAI's", if ty == "label_model" { "the passing labels" } else { "the pass threshold" }));
            let mut spec = json!({"type": "judge", "provider": judge, "rubric": rubric});
            // score_model's pass threshold, on the judge's 0..1 score scale.
            if let Some(th) = c["pass_threshold"].as_f64() {
                let r = c["range"].as_array();
                let lo = r.and_then(|r| r.first()?.as_f64()).unwrap_or(0.0);
                let hi = r.and_then(|r| r.get(1)?.as_f64()).unwrap_or(1.0);
                if hi > lo {
                    spec["threshold"] = json!(((th - lo) / (hi - lo)).clamp(0.0, 1.0));
                }
            }
            out.push(GraderDraft {
                spec,
                comment,
                bindings: vec![],
            });
        }
        "text_similarity" => {
            let metric = c["evaluation_metric"].as_str().unwrap_or_default();
            stub(
                imp,
                format!(
                    "costbench has no `{metric}` similarity grader (pass_threshold {})",
                    c["pass_threshold"]
                ),
            );
        }
        "python" => stub(
            imp,
            "python graders are code costbench does not run (its source travels with each task)"
                .into(),
        ),
        other => stub(imp, format!("costbench has no grader for `{other}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_templates_become_task_variables() {
        assert_eq!(
            item_templates("Q: {{item.question}} / {{ item.meta.lang }}"),
            "Q: {{ question }} / {{ meta.lang }}"
        );
        assert!(is_output(" {{ sample.output_text }}"));
        assert!(!is_output("{{item.x}}"));
    }

    #[test]
    fn few_shot_system_messages_become_examples() {
        let input = json!([
            {"role": "system", "content": "Answer tersely."},
            {"role": "system", "name": "example_user", "content": "2+2?"},
            {"role": "system", "name": "example_assistant", "content": "4"},
            {"role": "user", "content": "3+3?"}
        ]);
        let mut vars = Map::new();
        let p = sample_prompt(&input, &mut vars).unwrap();
        assert_eq!(p.system.as_deref(), Some("{{ system }}"));
        assert_eq!(p.examples.len(), 1);
        assert_eq!(vars["example_1_assistant"], "4");
        assert_eq!(vars["input"], "3+3?");
    }
}
