//! Invalid suite and providers files: every problem is reported at once, each with
//! `file:line:col: dotted.path: message`, and the command exits 2 without calling anything.
//!
//! Commands run inside the test's temp dir with relative file names, so messages are stable.

mod common;

use common::*;
use indoc::indoc;
use test_case::test_case;

/// `costbench validate <suite.yaml>` in a workspace holding `suite` and `extra` files.
fn validate_suite(suite: &str, extra: &[(&str, &str)]) -> Out {
    let ws = Workspace::new();
    ws.write("suite.yaml", suite);
    for (name, content) in extra {
        ws.write(name, content);
    }
    Out::of(ws.cmd().args(["validate", "suite.yaml"]).output().unwrap())
}

fn validate_providers(providers: &str) -> Out {
    let ws = Workspace::new();
    ws.write("providers.yaml", providers);
    Out::of(
        ws.cmd()
            .args(["validate", "--providers", "providers.yaml"])
            .output()
            .unwrap(),
    )
}

/// Asserts exit code 2, `N problem(s) in config`, and that every expected text is on stderr.
#[track_caller]
fn assert_problems(out: &Out, count: usize, expected: &[&str]) {
    out.assert_code(2);
    let header = format!(
        "error: {count} problem{} in config",
        if count == 1 { "" } else { "s" }
    );
    assert!(out.stderr.contains(&header), "expected `{header}`:\n{out}");
    for e in expected {
        assert!(out.stderr.contains(e), "expected `{e}` on stderr:\n{out}");
    }
    assert!(out.stdout.is_empty(), "nothing is validated ok:\n{out}");
}

#[test_case(indoc! {r#"
        suite: s
        prompt:
          user: "task {{ q }}"
        graders:
          - {type: contains, value: "{{ answer }}"}
        tasks:
          - {id: t1, vars: {q: t1, answer: a}}
        colour: blue
    "#}, &[], "suite.yaml:8:1: colour: unknown key" ; "unknown top-level key")]
#[test_case(indoc! {r#"
        suite: s
        prompt:
          user: "task {{ q }}"
        graders:
          - {type: contains, value: "{{ answer }}"}
        tasks:
          - {id: t1, vars: {q: t1, answer: a}, weight: 2}
    "#}, &[], "suite.yaml:7:40: tasks[0].weight: unknown key" ; "unknown key inside a task")]
#[test_case(indoc! {r#"
        suite: s
        prompt:
          user: "task {{ q }}"
          assistant: hi
        graders:
          - {type: contains, value: "{{ answer }}"}
        tasks:
          - {id: t1, vars: {q: t1, answer: a}}
    "#}, &[], "suite.yaml:4:3: prompt.assistant: unknown key" ; "unknown key inside the prompt")]
#[test_case(indoc! {r#"
        suite: s
        repeats: lots
        prompt:
          user: "task {{ q }}"
        graders:
          - {type: contains, value: "{{ answer }}"}
        tasks:
          - {id: t1, vars: {q: t1, answer: a}}
    "#}, &[], r#"suite.yaml:2:1: repeats: invalid type: string "lots", expected u32"# ; "wrong type")]
#[test_case(indoc! {r#"
        suite: s
        prompt:
          user: "task {{ q }}"
        graders:
          - {type: contains, value: "{{ answer }}"}
        tasks:
          - {id: t1, vars: {q: t1, answer: a}}
          - {id: t1, vars: {q: t2, answer: b}}
    "#}, &[], "suite.yaml:8:6: tasks[1].id: duplicate task id `t1`" ; "duplicate task id")]
#[test_case(indoc! {r#"
        suite: s
        prompt:
          user: "task {{ q }}"
        graders:
          - {type: contains, value: "{{ answer }}"}
        tasks:
          - {id: t1, vars: {q: t1, answer: a}}
          - {id: t2, vars: {q: t2}}
    "#}, &[], "suite.yaml:8:14: tasks[1].vars: task `t2` lacks variable `answer` used by graders[0]"
    ; "template variable a task lacks")]
