//! The output of `costbench compare`: the JSON contract (documented on
//! [`crate::compare::Comparison`]), and one markup shared by the terminal table and markdown:
//! verdicts first, each figure with its interval, a footnote saying what each interval is.

use super::Format;
use super::markup::{WIDTH, markdown_table, text_table, usd, wrap};
use crate::compare::{Comparison, Comparisons, MarginSource};
use crate::stats::Estimate;

/// Renders the comparisons in a format.
/// `width` fits the table (default [`WIDTH`] columns).
pub fn render(c: &Comparisons, format: Format, width: Option<u16>) -> String {
    let width = width.unwrap_or(WIDTH);
    match format {
        // Serializing plain data with string keys cannot fail.
        Format::Json => serde_json::to_string_pretty(c).unwrap_or_default(),
        Format::Table => {
            let rows = c.comparisons.iter().map(cells).collect();
            let foot: Vec<String> = footnote(c).lines().map(|l| wrap(l, width)).collect();
            format!(
                "{}\n{}\n{}",
                title(c),
                text_table(header(c), rows, width),
                foot.join("\n")
            )
        }
        // The CLI refuses `--format html` for compare; markdown is the nearest readable form.
        Format::Md | Format::Html => {
            let rows: Vec<Vec<String>> = c.comparisons.iter().map(cells).collect();
            format!(
                "## {}\n\n{}\n{}",
                title(c),
                markdown_table(&header(c), &rows),
                footnote(c).replace('\n', "\n\n")
            )
        }
    }
}

/// The title line.
fn title(c: &Comparisons) -> String {
    let (inc, cand) = c
        .comparisons
        .first()
        .map_or(("?", "?"), |r| (r.incumbent.as_str(), r.candidate.as_str()));
    if c.incumbent_run == c.candidate_run {
        format!(
            "costbench compare, run {}: candidate {cand} vs incumbent {inc}",
            c.incumbent_run
        )
    } else {
        format!(
            "costbench compare: candidate {cand} (run {}) vs incumbent {inc} (run {})",
            c.candidate_run, c.incumbent_run
        )
    }
}

fn header(c: &Comparisons) -> Vec<String> {
    let conf = format!("{:.0}%", c.confidence * 100.0);
    vec![
        "verdict".into(),
        "suite".into(),
        "pairs".into(),
        format!("Δ accepted {conf}"),
        "margin".into(),
        "mid-p (Holm)".into(),
        format!("saving {conf}"),
        format!("cost ratio {conf}"),
    ]
}

/// Money with its sign in front: `-$0.0012`.
fn signed_usd(x: Option<f64>) -> String {
    match x {
        Some(v) if v < 0.0 => format!("-{}", usd(Some(-v))),
        v => usd(v),
    }
}

/// Signed percentage points with one decimal.
fn points(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), |v| format!("{:+.1}", v * 100.0))
}

fn p_value(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), |p| format!("{p:.4}"))
}

/// An estimate and its interval; an absent bound is unbounded.
fn interval(e: &Estimate, show: impl Fn(Option<f64>) -> String) -> String {
    match e.estimate {
        None => "–".into(),
        Some(_) => format!(
            "{} [{}, {}]",
            show(e.estimate),
            e.low.map_or_else(|| "−∞".into(), |l| show(Some(l))),
            e.high.map_or_else(|| "∞".into(), |h| show(Some(h)))
        ),
    }
}

fn cells(r: &Comparison) -> Vec<String> {
    let verdict = match r.more_tasks {
        Some(n) => format!("{} (+{n} tasks)", r.verdict),
        None => r.verdict.to_string(),
    };
    let suite = match &r.suite {
        Some(s) => s.clone(),
        None => format!("{} (pooled)", r.workload),
    };
    let d = &r.acceptance_diff;
    let diff = match d.estimate {
        None => "–".into(),
        Some(_) => format!(
            "{} pt [{}, {}]",
            points(d.estimate),
            points(d.low),
            points(d.high)
        ),
    };
    let margin = format!(
        "{:.1} pt{}",
        r.margin * 100.0,
        match r.margin_source {
            MarginSource::Suite => "",
            MarginSource::Default => " (default)",
            MarginSource::Flag => " (flag)",
        }
    );
    let p = match (r.mcnemar_mid_p, r.mcnemar_mid_p_holm) {
        (Some(p), Some(h)) => format!("{} ({})", p_value(Some(p)), p_value(Some(h))),
        (p, _) => p_value(p),
    };
    vec![
        verdict,
        suite,
        r.paired.to_string(),
        diff,
        margin,
        p,
        interval(&r.saving_per_accepted_usd, signed_usd),
        interval(&r.cost_ratio, |x| {
            x.map_or_else(|| "–".into(), |v| format!("{v:.3}"))
        }),
    ]
}

/// What the verdicts and each interval are, then one line per note.
fn footnote(c: &Comparisons) -> String {
    let conf = format!("{:.0}%", c.confidence * 100.0);
    let mut s = format!(
        "Δ acceptance = candidate − incumbent over paired outcomes, in points, with a two-sided {conf} \
         Tango score interval (one outcome per task) or paired cluster bootstrap (BCa, whole tasks \
         resampled; with repeats). Verdict against the margin fixed before the run: NON-INFERIOR when \
         the low bound is above −margin, SUPERIOR when above 0, INFERIOR when the high bound is below \
         −margin, else INCONCLUSIVE (+N tasks: paired tasks more for an 80% chance of a conclusive \
         verdict). mid-p: McNemar mid-p, Holm-adjusted over the workload's suites in parentheses. \
         saving = incumbent − candidate cost per accepted outcome (known token costs + rejection \
         costs), ratio = candidate / incumbent, each with a {conf} paired BCa bootstrap resampling \
         the same tasks on both sides; ∞ = unbounded (resamples where a side accepted nothing)."
    );
    if c.comparisons
        .iter()
        .any(|r| r.cost_method == "paired-delta")
    {
        s.push_str(&format!(
            " Rows of more than {} tasks use the paired delta method instead of the bootstrap              (ratio on the log scale): at that size both give the same interval, and              resampling every task would take most of the time.",
            crate::analysis::DELTA_ABOVE_TASKS
        ));
    }
    for r in &c.comparisons {
        let name = r.suite.as_deref().unwrap_or(r.workload.as_str());
        for n in &r.notes {
            s.push_str(&format!("\n{name}: {n}"));
        }
    }
    s
}
