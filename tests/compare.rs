//! `costbench compare` through the binary: constructed runs where a scripted server decides
//! which tasks each provider answers correctly, so every figure has a known answer
//! (statistics.md §3.3 and §3.4), and each bad input is a clear error with exit 2.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// The right answer of every task; a provider that gets a task wrong answers `wrong`.
const RIGHT: &str = "right";

/// Tasks `t0..t{n}`, each expecting `right`.
fn tasks(n: usize) -> Vec<(String, &'static str)> {
    (0..n).map(|i| (format!("t{i}"), RIGHT)).collect()
}

fn as_refs<'a>(t: &'a [(String, &'a str)]) -> Vec<(&'a str, &'a str)> {
    t.iter().map(|(a, b)| (a.as_str(), *b)).collect()
}

/// A server answering `right` on the tasks `correct` says, `wrong` on the others.
fn server(n: usize, correct: impl Fn(usize) -> bool) -> ScriptServer {
    let answers: Vec<(String, &str)> = (0..n)
        .map(|i| (format!("t{i}"), if correct(i) { RIGHT } else { "wrong" }))
        .collect();
    ScriptServer::start(answer_with(&as_refs(&answers)))
}

/// Runs suite `s` (with `extra` YAML lines after its head) over `n` tasks with an incumbent
/// `inc` and a candidate `cand` whose correct tasks are given; returns the workspace.
struct Setup {
    ws: Workspace,
    _servers: Vec<ScriptServer>,
}

fn two_providers(
    n: usize,
    extra: &str,
    inc: impl Fn(usize) -> bool,
    cand: impl Fn(usize) -> bool,
) -> Setup {
    let (a, b) = (server(n, inc), server(n, cand));
    let ws = Workspace::new();
    let suite = ws.write(
        "suite.yaml",
        &with_head(&suite_yaml("s", &as_refs(&tasks(n))), extra),
    );
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[
            Provider::new("inc", &a.base_url()).max_concurrency(16),
            Provider::new("cand", &b.base_url()).max_concurrency(16),
        ]),
    );
    ws.run(&[&suite], &provs, &[]).assert_code(0);
    Setup {
        ws,
        _servers: vec![a, b],
    }
}

/// Inserts YAML lines after the suite's `repeats:` line.
fn with_head(yaml: &str, extra: &str) -> String {
    if extra.is_empty() {
        return yaml.to_string();
    }
    yaml.replacen("repeats: 1\n", &format!("repeats: 1\n{extra}\n"), 1)
}

fn compare(ws: &Workspace, args: &[&str]) -> Out {
    let mut c = ws.cmd();
    c.arg("compare").args(args);
    Out::of(c.output().expect("run costbench compare"))
}

fn compare_json(ws: &Workspace, args: &[&str]) -> Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    let out = compare(ws, &all);
    out.assert_code(0);
    out.json()
}

fn only(v: &Value) -> &Value {
    let c = v["comparisons"].as_array().expect("comparisons");
    assert_eq!(c.len(), 1, "{v:#}");
    &c[0]
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn mcnemar_b12_c3_gives_mid_p_0_0213_through_the_command() {
    // 40 tasks: 20 both right, 12 only the incumbent (b), 3 only the candidate (c), 5 neither.
    let s = two_providers(40, "", |i| i < 32, |i| i < 20 || (32..35).contains(&i));
    let v = compare_json(&s.ws, &["--incumbent", "inc", "--candidate", "cand"]);
    let c = only(&v);
    assert!((f(&c["mcnemar_mid_p"]) - 0.0213).abs() < 5e-5, "{c:#}");
    assert_eq!(c["paired"], 40);
    assert_eq!(c["suite"], "s");
    assert!((f(&c["acceptance"]["incumbent"]) - 32.0 / 40.0).abs() < 1e-12);
    assert!((f(&c["acceptance"]["candidate"]) - 23.0 / 40.0).abs() < 1e-12);
    assert!((f(&c["acceptance_diff"]["estimate"]) + 9.0 / 40.0).abs() < 1e-12);
    assert_eq!(c["acceptance_diff"]["method"], "tango-score");
    assert_eq!(c["verdict"], "inferior");
    assert_eq!(
        (c["margin"].as_f64(), &c["margin_source"]),
        (Some(0.02), &Value::from("default"))
    );
    assert_eq!(
        c["tasks_needed"],
        Value::Null,
        "conclusive: no more tasks needed"
    );
    // Same price, same usage per call: the candidate's cost per accepted is higher by 32/23.
    assert!(
        (f(&c["cost_ratio"]["estimate"]) - 32.0 / 23.0).abs() < 1e-9,
        "{c:#}"
    );
    assert!(f(&c["saving_per_accepted_usd"]["estimate"]) < 0.0);
    assert!(c["notes"].as_array().unwrap().is_empty(), "{c:#}");
    // The documented contract (src/compare.rs `Comparison`, README), key for key.
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&v),
        [
            "candidate_run",
            "comparisons",
            "confidence",
            "incumbent_run"
        ]
    );
    assert_eq!(
        keys(c),
        [
            "acceptance",
            "acceptance_diff",
            "candidate",
            "cost_method",
            "cost_per_accepted_usd",
            "cost_ratio",
            "incumbent",
            "margin",
            "margin_source",
            "mcnemar_mid_p",
            "mcnemar_mid_p_holm",
            "more_tasks",
            "notes",
            "paired",
            "saving_per_accepted_usd",
            "suite",
            "tasks",
            "tasks_needed",
            "unpaired",
            "verdict",
            "workload",
        ]
    );
    assert_eq!(
        keys(&c["acceptance_diff"]),
        ["estimate", "high", "low", "method"]
    );
    assert_eq!(
        keys(&c["saving_per_accepted_usd"]),
        ["estimate", "high", "low"]
    );
    assert_eq!(keys(&c["cost_ratio"]), ["estimate", "high", "low"]);
    assert_eq!(keys(&c["acceptance"]), ["candidate", "incumbent"]);
}

