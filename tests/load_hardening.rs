//! Load-time hardening: inputs that once passed `validate` and then panicked, hung or did the
//! wrong thing at run time now fail at load, located and in plain words. Each test names what
//! broke.

mod common;

use common::*;
use indoc::indoc;
use test_case::test_case;

/// `costbench validate suite.yaml` in a workspace holding `suite` and `extra` files.
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

/// Asserts a config error (exit 2) whose stderr holds every expected text, and returns stderr.
#[track_caller]
fn assert_config_error(out: &Out, expected: &[&str]) {
    out.assert_code(2);
    assert!(out.stderr.contains("in config"), "{out}");
    for e in expected {
        assert!(out.stderr.contains(e), "expected `{e}` on stderr:\n{out}");
    }
}

/// A suite over a tasks file, with one grader using `answer`.
const FILE_SUITE: &str = indoc! {r#"
    suite: s
    prompt:
      user: "task {{ q }}"
    graders:
      - {type: contains, value: "{{ answer }}"}
    tasks_file: tasks.jsonl
"#};

// Regression: `timeout_s: 1e20` passed validate and panicked converting to a Duration.
#[test_case("timeout_s: 1e20", "providers[0].timeout_s: must be a positive number of seconds, at most 86400 (one day)" ; "huge timeout")]
// Regression: `retry.base_delay_ms: u64::MAX` slept forever between tries.
#[test_case("retry: {base_delay_ms: 18446744073709551615}", "providers[0].retry.base_delay_ms: must be at most 3600000 (one hour)" ; "endless base delay")]
#[test_case("retry: {max_delay_ms: 36000000}", "providers[0].retry.max_delay_ms: must be at most 3600000 (one hour)" ; "endless max delay")]
#[test_case("retry: {max_retries: 4000000000}", "providers[0].retry.max_retries: must be at most 100" ; "endless retries")]
#[test_case("retry: {max_retry_after_s: 99999999}", "providers[0].retry.max_retry_after_s: must be at most 3600 (one hour)" ; "endless retry-after")]
// Regression: a huge max_concurrency panicked creating tokio's semaphore.
#[test_case("max_concurrency: 18446744073709551615", "providers[0].max_concurrency: must be at most 10000" ; "huge concurrency")]
// Regression: `base_url: localhost:8080/v1` (no scheme) passed validate.
#[test_case("base_url: localhost:8080/v1", "providers[0].base_url: `localhost:8080/v1` is not a URL: it needs an http:// or https:// scheme; write it with its scheme, like `http://localhost:8080/v1`" ; "base url without scheme")]
#[test_case("base_url: ftp://example.com/v1", "`ftp://example.com/v1` is not an http or https URL" ; "base url with another scheme")]
fn out_of_bounds_provider_settings_fail_at_load(line: &str, expected: &str) {
    // The tested line replaces the default base_url rather than repeating the key.
    let base_url = if line.starts_with("base_url") {
        ""
    } else {
        "base_url: http://127.0.0.1:1/v1\n    "
    };
    let out = validate_providers(&format!(
        "providers:\n  - id: a\n    protocol: openai\n    model: m\n    {base_url}{line}\n"
    ));
    assert_config_error(&out, &["providers.yaml:", expected]);
    assert!(
        out.stderr.contains("1 problem in config"),
        "exactly one problem:\n{out}"
    );
}

// Regression: `repeats: 1000000000` passed validate.
#[test]
fn huge_repeats_fail_at_load() {
    let out = validate_suite(
        indoc! {r#"
            suite: s
            repeats: 1000000000
            prompt: {user: "task {{ q }}"}
            graders: [{type: contains, value: x}]
            tasks: [{id: t1, vars: {q: a}}]
        "#},
        &[],
    );
    assert_config_error(
        &out,
        &["suite.yaml:2:1: repeats: must be at most 10000, got 1000000000"],
    );
}

// Regression: tasks × repeats was unbounded (a large tasks file at the maximum repeats).
#[test]
fn too_many_outcomes_fail_at_load() {
    let lines: String = (0..10_001)
        .map(|i| format!("{{\"id\": {i}, \"vars\": {{\"q\": \"x\", \"answer\": \"a\"}}}}\n"))
        .collect();
    let suite = FILE_SUITE.replace("tasks_file", "repeats: 10000\ntasks_file");
    let out = validate_suite(&suite, &[("tasks.jsonl", &lines)]);
    assert_config_error(
        &out,
        &[
            "repeats: 10001 tasks × 10000 repeats = 100010000 outcomes per provider, more than the 100000000",
        ],
    );
}

// Regression: three nested `range(100000)` loops passed validate and `run` never ended.
#[test]
fn runaway_template_runs_out_of_fuel_naming_task_and_template() {
    let out = validate_suite(
        indoc! {r#"
            suite: s
            prompt:
              user: "{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100000) %}{{ q }}{% endfor %}{% endfor %}{% endfor %}"
            graders: [{type: contains, value: x}]
            tasks: [{id: t3, vars: {q: a}}]
        "#},
        &[],
    );
    assert_config_error(
        &out,
        &[
            "tasks[0].vars: task `t3`: prompt.user: template used too much computation (fuel exhausted)",
        ],
    );
}

// Regression: prompts and graders had two template dialects; `regex_escape` worked only in
// graders, so a prompt using it failed.
#[test]
fn prompts_and_graders_share_one_template_dialect() {
    let out = validate_suite(
        indoc! {r#"
            suite: s
            prompt: {user: "find {{ q | regex_escape }}"}
            graders: [{type: regex, pattern: "{{ q | regex_escape }}"}]
            tasks: [{id: t1, vars: {q: "a.b"}}]
        "#},
        &[],
    );
    out.assert_code(0);
}

// Regression: `tasks_file: /dev/zero` grew memory until the process aborted.
#[cfg(unix)]
#[test]
fn endless_line_in_tasks_file_stops_at_the_cap() {
    for (file, expected) in [
        (
            "/dev/zero",
            "/dev/zero:1:1: line is longer than 16 MiB; reading stops here",
        ),
        ("/dev/zero.csv", ""),
    ] {
        if file.ends_with(".csv") {
            // CSV: the same cap per record, through a symlink named .csv.
            let ws = Workspace::new();
            ws.write("suite.yaml", &FILE_SUITE.replace("tasks.jsonl", "zero.csv"));
            std::os::unix::fs::symlink("/dev/zero", ws.path("zero.csv")).unwrap();
            let out = Out::of(ws.cmd().args(["validate", "suite.yaml"]).output().unwrap());
            assert_config_error(
                &out,
                &["zero.csv:1:1: invalid CSV header: longer than 16 MiB"],
            );
            continue;
        }
        let out = validate_suite(&FILE_SUITE.replace("tasks.jsonl", file), &[]);
        assert_config_error(&out, &[expected]);
    }
}

#[test]
fn overlong_csv_record_stops_at_the_cap() {
    let big = "x".repeat(17 * 1024 * 1024);
    let csv = format!("id,q,answer\nt1,a,b\nt2,\"{big}\",b\nt3,a,b\n");
    let suite = FILE_SUITE.replace("tasks.jsonl", "tasks.csv");
    let out = validate_suite(&suite, &[("tasks.csv", &csv)]);
    assert_config_error(
        &out,
        &["tasks.csv:3:1: record is longer than 16 MiB; reading stops here"],
    );
}

// Regression: `{…}{…}` on one JSONL line yielded one task and dropped the second, and
// `{…} garbage` was accepted.
#[test_case(r#"{"id": "t1", "vars": {"q": "a", "answer": "b"}}{"id": "t2", "vars": {"q": "a", "answer": "b"}}"#,
    "tasks.jsonl:1:48: invalid task: more text after the JSON object; write exactly one object a line" ; "two objects")]
#[test_case(r#"{"id": "t1", "vars": {"q": "a", "answer": "b"}} garbage"#,
    "tasks.jsonl:1:49: invalid task: more text after the JSON object" ; "trailing garbage")]
