//! What provider health reads: every attempt of a run, per call, without folding outcomes or
//! pricing anything (`costbench runs --health` reads many runs; the analysis aggregates).

use rusqlite::params;

use super::{Delivery, ErrorKind, Store, StoreError};

/// One stored attempt, as health figures see it.
#[derive(Debug, Clone)]
pub struct CallFacts {
    /// Provider id.
    pub provider: String,
    /// Whether it is the first attempt stored for its outcome (suite × task × repeat).
    pub new_outcome: bool,
    /// Whether a request was made (or an answer replayed); a replay miss or missing key is not.
    pub is_call: bool,
    /// Whether it got an answer.
    pub answered: bool,
    /// Why it failed, if it did.
    pub kind: Option<ErrorKind>,
    /// Its stored message (never a key).
    pub message: Option<String>,
    /// Wall time, ms.
    pub latency_ms: f64,
    /// Time to first token of a streamed answer, ms.
    pub ttft_ms: Option<f64>,
}

impl Store {
    /// Calls `f` with every attempt of a run, ordered by provider, then outcome and try.
    pub fn for_each_call(
        &self,
        run_id: i64,
        mut f: impl FnMut(CallFacts),
    ) -> Result<(), StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT provider, suite, task_id, repeat, delivery, error_kind, error_message,
                    answered, latency_ms, ttft_ms
                 FROM attempts WHERE run_id = ?1
                 ORDER BY provider, suite, task_id, repeat, try",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = st.query(params![run_id]).map_err(|e| self.err(e))?;
        let mut last: Option<(String, String, String, i64)> = None;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let mut read = || -> rusqlite::Result<CallFacts> {
                let slot: (String, String, String, i64) =
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
                let kind = r
                    .get::<_, Option<String>>(5)?
                    .as_deref()
                    .and_then(ErrorKind::parse);
                let delivery = r
                    .get::<_, Option<String>>(4)?
                    .as_deref()
                    .and_then(Delivery::parse);
                // Attempts stored before deliveries were recorded: the kind says it.
                let is_call = match delivery {
                    Some(d) => d.is_call(),
                    None => !kind.is_some_and(ErrorKind::not_called),
                };
                let new_outcome = last.as_ref() != Some(&slot);
                last = Some(slot.clone());
                Ok(CallFacts {
                    provider: slot.0,
                    new_outcome,
                    is_call,
                    answered: r.get(7)?,
                    kind,
                    message: r.get(6)?,
                    latency_ms: r.get(8)?,
                    ttft_ms: r.get(9)?,
                })
            };
            f(read().map_err(|e| self.err(e))?);
        }
        Ok(())
    }
}
