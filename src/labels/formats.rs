//! The label file formats: CSV, JSONL and Label Studio, written and read.
//!
//! Written: one item per row, line or task, with the automatic verdict filled in (`verdict` in
//! CSV and JSONL, a `prediction` in Label Studio) and `rater` left empty. Outputs and variables
//! are escaped by the format's writer (the csv crate's quoting, serde_json's strings); in CSV a
//! cell of model text that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR
//! first) gets a leading `'`, as OWASP advises; those cells are never read back.
//!
//! Read: CSV and JSONL rows, and a JSON array holding Label Studio tasks with `annotations`
//! (its JSON export), tasks without them (not reviewed yet), or flat objects (its JSON_MIN
//! export, or costbench's own rows). Label Studio annotations give the rater (`completed_by`),
//! the verdict (the first `choices` result, `verdict` by preference) and the note (a
//! `textarea` result); cancelled annotations are skipped.

use serde_json::{Map, Value, json};

use super::{Draft, Item, LabelFormat, Parsed, RowProblem, parse_verdict, verdict_word};
use crate::store::labels::OutcomeKey;

/// CSV columns, in order.
const COLUMNS: [&str; 12] = [
    "run",
    "suite",
    "provider",
    "task_id",
    "repeat",
    "auto_verdict",
    "verdict",
    "rater",
    "note",
    "auto_reason",
    "output",
    "vars",
];

/// Renders items in a format.
pub(super) fn render(items: &[Item], format: LabelFormat) -> String {
    match format {
        LabelFormat::Csv => csv_text(items),
        LabelFormat::Jsonl => items
            .iter()
            .map(|i| flat(i).to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        LabelFormat::LabelStudio => {
            let tasks: Vec<Value> = items.iter().map(label_studio_task).collect();
            serde_json::to_string_pretty(&tasks).unwrap_or_default()
        }
    }
}

/// The automatic verdict as a label word, when there is one.
fn auto_word(i: &Item) -> &'static str {
    verdict_word(match i.auto_verdict {
        "accepted" => Some(true),
        "rejected" => Some(false),
        _ => None,
    })
}

/// An item as one flat JSON object (a JSONL line).
fn flat(i: &Item) -> Value {
    json!({
        "run": i.run, "suite": i.suite, "provider": i.provider, "task_id": i.task_id,
        "repeat": i.repeat, "auto_verdict": i.auto_verdict, "verdict": auto_word(i),
        "rater": "", "note": "", "auto_reason": i.auto_reason, "output": i.output,
        "vars": i.vars,
    })
}

/// Guards a cell of untrusted text against being run as a spreadsheet formula.
fn cell(text: &str) -> std::borrow::Cow<'_, str> {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}").into(),
        _ => text.into(),
    }
}

fn csv_text(items: &[Item]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    // Writing to memory cannot fail.
    let _ = w.write_record(COLUMNS);
    for i in items {
        let vars = i.vars.to_string();
        let _ = w.write_record([
            i.run.to_string().as_str(),
            &i.suite,
            &i.provider,
            &i.task_id,
            &i.repeat.to_string(),
            i.auto_verdict,
            auto_word(i),
            "",
            "",
            &cell(&i.auto_reason),
            &cell(&i.output),
            &cell(&vars),
        ]);
    }
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8(bytes)
        .unwrap_or_default()
        .trim_end()
        .to_string()
}

/// A Label Studio task: the item's fields under `data`, the automatic verdict as a prediction
/// of the `verdict` choices (see the README for the labelling config).
fn label_studio_task(i: &Item) -> Value {
    let mut task = json!({
        "data": {
            "run": i.run, "suite": i.suite, "provider": i.provider, "task_id": i.task_id,
            "repeat": i.repeat, "auto_verdict": i.auto_verdict, "auto_reason": i.auto_reason,
            "output": i.output,
            // A string: Label Studio's Text tag shows strings.
            "vars": serde_json::to_string_pretty(&i.vars).unwrap_or_default(),
        }
    });
    let word = auto_word(i);
    if !word.is_empty() {
        task["predictions"] = json!([{
            "model_version": "costbench graders",
            "result": [{
                "from_name": "verdict", "to_name": "output", "type": "choices",
                "value": {"choices": [word]}
            }]
        }]);
    }
    task
}

