//! Shared helpers of the integration tests: temp workspaces with suite and providers files,
//! running the real `costbench` binary, reading the SQLite store and the JSON report, and a
//! small scriptable HTTP/1.1 server for behaviour wiremock cannot produce (resets, hangs,
//! per-task scripts that change between runs).
//!
//! Every suite written by [`suite_yaml`] renders its user prompt as `task <id>`, so a server
//! can tell which task a request belongs to with [`task_of`].

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use assert_cmd::Command;
use costbench::grade::{CompiledGrader, GradeInput, GradeOutcome, GraderSpec, Vars, grade_all};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ------------------------------------------------------------------------------------------
// Workspace and binary
// ------------------------------------------------------------------------------------------

/// A temp directory holding one test's files and database.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The default database of this workspace.
    pub fn db(&self) -> PathBuf {
        self.path("costbench.db")
    }

    /// Writes a file (creating parent directories) and returns its path.
    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.path(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("create dir");
        }
        std::fs::write(&p, content).expect("write file");
        p
    }

    /// Writes `suite.yaml` (suite `s` over `tasks`) and `providers.yaml` (one provider `p` at
    /// `base_url`, defaults otherwise): the setup most tests share.
    pub fn suite_and_provider(&self, tasks: &[(&str, &str)], base_url: &str) -> (PathBuf, PathBuf) {
        let suite = self.write("suite.yaml", &suite_yaml("s", tasks));
        let provs = self.write(
            "providers.yaml",
            &providers_yaml(&[Provider::new("p", base_url)]),
        );
        (suite, provs)
    }

    /// `costbench --db <this workspace's db>` with a clean environment for the variables
    /// costbench reads.
    pub fn cmd(&self) -> Command {
        self.cmd_with_db(&self.db())
    }

    pub fn cmd_with_db(&self, db: &Path) -> Command {
        let mut c = Command::cargo_bin("costbench").expect("costbench binary");
        c.current_dir(self.dir.path())
            .env_remove("COSTBENCH_DB")
            .env_remove("RUST_LOG")
            .arg("--db")
            .arg(db)
            .timeout(Duration::from_secs(120));
        c
    }

    /// `costbench run <suites> --providers <p> --no-progress --format json <extra>`.
    pub fn run(&self, suites: &[&Path], providers: &Path, extra: &[&str]) -> Out {
        let mut c = self.cmd();
        c.arg("run").args(suites).arg("--providers").arg(providers);
        c.args(["--no-progress", "--format", "json"]).args(extra);
        Out::of(c.output().expect("run costbench"))
    }

    /// `costbench report --format json` of the latest run (or `run`).
    pub fn report(&self, run: Option<i64>) -> Value {
        let mut c = self.cmd();
        c.args(["report", "--format", "json"]);
        if let Some(id) = run {
            c.args(["--run", &id.to_string()]);
        }
        let out = Out::of(c.output().expect("run costbench report"));
        assert_eq!(out.code, 0, "report failed:\n{out}");
        out.json()
    }

    /// Every stored attempt, in insertion order.
    pub fn attempts(&self) -> Vec<Attempt> {
        attempts(&self.db())
    }
}

