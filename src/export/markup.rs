//! What the text table and markdown share: the title, the columns, each row's cells and the
//! footnote.

use comfy_table::{ContentArrangement, presets::UTF8_FULL_CONDENSED};

use std::collections::BTreeMap;

use crate::analysis::{Row, RunAnalysis};
use crate::route::{ClassVerdict, RoutePlan};
use crate::store::plan::ErrorKind;

/// The width of the compare and reprice tables unless `--width` says otherwise: they read in
/// a 100-column terminal.
pub const WIDTH: u16 = 100;

/// Money for people: `unknown`, `$0`, four decimals from a cent up, six below.
pub fn usd(x: Option<f64>) -> String {
    match x {
        None => "unknown".into(),
        Some(0.0) => "$0".into(),
        Some(v) if v.abs() >= 0.01 => format!("${v:.4}"),
        Some(v) => format!("${v:.6}"),
    }
}

/// A rate as a percentage with one decimal.
pub fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), |v| format!("{:.1}%", v * 100.0))
}

/// Milliseconds, rounded.
pub fn ms(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), |v| format!("{v:.0}"))
}

/// The marker on a figure that leaves out calls of unknown cost (explained in the footnote).
pub const UNKNOWN_MARK: &str = "*";

/// Column headers, with the run's confidence level.
pub fn header(a: &RunAnalysis) -> Vec<String> {
    let conf = format!("{:.0}%", a.options.confidence * 100.0);
    let studentized = a
        .rows
        .iter()
        .all(|r| r.figures.cost_per_accepted_ci.method == crate::analysis::SMALL_SAMPLE_METHOD);
    [
        "suite",
        "provider",
        "accepted",
        "acceptance (95% Wilson)",
        if studentized {
            "$/accepted (95% boot-t)"
        } else {
            "$/accepted (95% interval)"
        },
        "total cost",
        "calls / failed / retries",
        "p50 / p95 / p99 ms",
        "spent now",
    ]
    .iter()
    .map(|h| h.replace("95%", &conf))
    .collect()
}

/// Why a row was not evaluated: no outcome answered and every unanswered one failed for the
/// provider's configuration (key, permission, model); the provider's own first message.
pub fn not_evaluated(r: &Row) -> Option<String> {
    let config = |k: &str| ErrorKind::parse(k).is_some_and(ErrorKind::is_configuration);
    (r.unanswered > 0
        && r.unanswered == r.outcomes - r.pending
        && !r.unanswered_by_kind.is_empty()
        && r.unanswered_by_kind.keys().all(|k| config(k)))
    .then(|| {
        let (kind, f) = r.unanswered_by_kind.iter().next()?;
        Some(format!(
            "{kind}: {}",
            f.first_message.as_deref().unwrap_or("no message")
        ))
    })
    .flatten()
}

/// The cells of one row, in header order.
pub fn cells(r: &Row) -> Vec<String> {
    let done = r.outcomes - r.pending;
    let mut acc = format!("{}/{}", r.accepted, done - r.grader_errors);
    if r.pending > 0 {
        acc.push_str(&format!(" ({} pending)", r.pending));
    }
    if r.grader_errors > 0 {
        acc.push_str(&format!(" ({} grader errors)", r.grader_errors));
    }
    let qual = match r.qualifies {
        Some(true) => " ✓",
        Some(false) => " ✗",
        None => "",
    };
    let mark = if r.unpriced_calls > 0 {
        UNKNOWN_MARK
    } else {
        ""
    };
    let cpa = match r.cost_per_accepted_usd {
        None => "unknown".to_string(),
        Some(_) => format!(
            "{}{mark} [{} – {}]",
            usd(r.cost_per_accepted_usd),
            usd(r.cost_per_accepted_ci.low),
            r.cost_per_accepted_ci
                .high
                .map_or_else(|| "∞".into(), |h| usd(Some(h)))
        ),
    };
    let total = match r.cost_usd.total {
        None => "unknown".to_string(),
        t => format!("{}{mark}", usd(t)),
    };
    // A wrong key is not a model that answers badly: no acceptance figure at all.
    let acceptance = if not_evaluated(r).is_some() {
        "not evaluated (see below)".to_string()
    } else {
        format!(
            "{} [{} – {}]{qual}",
            pct(r.acceptance.rate),
            pct(r.acceptance.low),
            pct(r.acceptance.high)
        )
    };
    vec![
        r.suite.clone(),
        r.provider.clone(),
        acc,
        acceptance,
        cpa,
        total,
        format!("{} / {} / {}", r.calls, r.failed_calls, r.retries),
        format!(
            "{} / {} / {}",
            ms(r.latency_ms.p50),
            ms(r.latency_ms.p95),
            ms(r.latency_ms.p99)
        ),
        match r.spent_usd {
            None => "unknown".to_string(),
            s if r.spent_max_usd != r.spent_usd => format!("{}{UNKNOWN_MARK}", usd(s)),
            s => usd(s),
        },
    ]
}

