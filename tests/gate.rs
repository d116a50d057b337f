//! `costbench baseline save` and `costbench gate` through the binary, on constructed runs: a
//! scripted server decides which tasks are answered right and how many tokens each answer
//! uses, so every verdict has a known answer; bad baselines are exit 2 with the fix.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::Value;

const RIGHT: &str = "right";

/// An answer script: task `t{i}` is answered right when `correct(i)`, with `completion`
/// completion tokens (the fixture's usage otherwise: 2048 prompt tokens, 1536 of them cached).
fn script(
    correct: impl Fn(usize) -> bool + Send + Sync + 'static,
    completion: u64,
) -> impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static {
    move |seen: &Seen, _| {
        let i: usize = seen
            .task
            .as_deref()
            .and_then(|t| t.strip_prefix('t'))
            .and_then(|n| n.parse().ok())
            .expect("task t<i>");
        let mut body = chat_response(if correct(i) { RIGHT } else { "wrong" });
        body["usage"]["completion_tokens"] = Value::from(completion);
        Reply::Json(200, body)
    }
}

/// The fixture's completion tokens: $854.4 per 1M outcomes at the test price
/// (512 × 0.40 + 1536 × 0.10 + 310 × 1.60).
const BASE_COMPLETION: u64 = 310;

/// One suite `s` of `n` tasks and one provider `p`; runs are made against a scripted server.
struct Bench {
    ws: Workspace,
    server: ScriptServer,
    suite: PathBuf,
    providers: PathBuf,
    runs: i64,
}

impl Bench {
    fn new(n: usize) -> Bench {
        Bench::with_repeats(n, 1)
    }

    fn with_repeats(n: usize, repeats: u32) -> Bench {
        let ws = Workspace::new();
        let server = ScriptServer::start(script(|_| true, BASE_COMPLETION));
        let tasks: Vec<(String, &str)> = (0..n).map(|i| (format!("t{i}"), RIGHT)).collect();
        let refs: Vec<(&str, &str)> = tasks.iter().map(|(a, b)| (a.as_str(), *b)).collect();
        let yaml = suite_yaml("s", &refs).replace("repeats: 1\n", &format!("repeats: {repeats}\n"));
        let suite = ws.write("suite.yaml", &yaml);
        let providers = ws.write(
            "providers.yaml",
            &providers_yaml(&[Provider::new("p", &server.base_url()).max_concurrency(16)]),
        );
        Bench {
            ws,
            server,
            suite,
            providers,
            runs: 0,
        }
    }

    /// A new run (nothing replayed) whose answers follow the script; returns its id.
    fn run(
        &mut self,
        correct: impl Fn(usize) -> bool + Send + Sync + 'static,
        completion: u64,
    ) -> i64 {
        self.server.set_script(script(correct, completion));
        let providers = self.providers.clone();
        self.run_with(&providers, &["--new", "--cache", "off"])
    }

    fn run_with(&mut self, providers: &std::path::Path, extra: &[&str]) -> i64 {
        self.ws.run(&[&self.suite], providers, extra).assert_code(0);
        self.runs += 1;
        self.runs
    }

    fn cmd(&self, args: &[&str]) -> Out {
        let mut c = self.ws.cmd();
        c.args(args);
        Out::of(c.output().expect("run costbench"))
    }

    fn save(&self, run: i64) -> PathBuf {
        let out = self.ws.path("baseline.json");
        self.cmd(&[
            "baseline",
            "save",
            "--run",
            &run.to_string(),
            "--out",
            out.to_str().unwrap(),
        ])
        .assert_code(0);
        out
    }

