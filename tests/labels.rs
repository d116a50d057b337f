//! Human labels through the real binary: `labels export` and `labels import` in each format,
//! the human verdict overriding the graders' in the report, the agreement statistics of
//! statistics.md §3.8 reproduced through an import, and the report's confusion matrix and
//! per-field figures.

mod common;

use std::path::Path;

use common::{
    Out, Provider, Reply, ScriptServer, Workspace, answer_with, assert_close, chat_response,
    providers_yaml, row, suite_yaml,
};
use serde_json::{Value, json};

/// Runs suite `s` (tasks expecting "yes") against providers answering per `answers`
/// (provider → task → answer) and returns the workspace, with run 1 stored.
fn run_yes_no(providers: &[(&str, Vec<(String, String)>)], tasks: &[String]) -> Workspace {
    let ws = Workspace::new();
    let mut servers = Vec::new();
    let mut entries = Vec::new();
    for (id, answers) in providers {
        let a: Vec<(&str, &str)> = answers
            .iter()
            .map(|(t, x)| (t.as_str(), x.as_str()))
            .collect();
        let server = ScriptServer::start(answer_with(&a));
        entries.push(Provider::new(id, &server.base_url()).max_concurrency(8));
        servers.push(server);
    }
    let t: Vec<(&str, &str)> = tasks.iter().map(|t| (t.as_str(), "yes")).collect();
    let suite = ws.write("suite.yaml", &suite_yaml("s", &t));
    let provs = ws.write("providers.yaml", &providers_yaml(&entries));
    ws.run(&[&suite], &provs, &[]).assert_code(0);
    ws
}

fn cmd(ws: &Workspace, args: &[&str]) -> Out {
    Out::of(ws.cmd().args(args).output().expect("run costbench"))
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("t{i:03}")).collect()
}

/// A CSV of labels: (provider, task, verdict) rows by one rater, for run 1 of suite `s`.
fn labels_csv(rows: &[(&str, &str, &str)], rater: &str) -> String {
    let mut s = String::from("run,suite,provider,task_id,repeat,verdict,rater,note\n");
    for (p, t, v) in rows {
        s.push_str(&format!("1,s,{p},{t},0,{v},{rater},\n"));
    }
    s
}

fn label_count(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM labels", [], |r| r.get(0))
        .unwrap()
}

