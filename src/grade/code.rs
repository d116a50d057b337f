//! The `code` grader: runs the output as a Python program against the task's unit tests
//! (HumanEval style: the task's `test` code defines `check(candidate)`, and `entry_point` names
//! the function under test).
//!
//! Containment, and what it does not cover: the program (solution, then the tests, then
//! `check(<entry_point>)`) is written to a file in a fresh temporary directory that is also its
//! working directory, and run as `python3 -I <file>` (isolated mode: no `PYTHON*` variables, no
//! user site-packages) with an environment holding only `PATH`, `HOME` (the temp dir) and
//! `LANG`, never through a shell. On unix it runs in its own process group with `RLIMIT_AS`
//! (memory), `RLIMIT_CPU`, `RLIMIT_FSIZE` and no core dumps, and the group is killed at the
//! wall-time limit. On Linux it also gets a network namespace of its own (`unshare`
//! `CLONE_NEWNET`, as root, else inside an unprivileged user namespace), so it has no network
//! at all, not even loopback; where neither is allowed (probed once, see
//! [`super::network_isolation`]) costbench warns once and runs it with the network. In the
//! same step it gets a mount namespace in which every mount is remounted read-only except a
//! bind mount of its temp dir ([`super::file_isolation`]; where refused, a warning, and files
//! are not guarded); `process.rs` holds that isolation, which the `command` grader's
//! programs get too. Reading stays possible with the user's rights: run untrusted suites in
//! a container if that matters.
//!
//! Verdicts: exit 0 passes; a failing test, an exception, a syntax error, running out of memory
//! or time is the candidate's fault and fails (rejected, with the last stderr line or "timed
//! out" as the reason). Only a grader that could not run at all (no `python3`, no temp dir) is
//! a grader error.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::process::{self, RunError, describe_status, last_line};
use super::text::fenced_body;
use super::{Check, GradeConfigError, Vars};

/// Default wall-time limit per program, in seconds.
const DEFAULT_TIMEOUT_S: f64 = 10.0;
/// Default address-space limit, in MiB.
const DEFAULT_MEMORY_MB: u64 = 512;
/// Largest file the program may write (RLIMIT_FSIZE).
const MAX_FILE_BYTES: u64 = 16 << 20;

/// `type: code` — the output is a Python solution checked by the task's tests.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CodeSpec {
    /// Language of the solution; only `python` for now.
    #[serde(default = "python")]
    pub language: String,
    /// Task variable holding the test code that defines `check(candidate)`; default `test`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_var: Option<String>,
    /// Task variable naming the function under test; default `entry_point`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_point_var: Option<String>,
    /// Wall-time limit per program in seconds; default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    /// Address-space limit in MiB; default 512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// The interpreter to run; default `python3` (looked up on `PATH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
}

fn python() -> String {
    "python".to_owned()
}

/// Compiled `code` grader.
#[derive(Debug, Clone)]
pub(crate) struct CodeGrader {
    test_var: String,
    entry_point_var: String,
    timeout: Duration,
    memory_bytes: u64,
    interpreter: PathBuf,
}

impl CodeGrader {
    /// Validates the limits and the language.
    pub(crate) fn compile(spec: &CodeSpec) -> Result<Self, GradeConfigError> {
        let err = |field: &str, m: String| GradeConfigError::new("code", field, m);
        if spec.language != "python" {
            return Err(err(
                "language",
                format!("`{}` is not supported; only `python` is", spec.language),
            ));
        }
        let timeout = match spec.timeout_s {
            None => Duration::from_secs_f64(DEFAULT_TIMEOUT_S),
            Some(t) if t.is_finite() && t > 0.0 && t <= 600.0 => Duration::from_secs_f64(t),
            Some(t) => {
                return Err(err(
                    "timeout_s",
                    format!("must be above 0 and at most 600 seconds, got {t}"),
                ));
            }
        };
        let memory_mb = spec.memory_mb.unwrap_or(DEFAULT_MEMORY_MB);
        if !(32..=65536).contains(&memory_mb) {
            return Err(err(
                "memory_mb",
                format!("must be between 32 and 65536, got {memory_mb}"),
            ));
        }
        let var = |v: &Option<String>, field: &str, default: &str| match v.as_deref() {
            None => Ok(default.to_owned()),
            Some(s) if s.trim().is_empty() => Err(err(field, "must not be empty".into())),
            Some(s) => Ok(s.to_owned()),
        };
        let interpreter = spec.interpreter.as_deref().unwrap_or("python3");
        if interpreter.trim().is_empty() {
            return Err(err("interpreter", "must not be empty".into()));
        }
        Ok(Self {
            test_var: var(&spec.test_var, "test_var", "test")?,
            entry_point_var: var(&spec.entry_point_var, "entry_point_var", "entry_point")?,
            timeout,
            memory_bytes: memory_mb << 20,
            interpreter: PathBuf::from(interpreter),
        })
    }

