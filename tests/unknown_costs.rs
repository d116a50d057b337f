//! Calls whose cost cannot be known (a timeout after the request was sent) are bounded, not
//! read as 0 and not allowed to blank a provider's figures; and runs stored by an earlier
//! costbench still report.

mod common;

use std::collections::HashMap;
use std::sync::Mutex;

use common::*;

// openai-chat.json bills 0.0008544 USD per call at {input 0.40, cached 0.10, output 1.60} and
// reports 2048 prompt tokens. A call that hung can have cost at most every prompt token at the
// input rate plus the suite's max_tokens (16) at the output rate:
//   2048 × 0.40e-6 + 16 × 1.60e-6 = 0.0008192 + 0.0000256 = 0.0008448 USD.
const CALL: f64 = 0.0008544;
const HUNG_MAX: f64 = 0.0008448;

/// Measured on the first build: one timed-out call among 60 made the row's
/// `cost_per_accepted_usd` null. Now the row keeps the known figure and adds the bound.
#[test]
fn a_provider_that_hangs_on_some_first_tries_keeps_its_cost_per_accepted_and_gets_a_bound() {
    let tasks = [("t1", "a1"), ("t2", "a2"), ("t3", "a3"), ("t4", "a4")];
    let answer = answer_with(&tasks);
    let seen: Mutex<HashMap<String, u32>> = Mutex::new(HashMap::new());
    // t1 and t2 hang on their first try, then answer; t3 and t4 answer at once.
    let server = ScriptServer::start(move |req, i| {
        let task = req.task.clone().unwrap_or_default();
        let n = {
            let mut m = seen.lock().unwrap();
            let n = m.entry(task.clone()).or_insert(0);
            *n += 1;
            *n
        };
        if n == 1 && (task == "t1" || task == "t2") {
            Reply::Hang
        } else {
            answer(req, i)
        }
    });
    let ws = Workspace::new();
    let suite = ws.write("suite.yaml", &suite_yaml("s", &tasks));
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url())
            .timeout_s(0.5)
            .max_retries(2)]),
    );
    let out = ws.run(&[&suite], &provs, &[]);
    out.assert_code(0);
    let r = out.json();
    let p = row(&r, "p");
    assert_eq!(p["accepted"], 4, "{p}");
    assert_eq!(p["unpriced_calls"], 2, "the two hung tries");
    assert_eq!(p["failed_calls"], 2);
    // Known costs: the four answers. Not null, not blanked by the two unknown calls.
    assert_close(&p["cost_usd"]["tokens"], 4.0 * CALL, 1e-12);
    assert_close(&p["cost_per_accepted_usd"], CALL, 1e-12);
    // The bound: both hung tries at their most, with the prompt size their answers reported.
    assert_close(&p["cost_usd"]["unknown_max"], 2.0 * HUNG_MAX, 1e-12);
    assert_close(
        &p["cost_per_accepted_max_usd"],
        (4.0 * CALL + 2.0 * HUNG_MAX) / 4.0,
        1e-12,
    );
    assert!(p["cost_per_accepted_max_usd"].as_f64() > p["cost_per_accepted_usd"].as_f64());
    assert_eq!(p["cost_per_accepted_ci"]["basis"], "known costs");
    assert!(p["cost_per_accepted_ci"]["low"].is_number(), "{p}");
    assert_eq!(p["failures"]["timeout"]["count"], 2, "{p}");

    // The table marks the figure and gives the bound in the footnote.
    let table = ws.cmd().args(["report"]).output().unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("$0.000854*"), "{text}");
    assert!(
        text.contains("* s / p: 2 call(s) of unknown cost")
            && text.contains("at most $0.001277 per accepted"),
        "{text}"
    );
}

/// A call without a completion cap cannot be bounded: the bound is null, the known figure
/// stays.
#[test]
fn an_unknown_cost_without_max_tokens_has_no_bound_but_keeps_the_known_figure() {
    let tasks = [("t1", "a1"), ("t2", "a2")];
    let answer = answer_with(&tasks);
    let seen: Mutex<HashMap<String, u32>> = Mutex::new(HashMap::new());
    let server = ScriptServer::start(move |req, i| {
        let task = req.task.clone().unwrap_or_default();
        let first = {
            let mut m = seen.lock().unwrap();
            let n = m.entry(task.clone()).or_insert(0);
            *n += 1;
            *n == 1
        };
        if first && task == "t1" {
            Reply::Hang
        } else {
            answer(req, i)
        }
    });
    let ws = Workspace::new();
    let yaml = suite_yaml("s", &tasks).replace(", max_tokens: 16", "");
    let suite = ws.write("suite.yaml", &yaml);
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url()).timeout_s(0.5)]),
    );
    let out = ws.run(&[&suite], &provs, &[]);
    out.assert_code(0);
    let r = out.json();
    let p = row(&r, "p");
    assert_close(&p["cost_per_accepted_usd"], CALL, 1e-12);
    assert!(p["cost_usd"]["unknown_max"].is_null(), "{p}");
    assert!(p["cost_per_accepted_max_usd"].is_null(), "{p}");
}