/// statistics.md §3.8 [C]: 200 double-labelled items, human × grader = 150 / 10 / 20 / 20:
/// raw agreement 85.0%, κ = 0.483, α = 0.482; with the whole suite labelled the corrected
/// acceptance is (0.85 + 0.5 − 1)/(0.9375 + 0.5 − 1) = 0.8, the humans' own rate.
#[test]
fn agreement_of_statistics_3_8_is_reproduced_through_labels_import() {
    let tasks = ids(200);
    // Tasks 0..170 answered "yes" (the grader accepts), 170..200 "no" (it rejects).
    let answers: Vec<(String, String)> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), if i < 170 { "yes" } else { "no" }.to_string()))
        .collect();
    let ws = run_yes_no(&[("p", answers)], &tasks);
    // Humans: of the grader's 170 accepts, 150 accepted and 20 rejected; of its 30 rejects,
    // 10 accepted and 20 rejected.
    let rows: Vec<(&str, &str, &str)> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let human = matches!(i, 0..150 | 170..180);
            ("p", t.as_str(), if human { "accept" } else { "reject" })
        })
        .collect();
    ws.write("labels.csv", &labels_csv(&rows, "ann"));
    let out = cmd(&ws, &["labels", "import", "labels.csv"]);
    out.assert_code(0);
    assert!(
        out.stderr
            .contains("200 label(s) imported (200 new, 0 changed, 0 unchanged) into run 1"),
        "{out}"
    );

    let out = cmd(
        &ws,
        &["labels", "agreement", "--run", "1", "--format", "json"],
    );
    out.assert_code(0);
    let a = out.json();
    assert_eq!(a["labelled_outcomes"], 200);
    let all = &a["workloads"][0]["graders"][0];
    assert_eq!(all["grader"], "all");
    assert_eq!(
        all["table"],
        json!({"both_accept": 150, "only_a": 10, "only_b": 20, "both_reject": 20})
    );
    assert_close(&all["raw_agreement"]["estimate"], 0.85, 1e-12);
    let kappa = all["kappa"]["estimate"].as_f64().unwrap();
    let alpha = all["alpha"]["estimate"].as_f64().unwrap();
    assert_eq!(format!("{kappa:.3}"), "0.483");
    assert_eq!(format!("{alpha:.3}"), "0.482");
    let (lo, hi) = (
        all["kappa"]["low"].as_f64().unwrap(),
        all["kappa"]["high"].as_f64().unwrap(),
    );
    assert!(lo < kappa && kappa < hi && lo > 0.2 && hi < 0.75, "{all}");
    assert_close(&all["sensitivity"]["estimate"], 0.9375, 1e-12);
    assert_close(&all["specificity"]["estimate"], 0.5, 1e-12);
    // The one grader of the suite, on its own, is the same table.
    let g0 = &a["workloads"][0]["graders"][1];
    assert_eq!(
        (g0["grader"].as_str(), g0["kind"].as_str()),
        (Some("graders[0]"), Some("contains"))
    );
    assert_eq!(g0["table"], all["table"]);
    let acc = &a["workloads"][0]["acceptance"][0];
    assert_close(&acc["raw"]["estimate"], 0.85, 1e-12);
    assert_close(&acc["corrected"]["estimate"], 0.8, 1e-12);
    assert_eq!(acc["corrected"]["method"], "rogan-gladen-bootstrap");
    assert!(acc["corrected"]["low"].as_f64().unwrap() < 0.8);

    // The report: the humans' verdicts are the figures, and it says how many there are.
    let report = ws.report(Some(1));
    let r = row(&report, "p");
    assert_eq!(
        (r["accepted"].as_u64(), r["human_labelled"].as_u64()),
        (Some(160), Some(200))
    );
    assert_close(&r["acceptance"]["rate"], 0.8, 1e-12);
    assert_eq!(
        report["agreement"], a,
        "the report carries the same agreement section"
    );
    let table = cmd(&ws, &["report", "--run", "1", "--width", "200"]);
    assert!(
        table.stdout.contains("200 outcome(s) carry a human label"),
        "{table}"
    );
    let table = cmd(&ws, &["labels", "agreement", "--width", "200"]);
    assert!(table.stdout.contains("0.483 ["), "{table}");
    // And the HTML report, in its graders section.
    let html = cmd(&ws, &["report", "--run", "1", "--format", "html"]).stdout;
    let section = &html[html
        .find("<section id=\"graders\">")
        .expect("graders section")..];
    assert!(
        section.contains("graders against 200 human-labelled outcome(s)"),
        "{section}"
    );
    assert!(
        section.contains(r#"<td class="n">85.0% ["#)
            && section.contains(r#"<td class="n">0.483 ["#),
        "{section}"
    );
    assert!(section.contains("Rogan–Gladen"), "{section}");
}

/// Two providers, four tasks: p answers t0–t1 right, q t0 only; outputs carry characters
/// every format must escape.
fn small_run() -> Workspace {
    let tasks = ids(4);
    let tricky = "=cmd|' /C calc'!A0, \"quoted\"\nsecond line <b>";
    let p: Vec<(String, String)> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                t.clone(),
                if i < 2 {
                    format!("yes {tricky}")
                } else {
                    tricky.into()
                },
            )
        })
        .collect();
    let q: Vec<(String, String)> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), if i < 1 { "yes".into() } else { "no".into() }))
        .collect();
    run_yes_no(&[("p", p), ("q", q)], &tasks)
}

