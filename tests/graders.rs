//! The local grader kinds (`json_schema`, `fields`, `label`, `command`, `code`) through
//! `costbench run` against a loopback provider: verdicts, scores and grader errors end up in
//! the store and the report; a bad schema or program fails at load with its location.

mod common;

use std::path::Path;

use common::{
    Provider, Reply, ScriptServer, Workspace, chat_response, example_grader, has_python,
    providers_yaml, row,
};
use serde_json::Value;

/// The answer the loopback model gives to each task id.
fn answer(task: &str) -> &'static str {
    match task {
        "e1" => r#"{"name": "Ada", "total": 12.5, "date": "2026-01-05"}"#,
        "e2" => r#"{"name": "Ada", "total": "12", "date": "05/01/2026"}"#,
        "c1" => "Billing",
        "c2" => "refund",
        "m1" => "  Paris ",
        "m2" => "Lyon",
        "k1" => "```python\ndef add(a, b):\n    return a + b\n```",
        "k2" => "def add(a, b):\n    return a * b\n",
        _ => "",
    }
}

/// A suite `name` with `graders` (YAML list items) over tasks `(id, extra vars)`.
fn suite(name: &str, graders: &str, tasks: &[(&str, &str)]) -> String {
    let mut s = format!(
        "suite: {name}\ndescription: graders test\nworkload: {name}\nrejection_cost_usd: 0\n\
         prompt: {{user: \"task {{{{ q }}}}\"}}\nparams: {{max_tokens: 64}}\n\
         graders:\n{graders}tasks:\n"
    );
    for (id, vars) in tasks {
        s.push_str(&format!("  - {{id: {id}, vars: {{q: {id}{vars}}}}}\n"));
    }
    s
}

const ADD_TEST: &str = r#"def check(candidate):\n    assert candidate(2, 3) == 5\n"#;

/// `(task, status, verdicts)` of every stored grade of `suite`, by task.
fn grades(db: &Path, suite: &str) -> Vec<(String, String, Value)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut st = conn
        .prepare("SELECT task_id, status, verdicts FROM grades WHERE suite = ?1 ORDER BY task_id")
        .unwrap();
    st.query_map([suite], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })
    .unwrap()
    .map(|r| {
        let (t, s, v) = r.unwrap();
        (t, s, serde_json::from_str(&v).unwrap())
    })
    .collect()
}

