//! Grader configs that cannot work fail at load (`costbench validate`, exit 2) with
//! `file:line:col: path: message` (issue 11 §4): every unknown key inside a grader at its own
//! line, a program that is not executable, a missing schema file, an invalid regex, a field
//! that is not a JSON pointer, an acceptance rule or weight that cannot be used.

mod common;

use common::{Out, Workspace};
use test_case::test_case;

fn validate(graders: &str, files: &[(&str, &str)]) -> Out {
    let ws = Workspace::new();
    let suite = format!(
        "suite: s\nprompt: {{user: \"task {{{{ q }}}}\"}}\ngraders:\n{graders}tasks:\n  - {{id: t1, vars: {{q: a}}}}\n"
    );
    ws.write("suite.yaml", &suite);
    for (name, text) in files {
        ws.write(name, text);
    }
    Out::of(ws.cmd().args(["validate", "suite.yaml"]).output().unwrap())
}

#[test]
// Regression: only the first unknown key of a grader was reported, at the grader's line.
fn every_unknown_key_of_a_grader_is_reported_at_its_own_line() {
    let out = validate(
        "  - type: contains\n    value: a\n    valeu: b\n    normalise: [trim]\n  - {type: regex, pattern: x, flags: i}\n",
        &[],
    );
    out.assert_code(2);
    for expected in [
        "suite.yaml:6:5: graders[0].valeu: unknown field `valeu`, expected one of `value`, `normalize`, `negate`",
        "suite.yaml:7:5: graders[0].normalise: unknown field `normalise`",
        "suite.yaml:8:31: graders[1].flags: unknown field `flags`",
    ] {
        assert!(
            out.stderr.contains(expected),
            "expected `{expected}`:\n{out}"
        );
    }
    assert!(out.stderr.contains("3 problems in config"), "{out}");
}

#[test_case("  - {type: command, program: grader.sh}\n", &[("grader.sh", "#!/bin/sh\n")],
    "suite.yaml:4:5: graders[0]: command grader, field `program`:", "is not executable" ; "command not executable")]
#[test_case("  - {type: command, program: nope.py}\n", &[],
    "suite.yaml:4:5: graders[0]: command grader, field `program`:", "nope.py" ; "command missing")]
#[test_case("  - {type: command, program: g.sh, persistent: sometimes}\n", &[],
    "suite.yaml:4:5: graders[0]:", "invalid type: string \"sometimes\", expected a boolean" ; "command persistent not a boolean")]
#[test_case("  - type: command\n    program: g.sh\n    persistant: true\n", &[],
    "suite.yaml:6:5: graders[0].persistant:", "unknown field `persistant`" ; "command persistent misspelt")]
#[test_case("  - {type: json_schema, schema_file: schemas/missing.json}\n", &[],
    "suite.yaml:4:5: graders[0]: json_schema grader, field `schema_file`:", "missing.json" ; "schema file missing")]
#[test_case("  - {type: regex, pattern: '(unclosed'}\n", &[],
    "suite.yaml:4:5: graders[0]: regex grader, field `pattern`:", "regex parse error" ; "invalid regex")]
#[test_case("  - {type: fields, fields: {name: Ada}}\n", &[],
    "suite.yaml:4:5: graders[0]: fields grader, field `fields[name]`:", "is not a JSON pointer" ; "unknown pointer")]
#[test_case("  - {type: json, expect: {/name~2: Ada}}\n", &[],
    "suite.yaml:4:5: graders[0]: json grader, field `expect[/name~2]`:", "must be followed by 0 or 1" ; "invalid json pointer")]
#[test_case("  - {type: judge, provider: j, rubric: r, threshold: 3}\n", &[],
    "suite.yaml:4:5: graders[0]: judge grader, field `threshold`:", "between 0 and 1" ; "judge threshold")]
#[test_case("  - {type: contains, value: a, weight: 2}\n", &[],
    "suite.yaml:4:32: graders[0].weight:", "counts only with `accept: score >= X`" ; "weight without a score rule")]
fn a_grader_that_cannot_work_fails_at_load(
    graders: &str,
    files: &[(&str, &str)],
    at: &str,
    detail: &str,
) {
    let out = validate(graders, files);
    out.assert_code(2);
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains(at))
        .unwrap_or_else(|| panic!("expected `{at}`:\n{out}"));
    assert!(line.contains(detail), "expected `{detail}` in `{line}`");
}

#[test]
fn a_bad_accept_rule_is_located() {
    let ws = Workspace::new();
    ws.write(
        "suite.yaml",
        "suite: s\nprompt: {user: \"task {{ q }}\"}\naccept: most\ngraders:\n  - {type: contains, value: a}\ntasks:\n  - {id: t1, vars: {q: a}}\n",
    );
    let out = Out::of(ws.cmd().args(["validate", "suite.yaml"]).output().unwrap());
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("suite.yaml:3:1: accept: `most` is not an acceptance rule"),
        "{out}"
    );
}

#[test]
fn a_weighted_score_rule_validates() {
    let ws = Workspace::new();
    ws.write(
        "suite.yaml",
        "suite: s\nprompt: {user: \"task {{ q }}\"}\naccept: score >= 0.6\ngraders:\n  - {type: contains, value: a, weight: 3}\n  - {type: regex, pattern: '^b'}\ntasks:\n  - {id: t1, vars: {q: a}}\n",
    );
    let out = Out::of(ws.cmd().args(["validate", "suite.yaml"]).output().unwrap());
    out.assert_code(0);
    assert!(out.stdout.contains("2 graders"), "{out}");
}