/// The non-inferiority example of statistics.md §3.4: n = 400, incumbent-only b = 30,
/// candidate-only c = 22, margin 0.05 written in the suite.
fn noninferiority_example() -> Setup {
    two_providers(
        400,
        "margin: 0.05",
        |i| i < 330,
        |i| i < 300 || (330..352).contains(&i),
    )
}

#[test]
fn statistics_md_noninferiority_example_through_the_command() {
    let s = noninferiority_example();
    let v = compare_json(&s.ws, &["--incumbent", "inc", "--candidate", "cand"]);
    let c = only(&v);
    let d = &c["acceptance_diff"];
    assert!((f(&d["estimate"]) + 0.020).abs() < 1e-12, "{c:#}");
    // Tango's score interval (−0.0566, 0.0158); the textbook Wald bound −0.0553 is not used.
    assert!((f(&d["low"]) + 0.056_606).abs() < 1e-5, "{d}");
    assert!((f(&d["high"]) - 0.015_796).abs() < 1e-5, "{d}");
    assert_eq!(c["verdict"], "inconclusive");
    assert_eq!(c["margin"], 0.05);
    assert_eq!(c["margin_source"], "suite");
    // (1.96 + 0.8416)²·(0.13 − 0.0004)/0.03² = 1130.2 → 1131 paired tasks, 731 more than 400.
    assert_eq!(c["tasks_needed"], 1131);
    assert_eq!(c["more_tasks"], 731);
    // McNemar is not significant, and that is not evidence of non-inferiority.
    assert!(f(&c["mcnemar_mid_p"]) > 0.05);

    // The flag overrides the suite and says so: at 10 points the same data is non-inferior.
    let v = compare_json(
        &s.ws,
        &[
            "--incumbent",
            "inc",
            "--candidate",
            "cand",
            "--margin",
            "0.1",
        ],
    );
    let c = only(&v);
    assert_eq!(
        (&c["margin_source"], &c["verdict"]),
        (&Value::from("flag"), &Value::from("non-inferior"))
    );

    // Table and markdown: verdict first, within 100 columns, with the interval footnote.
    let out = compare(&s.ws, &["--incumbent", "inc", "--candidate", "cand"]);
    out.assert_code(0);
    assert!(
        out.stdout.lines().all(|l| l.chars().count() <= 100),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("INCONCLUSIVE") && out.stdout.contains("(+731 tasks)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Tango"), "{}", out.stdout);
    let md = compare(
        &s.ws,
        &[
            "--incumbent",
            "inc",
            "--candidate",
            "cand",
            "--format",
            "md",
        ],
    );
    md.assert_code(0);
    assert!(md.stdout.contains("| verdict | suite |"), "{}", md.stdout);
    assert!(
        md.stdout.contains("| INCONCLUSIVE (+731 tasks) | s |"),
        "{}",
        md.stdout
    );
}

