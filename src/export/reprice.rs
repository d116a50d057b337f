//! The output of `costbench reprice`: the JSON contract (documented on
//! [`crate::reprice::Repriced`]), and one markup shared by the terminal table and markdown.

use super::Format;
use super::markup::{WIDTH, markdown_table, text_table, usd, wrap};
use crate::reprice::{Bounds, Change, Repriced, RepricedRow};

/// Renders a re-priced run in a format.
/// `width` fits the table (default [`WIDTH`] columns).
pub fn render(r: &Repriced, format: Format, width: Option<u16>) -> String {
    let width = width.unwrap_or(WIDTH);
    let rows: Vec<Vec<String>> = r.rows.iter().map(cells).collect();
    match format {
        // Serializing plain data with string keys cannot fail.
        Format::Json => serde_json::to_string_pretty(r).unwrap_or_default(),
        Format::Table => {
            let foot: Vec<String> = footnote(r).lines().map(|l| wrap(l, width)).collect();
            format!(
                "{}\n{}\n{}",
                title(r),
                text_table(header(r), rows, width),
                foot.join("\n")
            )
        }
        // The CLI refuses `--format html` for reprice; markdown is the nearest readable form.
        Format::Md | Format::Html => format!(
            "## {}\n\n{}\n{}",
            title(r),
            markdown_table(&header(r), &rows),
            footnote(r).replace('\n', "\n\n")
        ),
    }
}

fn title(r: &Repriced) -> String {
    format!("costbench reprice: run {} under {}", r.run, r.prices)
}

fn header(r: &Repriced) -> Vec<String> {
    let conf = format!("{:.0}%", r.confidence * 100.0);
    vec![
        "suite".into(),
        "provider".into(),
        "$/accepted before → after".into(),
        format!("after, {conf} interval"),
        "total cost before → after".into(),
        "unpriced calls".into(),
    ]
}

fn arrow<T: PartialEq>(c: &Change<T>, show: impl Fn(&T) -> String) -> String {
    if c.before == c.after {
        format!("{} (same)", show(&c.after))
    } else {
        format!("{} → {}", show(&c.before), show(&c.after))
    }
}

fn cells(r: &RepricedRow) -> Vec<String> {
    let ci = |b: &Bounds| match b.low {
        None => "–".to_string(),
        Some(l) => format!(
            "[{} – {}]",
            usd(Some(l)),
            b.high.map_or_else(|| "∞".into(), |h| usd(Some(h)))
        ),
    };
    vec![
        r.suite.clone(),
        r.provider.clone(),
        arrow(&r.cost_per_accepted_usd, |x| usd(*x)),
        ci(&r.cost_per_accepted_ci.after),
        arrow(&r.total_usd, |x| usd(*x)),
        arrow(&r.unpriced_calls, u64::to_string),
    ]
}

fn footnote(r: &Repriced) -> String {
    format!(
        "{}\nEvery attempt with stored usage is priced at the new table; attempts without usage keep \
         their stored cost (a call never answered stays unknown, bounded at the new prices). \
         $/accepted = (token cost + rejected outcomes × rejection cost) / accepted; the interval is \
         recomputed from the re-priced outcomes. `spent` (what the run paid) is not changed.",
        if r.any_changed {
            "Cost per accepted outcome changes for at least one row."
        } else {
            "No row's cost per accepted outcome changes."
        }
    )
}