/// Reads a label file.
pub fn parse(text: &str, format: LabelFormat) -> Parsed {
    let mut p = Parsed::default();
    match format {
        LabelFormat::Csv => parse_csv(text, &mut p),
        LabelFormat::Jsonl => {
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Value>(line) {
                    Ok(Value::Object(m)) => take(&mut p, n + 1, Draft::from_flat(&m, n + 1)),
                    Ok(_) => p.problem(n + 1, "not a JSON object".into()),
                    Err(e) => p.problem(n + 1, format!("not JSON: {e}")),
                }
            }
        }
        LabelFormat::LabelStudio => parse_json_array(text, &mut p),
    }
    p
}

impl Parsed {
    fn problem(&mut self, line: usize, message: String) {
        self.problems.push(RowProblem { line, message });
    }
}

/// Files a row's result: a label, a problem, or an item nobody reviewed.
fn take(p: &mut Parsed, line: usize, r: Result<Option<Draft>, String>) {
    match r {
        Ok(Some(d)) => p.drafts.push(d),
        Ok(None) => p.unreviewed += 1,
        Err(m) => p.problem(line, m),
    }
}

fn parse_csv(text: &str, p: &mut Parsed) {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = match r.headers() {
        Ok(h) => h.iter().map(|c| c.trim().to_ascii_lowercase()).collect(),
        Err(e) => return p.problem(1, format!("cannot read the header: {e}")),
    };
    for rec in r.records() {
        match rec {
            Ok(rec) => {
                let line = rec.position().map_or(0, |pos| pos.line() as usize);
                let m: Map<String, Value> = header
                    .iter()
                    .zip(rec.iter())
                    .map(|(h, v)| (h.clone(), Value::String(v.to_string())))
                    .collect();
                take(p, line, Draft::from_flat(&m, line));
            }
            Err(e) => {
                let line = e.position().map_or(0, |pos| pos.line() as usize);
                p.problem(line, format!("not a CSV row: {e}"));
            }
        }
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn parse_json_array(text: &str, p: &mut Parsed) {
    let items: Vec<&serde_json::value::RawValue> = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return p.problem(
                e.line(),
                format!("not a JSON array of Label Studio tasks: {e}"),
            );
        }
    };
    for raw in items {
        // The item's text lies inside `text`: its offset gives its line.
        let offset = raw.get().as_ptr() as usize - text.as_ptr() as usize;
        let line = line_at(text, offset);
        let v: Value = match serde_json::from_str(raw.get()) {
            Ok(v) => v,
            Err(e) => {
                p.problem(line, format!("not JSON: {e}"));
                continue;
            }
        };
        let Value::Object(task) = v else {
            p.problem(line, "not a JSON object".into());
            continue;
        };
        let annotations = task.get("annotations").or_else(|| task.get("completions"));
        match (annotations, task.get("data")) {
            (Some(a), data) => annotated(&task, data, a, line, p),
            // A task as exported, never annotated.
            (None, Some(_)) => p.unreviewed += 1,
            (None, None) => take(p, line, Draft::from_flat(&task, line)),
        }
    }
}

