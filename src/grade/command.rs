//! The `command` grader: an external program decides (any language; see `graders/README.md`).
//!
//! Protocol: one JSON object on stdin, `{"output", "vars", "expected", "provider"}`, and one on
//! stdout, `{"pass": bool, "score": 0..1, "reason": "..."}` (`score` and `reason` optional). A
//! non-zero exit, a timeout, or stdout that is not such an object is a grader error (the outcome
//! is not judged), never a pass. The program is started directly with its arguments, never
//! through a shell.
//!
//! Two ways to talk to it: one process per output (the default), or with `persistent: true`
//! one process per worker asked over JSON Lines, one request line in and one reply line out,
//! in order, until EOF (see `worker.rs`). Starting an interpreter usually costs more than the
//! grading, so that mode is what makes a Python grader fast; its failures stay per outcome.
//!
//! Isolation, in both modes: each process (one per output, or one per worker) runs in a fresh
//! empty temporary folder of its own, its working directory and `TMPDIR`, removed after it
//! ends, and on Linux gets the `code` grader's isolation (`process::contain`): no network, not
//! even loopback, and every file system read-only but that folder. Where the kernel refuses,
//! costbench warns once and runs it without that guard. Reading stays possible with the
//! user's rights (the program's own files, its interpreter, and anything else the user can
//! read); the environment is passed on as it is.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tempfile::TempDir;

use super::process::{self, RunError, describe_status, last_line};
use super::text::clip;
use super::worker::{AskError, Pool};
use super::{Check, GradeConfigError, Vars};

/// Default wall-time limit per call, in seconds.
const DEFAULT_TIMEOUT_S: f64 = 10.0;

/// `type: command` — runs `program` (relative to the suite's folder) once per output.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// The program, relative to the suite file's folder (or absolute); must be executable.
    pub program: String,
    /// Arguments passed as they are (no shell, no templates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// The task variable sent as `expected` (null when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_var: Option<String>,
    /// Wall-time limit per call in seconds; default 10. In persistent mode, per request (a
    /// worker's first request includes its start-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    /// Start the program once per worker and send it one JSON request per line (JSON Lines),
    /// instead of once per output; default false. Not part of the config's fingerprint: it
    /// changes how costbench talks to the program, not what decides (see [`super::fingerprint`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub persistent: bool,
}

/// Compiled `command` grader.
#[derive(Debug, Clone)]
pub(crate) struct CommandGrader {
    program: PathBuf,
    args: Vec<String>,
    expected_var: Option<String>,
    timeout: Duration,
    /// The workers of `persistent: true`, shared by clones of this grader.
    workers: Option<Arc<Pool>>,
}

/// What the program must print.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    pass: bool,
    #[serde(default)]
    score: Option<f64>,
    #[serde(default)]
    reason: Option<String>,
}

impl CommandGrader {
    /// Resolves the program against `dir` (the suite's folder) and checks it can be run.
    pub(crate) fn compile(spec: &CommandSpec, dir: &Path) -> Result<Self, GradeConfigError> {
        let err = |field: &str, m: String| GradeConfigError::new("command", field, m);
        if spec.program.trim().is_empty() {
            return Err(err("program", "must not be empty".into()));
        }
        // Absolute, because a relative program with a `current_dir` is resolved differently
        // on different platforms.
        let program = std::fs::canonicalize(dir.join(&spec.program)).map_err(|e| {
            err(
                "program",
                format!("cannot use {}: {e}", dir.join(&spec.program).display()),
            )
        })?;
        let meta = std::fs::metadata(&program)
            .map_err(|e| err("program", format!("cannot use {}: {e}", program.display())))?;
        if !meta.is_file() {
            return Err(err(
                "program",
                format!("{} is not a file", program.display()),
            ));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o111 == 0 {
                return Err(err(
                    "program",
                    format!(
                        "{} is not executable (chmod +x it, or name its interpreter in `program` \
                         and the script in `args`)",
                        program.display()
                    ),
                ));
            }
        }
        let timeout = match spec.timeout_s {
            None => Duration::from_secs_f64(DEFAULT_TIMEOUT_S),
            Some(t) if t.is_finite() && t > 0.0 && t <= 3600.0 => Duration::from_secs_f64(t),
            Some(t) => {
                return Err(err(
                    "timeout_s",
                    format!("must be above 0 and at most 3600 seconds, got {t}"),
                ));
            }
        };
        if spec
            .expected_var
            .as_deref()
            .is_some_and(|v| v.trim().is_empty())
        {
            return Err(err("expected_var", "must not be empty".into()));
        }
        let workers = spec.persistent.then(|| {
            let (program, args) = (program.clone(), spec.args.clone());
            Arc::new(Pool::new(move || contained(&program, &args)))
        });
        Ok(Self {
            program,
            args: spec.args.clone(),
            expected_var: spec.expected_var.clone(),
            timeout,
            workers,
        })
    }

