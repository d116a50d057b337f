//! `mode: batch`: the provider batch APIs end to end against a loopback server imitating each
//! lifecycle (tests/common/batch_server.rs): chunking, exact costs at batch rates, failed,
//! expired and cancelled lines as failed attempts, resuming after `kill -9` without
//! resubmitting, and cassette hits that need no batch at all.

#[path = "common/batch_server.rs"]
mod batch_server;
mod common;

use std::process::Stdio;
use std::sync::atomic::Ordering;

use batch_server::{BatchServer, Outcome};
use common::*;

/// Batch rates half the list rates; 1 USD = 10^15 femto-dollars.
const PRICE: &str = "{input: 0.40, output: 1.60, batch: {input: 0.20, output: 0.80}}";

/// The answer, error or fate of each task, by the prompt `task <id>`.
fn decide(prompt: &str) -> Outcome {
    match prompt.strip_prefix("task ").unwrap_or("") {
        "t2" => Outcome::Error(400, "max_tokens: must be greater than or equal to 1".into()),
        "t3" => Outcome::Expired,
        "t4" => Outcome::Canceled,
        t => Outcome::Answer(format!("answer {t}")),
    }
}

fn tasks(n: usize) -> Vec<(String, String)> {
    (1..=n)
        .map(|i| (format!("t{i}"), format!("answer t{i}")))
        .collect()
}

fn suite(ws: &Workspace, n: usize) -> std::path::PathBuf {
    let t = tasks(n);
    let refs: Vec<(&str, &str)> = t.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    ws.write("suite.yaml", &suite_yaml("s", &refs))
}

/// A providers file with one batch provider per `(id, protocol, base_url, price, extra)`.
fn providers(
    ws: &Workspace,
    entries: &[(&str, &str, String, Option<&str>, &str)],
) -> std::path::PathBuf {
    let mut y = String::from("providers:\n");
    for (id, protocol, url, price, extra) in entries {
        y.push_str(&format!(
            "  - id: {id}\n    protocol: {protocol}\n    base_url: {url}\n    model: test-model\n    mode: batch\n    batch: {{poll_s: 0.01, max_poll_s: 0.05{extra}}}\n    retry: {{max_retries: 1, base_delay_ms: 10, max_delay_ms: 20}}\n"
        ));
        if let Some(p) = price {
            y.push_str(&format!("    price: {p}\n"));
        }
    }
    ws.write("providers.yaml", &y)
}

fn by_task<'a>(
    all: &'a [Attempt],
    provider: &str,
) -> std::collections::BTreeMap<String, &'a Attempt> {
    all.iter()
        .filter(|a| a.provider == provider)
        .map(|a| (a.task_id.clone(), a))
        .collect()
}

fn event_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn openai_batches_in_chunks_with_output_and_error_files_at_batch_rates() {
    let ws = Workspace::new();
    let server = BatchServer::start(3, decide);
    let suite = suite(&ws, 5);
    let provs = providers(
        &ws,
        &[
            (
                "oai",
                "openai",
                format!("{}/v1", server.url()),
                Some(PRICE),
                ", max_requests: 2",
            ),
            // No batch rates: a batch answer's cost is unknown, never the list price.
            (
                "nob",
                "openai",
                format!("{}/v1", server.url()),
                Some("{input: 0.40, output: 1.60}"),
                "",
            ),
        ],
    );
    let events = ws.path("events.jsonl");
    let out = ws.run(
        &[&suite],
        &provs,
        &[
            "--events",
            events.to_str().unwrap(),
            "--max-failed-share",
            "1",
        ],
    );
    out.assert_code(0);
    // 5 tasks in chunks of 2 for `oai` (3 batches), one batch for `nob`.
    assert_eq!(server.creations.load(Ordering::SeqCst), 4);
    let mut sizes = server.batch_sizes();
    sizes.sort();
    assert_eq!(sizes, vec![1, 2, 2, 5]);

    let all = ws.attempts();
    assert_eq!(all.len(), 10, "one attempt per outcome: {all:#?}");
    let oai = by_task(&all, "oai");
    for t in ["t1", "t5"] {
        let a = oai[t];
        assert!(a.answered && a.is_final, "{a:?}");
        assert_eq!(a.output.as_deref(), Some(format!("answer {t}").as_str()));
        assert_eq!((a.input_tokens, a.output_tokens), (21, 2));
        // 21 × $0.20/M + 2 × $0.80/M = $0.0000058.
        assert_eq!(a.cost_femto, Some(5_800_000_000));
        assert_eq!(a.spent_femto, Some(5_800_000_000));
    }
    let t2 = oai["t2"];
    assert!(!t2.answered);
    assert_eq!(t2.error_kind.as_deref(), Some("client_error"));
    assert_eq!(t2.http_status, Some(400));
    assert!(
        t2.error_message
            .as_deref()
            .unwrap()
            .contains("max_tokens: must be greater"),
        "{t2:?}"
    );
    assert_eq!(t2.cost_femto, Some(0));
    assert_eq!(oai["t3"].error_kind.as_deref(), Some("expired"));
    assert_eq!(oai["t3"].cost_femto, Some(0));
    assert_eq!(oai["t4"].error_kind.as_deref(), Some("canceled"));
    let nob = by_task(&all, "nob");
    assert!(nob["t1"].answered);
    assert_eq!(nob["t1"].cost_femto, None, "no batch price: unknown");

    // The report reads the same attempts as an online run's.
    let report = out.json();
    let r = row(&report, "oai");
    assert_eq!(r["accepted"], 2);
    assert_eq!(r["failures"]["expired"]["count"], 1);
    assert_eq!(r["failures"]["canceled"]["count"], 1);
    assert_close(&r["cost_usd"]["tokens"], 2.0 * 5.8e-6, 1e-15);

    // Events: every batch submitted and ended; the OpenAI lifecycle seen by the polls.
    let ev = event_lines(&events);
    let kind = |k: &str| ev.iter().filter(|e| e["event"] == k).count();
    assert_eq!(kind("batch_submitted"), 4);
    assert_eq!(kind("batch_ended"), 4);
    let statuses: Vec<&str> = ev
        .iter()
        .filter(|e| e["event"] == "batch_polled" && e["provider"] == "nob")
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["validating", "in_progress", "completed"]);
    assert_eq!(kind("outcome_finished"), 10);
}