    /// `costbench gate` of `run` against the saved baseline, writing JUnit and markdown.
    fn gate(&self, run: i64, extra: &[&str]) -> Gated {
        let junit = self.ws.path("gate.xml");
        let md = self.ws.path("gate.md");
        let _ = std::fs::remove_file(&junit);
        let _ = std::fs::remove_file(&md);
        let mut args = vec![
            "gate".to_string(),
            "--baseline".into(),
            self.ws.path("baseline.json").display().to_string(),
            "--run".into(),
            run.to_string(),
            "--junit".into(),
            junit.display().to_string(),
            "--md".into(),
            md.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.cmd(&refs);
        Gated {
            md: std::fs::read_to_string(&md).unwrap_or_default(),
            junit: std::fs::read_to_string(&junit).unwrap_or_default(),
            out,
        }
    }
}

struct Gated {
    out: Out,
    md: String,
    junit: String,
}

impl Gated {
    /// The markdown row of a check: `| STATUS | s | p | metric |` starts it.
    fn status(&self, metric: &str) -> String {
        let line = self
            .md
            .lines()
            .find(|l| l.contains(&format!("| s | p | {metric} |")))
            .unwrap_or_else(|| panic!("no {metric} row in:\n{}", self.md));
        line.split('|').nth(1).unwrap().trim().replace('*', "")
    }
}

#[test]
fn a_run_gated_against_a_baseline_of_the_same_answers_passes() {
    // A/A on 400 tasks: no outcome changed, so Tango's bound on the drop is
    // z²/(400 + z²) = 0.95 points, inside the 2-point threshold; costs are identical.
    let mut b = Bench::new(400);
    let base = b.run(|i| i % 10 != 0, BASE_COMPLETION);
    b.save(base);
    let again = b.run(|i| i % 10 != 0, BASE_COMPLETION);
    let g = b.gate(again, &[]);
    g.out.assert_code(0);
    assert_eq!(g.status("acceptance"), "PASS", "{}", g.md);
    assert_eq!(g.status("cost per accepted"), "PASS", "{}", g.md);
    assert!(
        g.out.stdout.starts_with("costbench gate: PASS"),
        "{}",
        g.out
    );
    assert!(
        g.md.contains("| 90.0% | 90.0% | drop 0.0 points [-1.0, 1.0]"),
        "{}",
        g.md
    );
}

#[test]
fn a_planted_ten_point_acceptance_drop_on_400_tasks_fails_with_exit_3() {
    let mut b = Bench::new(400);
    let base = b.run(|i| i % 10 != 0, BASE_COMPLETION); // 360 of 400
    b.save(base);
    let worse = b.run(|i| i % 5 != 0, BASE_COMPLETION); // 320 of 400: 40 tasks lost
    let g = b.gate(worse, &[]);
    g.out.assert_code(3);
    assert_eq!(g.status("acceptance"), "FAIL", "{}", g.md);
    assert!(
        g.out.stdout.starts_with("costbench gate: FAIL"),
        "{}",
        g.out
    );
    // b = 40, c = 0: McNemar mid-p = 2·0.5⁴⁰ − 0.5⁴⁰ = 9.1e-13.
    assert!(
        g.md.contains("| 90.0% | 80.0% | drop 10.0 points [") && g.md.contains("9.1e-13 ("),
        "{}",
        g.md
    );
    let report = quick_junit::Report::deserialize_from_str(&g.junit).expect("JUnit XML");
    // Acceptance, cost, and the class's routed choice (the baseline routes `test` to `p`).
    assert_eq!(report.tests, 3, "{}", g.junit);
    assert!(report.failures >= 1, "{}", g.junit);
}

#[test]
fn a_two_point_drop_on_50_tasks_is_inconclusive_and_says_how_many_tasks_would_tell() {
    let mut b = Bench::new(50);
    let base = b.run(|i| i % 10 != 0, BASE_COMPLETION); // 45 of 50
    b.save(base);
    let worse = b.run(|i| i % 10 != 0 && i != 1, BASE_COMPLETION); // 44 of 50
    let g = b.gate(worse, &[]);
    g.out.assert_code(0);
    assert_eq!(g.status("acceptance"), "INCONCLUSIVE", "{}", g.md);
    assert!(
        g.md.contains("| 90.0% | 88.0% | drop 2.0 points ["),
        "{}",
        g.md
    );
    let line =
        g.md.lines()
            .find(|l| l.starts_with("- INCONCLUSIVE s / p: acceptance"))
            .unwrap_or_else(|| panic!("{}", g.md));
    let needed: u64 = line
        .split("about ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no task count in {line}"));
    // Planning for a run with no real change to pass at the observed discordance ψ = 1/50
    // (statistics.md §3.4): (z₀.₉₇₅ + z₀.₈)²·ψ/δ² = 7.849 × 0.02 / 0.02² = 392.4 → 393.
    assert_eq!(needed, 393, "{line}");
    assert!(
        g.out.stdout.contains("some checks are INCONCLUSIVE"),
        "{}",
        g.out
    );
}