/// What a finished costbench process printed.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn of(o: std::process::Output) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Stdout parsed as JSON (the report of `--format json`).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }

    pub fn assert_code(&self, code: i32) -> &Out {
        assert_eq!(self.code, code, "unexpected exit code:\n{self}");
        self
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The `N HTTP calls` figure of the summary line on stderr.
pub fn http_calls(stderr: &str) -> u64 {
    let i = stderr
        .find(" HTTP calls")
        .unwrap_or_else(|| panic!("no summary line in stderr:\n{stderr}"));
    let digits: String = stderr[..i]
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().expect("a number before ` HTTP calls`")
}

// ------------------------------------------------------------------------------------------
// Suite and providers files
// ------------------------------------------------------------------------------------------

/// A suite named `name` whose tasks are `(id, expected answer)`. The user prompt is
/// `task <id>` and the only grader is `contains: <answer>`.
pub fn suite_yaml(name: &str, tasks: &[(&str, &str)]) -> String {
    let mut s = format!(
        "suite: {name}\n\
         description: integration test suite\n\
         workload: test\n\
         quality_threshold: 0.5\n\
         rejection_cost_usd: 0\n\
         repeats: 1\n\
         prompt:\n  system: Answer briefly.\n  user: \"task {{{{ q }}}}\"\n\
         params: {{temperature: 0, max_tokens: 16}}\n\
         graders:\n  - {{type: contains, value: \"{{{{ answer }}}}\"}}\n\
         tasks:\n"
    );
    for (id, answer) in tasks {
        s.push_str(&format!(
            "  - {{id: {id}, vars: {{q: {id}, answer: \"{answer}\"}}}}\n"
        ));
    }
    s
}

/// One providers-file entry; `Provider::new(id, base_url)` gives fast test defaults.
#[derive(Clone, Debug)]
pub struct Provider {
    pub id: String,
    pub base_url: String,
    pub model: String,
    pub api_key_env: Option<String>,
    /// The inline YAML of `price`, e.g. `{input: 0.40, output: 1.60}`; `None` leaves it out.
    pub price: Option<String>,
    pub max_concurrency: usize,
    pub timeout_s: f64,
    pub max_retries: u32,
    pub max_retry_after_s: u64,
}

impl Provider {
    pub fn new(id: &str, base_url: &str) -> Provider {
        Provider {
            id: id.into(),
            base_url: base_url.into(),
            model: "test-model".into(),
            api_key_env: None,
            price: Some("{input: 0.40, cached_input: 0.10, output: 1.60}".into()),
            max_concurrency: 4,
            timeout_s: 20.0,
            max_retries: 2,
            max_retry_after_s: 60,
        }
    }

    pub fn price(mut self, p: Option<&str>) -> Provider {
        self.price = p.map(str::to_string);
        self
    }

    pub fn timeout_s(mut self, t: f64) -> Provider {
        self.timeout_s = t;
        self
    }

    pub fn max_retries(mut self, n: u32) -> Provider {
        self.max_retries = n;
        self
    }

    pub fn max_concurrency(mut self, n: usize) -> Provider {
        self.max_concurrency = n;
        self
    }

    pub fn max_retry_after_s(mut self, s: u64) -> Provider {
        self.max_retry_after_s = s;
        self
    }

    pub fn api_key_env(mut self, v: &str) -> Provider {
        self.api_key_env = Some(v.into());
        self
    }

    fn yaml(&self) -> String {
        let mut s = format!(
            "  - id: {}\n    protocol: openai\n    base_url: {}\n    model: {}\n",
            self.id, self.base_url, self.model
        );
        if let Some(k) = &self.api_key_env {
            s.push_str(&format!("    api_key_env: {k}\n"));
        }
        if let Some(p) = &self.price {
            s.push_str(&format!("    price: {p}\n"));
        }
        s.push_str(&format!(
            "    max_concurrency: {}\n    timeout_s: {}\n    retry: {{max_retries: {}, base_delay_ms: 10, max_delay_ms: 20, max_retry_after_s: {}}}\n",
            self.max_concurrency, self.timeout_s, self.max_retries, self.max_retry_after_s
        ));
        s
    }
}

/// A providers file listing `ps`.
pub fn providers_yaml(ps: &[Provider]) -> String {
    let mut s = String::from("providers:\n");
    for p in ps {
        s.push_str(&p.yaml());
    }
    s
}

// ------------------------------------------------------------------------------------------
// Wire-format bodies
// ------------------------------------------------------------------------------------------

/// A provider wire-format fixture from tests/fixtures.
pub fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The openai-chat.json fixture with its answer text replaced by `content` (usage kept:
/// prompt 2048 of which 1536 cached, completion 310 of which 192 reasoning).
pub fn chat_response(content: &str) -> Value {
    let mut v = fixture("openai-chat.json");
    v["choices"][0]["message"]["content"] = Value::String(content.into());
    v
}

/// The events of an SSE fixture from tests/fixtures, each with its blank-line terminator.
pub fn sse_events(name: &str) -> Vec<String> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| format!("{}\n\n", e.trim_start_matches('\n')))
        .collect()
}

