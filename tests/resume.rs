//! Interruption and resumption, the record/replay cache and cassettes, against a scripted
//! server that counts the requests of every task across runs.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::*;
use serde_json::{Value, json};

/// 0.0008544 USD: the openai-chat.json usage at the default test price.
const CALL_USD: f64 = 0.0008544;

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Four tasks against a server that answers t1 and t2 and hangs on t3 and t4, two calls in
/// flight: once the server has seen t3 and t4, t1 and t2 have been answered and handed to the
/// store. A short timeout and no retries bound the test if the signal were ignored.
struct HalfRun {
    server: ScriptServer,
    suite: std::path::PathBuf,
    provs: std::path::PathBuf,
    tasks: [(&'static str, &'static str); 4],
}

impl HalfRun {
    fn new(ws: &Workspace) -> HalfRun {
        let tasks = [("t1", "a1"), ("t2", "a2"), ("t3", "a3"), ("t4", "a4")];
        let server = ScriptServer::start(|seen, _| match seen.task.as_deref() {
            Some("t1") => Reply::Json(200, chat_response("a1")),
            Some("t2") => Reply::Json(200, chat_response("a2")),
            _ => Reply::Hang,
        });
        let suite = ws.write("suite.yaml", &suite_yaml("s", &tasks));
        let provs = ws.write(
            "providers.yaml",
            &providers_yaml(&[Provider::new("p", &server.base_url())
                .max_concurrency(2)
                .timeout_s(20.0)
                .max_retries(0)]),
        );
        HalfRun {
            server,
            suite,
            provs,
            tasks,
        }
    }

    /// The run command, the same every time (so a second call resumes).
    fn command(&self, ws: &Workspace) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_costbench"));
        cmd.arg("--db")
            .arg(ws.db())
            .arg("run")
            .arg(&self.suite)
            .arg("--providers")
            .arg(&self.provs)
            .args(["--no-progress", "--format", "json"])
            .env_remove("COSTBENCH_DB");
        cmd
    }
}

/// Waits until the server has seen every task of [`half_answering_run`].
fn wait_for_t3_and_t4(server: &ScriptServer) {
    server.wait_until("t3 and t4 are in flight", |log| {
        ["t3", "t4"]
            .iter()
            .all(|t| log.iter().any(|s| s.task.as_deref() == Some(*t)))
    });
}