#[test]
fn a_candidate_that_gets_everything_the_incumbent_does_and_more_is_superior() {
    let s = two_providers(200, "", |i| i < 100, |i| i < 150);
    let c = compare_json(&s.ws, &["--incumbent", "inc", "--candidate", "cand"]);
    assert_eq!(only(&c)["verdict"], "superior");
}

/// Runs one provider over a suite file in a workspace, against its own server.
fn run_one(ws: &Workspace, suite: &Path, id: &str, srv: &ScriptServer) {
    let provs = ws.write(
        &format!("{id}.providers.yaml"),
        &providers_yaml(&[Provider::new(id, &srv.base_url()).max_concurrency(16)]),
    );
    ws.run(&[suite], &provs, &[]).assert_code(0);
}

#[test]
fn two_runs_pair_by_task_id_even_when_graders_and_task_sets_changed() {
    // Run 1: tasks t0..t9 graded with `contains`; run 2: tasks t2..t11 graded with `equals`.
    let ws = Workspace::new();
    let a = server(12, |i| i % 2 == 0);
    let b = server(12, |_| true);
    let all = tasks(12);
    let s1 = ws.write("s1.yaml", &suite_yaml("s", &as_refs(&all[..10])));
    run_one(&ws, &s1, "inc", &a);
    let s2 = ws.write(
        "s2.yaml",
        &suite_yaml("s", &as_refs(&all[2..])).replace("type: contains", "type: equals"),
    );
    run_one(&ws, &s2, "cand", &b);
    let v = compare_json(
        &ws,
        &[
            "--incumbent",
            "inc",
            "--candidate",
            "cand",
            "--runs",
            "1",
            "2",
        ],
    );
    assert_eq!(
        (&v["incumbent_run"], &v["candidate_run"]),
        (&Value::from(1), &Value::from(2))
    );
    let c = only(&v);
    assert_eq!(c["paired"], 8, "t2..t9 are in both runs: {c:#}");
    assert_eq!(c["unpaired"]["not_in_both_runs"], 4, "t0, t1 and t10, t11");
    // t2..t9: the incumbent is right on t2, t4, t6, t8.
    assert!((f(&c["acceptance"]["incumbent"]) - 0.5).abs() < 1e-12);
    assert!((f(&c["acceptance"]["candidate"]) - 1.0).abs() < 1e-12);
    let notes = c["notes"].to_string();
    assert!(
        notes.contains("4 of a task or repeat only one run has"),
        "{notes}"
    );
}

#[test]
fn unanswered_pairs_as_rejected_while_grader_errors_ungraded_and_pending_are_counted_apart() {
    let ws = Workspace::new();
    // The candidate's server fails t0 every time: unanswered, a rejection that still pairs.
    let a = server(10, |_| true);
    let good = answer_with(&as_refs(&tasks(10)));
    let b = ScriptServer::start(move |req, i| {
        if req.task.as_deref() == Some("t0") {
            Reply::Json(500, serde_json::json!({"error": {"message": "down"}}))
        } else {
            good(req, i)
        }
    });
    let suite = ws.write("suite.yaml", &suite_yaml("s", &as_refs(&tasks(10))));
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[
            Provider::new("inc", &a.base_url()),
            Provider::new("cand", &b.base_url()).max_retries(0),
        ]),
    );
    ws.run(&[&suite], &provs, &["--max-failed-share", "1"])
        .assert_code(0);
    // Then, in the store: a grader error on t1 (candidate), t2 not graded (incumbent), t3 never
    // attempted (candidate).
    let conn = rusqlite::Connection::open(ws.db()).unwrap();
    conn.execute_batch(
        "UPDATE grades SET status = 'error', accepted = 0 WHERE provider = 'cand' AND task_id = 't1';
         DELETE FROM grades WHERE provider = 'inc' AND task_id = 't2';
         DELETE FROM grades WHERE provider = 'cand' AND task_id = 't3';
         DELETE FROM attempts WHERE provider = 'cand' AND task_id = 't3';",
    )
    .unwrap();
    drop(conn);
    let v = compare_json(&ws, &["--incumbent", "inc", "--candidate", "cand"]);
    let c = only(&v);
    assert_eq!(c["paired"], 7, "{c:#}");
    assert_eq!(
        c["unpaired"],
        serde_json::json!({"grader_error": 1, "ungraded": 1, "pending": 1, "not_in_both_runs": 0})
    );
    // t0 pairs as a rejection of the candidate: 6 of 7 against 7 of 7.
    assert!(
        (f(&c["acceptance"]["candidate"]) - 6.0 / 7.0).abs() < 1e-12,
        "{c:#}"
    );
    assert!((f(&c["acceptance"]["incumbent"]) - 1.0).abs() < 1e-12);
}

