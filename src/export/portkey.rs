//! A Portkey gateway config (reference/routing-formats.md §b): a `conditional` strategy on
//! `metadata.workload_class`, and per class a `fallback` target over the choice's providers
//! then its fallbacks. A cascade is written as the fallback order of its steps with status 446
//! (an output guardrail denied the answer) among `on_status_codes`: it escalates on a bad answer
//! only when an output guardrail mirrors the suite's runtime checks.

use serde::Serialize;
use serde_json::{Value, json};

use crate::route::{ClassVerdict, Kind, RoutePlan};

#[derive(Serialize)]
struct Target {
    provider: String,
    override_params: Value,
}

/// Renders the config as JSON.
pub fn render(plan: &RoutePlan) -> String {
    let mut conditions = Vec::new();
    let mut targets = Vec::new();
    for c in &plan.classes {
        let Some(f) = c
            .choice
            .as_ref()
            .filter(|_| c.verdict != ClassVerdict::NoneQualifies)
        else {
            continue;
        };
        let mut order: Vec<&str> = f.providers.iter().map(String::as_str).collect();
        for fb in &c.fallbacks {
            if !order.contains(&fb.providers[0].as_str()) {
                order.push(&fb.providers[0]);
            }
        }
        let inner: Vec<Target> = order
            .iter()
            .map(|id| Target {
                provider: format!("@{id}"),
                override_params: json!({
                    "model": plan.providers.iter().find(|p| p.id == *id).map_or(*id, |p| p.model.as_str())
                }),
            })
            .collect();
        let mut codes = vec![429, 500, 502, 503, 504];
        if f.kind == Kind::Cascade {
            codes.insert(1, 446);
        }
        conditions.push(json!({
            "query": {"metadata.workload_class": {"$eq": c.workload}},
            "then": c.workload,
        }));
        targets.push(json!({
            "name": c.workload,
            "strategy": {"mode": "fallback", "on_status_codes": codes},
            "targets": inner,
        }));
    }
    let default = targets
        .first()
        .and_then(|t| t["name"].as_str())
        .unwrap_or("")
        .to_string();
    let config = json!({
        "strategy": {"mode": "conditional", "conditions": conditions, "default": default},
        "targets": targets,
    });
    // Serializing JSON values cannot fail.
    serde_json::to_string_pretty(&config).unwrap_or_default()
}