#[test_case(r#"["t1", {"q": "a", "answer": "b"}]"#,
    "tasks.jsonl:1:1: invalid task: expected one JSON object a line" ; "an array is not a task")]
#[test_case(r#"{"id": 1.5, "vars": {}}"#,
    "tasks.jsonl:1:10: invalid task: a task id: a string or an integer" ; "a float id")]
fn one_json_object_per_line(line: &str, expected: &str) {
    let out = validate_suite(FILE_SUITE, &[("tasks.jsonl", &format!("{line}\n"))]);
    assert_config_error(&out, &[expected]);
}

// Regression: a UTF-8 byte order mark at the start of a JSONL tasks file was a parse error.
#[test]
fn byte_order_mark_is_accepted_in_jsonl() {
    let out = validate_suite(
        FILE_SUITE,
        &[(
            "tasks.jsonl",
            "\u{feff}{\"id\": \"t1\", \"vars\": {\"q\": \"a\", \"answer\": \"b\"}}\n",
        )],
    );
    out.assert_code(0);
    assert!(out.stdout.contains("1 tasks"), "{out}");
}

// Regression: an empty tasks file validated as "0 tasks" and `run` exited 0 doing nothing.
#[test_case("" ; "empty file")]
#[test_case("\n  \n" ; "blank lines")]
fn empty_tasks_file_is_a_load_error(content: &str) {
    let out = validate_suite(FILE_SUITE, &[("tasks.jsonl", content)]);
    assert_config_error(
        &out,
        &["suite.yaml:6:1: tasks_file: tasks file tasks.jsonl has no tasks"],
    );
}

