//! The terminal table fits the width it is shown in: the full table when it fits, wrapped
//! cells when that stays readable, one block per row below that. Snapshots at 80, 120 and
//! 200 columns of the quickstart replayed from its cassette.

mod common;

use common::*;

fn quickstart_report(width: &str) -> String {
    quickstart_report_in(&["--width", width])
}

/// `costbench report <args>` of the quickstart replayed from its cassette.
fn quickstart_report_in(args: &[&str]) -> String {
    let ws = Workspace::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = ws
        .cmd()
        .current_dir(root)
        .args([
            "run",
            "suites/quickstart.yaml",
            "--providers",
            "suites/quickstart.providers.yaml",
            "--cache",
            "replay",
            "--cassette",
            "suites/cassettes/quickstart.jsonl",
            "--no-progress",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    Out::of(run).assert_code(0);
    let out = Out::of(ws.cmd().arg("report").args(args).output().unwrap());
    out.assert_code(0);
    out.stdout
}

fn check(width: &str, max: usize) -> String {
    let text = quickstart_report(width);
    // The footnote is prose the terminal wraps; the table itself must fit.
    for line in text.lines().filter(|l| !l.starts_with("$/accepted =")) {
        assert!(
            line.chars().count() <= max,
            "{} > {max}: {line}",
            line.chars().count()
        );
    }
    text
}

#[test]
fn table_at_80_columns() {
    insta::with_settings!({filters => vec![(r"started [0-9T:.\-]+Z", "started [timestamp]")]}, {
        insta::assert_snapshot!(check("80", 80));
    });
}

#[test]
fn table_at_120_columns() {
    insta::with_settings!({filters => vec![(r"started [0-9T:.\-]+Z", "started [timestamp]")]}, {
        insta::assert_snapshot!(check("120", 120));
    });
}

#[test]
fn table_at_200_columns_is_the_full_table() {
    let text = check("200", 200);
    assert!(
        text.contains("calls / failed / retries ┆ p50 / p95 / p99 ms"),
        "{text}"
    );
}

/// Markdown for a pull request: the verdict lines first, then the table; no answer text.
#[test]
fn markdown_puts_verdicts_first() {
    let md = quickstart_report_in(&["--format", "md"]);
    let verdicts = md.find("**Qualifying providers").expect("verdicts");
    let table = md.find("| suite |").expect("table");
    assert!(verdicts < table, "{md}");
    insta::with_settings!({filters => vec![(r"started [0-9T:.\-]+Z", "started [timestamp]")]}, {
        insta::assert_snapshot!(md);
    });
}
