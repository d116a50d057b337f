//! The progress bar: done/total, failures and live spend, on a terminal only. A consumer of
//! the run's event stream.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::events::{Consumer, RunEvent, Spend};

/// A progress display fed by the run's events.
pub struct Progress {
    bar: ProgressBar,
    /// Failed slots and spend so far, for the bar's message.
    state: Mutex<(u64, Spend)>,
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
            state: Mutex::new((0, Spend::default())),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Consumer for Progress {
    fn event(&self, e: &RunEvent<'_>) {
        if self.bar.is_hidden() {
            return;
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match e {
            RunEvent::AttemptFinished(row) => st.1.add(row.spent, row.cost_max),
            RunEvent::OutcomeFinished(row) => {
                st.0 += u64::from(!row.answered);
                self.bar.inc(1);
                self.bar
                    .set_message(format!("failed {} · spent {}", st.0, st.1));
            }
            _ => {}
        }
    }
}
