//! Running a grader subprocess (the `command` and `code` kinds): feed stdin, collect capped
//! stdout/stderr, and kill the whole process group when the wall-time limit passes.
//!
//! Programs are always started with [`Command`] and an argument list, never through a shell,
//! so no part of a model output or a task variable is ever parsed as shell syntax.

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Bytes of stdout and of stderr kept per run; the rest is read and dropped, so a chatty
/// program neither blocks on a full pipe nor fills memory.
pub(crate) const MAX_CAPTURE: usize = 1 << 20;

/// How long, after the child exits or is killed, its pipes may stay open (a grandchild that
/// escaped the process group still holding them) before we stop waiting for them.
pub(crate) const PIPE_GRACE: Duration = Duration::from_secs(1);

/// What a finished subprocess left behind.
#[derive(Debug)]
pub(crate) struct Finished {
    /// Exit status.
    pub status: ExitStatus,
    /// Captured stdout (at most [`MAX_CAPTURE`] bytes).
    pub stdout: Vec<u8>,
    /// Captured stderr (at most [`MAX_CAPTURE`] bytes).
    pub stderr: Vec<u8>,
}

/// Why a subprocess gave no result.
#[derive(Debug)]
pub(crate) enum RunError {
    /// It could not be started (not found, not executable).
    Spawn(std::io::Error),
    /// It ran past the limit and was killed.
    Timeout(Duration),
    /// Waiting for it failed.
    Wait(std::io::Error),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Spawn(e) => write!(f, "cannot start: {e}"),
            RunError::Timeout(t) => write!(f, "timed out after {}", humantime::format_duration(*t)),
            RunError::Wait(e) => write!(f, "cannot wait for it: {e}"),
        }
    }
}

/// Reads a pipe to its end, keeping the first [`MAX_CAPTURE`] bytes.
fn drain(mut r: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = MAX_CAPTURE.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        let _ = tx.send(kept);
    });
    rx
}

/// Runs `cmd` with `input` on stdin, killing it (and its process group on unix) after
/// `limit`. stdin, stdout and stderr are replaced by pipes.
pub(crate) fn run(mut cmd: Command, input: Vec<u8>, limit: Duration) -> Result<Finished, RunError> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own process group, so a timeout also kills what it started (a shell's `sleep`).
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().map_err(RunError::Spawn)?;
    let started = Instant::now();
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    if let Some(mut stdin) = child.stdin.take() {
        // A writer thread: a program that never reads its stdin must not block us.
        thread::spawn(move || {
            // The binary restores SIGPIPE's default action (see main.rs), so writing to a
            // program that exited without reading would kill costbench: block it here, on
            // the writing thread, and the write fails with EPIPE instead.
            #[cfg(unix)]
            block_sigpipe();
            let _ = stdin.write_all(&input);
        });
    }
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= limit => {
                kill(&mut child);
                let _ = child.wait();
                return Err(RunError::Timeout(limit));
            }
            Ok(None) => {
                thread::sleep(pause.min(limit.saturating_sub(started.elapsed())));
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => {
                kill(&mut child);
                let _ = child.wait();
                return Err(RunError::Wait(e));
            }
        }
    };
    Ok(Finished {
        status,
        stdout: stdout.recv_timeout(PIPE_GRACE).unwrap_or_default(),
        stderr: stderr.recv_timeout(PIPE_GRACE).unwrap_or_default(),
    })
}

/// Blocks SIGPIPE for the calling thread only.
#[cfg(unix)]
pub(crate) fn block_sigpipe() {
    // SAFETY: plain libc calls on a zeroed, locally owned sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Kills the child's process group (unix) or the child.
pub(crate) fn kill(child: &mut std::process::Child) {
    #[cfg(unix)]
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals the group we created for this child.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
}

/// The last non-empty line of a program's stderr, clipped, for a reason ("AssertionError").
pub(crate) fn last_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    super::text::clip(line.trim())
}

/// How a program ended, for a reason: "exit code 3" or "killed by signal 9".
pub(crate) fn describe_status(status: &ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    #[cfg(unix)]
    if let Some(sig) = std::os::unix::process::ExitStatusExt::signal(status) {
        return format!("killed by signal {sig}");
    }
    "ended abnormally".to_owned()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_status() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "cat; echo err >&2; exit 3"]);
        let f = run(cmd, b"hello".to_vec(), Duration::from_secs(10)).unwrap();
        assert_eq!(f.stdout, b"hello");
        assert_eq!(last_line(&f.stderr), "err");
        assert_eq!(describe_status(&f.status), "exit code 3");
    }

    #[test]
    // A shell that started a long `sleep` must not keep us waiting on its pipes after the kill.
    fn timeout_kills_the_process_group() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 30; echo late"]);
        let t = Instant::now();
        let e = run(cmd, Vec::new(), Duration::from_millis(200)).unwrap_err();
        assert!(matches!(e, RunError::Timeout(_)), "{e}");
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let e = run(
            Command::new("/nonexistent/costbench-grader"),
            Vec::new(),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(e, RunError::Spawn(_)), "{e}");
    }

    #[test]
    fn a_program_that_ignores_stdin_does_not_block() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo ok"]);
        let f = run(cmd, vec![b'x'; 4 << 20], Duration::from_secs(10)).unwrap();
        assert_eq!(f.stdout, b"ok\n");
    }
}