#[test]
fn sigint_keeps_answers_and_the_same_command_resumes_only_what_is_missing() {
    let ws = Workspace::new();
    let run = HalfRun::new(&ws);
    let child = run
        .command(&ws)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn costbench");
    wait_for_t3_and_t4(&run.server);
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
    let first = Out::of(child.wait_with_output().expect("wait for costbench"));
    first.assert_code(130);
    assert!(
        first
            .stderr
            .contains("run the same command again to resume"),
        "{first}"
    );
    assert_eq!(sorted(run.server.tasks()), vec!["t1", "t2", "t3", "t4"]);

    let stored = ws.attempts();
    let answered: Vec<&str> = stored
        .iter()
        .filter(|a| a.answered)
        .map(|a| a.task_id.as_str())
        .collect();
    assert_eq!(
        sorted(answered.iter().map(|s| s.to_string()).collect()),
        vec!["t1", "t2"]
    );
    assert!(
        stored.iter().all(|a| a.answered),
        "calls cut off by Ctrl-C are not stored as failures: {stored:?}"
    );
    let report = ws.report(None);
    assert_eq!(report["run"]["status"], "interrupted");
    let r = row(&report, "p");
    assert_eq!(
        (
            &r["outcomes"],
            &r["pending"],
            &r["accepted"],
            &r["unanswered"]
        ),
        (&json!(4), &json!(2), &json!(2), &json!(0))
    );
    let run_id = report["run"]["id"].as_i64().unwrap();

    // Second session, healthy server, the very same command: only t3 and t4 are called.
    run.server.set_script(answer_with(&run.tasks));
    run.server.clear_log();
    let second = Out::of(run.command(&ws).output().expect("run costbench"));
    second.assert_code(0);
    assert_eq!(sorted(run.server.tasks()), vec!["t3", "t4"]);
    assert!(
        second.stderr.contains(&format!("run {run_id} (resumed)")),
        "{second}"
    );
    assert!(second.stderr.contains("2 skipped"), "{second}");
    assert_eq!(http_calls(&second.stderr), 2);

    let report = second.json();
    assert_eq!(report["run"]["id"], json!(run_id));
    assert_eq!(report["run"]["status"], "complete");
    let r = row(&report, "p");
    assert_eq!(
        (
            &r["outcomes"],
            &r["pending"],
            &r["accepted"],
            &r["unanswered"],
            &r["calls"]
        ),
        (&json!(4), &json!(0), &json!(4), &json!(0), &json!(4))
    );
    assert_close(&r["cost_usd"]["tokens"], 4.0 * CALL_USD, 1e-12);
    let all = ws.attempts();
    for (t, _) in run.tasks {
        let tries = tries_of(&all, "p", t);
        assert_eq!(tries.len(), 1, "{t} was called exactly once: {tries:?}");
        assert!(tries[0].answered && tries[0].is_final);
    }

    // Third time, after completion: a new run served entirely from the cache.
    run.server.clear_log();
    let third = ws.run(&[&run.suite], &run.provs, &[]);
    third.assert_code(0);
    assert_eq!(
        run.server.requests().len(),
        0,
        "the cache answers everything"
    );
    assert_eq!(http_calls(&third.stderr), 0, "{third}");
    assert!(third.stderr.contains("0 HTTP calls, 4 replayed"), "{third}");
    let report = third.json();
    assert_ne!(report["run"]["id"], json!(run_id));
    let r = row(&report, "p");
    assert_eq!(r["accepted"], json!(4));
    // The production estimate is kept; nothing was paid.
    assert_close(&r["cost_usd"]["tokens"], 4.0 * CALL_USD, 1e-12);
    assert_close(&r["spent_usd"], 0.0, 0.0);
    let replayed: Vec<Attempt> = ws
        .attempts()
        .into_iter()
        .filter(|a| a.run_id != run_id)
        .collect();
    assert_eq!(replayed.len(), 4);
    assert!(
        replayed
            .iter()
            .all(|a| a.replayed && a.spent_femto == Some(0))
    );
}

#[test]
fn cache_off_calls_again() {
    let server = ScriptServer::start(answer_with(&[("t1", "a1")]));
    let ws = Workspace::new();
    let (suite, provs) = ws.suite_and_provider(&[("t1", "a1")], &server.base_url());
    ws.run(&[&suite], &provs, &[]).assert_code(0);
    let again = ws.run(&[&suite], &provs, &["--cache", "off"]);
    again.assert_code(0);
    assert_eq!(http_calls(&again.stderr), 1, "{again}");
    assert_eq!(server.tasks(), vec!["t1", "t1"]);
}

/// Runs `suite` in replay mode on a fresh database `db_name`.
fn replay(ws: &Workspace, db_name: &str, suite: &Path, provs: &Path, cassette: &Path) -> Out {
    let mut c = ws.cmd_with_db(&ws.path(db_name));
    c.arg("run").arg(suite).arg("--providers").arg(provs);
    c.args([
        "--no-progress",
        "--format",
        "json",
        "--cache",
        "replay",
        "--cassette",
    ])
    .arg(cassette);
    Out::of(c.output().unwrap())
}

