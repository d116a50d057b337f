//! The terminal table, fitted to the width it is shown in.
//!
//! The full table is about 165 columns wide. When the width is known and the table does not
//! fit, its cells are wrapped (comfy-table's dynamic arrangement) while that stays readable;
//! below [`MIN_WRAPPED`] columns each row becomes a short block instead: its name, then its
//! figures one per line, so nothing is cut and no border breaks.

use comfy_table::{ContentArrangement, presets::UTF8_FULL_CONDENSED};

use super::{Exporter, markup};
use crate::analysis::RunAnalysis;

/// The narrowest width at which the wrapped table stays readable.
pub const MIN_WRAPPED: u16 = 140;

/// The text table.
pub struct Table {
    /// The width to fit; `None` asks the terminal on stdout (no limit when not a terminal).
    width: Option<u16>,
}

impl Table {
    /// Fits the table to the terminal on stdout, if any.
    pub fn fit_terminal() -> Table {
        Table { width: None }
    }

    /// A table fitted to `width` columns.
    pub fn with_width(width: u16) -> Table {
        Table { width: Some(width) }
    }

    /// The width to fit: the one given, else the terminal's when stdout is one.
    fn target_width(&self) -> Option<u16> {
        self.width.or_else(|| {
            let mut probe = comfy_table::Table::new();
            probe.set_content_arrangement(ContentArrangement::Dynamic);
            probe.width()
        })
    }
}

impl Exporter for Table {
    fn render(&self, a: &RunAnalysis) -> String {
        let header = markup::header(a);
        let rows: Vec<Vec<String>> = a.rows.iter().map(|r| markup::cells(&r.figures)).collect();
        let mut t = comfy_table::Table::new();
        t.load_style(UTF8_FULL_CONDENSED).set_header(header.clone());
        for r in &rows {
            t.add_row(r.clone());
        }
        let natural = t.to_string();
        let natural_width = natural
            .lines()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0);
        let body = match self.target_width() {
            Some(w) if natural_width > usize::from(w) && w >= MIN_WRAPPED => {
                t.set_content_arrangement(ContentArrangement::Dynamic)
                    .set_width(w);
                t.to_string()
            }
            Some(w) if natural_width > usize::from(w) => compact(&header, &rows),
            _ => natural,
        };
        format!("{}\n{body}\n{}", markup::title(a), markup::footnote(a))
    }
}

/// One block per row: `suite / provider`, then each other figure on its own line.
fn compact(header: &[String], rows: &[Vec<String>]) -> String {
    let label = header
        .iter()
        .skip(2)
        .map(|h| h.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("{} / {}\n", r[0], r[1]));
        for (h, c) in header.iter().zip(r).skip(2) {
            out.push_str(&format!("  {h:<label$}  {c}\n"));
        }
    }
    out.trim_end().to_string()
}
