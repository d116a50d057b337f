//! Bad command-line input and bad databases: each a clear message and the same exit code in
//! every command (2: the user's input), never a panic (101) or an internal error (1).

mod common;

use common::*;

/// A workspace with one finished run in its database.
fn with_a_run() -> (Workspace, ScriptServer) {
    let server = ScriptServer::start(answer_with(&[("t1", "a1")]));
    let ws = Workspace::new();
    let (suite, provs) = ws.suite_and_provider(&[("t1", "a1")], &server.base_url());
    ws.run(&[&suite], &provs, &[]).assert_code(0);
    (ws, server)
}

fn cmd(ws: &Workspace, args: &[&str]) -> Out {
    Out::of(ws.cmd().args(args).output().expect("run costbench"))
}

/// Measured on the first build: `--bootstrap 18446744073709551615` panicked (capacity
/// overflow) and `--bootstrap 100000000` took 7 s and 790 MB.
#[test]
fn report_bootstrap_out_of_bounds_is_a_usage_error() {
    let (ws, _server) = with_a_run();
    for n in ["18446744073709551615", "100000000"] {
        let out = cmd(&ws, &["report", "--bootstrap", n]);
        out.assert_code(2);
        assert!(
            out.stderr
                .contains("--bootstrap must be at most 100000 resamples"),
            "{out}"
        );
    }
}

/// Measured on the first build: `--max-failed-share NaN` was accepted.
#[test]
fn max_failed_share_must_be_a_share() {
    let server = ScriptServer::start(answer_with(&[("t1", "a1")]));
    let ws = Workspace::new();
    let (suite, provs) = ws.suite_and_provider(&[("t1", "a1")], &server.base_url());
    for v in ["NaN", "1.5", "inf"] {
        let out = ws.run(&[&suite], &provs, &["--max-failed-share", v]);
        out.assert_code(2);
        assert!(
            out.stderr.contains("--max-failed-share must be a share"),
            "{out}"
        );
    }
    assert!(server.requests().is_empty(), "nothing called");
}

/// A database written by a newer costbench is the same error, with the same code, everywhere.
#[test]
fn a_newer_database_is_exit_2_in_every_command() {
    let (ws, server) = with_a_run();
    rusqlite::Connection::open(ws.db())
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let (suite, provs) = ws.suite_and_provider(&[("t1", "a1")], &server.base_url());
    let suite = suite.to_string_lossy().to_string();
    let provs = provs.to_string_lossy().to_string();
    let out_file = ws.path("out.jsonl").to_string_lossy().to_string();
    for args in [
        vec!["report"],
        vec!["runs"],
        vec!["grade"],
        vec!["cache", "export", &out_file],
        vec!["run", &suite, "--providers", &provs, "--no-progress"],
    ] {
        let out = cmd(&ws, &args);
        out.assert_code(2);
        assert!(out.stderr.contains("schema version 99"), "{args:?}: {out}");
    }
}

/// Measured on the first build: a damaged database gave an internal error in SQLite's words.
#[test]
fn a_corrupted_database_says_it_is_corrupted() {
    let ws = Workspace::new();
    std::fs::write(ws.db(), vec![0x5a; 8192]).unwrap();
    for args in [vec!["report"], vec!["runs"]] {
        let out = cmd(&ws, &args);
        out.assert_code(2);
        assert!(
            out.stderr.contains("is corrupted or is not a database"),
            "{args:?}: {out}"
        );
    }
}

/// `report` and `runs` only read: the database file is byte-identical afterwards, so they
/// also work where it cannot be written (root, as CI runs, ignores file permissions, so the
/// read-only open is what this checks).
#[test]
fn report_never_writes_the_database() {
    let (ws, _server) = with_a_run();
    let before = std::fs::read(ws.db()).unwrap();
    cmd(&ws, &["report"]).assert_code(0);
    cmd(&ws, &["runs"]).assert_code(0);
    assert!(
        std::fs::read(ws.db()).unwrap() == before,
        "the file changed"
    );
}

/// Measured on the first build: `grade` from another directory could not find the suite
/// (its path was stored as given) and did not say how to fix it.
#[test]
fn grade_finds_the_suite_from_another_directory_and_hints_at_suite_when_it_moved() {
    let (ws, _server) = with_a_run();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Out::of(
        ws.cmd()
            .current_dir(elsewhere.path())
            .args(["grade"])
            .output()
            .unwrap(),
    );
    out.assert_code(0);
    assert!(out.stderr.contains("re-graded 1 answers"), "{out}");

    std::fs::rename(ws.path("suite.yaml"), ws.path("moved.yaml")).unwrap();
    let out = cmd(&ws, &["grade"]);
    out.assert_code(2);
    assert!(out.stderr.contains("which is not there now"), "{out}");
    assert!(out.stderr.contains("--suite"), "{out}");
    let moved = ws.path("moved.yaml").to_string_lossy().to_string();
    cmd(&ws, &["grade", "--suite", &moved]).assert_code(0);
}

/// Measured on the first build: a malformed cassette was an internal error (exit 1).
#[test]
fn a_malformed_cassette_is_bad_input() {
    let server = ScriptServer::start(answer_with(&[("t1", "a1")]));
    let ws = Workspace::new();
    let (suite, provs) = ws.suite_and_provider(&[("t1", "a1")], &server.base_url());
    let cassette = ws.write("bad.jsonl", "{not json\n");
    let out = ws.run(
        &[&suite],
        &provs,
        &[
            "--cache",
            "replay",
            "--cassette",
            cassette.to_str().unwrap(),
        ],
    );
    out.assert_code(2);
    assert!(out.stderr.contains("bad.jsonl"), "{out}");
}

/// A cassette saved by an editor that writes a byte-order mark is read, as tasks files are.
#[test]
fn a_cassette_with_a_byte_order_mark_imports() {
    let ws = Workspace::new();
    let cassette = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("suites/cassettes/quickstart.jsonl"),
    )
    .unwrap();
    let file = ws.write("bom.jsonl", &format!("\u{feff}{cassette}"));
    let out = cmd(&ws, &["cache", "import", file.to_str().unwrap()]);
    out.assert_code(0);
    assert!(
        out.stderr.contains("imported 80 new recorded answers"),
        "{out}"
    );
}

/// `report` and `runs` work where the database cannot be written: a read-only file in a
/// read-only directory, read by an unprivileged user (root ignores permissions, so the test
/// drops to `nobody` with setpriv; CI runs as root).
#[test]
fn report_works_on_a_database_in_a_read_only_directory() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: cannot drop to another user, so this check does not run here");
        return;
    }
    let (ws, _server) = with_a_run();
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::copy(ws.db(), ro.join("costbench.db")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        ro.join("costbench.db"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for args in [&["report", "--format", "json"][..], &["runs"][..]] {
        let out = Out::of(
            std::process::Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_costbench"))
                .arg("--db")
                .arg(ro.join("costbench.db"))
                .args(args)
                .env_remove("COSTBENCH_DB")
                .output()
                .unwrap(),
        );
        out.assert_code(0);
    }
    assert_eq!(
        std::fs::read_dir(&ro).unwrap().count(),
        1,
        "nothing was created beside the database"
    );
}