#[test]
fn a_recorded_cassette_replays_offline_with_identical_results() {
    let answers = [("t1", "a1"), ("t2", "WRONG"), ("t3", "a3")];
    let server = ScriptServer::start(answer_with(&answers));
    let ws = Workspace::new();
    let tasks = [("t1", "a1"), ("t2", "a2"), ("t3", "a3")];
    let (suite, provs) = ws.suite_and_provider(&tasks, &server.base_url());
    let cassette = ws.path("answers.jsonl");

    // Record.
    let recorded = ws.run(
        &[&suite],
        &provs,
        &["--cassette", cassette.to_str().unwrap()],
    );
    recorded.assert_code(0);
    let rec = recorded.json();
    let rec_row = row(&rec, "p").clone();
    assert_eq!(rec_row["accepted"], json!(2));
    let lines: Vec<Value> = std::fs::read_to_string(&cassette)
        .expect("cassette written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("cassette line is JSON"))
        .collect();
    assert_eq!(lines.len(), 3);
    let keys: Vec<&str> = lines.iter().map(|l| l["key"].as_str().unwrap()).collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "sorted by key: {keys:?}"
    );
    assert!(lines.iter().all(|l| l["response"]["choices"].is_array()));

    // A replay with an entry missing fails, names it, and calls nothing.
    server.clear_log();
    let more = ws.write(
        "more.yaml",
        &suite_yaml(
            "s",
            &[("t1", "a1"), ("t2", "a2"), ("t3", "a3"), ("t4", "a4")],
        ),
    );
    let miss = replay(&ws, "miss.db", &more, &provs, &cassette);
    miss.assert_code(4);
    assert!(
        miss.stderr
            .contains("no recorded answer for suite `s` / task `t4` / provider `p`"),
        "{miss}"
    );
    assert_eq!(
        server.requests().len(),
        0,
        "replay mode made a network call"
    );
    let miss_attempts = attempts(&ws.path("miss.db"));
    assert_eq!(
        kinds(&tries_of(&miss_attempts, "p", "t4")),
        vec![Some("cache_miss".to_string())]
    );
    assert_eq!(miss_attempts.iter().filter(|a| a.answered).count(), 3);

    // With the server gone, a fresh database replays the recording exactly.
    drop(server);
    let replayed = replay(&ws, "replay.db", &suite, &provs, &cassette);
    replayed.assert_code(0);
    assert_eq!(http_calls(&replayed.stderr), 0, "{replayed}");
    let rep = replayed.json();
    assert_eq!(rep["run"]["cache_mode"], "replay");
    let r = row(&rep, "p");
    for k in ["accepted", "unanswered", "acceptance", "tokens", "outcomes"] {
        assert_eq!(r[k], rec_row[k], "{k} differs between record and replay");
    }
    assert_close(&r["cost_usd"]["tokens"], 3.0 * CALL_USD, 1e-12);
    assert_eq!(r["cost_usd"], rec_row["cost_usd"]);
    assert_eq!(r["cost_per_accepted_usd"], rec_row["cost_per_accepted_usd"]);
    assert_close(&r["spent_usd"], 0.0, 0.0);
    assert_close(&rec_row["spent_usd"], 3.0 * CALL_USD, 1e-12);
    let stored = attempts(&ws.path("replay.db"));
    assert_eq!(stored.len(), 3);
    assert!(
        stored
            .iter()
            .all(|a| a.replayed && a.answered && a.spent_femto == Some(0))
    );
}

#[test]
fn cache_export_and_import_round_trip() {
    let server = ScriptServer::start(answer_with(&[("t1", "a1"), ("t2", "a2")]));
    let ws = Workspace::new();
    let (suite, provs) = ws.suite_and_provider(&[("t1", "a1"), ("t2", "a2")], &server.base_url());
    let cassette = ws.path("run.jsonl");
    ws.run(
        &[&suite],
        &provs,
        &["--cassette", cassette.to_str().unwrap()],
    )
    .assert_code(0);

    let exported = ws.path("exported.jsonl");
    let out = Out::of(
        ws.cmd()
            .args(["cache", "export"])
            .arg(&exported)
            .output()
            .unwrap(),
    );
    out.assert_code(0);
    assert!(out.stderr.contains("wrote 2 recorded answers"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&exported).unwrap(),
        std::fs::read_to_string(&cassette).unwrap(),
        "the run's cassette and `cache export` agree"
    );

    let other = ws.path("other.db");
    let out = Out::of(
        ws.cmd_with_db(&other)
            .args(["cache", "import"])
            .arg(&exported)
            .output()
            .unwrap(),
    );
    out.assert_code(0);
    assert!(
        out.stderr.contains("imported 2 new recorded answers"),
        "{out}"
    );

    drop(server);
    let mut c = ws.cmd_with_db(&other);
    c.arg("run").arg(&suite).arg("--providers").arg(&provs);
    c.args(["--no-progress", "--format", "json", "--cache", "replay"]);
    let out = Out::of(c.output().unwrap());
    out.assert_code(0);
    assert_eq!(row(&out.json(), "p")["accepted"], json!(2));
}

