//! The `command` grader's isolation, in both modes (one process per output, and
//! `persistent: true`): each process runs in a fresh folder of its own, removed after it; on
//! Linux it has no network (not even loopback) and cannot write outside that folder, where the
//! kernel allows it (probed once); elsewhere the documented fallback is asserted instead. The
//! example graders in `graders/` still work isolated.

#![cfg(unix)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{command_grader, grade_outputs, has_python, write_script};
use costbench::grade::GradeOutcome;

/// The two ways to run a `command` grader, as extra spec fields, with a name for messages.
const MODES: [(&str, &str); 2] = [("one-shot", ""), ("persistent", ", persistent: true")];

/// The reasons of `out`, in order.
fn reasons(out: &[GradeOutcome]) -> Vec<&str> {
    out.iter().map(|o| o.verdicts[0].reason.as_str()).collect()
}

#[test]
#[cfg(target_os = "linux")]
// Inside a network namespace of its own a grader cannot reach even a listener on 127.0.0.1;
// where namespaces are refused, as documented, it runs with the network and reaches it.
fn a_grader_reaching_for_the_network_is_cut_off_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    // bash's /dev/tcp connects without any other tool; the error (after the last `: `) goes to
    // the reason.
    write_script(
        dir.path(),
        "connect.sh",
        "#!/usr/bin/env bash",
        r#"while read -r line; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>err.txt; then
    echo '{"pass": false, "reason": "reached the listener"}'
  else
    printf '{"pass": true, "reason": "%s"}\n' "$(tail -n 1 err.txt | sed 's/.*: //')"
  fi
done"#,
    );
    for (mode, extra) in MODES {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let g = command_grader(
            dir.path(),
            "connect.sh",
            &format!(", args: ['{port}']{extra}"),
        );
        let out = grade_outputs(&g, &["a".into(), "b".into(), "c".into()]);
        g.stop_workers();
        listener.set_nonblocking(true).unwrap();
        let reached = std::iter::from_fn(|| listener.accept().ok()).count();
        match costbench::grade::network_isolation() {
            Ok(()) => {
                for o in &out {
                    assert!(
                        o.accepted && o.verdicts[0].reason == "Network is unreachable",
                        "{mode}: {o:?}"
                    );
                }
                assert_eq!(reached, 0, "{mode}: the listener was reached");
            }
            Err(why) => {
                eprintln!("no network namespace here ({why}): checked the documented fallback");
                assert!(
                    out.iter().all(|o| !o.accepted && o.error.is_none()),
                    "{mode}: {out:?}"
                );
                assert_eq!(reasons(&out), ["reached the listener"; 3], "{mode}");
                assert_eq!(reached, 3, "{mode}");
            }
        }
    }
}

#[test]
#[cfg(target_os = "linux")]
// A grader writes its own folder (its working directory) freely; a write anywhere else fails
// with a read-only file system and leaves no file. Where the kernel refuses the mount
// namespace, as documented, the write goes through.
fn a_grader_writes_its_own_folder_and_nothing_outside_it_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("escaped.txt");
    write_script(
        dir.path(),
        "write.sh",
        "#!/bin/sh",
        r#"while read -r line; do
  if ! echo mine >mine.txt || [ "$(cat mine.txt)" != mine ]; then
    echo '{"pass": false, "reason": "cannot write its own folder"}'
  elif (echo x >"$1") 2>err.txt; then
    echo '{"pass": false, "reason": "wrote outside its folder"}'
  else
    printf '{"pass": true, "reason": "%s"}\n' "$(tail -n 1 err.txt | sed 's/.*: //')"
  fi
done"#,
    );
    for (mode, extra) in MODES {
        let g = command_grader(
            dir.path(),
            "write.sh",
            &format!(", args: ['{}']{extra}", target.display()),
        );
        let out = grade_outputs(&g, &["a".into(), "b".into(), "c".into()]);
        g.stop_workers();
        match costbench::grade::file_isolation() {
            Ok(()) => {
                for o in &out {
                    let reason = &o.verdicts[0].reason;
                    assert!(
                        o.accepted && reason == "Read-only file system",
                        "{mode}: {o:?}"
                    );
                }
                assert!(!target.exists(), "{mode}: the write outside went through");
            }
            Err(why) => {
                eprintln!("no read-only mount namespace here ({why}): checked the fallback");
                assert_eq!(reasons(&out), ["wrote outside its folder"; 3], "{mode}");
                assert!(target.exists(), "{mode}");
                std::fs::remove_file(&target).unwrap();
            }
        }
    }
}

#[test]
// The working directory (and TMPDIR) is a fresh temporary folder per process: one per output
// one-shot, one per worker in persistent mode, each removed once its process is gone.
fn each_grader_process_gets_a_fresh_folder_removed_after_it() {
    let dir = tempfile::tempdir().unwrap();
    write_script(
        dir.path(),
        "where.sh",
        "#!/bin/sh",
        r#"while read -r line; do
  printf '{"pass": true, "reason": "%s %s"}\n' "$PWD" "$TMPDIR"
done"#,
    );
    let outputs: Vec<String> = (0..6).map(|i| format!("o{i}")).collect();
    for (mode, extra) in MODES {
        let g = command_grader(dir.path(), "where.sh", extra);
        let out = grade_outputs(&g, &outputs);
        let mut folders = BTreeSet::new();
        for r in reasons(&out) {
            let (cwd, tmp) = r.split_once(' ').unwrap_or((r, ""));
            assert_eq!(cwd, tmp, "{mode}: TMPDIR is the working directory");
            let name = Path::new(cwd).file_name().unwrap().to_string_lossy();
            assert!(name.starts_with("costbench-command-"), "{mode}: {cwd}");
            assert!(!Path::new(cwd).starts_with(dir.path()), "{mode}: {cwd}");
            folders.insert(cwd.to_owned());
        }
        if extra.is_empty() {
            assert_eq!(
                folders.len(),
                outputs.len(),
                "{mode}: one folder per output"
            );
        } else {
            assert!(
                folders.len() <= rayon::current_num_threads(),
                "{mode}: one folder per worker, got {folders:?}"
            );
            assert!(
                folders.iter().all(|f| Path::new(f).is_dir()),
                "{mode}: an idle worker keeps its folder"
            );
        }
        g.stop_workers();
        for f in &folders {
            assert!(!Path::new(f).exists(), "{mode}: {f} outlived its process");
        }
    }
}

#[test]
// Isolated, a grader still reads its own script and runs the tools it calls (`python3`, here
// through a pyenv shim, and `awk`): the read-only view keeps files readable. exact_answer.py,
// in both modes, is checked by tests/command_persistent.rs.
fn the_example_graders_still_work_isolated() {
    if !has_python() {
        eprintln!("python3 not found: skipped");
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("graders");
    // It reads its whole stdin, so it serves one-shot mode only.
    let g = command_grader(&repo, "max_words.sh", ", args: ['3']");
    let out = grade_outputs(&g, &["one two three".into(), "a b c d e f".into()]);
    assert!(out.iter().all(|o| o.error.is_none()), "{out:?}");
    let got: Vec<(bool, Option<f64>)> = out
        .iter()
        .map(|o| (o.accepted, o.verdicts[0].score))
        .collect();
    assert_eq!(got, [(true, Some(1.0)), (false, Some(0.5))]);
    assert_eq!(reasons(&out), ["3 words (max 3)", "6 words (max 3)"]);
}
