//! `costbench reprice` through the binary: a stored run priced again from its stored usage,
//! with no call, before → after; and each bad price file is a clear error with exit 2.

mod common;

use std::collections::HashMap;
use std::sync::Mutex;

use common::*;
use serde_json::Value;

// openai-chat.json reports 512 input, 1536 cached and 310 output tokens: at {input 0.40,
// cached 0.10, output 1.60} one call costs 0.0008544 USD; at twice those prices 0.0017088.
const CALL: f64 = 0.0008544;
// A hung call's bound: 2048 prompt tokens at the input rate + the suite's 16 max_tokens at the
// output rate = 0.0008448 USD at the stored prices.
const HUNG_MAX: f64 = 0.0008448;
const DOUBLE: &str = "{input: 0.80, cached_input: 0.20, output: 3.20}";

fn reprice(ws: &Workspace, prices: &std::path::Path, extra: &[&str]) -> Out {
    let mut c = ws.cmd();
    c.arg("reprice").arg("--prices").arg(prices).args(extra);
    Out::of(c.output().expect("run costbench reprice"))
}

fn reprice_json(ws: &Workspace, prices: &std::path::Path) -> Value {
    let out = reprice(ws, prices, &["--format", "json"]);
    out.assert_code(0);
    out.json()
}

fn row<'a>(v: &'a Value, provider: &str) -> &'a Value {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["provider"] == provider)
        .unwrap_or_else(|| panic!("no row {provider}: {v:#}"))
}

/// `reprice` reads the store once for both analyses (it read it twice, once per analysis):
/// every figure of every row, and the outcomes, are the same as the two reads gave.
fn one_read_gives_what_two_reads_gave(ws: &Workspace, prices: &std::path::Path) {
    use costbench::analysis::{AnalysisOptions, RunAnalysis};
    let store = costbench::store::Store::open_to_read(&ws.db()).unwrap();
    let run = store.run(None).unwrap();
    let entries = costbench::providers::load_providers(prices).unwrap();
    let prices = costbench::reprice::prices_for(&run, &entries, prices).unwrap();
    let opts = AnalysisOptions::default();
    let (before, after) =
        RunAnalysis::load_before_after(&store, run.clone(), opts, &prices).unwrap();
    let before2 = RunAnalysis::load(&store, run.clone(), opts).unwrap();
    let after2 = RunAnalysis::load_repriced(&store, run, opts, &prices).unwrap();
    for (one, two) in [(&before, &before2), (&after, &after2)] {
        assert_eq!(one.rows.len(), two.rows.len());
        for (x, y) in one.rows.iter().zip(&two.rows) {
            assert_eq!(
                serde_json::to_string(&x.figures).unwrap(),
                serde_json::to_string(&y.figures).unwrap()
            );
            assert_eq!(x.outcomes, y.outcomes);
        }
        assert_eq!(one.task_ids, two.task_ids);
        assert_eq!(one.run.plan, two.run.plan);
    }
    assert_ne!(
        serde_json::to_string(&before.rows[0].figures).unwrap(),
        serde_json::to_string(&after.rows[0].figures).unwrap(),
        "the prices changed something"
    );
}

