//! The plan of a run: its identity (the run key), what the store keeps about it, and the slots
//! still to call.
//!
//! Slots are read from the run's task list in the store a page at a time, so a run holds a
//! page of tasks per provider however large its suites. Each suite's tasks are called in
//! task-id order, the order of the task list's key; the attempts index then grows at its end
//! instead of at random places, which kept large runs' writes from slowing down as they grew.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::providers::ProviderConfig;
use crate::store::plan::{ProviderPlan, RunPlan, SuitePlan};
use crate::store::{PAGE_SLOTS, SlotProgress, Store, StoreError};
use crate::suite::{Suite, Task, canonical_json};

/// One unit of work: a task sample for one provider.
pub struct Slot<'a> {
    /// Its suite.
    pub suite: &'a Suite,
    /// Its task (shared by its repeats).
    pub task: Arc<Task>,
    /// Sample number.
    pub repeat: u32,
    /// The next try number (continues across resumes).
    pub next_try: u32,
}

/// The identity of a run's inputs; equal inputs resume the same run.
pub fn run_key(suites: &[Suite], providers: &[ProviderConfig]) -> String {
    let mut h = Sha256::new();
    for s in suites {
        h.update(s.fingerprint.as_bytes());
    }
    for p in providers {
        // Serialized to a JSON value first, so the key does not depend on field order.
        let v = serde_json::to_value(provider_plan(p)).unwrap_or_default();
        h.update(canonical_json(&v).as_bytes());
    }
    hex::encode(h.finalize())
}

/// What the store keeps about a provider: everything but secrets.
fn provider_plan(p: &ProviderConfig) -> ProviderPlan {
    ProviderPlan {
        id: p.id.clone(),
        protocol: p.protocol.clone(),
        base_url: p.base_url.clone(),
        model: p.model.clone(),
        api_key_env: p.api_key_env.clone(),
        price: p.price.clone(),
        tags: p.tags.clone(),
    }
}

/// The plan stored with a run.
pub fn run_plan(suites: &[Suite], providers: &[ProviderConfig]) -> RunPlan {
    RunPlan {
        suites: suites
            .iter()
            .map(|s| SuitePlan {
                name: s.name.clone(),
                description: s.description.clone(),
                // Absolute, so `costbench grade` finds it from any working directory.
                path: std::path::absolute(&s.path).unwrap_or_else(|_| s.path.clone()),
                workload: s.workload.clone(),
                quality_threshold: s.quality_threshold,
                margin: s.margin,
                rejection_cost_femto: s.rejection_cost,
                repeats: s.repeats,
                tasks: s.task_count,
                fingerprint: s.fingerprint.clone(),
                runtime_graders: s.runtime_graders.clone(),
                grader_kinds: s.graders.iter().map(|g| g.kind().to_string()).collect(),
                max_tokens: crate::providers::bound::completion_cap(&serde_json::Value::Object(
                    s.params.clone(),
                )),
            })
            .collect(),
        providers: providers.iter().map(provider_plan).collect(),
    }
}

/// Every slot of the plan.
pub fn slots_in(suites: &[Suite]) -> u64 {
    suites
        .iter()
        .map(|s| s.task_count.saturating_mul(u64::from(s.repeats)))
        .sum()
}

/// Where every provider's pending slots are read from.
pub struct SlotSource<'a> {
    /// The run's suites, in plan order.
    pub suites: &'a [Suite],
    /// The run's reader connection, shared: it is locked for one page at a time, so the
    /// connections and their page caches do not multiply with the providers.
    pub store: &'a Mutex<Store>,
    /// The run.
    pub run_id: i64,
    /// Whether earlier sessions may have answered slots (a fresh run has no attempts).
    pub resumed: bool,
    /// Where a store error that ended an iteration early is left.
    pub failure: Mutex<Option<StoreError>>,
}

impl<'a> SlotSource<'a> {
    /// The slots of `provider` that have no answer yet.
    pub fn pending(&'a self, provider: &'a str) -> PendingSlots<'a> {
        PendingSlots {
            source: self,
            provider,
            suite: 0,
            after: None,
            queue: VecDeque::new(),
        }
    }
}

/// The slots of one provider that have no answer yet, paged from the store's task list (see
/// the module docs).
pub struct PendingSlots<'a> {
    source: &'a SlotSource<'a>,
    provider: &'a str,
    /// The suite being read, and the last task id read from it.
    suite: usize,
    after: Option<String>,
    queue: VecDeque<Slot<'a>>,
}

