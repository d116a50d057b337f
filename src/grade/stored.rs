//! Grading stored answers: reads answers from the store in chunks, grades them in parallel on
//! rayon's pool (never on the tokio threads), and writes the grades back. Used at the end of a
//! run and by `costbench grade` after a grader change; it never calls a provider.

use std::collections::HashMap;

use super::{CompiledGrader, GradeInput, Vars, grade_all};
use crate::store::{GradeRow, Store, StoreError};

/// Answers read and graded per chunk; bounds memory on large runs.
const CHUNK: usize = 1024;

/// Counts from a grading pass.
#[derive(Debug, Default, Clone, Copy)]
pub struct GradeSummary {
    /// Answers graded.
    pub graded: u64,
    /// Of which accepted.
    pub accepted: u64,
    /// Of which a grader could not run (not judged; see [`super::GradeStatus::Error`]).
    pub errors: u64,
    /// Answers of suites with no graders given (left as they were).
    pub skipped: u64,
}

/// Grades a run's answers with each suite's graders; `regrade` replaces existing grades.
pub fn grade_run(
    store: &mut Store,
    run_id: i64,
    graders: &HashMap<String, &[CompiledGrader]>,
    regrade: bool,
) -> Result<GradeSummary, StoreError> {
    let mut sum = GradeSummary::default();
    let Some((first, last)) = store.attempt_ids(run_id)? else {
        return Ok(sum);
    };
    let mut after = first - 1;
    loop {
        let answers = store.answers(run_id, !regrade, (after, last), CHUNK)?;
        let Some(last) = answers.last() else { break };
        after = last.attempt_id;
        let vars: Vec<Vars> = answers
            .iter()
            .map(|a| serde_json::from_str(&a.vars).unwrap_or_default())
            .collect();
        let mut rows = Vec::with_capacity(answers.len());
        // grade_all takes one grader list, so group the chunk by suite.
        let mut by_suite: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, a) in answers.iter().enumerate() {
            by_suite.entry(a.suite.as_str()).or_default().push(i);
        }
        for (suite, idx) in by_suite {
            let Some(gs) = graders.get(suite) else {
                sum.skipped += idx.len() as u64;
                continue;
            };
            let items: Vec<GradeInput<'_>> = idx
                .iter()
                .map(|&i| GradeInput {
                    output: &answers[i].output,
                    vars: &vars[i],
                    provider: &answers[i].provider,
                })
                .collect();
            for (&i, outcome) in idx.iter().zip(grade_all(gs, &items)) {
                sum.graded += 1;
                sum.accepted += u64::from(outcome.accepted);
                sum.errors += u64::from(outcome.error.is_some());
                let verdicts = serde_json::to_string(&outcome.verdicts).unwrap_or_default();
                rows.push((
                    &answers[i],
                    GradeRow {
                        attempt_id: answers[i].attempt_id,
                        status: outcome.status(),
                        error: outcome.error.clone(),
                        verdicts,
                    },
                ));
            }
        }
        store.put_grades(run_id, &rows)?;
    }
    Ok(sum)
}
