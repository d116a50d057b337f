//! `costbench import`: promptfoo configs and OpenAI Evals become suites that `costbench validate`
//! accepts and whose graders accept and reject what the source's assertions accept and reject,
//! checked by running the imported suites against a loopback server; everything not mapped is
//! in the report; bad input is exit 2 with its location.

mod common;

use std::path::{Path, PathBuf};

use common::{Out, Provider, Reply, ScriptServer, Seen, Workspace, chat_response, providers_yaml};
use serde_json::Value;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn import(ws: &Workspace, args: &[&str]) -> Out {
    let mut c = ws.cmd();
    c.arg("import").args(args);
    Out::of(c.output().expect("run costbench import"))
}

/// The suite files written into `dir`, sorted.
fn suites_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("out dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml")
                && p.file_name().is_some_and(|n| n != "providers.yaml")
        })
        .collect();
    v.sort();
    v
}

/// The suites of `dir` whose tasks file holds a task with an id starting with `id`.
fn suites_with_task(dir: &Path, id: &str) -> Vec<PathBuf> {
    suites_in(dir)
        .into_iter()
        .filter(|s| {
            let tasks = s.with_file_name(format!(
                "{}.tasks.jsonl",
                s.file_stem().unwrap().to_str().unwrap()
            ));
            std::fs::read_to_string(tasks)
                .unwrap_or_default()
                .lines()
                .any(|l| l.contains(&format!("\"id\":\"{id}")))
        })
        .collect()
}

fn validate(ws: &Workspace, suites: &[PathBuf], providers: Option<&Path>) -> Out {
    let mut c = ws.cmd();
    c.arg("validate").args(suites);
    if let Some(p) = providers {
        c.arg("--providers").arg(p);
    }
    Out::of(c.output().expect("run costbench validate"))
}

/// A server answering as provider `good` or `bad` (by the request's model), choosing the answer
/// by a substring of the last message.
fn answering(answers: &'static [(&'static str, &'static str, &'static str)]) -> ScriptServer {
    ScriptServer::start(move |seen: &Seen, _| {
        let last = seen.body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_string();
        let good = seen.body["model"] == "good";
        let answer = answers
            .iter()
            .find(|(key, _, _)| last.contains(key))
            .map(|(_, g, b)| if good { *g } else { *b })
            .unwrap_or("?");
        Reply::Json(200, chat_response(answer))
    })
}

fn good_and_bad(ws: &Workspace, server: &ScriptServer) -> PathBuf {
    let mut good = Provider::new("good", &server.base_url());
    good.model = "good".into();
    let mut bad = Provider::new("bad", &server.base_url());
    bad.model = "bad".into();
    ws.write("mock.providers.yaml", &providers_yaml(&[good, bad]))
}

/// (accepted, grader_errors, outcomes) of `provider`, summed over the rows of suites whose name
/// starts with `prefix`.
fn accepted(report: &Value, provider: &str, prefix: &str) -> (u64, u64, u64) {
    let mut t = (0, 0, 0);
    for r in report["rows"].as_array().expect("rows") {
        if r["provider"] == provider && r["suite"].as_str().unwrap().starts_with(prefix) {
            t.0 += r["accepted"].as_u64().unwrap();
            t.1 += r["grader_errors"].as_u64().unwrap();
            t.2 += r["outcomes"].as_u64().unwrap();
        }
    }
    t
}