#[test]
fn labels_round_trip_through_each_format() {
    for (file, format) in [
        ("items.csv", "csv"),
        ("items.jsonl", "jsonl"),
        ("items.json", "label-studio"),
    ] {
        let ws = small_run();
        let out = cmd(&ws, &["labels", "export", "--run", "1", "--out", file]);
        out.assert_code(0);
        assert!(
            out.stderr.contains("wrote 8 of 8 outcomes"),
            "{format}: {out}"
        );
        let text = std::fs::read_to_string(ws.path(file)).unwrap();
        // Exported as written, nothing is a label yet: no rater signed anything.
        let out = cmd(&ws, &["labels", "import", file]);
        out.assert_code(0);
        assert!(
            out.stderr.contains("0 label(s) imported"),
            "{format}: {out}"
        );
        // The rater flips p/t002 to accept and q/t000 to reject, and keeps the rest.
        let flip = |provider: &str, task: &str| {
            (provider, task) == ("p", "t002") || (provider, task) == ("q", "t000")
        };
        let labelled = match format {
            "csv" => {
                let mut r = csv::Reader::from_reader(text.as_bytes());
                let header = r.headers().unwrap().clone();
                let col = |n: &str| header.iter().position(|h| h == n).unwrap();
                let mut w = csv::Writer::from_writer(Vec::new());
                w.write_record(&header).unwrap();
                for rec in r.records() {
                    let rec = rec.unwrap();
                    // The output survived the quoting; a formula-like cell got its guard.
                    let output = &rec[col("output")];
                    if rec[col("provider")] == *"p" {
                        assert!(output.contains("\"quoted\"\nsecond line <b>"), "{output:?}");
                    }
                    if rec[col("provider")] == *"p" && rec[col("task_id")] == *"t002" {
                        assert!(output.starts_with("'=cmd|"), "{output:?}");
                    }
                    let mut cells: Vec<String> = rec.iter().map(str::to_string).collect();
                    if flip(&rec[col("provider")], &rec[col("task_id")]) {
                        let v = &mut cells[col("verdict")];
                        *v = if v == "accept" { "reject" } else { "accept" }.into();
                    }
                    cells[col("rater")] = "ann".into();
                    cells[col("note")] = "checked, by hand".into();
                    w.write_record(&cells).unwrap();
                }
                String::from_utf8(w.into_inner().unwrap()).unwrap()
            }
            "jsonl" => text
                .lines()
                .map(|l| {
                    let mut v: Value = serde_json::from_str(l).unwrap();
                    if v["provider"] == "p" {
                        assert!(v["output"].as_str().unwrap().contains("\"quoted\"\nsecond"));
                    }
                    if flip(
                        v["provider"].as_str().unwrap(),
                        v["task_id"].as_str().unwrap(),
                    ) {
                        v["verdict"] = json!(if v["verdict"] == "accept" {
                            "reject"
                        } else {
                            "accept"
                        });
                    }
                    v["rater"] = json!("ann");
                    v["note"] = json!("checked, by hand");
                    v.to_string()
                })
                .collect::<Vec<_>>()
                .join("\n"),
            _ => {
                // What Label Studio's JSON export gives back for these tasks: the
                // prediction accepted or changed by annotator 7.
                let mut tasks: Vec<Value> = serde_json::from_str(&text).unwrap();
                for (n, t) in tasks.iter_mut().enumerate() {
                    let d = &t["data"];
                    if d["provider"] == "p" {
                        assert!(d["output"].as_str().unwrap().contains("<b>"));
                    }
                    let mut choice = t["predictions"][0]["result"][0]["value"]["choices"][0]
                        .as_str()
                        .unwrap()
                        .to_string();
                    if flip(
                        d["provider"].as_str().unwrap(),
                        d["task_id"].as_str().unwrap(),
                    ) {
                        choice = if choice == "accept" {
                            "reject"
                        } else {
                            "accept"
                        }
                        .into();
                    }
                    t["id"] = json!(n + 1);
                    t["annotations"] = json!([{
                        "id": n + 100, "completed_by": {"id": 7, "email": "ann"},
                        "was_cancelled": false, "lead_time": 3.5,
                        "result": [
                            {"from_name": "verdict", "to_name": "output", "type": "choices",
                             "value": {"choices": [choice]}},
                            {"from_name": "note", "to_name": "output", "type": "textarea",
                             "value": {"text": ["checked, by hand"]}}
                        ]
                    }]);
                }
                serde_json::to_string_pretty(&tasks).unwrap()
            }
        };
        let back = format!("labelled.{}", file.rsplit('.').next().unwrap());
        ws.write(&back, &labelled);
        let out = cmd(&ws, &["labels", "import", &back]);
        out.assert_code(0);
        assert!(
            out.stderr.contains("8 label(s) imported (8 new"),
            "{format}: {out}"
        );
        let report = ws.report(Some(1));
        // p: t000, t001 accepted, + t002 by the human; q: t000 now rejected.
        assert_eq!(row(&report, "p")["accepted"], 3, "{format}");
        assert_eq!(row(&report, "q")["accepted"], 0, "{format}");
        assert_eq!(row(&report, "p")["human_labelled"], 4, "{format}");
        let conn = rusqlite::Connection::open(ws.db()).unwrap();
        let (rater, note): (String, String) = conn
            .query_row(
                "SELECT rater, note FROM labels WHERE provider = 'q' AND task_id = 't000'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            (rater.as_str(), note.as_str()),
            ("ann", "checked, by hand"),
            "{format}"
        );
    }
}

