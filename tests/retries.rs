//! Retry classification against real HTTP servers: every try is stored with its error kind,
//! retryable failures are retried up to the limit, terminal ones are not, and one failing
//! provider never stops the others.

mod common;

use common::*;
use serde_json::{Value, json};
use test_case::test_case;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CHAT: &str = "/v1/chat/completions";
/// The openai-chat.json usage priced at {input 0.40, cached 0.10, output 1.60}:
/// 512 × 0.40 + 1536 × 0.10 + 310 × 1.60 = 854.4 USD per 1M calls (see tests/cost.rs).
const FIXTURE_COST_FEMTO: i64 = 854_400_000_000;

fn one_task_suite(ws: &Workspace) -> std::path::PathBuf {
    ws.write("suite.yaml", &suite_yaml("s", &[("t1", "42")]))
}

/// How the first try of the only task is answered; later tries get a good answer.
struct First {
    status: u16,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
}

#[test_case(First { status: 429, headers: &[("retry-after", "0")], body: include_str!("fixtures/openai-error-429.json") },
    "rate_limited", true ; "429 with retry-after 0 is retried")]
#[test_case(First { status: 429, headers: &[("retry-after-ms", "0")], body: include_str!("fixtures/openai-error-429.json") },
    "rate_limited", true ; "429 with retry-after-ms 0 is retried")]
#[test_case(First { status: 500, headers: &[], body: r#"{"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}"# },
    "server_error", true ; "500 is retried")]
#[test_case(First { status: 503, headers: &[("x-should-retry", "false")], body: "" },
    "server_error", false ; "x-should-retry false stops the retry")]
#[test_case(First { status: 429, headers: &[("retry-after", "30")], body: include_str!("fixtures/openai-error-429.json") },
    "rate_limited", false ; "retry-after above the limit is not waited for")]
#[test_case(First { status: 429, headers: &[], body: include_str!("fixtures/openai-error-insufficient-quota.json") },
    "quota", false ; "insufficient_quota is terminal")]
#[test_case(First { status: 401, headers: &[], body: r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"# },
    "auth", false ; "401 is terminal")]
#[test_case(First { status: 200, headers: &[("content-type", "application/json")], body: "this is not json {" },
    "bad_response", false ; "malformed 200 body is not retried")]
#[tokio::test]
async fn first_try_fails(first: First, kind: &str, retried: bool) {
    let server = MockServer::start().await;
    let mut tmpl = ResponseTemplate::new(first.status).set_body_string(first.body);
    for (k, v) in first.headers {
        tmpl = tmpl.insert_header(*k, *v);
    }
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(tmpl)
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(ResponseTemplate::new(200).set_body_json(chat_response("42")))
        .with_priority(2)
        .mount(&server)
        .await;

    let ws = Workspace::new();
    let suite = one_task_suite(&ws);
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &format!("{}/v1", server.uri()))
            .max_retries(2)
            .max_retry_after_s(5)]),
    );
    let out = ws.run(&[&suite], &provs, &[]);
    let requests = server
        .received_requests()
        .await
        .expect("recording on")
        .len();

    let all = ws.attempts();
    let tries = tries_of(&all, "p", "t1");
    let report = out.json();
    let r = row(&report, "p");
    if retried {
        out.assert_code(0);
        assert_eq!(requests, 2, "one retry after the failure");
        assert_eq!(kinds(&tries), vec![Some(kind.to_string()), None]);
        assert_eq!((tries[0].try_no, tries[1].try_no), (0, 1));
        assert!(!tries[0].is_final && !tries[0].answered);
        assert_eq!(tries[0].http_status, Some(i64::from(first.status)));
        assert!(tries[1].is_final && tries[1].answered);
        assert_eq!(tries[1].cost_femto, Some(FIXTURE_COST_FEMTO));
        // A rejected request is not billed.
        assert_eq!(tries[0].cost_femto, Some(0));
        assert_eq!(
            (&r["calls"], &r["retries"], &r["failed_calls"]),
            (&json!(2), &json!(1), &json!(1))
        );
        assert_eq!((&r["accepted"], &r["unanswered"]), (&json!(1), &json!(0)));
        assert_close(&r["cost_usd"]["tokens"], 0.0008544, 1e-12);
    } else {
        // A refused key is a configuration error (exit 2), other terminal failures exit 4.
        out.assert_code(if kind == "auth" { 2 } else { 4 });
        assert_eq!(requests, 1, "a terminal failure is not retried");
        assert_eq!(kinds(&tries), vec![Some(kind.to_string())]);
        assert!(tries[0].is_final && !tries[0].answered);
        assert_eq!(tries[0].http_status, Some(i64::from(first.status)));
        assert_eq!(
            (&r["calls"], &r["retries"], &r["failed_calls"]),
            (&json!(1), &json!(0), &json!(1))
        );
        assert_eq!((&r["accepted"], &r["unanswered"]), (&json!(0), &json!(1)));
        let says = if kind == "auth" {
            "provider `p` answered HTTP 401"
        } else {
            "1 of 1 outcomes got no answer"
        };
        assert!(out.stderr.contains(says), "{out}");
    }
}

