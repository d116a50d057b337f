//! The per-task drill-down of a run: for each sample (task × repeat), every provider's answer
//! side by side with each grader's verdict and reason, tokens, cost and latency.
//!
//! Verdicts, costs and latencies come from the [`RunAnalysis`] (the one place that
//! aggregates); answers, tokens and grader reasons from the store's last try of each outcome.
//! Samples are grouped by how the providers fared (one accepted and another rejected first,
//! then other disagreements, then all failed, then all accepted), and a report holds at most
//! [`MAX_SAMPLES`] of them, [`MAX_CELLS`] provider outcomes and [`OUTPUT_BUDGET`] bytes of
//! escaped answer text and task variables, in that order of
//! interest, so a huge run still gives a file a browser opens (10,000 tasks × 3 providers
//! stay under 25 MB); what is left out is counted.

use std::collections::{BTreeMap, BinaryHeap, HashMap};

use serde::Serialize;

use crate::analysis::{OutcomeFacts, RunAnalysis, Verdict};
use crate::grade::Verdict as GraderVerdict;
use crate::store::details::OutcomeDetail;
use crate::store::{Store, StoreError};

/// Characters of one answer (and of a task's variables) kept; longer ones are cut with a note.
pub const MAX_CHARS: usize = 1_500;
/// Samples a drill-down holds at most.
pub const MAX_SAMPLES: usize = 12_000;
/// Provider outcomes a drill-down holds at most (each costs some markup even without text).
pub const MAX_CELLS: usize = 36_000;
/// Bytes of answers and task variables, HTML-escaped, a drill-down holds at most; those beyond
/// it are left out, counted.
pub const OUTPUT_BUDGET: usize = 9_000_000;

/// How the providers fared on one sample, in order of interest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// Some provider's answer was accepted and another's rejected (or not answered).
    Split,
    /// The providers' verdicts differ otherwise (say, rejected vs a grader error).
    Disagree,
    /// Every provider failed the same way.
    AllFailed,
    /// Every provider's answer was accepted.
    AllAccepted,
}

impl Group {
    /// A heading for the group.
    pub fn title(self) -> &'static str {
        match self {
            Group::Split => "Accepted from one provider, rejected from another",
            Group::Disagree => "Providers disagree otherwise (rejected, unanswered, grader error)",
            Group::AllFailed => "Every provider failed",
            Group::AllAccepted => "Every provider's answer accepted",
        }
    }
}

/// One provider's outcome of a sample.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Provider id.
    pub provider: String,
    /// How it ended; `None` when this provider has no outcome for the sample yet.
    pub verdict: Option<Verdict>,
    /// The outcome's cost and latency from the analysis.
    pub facts: Option<OutcomeFacts>,
    /// The last try as stored; `None` when not read (not attempted).
    pub detail: Option<OutcomeDetail>,
    /// The answer was left out to keep the report's size (see [`OUTPUT_BUDGET`]).
    pub output_omitted: bool,
    /// Each grader's verdict, in grader order.
    pub graders: Vec<GraderVerdict>,
}

/// One sample (task × repeat) with every provider's outcome.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Suite name.
    pub suite: String,
    /// Task id.
    pub task_id: String,
    /// Sample number.
    pub repeat: u32,
    /// How the providers fared.
    pub group: Group,
    /// Whether some provider's outcome was not accepted.
    pub failure: bool,
    /// One per provider of the suite, in plan order.
    pub cells: Vec<Cell>,
}

/// The drill-down of a run.
#[derive(Debug, Clone, Default)]
pub struct Drilldown {
    /// Samples in order of interest: by group, then suite, task and repeat.
    pub samples: Vec<Sample>,
    /// Samples per group in the whole run (shown or not).
    pub totals: BTreeMap<Group, u64>,
    /// Samples left out beyond [`MAX_SAMPLES`].
    pub samples_omitted: u64,
    /// Answers (and task variables) left out beyond [`OUTPUT_BUDGET`].
    pub outputs_omitted: u64,
}

