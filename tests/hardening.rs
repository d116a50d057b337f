//! Issue 7: never lose a paid answer, never pay twice, never panic or hang. Each test is named
//! after what broke.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// How many requests the server saw for each task.
fn per_task(server: &ScriptServer) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for t in server.tasks() {
        *m.entry(t).or_insert(0) += 1;
    }
    m
}

fn tasks(n: usize) -> Vec<(String, String)> {
    (0..n).map(|i| (format!("t{i}"), format!("a{i}"))).collect()
}

fn refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

/// Blocks the calling server thread until `gate` opens (the failsafe bounds a hung test).
fn wait_for(gate: &AtomicBool) {
    for _ in 0..60_000 {
        if gate.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

// Regression: with another connection holding an exclusive lock for 7 s, the writer hit its
// busy timeout and gave up while the run kept calling: 50 paid requests, 9 stored attempts.
#[test]
fn writer_gave_up_on_a_locked_database_while_the_run_kept_calling() {
    let ts = tasks(50);
    let locked = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicUsize::new(0));
    let (gate, count) = (locked.clone(), seen.clone());
    let server = ScriptServer::start(move |s, _| {
        // From the 10th request on, answer only once the database is locked.
        if count.fetch_add(1, Ordering::SeqCst) >= 10 {
            wait_for(&gate);
        }
        let t = s.task.clone().unwrap_or_default();
        Reply::Json(200, chat_response(&t.replace('t', "a")))
    });
    let ws = Workspace::new();
    let (suite, provs) = ws.suite_and_provider(&refs(&ts), &server.base_url());
    let mut cmd = ws.cmd();
    cmd.arg("run").arg(&suite).arg("--providers").arg(&provs);
    cmd.args(["--no-progress", "--format", "json"]);
    let child = std::process::Command::new(cmd.get_program())
        .args(cmd.get_args())
        .current_dir(ws.dir.path())
        .env_remove("COSTBENCH_DB")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn costbench");
    server.wait_until("10 requests", |log| log.len() >= 10);
    let conn = rusqlite::Connection::open(ws.db()).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    locked.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(7));
    conn.execute_batch("COMMIT").unwrap();
    let out = Out::of(child.wait_with_output().unwrap());
    out.assert_code(0);

    let stored = ws.attempts();
    assert_eq!(stored.iter().filter(|a| a.answered).count(), 50, "{out}");
    let counts = per_task(&server);
    assert_eq!(counts.len(), 50);
    assert!(counts.values().all(|n| *n == 1), "paid twice: {counts:?}");
    assert_eq!(ws.report(None)["run"]["status"], "complete");
}

// Regression: two copies of the same command started 0.3 s apart both resumed run 1 and
// called every outcome twice (116 calls for 60 outcomes).
#[test]
fn two_processes_ran_the_same_run_and_paid_twice() {
    let ts = tasks(6);
    let open = Arc::new(AtomicBool::new(false));
    let gate = open.clone();
    let server = ScriptServer::start(move |s, _| {
        wait_for(&gate);
        let t = s.task.clone().unwrap_or_default();
        Reply::Json(200, chat_response(&t.replace('t', "a")))
    });
    let ws = Workspace::new();
    let (suite, provs) = ws.suite_and_provider(&refs(&ts), &server.base_url());
    let command = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_costbench"));
        c.arg("--db").arg(ws.db()).arg("run").arg(&suite);
        c.arg("--providers").arg(&provs);
        c.args(["--no-progress", "--format", "json"]);
        c.env_remove("COSTBENCH_DB");
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    };
    let first = command().spawn().unwrap();
    server.wait_until("the first process calls", |log| !log.is_empty());
    let second = Out::of(command().output().unwrap());
    second.assert_code(5);
    assert!(
        second
            .stderr
            .contains("another costbench process is running this run"),
        "{second}"
    );
    open.store(true, Ordering::SeqCst);
    Out::of(first.wait_with_output().unwrap()).assert_code(0);
    let counts = per_task(&server);
    assert_eq!(counts.len(), 6);
    assert!(counts.values().all(|n| *n == 1), "called twice: {counts:?}");
}