#[test]
fn malformed_body_cost_is_unknown() {
    // A 200 we cannot read may still have been billed: its cost is unknown, not zero.
    let server = ScriptServer::start(|_, _| Reply::Raw {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: "{\"choices\": [".into(),
    });
    let ws = Workspace::new();
    let suite = one_task_suite(&ws);
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url())]),
    );
    let out = ws.run(&[&suite], &provs, &[]);
    out.assert_code(4);
    assert_eq!(server.tasks(), vec!["t1"]);
    let all = ws.attempts();
    assert_eq!(
        kinds(&tries_of(&all, "p", "t1")),
        vec![Some("bad_response".into())]
    );
    assert_eq!(all[0].cost_femto, None);
    let report = out.json();
    let r = row(&report, "p");
    assert_eq!(r["cost_usd"]["tokens"], Value::Null);
    assert_eq!(r["unpriced_calls"], json!(1));
}

#[test]
fn connection_reset_is_retried() {
    let server = ScriptServer::start(|_, nth| {
        if nth == 0 {
            Reply::Reset
        } else {
            Reply::Json(200, chat_response("42"))
        }
    });
    let ws = Workspace::new();
    let suite = one_task_suite(&ws);
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url())]),
    );
    let out = ws.run(&[&suite], &provs, &[]);
    out.assert_code(0);
    assert_eq!(server.tasks(), vec!["t1", "t1"]);
    let all = ws.attempts();
    let tries = tries_of(&all, "p", "t1");
    assert_eq!(kinds(&tries), vec![Some("connection".into()), None]);
    assert_eq!(tries[0].http_status, None);
    assert!(!tries[0].is_final);
    assert!(tries[1].answered && tries[1].is_final);
    let report = out.json();
    let r = row(&report, "p");
    assert_eq!(
        (
            &r["calls"],
            &r["retries"],
            &r["failed_calls"],
            &r["unanswered"]
        ),
        (&json!(2), &json!(1), &json!(1), &json!(0))
    );
}