/// A sample while [`Drilldown::select`] chooses: ordered by (group, suite, task, repeat).
struct Candidate {
    key: (Group, usize, u32, u32),
    facts: Vec<Option<OutcomeFacts>>,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

/// The group of a sample from its providers' verdicts.
pub fn group_of(verdicts: &[Verdict]) -> Group {
    let accepted = verdicts.contains(&Verdict::Accepted);
    let rejected = verdicts
        .iter()
        .any(|v| matches!(v, Verdict::Rejected | Verdict::Unanswered));
    if accepted && rejected {
        Group::Split
    } else if verdicts.windows(2).any(|w| w[0] != w[1]) {
        Group::Disagree
    } else if accepted {
        Group::AllAccepted
    } else {
        Group::AllFailed
    }
}

impl Drilldown {
    /// Chooses the samples of `analysis` to show and reads their last tries from the store.
    pub fn load(store: &Store, analysis: &RunAnalysis) -> Result<Drilldown, StoreError> {
        let mut d = Drilldown::select(analysis, MAX_SAMPLES);
        // (suite, task id, repeat) → sample; provider → column, per suite.
        let mut index: HashMap<&str, HashMap<(String, u32), usize>> = HashMap::new();
        for (i, s) in d.samples.iter().enumerate() {
            index
                .entry(s.suite.as_str())
                .or_default()
                .insert((s.task_id.clone(), s.repeat), i);
        }
        let mut found: Vec<(usize, OutcomeDetail)> = Vec::new();
        store.for_each_detail(analysis.run.id, MAX_CHARS, |o| {
            if let Some(&i) = index
                .get(o.suite.as_str())
                .and_then(|m| m.get(&(o.task_id.clone(), o.repeat)))
            {
                found.push((i, o));
            }
        })?;
        drop(index);
        for (i, o) in found {
            let sample = &mut d.samples[i];
            if let Some(c) = sample.cells.iter_mut().find(|c| c.provider == o.provider) {
                c.graders = o
                    .verdicts
                    .as_deref()
                    .and_then(|v| serde_json::from_str(v).ok())
                    .unwrap_or_default();
                c.detail = Some(o);
            }
        }
        d.apply_budget(OUTPUT_BUDGET);
        Ok(d)
    }

    /// The samples to show, in order of interest, without their stored details.
    ///
    /// Each suite's rows are merged in (task, repeat) order and only the `max_samples` most
    /// interesting samples are held while the rest stream by: holding every sample first took
    /// 166 MB at 100,000 outcomes.
    pub fn select(analysis: &RunAnalysis, max_samples: usize) -> Drilldown {
        let mut d = Drilldown::default();
        let mut suites: Vec<&str> = Vec::new();
        for r in &analysis.rows {
            if !suites.contains(&r.figures.suite.as_str()) {
                suites.push(&r.figures.suite);
            }
        }
        // A max-heap on the order of interest: its top is the first to give up.
        let mut best: BinaryHeap<Candidate> = BinaryHeap::with_capacity(max_samples + 1);
        let mut total = 0u64;
        for (si, suite) in suites.iter().enumerate() {
            let rows: Vec<_> = analysis
                .rows
                .iter()
                .filter(|r| r.figures.suite == *suite)
                .collect();
            // Each row's outcomes are sorted by (task, repeat): merge them.
            let mut next = vec![0usize; rows.len()];
            loop {
                let key = |pi: usize| {
                    rows[pi]
                        .outcomes
                        .get(next[pi])
                        .map(|o| (o.task_idx, o.repeat))
                };
                let Some((task, repeat)) = (0..rows.len()).filter_map(key).min() else {
                    break;
                };
                let facts: Vec<Option<OutcomeFacts>> = (0..rows.len())
                    .map(|pi| {
                        let o = rows[pi].outcomes.get(next[pi]).copied();
                        let here = o.filter(|o| (o.task_idx, o.repeat) == (task, repeat));
                        next[pi] += usize::from(here.is_some());
                        here
                    })
                    .collect();
                let verdicts: Vec<Verdict> = facts.iter().flatten().map(|f| f.verdict).collect();
                let group = group_of(&verdicts);
                *d.totals.entry(group).or_default() += 1;
                total += 1;
                let key = (group, si, task, repeat);
                if best.len() == max_samples && best.peek().is_none_or(|top| key >= top.key) {
                    continue;
                }
                best.push(Candidate { key, facts });
                if best.len() > max_samples {
                    best.pop();
                }
            }
        }
        let chosen = best.into_sorted_vec();
        let mut cells = 0;
        let keep = chosen
            .iter()
            .take_while(|c| {
                cells += c.facts.len();
                cells <= MAX_CELLS
            })
            .count();
        d.samples_omitted = total - keep as u64;
        d.samples = chosen
            .into_iter()
            .take(keep)
            .map(
                |Candidate {
                     key: (group, si, task, repeat),
                     facts,
                 }| {
                    let suite = suites[si].to_string();
                    let providers = analysis.rows.iter().filter(|r| r.figures.suite == suite);
                    let cells: Vec<Cell> = providers
                        .zip(facts)
                        .map(|(r, f)| Cell {
                            provider: r.figures.provider.clone(),
                            verdict: f.map(|f| f.verdict),
                            facts: f,
                            detail: None,
                            output_omitted: false,
                            graders: Vec::new(),
                        })
                        .collect();
                    let task_id = analysis
                        .task_ids
                        .get(&suite)
                        .and_then(|ids| ids.get(task as usize))
                        .cloned()
                        .unwrap_or_default();
                    Sample {
                        suite,
                        task_id,
                        repeat,
                        group,
                        failure: cells.iter().any(|c| c.verdict != Some(Verdict::Accepted)),
                        cells,
                    }
                },
            )
            .collect();
        d
    }