#[test_case(indoc! {r#"
        suite: s
        prompt:
          system: "You grade {{ topic }}."
          user: "task {{ q }}"
        graders:
          - {type: contains, value: "x"}
        tasks:
          - {id: t1, vars: {q: t1}}
    "#}, &[], "suite.yaml:8:14: tasks[0].vars: task `t1` lacks variable `topic` used by prompt.system"
    ; "prompt variable a task lacks")]
#[test_case(indoc! {r#"
        suite: s
        prompt:
          user: "task {{ q }}"
        graders:
          - {type: contains, value: "{{ answer }}"}
        tasks_file: missing.jsonl
    "#}, &[], "suite.yaml:6:1: tasks_file: cannot read tasks file missing.jsonl" ; "unreadable tasks file")]
#[test_case(indoc! {r#"
        suite: s
        prompt:
          user: "task {{ q }}"
        graders:
          - {type: contains, value: "{{ answer }}"}
        tasks_file: tasks.jsonl
    "#}, &[("tasks.jsonl", concat!(
        r#"{"id": "t1", "vars": {"q": "t1", "answer": "a"}}"#, "\n",
        r#"{"id": "t2", "vars": {"q": "t2", "answer": "b"}"#, "\n",
        r#"{"id": "t3", "vars": {"q": "t3", "answer": "c"}}"#, "\n"))],
    "tasks.jsonl:2:47: invalid task: EOF while parsing an object" ; "malformed JSONL line")]
#[test_case(indoc! {r#"
        suite: s
        prompt:
          user: "task {{ q }}"
        graders:
          - {type: contains, value: "{{ answer }}"}
        tasks_file: tasks.jsonl
    "#}, &[("tasks.jsonl", concat!(
        r#"{"id": "t1", "vars": {"q": "t1", "answer": "a"}}"#, "\n",
        "\n",
        r#"{"id": "t2", "vars": {"q": "t2"}}"#, "\n"))],
    "tasks.jsonl:3:1: task `t2` lacks variable `answer` used by graders[0]" ; "tasks file line lacking a variable")]
#[test_case(indoc! {r#"
        suite: s
        prompt:
          user: "task {{ q }}"
        graders:
          - {type: contains, value: "x"}
        tasks_file: tasks.csv
    "#}, &[("tasks.csv", "name,q\nx,y\n")], "tasks.csv:1:1: CSV header has no `id` column" ; "CSV without id column")]
#[test_case(indoc! {r#"
        suite: s
        prompt:
          user: "task {{ q }}"
        graders:
          - {type: contains, value: "{{ answer }}"}
          - {type: fuzzy, value: x}
        tasks:
          - {id: t1, vars: {q: t1, answer: a}}
    "#}, &[], "suite.yaml:6:6: graders[1].type: unknown variant `fuzzy`, expected one of `equals`, `contains`, `contains-any`, `contains-all`, `regex`, `number`, `json`"
    ; "unknown grader type")]
#[test_case(indoc! {r#"
        suite: s
        prompt:
          user: "task {{ q }}"
        graders:
          - {type: regex, pattern: "([a-z"}
        tasks:
          - {id: t1, vars: {q: t1}}
    "#}, &[], "suite.yaml:5:5: graders[0]: regex grader, field `pattern`: regex parse error" ; "bad regex")]
#[test_case(indoc! {r#"
        suite: s
        prompt:
          user: "task {{ q "
        graders:
          - {type: contains, value: "a"}
        tasks:
          - {id: t1, vars: {q: t1}}
    "#}, &[], "suite.yaml:3:3: prompt.user: invalid template: syntax error: unexpected end of input"
    ; "invalid template")]
#[test_case(indoc! {r#"
        suite: s
        prompt:
          user: "task {{ q }}"
        graders:
          - {type: contains, value: "{{ answer }}"}
        tasks: []
    "#}, &[], "suite.yaml:6:1: tasks: no tasks: give `tasks` or `tasks_file`" ; "no tasks")]
#[test_case(indoc! {r#"
        suite: s
        prompt:
          user: "task"
        graders: []
        tasks:
          - {id: t1}
    "#}, &[], "suite.yaml:4:1: graders: no graders: nothing could be accepted" ; "no graders")]