/// The task a request belongs to: the last message's `task <id>` (see [`suite_yaml`]).
pub fn task_of(body: &Value) -> Option<String> {
    body["messages"]
        .as_array()?
        .last()?
        .get("content")?
        .as_str()?
        .strip_prefix("task ")
        .map(str::to_string)
}

// ------------------------------------------------------------------------------------------
// The store
// ------------------------------------------------------------------------------------------

/// One row of the `attempts` table.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub run_id: i64,
    pub suite: String,
    pub provider: String,
    pub task_id: String,
    pub repeat: i64,
    pub try_no: i64,
    pub is_final: bool,
    pub http_status: Option<i64>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub answered: bool,
    pub replayed: bool,
    pub usage_known: bool,
    pub input_tokens: i64,
    pub cached_tokens: i64,
    pub output_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_femto: Option<i64>,
    pub spent_femto: Option<i64>,
    pub output: Option<String>,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
}

/// Every attempt stored in `db`, in insertion order.
pub fn attempts(db: &Path) -> Vec<Attempt> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap_or_else(|e| panic!("open {}: {e}", db.display()));
    let mut st = conn
        .prepare(
            "SELECT run_id, suite, provider, task_id, repeat, try, final, http_status, error_kind,
                error_message, answered, replayed, usage_known, input_tokens, cached_tokens,
                output_tokens, reasoning_tokens, cost_femto, spent_femto, output, latency_ms,
                ttft_ms
             FROM attempts ORDER BY id",
        )
        .expect("prepare");
    st.query_map([], |r| {
        Ok(Attempt {
            run_id: r.get(0)?,
            suite: r.get(1)?,
            provider: r.get(2)?,
            task_id: r.get(3)?,
            repeat: r.get(4)?,
            try_no: r.get(5)?,
            is_final: r.get(6)?,
            http_status: r.get(7)?,
            error_kind: r.get(8)?,
            error_message: r.get(9)?,
            answered: r.get(10)?,
            replayed: r.get(11)?,
            usage_known: r.get(12)?,
            input_tokens: r.get(13)?,
            cached_tokens: r.get(14)?,
            output_tokens: r.get(15)?,
            reasoning_tokens: r.get(16)?,
            cost_femto: r.get(17)?,
            spent_femto: r.get(18)?,
            output: r.get(19)?,
            latency_ms: r.get(20)?,
            ttft_ms: r.get(21)?,
        })
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

/// Attempts of one task, sorted by try number.
pub fn tries_of<'a>(all: &'a [Attempt], provider: &str, task: &str) -> Vec<&'a Attempt> {
    let mut v: Vec<&Attempt> = all
        .iter()
        .filter(|a| a.provider == provider && a.task_id == task)
        .collect();
    v.sort_by_key(|a| (a.run_id, a.try_no));
    v
}

/// The error kinds of a list of attempts (`None` for an answer).
pub fn kinds(tries: &[&Attempt]) -> Vec<Option<String>> {
    tries.iter().map(|a| a.error_kind.clone()).collect()
}

// ------------------------------------------------------------------------------------------
// The JSON report
// ------------------------------------------------------------------------------------------

/// The report row of `provider` (the suite is unique in most tests).
pub fn row<'a>(report: &'a Value, provider: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .expect("rows array")
        .iter()
        .find(|r| r["provider"] == provider)
        .unwrap_or_else(|| panic!("no row for provider {provider} in {report:#}"))
}

/// Asserts a JSON number equals `expected` within `tol`.
#[track_caller]
pub fn assert_close(v: &Value, expected: f64, tol: f64) {
    let x = v
        .as_f64()
        .unwrap_or_else(|| panic!("expected a number near {expected}, got {v}"));
    assert!(
        (x - expected).abs() <= tol,
        "expected {expected} ± {tol}, got {x}"
    );
}

// ------------------------------------------------------------------------------------------
// Grader programs
// ------------------------------------------------------------------------------------------

/// Whether a `python3` runs here (the example graders and the `code` grader need one).
pub fn has_python() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "pass"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Writes an executable script `name` into `dir`: its `#!` line, then `body`.
#[cfg(unix)]
pub fn write_script(dir: &Path, name: &str, shebang: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("{shebang}\n{body}\n")).expect("write script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod script");
}

