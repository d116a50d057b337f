//! The gate's outputs for people: the summary printed on stdout and the markdown for a pull
//! request or `$GITHUB_STEP_SUMMARY`. Each check's one-line message (with its figures) is
//! written here once and shared with the JUnit file (`junit`).

use super::markup;
use crate::gate::{Check, GateReport, Metric, Status};

/// A p-value: four decimals, or scientific below 0.001.
fn p(x: Option<f64>) -> String {
    match x {
        None => "–".into(),
        Some(v) if v < 0.001 => format!("{v:.1e}"),
        Some(v) => format!("{v:.4}"),
    }
}

/// A figure of the check's metric: a rate, or USD per accepted outcome.
fn figure(c: &Check, x: Option<f64>) -> String {
    match c.metric {
        Metric::Acceptance | Metric::Routed => markup::pct(x),
        Metric::CostPerAccepted => markup::usd(x),
    }
}

/// The change and its interval: `drop 10.0 points [7.3, 12.9]` or `×1.500 [1.480, 1.520]`.
fn change(c: &Check) -> String {
    let ch = &c.change;
    let bound = |x: Option<f64>, unbounded: &str| match (c.metric, x) {
        (_, None) => unbounded.to_string(),
        (Metric::Acceptance | Metric::Routed, Some(v)) => format!("{:.1}", v * 100.0 + 0.0),
        (Metric::CostPerAccepted, Some(v)) => format!("{v:.3}"),
    };
    match (c.metric, ch.estimate) {
        (_, None) => "undefined".into(),
        (Metric::Acceptance, Some(e)) => format!(
            "drop {:.1} points [{}, {}]",
            e * 100.0 + 0.0, // no "-0.0"
            bound(ch.low, "−∞"),
            bound(ch.high, "∞")
        ),
        (Metric::CostPerAccepted, Some(e)) => {
            format!("×{e:.3} [{}, {}]", bound(ch.low, "0"), bound(ch.high, "∞"))
        }
        (Metric::Routed, Some(e)) => format!(
            "acceptance {:.1}% [{}, {}]",
            e * 100.0,
            bound(ch.low, "0"),
            bound(ch.high, "100")
        ),
    }
}

/// The threshold: `2.0 points` or `×1.100`.
fn threshold(c: &Check) -> String {
    match c.metric {
        Metric::Acceptance => format!("{:.1} points", c.threshold * 100.0),
        Metric::CostPerAccepted => format!("×{:.3}", c.threshold),
        Metric::Routed => format!("lower bound ≥ {:.1}%", c.threshold * 100.0),
    }
}

/// What the check adds after its figures: tasks needed, the price change, notes.
fn tail(c: &Check) -> Vec<String> {
    let mut out = Vec::new();
    if c.status == Status::Inconclusive && c.metric != Metric::Routed {
        out.push(match c.tasks_needed {
            Some(n) if n > c.tasks => format!(
                "not enough paired tasks to tell: about {n} would be needed ({} now)",
                c.tasks
            ),
            Some(_) => "not conclusive at this sample; more paired tasks would tell".to_string(),
            None => "cannot tell from these outcomes".to_string(),
        });
    }
    if let Some(pc) = &c.price_change {
        let at = &pc.ratio_at_baseline_prices;
        let ratio = at
            .estimate
            .map_or_else(|| "undefined".to_string(), |e| format!("×{e:.3}"));
        out.push(format!(
            "price changed since the baseline ({}); at the baseline's prices the cost ratio is {ratio}{}",
            if pc.changes.is_empty() {
                "rates equal".to_string()
            } else {
                pc.changes.join(", ")
            },
            if pc.price_only {
                ": the increase is caused by the price change alone (re-save the baseline if the new price is accepted)"
            } else {
                ""
            }
        ));
    }
    out.extend(c.notes.iter().cloned());
    out
}

/// `suite / provider: metric`.
pub fn name(c: &Check) -> String {
    format!("{} / {}: {}", c.suite, c.provider, c.metric.name())
}

