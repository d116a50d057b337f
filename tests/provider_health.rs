//! A provider that refuses the configuration (401, 403, 404) is a configuration problem, not a
//! quality result: the run stops calling it after the first refusal, reports its row as not
//! evaluated with the provider's own message, and ends with an error naming the provider, the
//! status and what to check. The slots it never called stay pending for a resume.

mod common;

use common::*;
use serde_json::json;
use test_case::test_case;

#[test_case(401, "invalid_api_key", "Incorrect API key provided: sk-...abcd", "check the API key in $TEST_KEY" ; "401 wrong key")]
#[test_case(403, "permission_denied", "Project does not have access to model", "check the API key in $TEST_KEY" ; "403 permission")]
#[test_case(404, "model_not_found", "The model `gpt-9` does not exist", "check the provider's `model` and `base_url`" ; "404 unknown model")]
fn a_refused_configuration_stops_the_provider(status: u16, code: &str, message: &str, fix: &str) {
    let body =
        json!({"error": {"message": message, "type": "invalid_request_error", "code": code}});
    let bad = ScriptServer::start(move |_, _| Reply::Json(status, body.clone()));
    let good = ScriptServer::start(|_, _| Reply::Json(200, chat_response("42")));
    let ws = Workspace::new();
    let tasks: Vec<(String, &str)> = (0..40).map(|i| (format!("t{i}"), "42")).collect();
    let tasks: Vec<(&str, &str)> = tasks.iter().map(|(i, a)| (i.as_str(), *a)).collect();
    let suite = ws.write("suite.yaml", &suite_yaml("s", &tasks));
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[
            Provider::new("bad", &bad.base_url())
                .api_key_env("TEST_KEY")
                .max_concurrency(1),
            Provider::new("good", &good.base_url()),
        ]),
    );
    let run = |format: &str| {
        let mut c = ws.cmd();
        c.env("TEST_KEY", "sk-test-abcd")
            .arg("run")
            .arg(&suite)
            .arg("--providers")
            .arg(&provs)
            .args(["--no-progress", "--width", "200", "--format", format]);
        Out::of(c.output().expect("run costbench"))
    };
    let out = run("table");
    out.assert_code(2);
    // One call, not forty: the rest would fail the same way.
    assert_eq!(bad.requests().len(), 1, "{out}");
    assert_eq!(good.requests().len(), 40, "{out}");
    assert!(
        out.stderr
            .contains(&format!("provider `bad` answered HTTP {status}")),
        "{out}"
    );
    assert!(out.stderr.contains(message), "{out}");
    assert!(out.stderr.contains(fix), "{out}");
    assert!(
        !out.stderr.contains("sk-test-abcd"),
        "the key leaked: {out}"
    );
    // The row says why instead of a 0% acceptance as if the model had answered badly.
    assert!(out.stdout.contains("not evaluated"), "{out}");
    assert!(!out.stdout.contains("0.0% [0.0%"), "{out}");
    // Fixed configuration: the same command calls only the 39 slots never called (and the
    // refused one again), and nothing of the good provider.
    bad.set_script(|_, _| Reply::Json(200, chat_response("42")));
    let again = run("json");
    again.assert_code(0);
    assert_eq!(bad.requests().len(), 1 + 40, "{again}");
    assert_eq!(good.requests().len(), 40, "{again}");
}

/// A provider whose headers say its request budget is spent is not called again before the
/// reset it names: the run slows down instead of collecting 429s.
#[test]
fn a_spent_rate_limit_header_holds_the_next_call_until_its_reset() {
    let server = ScriptServer::start(|_, _| Reply::Bytes {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-ratelimit-remaining-requests".into(), "0".into()),
            ("x-ratelimit-reset-requests".into(), "800ms".into()),
        ],
        body: chat_response("42").to_string().into_bytes(),
    });
    let ws = Workspace::new();
    let suite = ws.write(
        "suite.yaml",
        &suite_yaml("s", &[("t1", "42"), ("t2", "42")]),
    );
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url()).max_concurrency(1)]),
    );
    ws.run(&[&suite], &provs, &[]).assert_code(0);
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at.duration_since(seen[0].at);
    assert!(gap >= std::time::Duration::from_millis(700), "{gap:?}");
}