#[test]
fn reimporting_the_same_file_changes_nothing() {
    let ws = small_run();
    ws.write(
        "labels.csv",
        &labels_csv(&[("p", "t002", "accept"), ("q", "t001", "accept")], "ann"),
    );
    cmd(&ws, &["labels", "import", "labels.csv"]).assert_code(0);
    let before = ws.report(Some(1));
    let out = cmd(&ws, &["labels", "import", "labels.csv"]);
    out.assert_code(0);
    assert!(
        out.stderr
            .contains("2 label(s) imported (0 new, 0 changed, 2 unchanged)"),
        "{out}"
    );
    assert_eq!(label_count(&ws.db()), 2);
    assert_eq!(ws.report(Some(1))["rows"], before["rows"]);
    // A second rater adds labels; the same rater changing a verdict replaces it.
    ws.write("bob.csv", &labels_csv(&[("p", "t002", "reject")], "bob"));
    cmd(&ws, &["labels", "import", "bob.csv"]).assert_code(0);
    assert_eq!(label_count(&ws.db()), 3);
    // ann accepts, bob rejects: a tie leaves the grader's rejection.
    assert_eq!(row(&ws.report(Some(1)), "p")["accepted"], 2);
    ws.write("ann.csv", &labels_csv(&[("p", "t002", "reject")], "ann"));
    let out = cmd(&ws, &["labels", "import", "ann.csv"]);
    assert!(
        out.stderr.contains("(0 new, 1 changed, 0 unchanged)"),
        "{out}"
    );
    assert_eq!(label_count(&ws.db()), 3);
}

