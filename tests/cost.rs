//! Exact cost arithmetic end to end: provider wire-format usage × the providers file's prices,
//! stored as integer femto-dollars (1e-15 USD) and reported in USD. A cost that cannot be
//! known (no price, an unpriced token class, no usage) is NULL / null, never 0.

mod common;

use common::*;
use serde_json::{Value, json};
use test_case::test_case;

/// Token counts as the report states them: (input, cached_input, cache_write, output, reasoning).
type Tokens = (u64, u64, u64, u64, u64);

/// Femto-dollars to USD for comparisons.
fn usd(femto: i64) -> f64 {
    femto as f64 / 1e15
}

fn serve_verbatim(body: Value) -> ScriptServer {
    ScriptServer::start(move |_, _| Reply::Json(200, body.clone()))
}

// openai-chat.json: prompt 2048 (1536 cached) → 512 input; completion 310 (192 reasoning).
//   512 × 0.40 + 1536 × 0.10 + 310 × 1.60 = 204.8 + 153.6 + 496 = 854.4 USD per 1M calls,
//   i.e. 0.0008544 USD = 854_400_000_000 femto per call. (512 × 0.40e-6 is 0.0002048.)
#[test_case("openai-chat.json", Some("{input: 0.40, cached_input: 0.10, output: 1.60}"),
    Some(854_400_000_000), (512, 1536, 0, 310, 192) ; "openai cached and reasoning")]
// deepseek-chat.json: prompt_cache_hit_tokens 2816, prompt_cache_miss_tokens 184, completion 350.
//   184 × 0.28 + 2816 × 0.028 + 350 × 0.42 = 51.52 + 78.848 + 147 = 277.368 USD per 1M calls.
#[test_case("deepseek-chat.json", Some("{input: 0.28, cached_input: 0.028, output: 0.42}"),
    Some(277_368_000_000), (184, 2816, 0, 350, 300) ; "deepseek hit and miss")]
// kimi-chat.json: prompt 1800 (1536 cached), completion 60.
//   264 × 0.60 + 1536 × 0.15 + 60 × 2.50 = 158.4 + 230.4 + 150 = 538.8.
#[test_case("kimi-chat.json", Some("{input: 0.60, cached_input: 0.15, output: 2.50}"),
    Some(538_800_000_000), (264, 1536, 0, 60, 0) ; "kimi cached")]
// qwen-chat.json: prompt 2100 of which 2048 written to the explicit cache, completion 40.
//   52 × 0.40 + 2048 × 0.50 + 40 × 1.20 = 20.8 + 1024 + 48 = 1092.8.
#[test_case("qwen-chat.json", Some("{input: 0.40, cache_write: 0.50, output: 1.20}"),
    Some(1_092_800_000_000), (52, 0, 2048, 40, 0) ; "qwen cache write")]
// openrouter-chat.json reports usage.cost 0.0137226: taken as is, even without a price.
#[test_case("openrouter-chat.json", None,
    Some(13_722_600_000_000), (260, 8192, 2048, 187, 0) ; "openrouter reported cost")]
// Local servers at shadow prices: ollama reports 48 prompt / 9 completion tokens;
//   48 × 0.05 + 9 × 0.10 = 2.4 + 0.9 = 3.3 per 1M calls.
#[test_case("ollama-openai-chat.json", Some("{input: 0.05, output: 0.10}"),
    Some(3_300_000_000), (48, 0, 0, 9, 0) ; "ollama shadow price")]
// llama.cpp and vLLM report 32 of the 48 prompt tokens as cached (prefix cache):
//   16 × 0.05 + 32 × 0.01 + 9 × 0.10 = 0.8 + 0.32 + 0.9 = 2.02 per 1M calls.
#[test_case("llamacpp-chat.json", Some("{input: 0.05, cached_input: 0.01, output: 0.10}"),
    Some(2_020_000_000), (16, 32, 0, 9, 0) ; "llama.cpp prefix cache")]
#[test_case("vllm-chat.json", Some("{input: 0.05, cached_input: 0.01, output: 0.10}"),
    Some(2_020_000_000), (16, 32, 0, 9, 0) ; "vllm prefix cache")]
