//! Exports: one file per output format, each rendering a [`RunAnalysis`] and nothing else.
//!
//! As hyperfine's `src/export/`: one small trait, and table logic written once in `markup`
//! and shared by the terminal table and markdown. No exporter reads the store.

pub mod compare;
pub mod gate;
pub mod health;
pub mod html;
pub mod json;
pub mod junit;
pub mod labels;
pub mod litellm;
pub mod markdown;
pub mod markup;
pub mod plan;
pub mod portkey;
pub mod reprice;
pub mod route_markdown;
pub mod routing;
pub mod table;

use crate::analysis::RunAnalysis;

/// Report output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A terminal table.
    Table,
    /// The stable JSON contract.
    Json,
    /// A Markdown table.
    Md,
    /// A self-contained HTML page: summary, charts and the per-task drill-down.
    Html,
}

/// Renders an analysed run in one format.
pub trait Exporter {
    /// The whole output, ending without a trailing newline.
    fn render(&self, analysis: &RunAnalysis) -> String;
}

/// The exporter of a format; `width` fits the table (default: the terminal's width).
pub fn exporter(format: Format, width: Option<u16>) -> Box<dyn Exporter> {
    match format {
        Format::Table => {
            Box::new(width.map_or_else(table::Table::fit_terminal, table::Table::with_width))
        }
        Format::Json => Box::new(json::Json),
        Format::Md => Box::new(markdown::Markdown::default()),
        // Without the store's drill-down: `costbench report --format html` adds it.
        Format::Html => Box::new(html::Html::default()),
    }
}

/// Renders an analysed run in a format.
pub fn render(analysis: &RunAnalysis, format: Format, width: Option<u16>) -> String {
    exporter(format, width).render(analysis)
}
