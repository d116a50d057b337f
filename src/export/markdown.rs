//! The markdown report, for pull requests and `$GITHUB_STEP_SUMMARY`.

use super::{Exporter, markup};
use crate::analysis::RunAnalysis;

/// The markdown exporter.
#[derive(Default)]
pub struct Markdown {
    /// Routing decisions by workload class, one line each ([`markup::recommendations`]).
    pub recommendations: std::collections::BTreeMap<String, String>,
}

impl Exporter for Markdown {
    fn render(&self, a: &RunAnalysis) -> String {
        let esc = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let header = markup::header(a);
        let mut out = format!("## {}\n\n", esc(&markup::title(a)));
        if !self.recommendations.is_empty() {
            out.push_str(&format!(
                "**Routing recommendation** (`costbench route` with the default policy: the cheapest provider or cascade per accepted outcome whose {:.0}% acceptance interval stays at or above the class's quality threshold, stable over task resamples):\n\n",
                a.options.confidence * 100.0
            ));
            for (class, line) in &self.recommendations {
                out.push_str(&format!("- workload `{}`: {}\n", esc(class), esc(line)));
            }
            out.push('\n');
        }
        // Verdicts first: a pull-request reader wants the answer before the figures.
        out.push_str(&format!(
            "**Qualifying providers, cheapest per accepted outcome first** (the whole {:.0}% Wilson \
             interval of acceptance at or above the suite's quality threshold; `costbench route` \
             and `costbench compare` give routing and migration verdicts):\n\n",
            a.options.confidence * 100.0
        ));
        for s in &a.run.plan.suites {
            let rows: Vec<&crate::analysis::Row> = a
                .rows
                .iter()
                .map(|r| &r.figures)
                .filter(|r| r.suite == s.name)
                .collect();
            out.push_str(&format!(
                "- workload `{}`: {}\n",
                esc(&s.workload),
                esc(&markup::qualifying_line(
                    &s.name,
                    s.quality_threshold,
                    &rows
                ))
            ));
        }
        out.push('\n');
        out.push_str(&format!("| {} |\n", header.join(" | ")));
        out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
        for r in &a.rows {
            let c: Vec<String> = markup::cells(&r.figures).iter().map(|c| esc(c)).collect();
            out.push_str(&format!("| {} |\n", c.join(" | ")));
        }
        out.push_str(&format!("\n{}\n", markup::footnote(a)));
        out
    }
}