#[test]
fn a_provider_without_price_is_named_in_a_note_and_gets_no_saving() {
    let (a, b) = (server(20, |_| true), server(20, |_| true));
    let ws = Workspace::new();
    let suite = ws.write("suite.yaml", &suite_yaml("s", &as_refs(&tasks(20))));
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[
            Provider::new("inc", &a.base_url()),
            Provider::new("cand", &b.base_url()).price(None),
        ]),
    );
    ws.run(&[&suite], &provs, &[]).assert_code(0);
    let v = compare_json(&ws, &["--incumbent", "inc", "--candidate", "cand"]);
    let c = only(&v);
    let notes = c["notes"].to_string();
    assert!(
        notes.contains("cand: 20 call(s) of unknown cost"),
        "{notes}"
    );
    assert!(notes.contains("no cost is known on one side"), "{notes}");
    assert_eq!(c["saving_per_accepted_usd"]["estimate"], Value::Null);
    assert_eq!(c["cost_ratio"]["estimate"], Value::Null);
}

#[test]
fn several_suites_of_one_workload_get_a_pooled_row_and_holm_adjusted_p() {
    let (a, b) = (server(60, |i| i < 50), server(60, |i| i < 45));
    let ws = Workspace::new();
    let t = tasks(60);
    let s1 = ws.write("s1.yaml", &suite_yaml("s1", &as_refs(&t[..30])));
    let s2 = ws.write("s2.yaml", &suite_yaml("s2", &as_refs(&t[30..])));
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[
            Provider::new("inc", &a.base_url()),
            Provider::new("cand", &b.base_url()),
        ]),
    );
    ws.run(&[&s1, &s2], &provs, &[]).assert_code(0);
    let v = compare_json(&ws, &["--incumbent", "inc", "--candidate", "cand"]);
    let rows = v["comparisons"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{v:#}");
    assert_eq!(
        (&rows[0]["suite"], &rows[1]["suite"]),
        (&Value::from("s1"), &Value::from("s2"))
    );
    let pooled = &rows[2];
    assert_eq!(
        (&pooled["suite"], &pooled["workload"]),
        (&Value::Null, &Value::from("test"))
    );
    assert_eq!(pooled["paired"], 60);
    assert_eq!(
        pooled["tasks"], 60,
        "each suite's tasks are their own clusters"
    );
    // s1: all 30 right for both; s2: the incumbent right on t30..t49, the candidate on t30..t44:
    // b = 5, c = 0.
    let (p1, p2) = (f(&rows[0]["mcnemar_mid_p"]), f(&rows[1]["mcnemar_mid_p"]));
    assert_eq!(p1, 1.0);
    assert!(
        (p2 - 0.0625 + 0.03125).abs() < 1e-12,
        "mid-p of b = 5, c = 0: {p2}"
    );
    // Holm over two: the smaller p doubled, the larger kept at 1.
    assert!((f(&rows[1]["mcnemar_mid_p_holm"]) - 2.0 * p2).abs() < 1e-12);
    assert_eq!(f(&rows[0]["mcnemar_mid_p_holm"]), 1.0);
    assert_eq!(pooled["mcnemar_mid_p_holm"], Value::Null);
    assert!(
        (f(&pooled["mcnemar_mid_p"]) - p2).abs() < 1e-12,
        "same discordant pairs pooled"
    );
    // --suite narrows to one suite: no pooled row.
    let v = compare_json(
        &ws,
        &["--incumbent", "inc", "--candidate", "cand", "--suite", "s2"],
    );
    assert_eq!(only(&v)["suite"], "s2");
}

#[test]
fn repeats_use_the_paired_cluster_bootstrap_and_name_it() {
    let (a, b) = (server(30, |i| i < 25), server(30, |i| i < 24));
    let ws = Workspace::new();
    let suite = ws.write(
        "suite.yaml",
        &suite_yaml("s", &as_refs(&tasks(30))).replace("repeats: 1", "repeats: 3"),
    );
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[
            Provider::new("inc", &a.base_url()),
            Provider::new("cand", &b.base_url()),
        ]),
    );
    ws.run(&[&suite], &provs, &[]).assert_code(0);
    let v = compare_json(&ws, &["--incumbent", "inc", "--candidate", "cand"]);
    let c = only(&v);
    assert_eq!(
        (&c["paired"], &c["tasks"]),
        (&Value::from(90), &Value::from(30))
    );
    assert_eq!(c["acceptance_diff"]["method"], "paired-cluster-bootstrap");
    assert_eq!(c["mcnemar_mid_p"], Value::Null);
    assert!(c["notes"].to_string().contains("no McNemar p"), "{c:#}");
}

