//! `costbench run --max-spend USD`: the run stops calling before its spend could pass the cap
//! (calls in flight counted at their bound), says why, exits 6, and the same command with a
//! higher cap resumes without paying for any outcome twice.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// Femto-dollars per token at the test provider's price: input $0.40/1M, output $1.60/1M
/// (cached input $0.10/1M is cheaper than input, so input is the dearest prompt rate).
const INPUT: i128 = 400_000_000;
const OUTPUT: i128 = 1_600_000_000;
/// The completion cap every test suite sends (`max_tokens: 16`).
const CAP_TOKENS: i128 = 16;
/// What one answer costs: 20 prompt tokens and 5 completion tokens.
const CALL_COST: i128 = 20 * INPUT + 5 * OUTPUT;

/// An answer with small, known usage (20 prompt + 5 completion tokens).
fn small_answer(content: &str) -> Value {
    json!({
        "id": "x", "object": "chat.completion", "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
    })
}

/// Task ids of equal length, so every request body has the same length and bound.
fn task_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("t{:02}", 10 + i)).collect()
}

/// The bound of one call whose request body is `len` bytes: every byte a prompt token at the
/// input rate, plus the completion cap at the output rate.
fn bound_of(len: usize) -> i128 {
    len as i128 * INPUT + CAP_TOKENS * OUTPUT
}

fn femto_usd(f: i128) -> String {
    format!(
        "{}.{:015}",
        f / 1_000_000_000_000_000,
        f % 1_000_000_000_000_000
    )
}

/// Writes the suite over `ids` and one provider `p` at `url` with `concurrency`.
fn setup(
    ws: &Workspace,
    ids: &[String],
    url: &str,
    concurrency: usize,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let tasks: Vec<(&str, &str)> = ids.iter().map(|t| (t.as_str(), "ok")).collect();
    let suite = ws.write("suite.yaml", &suite_yaml("s", &tasks));
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", url).max_concurrency(concurrency)]),
    );
    (suite, provs)
}

/// The request-body length of every request (all equal in these tests).
fn body_len(seen: &[Seen]) -> usize {
    let lens: Vec<usize> = seen
        .iter()
        .map(|s| s.header("content-length").unwrap().parse().unwrap())
        .collect();
    assert!(lens.windows(2).all(|w| w[0] == w[1]), "{lens:?}");
    lens[0]
}

/// Money the run's attempts spent, all sessions together (all known in these tests).
fn spent_femto(ws: &Workspace) -> i128 {
    ws.attempts()
        .iter()
        .map(|a| i128::from(a.spent_femto.expect("known spend")))
        .sum()
}

#[test]
fn a_capped_run_stops_within_one_calls_bound_and_a_higher_cap_resumes_without_paying_twice() {
    let server = ScriptServer::start(|_, _| Reply::Json(200, small_answer("ok")));
    let ws = Workspace::new();
    let ids = task_ids(20);
    let (suite, provs) = setup(&ws, &ids, &server.base_url(), 1);
    // Room for the bound of one call (about $0.00008) and several answers at $0.000016.
    let cap = 200_000_000_000; // $0.0002
    let events = ws.path("events.jsonl");
    let out = ws.run(
        &[&suite],
        &provs,
        &[
            "--max-spend",
            "0.0002",
            "--events",
            events.to_str().unwrap(),
        ],
    );
    out.assert_code(6);

    let b = bound_of(body_len(&server.requests()));
    let calls = server.requests().len() as i128;
    let spent = spent_femto(&ws);
    assert_eq!(spent, calls * CALL_COST);
    assert!(spent <= cap, "spent {spent} past the cap {cap}");
    assert!(
        spent + b > cap,
        "stopped early: spent {spent} + one bound {b} still fits {cap}"
    );
    // Hand-computed: n answers fit while n × cost + bound ≤ cap.
    assert_eq!(calls, (cap - b) / CALL_COST + 1);
    let pending = 20 - calls;
    assert!(
        out.stderr.contains(&format!(
            "stopped at the spend cap: spent ${} of $0.0002",
            femto_usd(spent).trim_end_matches('0')
        )),
        "{out}"
    );
    assert!(
        out.stderr.contains(&format!(
            "; {pending} outcomes pending; rerun with a higher --max-spend to resume"
        )),
        "{out}"
    );
    let report = out.json();
    assert_eq!(report["run"]["status"], "capped");
    assert_eq!(row(&report, "p")["pending"], json!(pending));
    let log = std::fs::read_to_string(&events).unwrap();
    let stop: Value = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["event"] == "spend_cap_reached")
        .unwrap_or_else(|| panic!("no spend_cap_reached event in\n{log}"));
    assert_close(&stop["cap_usd"], 0.0002, 1e-12);
    assert_close(&stop["refused_bound_usd"], b as f64 * 1e-15, 1e-12);

    // The same command with a higher cap resumes the same run and calls only the rest.
    let again = ws.run(&[&suite], &provs, &["--max-spend", "1"]);
    again.assert_code(0);
    assert!(again.stderr.contains("(resumed)"), "{again}");
    let report = again.json();
    assert_eq!(report["run"]["status"], "complete");
    assert_eq!(row(&report, "p")["accepted"], json!(20));
    let mut per_task: HashMap<String, usize> = HashMap::new();
    for t in server.tasks() {
        *per_task.entry(t).or_default() += 1;
    }
    assert_eq!(per_task.len(), 20);
    assert!(per_task.values().all(|&n| n == 1), "{per_task:?}");
}