#[test]
fn anthropic_message_batches_with_succeeded_errored_expired_and_canceled_lines() {
    let ws = Workspace::new();
    let server = BatchServer::start(2, decide);
    let suite = suite(&ws, 4);
    let provs = providers(&ws, &[("ant", "anthropic", server.url(), Some(PRICE), "")]);
    let out = ws.run(&[&suite], &provs, &["--max-failed-share", "1"]);
    out.assert_code(0);
    assert_eq!(server.creations.load(Ordering::SeqCst), 1);
    let all = ws.attempts();
    let a = by_task(&all, "ant");
    assert_eq!(all.len(), 4);
    assert!(a["t1"].answered);
    assert_eq!(a["t1"].output.as_deref(), Some("answer t1"));
    // usage.service_tier "batch": 19 × $0.20/M + 4 × $0.80/M = $0.000007.
    assert_eq!((a["t1"].input_tokens, a["t1"].output_tokens), (19, 4));
    assert_eq!(a["t1"].cost_femto, Some(7_000_000_000));
    assert_eq!(a["t2"].error_kind.as_deref(), Some("client_error"));
    assert!(
        a["t2"]
            .error_message
            .as_deref()
            .unwrap()
            .contains("invalid_request_error: max_tokens"),
        "{:?}",
        a["t2"]
    );
    assert_eq!(a["t3"].error_kind.as_deref(), Some("expired"));
    assert_eq!(a["t4"].error_kind.as_deref(), Some("canceled"));
    for t in ["t2", "t3", "t4"] {
        assert!(!a[t].answered && a[t].is_final);
        assert_eq!(a[t].cost_femto, Some(0), "{t}: not run, not billed");
    }
    // The batch is closed in the store with the provider's final status.
    let conn = rusqlite::Connection::open(ws.db()).unwrap();
    let (open, status, remote): (i64, String, String) = conn
        .query_row("SELECT open, status, remote_id FROM batches", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(
        (open, status.as_str(), remote.as_str()),
        (0, "ended", "msgbatch_0001")
    );
}

#[test]
fn gemini_batch_with_inlined_requests_and_an_errored_response() {
    let ws = Workspace::new();
    let server = BatchServer::start(3, decide);
    let suite = suite(&ws, 2);
    let provs = providers(&ws, &[("gem", "gemini", server.url(), Some(PRICE), "")]);
    let out = ws.run(&[&suite], &provs, &["--max-failed-share", "1"]);
    out.assert_code(0);
    assert_eq!(server.creations.load(Ordering::SeqCst), 1);
    assert!(server.polls.load(Ordering::SeqCst) >= 3);
    let all = ws.attempts();
    let a = by_task(&all, "gem");
    assert!(a["t1"].answered);
    // 12 × $0.20/M + 1 × $0.80/M = $0.0000032.
    assert_eq!(a["t1"].cost_femto, Some(3_200_000_000));
    assert_eq!(a["t2"].error_kind.as_deref(), Some("client_error"));
    assert_eq!(a["t2"].http_status, Some(400));
    assert_eq!(a["t2"].cost_femto, Some(0));
}

// Done-means of issue 10: a batch run survives kill -9 mid-poll and the same command resumes
// polling the batch it submitted instead of submitting (and paying for) it again.
#[test]
fn kill_9_mid_poll_resumes_without_resubmitting() {
    let ws = Workspace::new();
    let server = BatchServer::start(1, decide);
    server.hold.store(true, Ordering::SeqCst);
    let suite = suite(&ws, 3);
    let provs = providers(
        &ws,
        &[(
            "oai",
            "openai",
            format!("{}/v1", server.url()),
            Some(PRICE),
            "",
        )],
    );
    let command = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_costbench"));
        c.arg("--db")
            .arg(ws.db())
            .arg("run")
            .arg(&suite)
            .arg("--providers")
            .arg(&provs)
            .args([
                "--no-progress",
                "--format",
                "json",
                "--max-failed-share",
                "1",
            ])
            .env_remove("COSTBENCH_DB");
        c
    };
    let mut child = command()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn costbench");
    // A poll follows the stored batch id, so two polls mean the batch is on disk.
    server.wait_until("the batch is created and polled", |c, p| c == 1 && p >= 2);
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    assert!(ws.attempts().is_empty(), "nothing answered before the kill");

    server.hold.store(false, Ordering::SeqCst);
    let again = Out::of(command().output().expect("run costbench"));
    again.assert_code(0);
    assert_eq!(
        server.creations.load(Ordering::SeqCst),
        1,
        "resubmitted:\n{again}"
    );
    assert_eq!(server.submitted(), 3);
    let all = ws.attempts();
    assert_eq!(all.len(), 3, "one attempt per outcome: {all:#?}");
    let a = by_task(&all, "oai");
    assert!(a["t1"].answered);
    assert_eq!(a["t1"].cost_femto, Some(5_800_000_000));
    assert_eq!(a["t2"].error_kind.as_deref(), Some("client_error"));
    assert_eq!(a["t3"].error_kind.as_deref(), Some("expired"));
    let report = again.json();
    assert_eq!(report["run"]["status"], "incomplete");
    assert_eq!(row(&report, "oai")["pending"], 0);
}

