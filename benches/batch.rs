//! Batch-mode benchmark: the real `costbench run` (release build) with one `mode: batch`
//! provider per batch API against the loopback batch server of the tests
//! (tests/common/batch_server.rs), N tasks each: chunking (OpenAI: 50,000 requests a batch),
//! the batch and slot rows stored before each submission, polling, and every result line
//! mapped back to its slot and stored as an attempt, then grading and the report. Prints wall
//! time, peak RSS of the costbench process, batches created and the database size.
//!
//! Run: `cargo bench --bench batch` (100,000 requests through OpenAI, then Anthropic) or
//! `cargo bench --bench batch -- 20000` (that many). It prints figures and asserts nothing.

#[path = "../tests/common/batch_server.rs"]
mod batch_server;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use batch_server::{BatchServer, Outcome};

fn write_inputs(dir: &Path, tasks: usize, protocol: &str, base_url: &str) {
    let labels = ["billing", "bug", "account"];
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("tasks.jsonl")).unwrap());
    for i in 0..tasks {
        writeln!(
            f,
            r#"{{"id":"t{i}","vars":{{"ticket":"t{i}","label":"{}"}}}}"#,
            labels[i % 3]
        )
        .unwrap();
    }
    f.flush().unwrap();
    std::fs::write(
        dir.join("suite.yaml"),
        r#"suite: bench
workload: cheap
prompt:
  system: "You triage support tickets."
  user: "{{ ticket }}"
params: {temperature: 0, max_tokens: 4}
graders:
  - {type: equals, value: "{{ label }}", normalize: [trim, lowercase]}
tasks_file: tasks.jsonl
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("providers.yaml"),
        format!(
            "providers:\n  - {{id: p, protocol: {protocol}, base_url: \"{base_url}\", model: m, mode: batch, \
             batch: {{poll_s: 0.05, max_poll_s: 0.2}}, \
             price: {{input: 0.4, output: 1.6, batch: {{input: 0.2, output: 0.8}}}}}}\n"
        ),
    )
    .unwrap();
}

/// Runs the binary, waiting with wait4 to read its own peak RSS.
// wait4 reaps the child, so `Child::wait` must not be called as well.
#[allow(clippy::zombie_processes)]
fn run_costbench(dir: &Path) -> (f64, i64, i32) {
    let t0 = Instant::now();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_costbench"))
        .current_dir(dir)
        .args([
            "--db",
            "bench.db",
            "run",
            "suite.yaml",
            "--providers",
            "providers.yaml",
            "--no-progress",
            "--max-failed-share",
            "1",
            "--format",
            "json",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    (t0.elapsed().as_secs_f64(), usage.ru_maxrss, status)
}

fn main() {
    let tasks: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    println!(
        "{:<10} {:>8} {:>8} {:>9} {:>11} {:>9} {:>9}",
        "api", "requests", "batches", "wall s", "peak RSS", "db size", "answered"
    );
    for protocol in ["openai", "anthropic"] {
        let labels = ["billing", "bug", "account"];
        let server = BatchServer::start(2, move |prompt| {
            let i: usize = prompt.trim_start_matches('t').parse().unwrap_or(0);
            Outcome::Answer(labels[i % 3].into())
        });
        let base_url = match protocol {
            "openai" => format!("{}/v1", server.url()),
            _ => server.url(),
        };
        let dir = tempfile::tempdir().unwrap();
        write_inputs(dir.path(), tasks, protocol, &base_url);
        let (wall, rss_kb, status) = run_costbench(dir.path());
        let db: u64 = ["bench.db", "bench.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(dir.path().join(f)).ok())
            .map(|m| m.len())
            .sum();
        let answered: i64 = rusqlite::Connection::open(dir.path().join("bench.db"))
            .and_then(|c| {
                c.query_row(
                    "SELECT count(*) FROM attempts WHERE answered = 1",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap_or(-1);
        println!(
            "{:<10} {:>8} {:>8} {:>9.2} {:>8.1} MB {:>6.1} MB {:>9}{}",
            protocol,
            server.submitted(),
            server.creations.load(Ordering::SeqCst),
            wall,
            rss_kb as f64 / 1024.0,
            db as f64 / 1e6,
            answered,
            if status == 0 {
                String::new()
            } else {
                format!("  (exit status {status})")
            }
        );
    }
}
