//! The output of `costbench reprice`: the JSON contract (documented on
//! [`crate::reprice::Repriced`]), and one markup shared by the terminal table and markdown.

use super::Format;
use super::markup::{WIDTH, markdown_table, text_table, usd, wrap};
use crate::reprice::{Bounds, Change, Repriced, RepricedRow, RouteChange};
use crate::route::ClassVerdict;

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
            let routes: Vec<String> = routing(r).iter().map(|l| wrap(l, width)).collect();
            format!(
                "{}\n{}\n{}\n{}",
                title(r),
                text_table(header(r), rows, width),
                foot.join("\n"),
                routes.join("\n")
            )
        }
        // The CLI refuses `--format html` for reprice; markdown is the nearest readable form.
        Format::Md | Format::Html => {
            let routes = routing(r);
            format!(
                "## {}\n\n{}\n{}\n\n{}\n\n- {}",
                title(r),
                markdown_table(&header(r), &rows),
                footnote(r).replace('\n', "\n\n"),
                routes[0],
                routes[1..].join("\n- ")
            )
        }
    }
}

/// The routing lines: a heading line, then one per class and the monthly total.
fn routing(r: &Repriced) -> Vec<String> {
    let mut out = vec![format!(
        "Routing (costbench route under {}, drawn before and after): {}.",
        r.policy.as_deref().map_or_else(
            || "the default policy".to_string(),
            |p| format!("policy {p}")
        ),
        if r.any_route_changed {
            "a class's choice or bill changes"
        } else {
            "no class's choice or bill changes"
        }
    )];
    out.extend(r.routes.iter().map(route_line));
    if r.monthly_total_usd.before.is_some() || r.monthly_total_usd.after.is_some() {
        out.push(format!(
            "monthly bill of the classes with a volume: {}",
            arrow(&r.monthly_total_usd, |x| usd(*x))
        ));
    }
    out
}

fn route_line(c: &RouteChange) -> String {
    let choice = |v: &ClassVerdict, n: &Option<String>| match (v, n) {
        (ClassVerdict::Chosen, Some(n)) => n.clone(),
        (ClassVerdict::NoClearWinner, Some(n)) => format!("no clear winner (leader {n})"),
        _ => "none qualifies".to_string(),
    };
    let mut line = format!(
        "class `{}`: {} {}; its cost per request {}, per accepted outcome {}",
        c.workload,
        if c.choice_changed {
            format!(
                "choice CHANGES {} → {}",
                choice(&c.verdict.before, &c.choice.before),
                choice(&c.verdict.after, &c.choice.after)
            )
        } else {
            format!("choice stays {}", choice(&c.verdict.after, &c.choice.after))
        },
        if c.bill_changed {
            "(bill changes)"
        } else {
            "(bill unchanged)"
        },
        arrow(&c.cost_per_request_usd, |x| usd(*x)),
        arrow(&c.cost_per_accepted_usd, |x| usd(*x)),
    );
    if c.monthly_usd.before.is_some() || c.monthly_usd.after.is_some() {
        line.push_str(&format!(", monthly {}", arrow(&c.monthly_usd, |x| usd(*x))));
    }
    line
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