    /// The task must define `expected_var` when one is named.
    pub(crate) fn check_task(&self, vars: &Vars) -> Result<(), String> {
        match &self.expected_var {
            Some(v) if !vars.contains_key(v) => Err(format!("task does not define {v}")),
            _ => Ok(()),
        }
    }

    /// Runs the program on one output.
    pub(crate) fn check(&self, output: &str, vars: &Vars, provider: &str) -> Check {
        let expected = self
            .expected_var
            .as_ref()
            .and_then(|v| vars.get(v))
            .cloned()
            .unwrap_or(Value::Null);
        let input = json!({
            "output": output,
            "vars": vars,
            "expected": expected,
            "provider": provider,
        });
        if let Some(pool) = &self.workers {
            return match pool.ask(input.to_string().as_bytes(), self.timeout, |r| {
                self.verdict(r)
            }) {
                Ok(check) => check,
                Err(AskError::Reply(why)) => Check::Error(why),
                Err(e) => Check::Error(format!("command {} {e}", self.name())),
            };
        }
        // `_dir` lives until the program has ended: it is the program's working directory.
        let (cmd, _dir) = match contained(&self.program, &self.args) {
            Ok(c) => c,
            Err(e) => return Check::Error(format!("command {}: {e}", self.name())),
        };
        // Ended by a newline, as in persistent mode, so that a program reading lines (a shell
        // `read`, say) serves both modes; a JSON parser takes it as trailing whitespace.
        let mut stdin = input.to_string().into_bytes();
        stdin.push(b'\n');
        let done = match process::run(cmd, stdin, self.timeout) {
            Ok(done) => done,
            Err(RunError::Timeout(t)) => {
                return Check::Error(format!(
                    "command {} timed out after {}",
                    self.name(),
                    humantime::format_duration(t)
                ));
            }
            Err(e) => return Check::Error(format!("command {}: {e}", self.name())),
        };
        if !done.status.success() {
            let tail = last_line(&done.stderr);
            let tail = if tail.is_empty() {
                String::new()
            } else {
                format!(": {tail}")
            };
            return Check::Error(format!(
                "command {} failed with {}{tail}",
                self.name(),
                describe_status(&done.status)
            ));
        }
        self.verdict(&done.stdout).unwrap_or_else(Check::Error)
    }

    /// Reads what the program printed as a verdict; `Err` says why it is not one.
    fn verdict(&self, stdout: &[u8]) -> Result<Check, String> {
        let reply: Reply = serde_json::from_slice(stdout.trim_ascii()).map_err(|e| {
            format!(
                "command {} printed no valid verdict ({e}): {}",
                self.name(),
                clip(&String::from_utf8_lossy(stdout))
            )
        })?;
        if let Some(s) = reply.score
            && !(0.0..=1.0).contains(&s)
        {
            return Err(format!(
                "command {} printed score {s}, outside 0..1",
                self.name()
            ));
        }
        let reason = reply
            .reason
            .map(|r| clip(&r))
            .unwrap_or_else(|| if reply.pass { "passed" } else { "failed" }.to_owned());
        Ok(Check::Scored {
            passed: reply.pass,
            score: reply.score.unwrap_or(if reply.pass { 1.0 } else { 0.0 }),
            reason,
        })
    }

    /// Stops the persistent workers (see [`Pool::close`]); a later output starts new ones.
    pub(crate) fn stop_workers(&self) {
        if let Some(pool) = &self.workers {
            pool.close();
        }
    }

    /// The program's file name, for reasons.
    fn name(&self) -> String {
        self.program.file_name().map_or_else(
            || self.program.display().to_string(),
            |n| n.to_string_lossy().into(),
        )
    }
}

