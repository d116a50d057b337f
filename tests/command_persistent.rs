//! The `command` grader with `persistent: true` (JSON Lines, one process per worker): real
//! subprocesses (small `sh` scripts written into a temp dir, and `graders/exact_answer.py`).
//! A worker is reused across outputs; a crash, a malformed reply or a hang is a grader error
//! on that outcome only and the next outcome gets a fresh worker; workers exit at EOF when
//! grading ends and are reaped.

#![cfg(unix)]

mod common;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use common::{
    Provider, Reply, ScriptServer, Workspace, chat_response, command_grader, example_grader,
    grade_outputs, grade_with_vars, has_python, providers_yaml, write_script,
};
use costbench::grade::{GradeOutcome, Vars};

/// The pids named in reasons of the form `pid N`.
fn pids(out: &[GradeOutcome]) -> BTreeSet<String> {
    out.iter()
        .filter_map(|o| o.verdicts[0].reason.strip_prefix("pid "))
        .map(str::to_owned)
        .collect()
}

/// Replies to each request line with its pid, unless the output asks for a failure; on EOF
/// it writes its pid to the FIFO `eof` beside the script when a test made one, so the test
/// sees that it finished by itself (a FIFO, because a grader can write nowhere else that
/// outlives it: its own folder is removed after it, and every other file system is read-only).
const SERVER: &str = r#"while read -r line; do
  case "$line" in
    *'"output":"crash'*) echo "dying on purpose" >&2; exit 3 ;;
    *'"output":"garble'*) echo "PASS, probably" ;;
    *'"output":"shape'*) echo '{"pass": "yes"}' ;;
    *'"output":"hang'*) sleep 30 ;;
    *'"output":"chatty'*) head -c 300000 /dev/zero | tr '\0' 'e' >&2; echo "{\"pass\": true, \"reason\": \"pid $$\"}" ;;
    *) echo "{\"pass\": true, \"reason\": \"pid $$\"}" ;;
  esac
done
eof="${0%/*}/eof"
if [ -p "$eof" ]; then echo "$$" >"$eof"; fi"#;

/// Makes the FIFO `eof` in `dir` and opens it for reading without blocking (a reader must be
/// there before the workers open it to write).
fn eof_pipe(dir: &Path) -> File {
    let path = dir.join("eof");
    let made = std::process::Command::new("mkfifo").arg(&path).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", path.display());
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .unwrap()
}

/// The pids the workers have written to the `eof` FIFO so far.
fn finished(pipe: &mut File) -> BTreeSet<String> {
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("reading the eof pipe: {e}"),
        }
    }
    String::from_utf8_lossy(&text)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn outputs(n: usize, odd: &[(usize, &str)]) -> Vec<String> {
    (0..n)
        .map(|i| {
            odd.iter()
                .find(|(k, _)| *k == i)
                .map_or_else(|| format!("ok {i}"), |(_, o)| format!("{o} {i}"))
        })
        .collect()
}

#[test]
fn a_persistent_grader_reuses_one_process_per_worker() {
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "serve.sh", "#!/bin/sh", SERVER);
    let g = command_grader(dir.path(), "serve.sh", ", persistent: true");
    let out = grade_outputs(&g, &outputs(300, &[]));
    assert!(out.iter().all(|o| o.accepted), "{:?}", out[0]);
    let seen = pids(&out);
    assert!(
        !seen.is_empty() && seen.len() <= rayon::current_num_threads(),
        "{} processes for 300 outputs on {} threads",
        seen.len(),
        rayon::current_num_threads()
    );
    // The same script in the default mode: one process per output.
    let one_shot = command_grader(dir.path(), "serve.sh", "");
    let out = grade_outputs(&one_shot, &outputs(30, &[]));
    assert!(out.iter().all(|o| o.accepted), "{:?}", out[0]);
    assert_eq!(pids(&out).len(), 30);
}

