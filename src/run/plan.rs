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
