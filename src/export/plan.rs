//! The output of `costbench plan`: the JSON contract (documented in [`crate::estimate`]), and
//! one markup shared by the terminal table and markdown.

use super::Format;
use super::markup::{WIDTH, markdown_table, text_table, usd, wrap};
use crate::estimate::{Costs, Plan, PlanRow, TotalCost};
use crate::providers::Money;

/// Renders a plan in a format; `width` fits the table (default [`WIDTH`] columns).
pub fn render(p: &Plan, format: Format, width: Option<u16>) -> String {
    let width = width.unwrap_or(WIDTH);
    let mut rows: Vec<Vec<String>> = p.rows.iter().map(cells).collect();
    rows.push(total_cells(p));
    match format {
        // Serializing plain data with string keys cannot fail.
        Format::Json => serde_json::to_string_pretty(p).unwrap_or_default(),
        Format::Table => {
            let foot: Vec<String> = FOOTNOTE.lines().map(|l| wrap(l, width)).collect();
            format!(
                "{TITLE}\n{}\n{}",
                text_table(header(), rows, width),
                foot.join("\n")
            )
        }
        // The CLI refuses `--format html` for plan; markdown is the nearest readable form.
        Format::Md | Format::Html => format!(
            "## {TITLE}\n\n{}\n{}",
            markdown_table(&header(), &rows),
            FOOTNOTE.replace('\n', "\n\n")
        ),
    }
}

const TITLE: &str = "costbench plan: calls, tokens and cost before anything is spent";

const FOOTNOTE: &str = "≤ every answer using its whole completion cap (max_tokens); ~ every answer \
using the mean output of the latest stored run of the same suite and provider (history).\n\
Prompt tokens are counted with the model's tokenizer where one is named, else estimated as \
UTF-8 bytes / 4 (est.); every prompt token is priced as uncached input at the list rates \
(no service tier or off-peak discount assumed).";

fn header() -> Vec<String> {
    [
        "suite",
        "provider",
        "calls",
        "prompt tokens",
        "output tokens",
        "online",
        "batch",
    ]
    .map(String::from)
    .to_vec()
}

fn n(x: u64) -> String {
    // Thousands separators make token counts readable at a glance.
    let s = x.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn money(m: Option<Money>) -> String {
    usd(m.map(Money::usd))
}

fn costs(c: &Costs) -> String {
    let max = match c.max {
        Some(m) => format!("≤ {}", money(Some(m))),
        None => "no bound".into(),
    };
    match c.expected {
        Some(e) => format!("{max}, ~{}", money(Some(e))),
        None => max,
    }
}

fn cells(r: &PlanRow) -> Vec<String> {
    let mut calls = n(r.calls);
    if r.render_errors > 0 {
        calls.push_str(&format!(" ({} cannot render)", n(r.render_errors)));
    }
    let counted = match r.prompt_tokens.counted_with {
        crate::estimate::Counter::Estimate => "est.".to_string(),
        c => c.name().to_string(),
    };
    let o = &r.output_tokens;
    let mut output = match (o.max_total, o.cap) {
        (Some(t), Some(cap)) => format!("≤ {} (cap {})", n(t), n(cap)),
        _ => "no cap".into(),
    };
    if let Some(h) = &o.history {
        output.push_str(&format!(
            "; history: mean {:.1}, p95 {} (run {}, {} calls)",
            h.mean,
            n(h.p95),
            h.run,
            n(h.samples)
        ));
    }
    let online = if r.cost_usd.online.max.is_none() && r.cost_usd.online.expected.is_none() {
        "no price or no cap".to_string()
    } else {
        costs(&r.cost_usd.online)
    };
    vec![
        r.suite.clone(),
        r.provider.clone(),
        calls,
        format!("{} ({counted})", n(r.prompt_tokens.total)),
        output,
        online,
        r.cost_usd
            .batch
            .as_ref()
            .map_or_else(|| "no batch price".into(), costs),
    ]
}

fn total_cells(p: &Plan) -> Vec<String> {
    let t = &p.totals;
    vec![
        "total".into(),
        String::new(),
        n(t.calls),
        n(t.prompt_tokens),
        t.output_tokens_max
            .map_or_else(|| "no cap".into(), |m| format!("≤ {}", n(m))),
        total(&t.cost_usd.online, p.rows.len()),
        total(&t.cost_usd.batch, p.rows.len()),
    ]
}

/// A total, saying when it leaves rows out.
fn total(t: &TotalCost, rows: usize) -> String {
    let of = |n: u64| {
        if n as usize == rows {
            String::new()
        } else {
            format!(" ({n} of {rows} rows)")
        }
    };
    let max = match t.max {
        Some(m) => format!("≤ {}{}", money(Some(m)), of(t.max_rows)),
        None => "–".into(),
    };
    match t.expected {
        Some(e) => format!("{max}, ~{}{}", money(Some(e)), of(t.expected_rows)),
        None => max,
    }
}