    /// Leaves out answers and task variables once `budget` bytes of them (as HTML-escaped)
    /// are kept, in order of interest.
    fn apply_budget(&mut self, budget: usize) {
        let mut used = 0usize;
        for s in &mut self.samples {
            // The variables are shown once per sample, from its first read cell.
            let mut vars_counted = false;
            for c in &mut s.cells {
                let Some(d) = c.detail.as_mut() else { continue };
                let vars = if vars_counted {
                    0
                } else {
                    escaped_len(&d.vars)
                };
                vars_counted = true;
                let need = escaped_len(&d.output) + vars;
                if need == 0 {
                    continue;
                }
                if used + need > budget {
                    d.output = String::new();
                    d.vars = String::new();
                    c.output_omitted = true;
                    self.outputs_omitted += 1;
                } else {
                    used += need;
                }
            }
        }
    }
}

/// The length of `s` once HTML-escaped as minijinja escapes (`&<>"'/`).
pub fn escaped_len(s: &str) -> usize {
    s.len()
        + s.bytes()
            .map(|b| match b {
                b'&' => 4,
                b'<' | b'>' => 3,
                b'"' | b'\'' | b'/' => 5,
                _ => 0,
            })
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    fn cell(output: &str) -> Cell {
        Cell {
            provider: "p".into(),
            verdict: Some(Accepted),
            facts: None,
            detail: Some(OutcomeDetail {
                suite: "s".into(),
                provider: "p".into(),
                task_id: "t".into(),
                repeat: 0,
                output: output.into(),
                output_chars: output.chars().count() as u64,
                error_kind: None,
                error_message: None,
                prompt_tokens: 1,
                output_tokens: 1,
                verdicts: None,
                grade_error: None,
                vars: "{}".into(),
            }),
            output_omitted: false,
            graders: Vec::new(),
        }
    }

    #[test]
    fn the_output_budget_keeps_answers_in_order_of_interest_and_counts_the_rest() {
        let sample = |group, outputs: &[&str]| Sample {
            suite: "s".into(),
            task_id: "t".into(),
            repeat: 0,
            group,
            failure: false,
            cells: outputs.iter().map(|o| cell(o)).collect(),
        };
        let mut d = Drilldown {
            samples: vec![
                sample(Group::Split, &["aaaa", "bbbb"]),
                sample(Group::AllAccepted, &["cccc", ""]),
            ],
            ..Drilldown::default()
        };
        d.apply_budget(9 + 2);
        let kept: Vec<(&str, bool)> = d
            .samples
            .iter()
            .flat_map(|s| &s.cells)
            .map(|c| (c.detail.as_ref().unwrap().output.as_str(), c.output_omitted))
            .collect();
        // The variables `{}` (2 bytes) and 4 + 4 bytes fit in 11; the third answer does not;
        // an empty answer is not "left out".
        assert_eq!(
            kept,
            [("aaaa", false), ("bbbb", false), ("", true), ("", false)]
        );
        assert_eq!(d.outputs_omitted, 1);
        assert_eq!(escaped_len("a<b>\"c\"&'/"), 3 + 2 * 4 + 2 * 6 + 5 + 2 * 6);
    }

    #[test]
    fn groups_put_accepted_against_rejected_first() {
        assert_eq!(group_of(&[Accepted, Rejected]), Group::Split);
        assert_eq!(group_of(&[Unanswered, Accepted]), Group::Split);
        assert_eq!(group_of(&[Accepted, GraderError]), Group::Disagree);
        assert_eq!(group_of(&[Rejected, Unanswered]), Group::Disagree);
        assert_eq!(group_of(&[Rejected, Rejected]), Group::AllFailed);
        assert_eq!(group_of(&[Accepted, Accepted]), Group::AllAccepted);
        assert!(Group::Split < Group::Disagree && Group::AllFailed < Group::AllAccepted);
    }

    /// A sample as the test expects it: group, suite, task id, repeat, verdicts.
    type Expected<'a> = (Group, &'a str, String, u32, Vec<Option<Verdict>>);