impl<'a> PendingSlots<'a> {
    /// Reads the next page of tasks into the queue; moves to the next suite at the end of one.
    fn fill(&mut self) -> Result<(), StoreError> {
        let src = self.source;
        let suite = &src.suites[self.suite];
        let per_page = (PAGE_SLOTS / suite.repeats.max(1) as usize).max(1);
        let (tasks, progress) = {
            let store = src.store.lock().unwrap_or_else(|e| e.into_inner());
            let tasks =
                store.tasks_page(src.run_id, &suite.name, self.after.as_deref(), per_page)?;
            let progress = match (tasks.first(), tasks.last()) {
                (Some(first), Some(last)) if src.resumed => store.slot_progress(
                    src.run_id,
                    &suite.name,
                    self.provider,
                    (&first.id, &last.id),
                )?,
                _ => HashMap::new(),
            };
            (tasks, progress)
        };
        let Some(last) = tasks.last() else {
            self.suite += 1;
            self.after = None;
            return Ok(());
        };
        self.after = Some(last.id.clone());
        for task in tasks {
            let task = Arc::new(task);
            for repeat in 0..suite.repeats {
                let p = if progress.is_empty() {
                    None
                } else {
                    progress.get(&(task.id.clone(), repeat))
                };
                let p = p.copied().unwrap_or(SlotProgress {
                    answered: false,
                    next_try: 0,
                });
                if !p.answered {
                    self.queue.push_back(Slot {
                        suite,
                        task: task.clone(),
                        repeat,
                        next_try: p.next_try,
                    });
                }
            }
        }
        Ok(())
    }
}

impl<'a> Iterator for PendingSlots<'a> {
    type Item = Slot<'a>;

    fn next(&mut self) -> Option<Slot<'a>> {
        loop {
            if let Some(slot) = self.queue.pop_front() {
                return Some(slot);
            }
            if self.suite >= self.source.suites.len() {
                return None;
            }
            if let Err(e) = self.fill() {
                self.source
                    .failure
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(e);
                self.suite = self.source.suites.len();
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AttemptRow, WriteOp, Writer};

    // A resumed run reads its slots a page at a time: across several pages, every slot
    // without an answer comes exactly once with its next try number, and no answered slot
    // comes again (that would pay twice).
    #[test]
    fn a_resumed_run_pages_exactly_the_unanswered_slots() {
        let dir = tempfile::tempdir().unwrap();
        let tasks: String = (0..1500)
            .map(|i| format!("{{\"id\": \"t{i}\", \"vars\": {{\"q\": \"{i}\"}}}}\n"))
            .collect();
        std::fs::write(dir.path().join("tasks.jsonl"), tasks).unwrap();
        let path = dir.path().join("suite.yaml");
        std::fs::write(
            &path,
            "suite: s\nrepeats: 2\nprompt:\n  user: \"{{ q }}\"\ngraders:\n  - {type: contains, value: x}\ntasks_file: tasks.jsonl\n",
        )
        .unwrap();
        let suites = [crate::suite::load_suite(&path).unwrap()];
        let db = dir.path().join("r.db");
        let mut store = Store::open(&db).unwrap();
        let plan: RunPlan = serde_json::from_str(r#"{"suites": [], "providers": []}"#).unwrap();
        let new = store.begin_run("k", "rw", &plan).unwrap();
        suites[0]
            .for_each_task(|i, t| {
                new.add_task("s", i, &t.id, &t.vars_json)
                    .map_err(crate::run::RunError::from)
            })
            .unwrap();
        let run_id = new.commit().unwrap();

        // Provider p: t{i} answered on both repeats when i % 3 == 0; repeat 1 failed once
        // (unanswered) when i % 3 == 1; the rest never tried. Provider q answered everything.
        let writer = Writer::start(&db, dir.path().join("spill")).unwrap();
        let tx = writer.sender();
        let attempt = |provider: &str, i: usize, repeat: u32, answered: bool| {
            WriteOp::Attempt(Box::new(AttemptRow {
                run_id,
                suite: "s".into(),
                provider: provider.into(),
                task_id: format!("t{i}"),
                repeat,
                answered,
                is_final: true,
                ..AttemptRow::default()
            }))
        };
        for i in 0..1500 {
            match i % 3 {
                0 => {
                    tx.blocking_send(attempt("p", i, 0, true)).unwrap();
                    tx.blocking_send(attempt("p", i, 1, true)).unwrap();
                }
                1 => tx.blocking_send(attempt("p", i, 1, false)).unwrap(),
                _ => {}
            }
            tx.blocking_send(attempt("q", i, 0, true)).unwrap();
            tx.blocking_send(attempt("q", i, 1, true)).unwrap();
        }
        drop(tx);
        writer.finish().unwrap();

        let source = SlotSource {
            suites: &suites,
            store: &Mutex::new(store),
            run_id,
            resumed: true,
            failure: Mutex::new(None),
        };
        let mut got: Vec<(String, u32, u32)> = source
            .pending("p")
            .map(|s| (s.task.id.clone(), s.repeat, s.next_try))
            .collect();
        got.sort();
        let mut want: Vec<(String, u32, u32)> = (0..1500)
            .flat_map(|i| match i % 3 {
                0 => vec![],
                1 => vec![(format!("t{i}"), 0, 0), (format!("t{i}"), 1, 1)],
                _ => vec![(format!("t{i}"), 0, 0), (format!("t{i}"), 1, 0)],
            })
            .collect();
        want.sort();
        assert_eq!(got.len(), 2000);
        assert_eq!(got, want);
        assert_eq!(source.pending("q").count(), 0);
        assert!(source.failure.lock().unwrap().is_none());
    }
}