#[test]
fn timeout_is_retried_to_the_limit_then_unanswered_with_unknown_cost() {
    let server = ScriptServer::start(|_, _| Reply::Hang);
    let ws = Workspace::new();
    let suite = one_task_suite(&ws);
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url())
            .timeout_s(0.5)
            .max_retries(2)]),
    );
    let out = ws.run(&[&suite], &provs, &[]);
    out.assert_code(4);
    assert!(
        out.stderr.contains("1 of 1 outcomes got no answer"),
        "{out}"
    );
    assert_eq!(server.tasks(), vec!["t1", "t1", "t1"], "1 try + 2 retries");

    let all = ws.attempts();
    let tries = tries_of(&all, "p", "t1");
    assert_eq!(kinds(&tries), vec![Some("timeout".to_string()); 3]);
    assert_eq!(
        tries.iter().map(|a| a.try_no).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_eq!(
        tries.iter().map(|a| a.is_final).collect::<Vec<_>>(),
        vec![false, false, true]
    );
    assert!(tries.iter().all(|a| !a.answered && a.cost_femto.is_none()));

    let report = out.json();
    let r = row(&report, "p");
    assert_eq!((&r["unanswered"], &r["accepted"]), (&json!(1), &json!(0)));
    assert_eq!(
        (
            &r["calls"],
            &r["failed_calls"],
            &r["retries"],
            &r["unpriced_calls"]
        ),
        (&json!(3), &json!(3), &json!(2), &json!(3))
    );
    // A timed-out call may have been billed: unknown, never 0.
    assert_eq!(r["cost_usd"]["tokens"], Value::Null);
    assert_eq!(r["cost_usd"]["total"], Value::Null);
    assert_eq!(r["spent_usd"], Value::Null);
    assert_eq!(r["cost_per_accepted_usd"], Value::Null);
    assert_eq!(report["run"]["status"], "incomplete");
}

#[test]
fn a_failing_provider_never_aborts_the_others() {
    let broken = ScriptServer::start(|_, _| {
        Reply::Json(
            500,
            json!({"error": {"message": "boom", "type": "server_error", "param": null, "code": null}}),
        )
    });
    let fine = ScriptServer::start(answer_with(&[("t1", "a1"), ("t2", "a2"), ("t3", "a3")]));
    let ws = Workspace::new();
    let suite = ws.write(
        "suite.yaml",
        &suite_yaml("s", &[("t1", "a1"), ("t2", "a2"), ("t3", "a3")]),
    );
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[
            Provider::new("broken", &broken.base_url()).max_retries(1),
            Provider::new("fine", &fine.base_url()),
        ]),
    );
    // Half of all outcomes fail: allowed by --max-failed-share 0.5.
    let out = ws.run(&[&suite], &provs, &["--max-failed-share", "0.5"]);
    out.assert_code(0);

    let mut fine_tasks = fine.tasks();
    fine_tasks.sort();
    assert_eq!(fine_tasks, vec!["t1", "t2", "t3"]);
    assert_eq!(broken.requests().len(), 6, "3 tasks × (1 try + 1 retry)");

    let all = ws.attempts();
    for t in ["t1", "t2", "t3"] {
        let ok = tries_of(&all, "fine", t);
        assert_eq!(kinds(&ok), vec![None], "fine/{t}");
        assert!(ok[0].answered && ok[0].is_final);
        let bad = tries_of(&all, "broken", t);
        assert_eq!(
            kinds(&bad),
            vec![Some("server_error".to_string()); 2],
            "broken/{t}"
        );
    }

    let report = out.json();
    let f = row(&report, "fine");
    assert_eq!(
        (
            &f["accepted"],
            &f["unanswered"],
            &f["failed_calls"],
            &f["calls"]
        ),
        (&json!(3), &json!(0), &json!(0), &json!(3))
    );
    assert_close(&f["acceptance"]["rate"], 1.0, 0.0);
    let b = row(&report, "broken");
    assert_eq!(
        (
            &b["accepted"],
            &b["unanswered"],
            &b["failed_calls"],
            &b["calls"],
            &b["retries"]
        ),
        (&json!(0), &json!(3), &json!(6), &json!(6), &json!(3))
    );
    assert_eq!(b["cost_per_accepted_usd"], Value::Null);
}

#[test]
fn more_failures_than_allowed_exit_4() {
    let broken =
        ScriptServer::start(|_, _| Reply::Json(500, json!({"error": {"message": "boom"}})));
    let fine = ScriptServer::start(answer_with(&[("t1", "a1")]));
    let ws = Workspace::new();
    let suite = ws.write("suite.yaml", &suite_yaml("s", &[("t1", "a1")]));
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[
            Provider::new("broken", &broken.base_url()).max_retries(0),
            Provider::new("fine", &fine.base_url()),
        ]),
    );
    let out = ws.run(&[&suite], &provs, &["--max-failed-share", "0.49"]);
    out.assert_code(4);
    assert!(
        out.stderr.contains("1 of 2 outcomes got no answer"),
        "{out}"
    );
    // The report is still printed in full.
    assert_eq!(row(&out.json(), "fine")["accepted"], json!(1));
}