#[test]
fn a_resumed_run_counts_what_its_earlier_session_spent() {
    let server = ScriptServer::start(|_, _| Reply::Json(200, small_answer("ok")));
    let ws = Workspace::new();
    let (suite, provs) = setup(&ws, &task_ids(20), &server.base_url(), 1);
    ws.run(&[&suite], &provs, &["--max-spend", "0.0002"])
        .assert_code(6);
    let first = server.requests().len();
    // The same cap again: the earlier session's spend still counts, so nothing more fits.
    let out = ws.run(&[&suite], &provs, &["--max-spend", "0.0002"]);
    out.assert_code(6);
    assert_eq!(server.requests().len(), first, "{out}");
    assert!(out.stderr.contains("(resumed)"), "{out}");
}

/// A server answering after `delay`, many requests at once, that records the most requests it
/// held at the same time and the body length of each.
struct SlowServer {
    url: String,
    peak: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SlowServer {
    fn start(delay: Duration) -> SlowServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let peak = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (p, s) = (peak.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let now = Arc::new(AtomicUsize::new(0));
                tokio::pin!(stopped);
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        acc = listener.accept() => {
                            let Ok((mut sock, _)) = acc else { continue };
                            let (now, p, s) = (now.clone(), p.clone(), s.clone());
                            tokio::spawn(async move {
                                let mut buf = Vec::new();
                                while let Some(req) = read_request(&mut sock, &mut buf).await {
                                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                                    p.fetch_max(n, Ordering::SeqCst);
                                    s.lock().unwrap().push(req);
                                    tokio::time::sleep(delay).await;
                                    now.fetch_sub(1, Ordering::SeqCst);
                                    let body = small_answer("ok").to_string();
                                    let resp = format!(
                                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                                        body.len()
                                    );
                                    if sock.write_all(resp.as_bytes()).await.is_err() {
                                        return;
                                    }
                                }
                            });
                        }
                    }
                }
            });
        });
        SlowServer {
            url,
            peak,
            seen,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for SlowServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn calls_in_flight_count_at_their_bound() {
    // Eight calls may run at once, but the cap holds three bounds: at most three can be in
    // flight together, however slowly the provider answers.
    let server = SlowServer::start(Duration::from_millis(150));
    let ws = Workspace::new();
    let (suite, provs) = setup(&ws, &task_ids(40), &server.url, 8);
    // The body length, and so the bound, is known only from a request: a first run of one
    // task at the same cap's order measures it.
    let probe = Workspace::new();
    let (s1, p1) = setup(&probe, &task_ids(1), &server.url, 1);
    probe.run(&[&s1], &p1, &[]).assert_code(0);
    let b = bound_of(body_len(&server.seen.lock().unwrap()));
    server.seen.lock().unwrap().clear();
    server.peak.store(0, Ordering::SeqCst);

    let cap = 3 * b + b / 2;
    let out = ws.run(&[&suite], &provs, &["--max-spend", &femto_usd(cap)]);
    out.assert_code(6);
    let peak = server.peak.load(Ordering::SeqCst);
    assert!(
        (1..=3).contains(&peak),
        "{peak} calls in flight at once\n{out}"
    );
    let spent = spent_femto(&ws);
    assert!(spent <= cap, "spent {spent} past the cap {cap}");
    assert!(spent + b > cap, "stopped early: {spent} + {b} ≤ {cap}");
    // Calls that had not fit waited for room instead of being dropped: every call made is
    // an answered outcome.
    let calls = server.seen.lock().unwrap().len();
    assert_eq!(ws.attempts().len(), calls);
    assert!(ws.attempts().iter().all(|a| a.answered));
}

#[test]
fn max_spend_refuses_calls_it_cannot_bound_and_bad_amounts() {
    let ws = Workspace::new();
    let suite = ws.write("suite.yaml", &suite_yaml("s", &[("t1", "ok")]));
    let unpriced = ws.write(
        "unpriced.yaml",
        &providers_yaml(&[
            Provider::new("priced", "http://127.0.0.1:9/v1"),
            Provider::new("free-for-all", "http://127.0.0.1:9/v1").price(None),
        ]),
    );
    let out = ws.run(&[&suite], &unpriced, &["--max-spend", "5"]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("provider `free-for-all` has no price, so its calls cannot be bounded"),
        "{out}"
    );
    assert!(!out.stderr.contains("`priced`"), "{out}");

    let uncapped = ws.write(
        "uncapped.yaml",
        &suite_yaml("u", &[("t1", "ok")]).replace("max_tokens: 16", "seed: 1"),
    );
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", "http://127.0.0.1:9/v1")]),
    );
    let out = ws.run(&[&uncapped], &provs, &["--max-spend", "5"]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("suite `u` sends provider `p` no completion cap"),
        "{out}"
    );

    for bad in ["abc", "-1", "0.1234567890123456"] {
        let out = ws.run(&[&suite], &provs, &["--max-spend", bad]);
        out.assert_code(2);
        assert!(out.stderr.contains("--max-spend"), "{bad}: {out}");
    }
    // Nothing was stored for any refused command.
    assert!(!ws.db().exists() || ws.attempts().is_empty());
}

#[test]
fn a_free_local_model_runs_under_a_zero_cap() {
    let server = ScriptServer::start(|_, _| Reply::Json(200, small_answer("ok")));
    let ws = Workspace::new();
    let suite = ws.write(
        "suite.yaml",
        &suite_yaml("s", &[("t1", "ok"), ("t2", "ok")]),
    );
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[
            Provider::new("local", &server.base_url()).price(Some("{input: 0, output: 0}"))
        ]),
    );
    let out = ws.run(&[&suite], &provs, &["--max-spend", "0"]);
    out.assert_code(0);
    assert_eq!(server.requests().len(), 2);
}