/// A `command` grader running `program` (relative to `dir`), with extra spec fields
/// (`", persistent: true"`).
pub fn command_grader(dir: &Path, program: &str, extra: &str) -> CompiledGrader {
    let spec: GraderSpec =
        serde_saphyr::from_str(&format!("{{type: command, program: '{program}'{extra}}}"))
            .expect("grader spec");
    spec.compile_in(dir).expect("grader compiles")
}

/// Grades `outputs` with `g` (in parallel on rayon, as a run does) and no task variables.
pub fn grade_outputs(g: &CompiledGrader, outputs: &[String]) -> Vec<GradeOutcome> {
    grade_with_vars(g, outputs, &Vars::new())
}

/// Grades `outputs` with `g` (in parallel on rayon), each with the task variables `vars`.
pub fn grade_with_vars(g: &CompiledGrader, outputs: &[String], vars: &Vars) -> Vec<GradeOutcome> {
    let items: Vec<GradeInput<'_>> = outputs
        .iter()
        .map(|o| GradeInput {
            output: o,
            vars,
            provider: "p",
        })
        .collect();
    grade_all(std::slice::from_ref(g), &items)
}

/// The absolute path of the repo's example grader `graders/<name>`, so a suite or grader can
/// live in a temp dir.
pub fn example_grader(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("graders")
        .join(name)
        .display()
        .to_string()
}

// ------------------------------------------------------------------------------------------
// A scriptable HTTP/1.1 server
// ------------------------------------------------------------------------------------------