#[test]
fn with_repeats_the_acceptance_check_resamples_whole_tasks() {
    // 100 tasks × 3 repeats: McNemar's pairs would not be independent, so the interval and
    // the p-value come from a paired cluster bootstrap over tasks.
    let mut b = Bench::with_repeats(100, 3);
    let base = b.run(|i| i % 10 != 0, BASE_COMPLETION);
    b.save(base);
    let same = b.run(|i| i % 10 != 0, BASE_COMPLETION);
    let g = b.gate(same, &[]);
    g.out.assert_code(0);
    assert_ne!(g.status("acceptance"), "FAIL", "{}", g.md);
    assert!(
        g.out
            .stdout
            .contains("over 300 paired outcomes (100 tasks)"),
        "{}",
        g.out
    );
    let worse = b.run(|i| i % 5 != 0, BASE_COMPLETION); // 10 of 100 tasks lost, all repeats
    let g = b.gate(worse, &[]);
    g.out.assert_code(3);
    assert_eq!(g.status("acceptance"), "FAIL", "{}", g.md);
    let s = &g.out.stdout;
    assert!(
        s.contains("drop 10.0 points [") && s.contains("(paired-cluster-bootstrap, 95%)"),
        "{s}"
    );
    // Every resample of 100 tasks keeps some lost task: p is the floor 2/(2000 + 1).
    assert!(s.contains("paired-cluster-bootstrap p = 1.0e-3"), "{s}");
}

#[test]
fn a_cost_increase_beyond_the_threshold_fails_and_one_within_it_passes() {
    let mut b = Bench::new(40);
    let base = b.run(|_| true, BASE_COMPLETION);
    b.save(base);
    // 577 completion tokens: (512 × 0.40 + 1536 × 0.10 + 577 × 1.60) / 854.4 = ×1.500.
    let dear = b.run(|_| true, 577);
    let g = b.gate(dear, &[]);
    g.out.assert_code(3);
    assert_eq!(g.status("cost per accepted"), "FAIL", "{}", g.md);
    assert!(
        g.md.contains("| ×1.500 [1.500, 1.500] | ×1.100 |"),
        "{}",
        g.md
    );
    insta::assert_snapshot!("gate_cost_fail_markdown", g.md);
    // No price changed, so no price change is named.
    assert!(!g.out.stdout.contains("price changed"), "{}", g.out);

    // JUnit: one test case per check, the failure carrying the figures.
    let report = quick_junit::Report::deserialize_from_str(&g.junit).expect("JUnit XML");
    let suite = &report.test_suites[0];
    // Acceptance, cost, and the class's routed choice (which still qualifies).
    assert_eq!((report.tests, report.failures), (3, 1), "{}", g.junit);
    assert_eq!(suite.test_cases.len(), 3);
    let failed = suite
        .test_cases
        .iter()
        .find(|c| c.name.as_str() == "s / p: cost per accepted")
        .expect("the cost test case");
    match &failed.status {
        quick_junit::TestCaseStatus::NonSuccess { message, .. } => {
            let m = message.as_ref().expect("a failure message").as_str();
            assert!(
                m.contains("$0.000854 → $0.001282") && m.contains("×1.500"),
                "{m}"
            );
        }
        s => panic!("not a failure: {s:?}"),
    }

    // 337 completion tokens: ×1.051, inside 10%.
    let slightly = b.run(|_| true, 337);
    let g = b.gate(slightly, &[]);
    g.out.assert_code(0);
    assert_eq!(g.status("cost per accepted"), "PASS", "{}", g.md);
    assert!(g.md.contains("| ×1.051 [1.051, 1.051] |"), "{}", g.md);
    // The same run fails a 2% threshold.
    let g = b.gate(slightly, &["--max-cost-increase", "0.02"]);
    g.out.assert_code(3);
    assert_eq!(g.status("cost per accepted"), "FAIL", "{}", g.md);
}

