//! Issue 6 tests of the run's shape: the `--events` log and the cost of calls that never
//! left the machine.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

// `--events FILE` writes one parseable JSON object per event, tagged, and never the API key.
#[test]
fn events_log_has_one_parseable_line_per_event() {
    let server = ScriptServer::start(|seen, nth| {
        // The server echoes the key it was given, as some do in their errors.
        let auth = seen.header("authorization").unwrap_or("").to_string();
        match (seen.task.as_deref(), nth) {
            (Some("t2"), 0) => Reply::Json(
                500,
                json!({"error": {"message": format!("down for {auth}")}}),
            ),
            (t, _) => Reply::Json(200, chat_response(&t.unwrap_or("").replace('t', "a"))),
        }
    });
    let ws = Workspace::new();
    let suite = ws.write(
        "suite.yaml",
        &suite_yaml("s", &[("t1", "a1"), ("t2", "a2")]),
    );
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url()).api_key_env("TEST_EVENTS_KEY")]),
    );
    let events = ws.path("events.jsonl");
    let mut c = ws.cmd();
    c.env("TEST_EVENTS_KEY", "sk-events-secret-123");
    c.arg("run").arg(&suite).arg("--providers").arg(&provs);
    c.args(["--no-progress", "--format", "json", "--events"])
        .arg(&events);
    let out = Out::of(c.output().unwrap());
    out.assert_code(0);

    let text = std::fs::read_to_string(&events).unwrap();
    assert!(
        !text.contains("sk-events-secret-123"),
        "the key leaked:\n{text}"
    );
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let tags: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    let count = |t: &str| tags.iter().filter(|x| **x == t).count();
    assert_eq!(tags.first(), Some(&"run_started"));
    assert_eq!(tags.last(), Some(&"run_finished"));
    assert_eq!(count("attempt_finished"), ws.attempts().len());
    assert_eq!(count("attempt_finished"), 3);
    assert_eq!(count("retry_scheduled"), 1);
    assert_eq!(count("outcome_finished"), 2);
    let retry = lines
        .iter()
        .find(|l| l["event"] == "retry_scheduled")
        .unwrap();
    assert_eq!(
        (&retry["task_id"], &retry["reason"]),
        (&json!("t2"), &json!("server_error"))
    );
    let done = lines.last().unwrap();
    assert_eq!(
        (&done["calls"], &done["failed_slots"]),
        (&json!(3), &json!(0))
    );
}

// A provider whose TCP connects are dropped (accept queue full) is a connect failure: never
// sent, and its token cost is a known 0.0 in the JSON report, not null.
#[test]
fn dropped_tcp_connects_cost_a_known_zero() {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    sock.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    // Backlog 0: the kernel queues one connection; it is never accepted, so later SYNs are
    // dropped and connects time out.
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let _filled: Vec<_> = (0..4)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
        })
        .collect();

    let ws = Workspace::new();
    let suite = ws.write("suite.yaml", &suite_yaml("s", &[("t1", "a1")]));
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &format!("http://{addr}/v1"))
            .timeout_s(1.0)
            .max_retries(0)]),
    );
    let out = ws.run(&[&suite], &provs, &[]);
    out.assert_code(4);
    let conn = rusqlite::Connection::open(ws.db()).unwrap();
    let (delivery, kind): (String, String) = conn
        .query_row("SELECT delivery, error_kind FROM attempts", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(
        (delivery.as_str(), kind.as_str()),
        ("never_sent", "connection")
    );
    let report = ws.report(None);
    assert_eq!(row(&report, "p")["cost_usd"]["tokens"], json!(0.0));
}
