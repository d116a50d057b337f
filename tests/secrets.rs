//! API keys: read from the named environment variable, sent as a bearer token, and never
//! written anywhere (database, cassette, output). A missing key fails its slots without a call.

mod common;

use std::path::Path;

use common::*;
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "sk-secret-123";
const KEY_VAR: &str = "TEST_KEY";

/// A server answering only requests that carry the secret; others get a 401.
async fn keyed_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {SECRET}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(chat_response("a1")))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
            "message": "Incorrect API key provided", "type": "invalid_request_error",
            "param": null, "code": "invalid_api_key"}})))
        .with_priority(2)
        .mount(&server)
        .await;
    server
}

fn setup(ws: &Workspace, server: &MockServer) -> (std::path::PathBuf, std::path::PathBuf) {
    let suite = ws.write(
        "suite.yaml",
        &suite_yaml("s", &[("t1", "a1"), ("t2", "a1")]),
    );
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(
            &[Provider::new("p", &format!("{}/v1", server.uri())).api_key_env(KEY_VAR)],
        ),
    );
    (suite, provs)
}

/// Every byte of every file under `dir`, with the names of files containing `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> (usize, Vec<String>) {
    let mut scanned = 0;
    let mut hits = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            scanned += 1;
            let bytes = std::fs::read(&p).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                hits.push(p.display().to_string());
            }
        }
    }
    (scanned, hits)
}

#[tokio::test]
async fn the_key_is_sent_as_a_bearer_token_and_stored_nowhere() {
    let server = keyed_server().await;
    let ws = Workspace::new();
    let (suite, provs) = setup(&ws, &server);
    let cassette = ws.path("cassette.jsonl");

    let mut printed = String::new();
    let mut c = ws.cmd();
    c.env(KEY_VAR, SECRET)
        .arg("run")
        .arg(&suite)
        .arg("--providers")
        .arg(&provs)
        .args(["--no-progress", "--format", "json", "--cassette"])
        .arg(&cassette);
    let out = Out::of(c.output().unwrap());
    out.assert_code(0);
    printed.push_str(&out.stdout);
    printed.push_str(&out.stderr);

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        assert_eq!(
            r.headers.get("authorization").map(|v| v.to_str().unwrap()),
            Some("Bearer sk-secret-123")
        );
    }
    assert!(ws.attempts().iter().all(|a| a.answered));

    // Every other command that prints, with the key still in its environment.
    for args in [
        vec!["report", "--format", "json"],
        vec!["report", "--format", "md"],
        vec!["runs"],
        vec!["grade"],
    ] {
        let out = Out::of(ws.cmd().env(KEY_VAR, SECRET).args(&args).output().unwrap());
        out.assert_code(0);
        printed.push_str(&out.stdout);
        printed.push_str(&out.stderr);
    }
    let out = Out::of(
        ws.cmd()
            .env(KEY_VAR, SECRET)
            .arg("validate")
            .arg(&suite)
            .arg("--providers")
            .arg(&provs)
            .output()
            .unwrap(),
    );
    out.assert_code(0);
    assert!(out.stdout.contains("TEST_KEY is set"), "{out}");
    printed.push_str(&out.stdout);
    printed.push_str(&out.stderr);

    assert!(!printed.contains(SECRET), "the key was printed:\n{printed}");
    assert!(cassette.exists());
    let (scanned, hits) = files_containing(ws.dir.path(), SECRET.as_bytes());
    assert!(scanned >= 4, "db, cassette, suite and providers files");
    assert!(hits.is_empty(), "the key is stored in {hits:?}");
}

#[tokio::test]
async fn a_rejected_key_is_not_echoed_either() {
    // The wrong key reaches the server (401, terminal); it appears in no stored error.
    let server = keyed_server().await;
    let ws = Workspace::new();
    let (suite, provs) = setup(&ws, &server);
    let wrong = "sk-wrong-456";
    let mut c = ws.cmd();
    c.env(KEY_VAR, wrong)
        .arg("run")
        .arg(&suite)
        .arg("--providers")
        .arg(&provs)
        .args(["--no-progress", "--format", "json"]);
    let out = Out::of(c.output().unwrap());
    out.assert_code(2);
    assert!(
        !out.stdout.contains(wrong) && !out.stderr.contains(wrong),
        "{out}"
    );
    // The first refusal stops further calls; the other task may already be in flight.
    let all = ws.attempts();
    assert!((1..=2).contains(&all.len()), "{all:?}");
    assert!(all.iter().all(|a| a.error_kind.as_deref() == Some("auth")));
    let (_, hits) = files_containing(ws.dir.path(), wrong.as_bytes());
    assert!(hits.is_empty(), "the key is stored in {hits:?}");
}