#[test]
fn an_incomplete_run_resumes_only_unanswered_slots_and_try_numbers_continue() {
    let server = ScriptServer::start(|seen, _| match seen.task.as_deref() {
        Some("t1") => Reply::Json(200, chat_response("a1")),
        _ => Reply::Json(
            500,
            json!({"error": {"message": "down", "type": "server_error"}}),
        ),
    });
    let ws = Workspace::new();
    let suite = ws.write(
        "suite.yaml",
        &suite_yaml("s", &[("t1", "a1"), ("t2", "a2")]),
    );
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url()).max_retries(1)]),
    );
    let first = ws.run(&[&suite], &provs, &[]);
    first.assert_code(4);
    assert_eq!(first.json()["run"]["status"], "incomplete");
    assert_eq!(sorted(server.tasks()), vec!["t1", "t2", "t2"]);

    server.set_script(answer_with(&[("t1", "a1"), ("t2", "a2")]));
    server.clear_log();
    let second = ws.run(&[&suite], &provs, &[]);
    second.assert_code(0);
    assert_eq!(
        server.tasks(),
        vec!["t2"],
        "only the unanswered slot is called again"
    );
    assert!(
        second.stderr.contains("(resumed)") && second.stderr.contains("1 skipped"),
        "{second}"
    );

    let all = ws.attempts();
    let t2 = tries_of(&all, "p", "t2");
    assert_eq!(
        t2.iter()
            .map(|a| (a.try_no, a.error_kind.clone()))
            .collect::<Vec<_>>(),
        vec![
            (0, Some("server_error".into())),
            (1, Some("server_error".into())),
            (2, None)
        ],
        "try numbers continue across sessions"
    );
    let report = second.json();
    assert_eq!(report["run"]["id"], first.json()["run"]["id"]);
    assert_eq!(report["run"]["status"], "complete");
    let r = row(&report, "p");
    assert_eq!(
        (
            &r["accepted"],
            &r["unanswered"],
            &r["calls"],
            &r["failed_calls"],
            &r["retries"]
        ),
        (&json!(2), &json!(0), &json!(4), &json!(2), &json!(2))
    );
}

#[test]
fn new_starts_a_fresh_run_instead_of_resuming() {
    let server = ScriptServer::start(|seen, _| match seen.task.as_deref() {
        Some("t1") => Reply::Json(200, chat_response("a1")),
        _ => Reply::Json(500, json!({"error": {"message": "down"}})),
    });
    let ws = Workspace::new();
    let suite = ws.write(
        "suite.yaml",
        &suite_yaml("s", &[("t1", "a1"), ("t2", "a2")]),
    );
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url()).max_retries(0)]),
    );
    let first = ws.run(&[&suite], &provs, &[]);
    first.assert_code(4);
    server.clear_log();
    let fresh = ws.run(&[&suite], &provs, &["--new"]);
    fresh.assert_code(4);
    assert!(!fresh.stderr.contains("(resumed)"), "{fresh}");
    assert_ne!(fresh.json()["run"]["id"], first.json()["run"]["id"]);
    // t1 comes from the cache, t2 is called again.
    assert_eq!(server.tasks(), vec!["t2"]);
    assert!(
        fresh.stderr.contains("1 HTTP calls, 1 replayed, 0 skipped"),
        "{fresh}"
    );
}

#[test]
fn grade_regrades_stored_answers_without_calling() {
    let server = ScriptServer::start(answer_with(&[("t1", "a1"), ("t2", "b2")]));
    let ws = Workspace::new();
    let (suite, provs) = ws.suite_and_provider(&[("t1", "a1"), ("t2", "a2")], &server.base_url());
    let out = ws.run(&[&suite], &provs, &[]);
    out.assert_code(0);
    assert_eq!(row(&out.json(), "p")["accepted"], json!(1));

    // A looser grader accepts both stored answers.
    let loose = ws.write(
        "loose.yaml",
        &suite_yaml("s", &[("t1", "a1"), ("t2", "a2")]).replace(
            r#"{type: contains, value: "{{ answer }}"}"#,
            r#"{type: regex, pattern: "^[ab][12]$"}"#,
        ),
    );
    server.clear_log();
    let graded = Out::of(
        ws.cmd()
            .arg("grade")
            .arg("--suite")
            .arg(&loose)
            .output()
            .unwrap(),
    );
    graded.assert_code(0);
    assert!(
        graded.stderr.contains("re-graded 2 answers, 2 accepted"),
        "{graded}"
    );
    assert_eq!(server.requests().len(), 0);
    let r = ws.report(None);
    assert_eq!(row(&r, "p")["accepted"], json!(2));

    // Without --suite, the graders come from the suite file recorded with the run.
    let graded = Out::of(ws.cmd().arg("grade").output().unwrap());
    graded.assert_code(0);
    assert!(
        graded.stderr.contains("re-graded 2 answers, 1 accepted"),
        "{graded}"
    );
    assert_eq!(row(&ws.report(None), "p")["accepted"], json!(1));
}

