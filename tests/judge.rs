//! The `judge` grader through the real binary: a loopback candidate and a loopback judge.
//! Verdicts good and bad, a malformed verdict retried once (then a grader error), the judge's
//! cost in the report and in cost per accepted outcome, a rerun and `costbench grade` that
//! replay the recorded judge answers instead of calling again, and a judge provider missing
//! from the providers file as a located load error.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::{
    Provider, Reply, ScriptServer, Workspace, assert_close, chat_response, providers_yaml,
};
use serde_json::Value;

/// The candidate's answer to a task.
fn answer(task: &str) -> String {
    format!("answer-{task}")
}

/// The judge's replies per task, in order: t1 good, t2 a fail, t3 malformed then good, t4
/// malformed twice.
fn verdict(task: &str, nth: usize) -> &'static str {
    match (task, nth) {
        ("t1", _) => r#"{"pass": true, "score": 0.9, "reason": "correct"}"#,
        ("t2", _) => r#"{"pass": false, "score": 0.1, "reason": "wrong city"}"#,
        ("t3", 0) => "I think it passes.",
        ("t3", _) => "```json\n{\"pass\": true, \"reason\": \"fine\"}\n```",
        _ => "PASS!!",
    }
}

/// A judge server: finds the judged task from the candidate answer in the request.
fn judge_server() -> ScriptServer {
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    ScriptServer::start(move |req, _| {
        let text = req.body.to_string();
        let task = ["t1", "t2", "t3", "t4"]
            .into_iter()
            .find(|t| text.contains(&answer(t)))
            .unwrap_or("?");
        let mut seen = seen.lock().unwrap();
        let n = seen.entry(task.to_string()).or_default();
        let reply = verdict(task, *n);
        *n += 1;
        Reply::Json(200, chat_response(reply))
    })
}

fn candidate_server() -> ScriptServer {
    ScriptServer::start(|req, _| {
        let task = req.task.clone().unwrap_or_default();
        Reply::Json(200, chat_response(&answer(&task)))
    })
}

const SUITE: &str = "suite: judged\nworkload: w\nrejection_cost_usd: 0\n\
prompt: {user: \"task {{ q }}\"}\nparams: {max_tokens: 64}\ngraders:\n  \
- {type: judge, provider: judge, rubric: \"The answer names {{ city }}\"}\ntasks:\n  \
- {id: t1, vars: {q: t1, city: Paris}}\n  - {id: t2, vars: {q: t2, city: Paris}}\n  \
- {id: t3, vars: {q: t3, city: Paris}}\n  - {id: t4, vars: {q: t4, city: Paris}}\n";

/// USD of one call with the fixture's usage (prompt 2048 of which 1536 cached, completion
/// 310) at the candidate's price (0.40 / 0.10 / 1.60 per 1M).
const CANDIDATE_CALL: f64 = (512.0 * 0.40 + 1536.0 * 0.10 + 310.0 * 1.60) / 1e6;
/// The same at the judge's price (1 / 1 / 1 per 1M).
const JUDGE_CALL: f64 = (2048.0 + 310.0) / 1e6;

fn setup(
    ws: &Workspace,
    cand: &ScriptServer,
    judge: &ScriptServer,
) -> (std::path::PathBuf, std::path::PathBuf) {
    setup_with(ws, cand, judged_by(judge))
}

/// The judge provider at its test price (1 / 1 / 1 per 1M).
fn judged_by(judge: &ScriptServer) -> Provider {
    Provider::new("judge", &judge.base_url()).price(Some("{input: 1, cached_input: 1, output: 1}"))
}

/// The suite, and a providers file with the candidate `p` and `judge`.
fn setup_with(
    ws: &Workspace,
    cand: &ScriptServer,
    judge: Provider,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let suite = ws.write("suite.yaml", SUITE);
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &cand.base_url()), judge]),
    );
    (suite, provs)
}