#[test]
fn promptfoo_example_validates_and_its_graders_judge_like_its_assertions() {
    let ws = Workspace::new();
    let cfg = repo("suites/imported/promptfoo/promptfooconfig.yaml");
    let out = import(&ws, &["promptfoo", cfg.to_str().unwrap(), "--out", "pf"]);
    out.assert_code(0);
    let dir = ws.path("pf");
    let suites = suites_in(&dir);
    // Two `---` prompts and a chat prompt, each with the test shapes that apply to it.
    assert!(suites.len() >= 3, "{out}");
    validate(&ws, &suites, Some(&dir.join("providers.yaml"))).assert_code(0);

    // The CSV's special columns: a description in the id, metadata kept, expectations graded.
    let csv_suites = suites_with_task(&dir, "t5-multiplication");
    assert_eq!(csv_suites.len(), 3, "one per prompt");
    let tasks = std::fs::read_to_string(csv_suites[0].with_extension("tasks.jsonl")).unwrap();
    assert!(tasks.contains(r#""_metadata":{"team":"math"}"#), "{tasks}");

    // Suites with only mapped graders, on the first `---` prompt: run them.
    let mut run: Vec<PathBuf> = [
        "t1-capital-of-france",
        "t5-multiplication",
        "t6-primary-colour",
    ]
    .iter()
    .flat_map(|id| suites_with_task(&dir, id))
    .filter(|s| s.to_str().unwrap().contains("answer-1"))
    .collect();
    run.dedup();
    assert_eq!(run.len(), 3, "{run:?}");
    // Good answers pass every assertion; each bad one fails exactly one kind of assertion:
    // the defaultTest's not-icontains, not-contains, regex, contains-any.
    let server = answering(&[
        (
            "capital of France",
            "Paris is the capital of France.",
            "As an AI, I believe it is Paris.",
        ),
        ("capital of Italy", "Rome.", "Rome, not London."),
        ("7 times 6", "42", "42 or 43"),
        ("primary colour", "blue", "Green."),
    ]);
    let provs = good_and_bad(&ws, &server);
    let refs: Vec<&Path> = run.iter().map(PathBuf::as_path).collect();
    let report = ws.run(&refs, &provs, &[]).assert_code(0).json();
    assert_eq!(accepted(&report, "good", "support-answers"), (4, 0, 4));
    assert_eq!(accepted(&report, "bad", "support-answers"), (0, 0, 4));
}

#[test]
fn promptfoo_unmapped_constructs_are_in_the_report() {
    let ws = Workspace::new();
    let cfg = repo("suites/imported/promptfoo/promptfooconfig.yaml");
    let out = import(&ws, &["promptfoo", cfg.to_str().unwrap(), "--out", "pf"]);
    out.assert_code(0);
    let report = std::fs::read_to_string(ws.path("pf/IMPORT_REPORT.md")).unwrap();
    for (what, expected) in [
        ("bedrock provider", "`bedrock:anthropic.claude-3-haiku`"),
        ("latency assertion", "assertion `latency`"),
        ("javascript stub", "assertion `javascript`"),
        ("similar stub (CSV)", "assertion `similar`"),
    ] {
        assert!(
            report.contains(expected),
            "{what} missing from the report:\n{report}"
        );
        assert!(
            out.stdout.contains(expected),
            "{what} missing from stdout:\n{out}"
        );
    }
    // The javascript check is a stub that keeps the original code next to its task.
    let json_suite = &suites_with_task(&ws.path("pf"), "t3-order-as-json")[0];
    let text = std::fs::read_to_string(json_suite).unwrap();
    assert!(text.contains("graders/needs-porting.sh"), "{text}");
    let tasks = std::fs::read_to_string(json_suite.with_extension("tasks.jsonl")).unwrap();
    assert!(
        tasks.contains("JSON.parse(output).status === 'shipped'"),
        "{tasks}"
    );
    // The test's threshold and weights: `accept: score >= 0.5` and a weight where this costbench
    // has composition, else a note saying costbench is stricter here.
    let refusal =
        std::fs::read_to_string(&suites_with_task(&ws.path("pf"), "t4-refund-refusal")[0]).unwrap();
    if refusal.lines().any(|l| l == "accept: score >= 0.5") {
        assert!(refusal.contains(r#""weight":2.0"#), "{refusal}");
    } else {
        assert!(
            report.contains("threshold 0.5 (and assertion weights)"),
            "{report}"
        );
        assert!(!refusal.contains("\"weight\""), "{refusal}");
        assert!(refusal.contains("(weight 2 in the source)"), "{refusal}");
    }
    // The llm-rubric is a judge with the config's grading provider, live or commented.
    assert!(
        refusal.contains(
            r#""type":"judge","provider":"openai-gpt-4-1-mini","rubric":"Declines politely"#
        ),
        "{refusal}"
    );
}

#[test]
fn promptfoo_stub_is_a_grader_error_never_a_pass() {
    let ws = Workspace::new();
    ws.write(
        "pf/promptfooconfig.yaml",
        "prompts: ['Q: {{q}}']\ntests:\n  - vars: {q: one}\n    assert:\n      - type: javascript\n        value: output.length > 0\n",
    );
    import(
        &ws,
        &["promptfoo", "pf/promptfooconfig.yaml", "--out", "out"],
    )
    .assert_code(0);
    let suites = suites_in(&ws.path("out"));
    let server = answering(&[("Q: one", "anything", "anything")]);
    let provs = good_and_bad(&ws, &server);
    let refs: Vec<&Path> = suites.iter().map(PathBuf::as_path).collect();
    let report = ws.run(&refs, &provs, &[]).assert_code(0).json();
    assert_eq!(accepted(&report, "good", ""), (0, 1, 1));
}

#[test]
fn openai_evals_registry_graders_match_match_includes_and_fuzzy_match() {
    let ws = Workspace::new();
    let file = repo("suites/imported/openai-evals/registry/evals/capitals.yaml");
    let out = import(
        &ws,
        &["openai-evals", file.to_str().unwrap(), "--out", "ev"],
    );
    out.assert_code(0);
    let dir = ws.path("ev");
    let suites = suites_in(&dir);
    validate(&ws, &suites, Some(&dir.join("providers.yaml"))).assert_code(0);
    let report_md = std::fs::read_to_string(dir.join("IMPORT_REPORT.md")).unwrap();
    assert!(
        report_md.contains("model-graded spec `fact`"),
        "{report_md}"
    );

    let run: Vec<PathBuf> = suites
        .into_iter()
        .filter(|s| !s.to_str().unwrap().contains("graded"))
        .collect();
    // Match: the output starts with an ideal answer (case-sensitive); Includes (ignore_case):
    // contains one; FuzzyMatch: normalised, either contains the other.
    let server = answering(&[
        ("capital of France", "Paris", "The capital is paris."),
        ("capital of Italy", "Roma", "Milan"),
        ("capital of Japan", "Tokyo", "Kyoto"),
        ("capital of Canada", "Ottawa", "ottawa, of course"),
    ]);
    let provs = good_and_bad(&ws, &server);
    let refs: Vec<&Path> = run.iter().map(PathBuf::as_path).collect();
    let report = ws.run(&refs, &provs, &[]).assert_code(0).json();
    for eval in ["capitals-match", "capitals-includes", "capitals-fuzzy"] {
        assert_eq!(accepted(&report, "good", eval), (4, 0, 4), "{eval}");
    }
    assert_eq!(accepted(&report, "bad", "capitals-match"), (0, 0, 4));
    assert_eq!(accepted(&report, "bad", "capitals-includes"), (2, 0, 4));
    assert_eq!(accepted(&report, "bad", "capitals-fuzzy"), (2, 0, 4));
}

#[test]
fn openai_hosted_eval_string_checks_and_templates_round_trip() {
    let ws = Workspace::new();
    // The worked example: validates, reports what has no grader.
    let h = |f: &str| repo(&format!("suites/imported/openai-evals/hosted/{f}"));
    let out = import(
        &ws,
        &[
            "openai-evals",
            h("eval.json").to_str().unwrap(),
            "--data",
            h("items.jsonl").to_str().unwrap(),
            "--run",
            h("run.json").to_str().unwrap(),
            "--out",
            "ex",
        ],
    );
    out.assert_code(0);
    validate(
        &ws,
        &suites_in(&ws.path("ex")),
        Some(&ws.path("ex/providers.yaml")),
    )
    .assert_code(0);
    assert!(
        out.stdout.contains("testing criterion `text_similarity`"),
        "{out}"
    );
    let suite = std::fs::read_to_string(ws.path("ex/ticket-triage.yaml")).unwrap();
    assert!(suite.contains(r#"user: "Ticket: {{ ticket }}""#), "{suite}");
    assert!(
        suite.contains("Pass only if the label is one of: terse"),
        "{suite}"
    );

    // A definition with string checks only, its items inline in the run: graded like OpenAI's.
    ws.write(
        "eval.json",
        r#"{"name": "Triage", "data_source_config": {"type": "custom", "item_schema": {}},
            "testing_criteria": [
              {"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}", "reference": "{{item.queue}}", "operation": "eq"},
              {"type": "string_check", "name": "not refund", "input": "{{sample.output_text}}", "reference": "refund", "operation": "ne"},
              {"type": "string_check", "name": "names it", "input": "{{sample.output_text}}", "reference": "{{item.queue}}", "operation": "ilike"}]}"#,
    );
    ws.write(
        "run.json",
        r#"{"data_source": {"type": "completions", "model": "gpt-4.1-mini",
            "input_messages": {"type": "template", "template": [
              {"type": "message", "role": "developer", "content": {"type": "input_text", "text": "Queue only."}},
              {"role": "user", "content": "Ticket: {{item.ticket}}"}]},
            "source": {"type": "file_content", "content": [
              {"item": {"ticket": "charged twice", "queue": "billing"}},
              {"item": {"ticket": "app crashes", "queue": "bug"}}]}}}"#,
    );
    import(
        &ws,
        &[
            "openai-evals",
            "eval.json",
            "--run",
            "run.json",
            "--out",
            "h",
        ],
    )
    .assert_code(0);
    let suites = suites_in(&ws.path("h"));
    assert_eq!(suites.len(), 1);
    // eq is exact: "Billing" fails it; "bug report" fails eq but passes ilike.
    let server = answering(&[
        ("charged twice", "billing", "Billing"),
        ("app crashes", "bug", "bug report"),
    ]);
    let provs = good_and_bad(&ws, &server);
    let report = ws
        .run(&[suites[0].as_path()], &provs, &[])
        .assert_code(0)
        .json();
    assert_eq!(accepted(&report, "good", "triage"), (2, 0, 2));
    assert_eq!(accepted(&report, "bad", "triage"), (0, 0, 2));
}

#[test]
fn a_missing_config_is_a_clear_error_with_exit_2() {
    let ws = Workspace::new();
    let out = import(&ws, &["promptfoo", "nope.yaml", "--out", "out"]);
    out.assert_code(2);
    assert!(out.stderr.contains("nope.yaml: cannot read file"), "{out}");
}

#[test]
fn a_yaml_error_names_its_line_and_column() {
    let ws = Workspace::new();
    ws.write(
        "bad.yaml",
        "prompts:\n  - 'Q: {{q}}'\ntests: [\n  {vars: {q: 1}\n",
    );
    let out = import(&ws, &["promptfoo", "bad.yaml", "--out", "out"]);
    out.assert_code(2);
    assert!(
        regex::Regex::new(r"bad\.yaml:\d+:\d+: invalid YAML")
            .unwrap()
            .is_match(&out.stderr),
        "{out}"
    );
    assert!(!ws.path("out").exists(), "nothing is written for bad input");
}

#[test]
fn a_missing_tests_file_names_where_the_config_refers_to_it() {
    let ws = Workspace::new();
    ws.write(
        "pf.yaml",
        "prompts: ['Q: {{q}}']\ntests: file://missing.csv\n",
    );
    let out = import(&ws, &["promptfoo", "pf.yaml", "--out", "out"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("missing.csv: cannot read file"),
        "{out}"
    );
    assert!(out.stderr.contains("named at pf.yaml:2:1: tests"), "{out}");
}

#[test]
fn a_hosted_eval_without_items_says_how_to_give_them() {
    let ws = Workspace::new();
    ws.write(
        "e.json",
        r#"{"data_source_config": {"type": "custom"}, "testing_criteria": []}"#,
    );
    let out = import(&ws, &["openai-evals", "e.json", "--out", "out"]);
    out.assert_code(2);
    assert!(out.stderr.contains("--data ITEMS.jsonl"), "{out}");
    ws.write("broken.json", "{\"testing_criteria\": [\n  oops\n]}");
    let out = import(&ws, &["openai-evals", "broken.json", "--out", "out"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("broken.json:2:3: invalid JSON"),
        "{out}"
    );
}

#[test]
fn promptfoo_tests_from_yaml_and_jsonl_files_list_variables_and_file_variables() {
    let ws = Workspace::new();
    ws.write("pf/context.txt", "Opening hours: 9 to 5.");
    ws.write(
        "pf/tests.yaml",
        "- vars: {lang: [French, German], text: hello}\n  assert: [{type: icontains, value: '{{text}}'}]\n",
    );
    ws.write(
        "pf/more.jsonl",
        "{\"vars\": {\"lang\": \"Dutch\", \"text\": \"bye\"}, \"assert\": [{\"type\": \"icontains\", \"value\": \"bye\"}]}\n",
    );
    ws.write(
        "pf/promptfooconfig.yaml",
        "prompts: ['{{context}} Say {{text}} in {{lang}}.']\n\
         defaultTest:\n  vars: {context: file://context.txt}\n\
         tests: [file://tests.yaml, file://more.jsonl]\n",
    );
    import(
        &ws,
        &["promptfoo", "pf/promptfooconfig.yaml", "--out", "out"],
    )
    .assert_code(0);
    let suites = suites_in(&ws.path("out"));
    assert_eq!(suites.len(), 1, "one prompt, one assertion shape");
    let out = validate(&ws, &suites, None);
    out.assert_code(0);
    assert!(
        out.stdout.contains(": 3 tasks"),
        "two from the list variable, one from JSONL:\n{out}"
    );
    let tasks = std::fs::read_to_string(suites[0].with_extension("tasks.jsonl")).unwrap();
    assert!(tasks.contains("Opening hours: 9 to 5."), "{tasks}");
    // `{{text}}` was rendered with each test's variables, as promptfoo renders assertion values.
    assert!(
        tasks.contains(r#""_a1":"hello""#) && tasks.contains(r#""_a1":"bye""#),
        "{tasks}"
    );
}
