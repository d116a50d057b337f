//! `costbench plan`: calls, tokens and cost per suite × provider before anything is spent,
//! with output tokens from history when the database holds a run of the same pair.

mod common;

use common::*;
use serde_json::{Value, json};

/// Two providers: `est` (a model no tokenizer crate knows: estimated tokens) with batch rates,
/// and `gpt` (an OpenAI model: counted with o200k_base) without.
fn providers(url: &str) -> String {
    let mut est = Provider::new("est", url).price(Some(
        "{input: 0.40, output: 1.60, batch: {input: 0.20, output: 0.80}}",
    ));
    est.model = "test-model".into();
    let mut gpt = Provider::new("gpt", url).price(Some("{input: 0.40, output: 1.60}"));
    gpt.model = "gpt-4o-mini".into();
    providers_yaml(&[est, gpt])
}

fn plan(ws: &Workspace, args: &[&str]) -> Out {
    let mut c = ws.cmd();
    c.arg("plan").args(args);
    Out::of(c.output().expect("run costbench plan"))
}

/// `costbench plan SUITE --providers PROVS --format json`, which must succeed.
fn plan_json(ws: &Workspace, suite: &std::path::Path, provs: &std::path::Path) -> Value {
    let (s, p) = (suite.to_str().unwrap(), provs.to_str().unwrap());
    let out = plan(ws, &[s, "--providers", p, "--format", "json"]);
    out.assert_code(0);
    out.json()
}

fn row<'a>(plan: &'a Value, provider: &str) -> &'a Value {
    plan["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["provider"] == provider)
        .unwrap_or_else(|| panic!("no row {provider} in {plan:#}"))
}

#[test]
fn calls_tokens_and_costs_match_a_hand_computed_plan() {
    let ws = Workspace::new();
    let suite = ws.write(
        "suite.yaml",
        &suite_yaml("s", &[("t1", "a"), ("t2", "b"), ("t3", "c")])
            .replace("repeats: 1", "repeats: 2"),
    );
    let provs = ws.write("providers.yaml", &providers("http://127.0.0.1:9/v1"));
    let p = plan_json(&ws, &suite, &provs);
    let est = row(&p, "est");
    // 3 tasks × 2 repeats.
    assert_eq!(est["calls"], json!(6));
    // "Answer briefly." (15 bytes) + "task tN" (7 bytes) = 22 bytes → 6 tokens a request.
    assert_eq!(est["prompt_tokens"]["total"], json!(36));
    assert_eq!(est["prompt_tokens"]["max_per_call"], json!(6));
    assert_eq!(
        est["prompt_tokens"]["counted_with"],
        "estimate: UTF-8 bytes / 4"
    );
    assert_eq!(est["output_tokens"]["cap"], json!(16));
    assert_eq!(est["output_tokens"]["max_total"], json!(96));
    assert_eq!(est["output_tokens"]["history"], Value::Null);
    // Online: 6 × ($0.40 × 6 + $1.60 × 16) / 1M = 6 × $0.000028.
    assert_close(&est["cost_usd"]["online"]["max"], 0.000168, 1e-15);
    assert_eq!(est["cost_usd"]["online"]["expected"], Value::Null);
    // Batch: 6 × ($0.20 × 6 + $0.80 × 16) / 1M = 6 × $0.000014.
    assert_close(&est["cost_usd"]["batch"]["max"], 0.000084, 1e-15);

    let gpt = row(&p, "gpt");
    assert_eq!(gpt["calls"], json!(6));
    assert_eq!(gpt["prompt_tokens"]["counted_with"], "o200k_base");
    assert_eq!(gpt["cost_usd"]["batch"], Value::Null);
    // Each request, by o200k_base and the OpenAI cookbook's chat count: 3 framing tokens
    // a message, 1 for each role, "Answer briefly." = Answer| briefly|. (3) and
    // "task tN" = task| t|N (3), then 3 priming the reply: 3+1+3 + 3+1+3 + 3 = 17.
    let tokens = gpt["prompt_tokens"]["total"].as_u64().unwrap();
    assert_eq!(tokens, 6 * 17);
    let want = 6.0 * (0.40 * 17.0 + 1.60 * 16.0) / 1e6;
    assert_close(&gpt["cost_usd"]["online"]["max"], want, 1e-15);

    let t = &p["totals"];
    assert_eq!(t["calls"], json!(12));
    assert_eq!(t["prompt_tokens"], json!(36 + tokens));
    assert_eq!(t["output_tokens_max"], json!(192));
    assert_close(&t["cost_usd"]["online"]["max"], 0.000168 + want, 1e-15);
    assert_eq!(t["cost_usd"]["online"]["max_rows"], json!(2));
    assert_close(&t["cost_usd"]["batch"]["max"], 0.000084, 1e-15);
    assert_eq!(t["cost_usd"]["batch"]["max_rows"], json!(1));

    // The table says the same for people, and plan never created a database.
    let out = plan(
        &ws,
        &[
            suite.to_str().unwrap(),
            "--providers",
            provs.to_str().unwrap(),
            "--width",
            "200",
        ],
    );
    out.assert_code(0);
    assert!(out.stdout.contains("≤ $0.000168"), "{out}");
    assert!(out.stdout.contains("≤ $0.000084"), "{out}");
    assert!(out.stdout.contains("no batch price"), "{out}");
    assert!(out.stdout.contains("36 (est.)"), "{out}");
    assert!(!ws.db().exists());
}

