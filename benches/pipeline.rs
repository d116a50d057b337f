//! End-to-end throughput benchmark: the real `costbench run` (release build) against a fast
//! loopback server speaking the OpenAI Chat Completions format, N tasks × 3 providers, with
//! grading and storage included. Prints calls/s, peak RSS of the costbench process and the
//! database size for each scenario.
//!
//! Run: `cargo bench --bench pipeline` (all scenarios) or
//! `cargo bench --bench pipeline -- 3000 30000` (zero-latency scenarios at those call counts).
//! It is a benchmark, not a test: it prints figures and asserts nothing.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const ANSWER: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1795000000,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"billing"},"finish_reason":"stop"}],"usage":{"prompt_tokens":42,"completion_tokens":2,"total_tokens":44,"prompt_tokens_details":{"cached_tokens":16}}}"#;

/// A minimal keep-alive HTTP/1.1 server answering every POST with `ANSWER` after `delay`.
async fn serve(listener: TcpListener, delay: Duration, served: Arc<AtomicU64>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let served = served.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(8192);
            let mut chunk = [0u8; 8192];
            loop {
                // Read one request: headers, then Content-Length bytes of body.
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                buf.drain(..head_end + len);
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{ANSWER}",
                    ANSWER.len()
                );
                if sock.write_all(resp.as_bytes()).await.is_err() {
                    return;
                }
                served.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

struct Scenario {
    name: &'static str,
    tasks: usize,
    providers: usize,
    concurrency: usize,
    delay_ms: u64,
}

fn write_inputs(dir: &Path, s: &Scenario, port: u16) {
    let labels = ["billing", "bug", "account"];
    let mut f = std::fs::File::create(dir.join("tasks.jsonl")).unwrap();
    for i in 0..s.tasks {
        writeln!(
            f,
            r#"{{"id":"t{i}","vars":{{"ticket":"Ticket number {i}: I was charged twice for order {i}","label":"{}"}}}}"#,
            labels[i % 3]
        )
        .unwrap();
    }
    std::fs::write(
        dir.join("suite.yaml"),
        r#"suite: bench
workload: cheap
quality_threshold: 0.3
rejection_cost_usd: 0.01
prompt:
  system: "You triage support tickets."
  user: "Ticket: {{ ticket }}\nAnswer with one word: billing, bug or account."
params: {temperature: 0, max_tokens: 4}
graders:
  - {type: equals, value: "{{ label }}", normalize: [trim, lowercase]}
tasks_file: tasks.jsonl
"#,
    )
    .unwrap();
    let mut p = String::from("providers:\n");
    for i in 0..s.providers {
        p.push_str(&format!(
            "  - {{id: p{i}, protocol: openai, base_url: \"http://127.0.0.1:{port}/v1\", model: m{i}, \
             price: {{input: 0.4, cached_input: 0.1, output: 1.6}}, max_concurrency: {}, timeout_s: 30}}\n",
            s.concurrency
        ));
    }
    std::fs::write(dir.join("providers.yaml"), p).unwrap();
}

/// Runs the binary, waiting with wait4 to read its own peak RSS.
// wait4 reaps the child, so `Child::wait` must not be called as well.
#[allow(clippy::zombie_processes)]
fn run_costbench(dir: &Path) -> (f64, i64, i32) {
    let t0 = Instant::now();
    // BENCH_WRAP="heaptrack -o /tmp/p" runs costbench under a profiler (then the peak RSS
    // printed is the profiler's).
    let wrap = std::env::var("BENCH_WRAP").unwrap_or_default();
    let mut argv: Vec<String> = wrap.split_whitespace().map(String::from).collect();
    argv.push(env!("CARGO_BIN_EXE_costbench").to_string());
    let child = std::process::Command::new(&argv[0])
        .args(&argv[1..])
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
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let scenarios: Vec<Scenario> = if args.is_empty() {
        vec![
            Scenario {
                name: "zero-latency",
                tasks: 1_000,
                providers: 3,
                concurrency: 32,
                delay_ms: 0,
            },
            Scenario {
                name: "zero-latency",
                tasks: 10_000,
                providers: 3,
                concurrency: 32,
                delay_ms: 0,
            },
            Scenario {
                name: "100ms, 1 provider × 32",
                tasks: 3_000,
                providers: 1,
                concurrency: 32,
                delay_ms: 100,
            },
        ]
    } else {
        args.iter()
            .map(|&calls| Scenario {
                name: "zero-latency",
                tasks: calls / 3,
                providers: 3,
                concurrency: 32,
                delay_ms: 0,
            })
            .collect()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{:<26} {:>7} {:>9} {:>10} {:>9} {:>11} {:>9}",
        "scenario", "calls", "wall s", "calls/s", "ideal/s", "peak RSS", "db size"
    );
    for s in &scenarios {
        let served = Arc::new(AtomicU64::new(0));
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = rt.spawn(serve(
            listener,
            Duration::from_millis(s.delay_ms),
            served.clone(),
        ));
        let dir = tempfile::tempdir().unwrap();
        write_inputs(dir.path(), s, port);
        let (wall, rss_kb, status) = run_costbench(dir.path());

        server.abort();
        let calls = served.load(Ordering::Relaxed);
        let db: u64 = ["bench.db", "bench.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(dir.path().join(f)).ok())
            .map(|m| m.len())
            .sum();
        let ideal = if s.delay_ms == 0 {
            "–".to_string()
        } else {
            format!(
                "{:.0}",
                (s.providers * s.concurrency) as f64 * 1000.0 / s.delay_ms as f64
            )
        };
        println!(
            "{:<26} {:>7} {:>9.2} {:>10.0} {:>9} {:>8.1} MB {:>6.1} MB{}",
            s.name,
            calls,
            wall,
            calls as f64 / wall,
            ideal,
            rss_kb as f64 / 1024.0,
            db as f64 / 1e6,
            if status == 0 {
                String::new()
            } else {
                format!("  (exit status {status})")
            }
        );
        // BENCH_KEEP=1 keeps the inputs and database for inspection.
        if std::env::var_os("BENCH_KEEP").is_some() {
            println!("  kept {}", dir.keep().display());
        }
    }
}