// ERNIE (Qianfan v2) and Doubao (Volcengine Ark) fixtures are written for this project from the
// providers' documented response shapes (../shared/reference has none for them).
// ernie-chat.json: ERNIE X1 puts its thinking in `reasoning_content` and reports only totals:
//   120 × 0.28 + 480 × 1.10 = 33.6 + 528 = 561.6 per 1M calls.
#[test_case("ernie-chat.json", Some("{input: 0.28, output: 1.10}"),
    Some(561_600_000_000), (120, 0, 0, 480, 0) ; "ernie totals only")]
// doubao-chat.json: prompt 1500 (1024 cached), completion 300 (120 reasoning), tier "default":
//   476 × 0.15 + 1024 × 0.03 + 300 × 1.50 = 71.4 + 30.72 + 450 = 552.12 per 1M calls.
#[test_case("doubao-chat.json", Some("{input: 0.15, cached_input: 0.03, output: 1.50}"),
    Some(552_120_000_000), (476, 1024, 0, 300, 120) ; "doubao cached and reasoning")]
// Ark's `service_tier: scale` means the call drew on a prepaid TPM package, not the list
// price: with no `service_tiers.scale` rates its cost is unknown, never the list price.
#[test_case("doubao-chat-scale.json", Some("{input: 0.15, cached_input: 0.03, output: 1.50}"),
    None, (476, 1024, 0, 300, 120) ; "doubao scale tier without its rates is unknown")]
#[test_case("openai-chat.json", None, None, (512, 1536, 0, 310, 192) ; "no price is unknown")]
#[test_case("openai-chat.json", Some("{input: 0.40, output: 1.60}"),
    None, (512, 1536, 0, 310, 192) ; "cached tokens without cached_input price are unknown")]
#[test_case("deepseek-chat.json", Some("{input: 0.28, output: 0.42}"),
    None, (184, 2816, 0, 350, 300) ; "deepseek hits without cached_input price are unknown")]
#[test_case("qwen-chat.json", Some("{input: 0.40, output: 1.20}"),
    None, (52, 0, 2048, 40, 0) ; "cache writes without cache_write price are unknown")]
fn fixture_usage_is_priced_exactly(
    fixture_name: &str,
    price: Option<&str>,
    femto_per_call: Option<i64>,
    tokens_per_call: Tokens,
) {
    let server = serve_verbatim(fixture(fixture_name));
    let ws = Workspace::new();
    let suite = ws.write(
        "suite.yaml",
        &suite_yaml("s", &[("t1", "42"), ("t2", "42")]),
    );
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url()).price(price)]),
    );
    let out = ws.run(&[&suite], &provs, &[]);
    out.assert_code(0);

    let all = ws.attempts();
    assert_eq!(all.len(), 2);
    for a in &all {
        assert!(a.answered && a.usage_known, "{a:?}");
        assert_eq!(a.cost_femto, femto_per_call, "cost_femto of {}", a.task_id);
        assert_eq!(
            a.spent_femto, femto_per_call,
            "spent_femto of {}",
            a.task_id
        );
        let (input, cached, _, output, reasoning) = tokens_per_call;
        assert_eq!(
            (
                a.input_tokens,
                a.cached_tokens,
                a.output_tokens,
                a.reasoning_tokens
            ),
            (input as i64, cached as i64, output as i64, reasoning as i64)
        );
    }

    let report = out.json();
    let r = row(&report, "p");
    let (input, cached, write, output, reasoning) = tokens_per_call;
    assert_eq!(
        r["tokens"],
        json!({"input": 2 * input, "cached_input": 2 * cached, "cache_write": 2 * write,
               "output": 2 * output, "reasoning": 2 * reasoning})
    );
    assert_eq!(r["accepted"], json!(2));
    match femto_per_call {
        Some(c) => {
            assert_close(&r["cost_usd"]["tokens"], usd(2 * c), 1e-12);
            assert_close(&r["cost_usd"]["rejections"], 0.0, 0.0);
            assert_close(&r["cost_usd"]["total"], usd(2 * c), 1e-12);
            assert_close(&r["spent_usd"], usd(2 * c), 1e-12);
            assert_close(&r["cost_per_accepted_usd"], usd(c), 1e-12);
            assert_eq!(r["unpriced_calls"], json!(0));
        }
        None => {
            assert_eq!(r["cost_usd"]["tokens"], Value::Null);
            assert_eq!(r["cost_usd"]["total"], Value::Null);
            assert_eq!(r["spent_usd"], Value::Null);
            assert_eq!(r["cost_per_accepted_usd"], Value::Null);
            assert_eq!(r["cost_per_accepted_ci"]["low"], Value::Null);
            assert_eq!(r["unpriced_calls"], json!(2));
        }
    }
}