fn grades(db: &std::path::Path, run: i64) -> Vec<(String, String, Value, Option<String>)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut st = conn
        .prepare(
            "SELECT task_id, status, verdicts, judge_cost FROM grades WHERE run_id = ?1
             ORDER BY task_id",
        )
        .unwrap();
    st.query_map([run], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            serde_json::from_str(&r.get::<_, String>(2)?).unwrap(),
            r.get::<_, Option<String>>(3)?,
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn judge_calls(db: &std::path::Path, run: i64) -> (i64, i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT coalesce(sum(replayed = 0), 0), coalesce(sum(replayed = 1), 0) FROM judge_calls
         WHERE run_id = ?1",
        [run],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[test]
fn judge_verdicts_costs_and_replays() {
    let cand = candidate_server();
    let judge = judge_server();
    let ws = Workspace::new();
    let (suite, provs) = setup(&ws, &cand, &judge);
    // Only `p` is a candidate; the judge is another entry of the same providers file.
    let out = ws.run(&[&suite], &provs, &["--only", "p"]);
    out.assert_code(0);
    assert!(out.stderr.contains("6 judge calls (0 replayed)"), "{out}");
    assert_eq!(cand.requests().len(), 4);
    assert_eq!(judge.requests().len(), 6, "t3 and t4 are asked twice");

    let g = grades(&ws.db(), 1);
    let status: Vec<&str> = g.iter().map(|(_, s, _, _)| s.as_str()).collect();
    assert_eq!(status, ["accepted", "rejected", "accepted", "error"]);
    assert_eq!(g[0].2[0]["reason"], "judge: correct");
    assert_eq!(g[0].2[0]["score"], 0.9);
    assert_eq!(g[1].2[0]["reason"], "judge: wrong city");
    assert_eq!(g[2].2[0]["reason"], "judge: fine");
    let e = g[3].2[0]["error"].as_str().unwrap();
    assert!(e.contains("malformed verdict twice"), "{e}");
    // The judge's cost is stored per grade, exactly (femto-dollars).
    let femto = |usd: f64| ((usd * 1e15).round() as i128).to_string();
    assert_eq!(g[0].3.as_deref(), Some(femto(JUDGE_CALL).as_str()));
    assert_eq!(g[2].3.as_deref(), Some(femto(2.0 * JUDGE_CALL).as_str()));
    assert_eq!(judge_calls(&ws.db(), 1), (6, 0));

    let report = out.json();
    let row = &report["rows"][0];
    assert_eq!(row["provider"], "p");
    assert_eq!(row["accepted"], 2);
    assert_eq!(row["grader_errors"], 1);
    assert_close(&row["cost_usd"]["tokens"], 4.0 * CANDIDATE_CALL, 1e-12);
    assert_close(&row["cost_usd"]["judge"], 6.0 * JUDGE_CALL, 1e-12);
    let total = 4.0 * CANDIDATE_CALL + 6.0 * JUDGE_CALL;
    assert_close(&row["cost_usd"]["total"], total, 1e-12);
    assert_close(&row["cost_per_accepted_usd"], total / 2.0, 1e-12);
    // The report names the grader set that produced the figures.
    let sets = row["graders"].as_array().unwrap();
    assert_eq!(sets.len(), 1, "{row:#}");
    assert_eq!(sets[0]["outcomes"], 4);
    assert_eq!(sets[0]["set"]["accept"], "all");
    assert_eq!(sets[0]["set"]["graders"][0]["kind"], "judge");
    assert_eq!(
        sets[0]["set"]["graders"][0]["fingerprint"]
            .as_str()
            .unwrap()
            .len(),
        16
    );

    // A rerun replays the candidates' and the judge's recorded answers: no new calls, the
    // same figures.
    let again = ws.run(&[&suite], &provs, &["--only", "p", "--new"]);
    again.assert_code(0);
    assert!(
        again.stderr.contains("0 judge calls (6 replayed)"),
        "{again}"
    );
    assert_eq!(cand.requests().len(), 4);
    assert_eq!(judge.requests().len(), 6);
    let r2 = again.json();
    assert_close(&r2["rows"][0]["cost_usd"]["judge"], 6.0 * JUDGE_CALL, 1e-12);
    assert_eq!(r2["rows"][0]["accepted"], 2);
    let run2 = r2["run"]["id"].as_i64().unwrap();
    assert_eq!(judge_calls(&ws.db(), run2), (0, 6));

    // `costbench grade` re-grades run 1 without calling the candidate or the judge again.
    let out = ws
        .cmd()
        .args(["grade", "--run", "1", "--providers"])
        .arg(&provs)
        .output()
        .unwrap();
    let out = common::Out::of(out);
    out.assert_code(0);
    assert!(
        out.stderr.contains("re-graded 4 answers, 2 accepted"),
        "{out}"
    );
    assert!(out.stderr.contains("0 judge calls (6 replayed)"), "{out}");
    assert_eq!(cand.requests().len(), 4);
    assert_eq!(judge.requests().len(), 6);
    let r1 = ws.report(Some(1));
    assert_close(&r1["rows"][0]["cost_usd"]["judge"], 6.0 * JUDGE_CALL, 1e-12);

    // The table says how much of $/accepted the judge took.
    let table = common::Out::of(
        ws.cmd()
            .args(["report", "--run", "1", "--width", "200"])
            .output()
            .unwrap(),
    );
    table.assert_code(0);
    assert!(
        table.stdout.contains("judged / p: $/accepted includes")
            && table.stdout.contains("of LLM-judge calls"),
        "{table}"
    );

    // Without the providers file, `grade` cannot reach the judge: a usage error saying so.
    let out = common::Out::of(ws.cmd().args(["grade", "--run", "1"]).output().unwrap());
    out.assert_code(2);
    assert!(out.stderr.contains("--providers FILE"), "{out}");
}

#[test]
fn replay_without_a_recorded_judge_answer_is_a_grader_error() {
    let cand = candidate_server();
    let judge = judge_server();
    let ws = Workspace::new();
    let (suite, provs) = setup(&ws, &cand, &judge);
    // Record the candidates' answers only (no judge in this suite), then replay with a judge.
    let plain = ws.write(
        "suite.yaml",
        &SUITE.replace(
            "- {type: judge, provider: judge, rubric: \"The answer names {{ city }}\"}",
            "- {type: contains, value: answer}",
        ),
    );
    ws.run(&[&plain], &provs, &["--only", "p"]).assert_code(0);
    ws.write("suite.yaml", SUITE);
    let out = ws.run(
        &[&suite],
        &provs,
        &["--only", "p", "--new", "--cache", "replay"],
    );
    out.assert_code(0);
    assert_eq!(judge.requests().len(), 0, "replay calls no judge");
    let row = &out.json()["rows"][0];
    assert_eq!(row["grader_errors"], 4, "{row:#}");
    let g = grades(&ws.db(), 2);
    let e = g[0].2[0]["error"].as_str().unwrap();
    assert!(e.contains("no recorded answer of judge `judge`"), "{e}");
}

#[test]
fn a_judge_missing_from_the_providers_file_is_a_located_load_error() {
    let ws = Workspace::new();
    let suite = ws.write(
        "suite.yaml",
        &SUITE.replace("provider: judge", "provider: nobody"),
    );
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", "http://127.0.0.1:9/v1")]),
    );
    let out = common::Out::of(
        ws.cmd()
            .args(["validate"])
            .arg(&suite)
            .arg("--providers")
            .arg(&provs)
            .output()
            .unwrap(),
    );
    out.assert_code(2);
    assert!(
        out.stderr.contains(
            "suite.yaml:7:19: graders[0].provider: judge provider `nobody` is not in the providers file"
        ),
        "{out}"
    );
}

#[test]
fn judge_calls_count_against_the_spend_cap_and_a_higher_cap_grades_the_rest() {
    let cand = candidate_server();
    let judge = judge_server();
    let ws = Workspace::new();
    // One judge call at a time, so the cap is met at a call boundary.
    let (suite, provs) = setup_with(&ws, &cand, judged_by(&judge).max_concurrency(1));
    // Room for the four answers and about one judge call ($0.002358), not two.
    let cap = 4.0 * CANDIDATE_CALL + 0.0025;
    let out = ws.run(
        &[&suite],
        &provs,
        &["--only", "p", "--max-spend", &format!("{cap:.7}")],
    );
    out.assert_code(6);
    assert!(
        out.stderr
            .contains("outputs left ungraded, their judge calls could pass"),
        "{out}"
    );
    assert_eq!(cand.requests().len(), 4);
    let sent_first = judge.requests().len();
    assert!((1..=2).contains(&sent_first), "{sent_first} judge calls");
    let graded = grades(&ws.db(), 1).len();
    assert!(graded <= 1, "{graded} graded under the cap");
    let spent: f64 = 4.0 * CANDIDATE_CALL + sent_first as f64 * JUDGE_CALL;
    assert!(spent - JUDGE_CALL <= cap, "more than one call past the cap");

    // The same command with a higher cap resumes run 1: no candidate is called again, each
    // output is graded, and no judge call is sent twice (a sample asked before replays).
    let out = ws.run(&[&suite], &provs, &["--only", "p", "--max-spend", "1"]);
    out.assert_code(0);
    assert_eq!(cand.requests().len(), 4);
    assert_eq!(
        judge.requests().len(),
        6,
        "as many judge calls as an uncapped run"
    );
    let g = grades(&ws.db(), 1);
    let status: Vec<&str> = g.iter().map(|(_, s, _, _)| s.as_str()).collect();
    assert_eq!(status, ["accepted", "rejected", "accepted", "error"]);
    assert_eq!(judge_calls(&ws.db(), 1).0, 6);
}

#[test]
fn a_judge_without_a_price_cannot_keep_a_spend_cap() {
    let cand = candidate_server();
    let judge = judge_server();
    let ws = Workspace::new();
    let (suite, provs) = setup_with(&ws, &cand, judged_by(&judge).price(None));
    let out = ws.run(&[&suite], &provs, &["--only", "p", "--max-spend", "1"]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("judge provider `judge` has no price, so its calls cannot be bounded"),
        "{out}"
    );
    assert_eq!(cand.requests().len() + judge.requests().len(), 0);
}