/// What the scripted server does with one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A JSON body with `content-type: application/json`.
    Json(u16, Value),
    /// Any status, extra headers and raw body text.
    Raw {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Any status, extra headers and a raw body that need not be UTF-8.
    Bytes {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// A 200 `text/event-stream` body sent in chunks, each after its delay (ms): paced SSE.
    /// `complete: false` closes the connection after the last chunk without ending the body.
    Sse {
        chunks: Vec<(u64, String)>,
        complete: bool,
    },
    /// Read the request, then reset the connection (SO_LINGER 0) without answering.
    Reset,
    /// Read the request and never answer (until the server is dropped).
    Hang,
}

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Lower-cased header names.
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// [`task_of`] the body.
    pub task: Option<String>,
    /// When the request was read in full.
    pub at: std::time::Instant,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Decides the reply to a request; the `usize` is how many earlier requests of the same task
/// this server has seen (0 for the first).
pub type Script = Arc<dyn Fn(&Seen, usize) -> Reply + Send + Sync>;

struct State {
    script: Script,
    log: Vec<Seen>,
    per_task: HashMap<Option<String>, usize>,
}

type SharedState = Arc<(Mutex<State>, Condvar)>;

/// An HTTP/1.1 server on 127.0.0.1 running on its own thread, answering per a [`Script`]
/// that can be swapped between runs; it records every request.
pub struct ScriptServer {
    addr: SocketAddr,
    state: SharedState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ScriptServer {
    pub fn start(script: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> ScriptServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let state: SharedState = Arc::new((
            Mutex::new(State {
                script: Arc::new(script),
                log: Vec::new(),
                per_task: HashMap::new(),
            }),
            Condvar::new(),
        ));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                tokio::pin!(stopped);
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        acc = listener.accept() => {
                            let Ok((sock, _)) = acc else { continue };
                            tokio::spawn(serve_connection(sock, st.clone()));
                        }
                    }
                }
            });
            // Dropping the runtime drops hanging connections.
        });
        ScriptServer {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/v1`, the base URL a provider entry uses.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Replaces the script (e.g. a healthy server for the resumed run).
    pub fn set_script(&self, script: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) {
        self.state.0.lock().unwrap().script = Arc::new(script);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.state.0.lock().unwrap().log.clone()
    }

    /// The task of every request received so far, in arrival order.
    pub fn tasks(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .map(|s| s.task.unwrap_or_default())
            .collect()
    }

    /// Forgets the requests received so far (per-task counts restart too).
    pub fn clear_log(&self) {
        let mut s = self.state.0.lock().unwrap();
        s.log.clear();
        s.per_task.clear();
    }

    /// Blocks until `cond` holds for the request log. The timeout is only a failsafe against
    /// a hung test; synchronisation is by notification on every request.
    pub fn wait_until(&self, what: &str, cond: impl Fn(&[Seen]) -> bool) {
        let (lock, cv) = &*self.state;
        let guard = lock.lock().unwrap();
        let (guard, res) = cv
            .wait_timeout_while(guard, Duration::from_secs(60), |s| !cond(&s.log))
            .unwrap();
        assert!(
            !res.timed_out(),
            "timed out waiting until {what}; requests so far: {:?}",
            guard.log.iter().map(|s| &s.task).collect::<Vec<_>>()
        );
    }
}

impl Drop for ScriptServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves the requests of one connection (keep-alive) until it closes.
async fn serve_connection(mut sock: tokio::net::TcpStream, state: SharedState) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let Some(seen) = read_request(&mut sock, &mut buf).await else {
            return;
        };
        let reply = {
            let (lock, cv) = &*state;
            let mut s = lock.lock().unwrap();
            let n = s.per_task.entry(seen.task.clone()).or_insert(0);
            let nth = *n;
            *n += 1;
            let script = s.script.clone();
            s.log.push(seen.clone());
            cv.notify_all();
            drop(s);
            script(&seen, nth)
        };
        if let Reply::Bytes {
            status,
            headers,
            body,
        } = &reply
        {
            let mut head = format!(
                "HTTP/1.1 {status} {}\r\ncontent-length: {}\r\n",
                reason(*status),
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let mut bytes = head.into_bytes();
            bytes.extend_from_slice(body);
            if sock.write_all(&bytes).await.is_err() || sock.flush().await.is_err() {
                return;
            }
            continue;
        }
        if let Reply::Sse { chunks, complete } = &reply {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
            if sock.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for (delay, text) in chunks {
                tokio::time::sleep(Duration::from_millis(*delay)).await;
                let chunk = format!("{:x}\r\n{text}\r\n", text.len());
                if sock.write_all(chunk.as_bytes()).await.is_err() || sock.flush().await.is_err() {
                    return;
                }
            }
            if !complete || sock.write_all(b"0\r\n\r\n").await.is_err() {
                return; // dropping the socket cuts the body short
            }
            continue;
        }
        let (status, headers, body) = match reply {
            Reply::Json(status, v) => (
                status,
                vec![("content-type".to_string(), "application/json".to_string())],
                v.to_string(),
            ),
            Reply::Raw {
                status,
                headers,
                body,
            } => (status, headers, body),
            Reply::Reset => {
                let _ = sock.set_zero_linger();
                return; // dropping the socket sends RST
            }
            Reply::Hang => std::future::pending().await,
            Reply::Bytes { .. } | Reply::Sse { .. } => continue, // written above
        };
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\ncontent-length: {}\r\n",
            reason(status),
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.as_bytes());
        if sock.write_all(&bytes).await.is_err() || sock.flush().await.is_err() {
            return;
        }
    }
}

/// Reads one request (headers and a content-length body); `None` when the peer closed.
pub async fn read_request(sock: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<Seen> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 8192];
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut start = lines.next()?.split(' ');
    let method = start.next()?.to_string();
    let path = start.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    assert!(
        !headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")),
        "the test server expects content-length bodies"
    );
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body_start = head_end + 4;
    while buf.len() < body_start + len {
        let mut chunk = [0u8; 8192];
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body: Value =
        serde_json::from_slice(&buf[body_start..body_start + len]).unwrap_or(Value::Null);
    buf.drain(..body_start + len);
    let task = task_of(&body);
    Some(Seen {
        method,
        path,
        headers,
        body,
        task,
        at: std::time::Instant::now(),
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// A script answering every task with `chat_response(answer)` where the answer is looked up
/// in `answers` (task id → text); unknown tasks get `"?"`.
pub fn answer_with(
    answers: &[(&str, &str)],
) -> impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static {
    let map: HashMap<String, String> = answers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |seen: &Seen, _| {
        let a = seen
            .task
            .as_ref()
            .and_then(|t| map.get(t))
            .cloned()
            .unwrap_or_else(|| "?".into());
        Reply::Json(200, chat_response(&a))
    }
}