#[test]
fn openai_fixture_cost_per_call_is_exact() {
    // The headline case on its own: one call, read straight from SQLite and the JSON report.
    let server = serve_verbatim(fixture("openai-chat.json"));
    let ws = Workspace::new();
    let suite = ws.write("suite.yaml", &suite_yaml("s", &[("t1", "42")]));
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url())
            .price(Some("{input: 0.40, cached_input: 0.10, output: 1.60}"))]),
    );
    let out = ws.run(&[&suite], &provs, &[]);
    out.assert_code(0);
    let conn = rusqlite::Connection::open(ws.db()).unwrap();
    let femto: i64 = conn
        .query_row("SELECT cost_femto FROM attempts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(femto, 854_400_000_000);
    assert_eq!(
        femto,
        512 * 400_000_000 + 1536 * 100_000_000 + 310 * 1_600_000_000
    );
    assert!(out.stderr.contains("spent $0.0008544 "), "{out}");
    let r = out.json();
    assert_close(&row(&r, "p")["cost_usd"]["tokens"], 0.0008544, 1e-12);
    assert_close(&row(&r, "p")["cost_per_accepted_usd"], 0.0008544, 1e-12);
}

#[test]
fn rejections_are_charged_per_rejected_outcome() {
    // 3 calls at 854.4e-6 USD; one answer is wrong and costs the suite's rejection cost.
    let server = ScriptServer::start(answer_with(&[("t1", "a1"), ("t2", "a2"), ("t3", "WRONG")]));
    let ws = Workspace::new();
    let yaml = suite_yaml("s", &[("t1", "a1"), ("t2", "a2"), ("t3", "a3")])
        .replace("rejection_cost_usd: 0\n", "rejection_cost_usd: 0.01\n");
    let suite = ws.write("suite.yaml", &yaml);
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url())]),
    );
    let out = ws.run(&[&suite], &provs, &[]);
    out.assert_code(0);
    let report = out.json();
    let r = row(&report, "p");
    assert_eq!((&r["accepted"], &r["unanswered"]), (&json!(2), &json!(0)));
    assert_close(&r["acceptance"]["rate"], 2.0 / 3.0, 1e-12);
    assert_close(&r["cost_usd"]["tokens"], 0.0025632, 1e-12);
    assert_close(&r["cost_usd"]["rejections"], 0.01, 1e-12);
    assert_close(&r["cost_usd"]["total"], 0.0125632, 1e-12);
    assert_close(&r["cost_per_accepted_usd"], 0.0062816, 1e-12);
    assert_eq!(r["qualifies"], json!(true), "2/3 ≥ the 0.5 threshold");
    let ci = &r["cost_per_accepted_ci"];
    assert_eq!(ci["method"], "studentized-bootstrap-log");
    assert_eq!(ci["resamples"], json!(2000));
}

#[test]
fn answer_without_usage_has_unknown_cost() {
    let mut body = chat_response("42");
    body.as_object_mut().unwrap().remove("usage");
    let server = serve_verbatim(body);
    let ws = Workspace::new();
    let (suite, provs) = ws.suite_and_provider(&[("t1", "42")], &server.base_url());
    let out = ws.run(&[&suite], &provs, &[]);
    out.assert_code(0);
    let a = &ws.attempts()[0];
    assert!(a.answered && !a.usage_known);
    assert_eq!(a.cost_femto, None);
    let report = out.json();
    let r = row(&report, "p");
    assert_eq!(r["cost_usd"]["tokens"], Value::Null);
    assert_eq!(r["unpriced_calls"], json!(1));
}

