//! HTML report benchmark: `costbench report --format html` (release build) on stored runs of
//! three providers, graded, each answer a few hundred characters with a grader reason. Prints
//! the wall time of the whole command (analysis, drill-down read, render, write) and the file
//! size, for 100,000 outcomes and for 10,000 tasks × 3 providers with 1,500-character answers
//! (the size the drill-down must keep under 25 MB).
//!
//! Run: `cargo bench --bench html` or `cargo bench --bench html -- 300000` (outcomes).
//! It is a benchmark, not a test: it prints figures and asserts nothing.

use std::path::Path;
use std::time::Instant;

use costbench::providers::{Money, Price, Rate};
use costbench::store::Store;
use costbench::store::plan::{ProviderPlan, RunPlan, SuitePlan};
use rusqlite::params;

const PROVIDERS: usize = 3;

/// A run of `tasks` × 3 providers; answers are `answer_chars` long; provider i accepts
/// about (6 + i) in 10 tasks, and 1 in 40 outcomes ends with a timeout instead of an answer.
fn build(path: &Path, tasks: usize, answer_chars: usize) {
    let rate = |s: &str| Rate::parse_per_million(s).unwrap();
    let price = Price::new(rate("0.4"), rate("1.6"));
    let plan = RunPlan {
        suites: vec![SuitePlan {
            name: "bench".into(),
            description: String::new(),
            path: "bench.yaml".into(),
            workload: "cheap".into(),
            quality_threshold: Some(0.6),
            rejection_cost_femto: Money(10_000_000_000_000),
            repeats: 1,
            tasks: tasks as u64,
            fingerprint: "bench".into(),
            max_tokens: Some(400),
            margin: None,
            runtime_graders: Vec::new(),
            grader_kinds: Vec::new(),
        }],
        providers: (0..PROVIDERS)
            .map(|i| ProviderPlan {
                id: format!("provider-{i}"),
                protocol: "openai".into(),
                base_url: "http://127.0.0.1:9/v1".into(),
                model: format!("m{i}"),
                api_key_env: None,
                price: Some(price.clone()),
                tags: Default::default(),
            })
            .collect(),
    };
    let mut store = Store::open(path).unwrap();
    let ids: Vec<String> = (0..tasks).map(|i| format!("task-{i:06}")).collect();
    let vars = r#"{"ticket":"I was charged twice for my subscription <b>this month</b>","label":"billing"}"#;
    let run = store
        .create_run(
            "bench-html",
            "rw",
            &plan,
            ids.iter()
                .enumerate()
                .map(|(i, id)| ("bench", i, id.as_str(), vars)),
        )
        .unwrap();
    let answer: String = "The ticket is about billing: a double charge <maybe>. "
        .chars()
        .cycle()
        .take(answer_chars)
        .collect();
    let tx = store.conn.transaction().unwrap();
    {
        let mut att = tx
            .prepare(
                "INSERT INTO attempts (run_id, suite, provider, task_id, repeat, try, final,
                    request_hash, started_at, latency_ms, http_status, error_kind, error_message,
                    answered, replayed, usage_known, input_tokens, cached_tokens,
                    cache_write_tokens, cache_write_1h_tokens, output_tokens, reasoning_tokens,
                    cost_femto, spent_femto, output, delivery, cost_max_femto, est_prompt_tokens)
                 VALUES (?1, 'bench', ?2, ?3, 0, 0, 1, 'h', '2026-11-30T00:00:00.000Z', ?4,
                    ?5, ?6, ?7, ?8, 0, ?8, 120, 0, 0, 0, 90, 0, ?9, ?9, ?10, ?11, ?12, 200)",
            )
            .unwrap();
        let mut grade = tx
            .prepare(
                "INSERT INTO grades (run_id, suite, provider, task_id, repeat, attempt_id,
                    accepted, verdicts, graded_at, status)
                 VALUES (?1, 'bench', ?2, ?3, 0, 0, ?4, ?5, '2026-11-30T00:00:00.000Z', ?6)",
            )
            .unwrap();
        for p in 0..PROVIDERS {
            let provider = format!("provider-{p}");
            for (i, id) in ids.iter().enumerate() {
                let latency = 200.0 + ((i * 37 + p * 101) % 900) as f64;
                if (i + p) % 40 == 3 {
                    att.execute(params![
                        run,
                        provider,
                        id,
                        60_000.0,
                        None::<i64>,
                        "timeout",
                        "operation timed out",
                        false,
                        None::<i64>,
                        None::<String>,
                        "sent_unknown",
                        Some("700000000000".to_string())
                    ])
                    .unwrap();
                    continue;
                }
                att.execute(params![
                    run,
                    provider,
                    id,
                    latency,
                    200,
                    None::<String>,
                    None::<String>,
                    true,
                    192_000_000_000i64,
                    answer,
                    "answered",
                    None::<String>
                ])
                .unwrap();
                let accepted = (i * 7 + p) % 10 < 6 + p;
                let verdicts = format!(
                    r#"[{{"passed":{accepted},"reason":"{} \"billing\" in the answer"}}]"#,
                    if accepted { "found" } else { "missing" }
                );
                let status = if accepted { "accepted" } else { "rejected" };
                grade
                    .execute(params![run, provider, id, accepted, verdicts, status])
                    .unwrap();
            }
        }
    }
    tx.commit().unwrap();
}

fn report(db: &Path, out: &Path) -> f64 {
    let t0 = Instant::now();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_costbench"))
        .arg("--db")
        .arg(db)
        .args(["report", "--format", "html", "--out"])
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success());
    t0.elapsed().as_secs_f64()
}

fn measure(label: &str, tasks: usize, answer_chars: usize) {
    let dir = tempfile::tempdir().unwrap();
    // BENCH_DB=/tmp/h.db keeps the database for profiling.
    let db = std::env::var_os("BENCH_DB").map_or_else(|| dir.path().join("html.db"), Into::into);
    let _ = std::fs::remove_file(&db);
    let t0 = Instant::now();
    build(&db, tasks, answer_chars);
    let built = t0.elapsed().as_secs_f64();
    let out = dir.path().join("report.html");
    let runs: Vec<f64> = (0..3).map(|_| report(&db, &out)).collect();
    let best = runs.iter().copied().fold(f64::INFINITY, f64::min);
    let size = std::fs::metadata(&out).unwrap().len();
    println!(
        "{label}: {} outcomes ({tasks} tasks × {PROVIDERS} providers, {answer_chars}-char answers; db built in {built:.1}s): report --format html best of 3 {best:.2}s (runs {}), file {:.1} MB",
        tasks * PROVIDERS,
        runs.iter()
            .map(|r| format!("{r:.2}s"))
            .collect::<Vec<_>>()
            .join(", "),
        size as f64 / 1e6
    );
}

fn main() {
    let outcomes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if outcomes.is_empty() {
        measure("time", 100_000 / PROVIDERS + 1, 300);
        measure("size", 10_000, 1_500);
    } else {
        for n in outcomes {
            measure("time", n / PROVIDERS, 300);
        }
    }
}