/// The report's title line.
pub fn title(a: &RunAnalysis) -> String {
    format!(
        "costbench run {} ({}, cache {}, started {})",
        a.run.id, a.run.status, a.run.cache_mode, a.run.created_at
    )
}

/// What the figures mean, and one line per row whose figures leave out unknown costs.
pub fn footnote(a: &RunAnalysis) -> String {
    let mut s = String::from(
        "$/accepted = (token cost of every attempt, retries included + rejected outcomes × rejection cost) / accepted. \
         ✓/✗: acceptance vs the suite's quality threshold.",
    );
    if a.rows
        .iter()
        .any(|r| r.figures.cost_per_accepted_ci.method == "delta-log")
    {
        s.push_str(&format!(
            " $/accepted intervals over more than {} tasks use the log-scale delta method, others the studentized bootstrap on the log scale (boot-t).",
            crate::analysis::DELTA_ABOVE_TASKS
        ));
    }
    let labelled: u64 = a.rows.iter().map(|r| r.figures.human_labelled).sum();
    if labelled > 0 {
        s.push_str(&format!(
            " {labelled} outcome(s) carry a human label, whose verdict replaces the graders' in every figure (`costbench labels agreement` compares them)."
        ));
    }
    for r in a.rows.iter().map(|r| &r.figures) {
        if let Some(h) = health_line(r) {
            s.push_str(&format!("\n{} / {}: {h}.", r.suite, r.provider));
        }
        if let Some(why) = not_evaluated(r) {
            s.push_str(&format!(
                "\n{} / {}: not evaluated: the provider refused every call for its configuration ({why}).",
                r.suite, r.provider
            ));
        }
        if let Some(judge) = r.cost_usd.judge {
            s.push_str(&format!(
                "\n{} / {}: $/accepted includes {} of LLM-judge calls (the `judge` grader).",
                r.suite,
                r.provider,
                usd(Some(judge))
            ));
        }
        if r.unpriced_calls == 0 {
            continue;
        }
        let bound = match (r.cost_per_accepted_max_usd, r.cost_usd.unknown_max) {
            (Some(m), _) => format!(
                "at most {} per accepted with them at their bound",
                usd(Some(m))
            ),
            (None, Some(u)) => format!("they can have cost up to {} in all", usd(Some(u))),
            (None, None) => {
                "no bound: a call without a completion cap (max_tokens) or a price".to_string()
            }
        };
        s.push_str(&format!(
            "\n{UNKNOWN_MARK} {} / {}: {} call(s) of unknown cost (sent with no answer seen, or no usage or price) are left out; {bound}.",
            r.suite, r.provider, r.unpriced_calls
        ));
    }
    s
}