/// The command that starts `program` with `args` isolated in a fresh folder, and that folder
/// (its working directory and `TMPDIR`, the one place it may write), to keep until it ends.
fn contained(program: &Path, args: &[String]) -> std::io::Result<(Command, TempDir)> {
    let dir = tempfile::Builder::new()
        .prefix("costbench-command-")
        .tempdir()
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot create a temporary directory: {e}"),
            )
        })?;
    let mut cmd = Command::new(program);
    // A grader's own temporary files (Python's `tempfile`, `mktemp`) land in the one writable
    // place instead of failing on a read-only /tmp.
    cmd.args(args)
        .current_dir(dir.path())
        .env("TMPDIR", dir.path());
    process::contain(&mut cmd, dir.path());
    Ok((cmd, dir))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Writes an executable shell script into `dir`.
    fn script(dir: &Path, name: &str, body: &str) -> String {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        name.to_owned()
    }

    fn grader(dir: &Path, body: &str, extra: &str) -> CommandGrader {
        let name = script(dir, "g.sh", body);
        let spec: CommandSpec =
            serde_saphyr::from_str(&format!("{{program: {name}{extra}}}")).unwrap();
        CommandGrader::compile(&spec, dir).unwrap()
    }

    fn vars() -> Vars {
        match json!({"answer": "42", "q": "what?"}) {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn passes_input_on_stdin_and_reads_the_verdict() {
        let dir = tempfile::tempdir().unwrap();
        // Echo back what arrived so the test can see the protocol object.
        let g = grader(
            dir.path(),
            r#"in=$(cat); printf '{"pass": true, "score": 0.5, "reason": "%s"}' "$(printf %s "$in" | tr -d '"')""#,
            ", expected_var: answer",
        );
        match g.check("the output", &vars(), "prov-a") {
            Check::Scored {
                passed,
                score,
                reason,
            } => {
                assert!(passed);
                assert_eq!(score, 0.5);
                for part in [
                    "output:the output",
                    "expected:42",
                    "provider:prov-a",
                    "q:what?",
                ] {
                    assert!(reason.contains(part), "{part} in {reason}");
                }
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_fail_verdict_is_a_fail() {
        let dir = tempfile::tempdir().unwrap();
        let g = grader(dir.path(), r#"cat >/dev/null; echo '{"pass": false}'"#, "");
        assert_eq!(
            g.check("x", &vars(), "p"),
            Check::Scored {
                passed: false,
                score: 0.0,
                reason: "failed".into()
            }
        );
    }

    #[test]
    fn nonzero_exit_timeout_and_bad_json_are_grader_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                r#"echo '{"pass": true}'; echo boom >&2; exit 2"#,
                "",
                "failed with exit code 2: boom",
            ),
            ("sleep 20", ", timeout_s: 0.3", "timed out after 300ms"),
            ("echo 'PASS'", "", "printed no valid verdict"),
            (r#"echo '{"pass": "yes"}'"#, "", "printed no valid verdict"),
            (r#"echo '{"pass": true, "score": 2}'"#, "", "outside 0..1"),
            (
                r#"echo '{"pass": true, "extra": 1}'"#,
                "",
                "printed no valid verdict",
            ),
        ];
        for (body, extra, want) in cases {
            let g = grader(dir.path(), body, extra);
            match g.check("x", &vars(), "p") {
                Check::Error(e) => assert!(e.contains(want), "{body}: {e}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn config_errors_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let compile = |y: &str| {
            let spec: CommandSpec = serde_saphyr::from_str(y).unwrap();
            CommandGrader::compile(&spec, dir.path())
                .unwrap_err()
                .to_string()
        };
        assert!(compile("{program: missing.sh}").contains("cannot use"));
        std::fs::write(dir.path().join("plain.txt"), "x").unwrap();
        assert!(compile("{program: plain.txt}").contains("is not executable"));
        script(dir.path(), "ok.sh", "true");
        assert!(compile("{program: ok.sh, timeout_s: 0}").contains("timeout_s"));
        assert!(compile("{program: ''}").contains("must not be empty"));
    }

    #[test]
    fn expected_var_must_exist_in_the_task() {
        let dir = tempfile::tempdir().unwrap();
        let g = grader(dir.path(), "true", ", expected_var: label");
        assert_eq!(
            g.check_task(&vars()).unwrap_err(),
            "task does not define label"
        );
    }

    #[test]
    // The output is data on stdin: shell syntax in it must never run.
    fn outputs_never_reach_a_shell() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("pwned");
        let g = grader(dir.path(), r#"cat >/dev/null; echo '{"pass": false}'"#, "");
        let evil = format!("$(touch {0}) `touch {0}`; touch {0}", marker.display());
        let _ = g.check(&evil, &vars(), "p; touch /tmp/x");
        assert!(!marker.exists());
    }
}