#[test]
fn unknown_cost_reads_unknown_in_the_table() {
    let server = serve_verbatim(fixture("openai-chat.json"));
    let ws = Workspace::new();
    let suite = ws.write("suite.yaml", &suite_yaml("s", &[("t1", "42")]));
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url()).price(None)]),
    );
    let mut c = ws.cmd();
    c.arg("run").arg(&suite).arg("--providers").arg(&provs);
    c.args(["--no-progress", "--format", "table"]);
    let out = Out::of(c.output().unwrap());
    out.assert_code(0);
    assert!(out.stdout.contains("unknown"), "{out}");
    assert!(
        !out.stdout.contains("$0 "),
        "an unknown cost must not print as $0:\n{out}"
    );
    assert!(out.stderr.contains("spent unknown"), "{out}");
}

/// Keys of an object, sorted.
fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort();
    k
}

#[test]
fn report_json_follows_the_documented_contract() {
    let server = ScriptServer::start(answer_with(&[("t1", "a1"), ("t2", "a2"), ("t3", "no")]));
    let ws = Workspace::new();
    let yaml = suite_yaml("s", &[("t1", "a1"), ("t2", "a2"), ("t3", "a3")])
        .replace("rejection_cost_usd: 0\n", "rejection_cost_usd: 0.002\n");
    let suite = ws.write("suite.yaml", &yaml);
    // Another model, so the two never share recorded answers (the cache key is the request,
    // and a replayed answer spends nothing: that made this test flaky).
    let mut unpriced = Provider::new("unpriced", &server.base_url()).price(None);
    unpriced.model = "other-model".into();
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("priced", &server.base_url()), unpriced]),
    );
    let out = ws.run(&[&suite], &provs, &[]);
    out.assert_code(0);
    let report = out.json();
    // `report` prints the same document as `run --format json`.
    assert_eq!(ws.report(None), report);

    assert_eq!(keys(&report), ["rows", "run"]);
    assert_eq!(
        keys(&report["run"]),
        [
            "cache_mode",
            "confidence",
            "created_at",
            "finished_at",
            "id",
            "status"
        ]
    );
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "one row per suite × provider");
    for r in rows {
        assert_eq!(
            keys(r),
            [
                "acceptance",
                "accepted",
                "calls",
                "cost_per_accepted_ci",
                "cost_per_accepted_max_usd",
                "cost_per_accepted_usd",
                "cost_usd",
                "error_rates",
                "failed_calls",
                "failures",
                "grader_errors",
                "graders",
                "human_labelled",
                "latency_ms",
                "outcomes",
                "pending",
                "provider",
                "qualifies",
                "quality_threshold",
                "retries",
                "spent_max_usd",
                "spent_usd",
                "suite",
                "tasks",
                "tokens",
                "ttft_ms",
                "unanswered",
                "unanswered_by_kind",
                "unpriced_calls",
                "workload",
            ]
        );
        assert_eq!(keys(&r["acceptance"]), ["high", "low", "method", "rate"]);
        assert_eq!(
            keys(&r["tokens"]),
            [
                "cache_write",
                "cached_input",
                "input",
                "output",
                "reasoning"
            ]
        );
        assert_eq!(
            keys(&r["cost_usd"]),
            ["rejections", "tokens", "total", "unknown_max"]
        );
        assert_eq!(
            keys(&r["cost_per_accepted_ci"]),
            [
                "basis",
                "high",
                "low",
                "method",
                "resamples",
                "zero_accept_resamples"
            ]
        );
        assert_eq!(keys(&r["latency_ms"]), ["p50", "p95", "p99"]);
        // Not streamed: no time to first token, said as null, not 0.
        assert_eq!(
            r["ttft_ms"],
            serde_json::json!({"p50": null, "p95": null, "p99": null})
        );
        assert_eq!(r["acceptance"]["method"], "wilson");
    }

    insta::assert_json_snapshot!("report_contract", report, {
        ".run.created_at" => "[timestamp]",
        ".run.finished_at" => "[timestamp]",
        ".rows[].latency_ms.p50" => "[ms]",
        ".rows[].latency_ms.p95" => "[ms]",
        ".rows[].latency_ms.p99" => "[ms]",
    });
}

