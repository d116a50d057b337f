//! Report benchmark: `costbench report` (release build) on a stored run of N outcomes
//! (default 1,000,000: N/3 tasks × 3 providers, one attempt each plus a retry on 1 in 50,
//! 1 in 1,000 with a timed-out try of unknown cost), graded. Prints wall time and peak RSS of
//! the report process, per output format, then of `compare` (two of the providers) and
//! `reprice` (every price doubled), which read the same run.
//!
//! Run: `cargo bench --bench report` or `cargo bench --bench report -- 100000`
//! (`BENCH_DB=/tmp/r.db` keeps the database for profiling).
//! It is a benchmark, not a test: it prints figures and asserts nothing.

use std::path::Path;
use std::time::Instant;

use costbench::providers::{Price, Rate};
use costbench::store::Store;
use costbench::store::plan::{ProviderPlan, RunPlan, SuitePlan};
use rusqlite::params;

const PROVIDERS: usize = 3;

fn build_db(path: &Path, outcomes: usize) {
    let tasks = outcomes / PROVIDERS;
    let rate = |s: &str| Rate::parse_per_million(s).unwrap();
    let plan = RunPlan {
        suites: vec![SuitePlan {
            name: "bench".into(),
            description: String::new(),
            path: "bench.yaml".into(),
            workload: "cheap".into(),
            quality_threshold: Some(0.5),
            rejection_cost_femto: costbench::providers::Money(10_000_000_000_000),
            repeats: 1,
            tasks: tasks as u64,
            fingerprint: "bench".into(),
            max_tokens: Some(16),
            margin: None,
            runtime_graders: Vec::new(),
            grader_kinds: Vec::new(),
        }],
        providers: (0..PROVIDERS)
            .map(|i| ProviderPlan {
                id: format!("p{i}"),
                protocol: "openai".into(),
                base_url: "http://127.0.0.1:9/v1".into(),
                model: format!("m{i}"),
                api_key_env: None,
                price: Some(Price {
                    cached_input: Some(rate("0.1")),
                    ..Price::new(rate("0.4"), rate("1.6"))
                }),
                tags: Default::default(),
            })
            .collect(),
    };
    let mut store = Store::open(path).unwrap();
    let ids: Vec<String> = (0..tasks).map(|i| format!("t{i}")).collect();
    let run = store
        .create_run(
            "bench",
            "rw",
            &plan,
            ids.iter()
                .enumerate()
                .map(|(i, id)| ("bench", i, id.as_str(), "{}")),
        )
        .unwrap();
    let tx = store.conn.transaction().unwrap();
    {
        let mut att = tx
            .prepare(
                "INSERT INTO attempts (run_id, suite, provider, task_id, repeat, try, final,
                    request_hash, started_at, latency_ms, http_status, error_kind, error_message,
                    answered, replayed, usage_known, input_tokens, cached_tokens,
                    cache_write_tokens, cache_write_1h_tokens, output_tokens, reasoning_tokens,
                    cost_femto, spent_femto, finish_reason, output, delivery, cost_max_femto,
                    est_prompt_tokens)
                 VALUES (?1, 'bench', ?2, ?3, 0, ?4, ?5, 'h', '2026-11-30T00:00:00.000Z', ?6,
                    ?7, ?8, ?9, ?10, 0, ?10, 26, 16, 0, 0, 2, 0, ?11, ?11, 'stop', 'billing',
                    ?12, ?13, ?14)",
            )
            .unwrap();
        let mut grade = tx
            .prepare(
                "INSERT INTO grades (run_id, suite, provider, task_id, repeat, attempt_id,
                    accepted, verdicts, graded_at, status)
                 VALUES (?1, 'bench', ?2, ?3, 0, 0, ?4, '[]', '2026-11-30T00:00:00.000Z', ?5)",
            )
            .unwrap();
        for p in 0..PROVIDERS {
            let provider = format!("p{p}");
            for (i, id) in ids.iter().enumerate() {
                let mut try_no = 0;
                if i % 50 == 7 {
                    // A 503, retried.
                    att.execute(params![
                        run,
                        provider,
                        id,
                        try_no,
                        false,
                        80.0,
                        503,
                        "server_error",
                        "HTTP 503",
                        false,
                        0i64,
                        "refused",
                        None::<String>,
                        None::<i64>
                    ])
                    .unwrap();
                    try_no += 1;
                }
                if i % 1000 == 13 {
                    // A timeout after sending: cost unknown, bounded.
                    att.execute(params![
                        run,
                        provider,
                        id,
                        try_no,
                        false,
                        30000.0,
                        None::<i64>,
                        "timeout",
                        "operation timed out",
                        false,
                        None::<i64>,
                        "sent_unknown",
                        Some("84000000000".to_string()),
                        Some(180i64)
                    ])
                    .unwrap();
                    try_no += 1;
                }
                att.execute(params![
                    run,
                    provider,
                    id,
                    try_no,
                    true,
                    100.0 + (i % 400) as f64,
                    200,
                    None::<String>,
                    None::<String>,
                    true,
                    17_200_000_000i64,
                    "answered",
                    None::<String>,
                    None::<i64>
                ])
                .unwrap();
                let accepted = (i * 7 + p) % 10 < 6 + p;
                grade
                    .execute(params![
                        run,
                        provider,
                        id,
                        accepted,
                        if accepted { "accepted" } else { "rejected" }
                    ])
                    .unwrap();
            }
        }
    }
    tx.commit().unwrap();
}

