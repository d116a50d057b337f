//! Persistent grader workers (the `command` grader with `persistent: true`): a program started
//! once and asked many times over JSON Lines, one request line on its stdin and one reply line
//! on its stdout, in order, until its stdin closes.
//!
//! Starting an interpreter per output costs more than most graders' work (≈ 85 ms for
//! `python3` here), so a [`Pool`] keeps idle workers, at most as many as were ever busy at once
//! (one per rayon thread). A request takes one, and it goes back only after a reply the caller
//! accepted: any doubt about the stream (no reply in time, a line that is not a verdict, an
//! exit, a line nobody asked for) discards the worker, killed with its process group and
//! reaped, and the next request starts a fresh one. So a failure costs the outcome that met
//! it, never the ones after.
//!
//! Each worker has three threads: a writer (a worker that stops reading cannot block the
//! caller past its timeout), a stdout reader that cuts lines (each capped at [`MAX_CAPTURE`]),
//! and a stderr drain that keeps the last few KiB (a chatty program never fills its pipe).
//! Programs are started with [`Command`] and an argument list, never through a shell. Each
//! worker comes with a folder of its own (its working directory, isolated by the caller),
//! removed once the worker is reaped.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::process::{MAX_CAPTURE, PIPE_GRACE, describe_status, kill, last_line, spawn_piped};

/// Bytes of a worker's stderr kept (its tail), for the reason of an error.
const STDERR_TAIL: usize = 8 << 10;

/// How long workers get to exit on their own once their stdin is closed, before the kill.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Why a request got no usable reply.
#[derive(Debug)]
pub(crate) enum AskError {
    /// The program could not be started.
    Spawn(std::io::Error),
    /// No reply within the limit; the worker was killed.
    Timeout(Duration),
    /// The worker exited (or closed its stdout) before replying.
    Exited {
        /// How it ended ("exit code 1", "killed by signal 11").
        status: String,
        /// The last line of its stderr, if any.
        stderr: String,
    },
    /// A reply line longer than [`MAX_CAPTURE`].
    TooLong,
    /// The caller rejected the reply line (not a verdict).
    Reply(String),
}

impl std::fmt::Display for AskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AskError::Spawn(e) => write!(f, "cannot start: {e}"),
            AskError::Timeout(t) => write!(f, "timed out after {}", humantime::format_duration(*t)),
            AskError::Exited { status, stderr } if stderr.is_empty() => {
                write!(f, "exited before replying, with {status}")
            }
            AskError::Exited { status, stderr } => {
                write!(f, "exited before replying, with {status}: {stderr}")
            }
            AskError::TooLong => write!(f, "replied with a line over {} bytes", MAX_CAPTURE),
            AskError::Reply(m) => f.write_str(m),
        }
    }
}