#[test]
fn a_cost_increase_caused_only_by_a_price_change_is_named_as_such() {
    let mut b = Bench::new(40);
    let base = b.run(|_| true, BASE_COMPLETION);
    b.save(base);
    // Same answers and usage, output price doubled: (358.4 + 310 × 3.20) / 854.4 = ×1.581.
    let dearer = b.ws.write(
        "providers-dearer.yaml",
        &providers_yaml(&[Provider::new("p", &b.server.base_url())
            .price(Some("{input: 0.40, cached_input: 0.10, output: 3.20}"))]),
    );
    let run = b.run_with(&dearer, &["--new", "--cache", "off"]);
    let g = b.gate(run, &[]);
    g.out.assert_code(3);
    assert_eq!(g.status("cost per accepted"), "FAIL", "{}", g.md);
    let s = &g.out.stdout;
    assert!(s.contains("×1.581"), "{s}");
    assert!(
        s.contains("price changed since the baseline (output $1.6/1M → $3.2/1M); at the baseline's prices the cost ratio is ×1.000: the increase is caused by the price change alone"),
        "{s}"
    );

    // A usage increase with the same price change is not called price-only.
    let both = b.ws.write(
        "providers-both.yaml",
        &providers_yaml(&[Provider::new("p", &b.server.base_url())
            .price(Some("{input: 0.40, cached_input: 0.10, output: 3.20}"))]),
    );
    b.server.set_script(script(|_| true, 577));
    let run = b.run_with(&both, &["--new", "--cache", "off"]);
    let g = b.gate(run, &[]);
    g.out.assert_code(3);
    assert!(
        g.out
            .stdout
            .contains("at the baseline's prices the cost ratio is ×1.500")
            && !g.out.stdout.contains("price change alone"),
        "{}",
        g.out
    );
}

#[test]
fn saving_the_same_run_twice_gives_the_same_file_with_one_outcome_a_line() {
    let mut b = Bench::new(12);
    let base = b.run(|i| i != 3, BASE_COMPLETION);
    let path = b.save(base);
    let first = std::fs::read_to_string(&path).unwrap();
    b.save(base);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
    let outcomes: Vec<&str> = first
        .lines()
        .filter(|l| l.contains("\"verdict\""))
        .collect();
    assert_eq!(outcomes.len(), 12, "{first}");
    // Sorted by task id as text (t0, t1, t10, t11, t2, …), each with its exact cost.
    assert!(outcomes[2].contains("\"task\":\"t10\""), "{first}");
    assert!(
        outcomes[0].contains("\"verdict\":\"accepted\",\"cost\":\"854400000000\""),
        "{first}"
    );
    let t3 = outcomes.iter().find(|l| l.contains("\"t3\"")).unwrap();
    assert!(t3.contains("\"verdict\":\"rejected\""), "{t3}");
    let v: Value = serde_json::from_str(&first).expect("JSON");
    assert_eq!(v["schema_version"], 1);
    // One provider, which qualifies: the route of class `test` is recorded.
    assert_eq!(v["routes"][0]["workload"], "test", "{first}");
    assert_eq!(v["routes"][0]["provider"], "p", "{first}");
    assert_eq!(v["routes"][0]["quality_threshold"], 0.5, "{first}");
}

#[test]
fn the_routed_choice_is_gated_against_the_class_threshold() {
    // The suite's threshold is 0.5; the baseline routes class `test` to `p` (100/100 right).
    let mut b = Bench::new(100);
    let base = b.run(|_| true, BASE_COMPLETION);
    b.save(base);

    // Same answers: the whole Wilson interval [96.3%, 100%] is above 0.5.
    let same = b.run(|_| true, BASE_COMPLETION);
    let g = b.gate(same, &[]);
    g.out.assert_code(0);
    assert_eq!(g.status("routed choice qualifies"), "PASS", "{}", g.md);

    // 20/100 right: Wilson [13.3%, 28.9%] is wholly below 0.5, so `p` no longer qualifies.
    let worse = b.run(|i| i % 5 == 0, BASE_COMPLETION);
    let g = b.gate(worse, &[]);
    g.out.assert_code(3);
    assert_eq!(g.status("routed choice qualifies"), "FAIL", "{}", g.md);
    assert!(g.out.stdout.contains("no longer qualifies"), "{}", g.out);
    assert!(
        g.junit.contains("routed choice qualifies") && g.junit.contains("<failure"),
        "{}",
        g.junit
    );

    // 50/100 right: Wilson [40.4%, 59.6%] straddles 0.5.
    let edge = b.run(|i| i % 2 == 0, BASE_COMPLETION);
    let g = b.gate(edge, &[]);
    assert_eq!(
        g.status("routed choice qualifies"),
        "INCONCLUSIVE",
        "{}",
        g.md
    );
    assert!(g.out.stdout.contains("straddles"), "{}", g.out);
}

