//! The markdown report, for pull requests and `$GITHUB_STEP_SUMMARY`.

use super::{Exporter, markup};
use crate::analysis::RunAnalysis;

/// The markdown exporter.
pub struct Markdown;

impl Exporter for Markdown {
    fn render(&self, a: &RunAnalysis) -> String {
        let esc = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let header = markup::header(a);
        let mut out = format!("## {}\n\n", esc(&markup::title(a)));
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
