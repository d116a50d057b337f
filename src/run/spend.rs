//! The spend cap (`costbench run --max-spend USD`): no call starts unless what the run has
//! spent, plus every call in flight at its bound, plus this call's own bound stays within the
//! cap.
//!
//! A call's bound is what [`crate::providers::bound`] gives for an unknown cost: its prompt
//! (the request's UTF-8 length) at the dearest prompt rate plus its completion cap at the
//! dearest output rate. So as long as a provider bills no more than the completion cap it was
//! sent, the run never spends past the cap, however many calls run at once. What has been
//! spent counts known costs exactly and calls of unknown cost at their bound, earlier sessions
//! of the same run included (read back from the store when a run resumes).
//!
//! A call that does not fit waits while other calls are in flight (they usually cost less than
//! their bound, and free room when they end); the run stops only when nothing is in flight and
//! the call still does not fit. Its spend then ends within one call's bound of the cap.
//! Retries are calls too: each try is admitted on its own.

use std::sync::Mutex;

use tokio::sync::Notify;

use crate::providers::{ChatRequest, Money, ProviderConfig, Tally, bound, protocol_for};
use crate::suite::Suite;

/// Why a capped run stopped calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapStop {
    /// The cap.
    pub cap: Money,
    /// What the run had spent (unknown costs at their bound), earlier sessions included.
    pub spent: Money,
    /// The bound of the call that did not fit; `None` when it had none (no price or no
    /// completion cap), or when an earlier call's unknown cost had none.
    pub refused_bound: Option<Money>,
}

#[derive(Debug, Default)]
struct State {
    /// Every attempt recorded so far.
    spent: Tally,
    /// The bounds of the calls in flight, added up.
    in_flight: Money,
    /// How many calls are in flight.
    calls: u64,
    /// Set once, when the run stops calling.
    stop: Option<CapStop>,
}

/// The run's spend cap: admits calls while they fit (see the module docs).
#[derive(Debug)]
pub struct Budget {
    cap: Money,
    state: Mutex<State>,
    /// Woken when a call ends or the run stops.
    changed: Notify,
}

/// A call admitted by the [`Budget`]: its bound counts as in flight until it is dropped.
#[must_use]
#[derive(Debug)]
pub struct Permit<'a> {
    budget: Option<&'a Budget>,
    bound: Money,
}

impl Permit<'_> {
    /// A permit of a run without a cap.
    pub fn unlimited() -> Permit<'static> {
        Permit {
            budget: None,
            bound: Money::ZERO,
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Some(b) = self.budget {
            {
                let mut s = b.lock();
                s.in_flight = Money(s.in_flight.0 - self.bound.0);
                s.calls -= 1;
            }
            b.changed.notify_waiters();
        }
    }
}

/// What a reservation found.
enum Try<'a> {
    Admitted(Permit<'a>),
    Wait,
    Stopped(CapStop, bool),
}

