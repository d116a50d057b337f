//! The plan of a run: its identity (the run key), what the store keeps about it, and the slots
//! still to call.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::providers::ProviderConfig;
use crate::store::SlotKey;
use crate::store::plan::{ProviderPlan, RunPlan, SuitePlan};
use crate::suite::{Suite, Task, canonical_json};

/// One unit of work: a task sample for one provider.
pub struct Slot<'a> {
    /// Its suite.
    pub suite: &'a Suite,
    /// Its task.
    pub task: &'a Task,
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
                tasks: s.tasks.len() as u64,
                fingerprint: s.fingerprint.clone(),
                runtime_graders: s.runtime_graders.clone(),
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
        .map(|s| s.tasks.len() as u64 * u64::from(s.repeats))
        .sum()
}

/// The slots of one provider that have no answer yet, in plan order.
pub fn pending_slots<'a>(
    suites: &'a [Suite],
    progress: &'a HashMap<SlotKey, (bool, u32)>,
    provider: &'a str,
) -> impl Iterator<Item = Slot<'a>> + 'a {
    suites.iter().flat_map(move |suite| {
        suite.tasks.iter().flat_map(move |task| {
            (0..suite.repeats).filter_map(move |repeat| {
                let (done, next_try) = if progress.is_empty() {
                    (false, 0)
                } else {
                    let k = (
                        suite.name.clone(),
                        provider.to_string(),
                        task.id.clone(),
                        repeat,
                    );
                    progress.get(&k).copied().unwrap_or((false, 0))
                };
                (!done).then_some(Slot {
                    suite,
                    task,
                    repeat,
                    next_try,
                })
            })
        })
    })
}