/// One line with every figure of a check (without its status).
pub fn message(c: &Check, confidence: f64) -> String {
    let mut s = if c.metric == Metric::Routed {
        format!(
            "class `{}` routed to {} (baseline acceptance {}): {} over {} outcomes ({} tasks) ({}, {:.0}%), threshold {}",
            c.workload,
            c.provider,
            figure(c, c.baseline),
            change(c),
            c.paired,
            c.tasks,
            c.change.method,
            confidence * 100.0,
            threshold(c),
        )
    } else {
        format!(
            "{} {} → {} over {} paired outcomes ({} tasks): {} ({}, {:.0}%), threshold {}; {} p = {}, Holm {}",
            c.metric.name(),
            figure(c, c.baseline),
            figure(c, c.run),
            c.paired,
            c.tasks,
            change(c),
            c.change.method,
            confidence * 100.0,
            threshold(c),
            c.test,
            p(c.p_value),
            p(c.p_holm),
        )
    };
    for t in tail(c) {
        s.push_str("; ");
        s.push_str(&t);
    }
    s
}

/// The headline: status, runs, counts and thresholds.
fn headline(g: &GateReport) -> String {
    format!(
        "run {} against the baseline of run {}: {} PASS, {} FAIL, {} INCONCLUSIVE (thresholds: acceptance drop {:.1} points, cost per accepted ×{:.3}; {:.0}% intervals, Holm over {} checks)",
        g.run,
        g.baseline_run,
        g.count(Status::Pass),
        g.count(Status::Fail),
        g.count(Status::Inconclusive),
        g.max_acceptance_drop * 100.0,
        1.0 + g.max_cost_increase,
        g.confidence * 100.0,
        g.checks.iter().filter(|c| c.p_value.is_some()).count(),
    )
}

/// The summary printed on stdout.
pub fn text(g: &GateReport) -> String {
    let mut out = format!("costbench gate: {}\n{}\n", g.status(), headline(g));
    for c in &g.checks {
        out.push_str(&format!(
            "{:<12} {}\n             {}\n",
            c.status.to_string(),
            name(c),
            message(c, g.confidence)
        ));
    }
    for n in &g.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out.push_str(match g.status() {
        Status::Fail => "the gate FAILS (exit 3): a regression is significant after Holm and beyond its threshold",
        Status::Inconclusive => "the gate passes (exit 0), but some checks are INCONCLUSIVE: too few paired tasks to rule out a regression beyond the threshold",
        Status::Pass => "the gate passes (exit 0)",
    });
    out
}

/// Markdown for a pull request or `$GITHUB_STEP_SUMMARY`: verdict first, one table row per
/// check, then what each inconclusive or noted check needs; model outputs never appear.
pub fn markdown(g: &GateReport) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut out = format!(
        "## costbench gate: {}\n\n{}\n\n",
        g.status(),
        esc(&headline(g))
    );
    let header: Vec<String> = [
        "status",
        "suite",
        "provider",
        "check",
        "baseline",
        "run",
        &format!("change [{:.0}% interval]", g.confidence * 100.0),
        "threshold",
        "p (Holm)",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let rows: Vec<Vec<String>> = g
        .checks
        .iter()
        .map(|c| {
            vec![
                match c.status {
                    Status::Fail => "**FAIL**".to_string(),
                    s => s.to_string(),
                },
                esc(&c.suite),
                esc(&c.provider),
                c.metric.name().to_string(),
                figure(c, c.baseline),
                figure(c, c.run),
                change(c),
                threshold(c),
                format!("{} ({})", p(c.p_value), p(c.p_holm)),
            ]
        })
        .collect();
    out.push_str(&markup::markdown_table(&header, &rows));
    let details: Vec<String> = g
        .checks
        .iter()
        .filter_map(|c| {
            let t = tail(c);
            (!t.is_empty())
                .then(|| format!("- {} {}: {}", c.status, esc(&name(c)), esc(&t.join("; "))))
        })
        .chain(g.notes.iter().map(|n| format!("- note: {}", esc(n))))
        .collect();
    if !details.is_empty() {
        out.push('\n');
        out.push_str(&details.join("\n"));
        out.push('\n');
    }
    out.push_str(
        "\nA check FAILS only when the regression is significant after Holm over every check and its whole interval is beyond the threshold; it PASSES when its interval rules out a regression beyond the threshold. Acceptance: drop = baseline − run, Tango score interval and McNemar mid-p (a paired cluster bootstrap with repeats). Cost per accepted: ratio run / baseline, paired BCa bootstrap over tasks and its bootstrap p.\n",
    );
    if g.checks.iter().any(|c| c.metric == Metric::Routed) {
        out.push_str(
            "Routed choice: the provider (or cascade) the baseline routed each class to, its acceptance interval in this run against the class's quality threshold: PASS when the whole interval is at or above it, FAIL when it is wholly below (the choice no longer qualifies), INCONCLUSIVE when it straddles; not a significance test, so outside Holm.\n",
        );
    }
    out
}