#[test]
fn a_crash_mid_request_fails_that_outcome_only() {
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "serve.sh", "#!/bin/sh", SERVER);
    let g = command_grader(dir.path(), "serve.sh", ", persistent: true");
    let out = grade_outputs(&g, &outputs(40, &[(5, "crash"), (20, "crash")]));
    for (i, o) in out.iter().enumerate() {
        if i == 5 || i == 20 {
            let e = o.error.as_deref().unwrap_or_default();
            assert_eq!(
                e,
                "graders[0]: command serve.sh exited before replying, with exit code 3: dying on purpose",
                "output {i}"
            );
            assert!(!o.accepted);
        } else {
            assert!(o.accepted, "output {i}: {o:?}");
        }
    }
    // The workers that died were replaced: more processes than threads is possible, but
    // never one per output.
    assert!(pids(&out).len() <= rayon::current_num_threads() + 2);
}

#[test]
fn a_reply_that_is_not_a_verdict_fails_that_outcome_and_restarts_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "serve.sh", "#!/bin/sh", SERVER);
    let g = command_grader(dir.path(), "serve.sh", ", persistent: true");
    // One at a time, so the worker before and after each bad reply can be told apart.
    let outs = outputs(6, &[(2, "garble"), (4, "shape")]);
    let graded: Vec<GradeOutcome> = outs
        .iter()
        .map(|o| grade_outputs(&g, std::slice::from_ref(o)).remove(0))
        .collect();
    let errors: Vec<_> = graded.iter().map(|o| o.error.clone()).collect();
    assert!(
        errors[2]
            .as_deref()
            .unwrap()
            .contains("command serve.sh printed no valid verdict"),
        "{errors:?}"
    );
    assert!(errors[2].as_deref().unwrap().contains("PASS, probably"));
    assert!(
        errors[4]
            .as_deref()
            .unwrap()
            .contains("printed no valid verdict"),
        "{errors:?}"
    );
    for i in [0, 1, 3, 5] {
        assert!(graded[i].accepted, "output {i}: {:?}", graded[i]);
    }
    let pid = |i: usize| graded[i].verdicts[0].reason.clone();
    assert_eq!(pid(0), pid(1), "reused while in step");
    assert_ne!(pid(1), pid(3), "restarted after the malformed line");
    assert_ne!(pid(3), pid(5), "restarted after the wrong shape");
}

#[test]
fn a_hang_times_out_kills_the_worker_and_the_next_output_grades() {
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "serve.sh", "#!/bin/sh", SERVER);
    let g = command_grader(dir.path(), "serve.sh", ", persistent: true, timeout_s: 0.5");
    let first = grade_outputs(&g, &["ok 0".to_owned()]).remove(0);
    let hung = grade_outputs(&g, &["hang 1".to_owned()]).remove(0);
    let next = grade_outputs(&g, &["ok 2".to_owned()]).remove(0);
    assert_eq!(
        hung.error.as_deref(),
        Some("graders[0]: command serve.sh timed out after 500ms")
    );
    assert!(first.accepted && next.accepted, "{first:?} {next:?}");
    assert_ne!(first.verdicts[0].reason, next.verdicts[0].reason);
    // The hung worker (the one that graded the first output) was killed and reaped, not
    // left to finish its sleep.
    #[cfg(target_os = "linux")]
    {
        let hung_pid = first.verdicts[0].reason.trim_start_matches("pid ");
        assert!(!Path::new(&format!("/proc/{hung_pid}")).exists());
    }
}

#[test]
// A grader that writes a lot to stderr must not block on a full pipe.
fn a_chatty_stderr_does_not_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "serve.sh", "#!/bin/sh", SERVER);
    let g = command_grader(dir.path(), "serve.sh", ", persistent: true, timeout_s: 20");
    let outs: Vec<String> = (0..5).map(|i| format!("chatty {i}")).collect();
    let out = grade_outputs(&g, &outs);
    assert!(out.iter().all(|o| o.accepted), "{out:?}");
}