// Regression: processes creating one new database at once failed with `table meta already
// exists` in 6 of 8 trials.
#[test]
fn processes_creating_one_new_database_at_once_collided() {
    let ws = Workspace::new();
    let empty = ws.write("empty.jsonl", "");
    for trial in 0..3 {
        let db = ws.path(&format!("fresh{trial}.db"));
        let children: Vec<_> = (0..6)
            .map(|_| {
                std::process::Command::new(env!("CARGO_BIN_EXE_costbench"))
                    .arg("--db")
                    .arg(&db)
                    .args(["cache", "import"])
                    .arg(&empty)
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = Out::of(c.wait_with_output().unwrap());
            out.assert_code(0);
        }
    }
}

// Regression: `--db x.db cache export x.db` replaced the database with JSONL.
#[test]
fn cache_export_onto_the_database_replaced_it() {
    let ws = Workspace::new();
    let empty = ws.write("empty.jsonl", "");
    ws.cmd()
        .args(["cache", "import"])
        .arg(&empty)
        .assert()
        .code(0);
    let db = ws.db();
    for target in [
        db.clone(),
        ws.path("costbench.db-wal"),
        ws.path("./costbench.db"),
    ] {
        let out = Out::of(
            ws.cmd()
                .args(["cache", "export"])
                .arg(&target)
                .output()
                .unwrap(),
        );
        out.assert_code(2);
        assert!(out.stderr.contains("is the database"), "{out}");
    }
    // Still a database.
    Out::of(ws.cmd().arg("runs").output().unwrap()).assert_code(0);
}

// Regression: an unwritable --cassette was discovered after every call was made; the run was
// then marked complete, never graded, and reported 0 accepted.
#[test]
fn unwritable_cassette_was_found_after_paying_for_every_call() {
    let server = ScriptServer::start(answer_with(&[("t1", "a1")]));
    let ws = Workspace::new();
    let (suite, provs) = ws.suite_and_provider(&[("t1", "a1")], &server.base_url());
    for bad in ["no-such-dir/c.jsonl", "."] {
        let out = ws.run(&[&suite], &provs, &["--cassette", bad]);
        out.assert_code(2);
        assert!(out.stderr.contains("error:"), "{out}");
    }
    assert_eq!(server.requests().len(), 0, "nothing is called");
}

// Regression: a server reporting `usage.prompt_tokens: 18446744073709551615` was priced as
// billions of dollars; usage no provider could bill is now unknown (and bounded).
#[test]
fn absurd_usage_was_priced_as_a_bill() {
    let mut body = chat_response("42");
    body["usage"]["prompt_tokens"] = json!(u64::MAX);
    let server = ScriptServer::start(move |_, _| Reply::Json(200, body.clone()));
    let ws = Workspace::new();
    let (suite, provs) = ws.suite_and_provider(&[("t1", "42")], &server.base_url());
    let out = ws.run(&[&suite], &provs, &[]);
    out.assert_code(0);
    let a = &ws.attempts()[0];
    assert!(a.answered && !a.usage_known, "{a:?}");
    assert_eq!(a.cost_femto, None);
    assert!(
        a.error_message
            .as_deref()
            .is_some_and(|m| m.contains("usage ignored")),
        "{a:?}"
    );
    let report = out.json();
    let r = row(&report, "p");
    assert_eq!(r["accepted"], json!(1));
    assert_eq!(r["cost_usd"]["tokens"], Value::Null);
    assert!(out.stderr.contains("calls of unknown cost"), "{out}");
}

// Regression: with `repeats: 1000000000`, replay wrote ~30k miss rows/s, printed one line
// per miss and ignored Ctrl-C because it never yielded to the runtime.
#[test]
fn ctrl_c_was_ignored_during_a_huge_replay_of_misses() {
    let ws = Workspace::new();
    let ids: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
    let tasks: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), "a")).collect();
    let suite = ws.write(
        "suite.yaml",
        // The loader now bounds repeats at 10,000; 100 tasks × 10,000 still makes a million
        // misses, far more than the test waits for.
        &suite_yaml("s", &tasks).replace("repeats: 1", "repeats: 10000"),
    );
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", "http://127.0.0.1:9/v1")]),
    );
    let events = ws.path("events.jsonl");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_costbench"))
        .arg("--db")
        .arg(ws.db())
        .arg("run")
        .arg(&suite)
        .arg("--providers")
        .arg(&provs)
        .args(["--no-progress", "--format", "json", "--cache", "replay"])
        .arg("--events")
        .arg(&events)
        .env_remove("COSTBENCH_DB")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (failsafe-bounded) until misses are being recorded, then interrupt.
    for _ in 0..6000 {
        let n = std::fs::read_to_string(&events)
            .map(|t| t.matches("cache_miss").count())
            .unwrap_or(0);
        if n >= 100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = Out::of(child.wait_with_output().unwrap());
    out.assert_code(130);
    assert!(
        out.stderr.contains("outcomes have no recorded answer"),
        "{out}"
    );
    assert!(
        out.stderr.matches("no recorded answer for").count() <= 5,
        "one summary, not a line per miss"
    );
    let report = ws.report(None);
    assert_eq!(report["run"]["status"], "interrupted");
    assert!(!ws.attempts().is_empty(), "what was done is saved");
}