// Regression: suite params could set reserved body fields, so the request went to another
// model than the one priced.
#[test_case("model: gpt-5", "params.model: `model` is set by the providers file; remove it from params" ; "model")]
#[test_case("messages: []", "params.messages: `messages` is built from the suite's prompt; remove it from params" ; "messages")]
#[test_case("stream: true", "params.stream: `stream` is chosen by costbench" ; "stream")]
#[test_case("n: 5", "params.n: `n` would ask for several answers per call while one is graded; use `repeats`" ; "n")]
#[test_case("contents: []", "params.contents:" ; "gemini contents")]
#[test_case("system: x", "params.system:" ; "anthropic system")]
#[test_case("stream_options: {}", "params.stream_options:" ; "stream options")]
fn reserved_params_are_refused(param: &str, expected: &str) {
    let out = validate_suite(
        &format!(
            "suite: s\nprompt: {{user: \"task {{{{ q }}}}\"}}\nparams:\n  temperature: 0\n  {param}\ngraders: [{{type: contains, value: x}}]\ntasks: [{{id: t1, vars: {{q: a}}}}]\n"
        ),
        &[],
    );
    assert_config_error(&out, &[&format!("suite.yaml:5:3: {expected}")]);
}

// Regression: `tasks_file: ../x.jsonl` silently read a file outside the suite's folder.
#[test]
fn tasks_file_climbing_out_of_the_suite_folder_needs_an_absolute_path() {
    let ws = Workspace::new();
    let task = "{\"id\": \"t1\", \"vars\": {\"q\": \"a\", \"answer\": \"b\"}}\n";
    ws.write("x.jsonl", task);
    ws.write(
        "suites/s.yaml",
        &FILE_SUITE.replace("tasks.jsonl", "data/../../x.jsonl"),
    );
    let out = Out::of(
        ws.cmd()
            .args(["validate", "suites/s.yaml"])
            .output()
            .unwrap(),
    );
    assert_config_error(
        &out,
        &[
            "suites/s.yaml:6:1: tasks_file: `data/../../x.jsonl` points outside the suite's folder; write an absolute path if you mean a file outside the suite's folder",
        ],
    );
    // The same file named absolutely is accepted, and `data/../x` inside the folder too.
    let abs = ws.path("x.jsonl").display().to_string();
    ws.write("suites/abs.yaml", &FILE_SUITE.replace("tasks.jsonl", &abs));
    ws.write("suites/in.jsonl", task);
    ws.write(
        "suites/in.yaml",
        &FILE_SUITE
            .replace("tasks.jsonl", "data/../in.jsonl")
            .replace("suite: s", "suite: t"),
    );
    let out = Out::of(
        ws.cmd()
            .args(["validate", "suites/abs.yaml", "suites/in.yaml"])
            .output()
            .unwrap(),
    );
    out.assert_code(0);
}