#[test]
fn output_tokens_come_from_history_when_the_database_has_a_run() {
    // The provider answers t1, t2, t3 with 4, 6 and 8 completion tokens.
    let server = ScriptServer::start(|seen, _| {
        let out = match seen.task.as_deref() {
            Some("t1") => 4,
            Some("t2") => 6,
            _ => 8,
        };
        Reply::Json(
            200,
            json!({
                "id": "x", "object": "chat.completion", "model": "test-model",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "a"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 6, "completion_tokens": out, "total_tokens": 6 + out}
            }),
        )
    });
    let ws = Workspace::new();
    let suite = ws.write(
        "suite.yaml",
        &suite_yaml("s", &[("t1", "a"), ("t2", "a"), ("t3", "a")]),
    );
    let provs = ws.write("providers.yaml", &providers(&server.base_url()));
    ws.run(&[&suite], &provs, &["--only", "est"]).assert_code(0);
    let run_id = ws.report(None)["run"]["id"].clone();

    let p = plan_json(&ws, &suite, &provs);
    let h = &row(&p, "est")["output_tokens"]["history"];
    assert_eq!(h["run"], run_id);
    assert_eq!(h["samples"], json!(3));
    assert_close(&h["mean"], 6.0, 1e-12);
    assert_eq!(h["p95"], json!(8));
    assert_eq!(h["expected_total"], json!(18));
    // 3 × ($0.40 × 6 + $1.60 × 6) / 1M; batch 3 × ($0.20 × 6 + $0.80 × 6) / 1M.
    let est = &row(&p, "est")["cost_usd"];
    assert_close(&est["online"]["expected"], 0.000036, 1e-15);
    assert_close(&est["batch"]["expected"], 0.000018, 1e-15);
    // The cap-based figure stays beside it.
    assert_close(&est["online"]["max"], 0.000084, 1e-15);
    // No run of `gpt` is stored: no history for it.
    assert_eq!(row(&p, "gpt")["output_tokens"]["history"], Value::Null);
    assert_eq!(p["totals"]["cost_usd"]["online"]["expected_rows"], json!(1));
    // Planning called nothing.
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn bad_input_exits_2() {
    let ws = Workspace::new();
    let suite = ws.write("suite.yaml", &suite_yaml("s", &[("t1", "a")]));
    let provs = ws.write("providers.yaml", &providers("http://127.0.0.1:9/v1"));
    let bad_provs = ws.write(
        "bad.yaml",
        "providers:\n  - id: x\n    protocol: nope\n    base_url: http://h/v1\n    model: m\n",
    );
    let junk_db = ws.write(
        "junk.db",
        "this is not a database, just text.................",
    );
    let (s, p, b) = (
        suite.to_str().unwrap(),
        provs.to_str().unwrap(),
        bad_provs.to_str().unwrap(),
    );
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["missing.yaml", "--providers", p], "missing.yaml"),
        (vec![s, "--providers", b], "bad.yaml"),
        (vec![s, "--providers", p, "--only", "nobody"], "nobody"),
        (vec![s, "--providers", p, "--format", "html"], "no HTML"),
        (vec![s, "--providers", p, "--width", "3"], "--width"),
    ];
    for (args, needle) in cases {
        let out = plan(&ws, &args);
        out.assert_code(2);
        assert!(out.stderr.contains(needle), "{args:?}: {out}");
    }
    let mut c = ws.cmd_with_db(&junk_db);
    c.args(["plan", s, "--providers", p]);
    let out = Out::of(c.output().unwrap());
    out.assert_code(2);
    assert!(out.stderr.contains("junk.db"), "{out}");
}