/// Idle workers of one program, started on demand.
pub(crate) struct Pool {
    /// Builds the command that starts one worker, and the folder it owns.
    make: Box<dyn Fn() -> std::io::Result<(Command, TempDir)> + Send + Sync>,
    idle: Mutex<Vec<Worker>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &lock(&self.idle).len())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool whose workers are started by `make` (the command, and the folder that lives as
    /// long as the worker); none is started yet.
    pub(crate) fn new(
        make: impl Fn() -> std::io::Result<(Command, TempDir)> + Send + Sync + 'static,
    ) -> Pool {
        Pool {
            make: Box::new(make),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends `request` (one line, without its newline) to a worker and hands its reply line to
    /// `parse`; the worker is kept for the next request only when `parse` accepts the reply.
    pub(crate) fn ask<T>(
        &self,
        request: &[u8],
        limit: Duration,
        parse: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Result<T, AskError> {
        let mut worker = self.take()?;
        let mut line = Vec::with_capacity(request.len() + 1);
        line.extend_from_slice(request);
        line.push(b'\n');
        worker.send(line);
        // On every error below `worker` is dropped here: killed and reaped.
        let reply = worker.reply(limit)?;
        let parsed = parse(&reply).map_err(AskError::Reply)?;
        lock(&self.idle).push(worker);
        Ok(parsed)
    }

    /// Closes every idle worker's stdin, gives them [`EXIT_GRACE`] to exit, kills the rest and
    /// reaps them all. Later requests start new workers.
    pub(crate) fn close(&self) {
        let mut workers = std::mem::take(&mut *lock(&self.idle));
        for w in &mut workers {
            w.requests = None;
        }
        let deadline = Instant::now() + EXIT_GRACE;
        for w in &mut workers {
            w.wait_until(deadline);
        }
        // Drop kills whatever did not exit in time.
        drop(workers);
    }

    /// An idle worker still in step with its stream, or a new one.
    fn take(&self) -> Result<Worker, AskError> {
        loop {
            let Some(mut w) = lock(&self.idle).pop() else {
                let (cmd, dir) = (self.make)().map_err(AskError::Spawn)?;
                return Worker::spawn(cmd, dir);
            };
            if w.ready() {
                return Ok(w);
            }
            // Exited while idle, or printed a line nobody asked for: dropped here (reaped).
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.close();
    }
}

/// What the stdout reader saw.
enum Line {
    /// One line, without its newline.
    Text(Vec<u8>),
    /// A line longer than [`MAX_CAPTURE`] (read and dropped).
    TooLong,
}

/// One running program.
struct Worker {
    child: Child,
    /// Request lines for the writer thread; `None` once stdin is to be closed.
    requests: Option<mpsc::Sender<Vec<u8>>>,
    /// Reply lines from the stdout reader; disconnected at EOF.
    lines: mpsc::Receiver<Line>,
    /// The last [`STDERR_TAIL`] bytes of stderr.
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Disconnected when stderr reached its end.
    stderr_done: mpsc::Receiver<()>,
    /// The worker's own folder; dropped (removed) after `Drop` has reaped the worker.
    _dir: TempDir,
}

impl Worker {
    /// Starts `cmd` with piped stdio in its own process group, and its three threads; `dir`
    /// is kept until the worker is gone.
    fn spawn(mut cmd: Command, dir: TempDir) -> Result<Worker, AskError> {
        let (child, mut stdin, stdout, stderr) = spawn_piped(&mut cmd).map_err(AskError::Spawn)?;
        let (requests, to_write) = mpsc::channel::<Vec<u8>>();
        thread::spawn(move || {
            // A worker that exited unread must fail the write with EPIPE, not kill costbench.
            #[cfg(unix)]
            super::process::block_sigpipe();
            for line in to_write {
                if stdin.write_all(&line).and_then(|()| stdin.flush()).is_err() {
                    break;
                }
            }
            // Dropping stdin here is the EOF that tells the worker to finish.
        });
        let (line_tx, lines) = mpsc::channel();
        thread::spawn(move || read_lines(stdout, &line_tx));
        let tail = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, stderr_done) = mpsc::channel::<()>();
        let keep = Arc::clone(&tail);
        thread::spawn(move || {
            keep_tail(stderr, &keep);
            drop(done_tx);
        });
        Ok(Worker {
            child,
            requests: Some(requests),
            lines,
            stderr: tail,
            stderr_done,
            _dir: dir,
        })
    }

    /// Still running, and nothing on stdout that no request asked for.
    fn ready(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
            && matches!(self.lines.try_recv(), Err(TryRecvError::Empty))
    }

    /// Queues one request line for the writer thread.
    fn send(&self, line: Vec<u8>) {
        if let Some(tx) = &self.requests {
            // A writer that stopped (EPIPE) shows up as an exit or a timeout in `reply`.
            let _ = tx.send(line);
        }
    }

    /// The next non-blank stdout line, within `limit`.
    fn reply(&mut self, limit: Duration) -> Result<Vec<u8>, AskError> {
        let deadline = Instant::now() + limit;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(Line::Text(l)) if l.trim_ascii().is_empty() => continue,
                Ok(Line::Text(l)) => return Ok(l),
                Ok(Line::TooLong) => return Err(AskError::TooLong),
                Err(RecvTimeoutError::Timeout) => return Err(AskError::Timeout(limit)),
                Err(RecvTimeoutError::Disconnected) => return Err(self.exited()),
            }
        }
    }

    /// How a worker whose stdout ended went: its exit status (killed if it lingers with
    /// stdout closed) and its last stderr line.
    fn exited(&mut self) -> AskError {
        let status = if self.wait_until(Instant::now() + PIPE_GRACE) {
            self.child.try_wait().ok().flatten()
        } else {
            None
        };
        let status = match status {
            Some(s) => describe_status(&s),
            None => {
                kill(&mut self.child);
                let _ = self.child.wait();
                "its stdout closed while it kept running (killed)".to_owned()
            }
        };
        // Its last words may still be in the pipe.
        let _ = self.stderr_done.recv_timeout(PIPE_GRACE);
        AskError::Exited {
            status,
            stderr: last_line(&lock(&self.stderr)),
        }
    }

    /// Waits for the worker to exit until `deadline`; true when it has (and is reaped).
    fn wait_until(&mut self, deadline: Instant) -> bool {
        let mut pause = Duration::from_millis(1);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return true,
                Ok(None) if Instant::now() < deadline => {
                    thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Ok(None) | Err(_) => return false,
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.requests = None;
        // Exited and reaped already, or killed (with its group) and reaped now: no zombies.
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            kill(&mut self.child);
            let _ = self.child.wait();
        }
    }
}

/// Cuts `out` into lines for `tx` until EOF; a line over [`MAX_CAPTURE`] is read and dropped.
fn read_lines(out: impl Read, tx: &mpsc::Sender<Line>) {
    let mut r = BufReader::with_capacity(64 << 10, out);
    let mut line = Vec::new();
    let mut over = false;
    loop {
        let buf = match r.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(b) => b,
        };
        let end = buf.iter().position(|&b| b == b'\n');
        let chunk = &buf[..end.unwrap_or(buf.len())];
        if over || line.len() + chunk.len() > MAX_CAPTURE {
            over = true;
            line.clear();
        } else {
            line.extend_from_slice(chunk);
        }
        let used = end.map_or(buf.len(), |i| i + 1);
        r.consume(used);
        if end.is_some() {
            let msg = if over {
                Line::TooLong
            } else {
                Line::Text(std::mem::take(&mut line))
            };
            over = false;
            if tx.send(msg).is_err() {
                return;
            }
        }
    }
    // A last line without its newline still counts.
    if over {
        let _ = tx.send(Line::TooLong);
    } else if !line.is_empty() {
        let _ = tx.send(Line::Text(line));
    }
}