/// Runs costbench with `args`, waiting with wait4 to read its own peak RSS and CPU time:
/// (seconds, peak KB, status, CPU seconds user + system). CPU time is printed beside wall time
/// because on a shared machine wall time mostly measures the other processes.
// wait4 reaps the child, so `Child::wait` must not be called as well.
#[allow(clippy::zombie_processes)]
fn costbench(db: &Path, args: &[&str]) -> (f64, i64, i32, f64) {
    let t0 = Instant::now();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_costbench"))
        .args(["--db"])
        .arg(db)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child; both pointers are valid for the call.
    unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        t0.elapsed().as_secs_f64(),
        usage.ru_maxrss,
        status,
        secs(usage.ru_utime) + secs(usage.ru_stime),
    )
}

fn main() {
    let outcomes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let outcomes = if outcomes.is_empty() {
        vec![1_000_000]
    } else {
        outcomes
    };
    for n in outcomes {
        let dir = tempfile::tempdir().unwrap();
        // BENCH_DB=PATH keeps the database (built once, reused) for profiling.
        let db = std::env::var_os("BENCH_DB")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| dir.path().join("bench.db"));
        let t0 = Instant::now();
        if !db.exists() {
            build_db(&db, n);
        }
        let built = t0.elapsed().as_secs_f64();
        let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
        println!(
            "{n} outcomes: database built in {built:.1}s, {:.1} MB",
            size as f64 / 1e6
        );
        let prices = dir.path().join("prices.yaml");
        let entries: String = (0..PROVIDERS)
            .map(|i| {
                format!(
                    "  - {{id: p{i}, protocol: openai, base_url: \"http://127.0.0.1:9/v1\", \
                     model: m{i}, price: {{input: 0.8, cached_input: 0.2, output: 3.2}}}}\n"
                )
            })
            .collect();
        std::fs::write(&prices, format!("providers:\n{entries}")).unwrap();
        let prices = prices.to_string_lossy().into_owned();
        let commands: [(&str, Vec<&str>); 4] = [
            ("report --format json", vec!["report", "--format", "json"]),
            ("report --format table", vec!["report", "--format", "table"]),
            (
                "compare p0 → p1 --format json",
                vec![
                    "compare",
                    "--incumbent",
                    "p0",
                    "--candidate",
                    "p1",
                    "--format",
                    "json",
                ],
            ),
            (
                "reprice (prices ×2) --format json",
                vec!["reprice", "--prices", &prices, "--format", "json"],
            ),
        ];
        for (name, args) in commands {
            let (secs, rss_kb, status, cpu) = costbench(&db, &args);
            println!(
                "  {name}: {secs:.2}s ({cpu:.2}s CPU), peak RSS {:.1} MB, exit status {status}",
                rss_kb as f64 / 1024.0
            );
        }
    }
}