#[test]
fn local_grader_kinds_grade_a_real_run() {
    if !has_python() {
        eprintln!("python3 not found: the command and code graders need it; skipped");
        return;
    }
    let server = ScriptServer::start(|seen, _| {
        let task = seen.task.clone().unwrap_or_default();
        Reply::Json(200, chat_response(answer(&task)))
    });
    let ws = Workspace::new();
    ws.write(
        "schemas/invoice.json",
        r#"{"type": "object", "required": ["name", "total"],
            "properties": {"total": {"type": "number"}}}"#,
    );
    let extract = ws.write(
        "extract.yaml",
        &suite(
            "extract",
            "  - {type: json_schema, schema_file: schemas/invoice.json}\n  \
             - type: fields\n    min_f1: 0.6\n    fields:\n      /name: {value: '{{ name }}', normalize: [trim, lowercase]}\n      \
             /total: {value: '{{ total }}', tolerance: 0.01}\n      \
             /date: {value: '{{ date }}', date: true}\n",
            &[
                ("e1", ", name: ada, total: '12.50', date: '2026-01-05'"),
                ("e2", ", name: Ada, total: '12.50', date: '2026-01-05'"),
            ],
        ),
    );
    let classify = ws.write(
        "classify.yaml",
        &suite(
            "classify",
            "  - {type: label, labels: [billing, bug, account], expected: '{{ label }}'}\n",
            &[("c1", ", label: billing"), ("c2", ", label: billing")],
        ),
    );
    let cmd = ws.write(
        "cmd.yaml",
        &suite(
            "cmd",
            &format!(
                "  - {{type: command, program: '{}', expected_var: city}}\n",
                example_grader("exact_answer.py")
            ),
            &[("m1", ", city: paris"), ("m2", ", city: paris")],
        ),
    );
    // A grader program that always crashes: a grader error, never a pass. Regression: it
    // exits without reading its stdin, and the write to it raised SIGPIPE and killed costbench.
    ws.write("broken.sh", "#!/bin/sh\necho 'it broke' >&2\nexit 1\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(ws.path("broken.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    let broken = ws.write(
        "broken.yaml",
        &suite(
            "broken",
            "  - {type: command, program: broken.sh}\n",
            &[("m1", "")],
        ),
    );
    let code = ws.write(
        "code.yaml",
        &suite(
            "code",
            "  - {type: code, timeout_s: 5}\n",
            &[
                ("k1", &format!(", entry_point: add, test: \"{ADD_TEST}\"")),
                ("k2", &format!(", entry_point: add, test: \"{ADD_TEST}\"")),
            ],
        ),
    );
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url())]),
    );
    let out = ws.run(&[&extract, &classify, &cmd, &broken, &code], &provs, &[]);
    let report = out.json();
    let rows = report["rows"].as_array().unwrap();
    let by_suite = |s: &str| {
        rows.iter()
            .find(|r| r["suite"] == s)
            .unwrap_or_else(|| panic!("no row for {s}: {report:#}"))
    };
    for (s, accepted, errors) in [
        ("extract", 1, 0),
        ("classify", 1, 0),
        ("cmd", 1, 0),
        ("broken", 0, 1),
        ("code", 1, 0),
    ] {
        let r = by_suite(s);
        assert_eq!(r["accepted"], accepted, "{s}: {r:#}");
        assert_eq!(r["grader_errors"], errors, "{s}: {r:#}");
    }
    assert_eq!(row(&report, "p")["provider"], "p");

    let db = ws.db();
    let g = grades(&db, "extract");
    assert_eq!(g[0].1, "accepted", "{g:?}");
    assert_eq!(g[0].2[1]["score"], 1.0);
    // e2: the schema rejects "12" (a string), and the fields score 1 of 3 right.
    assert_eq!(g[1].1, "rejected");
    let schema_reason = g[1].2[0]["reason"].as_str().unwrap();
    assert!(schema_reason.starts_with("at /total:"), "{schema_reason}");
    let fields_reason = g[1].2[1]["reason"].as_str().unwrap();
    assert!(
        fields_reason.starts_with("field F1 0.333 (precision 0.333 = 1/3, recall 0.333 = 1/3)"),
        "{fields_reason}"
    );

    let g = grades(&db, "classify");
    assert_eq!(g[1].1, "rejected");
    assert!(
        g[1].2[0]["reason"]
            .as_str()
            .unwrap()
            .contains("is not one of the labels"),
        "{g:?}"
    );

    let g = grades(&db, "cmd");
    assert_eq!(
        (g[0].1.as_str(), g[1].1.as_str()),
        ("accepted", "rejected"),
        "{g:?}"
    );
    assert_eq!(g[1].2[0]["reason"], "expected 'paris', got 'lyon'");

    let g = grades(&db, "broken");
    assert_eq!(g[0].1, "error", "{g:?}");
    assert!(
        g[0].2[0]["error"]
            .as_str()
            .unwrap()
            .contains("failed with exit code 1: it broke"),
        "{g:?}"
    );

    let g = grades(&db, "code");
    assert_eq!(g[1].1, "rejected");
    assert!(
        g[1].2[0]["reason"]
            .as_str()
            .unwrap()
            .contains("AssertionError"),
        "{g:?}"
    );
}

#[test]
fn unusable_grader_configs_fail_at_load_with_their_location() {
    let ws = Workspace::new();
    ws.write("plain.txt", "not a program");
    let s = ws.write(
        "bad.yaml",
        &suite(
            "bad",
            "  - {type: json_schema, schema: {type: objekt}}\n  \
             - {type: command, program: plain.txt}\n  \
             - {type: label, labels: [a, b], expected: '{{ label }}'}\n",
            &[("t1", ", label: c")],
        ),
    );
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", "http://127.0.0.1:9")]),
    );
    let out = ws.run(&[&s], &provs, &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    for want in [
        "bad.yaml:8:5",
        "graders[0]",
        "json_schema grader, field `schema`: invalid JSON Schema",
        "graders[1]",
        "is not executable",
        "expected label \"c\" is not in labels [a, b]",
    ] {
        assert!(out.stderr.contains(want), "{want} in:\n{}", out.stderr);
    }
}

#[test]
fn coding_suite_replays_offline_from_its_cassette() {
    if !has_python() {
        eprintln!("python3 not found: skipped");
        return;
    }
    let ws = Workspace::new();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = ws.run(
        &[&repo.join("suites/coding.yaml")],
        &repo.join("suites/quickstart.providers.yaml"),
        &[
            "--cache",
            "replay",
            "--cassette",
            repo.join("suites/cassettes/coding.jsonl").to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = out.json();
    // The mock's answers: smollm2 gets run_length and top_word wrong; gemma3 crashes on a
    // negative number, writes a syntax error and keeps duplicates.
    for (provider, accepted) in [("smollm2-135m", 4), ("gemma3-270m", 3)] {
        let r = row(&report, provider);
        assert_eq!(r["accepted"], accepted, "{r:#}");
        assert_eq!(r["grader_errors"], 0, "{r:#}");
        assert_eq!(r["calls"], 6, "{r:#}");
    }
}
