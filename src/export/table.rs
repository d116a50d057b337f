//! The terminal table.

use comfy_table::{ContentArrangement, presets::UTF8_FULL_CONDENSED};

use super::{Exporter, markup};
use crate::analysis::RunAnalysis;

/// The text table, wrapped to a width when one is known.
pub struct Table {
    width: Option<u16>,
}

impl Table {
    /// Fits the table to the terminal on stdout, if any (comfy-table reads its width).
    pub fn fit_terminal() -> Table {
        Table { width: None }
    }

    /// A table wrapped to `width` columns.
    pub fn with_width(width: u16) -> Table {
        Table { width: Some(width) }
    }
}

impl Exporter for Table {
    fn render(&self, a: &RunAnalysis) -> String {
        let mut t = comfy_table::Table::new();
        t.load_style(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(markup::header(a));
        if let Some(w) = self.width {
            t.set_width(w);
        }
        for r in &a.rows {
            t.add_row(markup::cells(&r.figures));
        }
        format!("{}\n{t}\n{}", markup::title(a), markup::footnote(a))
    }
}