/// Measured on the first build: costs were exact i128 femto-dollars but stored as i64, so one
/// attempt above $9,223.37 (a price typo is enough) wrapped around. Now it is stored exactly.
#[test]
fn an_attempt_above_the_64_bit_femto_range_is_stored_and_reported_exactly() {
    let server = serve_verbatim(fixture("openai-chat.json"));
    let ws = Workspace::new();
    let suite = ws.write("suite.yaml", &suite_yaml("s", &[("t1", "42")]));
    // A typo: $100,000,000 per 1M input tokens, i.e. $100 a token.
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url())
            .price(Some("{input: 100000000, cached_input: 0.10, output: 1.60}"))]),
    );
    let out = ws.run(&[&suite], &provs, &[]);
    out.assert_code(0);
    // 512 × $100 + 1536 × $0.0000001 + 310 × $0.0000016 = $51,200.0006496.
    let exact = "51200000649600000000";
    let conn = rusqlite::Connection::open(ws.db()).unwrap();
    let (small, big): (Option<i64>, Option<String>) = conn
        .query_row("SELECT cost_femto, cost_big FROM attempts", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(small, None, "does not fit in 64 bits, so not stored there");
    assert_eq!(big.as_deref(), Some(exact));
    assert!(out.stderr.contains("spent $51200.0006496 "), "{out}");
    let r = out.json();
    assert_close(&row(&r, "p")["cost_usd"]["tokens"], 51_200.000_649_6, 1e-6);
}

// openai-chat.json answered at the tier named in its `service_tier`; the price lists a
// priority tier at 1.75× list. Priced as served, not as requested:
//   priority: 512 × 0.70 + 1536 × 0.175 + 310 × 2.80 = 358.4 + 268.8 + 868 = 1495.2 per 1M calls;
//   default (a priority request served at the standard tier): the list 854.4.
#[test_case("priority", Some(1_495_200_000_000) ; "priority is priced as priority")]
#[test_case("default", Some(854_400_000_000) ; "a downgraded call is priced at list")]
#[test_case("scale", None ; "a tier without a price is unknown")]
fn the_served_tier_prices_the_call(served: &str, femto_per_call: Option<i64>) {
    let mut body = fixture("openai-chat.json");
    body["service_tier"] = json!(served);
    let server = serve_verbatim(body);
    let ws = Workspace::new();
    let suite = ws.write("suite.yaml", &suite_yaml("s", &[("t1", "42")]));
    let price = "{input: 0.40, cached_input: 0.10, output: 1.60, \
                 service_tiers: {priority: {input: 0.70, cached_input: 0.175, output: 2.80}}}";
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url()).price(Some(price))]),
    );
    ws.run(&[&suite], &provs, &[]).assert_code(0);
    let all = ws.attempts();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].cost_femto, femto_per_call);
}

#[test]
fn a_misspelt_key_inside_a_price_rule_is_located() {
    let ws = Workspace::new();
    let suite = ws.write("suite.yaml", &suite_yaml("s", &[("t1", "42")]));
    let price = "{input: 0.40, output: 1.60, \
                 off_peak: {input: 0.2, outptu: 0.8, peak_hours_utc: ['01:00-04:00'], \
                 peak_weekdays: [8]}}";
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", "http://127.0.0.1:9").price(Some(price))]),
    );
    let out = ws.run(&[&suite], &provs, &[]);
    out.assert_code(2);
    assert!(out.stderr.contains("providers.yaml:"), "{out}");
    assert!(out.stderr.contains("outptu"), "{out}");
    assert!(
        out.stderr.contains("off_peak: missing field `output`"),
        "{out}"
    );
    // A wrong list entry is reported once (it once looped 64 times on its own `null`).
    assert_eq!(out.stderr.matches("not an ISO weekday").count(), 1, "{out}");
    assert!(!out.stderr.contains("null"), "{out}");
}

// `price: catalog` takes gpt-4.1-mini's dated list price from prices/catalog.yaml
// ($0.40 / $0.10 cached / $1.60): the same 854.4 per 1M calls as the explicit price above.
#[test]
fn a_catalog_price_prices_the_call() {
    let server = serve_verbatim(fixture("openai-chat.json"));
    let ws = Workspace::new();
    let suite = ws.write("suite.yaml", &suite_yaml("s", &[("t1", "42")]));
    let mut p = Provider::new("p", &server.base_url()).price(Some("catalog"));
    p.model = "gpt-4.1-mini".into();
    let provs = ws.write("providers.yaml", &providers_yaml(&[p]));
    ws.run(&[&suite], &provs, &[]).assert_code(0);
    assert_eq!(ws.attempts()[0].cost_femto, Some(854_400_000_000));
}