// A recorded answer needs no batch: the second run replays everything from the cache and
// creates nothing, priced at the batch rates a batch provider pays.
#[test]
fn cassette_hits_need_no_batch_submission() {
    let ws = Workspace::new();
    let server = BatchServer::start(1, |_| Outcome::Answer("same".into()));
    let suite = suite(&ws, 3);
    let provs = providers(&ws, &[("ant", "anthropic", server.url(), Some(PRICE), "")]);
    let cassette = ws.path("cassette.jsonl");
    let c = cassette.to_str().unwrap();
    ws.run(
        &[&suite],
        &provs,
        &["--cassette", c, "--max-failed-share", "1"],
    )
    .assert_code(0);
    assert_eq!(server.creations.load(Ordering::SeqCst), 1);

    let fresh = ws.path("fresh.db");
    let mut cmd = ws.cmd_with_db(&fresh);
    cmd.arg("run").arg(&suite).arg("--providers").arg(&provs);
    cmd.args([
        "--no-progress",
        "--format",
        "json",
        "--cache",
        "replay",
        "--cassette",
        c,
    ]);
    Out::of(cmd.output().unwrap()).assert_code(0);
    assert_eq!(
        server.creations.load(Ordering::SeqCst),
        1,
        "a cassette hit was submitted"
    );
    let replayed = attempts(&fresh);
    assert_eq!(replayed.len(), 3);
    for a in &replayed {
        assert!(a.replayed && a.answered);
        assert_eq!(a.cost_femto, Some(7_000_000_000));
    }
}

#[test]
fn batch_settings_are_checked_at_load() {
    let ws = Workspace::new();
    let suite = suite(&ws, 1);
    let provs = ws.write(
        "providers.yaml",
        "providers:\n  - id: a\n    protocol: openai\n    base_url: http://127.0.0.1:9/v1\n    model: m\n    mode: later\n  - id: b\n    protocol: openai\n    base_url: http://127.0.0.1:9/v1\n    model: m\n    mode: batch\n    batch: {max_requests: 60000, poll_s: 0}\n",
    );
    let mut cmd = ws.cmd();
    cmd.arg("validate")
        .arg(&suite)
        .arg("--providers")
        .arg(&provs);
    let out = Out::of(cmd.output().unwrap());
    out.assert_code(2);
    assert!(
        out.stderr.contains("providers[0].mode") && out.stderr.contains("`online` or `batch`"),
        "{out}"
    );
    assert!(
        out.stderr.contains("providers[1].batch.max_requests")
            && out.stderr.contains("at most 50000"),
        "{out}"
    );
    assert!(out.stderr.contains("providers[1].batch.poll_s"), "{out}");
}
