//! Running a grader subprocess (the `command` and `code` kinds): feed stdin, collect capped
//! stdout/stderr, and kill the whole process group when the wall-time limit passes; and
//! isolating it ([`contain`]): on Linux a network namespace with no interface up and a mount
//! namespace where every file system is read-only but the program's own temporary folder,
//! each probed once, with one warning and no such guard where the kernel refuses.
//!
//! Programs are always started with [`Command`] and an argument list, never through a shell,
//! so no part of a model output or a task variable is ever parsed as shell syntax.

use std::io::{Read, Write};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
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

/// Starts `cmd` with stdin, stdout and stderr piped, in a process group of its own on unix (so
/// a kill also stops what it started, a shell's `sleep`): the child and its three pipes.
pub(crate) fn spawn_piped(
    cmd: &mut Command,
) -> std::io::Result<(Child, ChildStdin, ChildStdout, ChildStderr)> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(cmd, 0);
    let mut child = cmd.spawn()?;
    match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
        (Some(i), Some(o), Some(e)) => Ok((child, i, o, e)),
        _ => {
            kill(&mut child);
            let _ = child.wait();
            Err(std::io::Error::other("its standard streams were not piped"))
        }
    }
}

/// Runs `cmd` with `input` on stdin, killing it (and its process group on unix) after
/// `limit`. stdin, stdout and stderr are replaced by pipes.
pub(crate) fn run(mut cmd: Command, input: Vec<u8>, limit: Duration) -> Result<Finished, RunError> {
    let (mut child, mut stdin, stdout, stderr) = spawn_piped(&mut cmd).map_err(RunError::Spawn)?;
    let started = Instant::now();
    let stdout = drain(stdout);
    let stderr = drain(stderr);
    // A writer thread: a program that never reads its stdin must not block us.
    thread::spawn(move || {
        // The binary restores SIGPIPE's default action (see main.rs), so writing to a program
        // that exited without reading would kill costbench: block it here, on the writing
        // thread, and the write fails with EPIPE instead.
        #[cfg(unix)]
        block_sigpipe();
        let _ = stdin.write_all(&input);
    });
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
pub(crate) fn kill(child: &mut Child) {
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

/// Isolates a grader program as far as this system allows (see [`network_isolation`] and
/// [`file_isolation`]; where refused, one warning and the program runs without that guard):
/// no network, and no writes outside `dir`, which should be a fresh folder of its own and is
/// its working directory. Call before the program is started; a no-op off Linux.
pub(crate) fn contain(cmd: &mut Command, dir: &std::path::Path) {
    #[cfg(target_os = "linux")]
    match (network_isolation(), file_isolation()) {
        (Ok(()), Ok(())) => isolate(cmd, Some(dir)),
        (Ok(()), Err(why)) => {
            warn_once(
                "keep grader programs from writing outside their folder",
                why,
            );
            isolate(cmd, None);
        }
        (Err(why), _) => warn_once("cut grader programs off the network", why),
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (cmd, dir);
}

/// Whether grader programs (the `code` grader's graded program, the `command` grader's
/// program) can get a network namespace of their own here: `Err` says why not (probed once, by
/// starting `true` the way such a program is started).
#[cfg(target_os = "linux")]
pub fn network_isolation() -> Result<(), &'static str> {
    static PROBE: std::sync::OnceLock<Result<(), &'static str>> = std::sync::OnceLock::new();
    *PROBE.get_or_init(|| probe(None))
}

/// Whether grader programs can also get a read-only view of every file system but their own
/// folder here (a mount namespace): `Err` says why not (probed once, like the network).
#[cfg(target_os = "linux")]
pub fn file_isolation() -> Result<(), &'static str> {
    static PROBE: std::sync::OnceLock<Result<(), &'static str>> = std::sync::OnceLock::new();
    *PROBE.get_or_init(|| match tempfile::tempdir() {
        Ok(dir) => probe(Some(dir.path())),
        Err(_) => Err("no temporary directory to probe with"),
    })
}

/// Starts `true` isolated as a grader program would be.
#[cfg(target_os = "linux")]
fn probe(dir: Option<&std::path::Path>) -> Result<(), &'static str> {
    let mut cmd = Command::new("true");
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    isolate(&mut cmd, dir);
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(_) => Err("the probe program failed"),
        Err(_) if dir.is_some() => Err("this system does not allow a read-only mount namespace"),
        Err(_) => {
            Err("this system allows neither a network namespace nor a user namespace to this user")
        }
    }
}