#[test]
fn bad_rows_are_reported_by_line_and_good_rows_kept() {
    let ws = small_run();
    ws.write(
        "labels.csv",
        "run,suite,provider,task_id,repeat,verdict,rater,note\n\
         1,s,p,t002,0,accept,ann,fine\n\
         1,s,p,t003,0,maybe,ann,\n\
         1,s,p,,0,accept,ann,\n\
         1,s,p,t003,x,accept,ann,\n\
         1,s,q,t001,0,yes,ann,\"a note, with a comma\"\n\
         1,s,q,t001,0,yes,ann,\"a note, with a comma\"\n\
         1,s,q,t001,0,no,ann,\n",
    );
    let out = cmd(&ws, &["labels", "import", "labels.csv"]);
    out.assert_code(2);
    assert!(out.stderr.contains("2 label(s) imported (2 new"), "{out}");
    assert!(out.stderr.contains("4 row(s) not imported"), "{out}");
    assert!(
        out.stderr.contains("labels.csv:3: verdict `maybe`"),
        "{out}"
    );
    assert!(
        out.stderr.contains("labels.csv:4: `task_id` is missing"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("labels.csv:5: `repeat` must be a whole number"),
        "{out}"
    );
    // Line 7 repeats line 6 (harmless); line 8 contradicts it.
    assert!(
        out.stderr.contains(
            "labels.csv:8: `ann` labelled this outcome differently on line 6; the label on line 6 is kept"
        ),
        "{out}"
    );
    let report = ws.report(Some(1));
    assert_eq!(row(&report, "p")["accepted"], 3);
    assert_eq!(row(&report, "q")["accepted"], 2);
}

#[test]
fn a_label_for_an_outcome_that_does_not_exist_is_reported() {
    let ws = small_run();
    ws.write(
        "labels.jsonl",
        &[
            json!({"run": 1, "suite": "s", "provider": "p", "task_id": "t001", "verdict": "reject", "rater": "ann"}),
            json!({"run": 1, "suite": "s", "provider": "nobody", "task_id": "t001", "verdict": "reject", "rater": "ann"}),
            json!({"run": 1, "suite": "s", "provider": "p", "task_id": "t001", "repeat": 3, "verdict": "reject", "rater": "ann"}),
            json!({"run": 9, "suite": "s", "provider": "p", "task_id": "t001", "verdict": "reject", "rater": "ann"}),
            json!({"suite": "s", "provider": "p", "task_id": "t000", "verdict": "reject", "rater": "ann"}),
        ]
        .map(|v| v.to_string())
        .join("\n"),
    );
    let out = cmd(&ws, &["labels", "import", "labels.jsonl"]);
    out.assert_code(2);
    assert!(out.stderr.contains("1 label(s) imported"), "{out}");
    assert!(
        out.stderr.contains("labels.jsonl:2: no such outcome: run 1 has no answer of provider `nobody` to task `t001` (repeat 0) of suite `s`"),
        "{out}"
    );
    assert!(
        out.stderr.contains("labels.jsonl:3: no such outcome"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("labels.jsonl:4: run 9 is not in the database"),
        "{out}"
    );
    assert!(out.stderr.contains("labels.jsonl:5: names no run"), "{out}");
    // --run fills the missing run; a row naming another run is refused.
    let out = cmd(&ws, &["labels", "import", "labels.jsonl", "--run", "1"]);
    assert!(
        out.stderr
            .contains("labels.jsonl:4: names run 9, but --run 1 was given"),
        "{out}"
    );
    assert_eq!(label_count(&ws.db()), 2);
}

#[test]
fn a_human_label_overrides_the_grader_in_the_json_report() {
    let ws = small_run();
    let before = ws.report(Some(1));
    let q = row(&before, "q");
    assert_eq!(
        (q["accepted"].as_u64(), q["human_labelled"].as_u64()),
        (Some(1), Some(0))
    );
    assert!(
        before.get("agreement").is_none(),
        "no labels, no agreement section"
    );
    ws.write(
        "l.csv",
        &labels_csv(&[("q", "t003", "accept"), ("q", "t000", "reject")], "ann"),
    );
    cmd(&ws, &["labels", "import", "l.csv"]).assert_code(0);
    let after = ws.report(Some(1));
    let q = row(&after, "q");
    // t003 accepted by the human, t000 rejected: still one accepted, but a different one.
    assert_eq!(
        (q["accepted"].as_u64(), q["human_labelled"].as_u64()),
        (Some(1), Some(2))
    );
    ws.write("m.csv", &labels_csv(&[("q", "t002", "accept")], "ann"));
    cmd(&ws, &["labels", "import", "m.csv"]).assert_code(0);
    let q = row(&ws.report(Some(1)), "q").clone();
    assert_eq!(q["accepted"], 2);
    assert_close(&q["acceptance"]["rate"], 0.5, 1e-12);
    assert!(after["agreement"]["workloads"][0]["graders"][0]["items"] == 2);
}

#[test]
fn export_samples_across_providers_and_filters() {
    let ws = small_run();
    let out = cmd(
        &ws,
        &["labels", "export", "--out", "r.jsonl", "--only", "rejected"],
    );
    out.assert_code(0);
    // p rejected t002, t003; q rejected t001..t003.
    assert!(
        out.stderr.contains("wrote 5 of 5 outcomes of run 1"),
        "{out}"
    );
    assert!(out.stderr.contains("(p 2, q 3)"), "{out}");
    let out = cmd(
        &ws,
        &[
            "labels",
            "export",
            "--out",
            "d.csv",
            "--only",
            "disagreements",
        ],
    );
    // Providers disagree on t001 only (p yes, q no).
    assert!(out.stderr.contains("wrote 2 of 2"), "{out}");
    let out = cmd(
        &ws,
        &[
            "labels", "export", "--out", "s.json", "--sample", "4", "--seed", "3",
        ],
    );
    assert!(
        out.stderr.contains("wrote 4 of 8") && out.stderr.contains("(p 2, q 2)"),
        "{out}"
    );
    let first = std::fs::read_to_string(ws.path("s.json")).unwrap();
    cmd(
        &ws,
        &[
            "labels", "export", "--out", "s.json", "--sample", "4", "--seed", "3",
        ],
    );
    assert_eq!(std::fs::read_to_string(ws.path("s.json")).unwrap(), first);
    let out = cmd(&ws, &["labels", "export", "--out", "x.txt"]);
    out.assert_code(2);
    assert!(out.stderr.contains("give --format"), "{out}");
}

/// The report's `graders` section: a `label` grader's confusion matrix per provider and a
/// `fields` grader's per-field precision, recall and F1.
#[test]
fn label_confusion_matrix_and_field_figures_in_the_json_report() {
    let server = ScriptServer::start(|seen, _| {
        let answer = match seen.task.as_deref().unwrap_or("") {
            "c1" => "billing",
            "c2" => "bug",
            "c3" => "refund",
            "c4" => "bug",
            "e1" => r#"{"name": "Ada", "total": 12.5}"#,
            "e2" => r#"{"name": "Bob", "po": "X"}"#,
            _ => "",
        };
        Reply::Json(200, chat_response(answer))
    });
    let ws = Workspace::new();
    let suite = |name: &str, grader: &str, tasks: &str| {
        format!(
            "suite: {name}\ndescription: t\nworkload: {name}\nrejection_cost_usd: 0\n\
             prompt: {{user: \"task {{{{ q }}}}\"}}\nparams: {{max_tokens: 64}}\n\
             graders:\n  - {grader}\ntasks:\n{tasks}"
        )
    };
    let classify = ws.write(
        "classify.yaml",
        &suite(
            "classify",
            "{type: label, labels: [billing, bug], expected: '{{ label }}'}",
            "  - {id: c1, vars: {q: c1, label: billing}}\n  - {id: c2, vars: {q: c2, label: billing}}\n  \
             - {id: c3, vars: {q: c3, label: bug}}\n  - {id: c4, vars: {q: c4, label: bug}}\n",
        ),
    );
    let extract = ws.write(
        "extract.yaml",
        &suite(
            "extract",
            "{type: fields, min_f1: 0.5, fields: {/name: '{{ name }}', /total: {value: '{{ total }}', tolerance: 0.01}, /po: ''}}",
            "  - {id: e1, vars: {q: e1, name: Ada, total: '12.50'}}\n  - {id: e2, vars: {q: e2, name: Ann, total: '3'}}\n",
        ),
    );
    let provs = ws.write(
        "providers.yaml",
        &providers_yaml(&[Provider::new("p", &server.base_url())]),
    );
    let report = ws
        .run(&[&classify, &extract], &provs, &[])
        .assert_code(0)
        .json();
    let m = &report["graders"]["confusion"][0];
    assert_eq!(
        (
            m["suite"].as_str(),
            m["grader"].as_u64(),
            m["provider"].as_str()
        ),
        (Some("classify"), Some(0), Some("p"))
    );
    assert_eq!(
        m["labels"],
        json!(["billing", "bug", "(outside the label set)"])
    );
    // billing → billing, billing → bug, bug → outside, bug → bug.
    assert_eq!(m["matrix"], json!([[1, 1, 0], [0, 1, 1], [0, 0, 0]]));
    assert_close(&m["accuracy"], 0.5, 1e-12);
    let f = &report["graders"]["fields"][0];
    assert_eq!(
        (f["suite"].as_str(), f["outputs"].as_u64()),
        (Some("extract"), Some(2))
    );
    let by = |p: &str| {
        f["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["pointer"] == p)
            .unwrap()
            .clone()
    };
    // /name: right once (Ada), wrong once (Bob for Ann).
    let name = by("/name");
    assert_eq!(
        (
            name["expected"].as_u64(),
            name["predicted"].as_u64(),
            name["correct"].as_u64()
        ),
        (Some(2), Some(2), Some(1))
    );
    // /total: right once, missing once; /po: never expected, predicted once.
    let total = by("/total");
    assert_close(&total["precision"], 1.0, 1e-12);
    assert_close(&total["recall"], 0.5, 1e-12);
    let po = by("/po");
    assert_eq!(
        (
            po["expected"].as_u64(),
            po["predicted"].as_u64(),
            po["recall"].clone()
        ),
        (Some(0), Some(1), Value::Null)
    );
    let all = by("*");
    assert_eq!(
        (
            all["expected"].as_u64(),
            all["predicted"].as_u64(),
            all["correct"].as_u64()
        ),
        (Some(4), Some(4), Some(2))
    );
    assert_close(&all["f1"], 0.5, 1e-12);

    // The HTML report shows the same matrix and field figures in its graders section.
    let out = cmd(&ws, &["report", "--format", "html"]);
    out.assert_code(0);
    let html = out.stdout;
    let section = &html[html
        .find("<section id=\"graders\">")
        .expect("graders section")..];
    assert!(
        section.contains("label confusion · suite classify · graders[0] · provider p · 4 outputs · accuracy 50.0%"),
        "{section}"
    );
    for row in [
        r#"<tr><th>billing</th><td class="n">1</td><td class="n">1</td><td class="n">0</td></tr>"#,
        r#"<tr><th>bug</th><td class="n">0</td><td class="n">1</td><td class="n">1</td></tr>"#,
        r#"<tr><th>&#x2f;total</th><td class="n">2</td><td class="n">1</td><td class="n">1</td><td class="n">100.0%</td><td class="n">50.0%</td><td class="n">0.667</td></tr>"#,
        r#"<tr><th>*</th><td class="n">4</td><td class="n">4</td><td class="n">2</td><td class="n">50.0%</td><td class="n">50.0%</td><td class="n">0.500</td></tr>"#,
    ] {
        assert!(section.contains(row), "{row} not in {section}");
    }
}