/// A row's provider health, when there is something to say: failed calls by kind as shares of
/// all calls, and time to first token of streamed answers.
pub fn health_line(r: &Row) -> Option<String> {
    let mut parts = Vec::new();
    if r.failed_calls > 0 && r.calls > 0 {
        let kinds: Vec<String> = r
            .failures
            .iter()
            .map(|(k, f)| format!("{k} {} ({})", f.count, pct(r.error_rates.get(k).copied())))
            .collect();
        parts.push(format!(
            "{} of {} calls failed ({}): {}",
            r.failed_calls,
            r.calls,
            pct(Some(r.failed_calls as f64 / r.calls as f64)),
            kinds.join(", ")
        ));
    }
    if r.ttft_ms.p50.is_some() {
        parts.push(format!(
            "time to first token p50 / p95 / p99 {} / {} / {} ms",
            ms(r.ttft_ms.p50),
            ms(r.ttft_ms.p95),
            ms(r.ttft_ms.p99)
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// A terminal table fitted to `width` columns.
pub fn text_table(header: Vec<String>, rows: Vec<Vec<String>>, width: u16) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(width)
        .set_header(header);
    for r in rows {
        t.add_row(r);
    }
    t
}

/// A markdown table, cells escaped.
pub fn markdown_table(header: &[String], rows: &[Vec<String>]) -> String {
    let esc = |s: &String| s.replace('|', "\\|").replace('\n', " ");
    let line = |cells: &[String]| {
        format!(
            "| {} |\n",
            cells.iter().map(esc).collect::<Vec<_>>().join(" | ")
        )
    };
    let mut out = line(header);
    out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

/// Breaks a line at spaces so that it fits `width` columns.
pub fn wrap(line: &str, width: u16) -> String {
    let mut out = String::new();
    let mut col = 0;
    for word in line.split(' ') {
        let n = word.chars().count();
        if col > 0 && col + 1 + n > usize::from(width) {
            out.push('\n');
            col = 0;
        } else if col > 0 {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += n;
    }
    out
}

/// The class headline of one suite when no routing decision is given: the providers whose
/// acceptance interval clears the threshold, cheapest per accepted outcome first.
pub fn qualifying_line(suite: &str, threshold: Option<f64>, rows: &[&Row]) -> String {
    let Some(t) = threshold else {
        return format!("{suite}: no quality_threshold set, so no provider qualifies or fails");
    };
    let mut q: Vec<&&Row> = rows
        .iter()
        .filter(|r| r.acceptance.low.is_some_and(|l| l >= t))
        .collect();
    q.sort_by(|a, b| {
        let c = |r: &Row| r.cost_per_accepted_usd.unwrap_or(f64::INFINITY);
        c(a).total_cmp(&c(b))
    });
    if q.is_empty() {
        return format!(
            "{suite}: none of {} provider(s) shown to reach {}",
            rows.len(),
            pct(Some(t))
        );
    }
    let list: Vec<String> = q
        .iter()
        .map(|r| format!("{} ({}/accepted)", r.provider, usd(r.cost_per_accepted_usd)))
        .collect();
    format!("{suite} (≥ {}): {}", pct(Some(t)), list.join(", "))
}

/// A workload class's routing decision (`costbench route`'s), one line for a report summary.
pub fn recommendations(plan: &RoutePlan) -> BTreeMap<String, String> {
    let conf = format!("{:.0}%", plan.settings.confidence * 100.0);
    plan.classes
        .iter()
        .map(|c| {
            let resamples = format!("{} task resamples", c.resamples);
            let line = match (c.verdict, &c.choice) {
                (ClassVerdict::Chosen, Some(f)) => format!(
                    "{} at {} per accepted outcome [{} – {}] ({conf} {}), acceptance {} [{} – {}]; won {} of {resamples}",
                    f.name,
                    usd(f.cost_per_accepted_usd.estimate),
                    usd(f.cost_per_accepted_usd.low),
                    f.cost_per_accepted_usd
                        .high
                        .map_or_else(|| "∞".into(), |h| usd(Some(h))),
                    f.cost_per_accepted_usd.method,
                    pct(f.acceptance.rate),
                    pct(f.acceptance.low),
                    pct(f.acceptance.high),
                    pct(c.stable_share),
                ),
                (ClassVerdict::NoneQualifies, _) => format!(
                    "none: no provider or cascade qualifies (acceptance lower bound at or above {})",
                    c.quality_threshold
                        .map_or_else(|| "any accepted outcome".into(), |t| pct(Some(t)))
                ),
                (_, f) => format!(
                    "no clear winner: the cheapest qualifier{} won {} of {resamples}, under the {} required{}",
                    f.as_ref().map_or_else(String::new, |f| format!(" `{}`", f.name)),
                    pct(c.stable_share),
                    pct(Some(plan.settings.stability)),
                    c.tasks_needed
                        .map_or_else(String::new, |n| format!("; about {n} more tasks would tell"))
                ),
            };
            (c.workload.clone(), line)
        })
        .collect()
}