    /// The task's test code and entry point; the entry point must be a Python identifier so
    /// the `check(...)` line we append cannot be anything else.
    pub(crate) fn parts<'v>(&self, vars: &'v Vars) -> Result<(&'v str, &'v str), String> {
        let get = |name: &str| match vars.get(name) {
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(_) => Err(format!("task variable {name} must be a string")),
            None => Err(format!("task does not define {name}")),
        };
        let test = get(&self.test_var)?;
        let entry = get(&self.entry_point_var)?;
        let mut chars = entry.chars();
        let ident = chars
            .next()
            .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
            && chars.all(|c| c == '_' || c.is_ascii_alphanumeric());
        if !ident {
            return Err(format!(
                "task variable {} = {entry:?} is not a Python identifier",
                self.entry_point_var
            ));
        }
        Ok((test, entry))
    }

    /// Runs the solution against the tests.
    pub(crate) fn check(&self, output: &str, vars: &Vars) -> Check {
        let (test, entry) = match self.parts(vars) {
            Ok(p) => p,
            Err(e) => return Check::Error(e),
        };
        let program = format!(
            "{}\n\n\n{test}\n\n\ncheck({entry})\n",
            solution_code(output)
        );
        let dir = match tempfile::Builder::new().prefix("costbench-code-").tempdir() {
            Ok(d) => d,
            Err(e) => return Check::Error(format!("cannot create a temporary directory: {e}")),
        };
        let file = dir.path().join("solution.py");
        if let Err(e) =
            std::fs::File::create(&file).and_then(|mut f| f.write_all(program.as_bytes()))
        {
            return Check::Error(format!("cannot write {}: {e}", file.display()));
        }
        let mut cmd = Command::new(&self.interpreter);
        cmd.arg("-I")
            .arg("solution.py")
            .current_dir(dir.path())
            .env_clear()
            .env("HOME", dir.path())
            .env("LANG", "C.UTF-8")
            .env("PYTHONDONTWRITEBYTECODE", "1");
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        #[cfg(unix)]
        self.limit(&mut cmd);
        process::contain(&mut cmd, dir.path());
        let verdict = match process::run(cmd, Vec::new(), self.timeout) {
            Ok(done) if done.status.success() => Check::Pass(format!("check({entry}) passed")),
            Ok(done) => {
                let last = last_line(&done.stderr);
                let why = if last.is_empty() {
                    describe_status(&done.status)
                } else {
                    last
                };
                Check::Fail(format!("check({entry}) failed: {why}"))
            }
            Err(RunError::Timeout(t)) => Check::Fail(format!(
                "check({entry}) timed out after {}",
                humantime::format_duration(t)
            )),
            Err(e) => Check::Error(format!("{}: {e}", self.interpreter.display())),
        };
        drop(dir);
        verdict
    }

    /// Sets the child's resource limits between fork and exec.
    #[cfg(unix)]
    fn limit(&self, cmd: &mut Command) {
        use std::os::unix::process::CommandExt;
        let memory = self.memory_bytes as libc::rlim_t;
        // CPU seconds: a backstop for the wall-time kill, one second above it.
        let cpu = self.timeout.as_secs() as libc::rlim_t + 1;
        // SAFETY: the closure only calls setrlimit, which is async-signal-safe, and allocates
        // nothing.
        unsafe {
            cmd.pre_exec(move || {
                let set = |res, n: libc::rlim_t| {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(res, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                };
                set(libc::RLIMIT_AS, memory)?;
                set(libc::RLIMIT_CPU, cpu)?;
                set(libc::RLIMIT_FSIZE, MAX_FILE_BYTES as libc::rlim_t)?;
                set(libc::RLIMIT_CORE, 0)?;
                Ok(())
            });
        }
    }
}