#[test]
fn workers_exit_at_eof_when_grading_ends_and_are_reaped() {
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "serve.sh", "#!/bin/sh", SERVER);
    let mut pipe = eof_pipe(dir.path());
    let g = command_grader(dir.path(), "serve.sh", ", persistent: true");
    let seen = pids(&grade_outputs(&g, &outputs(50, &[])));
    assert!(!seen.is_empty());
    g.stop_workers();
    let done = finished(&mut pipe);
    for pid in &seen {
        assert!(done.contains(pid), "worker {pid} did not finish at EOF");
        #[cfg(target_os = "linux")]
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "worker {pid} left behind (a zombie or still running)"
        );
    }
    // After a stop the grader still works (new workers), and dropping it ends them too.
    let again = pids(&grade_outputs(&g, &outputs(10, &[])));
    assert!(again.is_disjoint(&seen), "{again:?} {seen:?}");
    drop(g);
    let done = finished(&mut pipe);
    for pid in &again {
        assert!(done.contains(pid), "worker {pid} did not finish at EOF");
    }
}

#[test]
// Shell syntax in an output or provider id is data in a JSON line, never a command.
fn outputs_never_reach_a_shell_in_persistent_mode() {
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "serve.sh", "#!/bin/sh", SERVER);
    let marker = dir.path().join("pwned");
    let g = command_grader(dir.path(), "serve.sh", ", persistent: true");
    let evil = format!("$(touch {0}) `touch {0}`; touch {0}\n", marker.display());
    let out = grade_outputs(&g, &[evil.clone(), format!("x\"\ny {evil}")]);
    assert!(out.iter().all(|o| o.accepted), "{out:?}");
    assert!(!marker.exists());
}

#[test]
// graders/exact_answer.py serves both modes with the same verdicts.
fn the_example_grader_gives_the_same_verdicts_in_both_modes() {
    if !has_python() {
        eprintln!("python3 not found: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let vars: Vars = serde_json::from_str(r#"{"city": "Paris"}"#).unwrap();
    let outputs = ["  paris ", "Lyon", "PARIS", "Paris, France"].map(String::from);
    let program = example_grader("exact_answer.py");
    let one_shot = command_grader(dir.path(), &program, ", expected_var: city");
    let persistent = command_grader(
        dir.path(),
        &program,
        ", expected_var: city, persistent: true",
    );
    let a = grade_with_vars(&one_shot, &outputs, &vars);
    let b = grade_with_vars(&persistent, &outputs, &vars);
    assert_eq!(a, b);
    let accepted: Vec<bool> = b.iter().map(|o| o.accepted).collect();
    assert_eq!(accepted, [true, false, true, false]);
    assert_eq!(b[1].verdicts[0].reason, "expected 'paris', got 'lyon'");
}

#[test]
fn a_persistent_grader_grades_a_real_run() {
    if !has_python() {
        eprintln!("python3 not found: skipped");
        return;
    }
    let server = ScriptServer::start(|seen, _| {
        let answer = match seen.task.as_deref() {
            Some("m1") => "  Paris ",
            _ => "Lyon",
        };
        Reply::Json(200, chat_response(answer))
    });
    let ws = Workspace::new();
    let suite = ws.write(
        "cmd.yaml",
        &format!(
            "suite: cmd\nworkload: cmd\nrejection_cost_usd: 0\nprompt: {{user: \"task {{{{ q }}}}\"}}\n\
             graders:\n  - type: command\n    program: '{}'\n    expected_var: city\n    persistent: true\n\
             tasks:\n  - {{id: m1, vars: {{q: m1, city: paris}}}}\n  - {{id: m2, vars: {{q: m2, city: paris}}}}\n",
            example_grader("exact_answer.py")
        ),
    );
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url())]),
    );
    let out = ws.run(&[&suite], &provs, &[]);
    let report = out.json();
    let row = &report["rows"][0];
    assert_eq!(row["accepted"], 1, "{report:#}");
    assert_eq!(row["grader_errors"], 0, "{report:#}");
}