/// The labels of one Label Studio task with annotations.
fn annotated(
    task: &Map<String, Value>,
    data: Option<&Value>,
    annotations: &Value,
    line: usize,
    p: &mut Parsed,
) {
    let Some(data) = data.and_then(Value::as_object) else {
        return p.problem(line, "a task without a `data` object".into());
    };
    let Some(list) = annotations.as_array() else {
        return p.problem(line, "`annotations` is not a list".into());
    };
    if list.is_empty() {
        p.unreviewed += 1;
        return;
    }
    let id = task
        .get("id")
        .map(|i| format!("task {i}: "))
        .unwrap_or_default();
    for (n, a) in list.iter().enumerate() {
        if a.get("was_cancelled").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let mut row = data.clone();
        match annotation_fields(a) {
            Ok((verdict, rater, note)) => {
                row.insert("verdict".into(), Value::String(verdict));
                row.insert("rater".into(), rater.map_or(Value::Null, Value::String));
                row.insert("note".into(), note.map_or(Value::Null, Value::String));
                match Draft::from_flat(&row, line) {
                    Ok(Some(d)) => p.drafts.push(d),
                    Ok(None) => p.unreviewed += 1,
                    Err(m) => p.problem(line, format!("{id}annotations[{n}]: {m}")),
                }
            }
            Err(m) => p.problem(line, format!("{id}annotations[{n}]: {m}")),
        }
    }
}

