//! Human labels in and out: `costbench labels export` writes a run's answered outcomes to
//! label (CSV, JSONL, or Label Studio tasks, pre-filled with the automatic verdict), and
//! `costbench labels import` reads the same formats back (and Label Studio's JSON export) into
//! the store, where a human verdict overrides the graders' in every figure.
//!
//! One item is one outcome, named by `run`, `suite`, `provider`, `task_id` and `repeat`; a
//! label is a `verdict` (accept or reject), a `rater` and an optional `note`. Every format is
//! read through one flat view ([`Draft::from_flat`]), so a CSV row, a JSONL line and a Label
//! Studio annotation are checked the same way. A bad row is reported by its line and never
//! blocks the good ones; a rater's label of an outcome is unique, so importing a file twice
//! changes nothing.

pub mod agreement;
mod formats;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::Serialize;

use crate::stats::rng::Rng;
use crate::store::labels::{LabelRow, OutcomeKey, PutSummary};
use crate::store::{GradeStatus, RunInfo, Store, StoreError};

pub use formats::parse;

/// A label file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LabelFormat {
    /// Comma-separated values, one item a row, with a header.
    Csv,
    /// One JSON object a line.
    Jsonl,
    /// Label Studio: a JSON array of tasks (export), or its JSON / JSON_MIN export (import).
    LabelStudio,
}

impl LabelFormat {
    /// The format a file name implies: `.csv`, `.jsonl`/`.ndjson`, `.json`.
    pub fn from_path(path: &Path) -> Option<LabelFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(LabelFormat::Csv),
            "jsonl" | "ndjson" => Some(LabelFormat::Jsonl),
            "json" => Some(LabelFormat::LabelStudio),
            _ => None,
        }
    }
}

/// Which outcomes to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    /// Outcomes of tasks (and repeats) to which providers got different automatic verdicts.
    Disagreements,
    /// Outcomes the graders rejected.
    Rejected,
    /// Outcomes the graders accepted.
    Accepted,
}

/// What to export.
#[derive(Debug, Clone, Copy)]
pub struct ExportSpec {
    /// The format written.
    pub format: LabelFormat,
    /// At most this many items, spread evenly across providers.
    pub sample: Option<usize>,
    /// The sample's seed.
    pub seed: u64,
    /// Only these outcomes.
    pub only: Option<Only>,
}

/// One item to label, as every format writes it.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Run id.
    pub run: i64,
    /// Suite name.
    pub suite: String,
    /// Provider id.
    pub provider: String,
    /// Task id.
    pub task_id: String,
    /// Sample number.
    pub repeat: u32,
    /// The automatic verdict: accepted, rejected, error (a grader could not decide) or
    /// ungraded.
    pub auto_verdict: &'static str,
    /// The graders' reasons, one per grader.
    pub auto_reason: String,
    /// The answer to label.
    pub output: String,
    /// The task's variables.
    pub vars: serde_json::Value,
}

/// The verdict word a label file uses for an automatic verdict (empty when there is none).
pub fn verdict_word(accepted: Option<bool>) -> &'static str {
    match accepted {
        Some(true) => "accept",
        Some(false) => "reject",
        None => "",
    }
}

/// Reads a verdict as raters write it: accept/accepted/yes/pass/good/correct/true/1, or
/// reject/rejected/no/fail/bad/incorrect/wrong/false/0 (any case).
pub fn parse_verdict(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "accept" | "accepted" | "yes" | "y" | "pass" | "passed" | "good" | "correct" | "true"
        | "1" => Some(true),
        "reject" | "rejected" | "no" | "n" | "fail" | "failed" | "bad" | "incorrect" | "wrong"
        | "false" | "0" => Some(false),
        _ => None,
    }
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The file's text.
    pub text: String,
    /// Items per provider.
    pub per_provider: BTreeMap<String, usize>,
    /// Outcomes that could have been exported (after `--only`).
    pub eligible: usize,
}