// ------------------------------------------------------------------------------------------
// Bad input: each a clear error with the fix, exit 2.
// ------------------------------------------------------------------------------------------

fn assert_usage_error(out: &Out, expected: &[&str]) {
    out.assert_code(2);
    for e in expected {
        assert!(out.stderr.contains(e), "missing {e:?} in:\n{out}");
    }
}

#[test]
fn bad_input_is_a_clear_error_with_exit_2() {
    let s = two_providers(4, "", |_| true, |_| true);
    let ws = &s.ws;
    let out = compare(ws, &["--incumbent", "nope", "--candidate", "cand"]);
    assert_usage_error(
        &out,
        &[
            "provider `nope` is not in run 1",
            "providers are: inc, cand",
            "hint:",
        ],
    );
    let out = compare(ws, &["--incumbent", "inc", "--candidate", "inc"]);
    assert_usage_error(
        &out,
        &["both `inc` of run 1", "hint: name two different providers"],
    );
    let out = compare(
        ws,
        &["--incumbent", "inc", "--candidate", "cand", "--run", "7"],
    );
    assert_usage_error(&out, &["no run 7", "costbench runs"]);
    let out = compare(
        ws,
        &[
            "--incumbent",
            "inc",
            "--candidate",
            "cand",
            "--runs",
            "1",
            "9",
        ],
    );
    assert_usage_error(&out, &["no run 9"]);
    let out = compare(
        ws,
        &[
            "--incumbent",
            "inc",
            "--candidate",
            "cand",
            "--margin",
            "1.5",
        ],
    );
    assert_usage_error(
        &out,
        &["--margin must be above 0 and below 1 (got 1.5)", "hint:"],
    );
    let out = compare(
        ws,
        &["--incumbent", "inc", "--candidate", "cand", "--suite", "x"],
    );
    assert_usage_error(&out, &["suite `x` is not among the suites compared (s)"]);
}

#[test]
fn runs_of_different_suites_are_an_error_naming_both() {
    let ws = Workspace::new();
    let a = server(3, |_| true);
    let t = tasks(3);
    let s1 = ws.write("s1.yaml", &suite_yaml("alpha", &as_refs(&t)));
    run_one(&ws, &s1, "inc", &a);
    let s2 = ws.write("s2.yaml", &suite_yaml("beta", &as_refs(&t)));
    run_one(&ws, &s2, "cand", &a);
    let out = compare(
        &ws,
        &[
            "--incumbent",
            "inc",
            "--candidate",
            "cand",
            "--runs",
            "1",
            "2",
        ],
    );
    assert_usage_error(
        &out,
        &[
            "runs 1 and 2 have no suite in common (run 1: alpha; run 2: beta)",
            "hint: compare two runs of the same suite",
        ],
    );
}

#[test]
fn a_suite_margin_outside_0_1_is_a_load_error() {
    let ws = Workspace::new();
    let suite = ws.write(
        "suite.yaml",
        &with_head(&suite_yaml("s", &[("t1", "a")]), "margin: 0"),
    );
    let out = ws.cmd().args(["validate"]).arg(&suite).output().unwrap();
    let out = Out::of(out);
    assert_usage_error(&out, &["margin: must be above 0 and below 1 (got 0)"]);
}

#[test]
fn identical_answers_on_few_tasks_say_how_many_tasks_would_settle_it() {
    // 20 tasks, the same outcome on every one: no discordant pair, yet too few tasks to clear
    // the 0.02 margin. The planning figure is the tasks at which an unchanged result would be
    // conclusive (about 190), not the 1 that a zero-variance formula gives.
    let s = two_providers(20, "", |i| i < 15, |i| i < 15);
    let v = compare_json(&s.ws, &["--incumbent", "inc", "--candidate", "cand"]);
    let c = only(&v);
    assert_eq!(c["verdict"], "inconclusive", "{c:#}");
    let needed = c["tasks_needed"].as_u64().unwrap();
    assert!((150..=250).contains(&needed), "{c:#}");
    assert_eq!(c["more_tasks"].as_u64(), Some(needed - 20), "{c:#}");
}