#[test_case::test_case(None ; "unset")]
#[test_case::test_case(Some("") ; "empty")]
#[tokio::test]
async fn a_missing_key_fails_its_slots_without_a_request(value: Option<&str>) {
    let server = keyed_server().await;
    let ws = Workspace::new();
    let (suite, provs) = setup(&ws, &server);
    let mut c = ws.cmd();
    match value {
        None => c.env_remove(KEY_VAR),
        Some(v) => c.env(KEY_VAR, v),
    };
    c.arg("run")
        .arg(&suite)
        .arg("--providers")
        .arg(&provs)
        .args(["--no-progress", "--format", "json"]);
    let out = Out::of(c.output().unwrap());
    out.assert_code(4);
    assert_eq!(http_calls(&out.stderr), 0, "{out}");
    assert_eq!(server.received_requests().await.unwrap().len(), 0);

    let all = ws.attempts();
    assert_eq!(all.len(), 2, "one attempt per slot, no retries");
    for a in &all {
        assert_eq!(a.error_kind.as_deref(), Some("missing_key"));
        assert!(a.is_final && !a.answered);
        assert!(
            a.error_message.as_deref().unwrap_or("").contains(KEY_VAR),
            "the message names the variable: {a:?}"
        );
    }
    let report = out.json();
    let r = row(&report, "p");
    // Nothing was sent, so nothing counts as a call, and nothing was paid.
    assert_eq!(
        (
            &r["calls"],
            &r["failed_calls"],
            &r["unanswered"],
            &r["accepted"]
        ),
        (&json!(0), &json!(0), &json!(2), &json!(0))
    );
    assert_close(&r["spent_usd"], 0.0, 0.0);
}

#[tokio::test]
async fn replay_needs_no_key() {
    let server = keyed_server().await;
    let ws = Workspace::new();
    let (suite, provs) = setup(&ws, &server);
    let cassette = ws.path("cassette.jsonl");
    let mut c = ws.cmd();
    c.env(KEY_VAR, SECRET)
        .arg("run")
        .arg(&suite)
        .arg("--providers")
        .arg(&provs)
        .args(["--no-progress", "--format", "json", "--cassette"])
        .arg(&cassette);
    Out::of(c.output().unwrap()).assert_code(0);

    let mut c = ws.cmd_with_db(&ws.path("replay.db"));
    c.env_remove(KEY_VAR)
        .arg("run")
        .arg(&suite)
        .arg("--providers")
        .arg(&provs)
        .args([
            "--no-progress",
            "--format",
            "json",
            "--cache",
            "replay",
            "--cassette",
        ])
        .arg(&cassette);
    let out = Out::of(c.output().unwrap());
    out.assert_code(0);
    assert_eq!(row(&out.json(), "p")["accepted"], json!(2));
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        2,
        "only the recording"
    );
}

#[test]
fn a_key_echoed_by_the_server_is_redacted() {
    // Regression guard: a server that quotes the rejected key must not get it stored.
    let server = ScriptServer::start(|seen, _| {
        let auth = seen.header("authorization").unwrap_or("").to_string();
        Reply::Json(
            401,
            json!({"error": {"message": format!("Incorrect API key provided: {auth}"),
                "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
        )
    });
    let ws = Workspace::new();
    let suite = ws.write("suite.yaml", &suite_yaml("s", &[("t1", "a1")]));
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url()).api_key_env(KEY_VAR)]),
    );
    let mut c = ws.cmd();
    c.env(KEY_VAR, SECRET)
        .arg("run")
        .arg(&suite)
        .arg("--providers")
        .arg(&provs)
        .args(["--no-progress", "--format", "json"]);
    let out = Out::of(c.output().expect("run costbench"));
    // A refused key ends the run as a configuration error.
    out.assert_code(2);
    let stored = ws.attempts();
    assert_eq!(stored.len(), 1);
    let message = stored[0].error_message.clone().unwrap_or_default();
    assert!(message.contains("Bearer [REDACTED]"), "{message}");
    let (scanned, hits) = files_containing(ws.dir.path(), SECRET.as_bytes());
    assert!(
        scanned > 0 && hits.is_empty(),
        "the key is stored in {hits:?}"
    );
    assert!(!out.stdout.contains(SECRET) && !out.stderr.contains(SECRET));
}