/// (verdict, rater, note) of one Label Studio annotation.
fn annotation_fields(a: &Value) -> Result<(String, Option<String>, Option<String>), String> {
    let results = a
        .get("result")
        .and_then(Value::as_array)
        .ok_or("no `result` list")?;
    let prefer = |t: &str, name: &str| {
        let of_type = || results.iter().filter(|r| r["type"] == t);
        of_type()
            .find(|r| r["from_name"] == name)
            .or_else(|| of_type().next())
    };
    let choice = prefer("choices", "verdict")
        .and_then(|r| r["value"]["choices"].as_array()?.first()?.as_str())
        .ok_or("no choice made (a `choices` result, e.g. from_name `verdict`)")?;
    let note = prefer("textarea", "note").and_then(|r| {
        let lines: Vec<&str> = r["value"]["text"]
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        Some(lines.join("\n"))
    });
    let rater = match a.get("completed_by") {
        Some(Value::Object(u)) => {
            ["email", "username", "id"]
                .iter()
                .find_map(|k| match u.get(*k)? {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(format!("label-studio user {n}")),
                    _ => None,
                })
        }
        Some(Value::Number(n)) => Some(format!("label-studio user {n}")),
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    Ok((choice.to_string(), rater, note))
}

impl Draft {
    /// A label from one flat row: `suite`, `provider`, `task_id` (required), `repeat`
    /// (default 0), `run`, `verdict`, `rater` (or JSON_MIN's `annotator`), `note`. `Ok(None)`:
    /// not reviewed (no verdict).
    pub fn from_flat(m: &Map<String, Value>, line: usize) -> Result<Option<Draft>, String> {
        let text = |k: &str| -> Option<String> {
            match m.get(k)? {
                Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            }
        };
        let verdict = match text("verdict") {
            None => return Ok(None),
            Some(v) => parse_verdict(&v).ok_or_else(|| {
                format!("verdict `{v}` is neither accept nor reject (accept/reject, yes/no, pass/fail, 1/0)")
            })?,
        };
        let key_text = |k: &str| -> Result<String, String> {
            // Keys are matched exactly: keep the text as written.
            match m.get(k) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(Value::Number(n)) => Ok(n.to_string()),
                _ => Err(format!("`{k}` is missing or empty")),
            }
        };
        let number = |k: &str| -> Result<Option<i64>, String> {
            text(k)
                .map(|t| {
                    t.parse::<i64>()
                        .ok()
                        .filter(|n| *n >= 0)
                        .ok_or_else(|| format!("`{k}` must be a whole number ≥ 0, got `{t}`"))
                })
                .transpose()
        };
        let repeat = number("repeat")?.unwrap_or(0);
        Ok(Some(Draft {
            line,
            run: number("run")?,
            key: OutcomeKey {
                suite: key_text("suite")?,
                provider: key_text("provider")?,
                task_id: key_text("task_id")?,
                repeat: u32::try_from(repeat)
                    .map_err(|_| format!("`repeat` {repeat} is too large"))?,
            },
            accepted: verdict,
            rater: text("rater").or_else(|| text("annotator")),
            note: text("note"),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(output: &str) -> Item {
        Item {
            run: 3,
            suite: "s".into(),
            provider: "p".into(),
            task_id: "t,1".into(),
            repeat: 0,
            auto_verdict: "accepted",
            auto_reason: "label billing".into(),
            output: output.into(),
            vars: json!({"q": "say \"hi\"\nplease"}),
        }
    }

    #[test]
    fn csv_quotes_and_guards_formulas_and_reads_back() {
        let text = render(
            &[item("=HYPERLINK(\"x\")\n\"two\", lines")],
            LabelFormat::Csv,
        );
        assert!(
            text.contains("\"'=HYPERLINK(\"\"x\"\")\n\"\"two\"\", lines\""),
            "{text}"
        );
        // Unreviewed as written (no rater); a rater's row is a label.
        let p = parse(&text, LabelFormat::Csv);
        assert_eq!((p.drafts.len(), p.problems.len()), (1, 0));
        assert_eq!(p.drafts[0].key.task_id, "t,1");
        assert_eq!(p.drafts[0].rater, None);
        assert!(p.drafts[0].accepted);
    }

    #[test]
    fn label_studio_export_gives_rater_verdict_and_note_by_line() {
        let text = r#"[
  {"id": 7, "data": {"run": 1, "suite": "s", "provider": "p", "task_id": "t1"},
   "annotations": [
     {"completed_by": {"id": 2, "email": "ann@example.com"}, "was_cancelled": false,
      "result": [{"from_name": "verdict", "to_name": "output", "type": "choices",
                  "value": {"choices": ["reject"]}},
                 {"from_name": "note", "to_name": "output", "type": "textarea",
                  "value": {"text": ["wrong total"]}}]},
     {"completed_by": 3, "was_cancelled": true, "result": []},
     {"completed_by": 4, "result": [{"type": "choices", "value": {"choices": ["maybe"]}}]}]},
  {"id": 8, "data": {"run": 1, "suite": "s", "provider": "p", "task_id": "t2"}}
]"#;
        let p = parse(text, LabelFormat::LabelStudio);
        assert_eq!(p.drafts.len(), 1);
        let d = &p.drafts[0];
        assert_eq!(
            (d.line, d.rater.as_deref(), d.accepted, d.note.as_deref()),
            (2, Some("ann@example.com"), false, Some("wrong total"))
        );
        assert_eq!(p.problems.len(), 1);
        assert_eq!(p.problems[0].line, 2);
        assert!(
            p.problems[0]
                .message
                .starts_with("task 7: annotations[2]: verdict `maybe`"),
            "{:?}",
            p.problems
        );
        assert_eq!(p.unreviewed, 1);
    }

    #[test]
    fn jsonl_bad_lines_are_reported_and_good_ones_kept() {
        let text = "{\"run\": 1, \"suite\": \"s\", \"provider\": \"p\", \"task_id\": \"t1\", \"verdict\": \"yes\", \"rater\": \"r\"}\n\
                    not json\n\
                    {\"suite\": \"s\", \"provider\": \"p\", \"verdict\": \"no\"}\n\
                    {\"suite\": \"s\", \"provider\": \"p\", \"task_id\": \"t2\", \"repeat\": -1, \"verdict\": \"no\"}\n";
        let p = parse(text, LabelFormat::Jsonl);
        assert_eq!(p.drafts.len(), 1);
        let lines: Vec<usize> = p.problems.iter().map(|x| x.line).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert!(p.problems[1].message.contains("`task_id` is missing"));
        assert!(
            p.problems[2]
                .message
                .contains("`repeat` must be a whole number")
        );
    }
}
