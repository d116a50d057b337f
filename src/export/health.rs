//! `costbench runs --health`: one line per provider × run, so a provider getting worse shows
//! before it costs a migration. JSON is a list of [`ProviderHealth`] objects.

use crate::analysis::ProviderHealth;

use super::markup::{ms, pct, text_table};

/// The three percentiles of a figure, `p50 / p95 / p99`.
fn triple(l: &crate::analysis::Latency) -> String {
    format!("{} / {} / {}", ms(l.p50), ms(l.p95), ms(l.p99))
}

/// The failed calls of each kind with their share of all calls, most frequent first.
fn kinds(h: &ProviderHealth) -> String {
    let mut v: Vec<_> = h.failures.iter().collect();
    v.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
    if v.is_empty() {
        return "–".into();
    }
    v.iter()
        .map(|(k, f)| format!("{k} {} ({})", f.count, pct(h.error_rates.get(*k).copied())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The health lines as a terminal table (fitted to the terminal when stdout is one, else
/// unwrapped), or as JSON.
pub fn render(rows: &[ProviderHealth], json: bool) -> String {
    if json {
        return serde_json::to_string_pretty(rows).unwrap_or_default();
    }
    let header = [
        "provider",
        "run",
        "started",
        "calls / failed / retries",
        "failed",
        "by kind",
        "p50 / p95 / p99 ms",
        "TTFT p50 / p95 / p99 ms",
    ]
    .map(String::from)
    .to_vec();
    let body = rows
        .iter()
        .map(|h| {
            vec![
                h.provider.clone(),
                h.run.to_string(),
                h.created_at.clone(),
                format!("{} / {} / {}", h.calls, h.failed_calls, h.retries),
                pct(h.error_rate),
                kinds(h),
                triple(&h.latency_ms),
                triple(&h.ttft_ms),
            ]
        })
        .collect();
    let mut probe = comfy_table::Table::new();
    probe.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    let width = probe.width().unwrap_or(u16::MAX);
    format!(
        "{}\nfailed and by kind: shares of all calls; latency and TTFT (time to first token, streamed calls only): answering calls, nearest rank.",
        text_table(header, body, width)
    )
}