#[test]
fn doubled_prices_double_every_cost_figure_and_unpriced_attempts_get_a_cost() {
    let tasks = [("t1", "a1"), ("t2", "a2"), ("t3", "a3"), ("t4", "a4")];
    let answer = answer_with(&tasks);
    let seen: Mutex<HashMap<String, u32>> = Mutex::new(HashMap::new());
    // `p` hangs on t1's first try (a call of unknown cost), then answers everything.
    let server = ScriptServer::start(move |req, i| {
        let task = req.task.clone().unwrap_or_default();
        let first = {
            let mut m = seen.lock().unwrap();
            let n = m
                .entry(format!("{}/{task}", req.body["model"]))
                .or_insert(0);
            *n += 1;
            *n == 1
        };
        if first && task == "t1" && req.body["model"] == "priced" {
            Reply::Hang
        } else {
            answer(req, i)
        }
    });
    let ws = Workspace::new();
    let suite = ws.write("suite.yaml", &suite_yaml("s", &tasks));
    let mut p = Provider::new("p", &server.base_url()).timeout_s(0.5);
    p.model = "priced".into();
    let mut free = Provider::new("free", &server.base_url()).price(None);
    free.model = "unpriced".into();
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[p.clone(), free.clone()]),
    );
    ws.run(&[&suite], &provs, &[]).assert_code(0);

    let doubled = ws.write(
        "doubled.yaml",
        &providers_yaml(&[p.clone().price(Some(DOUBLE)), free.price(Some(DOUBLE))]),
    );
    let v = reprice_json(&ws, &doubled);
    assert_eq!(v["any_changed"], true, "{v:#}");
    one_read_gives_what_two_reads_gave(&ws, &doubled);
    let r = row(&v, "p");
    assert_close(&r["cost_per_accepted_usd"]["before"], CALL, 1e-12);
    assert_close(&r["cost_per_accepted_usd"]["after"], 2.0 * CALL, 1e-12);
    assert_close(&r["total_usd"]["after"], 8.0 * CALL, 1e-12);
    // The hung call stays unknown; its bound is taken at the new prices.
    assert_eq!(
        r["unpriced_calls"],
        serde_json::json!({"before": 1, "after": 1})
    );
    assert_close(
        &r["cost_per_accepted_max_usd"]["after"],
        2.0 * (4.0 * CALL + HUNG_MAX) / 4.0,
        1e-12,
    );
    // Every interval is recomputed: the same resampled tasks at twice the cost.
    let (b, a) = (
        &r["cost_per_accepted_ci"]["before"],
        &r["cost_per_accepted_ci"]["after"],
    );
    for k in ["low", "high"] {
        assert_close(&a[k], 2.0 * b[k].as_f64().unwrap(), 1e-12);
    }
    // No price before: every cost unknown; under the new table each answer has one.
    let f = row(&v, "free");
    assert_eq!(f["cost_per_accepted_usd"]["before"], Value::Null);
    assert_close(&f["cost_per_accepted_usd"]["after"], 2.0 * CALL, 1e-12);
    assert_eq!(
        f["unpriced_calls"],
        serde_json::json!({"before": 4, "after": 0})
    );

    // A provider of the run without a price in the file cannot have its calls re-priced.
    let unpriced = ws.write(
        "unpriced.yaml",
        &providers_yaml(&[p, Provider::new("free", "http://x").price(None)]),
    );
    let out = reprice(&ws, &unpriced, &[]);
    assert_eq!(
        out.code, 2,
        "a provider without price cannot re-price:\n{out}"
    );
    assert!(out.stderr.contains("provider `free`"), "{out}");
}

