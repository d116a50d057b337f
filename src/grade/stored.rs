//! Grading stored answers: reads answers from the store in chunks, grades them with the local
//! graders in parallel on rayon's pool (never on the tokio threads) and with the judges
//! concurrently on tokio, composes each suite's verdicts, and writes the grades back with
//! their judge cost and grader set. Used at the end of a run and by `costbench grade` after a
//! grader change; it never calls a candidate provider, and a judge only for an answer the
//! record/replay cache does not hold.

use std::collections::HashMap;

use super::judge::{Judged, Judges};
use super::{CompiledGrader, Composition, GradeInput, Vars, grade_local};
use crate::providers::Tally;
use crate::store::{GradeRow, Store, StoreError};

/// Answers read and graded per chunk; bounds memory on large runs.
const CHUNK: usize = 1024;

/// What grading needs of one suite.
#[derive(Debug, Clone, Copy)]
pub struct SuiteGrading<'a> {
    /// The compiled graders, in order.
    pub graders: &'a [CompiledGrader],
    /// How their verdicts make an accepted outcome.
    pub composition: &'a Composition,
    /// The grader set's fingerprint and JSON, stored with every grade.
    pub grader_set: &'a (String, String),
}

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
    /// Judge calls sent to a provider now (tries, retries included).
    pub judge_calls: u64,
    /// Judge answers replayed from the cache.
    pub judge_replayed: u64,
    /// Outputs left ungraded because a judge call could have passed the spend cap.
    pub capped: u64,
}

/// Stops the graders' persistent workers when dropped.
struct StopWorkers<'s, 'a>(&'s HashMap<String, SuiteGrading<'a>>);

impl Drop for StopWorkers<'_, '_> {
    fn drop(&mut self) {
        for g in self.0.values().flat_map(|s| s.graders) {
            g.stop_workers();
        }
    }
}

/// Grades a run's answers with each suite's graders; `regrade` replaces existing grades.
pub fn grade_run(
    store: &mut Store,
    run_id: i64,
    suites: &HashMap<String, SuiteGrading<'_>>,
    judges: &mut Judges,
    regrade: bool,
) -> Result<GradeSummary, StoreError> {
    // Persistent `command` workers live for this pass only, however it ends.
    let _stop = StopWorkers(suites);
    let mut sum = GradeSummary::default();
    for s in suites.values() {
        store.put_grader_set(&s.grader_set.0, &s.grader_set.1)?;
    }
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
        let mut calls = Vec::new();
        let mut records = Vec::new();
        // The graders differ per suite, so the chunk is graded suite by suite.
        let mut by_suite: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, a) in answers.iter().enumerate() {
            by_suite.entry(a.suite.as_str()).or_default().push(i);
        }
        for (suite, idx) in by_suite {
            let Some(sg) = suites.get(suite) else {
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
            let mut local = grade_local(sg.graders, &items);
            // Judges: every (item, judge grader) request, resolved concurrently.
            let mut reqs = Vec::new();
            let mut judge_cost: Vec<Option<Tally>> = vec![None; idx.len()];
            for (k, &i) in idx.iter().enumerate() {
                let a = &answers[i];
                for (j, g) in sg.graders.iter().enumerate() {
                    let Some(jg) = g.as_judge() else { continue };
                    judge_cost[k].get_or_insert_with(Tally::default);
                    let judged = Judged {
                        attempt_id: a.attempt_id,
                        run_id,
                        suite,
                        task_id: &a.task_id,
                        repeat: a.repeat,
                        output: &a.output,
                        vars: &vars[i],
                    };
                    match judges.prepare(store, jg, (k, j), &judged)? {
                        Ok(r) => reqs.push(r),
                        Err(why) => {
                            local[k][j] = Some(super::Verdict {
                                passed: false,
                                reason: format!("error: {why}"),
                                error: Some(why),
                                score: None,
                                detail: None,
                            })
                        }
                    }
                }
            }
            let mut capped = vec![false; idx.len()];
            for r in judges.run(sg.graders, reqs) {
                capped[r.item] |= r.capped;
                if let Some(t) = judge_cost[r.item].as_mut() {
                    t.merge(&r.cost);
                }
                for c in &r.calls {
                    if c.row.replayed {
                        sum.judge_replayed += 1;
                    } else if c.row.delivery.is_call() {
                        sum.judge_calls += 1;
                    }
                }
                local[r.item][r.grader] = Some(r.verdict);
                calls.extend(r.calls);
                records.extend(r.answers);
            }
            for (k, (&i, verdicts)) in idx.iter().zip(local).enumerate() {
                if capped[k] {
                    // No grade: a resume with a higher cap grades it (its judge calls made so
                    // far replay from the cache, free).
                    sum.capped += 1;
                    continue;
                }
                let verdicts = verdicts
                    .into_iter()
                    .map(|v| {
                        v.unwrap_or_else(|| super::Verdict {
                            passed: false,
                            reason: "error: the judge gave no verdict".into(),
                            error: Some("the judge gave no verdict".into()),
                            score: None,
                            detail: None,
                        })
                    })
                    .collect();
                let outcome = sg.composition.outcome(verdicts);
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
                        judge_cost: judge_cost[k].map(|t| (t.known, t.unknown)),
                        grader_set: Some(sg.grader_set.0.clone()),
                    },
                ));
            }
        }
        // Judge calls and their answers first: a grade never refers to an unrecorded call.
        if !calls.is_empty() || !records.is_empty() {
            store.put_judge_calls(run_id, &calls, &records)?;
        }
        store.put_grades(run_id, &rows)?;
    }
    Ok(sum)
}