    #[test]
    fn select_keeps_the_samples_a_full_sort_would_keep() {
        use crate::analysis::{OutcomeFacts, test_facts as facts, test_row};
        let verdicts = [
            Accepted,
            Rejected,
            Unanswered,
            GraderError,
            Accepted,
            Accepted,
        ];
        // Two suites; the providers of "a" lack some samples the other has.
        let mut rows = Vec::new();
        for (suite, providers, tasks) in [("a", 3u32, 40u32), ("b", 2, 25)] {
            for p in 0..providers {
                let outcomes: Vec<OutcomeFacts> = (0..tasks)
                    .flat_map(|t| (0..2).map(move |r| (t, r)))
                    .filter(|(t, r)| (t + r + p) % 7 != 3)
                    .map(|(t, r)| facts(t, r, verdicts[((t * 3 + r + p * 5) % 6) as usize]))
                    .collect();
                rows.push(test_row(suite, &format!("p{p}"), &outcomes));
            }
        }
        let mut analysis = RunAnalysis {
            run: crate::store::RunInfo {
                id: 1,
                created_at: String::new(),
                finished_at: None,
                status: crate::store::RunStatus::Complete,
                cache_mode: "off".into(),
                plan: serde_json::from_value(serde_json::json!({"suites": [], "providers": []}))
                    .unwrap(),
            },
            options: Default::default(),
            rows,
            task_ids: HashMap::new(),
            agreement: None,
            graders: Default::default(),
        };
        for (suite, tasks) in [("a", 40), ("b", 25)] {
            let ids = (0..tasks).map(|t| format!("{suite}{t}")).collect();
            analysis.task_ids.insert(suite.to_string(), ids);
        }
        // The reference: every sample, sorted by interest.
        let mut all: BTreeMap<(usize, u32, u32), Vec<Option<Verdict>>> = BTreeMap::new();
        for (si, suite) in ["a", "b"].iter().enumerate() {
            let rows: Vec<_> = analysis
                .rows
                .iter()
                .filter(|r| r.figures.suite == *suite)
                .collect();
            for (pi, r) in rows.iter().enumerate() {
                for o in &r.outcomes {
                    all.entry((si, o.task_idx, o.repeat))
                        .or_insert_with(|| vec![None; rows.len()])[pi] = Some(o.verdict);
                }
            }
        }
        let mut expected: Vec<Expected<'_>> = all
            .into_iter()
            .map(|((si, t, r), v)| {
                let suite = ["a", "b"][si];
                let group = group_of(&v.iter().flatten().copied().collect::<Vec<_>>());
                (group, suite, format!("{suite}{t}"), r, v)
            })
            .collect();
        let total = expected.len();
        expected.sort_by_key(|e| {
            (
                e.0,
                e.1,
                analysis.task_ids[e.1].iter().position(|i| *i == e.2),
                e.3,
            )
        });
        for max in [0, 1, 17, 60, total, total + 5] {
            let d = Drilldown::select(&analysis, max);
            let got: Vec<_> = d
                .samples
                .iter()
                .map(|s| {
                    let v: Vec<_> = s.cells.iter().map(|c| c.verdict).collect();
                    (s.group, s.suite.as_str(), s.task_id.clone(), s.repeat, v)
                })
                .collect();
            assert_eq!(got, expected[..max.min(total)], "max {max}");
            assert_eq!(d.samples_omitted as usize, total - got.len());
            assert_eq!(d.totals.values().sum::<u64>() as usize, total);
        }
    }
}
