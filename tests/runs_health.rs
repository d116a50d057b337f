//! `costbench runs --health`: per provider × run, error rates by kind, retries, latency and
//! time to first token, across the last runs, so a provider getting worse shows.

mod common;

use common::*;
use serde_json::{Value, json};

fn error(status: u16, message: &str) -> Reply {
    Reply::Json(
        status,
        json!({"error": {"message": message, "type": "x", "code": null}}),
    )
}

#[test]
fn runs_health_shows_each_providers_figures_per_run() {
    let tasks = [("t1", "a1"), ("t2", "a2"), ("t3", "a3"), ("t4", "a4")];
    // Run 1: one rate limit on t1. Run 2: t1 and t3 overloaded (529) once, t2 a 500 once.
    let plain = ScriptServer::start(|seen, nth| match (seen.task.as_deref(), nth) {
        (Some("t1"), 0) => error(429, "Rate limit reached"),
        _ => Reply::Json(200, chat_response("a")),
    });
    let events = sse_events("openai-chat-stream.sse");
    let streamed = ScriptServer::start(move |_, _| Reply::Sse {
        chunks: events
            .iter()
            .enumerate()
            .map(|(i, e)| (if i == 1 { 60 } else { 0 }, e.clone()))
            .collect(),
        complete: true,
    });
    let ws = Workspace::new();
    let suite = ws.write("suite.yaml", &suite_yaml("s", &tasks));
    let mut yaml = providers_yaml(&[
        Provider::new("plain", &plain.base_url()),
        Provider::new("streamed", &streamed.base_url()),
    ]);
    yaml.push_str("    stream: true\n"); // the last entry: `streamed`
    let provs = ws.write("providers.yaml", &yaml);
    // Exit 0 or 4 (rejected answers are fine; every outcome gets an answer here).
    ws.run(&[&suite], &provs, &[]).assert_code(0);

    plain.set_script(|seen, nth| match (seen.task.as_deref(), nth) {
        (Some("t1" | "t3"), 0) => error(529, "Overloaded"),
        (Some("t2"), 0) => error(500, "Internal error"),
        _ => Reply::Json(200, chat_response("a")),
    });
    plain.clear_log();
    // --cache off: the second run calls again instead of replaying the first's answers.
    ws.run(&[&suite], &provs, &["--new", "--cache", "off"])
        .assert_code(0);

    let health = |extra: &[&str]| -> Out {
        let mut c = ws.cmd();
        c.args(["runs", "--health"]).args(extra);
        Out::of(c.output().unwrap())
    };
    let out = health(&["--format", "json"]);
    out.assert_code(0);
    let lines = out.json();
    let lines = lines.as_array().unwrap();
    let who: Vec<(String, i64)> = lines
        .iter()
        .map(|l| {
            (
                l["provider"].as_str().unwrap().to_string(),
                l["run"].as_i64().unwrap(),
            )
        })
        .collect();
    // Per provider, oldest run first.
    assert_eq!(
        who,
        [
            ("plain".to_string(), 1),
            ("plain".to_string(), 2),
            ("streamed".to_string(), 1),
            ("streamed".to_string(), 2)
        ]
    );
    let (r1, r2) = (&lines[0], &lines[1]);
    assert_eq!(
        (&r1["calls"], &r1["failed_calls"], &r1["retries"]),
        (&json!(5), &json!(1), &json!(1))
    );
    assert_eq!(r1["error_rates"]["rate_limited"], 0.2);
    assert_eq!(r1["error_rates"]["overloaded"], 0.0);
    assert_eq!(r1["failures"]["rate_limited"]["count"], 1);
    assert_eq!(
        (&r2["calls"], &r2["failed_calls"], &r2["retries"]),
        (&json!(7), &json!(3), &json!(3))
    );
    assert_eq!(r2["error_rates"]["overloaded"], 2.0 / 7.0);
    assert_eq!(r2["error_rates"]["server_error"], 1.0 / 7.0);
    assert_eq!(r2["error_rates"]["rate_limited"], 0.0);
    assert_eq!(r2["error_rate"], 3.0 / 7.0);
    for l in &lines[..2] {
        assert!(l["latency_ms"]["p99"].as_f64().is_some(), "{l}");
        assert_eq!(l["ttft_ms"]["p50"], Value::Null, "not streamed: {l}");
    }
    for l in &lines[2..] {
        assert_eq!((&l["calls"], &l["failed_calls"]), (&json!(4), &json!(0)));
        let ttft = l["ttft_ms"]["p50"].as_f64().unwrap();
        assert!(ttft >= 60.0, "the first token came 60 ms in: {l}");
    }

    // The last run only, one provider, as a table.
    let out = health(&["--last", "1", "--provider", "plain"]);
    out.assert_code(0);
    assert!(out.stdout.contains("overloaded 2 (28.6%)"), "{out}");
    assert!(out.stdout.contains("server_error 1 (14.3%)"), "{out}");
    assert!(
        !out.stdout.contains("rate_limited"),
        "run 1 is not listed: {out}"
    );
    assert!(!out.stdout.contains("│ streamed"), "only plain: {out}");

    let out = health(&["--provider", "nobody"]);
    out.assert_code(2);
    assert!(out.stderr.contains("no provider `nobody`"), "{out}");
}