/// A suite of `n` inline tasks.
fn inline_suite(n: usize) -> String {
    let mut suite = String::from(
        "suite: big\nprompt: {user: \"task {{ q }}\"}\ngraders: [{type: equals, value: \"{{ a }}\"}]\ntasks:\n",
    );
    for i in 0..n {
        suite.push_str(&format!("  - {{id: t{i}, vars: {{q: q{i}, a: a{i}}}}}\n"));
    }
    suite
}

// Regression: a suite of about 20,000 inline tasks failed with
// `invalid YAML: budget breached: Nodes { nodes: 250001 }`. (That 100,000 fit the budget is
// checked in config.rs's unit tests; loading them all takes about 45 s in a debug build, see
// the ignored test below.)
#[test]
fn over_twenty_thousand_inline_tasks_load() {
    let out = validate_suite(&inline_suite(25_000), &[]);
    out.assert_code(0);
    assert!(out.stdout.contains("25000 tasks"), "{out}");
}

#[test]
#[ignore = "about 45 s in a debug build; run with --ignored or in release"]
fn a_hundred_thousand_inline_tasks_load() {
    let out = validate_suite(&inline_suite(100_000), &[]);
    out.assert_code(0);
    assert!(out.stdout.contains("100000 tasks"), "{out}");
}

// A YAML budget still stands: an alias bomb fails fast, in words.
#[test]
fn alias_bomb_fails_in_plain_words() {
    let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        yaml.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    yaml.push_str("suite: s\n");
    let out = validate_suite(&yaml, &[]);
    assert_config_error(
        &out,
        &[
            "suite.yaml:",
            "invalid YAML: YAML aliases (`*name`) expand to too much data",
        ],
    );
    assert!(!out.stderr.contains("budget breached"), "{out}");
}

// Regression: serde and serde-saphyr wording (`expected struct SuiteHead`, `set
// DuplicateKeyPolicy in Options`) reached users.
#[test_case("- just\n- a list\n", "suite.yaml:1:1: invalid type: sequence, expected a mapping with keys suite, prompt, graders" ; "suite is a list")]
#[test_case("suite: s\nsuite: t\n", "suite.yaml:2:1: invalid YAML: duplicate key `suite`; each key may appear once in a mapping" ; "duplicate key")]
#[test_case("suite: s\nprompt: hello\ngraders: [x]\ntasks: [{id: t1}]\n", "prompt: invalid type: string \"hello\", expected a mapping with keys user, system and examples" ; "prompt is a string")]
fn library_wording_is_rewritten(suite: &str, expected: &str) {
    let out = validate_suite(suite, &[]);
    assert_config_error(&out, &[expected]);
    for internal in [
        "struct ",
        "enum ",
        "DuplicateKeyPolicy",
        "Options",
        "budget breached",
    ] {
        assert!(
            !out.stderr.contains(internal),
            "`{internal}` on stderr:\n{out}"
        );
    }
}

// Regression: a regex built from a task variable that is invalid for one task passed
// validate; every output of that task then failed as if rejected.
#[test]
fn grader_invalid_for_one_task_fails_at_load_naming_the_task() {
    let out = validate_suite(
        indoc! {r#"
            suite: s
            prompt: {user: "task {{ q }}"}
            graders:
              - {type: regex, pattern: "{{ p }}"}
              - {type: number, value: "{{ n }}"}
            tasks:
              - {id: good, vars: {q: a, p: "a+", n: "12"}}
              - {id: bad, vars: {q: b, p: "(", n: "12"}}
              - {id: nan, vars: {q: c, p: "c", n: "n/a"}}
        "#},
        &[],
    );
    assert_config_error(
        &out,
        &[
            "2 problems in config",
            "suite.yaml:8:15: tasks[1].vars: task `bad`: graders[0]: rendered pattern \"(\" is invalid",
            "suite.yaml:9:15: tasks[2].vars: task `nan`: graders[1]: `value`: \"n/a\" is not a single finite number",
        ],
    );
}
