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

/// The kinds a buyer watches that used to hide in `client_error`, `server_error` or a graded
/// empty answer: a content-policy 400, a 2xx stopped by the filter with no text, a 529.
#[test]
fn refusals_and_overloads_are_kinds_of_their_own() {
    let server = ScriptServer::start(|seen, _| match seen.task.as_deref() {
        Some("t1") => Reply::Json(
            400,
            json!({"error": {"message": "Input data may contain inappropriate content.",
                              "type": "invalid_request_error", "code": "data_inspection_failed"}}),
        ),
        Some("t2") => {
            let mut v = chat_response("");
            v["choices"][0]["finish_reason"] = json!("content_filter");
            Reply::Json(200, v)
        }
        Some("t3") => error(529, "Overloaded"),
        _ => Reply::Json(200, chat_response("a4")),
    });
    let ws = Workspace::new();
    let suite = ws.write(
        "suite.yaml",
        &suite_yaml("s", &[("t1", "a"), ("t2", "a"), ("t3", "a"), ("t4", "a4")]),
    );
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url()).max_retries(0)]),
    );
    let out = ws.run(&[&suite], &provs, &["--max-failed-share", "1"]);
    out.assert_code(0);
    let all = ws.attempts();
    let kind = |t: &str| tries_of(&all, "p", t)[0].error_kind.clone();
    assert_eq!(kind("t1").as_deref(), Some("content_refused"));
    assert_eq!(kind("t2").as_deref(), Some("content_refused"));
    assert_eq!(kind("t3").as_deref(), Some("overloaded"));
    assert_eq!(kind("t4"), None);
    // The filtered 2xx was billed: its cost is known, and it is not an answer to grade.
    let filtered = tries_of(&all, "p", "t2")[0];
    assert!(filtered.cost_femto.is_some_and(|c| c > 0) && !filtered.answered);
    let report = out.json();
    let r = row(&report, "p");
    assert_eq!(r["error_rates"]["content_refused"], 0.5);
    assert_eq!(r["error_rates"]["overloaded"], 0.25);
    assert_eq!(r["unanswered"], 3);
}