/// The items of a run to label, chosen per `spec`, rendered in its format.
pub fn export(store: &Store, run: &RunInfo, spec: &ExportSpec) -> Result<Exported, StoreError> {
    let mut candidates = store.export_candidates(run.id)?;
    if let Some(only) = spec.only {
        let keep: Vec<bool> = {
            let disagree = disagreeing_tasks(&candidates);
            candidates
                .iter()
                .map(|c| match only {
                    Only::Accepted => c.status == Some(GradeStatus::Accepted),
                    Only::Rejected => c.status == Some(GradeStatus::Rejected),
                    Only::Disagreements => disagree.contains(&(
                        c.key.suite.as_str(),
                        c.key.task_id.as_str(),
                        c.key.repeat,
                    )),
                })
                .collect()
        };
        let mut keep = keep.into_iter();
        candidates.retain(|_| keep.next().unwrap_or(false));
    }
    let eligible = candidates.len();
    let chosen = match spec.sample {
        Some(n) => stratified_sample(candidates, n, spec.seed),
        None => candidates,
    };
    let mut items = Vec::with_capacity(chosen.len());
    let mut per_provider: BTreeMap<String, usize> = BTreeMap::new();
    for c in chosen {
        let Some(t) = store.export_texts(run.id, &c.key)? else {
            continue;
        };
        *per_provider.entry(c.key.provider.clone()).or_default() += 1;
        items.push(Item {
            run: run.id,
            auto_verdict: match c.status {
                Some(s) => s.as_str(),
                None => "ungraded",
            },
            auto_reason: reasons(t.verdicts.as_deref()),
            output: t.output,
            vars: serde_json::from_str(&t.vars).unwrap_or(serde_json::Value::Null),
            suite: c.key.suite,
            provider: c.key.provider,
            task_id: c.key.task_id,
            repeat: c.key.repeat,
        });
    }
    Ok(Exported {
        text: formats::render(&items, spec.format),
        per_provider,
        eligible,
    })
}

/// The graders' reasons of a stored grade, `graders[i]: reason` joined by "; ".
fn reasons(verdicts: Option<&str>) -> String {
    #[derive(serde::Deserialize)]
    struct Reason {
        reason: String,
    }
    let list: Vec<Reason> = verdicts
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default();
    match list.len() {
        1 => list[0].reason.clone(),
        _ => list
            .iter()
            .enumerate()
            .map(|(i, r)| format!("graders[{i}]: {}", r.reason))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// (suite, task, repeat) to which some provider's answer was accepted and another's rejected.
fn disagreeing_tasks(c: &[crate::store::labels::ExportCandidate]) -> HashSet<(&str, &str, u32)> {
    let mut seen: HashMap<(&str, &str, u32), (bool, bool)> = HashMap::new();
    for x in c {
        let e = seen
            .entry((x.key.suite.as_str(), x.key.task_id.as_str(), x.key.repeat))
            .or_default();
        match x.status {
            Some(GradeStatus::Accepted) => e.0 = true,
            Some(GradeStatus::Rejected) => e.1 = true,
            _ => {}
        }
    }
    seen.into_iter()
        .filter(|(_, (a, r))| *a && *r)
        .map(|(k, _)| k)
        .collect()
}

/// At most `n` candidates, spread evenly across providers: each provider's candidates are
/// shuffled under `seed`, then taken one per provider in turn, so a provider with fewer
/// candidates than its share leaves the rest to the others. Returned in store order.
fn stratified_sample(
    candidates: Vec<crate::store::labels::ExportCandidate>,
    n: usize,
    seed: u64,
) -> Vec<crate::store::labels::ExportCandidate> {
    let mut by_provider: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, c) in candidates.iter().enumerate() {
        by_provider
            .entry(c.key.provider.clone())
            .or_default()
            .push(i);
    }
    // One stream per provider, so adding a provider does not change another's sample.
    let mut queues: Vec<Vec<usize>> = by_provider
        .into_values()
        .enumerate()
        .map(|(p, mut idx)| {
            let mut rng = Rng::stream(seed, p as u64);
            for i in (1..idx.len()).rev() {
                idx.swap(i, rng.index(i + 1));
            }
            idx.reverse();
            idx
        })
        .collect();
    let mut picked = Vec::with_capacity(n);
    while picked.len() < n && queues.iter().any(|q| !q.is_empty()) {
        for q in queues.iter_mut() {
            if picked.len() == n {
                break;
            }
            if let Some(i) = q.pop() {
                picked.push(i);
            }
        }
    }
    picked.sort_unstable();
    let keep: HashSet<usize> = picked.into_iter().collect();
    candidates
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, c)| c)
        .collect()
}