#[test]
fn the_stored_prices_change_nothing() {
    let tasks = [("t1", "a1"), ("t2", "a2")];
    let server = ScriptServer::start(answer_with(&tasks));
    let ws = Workspace::new();
    let (suite, provs) = ws.suite_and_provider(&tasks, &server.base_url());
    ws.run(&[&suite], &provs, &[]).assert_code(0);
    let v = reprice_json(&ws, &provs);
    assert_eq!(v["any_changed"], false, "{v:#}");
    let out = reprice(&ws, &provs, &[]);
    out.assert_code(0);
    assert!(out.stdout.contains("(same)"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("No row's cost per accepted outcome changes."),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.lines().all(|l| l.chars().count() <= 100),
        "{}",
        out.stdout
    );
}

#[test]
fn a_price_file_missing_a_provider_of_the_run_is_an_error_naming_it() {
    let tasks = [("t1", "a1")];
    let server = ScriptServer::start(answer_with(&tasks));
    let ws = Workspace::new();
    let (suite, provs) = ws.suite_and_provider(&tasks, &server.base_url());
    ws.run(&[&suite], &provs, &[]).assert_code(0);
    let other = ws.write(
        "other.yaml",
        &providers_yaml(&[Provider::new("q", "http://x")]),
    );
    let out = reprice(&ws, &other, &[]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("has no provider `p`, which run 1 used (the file has: q)"),
        "{out}"
    );
    assert!(
        out.stderr.contains("hint: give every provider of the run"),
        "{out}"
    );
    let out = reprice(&ws, &provs, &["--run", "5"]);
    out.assert_code(2);
    assert!(out.stderr.contains("no run 5"), "{out}");
    let bad = ws.write("bad.yaml", "providers: [{id: p}]\n");
    reprice(&ws, &bad, &[]).assert_code(2);
}

#[test]
fn a_price_change_that_flips_the_route_says_so_with_the_bill() {
    let tasks: Vec<(String, String)> = (0..20)
        .map(|i| (format!("t{i}"), format!("a{i}")))
        .collect();
    let refs: Vec<(&str, &str)> = tasks
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let server = ScriptServer::start(answer_with(&refs));
    let ws = Workspace::new();
    let suite = ws.write("suite.yaml", &suite_yaml("s", &refs));
    // Both answer every task right; `cheap` is half `dear`'s price, so the route picks it.
    let mut cheap = Provider::new("cheap", &server.base_url())
        .price(Some("{input: 0.40, cached_input: 0.10, output: 1.60}"));
    cheap.model = "m-cheap".into();
    let mut dear = Provider::new("dear", &server.base_url())
        .price(Some("{input: 0.80, cached_input: 0.20, output: 3.20}"));
    dear.model = "m-dear".into();
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[cheap.clone(), dear.clone()]),
    );
    ws.run(&[&suite], &provs, &[]).assert_code(0);
    let policy = ws.write(
        "policy.yaml",
        "classes:\n  test:\n    monthly_volume: 1000000\n",
    );
    let policy = policy.to_str().unwrap();

    // `cheap` becomes 20× dearer: `dear` is now the cheapest qualifier.
    let hike = ws.write(
        "hike.yaml",
        &providers_yaml(&[
            cheap.price(Some("{input: 8.0, output: 32.0}")),
            dear.clone(),
        ]),
    );
    let out = reprice(&ws, &hike, &["--format", "json", "--policy", policy]);
    out.assert_code(0);
    let v = out.json();
    assert_eq!(v["any_route_changed"], true, "{v:#}");
    let c = &v["routes"][0];
    assert_eq!(c["workload"], "test", "{v:#}");
    assert_eq!(
        c["choice"],
        serde_json::json!({"before": "cheap", "after": "dear"}),
        "{v:#}"
    );
    assert_eq!(c["choice_changed"], true, "{v:#}");
    assert_eq!(c["bill_changed"], true, "{v:#}");
    // The bill follows the choice: a million requests at `dear`'s cost per request, which is
    // twice `cheap`'s old one.
    let (b, a) = (
        c["monthly_usd"]["before"].as_f64().unwrap(),
        c["monthly_usd"]["after"].as_f64().unwrap(),
    );
    assert!((a / b - 2.0).abs() < 1e-9, "{b} → {a}");
    assert_close(
        &c["monthly_usd"]["before"],
        1e6 * c["cost_per_request_usd"]["before"].as_f64().unwrap(),
        1e-9,
    );
    assert_eq!(
        v["monthly_total_usd"]["after"], c["monthly_usd"]["after"],
        "{v:#}"
    );

    let table = reprice(&ws, &hike, &["--policy", policy]);
    table.assert_code(0);
    assert!(
        table
            .stdout
            .contains("class `test`: choice CHANGES cheap → dear (bill changes)"),
        "{}",
        table.stdout
    );

    // The run's own prices change no route.
    let same = reprice(&ws, &provs, &["--format", "json"]);
    same.assert_code(0);
    let v = same.json();
    assert_eq!(v["any_route_changed"], false, "{v:#}");
    assert_eq!(v["routes"][0]["choice"]["after"], "cheap", "{v:#}");
}