/// Reads `err` to its end, keeping the last [`STDERR_TAIL`] bytes in `tail`.
fn keep_tail(mut err: impl Read, tail: &Mutex<Vec<u8>>) {
    let mut buf = [0u8; 8192];
    loop {
        match err.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let mut t = lock(tail);
                t.extend_from_slice(&buf[..n]);
                let extra = t.len().saturating_sub(STDERR_TAIL);
                t.drain(..extra);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

/// Locks `m`, taking the data of a poisoned lock as it is (a panicking grader thread must not
/// stop the others).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn sh(script: &'static str) -> Pool {
        Pool::new(move || {
            let mut c = Command::new("sh");
            c.args(["-c", script]);
            Ok((c, tempfile::tempdir()?))
        })
    }

    fn text(b: &[u8]) -> Result<String, String> {
        Ok(String::from_utf8_lossy(b).into_owned())
    }

    #[test]
    fn one_worker_answers_requests_in_order() {
        // Replies with its pid and the request, so the test sees both the order and the reuse.
        let pool = sh(r#"while read -r l; do echo "$$ $l"; done"#);
        let replies: Vec<String> = (0..20)
            .map(|i| {
                pool.ask(format!("r{i}").as_bytes(), Duration::from_secs(10), text)
                    .unwrap()
            })
            .collect();
        let pid = replies[0].split(' ').next().unwrap().to_owned();
        for (i, r) in replies.iter().enumerate() {
            assert_eq!(r, &format!("{pid} r{i}"));
        }
        assert_eq!(lock(&pool.idle).len(), 1);
    }

    #[test]
    fn a_rejected_reply_discards_the_worker() {
        let pool = sh(r#"while read -r l; do echo "$$"; done"#);
        let first = pool.ask(b"a", Duration::from_secs(10), text).unwrap();
        let e = pool
            .ask(b"b", Duration::from_secs(10), |_| Err::<(), _>("no".into()))
            .unwrap_err();
        assert!(matches!(e, AskError::Reply(ref m) if m == "no"), "{e}");
        assert!(lock(&pool.idle).is_empty());
        let next = pool.ask(b"c", Duration::from_secs(10), text).unwrap();
        assert_ne!(first, next, "a fresh worker after a bad reply");
    }

    #[test]
    fn an_overlong_line_is_an_error_not_a_memory_hog() {
        let pool = sh(r#"read -r l; head -c 2000000 /dev/zero | tr '\0' x; echo; cat"#);
        let e = pool.ask(b"a", Duration::from_secs(10), text).unwrap_err();
        assert!(matches!(e, AskError::TooLong), "{e}");
    }

    #[test]
    fn a_line_nobody_asked_for_makes_the_idle_worker_unfit() {
        // Two lines per request: the second would be taken as the next request's reply.
        let pool = sh(r#"while read -r l; do echo "$$ a"; echo "$$ b"; done"#);
        let first = pool.ask(b"1", Duration::from_secs(10), text).unwrap();
        assert!(first.ends_with(" a"), "{first}");
        let mut w = lock(&pool.idle).pop().unwrap();
        // The stray line arrives some time after the reply: poll until it is seen.
        let deadline = Instant::now() + Duration::from_secs(10);
        while w.ready() {
            assert!(
                Instant::now() < deadline,
                "the stray line was never noticed"
            );
            thread::sleep(Duration::from_millis(2));
        }
        drop(w);
        let second = pool.ask(b"2", Duration::from_secs(10), text).unwrap();
        assert!(second.ends_with(" a"), "{second}");
        assert_ne!(first, second, "a fresh worker");
    }

    #[test]
    fn close_lets_workers_exit_at_eof_and_reaps_them() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("eof");
        let m = marker.display().to_string();
        let folders = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&folders);
        let pool = Pool::new(move || {
            let mut c = Command::new("sh");
            c.args([
                "-c",
                r#"while read -r l; do echo "$$"; done; touch "$1""#,
                "sh",
                &m,
            ]);
            let own = tempfile::tempdir()?;
            lock(&seen).push(own.path().to_owned());
            Ok((c, own))
        });
        let pid = pool.ask(b"x", Duration::from_secs(10), text).unwrap();
        let own = lock(&folders).clone();
        assert!(own.len() == 1 && own[0].is_dir(), "{own:?}");
        pool.close();
        assert!(marker.exists(), "the worker did not see EOF and finish");
        assert!(!own[0].exists(), "the worker's folder outlived it");
        #[cfg(target_os = "linux")]
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "worker {pid} left behind"
        );
        let _ = pid;
    }

    #[cfg(target_os = "linux")]
    use std::path::Path;
}
