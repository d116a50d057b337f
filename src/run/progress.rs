//! The progress bar: done/total, failures and live spend, on a terminal only.

use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::providers::Money;
use crate::store::AttemptRow;

/// A progress display fed by stored attempts.
pub struct Progress {
    bar: ProgressBar,
    failed: AtomicU64,
}

impl Progress {
    /// A bar over `total` slots, drawn only when `show` and stderr is a terminal.
    pub fn new(total: u64, show: bool) -> Progress {
        let bar = if show && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} {msg} [{elapsed_precise}, eta {eta}]",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        } else {
            ProgressBar::hidden()
        };
        Progress {
            bar,
            failed: AtomicU64::new(0),
        }
    }

    /// Counts a finished slot (final attempt) and refreshes the spend.
    pub fn update(&self, row: &AttemptRow, spent: Option<Money>) {
        if !row.is_final {
            return;
        }
        if !row.answered {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.bar.inc(1);
        if !self.bar.is_hidden() {
            let spent = spent.map_or_else(|| "unknown".to_string(), |m| format!("${:.4}", m.usd()));
            self.bar.set_message(format!(
                "failed {} · spent {spent}",
                self.failed.load(Ordering::Relaxed)
            ));
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