/// A label read from a file, before it is checked against the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// The 1-based line it starts on.
    pub line: usize,
    /// The run it names, when it names one.
    pub run: Option<i64>,
    /// The labelled outcome.
    pub key: OutcomeKey,
    /// The verdict.
    pub accepted: bool,
    /// The rater, when the file names one.
    pub rater: Option<String>,
    /// The note.
    pub note: Option<String>,
}

/// A row that could not be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    /// The 1-based line it starts on (0: the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// What a file held.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// Labels read.
    pub drafts: Vec<Draft>,
    /// Rows that could not be read.
    pub problems: Vec<RowProblem>,
    /// Items without a verdict, or without a rater (not reviewed): not labels.
    pub unreviewed: usize,
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    /// What the store changed.
    pub stored: PutSummary,
    /// Rows not imported, by line.
    pub problems: Vec<RowProblem>,
    /// Items nobody reviewed.
    pub unreviewed: usize,
    /// Runs labels were stored for.
    pub runs: Vec<i64>,
}

/// Reads a label file and stores its good rows; `run` is the run of rows that name none (and
/// must match those that do), `rater` the rater of rows that name none.
pub fn import(
    store: &mut Store,
    text: &str,
    format: LabelFormat,
    source: &str,
    run: Option<i64>,
    rater: Option<&str>,
) -> Result<Imported, StoreError> {
    let parsed = parse(text, format);
    let mut out = Imported {
        problems: parsed.problems,
        unreviewed: parsed.unreviewed,
        ..Imported::default()
    };
    let mut by_run: BTreeMap<i64, Vec<LabelRow>> = BTreeMap::new();
    let mut known_runs: HashMap<i64, bool> = HashMap::new();
    // (run, outcome, rater) → (line, position in `by_run`): a rater labels an outcome once.
    let mut seen: HashMap<(i64, OutcomeKey, String), (usize, usize)> = HashMap::new();
    for d in parsed.drafts {
        let problem = |m: String| RowProblem {
            line: d.line,
            message: m,
        };
        let Some(rater) = d.rater.clone().or_else(|| rater.map(str::to_string)) else {
            out.unreviewed += 1;
            continue;
        };
        let run_id = match (d.run, run) {
            (Some(a), Some(b)) if a != b => {
                out.problems
                    .push(problem(format!("names run {a}, but --run {b} was given")));
                continue;
            }
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => {
                out.problems.push(problem(
                    "names no run: add a `run` column or give --run ID".into(),
                ));
                continue;
            }
        };
        let exists = match known_runs.get(&run_id) {
            Some(&e) => e,
            None => {
                let e = match store.run(Some(run_id)) {
                    Ok(_) => true,
                    Err(StoreError::NoRun(_)) => false,
                    Err(e) => return Err(e),
                };
                known_runs.insert(run_id, e);
                e
            }
        };
        if !exists {
            out.problems
                .push(problem(format!("run {run_id} is not in the database")));
            continue;
        }
        if !store.answered_outcome(run_id, &d.key)? {
            let k = &d.key;
            out.problems.push(problem(format!(
                "no such outcome: run {run_id} has no answer of provider `{}` to task `{}` (repeat {}) of suite `{}`",
                k.provider, k.task_id, k.repeat, k.suite
            )));
            continue;
        }
        let label = LabelRow {
            key: d.key,
            rater,
            accepted: d.accepted,
            note: d.note,
        };
        let rows = by_run.entry(run_id).or_default();
        let id = (run_id, label.key.clone(), label.rater.clone());
        if let Some(&(first, at)) = seen.get(&id) {
            // The same label twice is harmless; two different ones are the rater's mistake.
            if rows[at] != label {
                out.problems.push(problem(format!(
                    "`{}` labelled this outcome differently on line {first}; the label on line {first} is kept",
                    label.rater
                )));
            }
            continue;
        }
        seen.insert(id, (d.line, rows.len()));
        rows.push(label);
    }
    for (run_id, rows) in by_run {
        let s = store.put_labels(run_id, &rows, source)?;
        out.stored.added += s.added;
        out.stored.changed += s.changed;
        out.stored.unchanged += s.unchanged;
        out.runs.push(run_id);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::labels::ExportCandidate;

    fn cand(provider: &str, task: &str, status: Option<GradeStatus>) -> ExportCandidate {
        ExportCandidate {
            key: OutcomeKey {
                suite: "s".into(),
                provider: provider.into(),
                task_id: task.into(),
                repeat: 0,
            },
            status,
        }
    }

    #[test]
    fn verdict_words() {
        for w in ["Accept", "yes", " PASS ", "good", "1", "true"] {
            assert_eq!(parse_verdict(w), Some(true), "{w}");
        }
        for w in ["reject", "No", "fail", "bad", "0", "incorrect"] {
            assert_eq!(parse_verdict(w), Some(false), "{w}");
        }
        assert_eq!(parse_verdict("maybe"), None);
        assert_eq!(parse_verdict(""), None);
    }

    #[test]
    fn samples_are_spread_across_providers_and_seeded() {
        let mut c = Vec::new();
        for i in 0..20 {
            c.push(cand("big", &format!("t{i:02}"), None));
        }
        for i in 0..3 {
            c.push(cand("small", &format!("t{i:02}"), None));
        }
        for i in 0..10 {
            c.push(cand("mid", &format!("t{i:02}"), None));
        }
        let s = stratified_sample(c.clone(), 12, 7);
        let count = |p: &str| s.iter().filter(|x| x.key.provider == p).count();
        // 4 each, but `small` has 3: the spare one goes to another provider.
        assert_eq!((count("big"), count("small"), count("mid")), (5, 3, 4));
        let again = stratified_sample(c.clone(), 12, 7);
        assert_eq!(
            s.iter().map(|x| &x.key).collect::<Vec<_>>(),
            again.iter().map(|x| &x.key).collect::<Vec<_>>()
        );
        let other = stratified_sample(c.clone(), 12, 8);
        assert_ne!(
            s.iter().map(|x| &x.key).collect::<Vec<_>>(),
            other.iter().map(|x| &x.key).collect::<Vec<_>>()
        );
        assert_eq!(stratified_sample(c, 100, 1).len(), 33);
    }

    #[test]
    fn disagreements_are_tasks_with_both_verdicts() {
        let c = vec![
            cand("a", "t1", Some(GradeStatus::Accepted)),
            cand("b", "t1", Some(GradeStatus::Rejected)),
            cand("a", "t2", Some(GradeStatus::Accepted)),
            cand("b", "t2", Some(GradeStatus::Accepted)),
            cand("a", "t3", Some(GradeStatus::Error)),
            cand("b", "t3", Some(GradeStatus::Rejected)),
        ];
        let d = disagreeing_tasks(&c);
        assert_eq!(d.len(), 1);
        assert!(d.contains(&("s", "t1", 0)));
    }
}