#[test_case(indoc! {r#"
        suite: s
        quality_threshold: 1.5
        prompt:
          user: "task"
        graders:
          - {type: contains, value: "x"}
        tasks:
          - {id: t1}
    "#}, &[], "suite.yaml:2:1: quality_threshold: must be between 0 and 1" ; "threshold out of range")]
#[test_case(indoc! {r#"
        suite: s
        rejection_cost_usd: -1
        prompt:
          user: "task"
        graders:
          - {type: contains, value: "x"}
        tasks:
          - {id: t1}
    "#}, &[], "suite.yaml:2:1: rejection_cost_usd: `-1` is not a plain non-negative decimal number"
    ; "negative rejection cost")]
fn invalid_suite_is_one_pinned_problem(suite: &str, extra: &[(&str, &str)], expected: &str) {
    let out = validate_suite(suite, extra);
    assert_problems(&out, 1, &[expected]);
    assert!(
        out.stderr
            .contains("hint: the README documents every suite and provider field"),
        "{out}"
    );
}

#[test]
fn yaml_syntax_error_names_file_and_position() {
    let out = validate_suite(
        indoc! {r#"
            suite: s
            prompt:
              user: "task {{ q }}"
               bad: indent
            graders: [
        "#},
        &[],
    );
    assert_problems(
        &out,
        1,
        &["suite.yaml:4:4: invalid YAML:", "did not find expected key"],
    );
}

#[test]
// Regression: YAML syntax errors once lacked the file:line:col prefix every other problem has.
fn yaml_syntax_error_is_located_like_other_problems() {
    let out = validate_suite("suite: s\nprompt:\n  user: x\n   bad: indent\n", &[]);
    assert_problems(
        &out,
        1,
        &["suite.yaml:4:7: invalid YAML: mapping values are not allowed"],
    );
}

#[test]
fn several_problems_in_one_file_are_all_reported_at_once() {
    let ws = Workspace::new();
    ws.write(
        "suite.yaml",
        indoc! {r#"
            suite: s
            repeats: lots
            colour: blue
            prompt:
              user: "task {{ q }}"
            graders:
              - {type: regex, pattern: "("}
            tasks:
              - {id: t1, vars: {q: t1, answer: a}}
              - {id: t1, vars: {answer: a}}
        "#},
    );
    let out = Out::of(ws.cmd().args(["validate", "suite.yaml"]).output().unwrap());
    assert_problems(
        &out,
        5,
        &[
            r#"suite.yaml:2:1: repeats: invalid type: string "lots", expected u32"#,
            "suite.yaml:3:1: colour: unknown key",
            "suite.yaml:7:5: graders[0]: regex grader, field `pattern`: regex parse error",
            "suite.yaml:10:6: tasks[1].id: duplicate task id `t1`",
            "suite.yaml:10:14: tasks[1].vars: task `t1` lacks variable `q` used by prompt.user",
        ],
    );
    let tmp = ws.dir.path().display().to_string();
    insta::with_settings!({filters => vec![(tmp.as_str(), "[TMP]")]}, {
        insta::assert_snapshot!("several_problems_stderr", out.stderr);
    });
}

#[test]
fn problems_of_every_file_are_reported_together_and_run_calls_nothing() {
    let server = ScriptServer::start(answer_with(&[]));
    let ws = Workspace::new();
    ws.write(
        "a.yaml",
        indoc! {r#"
            suite: same
            prompt: {user: "task {{ q }}"}
            graders: [{type: contains, value: x}]
            tasks: [{id: t1, vars: {q: t1}}]
        "#},
    );
    ws.write(
        "b.yaml",
        indoc! {r#"
            suite: same
            prompt: {user: "task {{ q }}"}
            graders: [{type: contains, value: x}]
            tasks: [{id: t1, vars: {q: t1}}]
        "#},
    );
    ws.write(
        "c.yaml",
        indoc! {r#"
            suite: other
            prompt: {user: "task {{ q }}"}
            graders: [{type: contains, value: x}]
            tasks: [{id: t1, vars: {}}]
        "#},
    );
    ws.write(
        "providers.yaml",
        &format!(
            "providers:\n  - {{id: p, protocol: openai, base_url: \"{}\", model: m, colour: red}}\n",
            server.base_url()
        ),
    );
    let out = Out::of(
        ws.cmd()
            .args([
                "run",
                "a.yaml",
                "b.yaml",
                "c.yaml",
                "--providers",
                "providers.yaml",
            ])
            .output()
            .unwrap(),
    );
    assert_problems(
        &out,
        3,
        &[
            "c.yaml:4:18: tasks[0].vars: task `t1` lacks variable `q` used by prompt.user",
            "b.yaml: suite: suite name `same` is also used by a.yaml",
            "providers.yaml:2:80: providers[0].colour: unknown key",
        ],
    );
    assert_eq!(server.requests().len(), 0);
    assert!(!ws.db().exists(), "a rejected run creates no database");
}

#[test_case(indoc! {r#"
        providers:
          - {id: a, protocol: openai, base_url: "http://127.0.0.1:1/v1", model: m}
          - {id: a, protocol: openai, base_url: "http://127.0.0.1:1/v1", model: m2}
    "#}, "providers.yaml:3:6: providers[1].id: duplicate provider id `a`" ; "duplicate id")]
#[test_case(indoc! {r#"
        providers:
          - {id: a, protocol: grpc, base_url: "http://127.0.0.1:1/v1", model: m}
    "#}, "providers.yaml:2:13: providers[0].protocol: unknown protocol `grpc`; this build speaks: openai, openai-responses, anthropic, gemini"
    ; "unknown protocol")]
#[test_case(indoc! {r#"
        providers:
          - id: a
            protocol: openai
            base_url: "http://127.0.0.1:1/v1"
    "#}, "providers.yaml:2:5: providers[0]: missing field `model`" ; "missing model")]
#[test_case(indoc! {r#"
        providers:
          - id: a
            protocol: openai
            base_url: "http://127.0.0.1:1/v1"
            model: m
            api_key: sk-do-not-put-keys-here
    "#}, "providers.yaml:6:5: providers[0].api_key: unknown key" ; "a key in the file is an unknown key")]
#[test_case(indoc! {r#"
        providers:
          - {id: a, protocol: openai, base_url: "http://127.0.0.1:1/v1", model: m, price: {input: 0.0000000001, output: 1}}
    "#}, "providers.yaml:2:84: providers[0].price.input: `0.0000000001` has more than 9 decimals"
    ; "price with too many decimals")]
#[test_case(indoc! {r#"
        providers:
          - {id: a, protocol: openai, base_url: "http://127.0.0.1:1/v1", model: m, price: {input: 1, output: 2, cached: 0.5}}
    "#}, "providers.yaml:2:105: providers[0].price.cached: unknown key" ; "misspelt price class")]
#[test_case("providers: []\n", "providers.yaml:1:1: providers: no providers listed" ; "no providers")]
fn invalid_providers_is_one_pinned_problem(providers: &str, expected: &str) {
    let out = validate_providers(providers);
    assert_problems(&out, 1, &[expected]);
}

#[test]
fn several_provider_problems_are_reported_at_once() {
    let out = validate_providers(indoc! {r#"
        providers:
          - id: a
            protocol: openai
            base_url: "not a url"
            model: m
            max_concurrency: 0
            timeout_s: 0
            retry: {max_retries: 2, base_delay: 10}
          - id: b
            protocol: openai
            base_url: "http://127.0.0.1:1/v1"
            model: m
            max_concurrency: lots
    "#});
    assert_problems(
        &out,
        5,
        &[
            "providers.yaml:8:29: providers[0].retry.base_delay: unknown key",
            "providers.yaml:4:5: providers[0].base_url: `not a url` is not a URL",
            "providers.yaml:6:5: providers[0].max_concurrency: must be at least 1",
            "providers.yaml:7:5: providers[0].timeout_s: must be a positive number of seconds",
            r#"providers.yaml:13:5: providers[1].max_concurrency: invalid type: string "lots", expected usize"#,
        ],
    );
}

#[test]
fn valid_files_validate_and_tasks_file_is_relative_to_the_suite() {
    let ws = Workspace::new();
    ws.write(
        "suites/s.yaml",
        indoc! {r#"
            suite: s
            prompt: {user: "task {{ q }}"}
            graders: [{type: contains, value: "{{ answer }}"}]
            repeats: 3
            tasks_file: data/tasks.jsonl
        "#},
    );
    ws.write(
        "suites/data/tasks.jsonl",
        "{\"id\": 1, \"vars\": {\"q\": \"1\", \"answer\": \"a\"}}\n{\"id\": \"two\", \"vars\": {\"q\": \"2\", \"answer\": \"b\"}}\n",
    );
    ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", "http://127.0.0.1:9/v1").price(None)]),
    );
    // Run from the temp dir: the tasks file is found next to the suite, not in the cwd.
    let out = Out::of(
        ws.cmd()
            .args(["validate", "suites/s.yaml", "--providers", "providers.yaml"])
            .output()
            .unwrap(),
    );
    out.assert_code(0);
    assert!(
        out.stdout.contains(
            "ok  suite s (suites/s.yaml): 2 tasks × 3 repeats, 1 graders, workload default"
        ),
        "{out}"
    );
    assert!(
        out.stdout.contains(
            "ok  provider p (openai test-model): no key needed; no price: costs will be unknown"
        ),
        "{out}"
    );
}

#[test_case(&["validate"], "give suite files and/or --providers" ; "validate without files")]
#[test_case(&["report"], "no database at" ; "report without a database")]
#[test_case(&["runs"], "no database at" ; "runs without a database")]
#[test_case(&["grade"], "no database at" ; "grade without a database")]
fn usage_errors_exit_2(args: &[&str], message: &str) {
    let ws = Workspace::new();
    let out = Out::of(ws.cmd().args(args).output().unwrap());
    out.assert_code(2);
    assert!(out.stderr.contains(message), "{out}");
    assert!(!ws.db().exists(), "a read-only command creates no database");
}

#[test_case(&["--only", "nobody"], "--only names unknown provider(s): nobody" ; "unknown --only")]
#[test_case(&["--confidence", "1.5"], "--confidence must be between 0 and 1 (got 1.5)" ; "confidence out of range")]
#[test_case(&["--bootstrap", "10"], "--bootstrap must be at least 100" ; "too few resamples")]
fn bad_run_flags_exit_2_without_calling(extra: &[&str], message: &str) {
    let server = ScriptServer::start(answer_with(&[("t1", "a")]));
    let ws = Workspace::new();
    let (suite, provs) = ws.suite_and_provider(&[("t1", "a")], &server.base_url());
    let out = ws.run(&[&suite], &provs, extra);
    out.assert_code(2);
    assert!(out.stderr.contains(message), "{out}");
    assert_eq!(server.requests().len(), 0);
}

#[test]
// Regression: unquoted `no`/`yes` once became booleans (YAML 1.1), failing correct answers.
fn unquoted_yes_no_answers_stay_strings() {
    let server = ScriptServer::start(|_, _| Reply::Json(200, chat_response("no")));
    let ws = Workspace::new();
    // A yes/no classification suite: the expected answer is the word `no`.
    let suite = ws.write(
        "suite.yaml",
        indoc! {r#"
            suite: s
            prompt: {user: "task {{ q }}"}
            graders: [{type: equals, value: "{{ answer }}"}]
            tasks:
              - {id: t1, vars: {q: t1, answer: no}}
              - {id: n, vars: {q: n, answer: "no"}}
        "#},
    );
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url())]),
    );
    let out = ws.run(&[&suite], &provs, &[]);
    out.assert_code(0);
    let conn = rusqlite::Connection::open(ws.db()).unwrap();
    let vars: String = conn
        .query_row("SELECT vars FROM tasks WHERE task_id = 't1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(vars, r#"{"q":"t1","answer":"no"}"#);
    assert_eq!(row(&out.json(), "p")["accepted"], serde_json::json!(2));
}