/// The code in an output: the body of its first Markdown fence (```` ```python ````) when it
/// has one, else the whole output.
fn solution_code(output: &str) -> &str {
    let t = output.trim();
    // Prose before the fence ("Here is the function:\n```python ...") is skipped.
    let fenced = fenced_body(t).or_else(|| fenced_body(&t[t.find("\n```")? + 1..]));
    match fenced {
        Some((body, _)) => body.trim_start_matches(['\r', '\n']),
        None => t,
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    #[cfg(target_os = "linux")]
    use crate::grade::{file_isolation, network_isolation};
    use serde_json::json;

    const TEST: &str = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n";

    fn grader(extra: &str) -> CodeGrader {
        let yaml = format!("{{{}}}", extra.trim_start_matches(", "));
        let spec: CodeSpec = serde_saphyr::from_str(&yaml).unwrap();
        CodeGrader::compile(&spec).unwrap()
    }

    fn vars(test: &str, entry: &str) -> Vars {
        match json!({"test": test, "entry_point": entry}) {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn has_python() -> bool {
        Command::new("python3")
            .arg("-c")
            .arg("pass")
            .status()
            .is_ok_and(|s| s.success())
    }

    #[test]
    fn correct_solution_passes_wrong_one_fails() {
        if !has_python() {
            eprintln!("python3 not found: skipped");
            return;
        }
        let g = grader("");
        let v = vars(TEST, "add");
        let good = "```python\ndef add(a, b):\n    return a + b\n```";
        assert_eq!(g.check(good, &v), Check::Pass("check(add) passed".into()));
        let prose = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\nDone.";
        assert!(matches!(g.check(prose, &v), Check::Pass(_)));
        match g.check("def add(a, b):\n    return a - b\n", &v) {
            Check::Fail(r) => assert!(r.contains("AssertionError"), "{r}"),
            other => panic!("{other:?}"),
        }
        match g.check("def add(a, b) return a + b", &v) {
            Check::Fail(r) => assert!(r.contains("SyntaxError"), "{r}"),
            other => panic!("{other:?}"),
        }
        match g.check("def plus(a, b):\n    return a + b\n", &v) {
            Check::Fail(r) => assert!(r.contains("NameError"), "{r}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    // An infinite loop is the candidate's fault: rejected with a reason, not a grader error.
    fn infinite_loop_fails_by_timeout() {
        if !has_python() {
            return;
        }
        let g = grader(", timeout_s: 0.5");
        let v = vars(TEST, "add");
        match g.check("def add(a, b):\n    while True:\n        pass\n", &v) {
            Check::Fail(r) => assert!(r.contains("timed out after 500ms"), "{r}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn memory_limit_stops_a_huge_allocation() {
        if !has_python() {
            return;
        }
        let g = grader(", memory_mb: 128");
        let v = vars(TEST, "add");
        let hog = "x = bytearray(1024 * 1024 * 1024)\ndef add(a, b):\n    return a + b\n";
        match g.check(hog, &v) {
            Check::Fail(r) => assert!(r.contains("MemoryError"), "{r}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn runs_in_a_fresh_dir_with_an_empty_environment() {
        if !has_python() {
            return;
        }
        let g = grader("");
        // cargo sets CARGO_PKG_NAME for this test process: it must not reach the program. (An
        // interpreter wrapper such as a pyenv shim may add its own variables, so the test does
        // not demand an exact list.)
        let test = "import os\ndef check(candidate):\n    assert os.listdir('.') == ['solution.py'], os.listdir('.')\n    assert 'costbench-code-' in os.getcwd()\n    assert os.environ['HOME'] == os.getcwd()\n    assert 'CARGO_PKG_NAME' not in os.environ\n";
        assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
        let v = vars(test, "f");
        assert_eq!(
            g.check("def f():\n    pass\n", &v),
            Check::Pass("check(f) passed".into())
        );
    }

    #[test]
    #[cfg(target_os = "linux")]
    // A graded program that tries the network: cut off where a network namespace is allowed
    // (root, as in CI, or unprivileged user namespaces); elsewhere, as documented, it reaches
    // a loopback listener, and the test says which case it checked.
    fn a_program_reaching_for_the_network_is_cut_off_where_namespaces_allow() {
        if !has_python() {
            return;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let solution = format!(
            "import socket\ndef f():\n    try:\n        socket.create_connection(('127.0.0.1', \
             {port}), timeout=3).close()\n        return True\n    except OSError:\n        \
             return False\n"
        );
        let test = "def check(candidate):\n    assert not candidate(), 'reached the network'\n";
        let verdict = grader("").check(&solution, &vars(test, "f"));
        listener.set_nonblocking(true).unwrap();
        let accepted = listener.accept().is_ok();
        match network_isolation() {
            Ok(()) => {
                assert_eq!(verdict, Check::Pass("check(f) passed".into()));
                assert!(!accepted, "the listener was reached");
            }
            Err(why) => {
                eprintln!("no network namespace here ({why}): checked the documented fallback");
                assert!(
                    matches!(&verdict, Check::Fail(r) if r.contains("reached the network")),
                    "{verdict:?}"
                );
                assert!(accepted);
            }
        }
    }

    #[test]
    fn a_program_writes_its_own_folder_and_nothing_outside_it() {
        if !has_python() {
            return;
        }
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("escaped.txt");
        let solution = format!(
            "def f():\n    open('mine.txt', 'w').write('x')\n    assert open('mine.txt').read() == 'x'\n    \
             open({:?}, 'w').write('x')\n    return True\n",
            target.display().to_string()
        );
        let test = "def check(candidate):\n    assert candidate()\n";
        let verdict = grader("").check(&solution, &vars(test, "f"));
        match file_isolation() {
            Ok(()) => {
                // Refused at the write outside, not earlier at its own `mine.txt`.
                assert!(
                    matches!(&verdict, Check::Fail(r)
                        if r.contains("Read-only file system") && r.contains("escaped.txt")),
                    "{verdict:?}"
                );
                assert!(
                    !target.exists(),
                    "the write outside the folder went through"
                );
            }
            Err(why) => {
                // The documented fallback: the network is still cut, files are not guarded.
                eprintln!("no read-only mount namespace here ({why}): checked the fallback");
                assert_eq!(verdict, Check::Pass("check(f) passed".into()));
                assert!(target.exists());
            }
        }
    }

    #[test]
    // Shell syntax in an output is Python source to the grader, never a command.
    fn output_never_reaches_a_shell() {
        if !has_python() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("pwned");
        let g = grader("");
        let evil = format!("$(touch {0})\n`touch {0}`", marker.display());
        assert!(matches!(g.check(&evil, &vars(TEST, "add")), Check::Fail(_)));
        assert!(!marker.exists());
    }

    #[test]
    fn bad_tasks_and_configs_are_reported() {
        let g = grader("");
        assert_eq!(
            g.parts(&vars(TEST, "add(1); import os")).unwrap_err(),
            "task variable entry_point = \"add(1); import os\" is not a Python identifier"
        );
        assert_eq!(
            g.parts(&Vars::new()).unwrap_err(),
            "task does not define test"
        );
        assert!(matches!(g.check("x", &Vars::new()), Check::Error(_)));
        let compile = |y: &str| {
            CodeGrader::compile(&serde_saphyr::from_str(y).unwrap())
                .unwrap_err()
                .to_string()
        };
        assert!(compile("{language: ruby}").contains("only `python`"));
        assert!(compile("{timeout_s: -1}").contains("timeout_s"));
        assert!(compile("{memory_mb: 1}").contains("memory_mb"));
    }

    #[test]
    fn missing_interpreter_is_a_grader_error() {
        let g = grader(", interpreter: /nonexistent/python3");
        match g.check("def add(a, b): return a + b", &vars(TEST, "add")) {
            Check::Error(e) => assert!(e.contains("cannot start"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fences_are_stripped() {
        assert_eq!(solution_code("```python\nx = 1\n```"), "x = 1\n");
        assert_eq!(solution_code("```\nx = 1\n```"), "x = 1\n");
        assert_eq!(solution_code("Sure:\n```py\nx = 1\n```\nbye"), "x = 1\n");
        assert_eq!(solution_code("  x = 1  "), "x = 1");
    }
}