#[test]
fn a_missing_corrupt_or_incompatible_baseline_or_an_uncovered_run_is_exit_2_with_the_fix() {
    let mut b = Bench::new(5);
    let run = b.run(|_| true, BASE_COMPLETION);
    let fix = "hint: run `costbench baseline save --run ID --out FILE`";

    // Missing.
    let g = b.gate(run, &[]);
    g.out.assert_code(2);
    assert!(
        g.out.stderr.contains("cannot read the baseline"),
        "{}",
        g.out
    );
    assert!(g.out.stderr.contains(fix), "{}", g.out);

    // Corrupt.
    b.ws.write("baseline.json", "{\"schema_version\": 1, \"rows\": [");
    let g = b.gate(run, &[]);
    g.out.assert_code(2);
    assert!(
        g.out.stderr.contains("is not a costbench baseline"),
        "{}",
        g.out
    );
    assert!(g.out.stderr.contains(fix), "{}", g.out);

    // Incompatible.
    let path = b.save(run);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("\"schema_version\": 1", "\"schema_version\": 7"),
    )
    .unwrap();
    let g = b.gate(run, &[]);
    g.out.assert_code(2);
    assert!(
        g.out.stderr.contains("has baseline schema_version 7"),
        "{}",
        g.out
    );
    assert!(g.out.stderr.contains(fix), "{}", g.out);

    // A run that lacks one of the baseline's tasks.
    std::fs::write(&path, text.replace("\"task\":\"t4\"", "\"task\":\"t9\"")).unwrap();
    let g = b.gate(run, &[]);
    g.out.assert_code(2);
    assert!(
        g.out.stderr.contains("does not cover the baseline")
            && g.out.stderr.contains("task t9 repeat 0"),
        "{}",
        g.out
    );
    assert!(
        g.out.stderr.contains("costbench baseline save"),
        "{}",
        g.out
    );

    // A provider the run does not have.
    std::fs::write(
        &path,
        text.replace("\"provider\": \"p\"", "\"provider\": \"q\""),
    )
    .unwrap();
    let g = b.gate(run, &[]);
    g.out.assert_code(2);
    assert!(g.out.stderr.contains("it has no provider `q`"), "{}", g.out);

    // A threshold out of range.
    std::fs::write(&path, &text).unwrap();
    let g = b.gate(run, &["--max-acceptance-drop", "1.5"]);
    g.out.assert_code(2);
    assert!(g.out.stderr.contains("--max-acceptance-drop"), "{}", g.out);
    // And the good file gates.
    b.gate(run, &[]).out.assert_code(0);
}

#[test]
fn exit_code_3_is_documented_in_help() {
    let b = Bench::new(1);
    let out = b.cmd(&["gate", "--help"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("3 `gate`: a regression is significant"),
        "{out}"
    );
}

#[test]
fn a_provider_without_a_price_gets_an_inconclusive_cost_check_that_says_why() {
    let mut b = Bench::new(10);
    let unpriced = b.ws.write(
        "providers-unpriced.yaml",
        &providers_yaml(&[Provider::new("p", &b.server.base_url()).price(None)]),
    );
    let base = b.run_with(&unpriced, &["--new", "--cache", "off"]);
    b.save(base);
    let run = b.run_with(&unpriced, &["--new", "--cache", "off"]);
    let g = b.gate(run, &[]);
    g.out.assert_code(0);
    assert_eq!(g.status("cost per accepted"), "INCONCLUSIVE", "{}", g.md);
    assert!(
        g.md.contains("calls of unknown cost left out (known costs only): 10 in the baseline, 10 in the run; no known cost on either side: nothing to compare"),
        "{}",
        g.md
    );
}