impl Budget {
    /// A cap of `cap`, of which `spent_before` (an earlier session's spend) is already used.
    pub fn new(cap: Money, spent_before: Tally) -> Budget {
        Budget {
            cap,
            state: Mutex::new(State {
                spent: spent_before,
                ..State::default()
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until a call of `bound` fits and admits it; `None` when the run stopped at the
    /// cap. The `bool` is `true` for the one caller whose refusal stopped the run.
    pub async fn admit(&self, bound: Option<Money>) -> Result<Permit<'_>, (CapStop, bool)> {
        loop {
            // Registered before the state is read, so a call ending in between still wakes us.
            let notified = self.changed.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            match self.try_admit(bound) {
                Try::Admitted(p) => return Ok(p),
                Try::Stopped(stop, first) => return Err((stop, first)),
                Try::Wait => notified.await,
            }
        }
    }

    fn try_admit(&self, bound: Option<Money>) -> Try<'_> {
        let mut s = self.lock();
        if let Some(stop) = s.stop {
            return Try::Stopped(stop, false);
        }
        let spent = s.spent.max();
        let fits = match (spent, bound) {
            (Some(spent), Some(b)) => spent.plus(s.in_flight).plus(b) <= self.cap,
            _ => false,
        };
        if fits {
            let b = bound.unwrap_or_default();
            s.in_flight = s.in_flight.plus(b);
            s.calls += 1;
            return Try::Admitted(Permit {
                budget: Some(self),
                bound: b,
            });
        }
        if s.calls > 0 {
            return Try::Wait;
        }
        let stop = CapStop {
            cap: self.cap,
            spent: spent.unwrap_or(s.spent.known.plus(s.spent.bound)),
            refused_bound: bound.filter(|_| spent.is_some()),
        };
        s.stop = Some(stop);
        drop(s);
        self.changed.notify_waiters();
        Try::Stopped(stop, true)
    }

    /// Counts one recorded attempt: its known spend, or its bound when the cost is unknown.
    pub fn record(&self, spent: Option<Money>, bound: Option<Money>) {
        self.lock().spent.add(spent, bound);
    }

    /// Why the run stopped calling, once it has.
    pub fn stopped(&self) -> Option<CapStop> {
        self.lock().stop
    }

    /// What has been spent so far, unknown costs at their bound (`None`: one has none).
    pub fn spent(&self) -> Option<Money> {
        self.lock().spent.max()
    }
}

/// Why the cap could not bound some calls, one line each: a provider without a price, or a
/// suite sending it no completion cap (`max_tokens` in the suite's `params` or the provider's
/// `extra_body`). Such a call's cost has no upper bound, so no cap can be kept with it.
pub fn unboundable(suites: &[Suite], providers: &[ProviderConfig]) -> Vec<String> {
    let mut problems = Vec::new();
    for p in providers {
        if p.mode == crate::providers::Mode::Batch {
            // The gate stands where online calls go out; a batch submits many at once.
            problems.push(format!(
                "provider `{}` runs in `mode: batch`, which --max-spend does not cover yet; run it \
                 without a cap, or `mode: online`",
                p.id
            ));
            continue;
        }
        if p.price.is_none() {
            problems.push(format!(
                "provider `{}` has no price, so its calls cannot be bounded; give it a `price` \
                 (a local or free model: `price: {{input: 0, output: 0}}`)",
                p.id
            ));
            continue;
        }
        let Some(protocol) = protocol_for(&p.protocol) else {
            continue; // refused when the providers file was loaded
        };
        for s in suites {
            let body = protocol.body(
                p,
                &ChatRequest {
                    messages: Vec::new(),
                    params: s.params.clone(),
                },
            );
            if bound::completion_cap(&body).is_none() {
                problems.push(format!(
                    "suite `{}` sends provider `{}` no completion cap, so its calls cannot be \
                     bounded; set `params: {{max_tokens: N}}` in the suite",
                    s.name, p.id
                ));
            }
        }
    }
    problems
}

/// Why the cap could not bound the suites' judge calls: a judge provider without a price
/// (a judge always sends its `max_tokens`, so the completion is capped).
pub fn unboundable_judges(suites: &[Suite], judges: &[ProviderConfig]) -> Vec<String> {
    let mut ids: Vec<&str> = suites
        .iter()
        .flat_map(|s| &s.graders)
        .filter_map(|g| g.as_judge())
        .map(|j| j.provider.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .filter(|id| judges.iter().any(|p| p.id == *id && p.price.is_none()))
        .map(|id| {
            format!(
                "judge provider `{id}` has no price, so its calls cannot be bounded; give it a \
                 `price`"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(s: &str) -> Money {
        Money::parse_usd(s).unwrap()
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_call_is_admitted_only_while_spent_plus_in_flight_plus_its_bound_fits() {
        rt().block_on(async {
            let b = Budget::new(usd("1"), Tally::default());
            let p1 = b.admit(Some(usd("0.4"))).await.unwrap();
            let p2 = b.admit(Some(usd("0.6"))).await.unwrap(); // exactly at the cap
            // A third call waits while the two are in flight; the first ends having cost
            // 0.1, which frees room for a 0.3 call (0.1 spent + 0.6 in flight + 0.3 = 1).
            let third = b.admit(Some(usd("0.3")));
            let mut third = std::pin::pin!(third);
            assert!(
                futures_util::FutureExt::now_or_never(third.as_mut()).is_none(),
                "admitted past the cap"
            );
            b.record(Some(usd("0.1")), None);
            drop(p1);
            let p3 = third.await.unwrap();
            assert!(b.stopped().is_none());
            drop((p2, p3));
        });
    }

    #[test]
    fn the_run_stops_only_when_nothing_is_in_flight_and_the_call_does_not_fit() {
        rt().block_on(async {
            let b = Budget::new(usd("1"), Tally::default());
            let p = b.admit(Some(usd("0.5"))).await.unwrap();
            b.record(Some(usd("0.7")), None);
            drop(p);
            let (stop, first) = b.admit(Some(usd("0.5"))).await.unwrap_err();
            assert!(first);
            assert_eq!(
                stop,
                CapStop {
                    cap: usd("1"),
                    spent: usd("0.7"),
                    refused_bound: Some(usd("0.5"))
                }
            );
            // Every later caller learns it too, without being the one that stopped it.
            let (again, first) = b.admit(Some(usd("0.0001"))).await.unwrap_err();
            assert!(!first);
            assert_eq!(again, stop);
        });
    }

    #[test]
    fn earlier_spend_and_unknown_costs_at_their_bound_count() {
        rt().block_on(async {
            let before = {
                let mut t = Tally::default();
                t.add(Some(usd("0.5")), None);
                t.add(None, Some(usd("0.3")));
                t
            };
            let b = Budget::new(usd("1"), before);
            assert_eq!(b.spent(), Some(usd("0.8")));
            assert!(b.admit(Some(usd("0.21"))).await.is_err());
            // A cost without a bound can no longer be kept under any cap.
            let b = Budget::new(usd("100"), Tally::default());
            b.record(None, None);
            let (stop, _) = b.admit(Some(usd("0.01"))).await.unwrap_err();
            assert_eq!(stop.refused_bound, None);
            // And neither can a call without a bound.
            let b = Budget::new(usd("100"), Tally::default());
            assert!(b.admit(None).await.is_err());
        });
    }
}