/// Every mount point, with the flags its remount must keep (a user namespace may not drop
/// `nosuid`, `nodev`, `noexec` or the atime mode), read once from /proc/self/mountinfo.
#[cfg(target_os = "linux")]
fn mounts() -> Option<&'static [(std::ffi::CString, libc::c_ulong)]> {
    static MOUNTS: std::sync::OnceLock<Option<Vec<(std::ffi::CString, libc::c_ulong)>>> =
        std::sync::OnceLock::new();
    MOUNTS
        .get_or_init(|| {
            let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
            let list: Vec<_> = text
                .lines()
                .filter_map(|line| {
                    let mut f = line.split(' ');
                    let point = unescape_octal(f.nth(4)?);
                    let flags = f.next()?.split(',').fold(0, |acc, o| {
                        acc | match o {
                            "nosuid" => libc::MS_NOSUID,
                            "nodev" => libc::MS_NODEV,
                            "noexec" => libc::MS_NOEXEC,
                            "noatime" => libc::MS_NOATIME,
                            "nodiratime" => libc::MS_NODIRATIME,
                            "relatime" => libc::MS_RELATIME,
                            "strictatime" => libc::MS_STRICTATIME,
                            _ => 0,
                        }
                    });
                    Some((std::ffi::CString::new(point).ok()?, flags))
                })
                .collect();
            (!list.is_empty()).then_some(list)
        })
        .as_deref()
}

/// A mountinfo path with its `\ooo` escapes (space, tab, newline, backslash) decoded.
#[cfg(target_os = "linux")]
fn unescape_octal(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let code = b.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match code {
            Some(c) if b[i] == b'\\' => {
                out.push(c);
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

/// Moves the child, between fork and exec, into a network namespace with no interface up and,
/// with `writable`, a mount namespace where every file system is read-only but that folder,
/// which becomes its working directory.
#[cfg(target_os = "linux")]
fn isolate(cmd: &mut Command, writable: Option<&std::path::Path>) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    // Prepared here: the child may not allocate between fork and exec.
    let files = writable.map(|dir| {
        (
            std::ffi::CString::new(dir.as_os_str().as_bytes()).ok(),
            mounts(),
        )
    });
    let ns = libc::CLONE_NEWNET
        | if files.is_some() {
            libc::CLONE_NEWNS
        } else {
            0
        };
    // SAFETY: the closure only makes system calls (unshare, mount), which allocate nothing.
    unsafe {
        cmd.pre_exec(move || {
            let fail = || Err(std::io::Error::last_os_error());
            // Without CAP_SYS_ADMIN: a user namespace of its own grants it there.
            if libc::unshare(ns) != 0 && libc::unshare(libc::CLONE_NEWUSER | ns) != 0 {
                return fail();
            }
            let Some(files) = &files else {
                return Ok(());
            };
            let (Some(dir), Some(mounts)) = files else {
                return Err(std::io::Error::from(std::io::ErrorKind::Unsupported));
            };
            let none = std::ptr::null();
            // Private first, so that nothing done here reaches the host's mounts.
            let root = c"/".as_ptr();
            if libc::mount(
                none,
                root,
                none,
                libc::MS_REC | libc::MS_PRIVATE,
                none.cast(),
            ) != 0
            {
                return fail();
            }
            // The program's own folder stays writable as a mount of its own...
            let d = dir.as_ptr();
            if libc::mount(d, d, none, libc::MS_BIND | libc::MS_REC, none.cast()) != 0 {
                return fail();
            }
            // ...and every other mount becomes read-only.
            for (point, keep) in mounts.iter() {
                let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | keep;
                if libc::mount(none, point.as_ptr(), none, flags, none.cast()) != 0 {
                    return fail();
                }
            }
            // A working directory set before the bind (as `current_dir` does) still points
            // into the read-only mount beneath it: enter the folder again, through the bind.
            if libc::chdir(d) != 0 {
                return fail();
            }
            Ok(())
        });
    }
}

/// Warns once per process, whichever grader meets the refusal first.
#[cfg(target_os = "linux")]
fn warn_once(what: &str, why: &str) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        eprintln!(
            "warning: costbench cannot {what} here ({why}); the code and command graders run \
             their programs without that guard"
        );
    });
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

    #[test]
    #[cfg(target_os = "linux")]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_octal(r"/mnt/a\040b\134c"), b"/mnt/a b\\c".to_vec());
        assert_eq!(unescape_octal(r"/x\04"), b"/x\\04".to_vec());
        assert!(mounts().is_some_and(|m| m.iter().any(|(p, _)| p.as_bytes() == b"/")));
    }
}