#[test]
fn refused_connection_is_retried_and_costs_nothing() {
    // A port nobody listens on: nothing reaches a provider, so the cost is known to be 0.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let ws = Workspace::new();
    let suite = one_task_suite(&ws);
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[
            Provider::new("p", &format!("http://127.0.0.1:{port}/v1")).max_retries(1)
        ]),
    );
    let out = ws.run(&[&suite], &provs, &[]);
    out.assert_code(4);
    let all = ws.attempts();
    let tries = tries_of(&all, "p", "t1");
    assert_eq!(kinds(&tries), vec![Some("connection".to_string()); 2]);
    assert!(
        tries
            .iter()
            .all(|a| a.cost_femto == Some(0) && a.http_status.is_none())
    );
    let report = out.json();
    let r = row(&report, "p");
    assert_close(&r["cost_usd"]["tokens"], 0.0, 0.0);
    assert_eq!((&r["calls"], &r["unanswered"]), (&json!(2), &json!(1)));
}

#[test]
fn deepseek_out_of_resources_is_billed_and_retried() {
    // finish_reason insufficient_system_resource: the tokens are billed, but it is no answer.
    let server = ScriptServer::start(|_, nth| {
        let mut body = fixture("deepseek-chat.json");
        if nth == 0 {
            body["choices"][0]["finish_reason"] = json!("insufficient_system_resource");
        }
        Reply::Json(200, body)
    });
    let ws = Workspace::new();
    let suite = one_task_suite(&ws);
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url())
            .price(Some("{input: 0.28, cached_input: 0.028, output: 0.42}"))]),
    );
    let out = ws.run(&[&suite], &provs, &[]);
    out.assert_code(0);
    assert_eq!(server.tasks(), vec!["t1", "t1"]);
    let all = ws.attempts();
    let tries = tries_of(&all, "p", "t1");
    assert_eq!(kinds(&tries), vec![Some("incomplete".to_string()), None]);
    assert!(!tries[0].answered && tries[1].answered);
    assert_eq!(tries[0].cost_femto, Some(277_368_000_000));
    assert_eq!(tries[1].cost_femto, Some(277_368_000_000));
    let report = out.json();
    let r = row(&report, "p");
    assert_close(&r["cost_usd"]["tokens"], 2.0 * 0.000277368, 1e-12);
    assert_close(&r["cost_per_accepted_usd"], 2.0 * 0.000277368, 1e-12);
    assert_eq!(
        (&r["calls"], &r["failed_calls"], &r["accepted"]),
        (&json!(2), &json!(1), &json!(1))
    );
}

#[test]
fn the_server_wait_replaces_the_backoff() {
    // retry-after-ms 400 against a 10 ms backoff: the retry comes no sooner than asked.
    let server = ScriptServer::start(|_, nth| {
        if nth == 0 {
            Reply::Raw {
                status: 429,
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("retry-after-ms".into(), "400".into()),
                ],
                body: include_str!("fixtures/openai-error-429.json").into(),
            }
        } else {
            Reply::Json(200, chat_response("42"))
        }
    });
    let ws = Workspace::new();
    let suite = one_task_suite(&ws);
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url())]),
    );
    ws.run(&[&suite], &provs, &[]).assert_code(0);
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    let waited = seen[1].at.duration_since(seen[0].at);
    assert!(
        waited >= std::time::Duration::from_millis(400),
        "retried after {waited:?}, before the server's retry-after-ms"
    );
    let all = ws.attempts();
    assert_eq!(
        kinds(&tries_of(&all, "p", "t1")),
        vec![Some("rate_limited".to_string()), None]
    );
}
