//! The route as a Markdown summary for a pull request: one row per class, then per class the
//! held-out (cross-validated) figures beside the baselines, and the monthly bill.

use super::markup::{markdown_table, ms, pct, usd};
use super::routing::runs;
use crate::route::{ClassVerdict, RoutePlan, Usd};

fn interval(u: &Usd) -> String {
    format!(
        "{} [{} – {}]",
        usd(u.estimate),
        usd(u.low),
        u.high.map_or_else(|| "∞".into(), |h| usd(Some(h)))
    )
}

/// Renders the summary.
pub fn render(plan: &RoutePlan) -> String {
    let conf = format!("{:.0}%", plan.settings.confidence * 100.0);
    let mut out = format!(
        "## costbench route: runs {}\n\nChoice = the cheapest candidate by cost per accepted outcome whose acceptance interval's lower bound reaches the class threshold, won on at least {:.0}% of {} task resamples. Intervals are {conf}.\n\n",
        runs(plan),
        plan.settings.stability * 100.0,
        plan.settings.resamples
    );
    let header: Vec<String> = [
        "class",
        "verdict",
        "choice",
        "acceptance (in-sample)",
        "$/accepted (in-sample)",
        "p95 ms",
        "stable",
        "fallbacks",
    ]
    .map(String::from)
    .to_vec();
    let rows: Vec<Vec<String>> = plan
        .classes
        .iter()
        .map(|c| {
            let verdict = match c.verdict {
                ClassVerdict::Chosen => "chosen".to_string(),
                ClassVerdict::NoClearWinner => format!(
                    "no clear winner{}",
                    c.tasks_needed
                        .map_or(String::new(), |n| format!(" (~{n} more tasks)"))
                ),
                ClassVerdict::NoneQualifies => "none qualifies".to_string(),
            };
            let f = c.choice.as_ref();
            vec![
                c.workload.clone(),
                verdict,
                f.map_or("–".into(), |f| f.name.clone()),
                f.map_or("–".into(), |f| {
                    format!(
                        "{} [{} – {}]",
                        pct(f.acceptance.rate),
                        pct(f.acceptance.low),
                        pct(f.acceptance.high)
                    )
                }),
                f.map_or("–".into(), |f| interval(&f.cost_per_accepted_usd)),
                ms(f.and_then(|f| f.p95_latency_ms)),
                pct(c.stable_share),
                c.fallbacks
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    out.push_str(&markdown_table(&header, &rows));
    for c in &plan.classes {
        out.push_str(&format!("\n### {}\n\n", c.workload));
        if !c.contenders.is_empty() {
            let names: Vec<String> = c
                .contenders
                .iter()
                .map(|k| {
                    format!(
                        "{} ({} of resamples)",
                        k.figures.name,
                        pct(Some(k.win_share))
                    )
                })
                .collect();
            out.push_str(&format!("Contenders: {}.\n\n", names.join(", ")));
        }
        if let Some(cv) = &c.cross_validation {
            out.push_str(&format!(
                "Held out ({}-fold over tasks, chosen on the other folds): the route accepts {} at {} per accepted{}.\n\n",
                cv.folds,
                pct(cv.routed.acceptance.rate),
                interval(&cv.routed.cost_per_accepted_usd),
                if cv.folds_without_qualifier > 0 {
                    format!(
                        " (in {} of {} folds nothing qualified on the training tasks; the best single provider served them)",
                        cv.folds_without_qualifier, cv.folds
                    )
                } else {
                    String::new()
                }
            ));
            let h: Vec<String> = ["baseline", "acceptance", "$/accepted", "route vs baseline"]
                .map(String::from)
                .to_vec();
            let vs = [
                &cv.saving_vs_best_single,
                &cv.saving_vs_cheapest_qualifier,
                &cv.saving_vs_round_robin,
                &cv.regret_vs_oracle,
            ];
            let rows: Vec<Vec<String>> = cv
                .baselines
                .iter()
                .zip(vs)
                .map(|(b, v)| {
                    vec![
                        b.name.to_string(),
                        pct(b.acceptance.rate),
                        interval(&b.cost_per_accepted_usd),
                        format!(
                            "{}: {} ({})",
                            if b.name == "oracle" {
                                "regret"
                            } else {
                                "saving"
                            },
                            interval(&v.difference_usd),
                            v.route_is
                        ),
                    ]
                })
                .collect();
            out.push_str(&markdown_table(&h, &rows));
        }
        if let Some(m) = &c.monthly {
            out.push_str(&format!(
                "\nMonthly at {:.0} requests: recommendation {}, incumbent {} {}, saving {}.\n",
                m.volume,
                m.recommendation_usd.as_ref().map_or("–".into(), interval),
                m.incumbent.as_deref().unwrap_or("(none named)"),
                m.incumbent_usd.as_ref().map_or("–".into(), interval),
                m.saving_usd.as_ref().map_or("–".into(), interval),
            ));
        }
        for n in &c.notes {
            out.push_str(&format!("\n- {n}"));
        }
        out.push('\n');
    }
    if let Some(t) = &plan.monthly_total {
        out.push_str(&format!(
            "\n**Monthly total** ({}): recommendation {}, incumbents {}, saving {}.\n",
            t.classes.join(", "),
            interval(&t.recommendation_usd),
            interval(&t.incumbent_usd),
            interval(&t.saving_usd)
        ));
    }
    out.trim_end().to_string()
}