#[test]
fn an_rw_cassette_is_loaded_first_and_rewritten_with_new_answers() {
    let server = ScriptServer::start(answer_with(&[("t1", "a1"), ("t2", "a2")]));
    let ws = Workspace::new();
    let one = ws.write("one.yaml", &suite_yaml("s", &[("t1", "a1")]));
    let two = ws.write("two.yaml", &suite_yaml("s", &[("t1", "a1"), ("t2", "a2")]));
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url())]),
    );
    let cassette = ws.path("c.jsonl");
    let c = cassette.to_str().unwrap();
    ws.run(&[&one], &provs, &["--cassette", c]).assert_code(0);
    assert_eq!(
        std::fs::read_to_string(&cassette).unwrap().lines().count(),
        1
    );

    // A fresh database: t1 comes from the cassette, t2 is called and recorded into it.
    server.clear_log();
    let mut cmd = ws.cmd_with_db(&ws.path("fresh.db"));
    cmd.arg("run").arg(&two).arg("--providers").arg(&provs);
    cmd.args(["--no-progress", "--format", "json", "--cassette", c]);
    let out = Out::of(cmd.output().unwrap());
    out.assert_code(0);
    assert_eq!(server.tasks(), vec!["t2"]);
    assert!(out.stderr.contains("1 HTTP calls, 1 replayed"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&cassette).unwrap().lines().count(),
        2
    );
    assert!(!ws.path("c.jsonl.tmp").exists());
}

// Regression: this test passed even when nothing was saved before the kill; it now requires
// the answers received before `kill -9` to be stored, and none of them to be paid again.
#[test]
fn kill_9_leaves_a_readable_database_and_the_same_command_resumes() {
    let ws = Workspace::new();
    let run = HalfRun::new(&ws);
    let mut child = run
        .command(&ws)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn costbench");
    wait_for_t3_and_t4(&run.server);
    // t1 and t2 were answered before t3 and t4 were sent; wait (failsafe-bounded) until the
    // writer has committed them, which is what the kill must not undo.
    let answered = |ws: &Workspace| {
        if !ws.db().exists() {
            return Vec::new();
        }
        let mut v: Vec<String> = ws
            .attempts()
            .into_iter()
            .filter(|a| a.answered)
            .map(|a| a.task_id)
            .collect();
        v.sort();
        v
    };
    for _ in 0..6000 {
        if answered(&ws).len() >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");

    // The database opens and reports; the answers committed before the kill are kept.
    assert_eq!(
        answered(&ws),
        vec!["t1", "t2"],
        "answers saved before the kill"
    );
    let report = ws.report(None);
    assert_eq!(report["run"]["status"], "running");
    let before = run.server.tasks();

    // Resuming calls exactly the tasks the database has no answer for.
    run.server.set_script(answer_with(&run.tasks));
    run.server.clear_log();
    let again = Out::of(run.command(&ws).output().expect("run costbench"));
    again.assert_code(0);
    assert_eq!(sorted(run.server.tasks()), vec!["t3", "t4"]);
    let all: Vec<String> = before.into_iter().chain(run.server.tasks()).collect();
    for t in ["t1", "t2"] {
        assert_eq!(
            all.iter().filter(|x| *x == t).count(),
            1,
            "{t} was paid once: {all:?}"
        );
    }
    let report = again.json();
    let r = row(&report, "p");
    assert_eq!((&r["accepted"], &r["pending"]), (&json!(4), &json!(0)));
}
