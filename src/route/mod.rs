//! `costbench route`: which provider, or cascade of providers, should own each workload class.
//!
//! From stored runs alone (no call is made): per class, every single provider and cascades of two
//! and three providers from the class's cost–acceptance frontier are simulated on the recorded
//! outcomes ([`data::simulate`]). The choice is the cheapest candidate by cost per accepted
//! outcome whose acceptance interval's lower bound reaches the class threshold and that meets the
//! policy ([`policy`]). It must win on at least `stability` of seeded bootstrap resamples of the
//! tasks, else the class reads "no clear winner" with the contenders. Because choosing on the
//! same tasks that measure the winner flatters it, the route is also chosen on k−1 folds of
//! tasks and measured on the held-out fold, beside four baselines on the same held-out tasks.
//!
//! The result is one typed [`RoutePlan`]; the exports (`export::routing`, `litellm`, `portkey`)
//! and any later report or gate render it and decide nothing.

mod crossval;
pub mod data;
pub mod policy;

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::Serialize;

use crate::analysis::{
    self, Acceptance, AnalysisOptions, DELTA_ABOVE_TASKS, RunAnalysis, RuntimeChecks,
};
use crate::stats::{self, Outcome, limit::SumsLimit, rng::Rng};
use data::{ClassData, Clustered, Sim, dot, items_per_cluster, simulate};
use policy::{BATCH_TAG, ClassPolicy, Known, Policy};

/// Most frontier providers cascades are built from: C(8,2) + C(8,3) = 84 cascades a class.
pub const MAX_FRONTIER: usize = 8;

/// Most fallbacks listed after the choice.
pub const MAX_FALLBACKS: usize = 3;

/// One-sided normal quantile of the stability target used to say how many tasks would separate
/// two contenders (z₀.₉₀).
const Z_90: f64 = 1.281_551_565_545;

/// Why a route cannot be drawn from these runs and this policy.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The policy's incumbent of a class was not measured on all of the class's outcomes.
    #[error("class `{class}`: the incumbent `{id}` {why}, so its bill cannot be compared")]
    Incumbent {
        /// The class.
        class: String,
        /// The provider.
        id: String,
        /// What is missing.
        why: String,
    },
}

impl RouteError {
    /// The fix to suggest.
    pub fn hint(&self) -> &'static str {
        "name as incumbent a provider run on every task of the class, or add a run that measures it (--run ID, repeatable)"
    }
}

/// How a class ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassVerdict {
    /// A candidate qualifies and wins on at least `stability` of the resamples.
    Chosen,
    /// Candidates qualify but none wins often enough; `choice` is the leading one.
    NoClearWinner,
    /// No candidate qualifies.
    NoneQualifies,
}

/// What a candidate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One provider.
    Provider,
    /// Call the first; escalate when a runtime check rejects the answer.
    Cascade,
}

/// A USD figure with its interval.
#[derive(Debug, Clone, Serialize)]
pub struct Usd {
    /// Point estimate (`null`: undefined, e.g. nothing accepted).
    pub estimate: Option<f64>,
    /// Lower bound.
    pub low: Option<f64>,
    /// Upper bound (`null`: unbounded).
    pub high: Option<f64>,
    /// Interval method.
    pub method: &'static str,
}

/// A candidate's in-sample figures.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// Provider or cascade.
    pub kind: Kind,
    /// Provider ids in call order.
    pub providers: Vec<String>,
    /// `a` or `a -> b -> c`.
    pub name: String,
    /// Acceptance of the final answers.
    pub acceptance: Acceptance,
    /// (token cost of every step + rejected × rejection cost) / accepted.
    pub cost_per_accepted_usd: Usd,
    /// Mean token cost of one request, every step included.
    pub cost_per_request_usd: f64,
    /// p95 of the latency of the steps taken (nearest rank), ms.
    pub p95_latency_ms: Option<f64>,
    /// Share of requests escalated past the first step (cascades only).
    pub escalated_share: Option<f64>,
    /// Accepted outcomes.
    pub accepted: u64,
    /// Outcomes.
    pub outcomes: u64,
    /// Calls of unknown cost among the steps' providers (left out of the costs).
    pub unpriced_calls: u64,
}

/// A candidate that won some resamples when none won enough.
#[derive(Debug, Clone, Serialize)]
pub struct Contender {
    /// Its figures.
    #[serde(flatten)]
    pub figures: Figures,
    /// Share of resamples it won.
    pub win_share: f64,
}

/// A candidate not chosen, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    /// `a` or `a -> b`.
    pub candidate: String,
    /// Why.
    pub reason: String,
}

/// How a route or a baseline did on held-out tasks.
#[derive(Debug, Clone, Serialize)]
pub struct HeldOut {
    /// `routed`, `best_single`, `cheapest_qualifier`, `round_robin` or `oracle`.
    pub name: &'static str,
    /// What each fold picked (on its training folds).
    pub per_fold: Vec<String>,
    /// Acceptance on the held-out tasks.
    pub acceptance: Acceptance,
    /// Cost per accepted outcome on the held-out tasks.
    pub cost_per_accepted_usd: Usd,
}

/// The route against one baseline on the same held-out tasks.
#[derive(Debug, Clone, Serialize)]
pub struct Versus {
    /// The baseline.
    pub baseline: &'static str,
    /// baseline − route in USD per accepted (positive: the route is cheaper), or for the
    /// oracle the regret route − oracle.
    pub difference_usd: Usd,
    /// `better`, `worse` or `indistinguishable` (the interval straddles 0).
    pub route_is: &'static str,
}

/// Cross-validated figures of the recommendation.
#[derive(Debug, Clone, Serialize)]
pub struct CrossValidation {
    /// Folds over tasks.
    pub folds: usize,
    /// What was done.
    pub method: &'static str,
    /// The route chosen on each fold's training tasks, measured on its held-out tasks.
    pub routed: HeldOut,
    /// Baselines on the same held-out tasks.
    pub baselines: Vec<HeldOut>,
    /// `saving vs best single` = best single − route.
    pub saving_vs_best_single: Versus,
    /// cheapest qualifier − route.
    pub saving_vs_cheapest_qualifier: Versus,
    /// round robin − route.
    pub saving_vs_round_robin: Versus,
    /// `regret vs oracle` = route − oracle.
    pub regret_vs_oracle: Versus,
    /// Folds whose training tasks had no qualifying candidate (the best single served them).
    pub folds_without_qualifier: usize,
}

/// The projected monthly bill of a class.
#[derive(Debug, Clone, Serialize)]
pub struct Monthly {
    /// Requests a month (the policy's `monthly_volume`).
    pub volume: f64,
    /// The recommendation's bill: volume × mean token cost per request.
    pub recommendation_usd: Option<Usd>,
    /// The incumbent.
    pub incumbent: Option<String>,
    /// The incumbent's bill.
    pub incumbent_usd: Option<Usd>,
    /// incumbent − recommendation (positive: the recommendation is cheaper).
    pub saving_usd: Option<Usd>,
}

/// The route of one workload class.
#[derive(Debug, Clone, Serialize)]
pub struct ClassRoute {
    /// Workload class.
    pub workload: String,
    /// Its suites.
    pub suites: Vec<String>,
    /// Tasks (clusters) compared.
    pub tasks: usize,
    /// Outcomes (task × repeat) compared.
    pub outcomes: usize,
    /// Outcomes left out because some provider's graders could not decide them.
    pub dropped_outcomes: usize,
    /// Acceptance the choice's lower bound must reach.
    pub quality_threshold: Option<f64>,
    /// `policy`, `suite` or `none`.
    pub threshold_source: &'static str,
    /// chosen, no_clear_winner or none_qualifies.
    pub verdict: ClassVerdict,
    /// The choice (for `no_clear_winner`, the leading contender).
    pub choice: Option<Figures>,
    /// Share of task resamples the choice won.
    pub stable_share: Option<f64>,
    /// Resamples behind `stable_share`.
    pub resamples: usize,
    /// How they were drawn: `task-bootstrap`, or `task-bootstrap-normal-limit` above
    /// [`DELTA_ABOVE_TASKS`] tasks.
    pub resample_method: &'static str,
    /// When no clear winner: the candidates that won resamples.
    pub contenders: Vec<Contender>,
    /// When no clear winner: more tasks that would let the leader win 90% of resamples.
    pub tasks_needed: Option<u64>,
    /// How `tasks_needed` is estimated.
    pub tasks_needed_method: Option<&'static str>,
    /// The next qualifying candidates, cheapest first.
    pub fallbacks: Vec<Figures>,
    /// Every other candidate, with why.
    pub rejected: Vec<Rejected>,
    /// Cross-validated figures (absent when there are fewer tasks than folds).
    pub cross_validation: Option<CrossValidation>,
    /// The monthly bill, when the policy gives a volume.
    pub monthly: Option<Monthly>,
    /// Anything else the reader should know.
    pub notes: Vec<String>,
}

/// The monthly bill of every class with a volume.
#[derive(Debug, Clone, Serialize)]
pub struct MonthlyTotal {
    /// The classes summed.
    pub classes: Vec<String>,
    /// The recommendations' bill.
    pub recommendation_usd: Usd,
    /// The incumbents' bill.
    pub incumbent_usd: Usd,
    /// incumbent − recommendation.
    pub saving_usd: Usd,
}

/// A run the route was drawn from.
#[derive(Debug, Clone, Serialize)]
pub struct RunRef {
    /// Run id.
    pub id: i64,
    /// When it started; its prices are those of its providers file then.
    pub created_at: String,
}

/// Per-token prices in USD, as gateways take them.
#[derive(Debug, Clone, Serialize)]
pub struct TokenPrices {
    /// Prompt token.
    pub input: f64,
    /// Completion token.
    pub output: f64,
    /// Cached prompt token.
    pub cached_input: Option<f64>,
    /// Prompt token written to a cache.
    pub cache_write: Option<f64>,
}

/// A provider as gateways need it (never a key: only its variable's name).
#[derive(Debug, Clone, Serialize)]
pub struct Deployment {
    /// Provider id.
    pub id: String,
    /// Wire protocol (`openai`, `anthropic`, `gemini`).
    pub protocol: String,
    /// Model name.
    pub model: String,
    /// Base URL.
    pub base_url: String,
    /// The key's environment variable.
    pub api_key_env: Option<String>,
    /// Prices used.
    pub price_per_token_usd: Option<TokenPrices>,
}

/// Settings the route was drawn with.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Confidence of every interval.
    pub confidence: f64,
    /// Share of resamples the choice must win.
    pub stability: f64,
    /// Resamples of the stability check.
    pub resamples: usize,
    /// Cross-validation folds.
    pub folds: usize,
    /// Bootstrap resamples of each interval.
    pub bootstrap: usize,
    /// Seed of every resample.
    pub seed: u64,
    /// Most frontier providers cascades are built from.
    pub max_frontier: usize,
}

/// The routing recommendation: the typed result every routing export renders.
#[derive(Debug, Clone, Serialize)]
pub struct RoutePlan {
    /// Runs read.
    pub runs: Vec<RunRef>,
    /// The policy file (`null`: defaults).
    pub policy: Option<String>,
    /// Settings.
    pub settings: Settings,
    /// Per class.
    pub classes: Vec<ClassRoute>,
    /// Every class with a volume and an incumbent, summed.
    pub monthly_total: Option<MonthlyTotal>,
    /// The providers the plan names.
    pub providers: Vec<Deployment>,
}

/// What a route is drawn from: runs lined up by class.
#[derive(Debug, Clone)]
pub struct RouteInput {
    /// The runs.
    pub runs: Vec<RunRef>,
    /// Per class.
    pub classes: Vec<ClassData>,
    /// Every provider of the runs.
    pub providers: Vec<Deployment>,
    /// Each provider's tags.
    pub tags: BTreeMap<String, BTreeMap<String, String>>,
}

impl RouteInput {
    /// Lines up analysed runs (with their runtime checks, in the same order) by class.
    pub fn from_runs(runs: &[&RunAnalysis], runtime: &[&RuntimeChecks]) -> RouteInput {
        let mut providers: Vec<Deployment> = Vec::new();
        let mut tags = BTreeMap::new();
        for r in runs {
            for p in &r.run.plan.providers {
                if providers.iter().any(|d| d.id == p.id) {
                    continue;
                }
                let per_token = |r: crate::providers::Rate| r.0 as f64 / 1e15;
                providers.push(Deployment {
                    id: p.id.clone(),
                    protocol: p.protocol.clone(),
                    model: p.model.clone(),
                    base_url: p.base_url.clone(),
                    api_key_env: p.api_key_env.clone(),
                    price_per_token_usd: p.price.as_ref().map(|pr| TokenPrices {
                        input: per_token(pr.input),
                        output: per_token(pr.output),
                        cached_input: pr.cached_input.map(per_token),
                        cache_write: pr.cache_write.map(per_token),
                    }),
                });
                tags.insert(p.id.clone(), p.tags.clone());
            }
        }
        RouteInput {
            runs: runs
                .iter()
                .map(|r| RunRef {
                    id: r.run.id,
                    created_at: r.run.created_at.clone(),
                })
                .collect(),
            classes: data::classes(runs, runtime),
            providers,
            tags,
        }
    }

    /// The names a policy may use.
    pub fn known(&self) -> Known {
        Known {
            classes: self.classes.iter().map(|c| c.workload.clone()).collect(),
            providers: self.providers.iter().map(|p| p.id.clone()).collect(),
            tags: self.tags.values().flat_map(|t| t.keys().cloned()).collect(),
        }
    }

    /// Refuses a policy whose incumbent of a class cannot be compared on it.
    pub fn check(&self, policy: &Policy) -> Result<(), RouteError> {
        for c in &self.classes {
            let Some(id) = policy.class(&c.workload).incumbent else {
                continue;
            };
            if c.provider(&id).is_none() {
                let why = c
                    .excluded
                    .iter()
                    .find(|(p, _)| *p == id)
                    .map_or("was not run on this class".to_string(), |(_, w)| {
                        format!("was {w}")
                    });
                return Err(RouteError::Incumbent {
                    class: c.workload.clone(),
                    id,
                    why,
                });
            }
        }
        Ok(())
    }
}

/// Draws the route of every class.
pub fn route(input: &RouteInput, policy: &Policy, opts: &AnalysisOptions) -> RoutePlan {
    let mut classes = Vec::new();
    let mut bills: Vec<Bills> = Vec::new();
    for (i, c) in input.classes.iter().enumerate() {
        let cp = policy.class(&c.workload);
        let (route, b) = route_class(c, &cp, policy, opts, i as u64);
        bills.extend(b);
        classes.push(route);
    }
    let monthly_total = (!bills.is_empty()).then(|| monthly_total(&bills, opts.confidence));
    RoutePlan {
        runs: input.runs.clone(),
        policy: policy.file.clone(),
        settings: Settings {
            confidence: opts.confidence,
            stability: policy.stability,
            resamples: policy.resamples,
            folds: policy.folds,
            bootstrap: opts.bootstrap,
            seed: opts.seed,
            max_frontier: MAX_FRONTIER,
        },
        classes,
        monthly_total,
        providers: input.providers.clone(),
    }
}

/// One class's monthly bills: the point estimates and their replicates over the same task
/// resamples (classes are disjoint, so replicate r of each can be summed).
struct Bills {
    class: String,
    recommendation: f64,
    incumbent: f64,
    recommendation_reps: Vec<f64>,
    incumbent_reps: Vec<f64>,
}

/// The bills of every class summed, resample by resample.
fn monthly_total(bills: &[Bills], confidence: f64) -> MonthlyTotal {
    let b = bills
        .iter()
        .map(|x| x.recommendation_reps.len().min(x.incumbent_reps.len()))
        .min()
        .unwrap_or(0);
    let rec: Vec<f64> = (0..b)
        .map(|r| bills.iter().map(|x| x.recommendation_reps[r]).sum())
        .collect();
    let inc: Vec<f64> = (0..b)
        .map(|r| bills.iter().map(|x| x.incumbent_reps[r]).sum())
        .collect();
    let save: Vec<f64> = inc.iter().zip(&rec).map(|(a, b)| a - b).collect();
    let rec_point: f64 = bills.iter().map(|x| x.recommendation).sum();
    let inc_point: f64 = bills.iter().map(|x| x.incumbent).sum();
    MonthlyTotal {
        classes: bills.iter().map(|x| x.class.clone()).collect(),
        recommendation_usd: percentile_usd(rec_point, rec, confidence),
        incumbent_usd: percentile_usd(inc_point, inc, confidence),
        saving_usd: percentile_usd(inc_point - rec_point, save, confidence),
    }
}

/// One candidate of a class.
struct Candidate {
    steps: Vec<usize>,
    name: String,
    sim: Sim,
    clus: Clustered,
    /// Why the policy rules it out, before any statistics.
    ruled_out: Option<String>,
}

impl Candidate {
    /// The candidate calling `steps` in order, simulated on the class's recorded outcomes.
    fn simulated(class: &ClassData, steps: Vec<usize>) -> Candidate {
        let sim = simulate(class, &steps);
        Candidate {
            name: steps
                .iter()
                .map(|&p| class.providers[p].id.as_str())
                .collect::<Vec<_>>()
                .join(" -> "),
            clus: Clustered::of(class, &sim),
            sim,
            steps,
            ruled_out: None,
        }
    }
}

/// Picks the cheapest qualifying candidate under task weights.
struct Chooser<'a> {
    cands: &'a [Candidate],
    /// Candidates the policy allows.
    allowed: Vec<usize>,
    items: Vec<f64>,
    z: f64,
    threshold: Option<f64>,
}

/// A candidate's sums under some task weights.
#[derive(Clone, Copy)]
struct Weighed {
    n: f64,
    accepted: f64,
    cost: f64,
}

impl Weighed {
    fn rate(self) -> f64 {
        self.accepted / self.n
    }
    fn per_accepted(self) -> f64 {
        if self.accepted > 0.0 {
            self.cost / self.accepted
        } else {
            f64::INFINITY
        }
    }
}

impl Chooser<'_> {
    fn weigh(&self, w: &[f64], c: usize, n: f64) -> Weighed {
        Weighed {
            n,
            accepted: dot(w, &self.cands[c].clus.accepted),
            cost: dot(w, &self.cands[c].clus.cost),
        }
    }

    /// Whether a candidate's acceptance interval's lower bound reaches the threshold.
    fn qualifies(&self, s: Weighed) -> bool {
        if s.n <= 0.0 || s.accepted <= 0.0 {
            return false;
        }
        match self.threshold {
            None => true,
            Some(t) => stats::binomial::wilson_bounds(s.rate(), s.n, self.z).0 >= t,
        }
    }

    /// The cheapest qualifier among `among` (ties: fewer steps, then candidate order).
    fn pick_among(&self, w: &[f64], among: &[usize]) -> Option<usize> {
        let n = dot(w, &self.items);
        let sums: Vec<(usize, Weighed)> = among.iter().map(|&c| (c, self.weigh(w, c, n))).collect();
        self.cheapest(&sums)
    }

    /// The cheapest qualifier of candidates already weighed.
    fn cheapest(&self, sums: &[(usize, Weighed)]) -> Option<usize> {
        sums.iter()
            .copied()
            .filter(|(_, s)| self.qualifies(*s))
            .min_by(|a, b| {
                a.1.per_accepted()
                    .total_cmp(&b.1.per_accepted())
                    .then(
                        self.cands[a.0]
                            .steps
                            .len()
                            .cmp(&self.cands[b.0].steps.len()),
                    )
                    .then(a.0.cmp(&b.0))
            })
            .map(|(c, _)| c)
    }

    fn pick(&self, w: &[f64]) -> Option<usize> {
        self.pick_among(w, &self.allowed)
    }
}

/// Why a provider's tags or delivery keep it out of a class.
fn ruled_out(class: &ClassData, p: usize, cp: &ClassPolicy) -> Option<String> {
    let prov = &class.providers[p];
    if !prov.priced {
        return Some("unknown cost: none of its calls has a known cost (no price?)".into());
    }
    for (tag, allowed) in &cp.required_tags {
        match prov.tags.get(tag) {
            None => {
                return Some(format!(
                    "tag: has no `{tag}` tag; the class requires one of {}",
                    allowed.join(", ")
                ));
            }
            Some(v) if !allowed.contains(v) => {
                return Some(format!(
                    "tag: `{tag}` is `{v}`; the class requires one of {}",
                    allowed.join(", ")
                ));
            }
            Some(_) => {}
        }
    }
    for (tag, refused) in &cp.forbidden_tags {
        if let Some(v) = prov.tags.get(tag).filter(|v| refused.contains(v)) {
            return Some(format!("tag: `{tag}` is `{v}`, which the class forbids"));
        }
    }
    if !cp.batch_allowed && prov.tags.get(BATCH_TAG.0).is_some_and(|v| v == BATCH_TAG.1) {
        return Some(format!(
            "batch: a batch endpoint (tag {}: {}) and the class does not allow batch",
            BATCH_TAG.0, BATCH_TAG.1
        ));
    }
    None
}

/// The cost–acceptance frontier of the allowed providers, cheapest first, at most
/// [`MAX_FRONTIER`] of them (evenly spread along it, both ends kept).
fn frontier(allowed: &[usize], sims: &[Sim]) -> Vec<usize> {
    let figs: Vec<(usize, f64, f64)> = allowed
        .iter()
        .map(|&p| {
            let s = &sims[p];
            let n = s.accepted.len().max(1) as f64;
            let acc = s.accepted.iter().filter(|a| **a).count() as f64 / n;
            (p, s.tokens.iter().sum::<f64>() / n, acc)
        })
        .collect();
    let mut front: Vec<(usize, f64, f64)> = figs
        .iter()
        .copied()
        .filter(|&(p, c, a)| {
            !figs
                .iter()
                .any(|&(q, c2, a2)| q != p && c2 <= c && a2 >= a && (c2 < c || a2 > a))
        })
        .collect();
    front.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    // Equal figures (duplicates) keep only the first.
    front.dedup_by(|a, b| a.1 == b.1 && a.2 == b.2);
    let ids: Vec<usize> = front.iter().map(|f| f.0).collect();
    if ids.len() <= MAX_FRONTIER {
        return ids;
    }
    let last = ids.len() - 1;
    (0..MAX_FRONTIER)
        .map(|i| ids[i * last / (MAX_FRONTIER - 1)])
        .collect()
}

/// Nearest-rank percentile of unsorted values.
fn p95(v: &[f32]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_unstable_by(f32::total_cmp);
    let rank = (0.95 * s.len() as f64).ceil().max(1.0) as usize;
    Some(f64::from(s[rank.min(s.len()) - 1]))
}

/// A point estimate with the percentile interval of its bootstrap replicates.
fn percentile_usd(estimate: f64, mut reps: Vec<f64>, confidence: f64) -> Usd {
    reps.retain(|x| !x.is_nan());
    reps.sort_unstable_by(f64::total_cmp);
    let at = |q: f64| -> Option<f64> {
        if reps.is_empty() {
            return None;
        }
        let i = ((q * reps.len() as f64).ceil() as usize).clamp(1, reps.len()) - 1;
        reps.get(i).copied().filter(|x| x.is_finite())
    };
    Usd {
        estimate: Some(estimate),
        low: at((1.0 - confidence) / 2.0),
        high: at((1.0 + confidence) / 2.0),
        method: "cluster-bootstrap-percentile",
    }
}

/// Outcomes of a simulation for the statistics core (task = cluster).
fn outcomes_of(class: &ClassData, cost: &[f64], accepted: &[bool]) -> Vec<Outcome> {
    let mut out = Vec::with_capacity(cost.len());
    for t in 0..class.clusters() {
        for i in class.cluster_start[t]..class.cluster_start[t + 1] {
            out.push(Outcome {
                task: t as u32,
                accepted: accepted[i],
                cost: cost[i],
            });
        }
    }
    out
}

/// Acceptance with Wilson, or Wilson at the clustered effective size when tasks repeat.
fn rate_of(class: &ClassData, outcomes: &[Outcome], confidence: f64) -> Acceptance {
    let n = outcomes.len() as u64;
    let a = outcomes.iter().filter(|o| o.accepted).count() as u64;
    let interval = if class.clusters() as u64 == n {
        stats::wilson(a, n, confidence)
    } else {
        stats::acceptance_clustered(outcomes, confidence)
            .ok()
            .map(|c| c.interval)
    };
    Acceptance {
        rate: interval.map(|i| i.estimate),
        low: interval.map(|i| i.low),
        high: interval.map(|i| i.high),
        method: interval.map_or("wilson", |i| i.method),
    }
}

/// Cost per accepted outcome with the report's interval ([`analysis::cost_per_accepted_ci`]).
fn cpa_of(outcomes: &[Outcome], opts: &AnalysisOptions) -> Usd {
    let r = analysis::cost_per_accepted_ci(outcomes, opts);
    Usd {
        estimate: r.estimate,
        low: r.low,
        high: r.high,
        method: r.method,
    }
}

fn figures(class: &ClassData, c: &Candidate, opts: &AnalysisOptions) -> Figures {
    let outcomes = outcomes_of(class, &c.sim.cost, &c.sim.accepted);
    let n = outcomes.len();
    let cascade = c.steps.len() > 1;
    Figures {
        kind: if cascade {
            Kind::Cascade
        } else {
            Kind::Provider
        },
        providers: c
            .steps
            .iter()
            .map(|&p| class.providers[p].id.clone())
            .collect(),
        name: c.name.clone(),
        acceptance: rate_of(class, &outcomes, opts.confidence),
        cost_per_accepted_usd: cpa_of(&outcomes, opts),
        cost_per_request_usd: c.sim.tokens.iter().sum::<f64>() / n.max(1) as f64,
        p95_latency_ms: p95(&c.sim.latency_ms),
        escalated_share: cascade
            .then(|| 1.0 - c.sim.ended_at.first().copied().unwrap_or(0) as f64 / n.max(1) as f64),
        accepted: outcomes.iter().filter(|o| o.accepted).count() as u64,
        outcomes: n as u64,
        unpriced_calls: c
            .steps
            .iter()
            .map(|&p| class.providers[p].unpriced_calls)
            .sum(),
    }
}

/// What the stability resamples found.
struct Resampled {
    /// Winner of each resample.
    winners: Vec<Option<usize>>,
    /// Per resample, every candidate's cost per accepted outcome (∞ without acceptance).
    per_accepted: Vec<Vec<f64>>,
    /// Per resample, mean token cost per request of each candidate asked for.
    tokens: Vec<Vec<f64>>,
    /// How they were drawn ([`ClassRoute::resample_method`]).
    method: &'static str,
}

/// Resamples that reweigh every task.
const TASK_BOOTSTRAP: &str = "task-bootstrap";
/// Resamples drawn from the sums' normal limit.
const NORMAL_LIMIT: &str = "task-bootstrap-normal-limit";

/// Resamples whole tasks `b` times and weighs every allowed candidate on each. With `normal`
/// (above [`DELTA_ABOVE_TASKS`] tasks) the resampled sums are drawn from their joint normal
/// limit ([`SumsLimit`]: same mean and covariance) instead of reweighing every task, which
/// keeps a class of a few hundred thousand tasks to milliseconds.
fn resample(
    ch: &Chooser<'_>,
    k: usize,
    b: usize,
    seed: u64,
    watch: &[usize],
    normal: bool,
) -> Resampled {
    // The sums a resample needs: items, each allowed candidate's accepted and cost, and each
    // watched candidate's tokens.
    let mut features: Vec<&[f64]> = vec![&ch.items];
    for &c in &ch.allowed {
        features.push(&ch.cands[c].clus.accepted);
        features.push(&ch.cands[c].clus.cost);
    }
    for &c in watch {
        features.push(&ch.cands[c].clus.tokens);
    }
    let limit = normal.then(|| SumsLimit::of(&features));
    let all = ch.cands.len();
    let rows: Vec<(Option<usize>, Vec<f64>, Vec<f64>)> = (0..b)
        .into_par_iter()
        .with_min_len(8)
        .map(|r| {
            let mut rng = Rng::stream(seed, r as u64);
            let drawn = match &limit {
                Some(l) => l.draw(&mut rng),
                None => {
                    let mut w = vec![0.0; k];
                    for _ in 0..k {
                        w[rng.index(k)] += 1.0;
                    }
                    features.iter().map(|f| dot(&w, f)).collect()
                }
            };
            let n = drawn[0];
            // A normal draw can stray past what counts can be; clamp it back.
            let sums: Vec<(usize, Weighed)> = ch
                .allowed
                .iter()
                .enumerate()
                .map(|(i, &c)| {
                    let accepted = drawn[1 + 2 * i].clamp(0.0, n.max(0.0));
                    let cost = drawn[2 + 2 * i].max(0.0);
                    (c, Weighed { n, accepted, cost })
                })
                .collect();
            let mut cpa = vec![f64::INFINITY; all];
            for (c, s) in &sums {
                cpa[*c] = s.per_accepted();
            }
            let first_watched = 1 + 2 * ch.allowed.len();
            let tokens = drawn[first_watched..].iter().map(|t| t / n).collect();
            (ch.cheapest(&sums), cpa, tokens)
        })
        .collect();
    let mut out = Resampled {
        winners: Vec::with_capacity(b),
        per_accepted: Vec::with_capacity(b),
        tokens: Vec::with_capacity(b),
        method: if normal { NORMAL_LIMIT } else { TASK_BOOTSTRAP },
    };
    for (w, c, t) in rows {
        out.winners.push(w);
        out.per_accepted.push(c);
        out.tokens.push(t);
    }
    out
}

/// A class's candidates and threshold, before any choice.
struct Prepared {
    cands: Vec<Candidate>,
    threshold: Option<f64>,
    threshold_source: &'static str,
    notes: Vec<String>,
    seed: u64,
}

/// Builds the candidates of a class (singles, cascades along the frontier) and rules out those
/// the policy refuses.
fn prepare(class: &ClassData, cp: &ClassPolicy, opts: &AnalysisOptions, stream: u64) -> Prepared {
    let mut notes = Vec::new();
    let (threshold, threshold_source) = match (cp.quality_threshold, class.suite_threshold) {
        (Some(t), _) => (Some(t), "policy"),
        (None, Some(t)) => (Some(t), "suite"),
        (None, None) => (None, "none"),
    };
    if threshold.is_none() {
        notes.push(
            "no quality threshold (neither the policy nor a suite sets one): any candidate with an accepted outcome qualifies".into(),
        );
    }
    let seed = opts.seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);

    // Singles, then cascades along the frontier of the allowed singles.
    let np = class.providers.len();
    let sims: Vec<Sim> = (0..np).map(|p| simulate(class, &[p])).collect();
    let mut cands: Vec<Candidate> = sims
        .iter()
        .enumerate()
        .map(|(p, s)| Candidate {
            steps: vec![p],
            name: class.providers[p].id.clone(),
            sim: s.clone(),
            clus: Clustered::of(class, s),
            ruled_out: ruled_out(class, p, cp),
        })
        .collect();
    let allowed_singles: Vec<usize> = (0..np).filter(|&p| cands[p].ruled_out.is_none()).collect();
    let front = frontier(&allowed_singles, &sims);
    if !class.has_runtime {
        notes.push(
            "no cascades: a suite of this class has no grader marked `runtime: true`, and only such a check can decide at serving time to escalate".into(),
        );
    } else if front.len() >= 2 {
        let mut orders: Vec<Vec<usize>> = Vec::new();
        for i in 0..front.len() {
            for j in i + 1..front.len() {
                orders.push(vec![front[i], front[j]]);
                for l in j + 1..front.len() {
                    orders.push(vec![front[i], front[j], front[l]]);
                }
            }
        }
        let built: Vec<Candidate> = orders
            .into_par_iter()
            .map(|steps| Candidate::simulated(class, steps))
            .collect();
        cands.extend(built);
    }
    if let Some(slo) = cp.p95_latency_ms {
        for c in cands.iter_mut().filter(|c| c.ruled_out.is_none()) {
            if let Some(l) = p95(&c.sim.latency_ms).filter(|l| *l > slo) {
                c.ruled_out = Some(format!(
                    "SLO: p95 latency {l:.0} ms is above the class's {slo:.0} ms"
                ));
            }
        }
    }
    Prepared {
        cands,
        threshold,
        threshold_source,
        notes,
        seed,
    }
}

impl Prepared {
    fn chooser(&self, class: &ClassData, opts: &AnalysisOptions) -> Chooser<'_> {
        Chooser {
            cands: &self.cands,
            allowed: (0..self.cands.len())
                .filter(|&c| self.cands[c].ruled_out.is_none())
                .collect(),
            items: items_per_cluster(class),
            z: stats::z_two_sided(opts.confidence).unwrap_or(1.959_964),
            threshold: self.threshold,
        }
    }
}

/// The in-sample choice, its stability over task resamples, and the verdict.
fn choose(
    ch: &Chooser<'_>,
    k: usize,
    policy: &Policy,
    seed: u64,
    also: Option<usize>,
) -> (Option<usize>, Option<Resampled>, Option<f64>, ClassVerdict) {
    let choice = ch.pick(&vec![1.0; k]);
    let watch: Vec<usize> = choice.into_iter().chain(also).collect();
    let normal = k > DELTA_ABOVE_TASKS;
    let res = (k >= 2).then(|| resample(ch, k, policy.resamples, seed, &watch, normal));
    let stable_share = choice.zip(res.as_ref()).map(|(c, r)| {
        r.winners.iter().filter(|w| **w == Some(c)).count() as f64 / r.winners.len().max(1) as f64
    });
    let verdict = match (choice, stable_share) {
        (None, _) => ClassVerdict::NoneQualifies,
        (Some(_), Some(s)) if s >= policy.stability => ClassVerdict::Chosen,
        (Some(_), _) => ClassVerdict::NoClearWinner,
    };
    (choice, res, stable_share, verdict)
}

/// The decision alone for one class: what [`route`] decides, without its figures,
/// cross-validation or bill (for simulations of the rule).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// How the class ended.
    pub verdict: ClassVerdict,
    /// The choice's provider ids in call order.
    pub choice: Option<Vec<String>>,
    /// Share of resamples the choice won.
    pub stable_share: Option<f64>,
}

/// Decides one class exactly as [`route`] does (same candidates, seed and resamples) and
/// returns only the decision; `index` is the class's position in the route's input.
pub fn decide(
    class: &ClassData,
    policy: &Policy,
    opts: &AnalysisOptions,
    index: usize,
) -> Decision {
    let cp = policy.class(&class.workload);
    let prep = prepare(class, &cp, opts, index as u64);
    let ch = prep.chooser(class, opts);
    let (choice, _, stable_share, verdict) = choose(&ch, class.clusters(), policy, prep.seed, None);
    Decision {
        verdict,
        choice: choice.map(|c| {
            prep.cands[c]
                .steps
                .iter()
                .map(|&p| class.providers[p].id.clone())
                .collect()
        }),
        stable_share,
    }
}

/// Routes one class; also returns the monthly bill's replicates (recommendation, incumbent)
/// when the class has a volume, a recommendation and an incumbent.
fn route_class(
    class: &ClassData,
    cp: &ClassPolicy,
    policy: &Policy,
    opts: &AnalysisOptions,
    stream: u64,
) -> (ClassRoute, Option<Bills>) {
    let prep = prepare(class, cp, opts, stream);
    let ch = prep.chooser(class, opts);
    let cands = &prep.cands;
    let (threshold, threshold_source, seed) = (prep.threshold, prep.threshold_source, prep.seed);
    let mut notes = prep.notes.clone();
    let k = class.clusters();
    let z = ch.z;
    let incumbent = cp.incumbent.as_deref().and_then(|id| class.provider(id));
    let (choice, res, stable_share, verdict) = choose(&ch, k, policy, seed, incumbent);
    let ones = vec![1.0; k];
    let n_all = dot(&ones, &ch.items);

    // Fallbacks: the next qualifiers, cheapest first.
    let mut qualifiers: Vec<(usize, f64)> = ch
        .allowed
        .iter()
        .map(|&c| (c, ch.weigh(&ones, c, n_all)))
        .filter(|(_, s)| ch.qualifies(*s))
        .map(|(c, s)| (c, s.per_accepted()))
        .collect();
    qualifiers.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let fallback_ids: Vec<usize> = qualifiers
        .iter()
        .map(|q| q.0)
        .filter(|&c| Some(c) != choice)
        .take(MAX_FALLBACKS)
        .collect();

    if k < 2 {
        notes.push("fewer than 2 tasks: the choice cannot be checked for stability".into());
    }

    // Contenders and the tasks that would separate the leader from the runner-up.
    let mut contenders = Vec::new();
    let mut tasks_needed = None;
    let mut tasks_needed_method = None;
    if verdict == ClassVerdict::NoClearWinner
        && let (Some(lead), Some(r)) = (choice, res.as_ref())
    {
        let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
        for w in r.winners.iter().flatten() {
            *counts.entry(*w).or_default() += 1;
        }
        let mut by_share: Vec<(usize, usize)> = counts.into_iter().collect();
        by_share.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for &(c, n) in by_share.iter().take(5) {
            contenders.push(Contender {
                figures: figures(class, &cands[c], opts),
                win_share: n as f64 / r.winners.len() as f64,
            });
        }
        if let Some(&(runner, _)) = by_share.iter().find(|(c, _)| *c != lead) {
            let d: Vec<f64> = r
                .per_accepted
                .iter()
                .map(|v| v[runner] - v[lead])
                .filter(|x| x.is_finite())
                .collect();
            let m = d.len() as f64;
            if m >= 2.0 {
                let mean = d.iter().sum::<f64>() / m;
                let sd = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (m - 1.0)).sqrt();
                let zc = if sd > 0.0 { mean / sd } else { 0.0 };
                if zc > 0.0 {
                    let needed = (k as f64 * (Z_90 / zc).powi(2)).ceil() as u64;
                    tasks_needed = Some(needed.saturating_sub(k as u64).max(1));
                }
            }
            tasks_needed_method = Some(
                "normal approximation: the bootstrap z of the cost-per-accepted gap between the leader and the runner-up grows with √tasks; tasks added until z reaches z0.90 (null: the two look equally cheap)",
            );
        }
        let nothing = r.winners.iter().filter(|w| w.is_none()).count();
        if nothing > 0 {
            notes.push(format!(
                "in {:.1}% of resamples nothing qualified: the leader's acceptance lower bound is close to the threshold, so more tasks (not a cheaper price) decide it",
                100.0 * nothing as f64 / r.winners.len() as f64
            ));
        }
    }

    // Every candidate not chosen nor a fallback, with why.
    let choice_cpa = choice.map(|c| ch.weigh(&ones, c, n_all).per_accepted());
    let rejected: Vec<Rejected> = (0..cands.len())
        .filter(|c| Some(*c) != choice && !fallback_ids.contains(c))
        .map(|c| {
            let s = ch.weigh(&ones, c, n_all);
            let reason = if let Some(r) = &cands[c].ruled_out {
                r.clone()
            } else if s.accepted <= 0.0 {
                "below threshold: no accepted outcome".into()
            } else if !ch.qualifies(s) {
                let (lo, hi) = stats::binomial::wilson_bounds(s.rate(), s.n, z);
                format!(
                    "below threshold: acceptance {:.3} [{lo:.3}, {hi:.3}] (wilson); its lower bound is under {}",
                    s.rate(),
                    threshold.unwrap_or(0.0)
                )
            } else {
                format!(
                    "dearer: qualifies at ${:.6} per accepted, the choice costs ${:.6}",
                    s.per_accepted(),
                    choice_cpa.unwrap_or(f64::NAN)
                )
            };
            Rejected {
                candidate: cands[c].name.clone(),
                reason,
            }
        })
        .collect();
    for (id, why) in &class.excluded {
        notes.push(format!("provider `{id}` left out: {why}"));
    }

    let cross_validation = crossval::cross_validate(class, &ch, policy.folds, opts, seed);
    if cross_validation.is_none() {
        notes.push(format!(
            "no cross-validation: {k} tasks for {} folds, or no provider the policy allows",
            policy.folds
        ));
    }

    // The monthly bill: volume × mean token cost per request.
    let mut bills = None;
    let monthly = cp.monthly_volume.map(|v| {
        let point = |c: usize| v * cands[c].sim.tokens.iter().sum::<f64>() / n_all.max(1.0);
        let reps = |i: usize| -> Vec<f64> {
            res.as_ref()
                .map(|r| r.tokens.iter().map(|t| v * t[i]).collect())
                .unwrap_or_default()
        };
        let rec_i = choice.map(|_| 0);
        let inc_i = incumbent.map(|_| usize::from(choice.is_some()));
        let rec = choice.map(|c| percentile_usd(point(c), reps(0), opts.confidence));
        let inc =
            incumbent.map(|c| percentile_usd(point(c), reps(inc_i.unwrap_or(0)), opts.confidence));
        let saving = match (choice, incumbent, rec_i, inc_i) {
            (Some(c), Some(i), Some(ri), Some(ii)) => {
                let (r, n) = (reps(ri), reps(ii));
                let d: Vec<f64> = n.iter().zip(&r).map(|(a, b)| a - b).collect();
                bills = Some(Bills {
                    class: class.workload.clone(),
                    recommendation: point(c),
                    incumbent: point(i),
                    recommendation_reps: r,
                    incumbent_reps: n,
                });
                Some(percentile_usd(point(i) - point(c), d, opts.confidence))
            }
            _ => None,
        };
        Monthly {
            volume: v,
            recommendation_usd: rec,
            incumbent: cp.incumbent.clone(),
            incumbent_usd: inc,
            saving_usd: saving,
        }
    });

    let route = ClassRoute {
        workload: class.workload.clone(),
        suites: class.suites.clone(),
        tasks: k,
        outcomes: class.items(),
        dropped_outcomes: class.dropped_items,
        quality_threshold: threshold,
        threshold_source,
        verdict,
        choice: choice.map(|c| figures(class, &cands[c], opts)),
        stable_share,
        resamples: res.as_ref().map_or(0, |r| r.winners.len()),
        resample_method: res.as_ref().map_or(TASK_BOOTSTRAP, |r| r.method),
        contenders,
        tasks_needed,
        tasks_needed_method,
        fallbacks: fallback_ids
            .iter()
            .map(|&c| figures(class, &cands[c], opts))
            .collect(),
        rejected,
        cross_validation,
        monthly,
        notes,
    };
    (route, bills)
}

/// A named route measured again on other runs (for the gate's routed-class check).
#[derive(Debug, Clone)]
pub struct Remeasured {
    /// The route's figures on the class.
    pub figures: Figures,
    /// Tasks (clusters) of the class.
    pub tasks: usize,
}

/// Measures the route `providers` (one provider, or a cascade in call order) on class
/// `workload` exactly as [`route`] measures its candidates; `Err` says why it cannot be.
pub fn remeasure(
    input: &RouteInput,
    opts: &AnalysisOptions,
    workload: &str,
    providers: &[String],
) -> Result<Remeasured, String> {
    let class = input
        .classes
        .iter()
        .find(|c| c.workload == workload)
        .ok_or_else(|| format!("the run has no suite of workload class `{workload}`"))?;
    let steps = providers
        .iter()
        .map(|id| {
            class
                .providers
                .iter()
                .position(|p| &p.id == id)
                .ok_or_else(|| {
                    class.excluded.iter().find(|(p, _)| p == id).map_or(
                        format!("provider `{id}` was not run on this class"),
                        |(_, w)| format!("provider `{id}` was {w}"),
                    )
                })
        })
        .collect::<Result<Vec<usize>, String>>()?;
    if steps.len() > 1 && !class.has_runtime {
        return Err(
            "the cascade escalates on a `runtime: true` check, and a suite of this class no longer has one"
                .into(),
        );
    }
    let cand = Candidate::simulated(class, steps);
    Ok(Remeasured {
        figures: figures(class, &cand, opts),
        tasks: class.clusters(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> AnalysisOptions {
        AnalysisOptions {
            confidence: 0.95,
            bootstrap: 200,
            seed: 1,
        }
    }

    #[test]
    fn above_the_task_limit_the_normal_limit_wins_as_often_as_reweighing_tasks() {
        let k = DELTA_ABOVE_TASKS + 1;
        let mut rng = Rng::new(3);
        let mut provider = |id: &str| data::ProviderData {
            id: id.into(),
            tags: BTreeMap::new(),
            cost: (0..k).map(|_| (0.5 * rng.normal()).exp()).collect(),
            accepted: (0..k).map(|_| rng.bernoulli(0.8)).collect(),
            runtime_ok: vec![true; k],
            latency_ms: vec![1.0; k],
            unpriced_calls: 0,
            priced: true,
        };
        let (a, mut b) = (provider("a"), provider("b"));
        // b costs 0.4% more per accepted outcome than a in sample: a contested choice.
        let cpa = |p: &data::ProviderData| {
            p.cost.iter().sum::<f64>() / p.accepted.iter().filter(|x| **x).count() as f64
        };
        let scale = 1.004 * cpa(&a) / cpa(&b);
        b.cost.iter_mut().for_each(|c| *c *= scale);
        let class = ClassData {
            workload: "w".into(),
            suites: vec!["s".into()],
            suite_threshold: None,
            has_runtime: false,
            cluster_start: (0..=k).collect(),
            rejection: vec![0.0; k],
            providers: vec![a, b],
            excluded: Vec::new(),
            dropped_items: 0,
        };
        let prep = prepare(&class, &ClassPolicy::default(), &opts(), 0);
        let ch = prep.chooser(&class, &opts());
        let share = |normal| {
            let r = resample(&ch, k, 1000, 5, &[], normal);
            assert_eq!(r.method, if normal { NORMAL_LIMIT } else { TASK_BOOTSTRAP });
            r.winners.iter().filter(|w| **w == Some(0)).count() as f64 / 1000.0
        };
        let (boot, limit) = (share(false), share(true));
        assert!(boot > 0.55 && boot < 0.9, "not contested: {boot}");
        assert!((boot - limit).abs() < 0.07, "{boot} vs {limit}");
    }

    #[test]
    fn the_policy_rules_out_by_tag_batch_and_slo_with_reasons() {
        let mut c = data::tests::toy();
        c.providers[0]
            .tags
            .insert(BATCH_TAG.0.into(), BATCH_TAG.1.into());
        c.providers[1]
            .tags
            .insert("jurisdiction".into(), "cn".into());
        let cp = ClassPolicy {
            required_tags: [("jurisdiction".to_string(), vec!["us".to_string()])].into(),
            ..ClassPolicy::default()
        };
        assert!(
            ruled_out(&c, 0, &cp)
                .unwrap()
                .starts_with("tag: has no `jurisdiction`")
        );
        assert_eq!(
            ruled_out(&c, 1, &cp).unwrap(),
            "tag: `jurisdiction` is `cn`; the class requires one of us"
        );
        let batch_only = ClassPolicy::default();
        assert!(ruled_out(&c, 0, &batch_only).unwrap().starts_with("batch:"));
        assert!(ruled_out(&c, 1, &batch_only).is_none());
        // With every provider ruled out nothing qualifies, and each says why.
        let policy = Policy {
            classes: [("w".to_string(), cp)].into(),
            resamples: 100,
            ..Policy::default()
        };
        let input = RouteInput {
            runs: Vec::new(),
            classes: vec![c],
            providers: Vec::new(),
            tags: BTreeMap::new(),
        };
        let plan = route(&input, &policy, &opts());
        let r = &plan.classes[0];
        assert_eq!(r.verdict, ClassVerdict::NoneQualifies);
        // Cascades are built from allowed providers only: there is none.
        assert_eq!(r.rejected.len(), 2);
        assert!(r.rejected.iter().all(|x| x.reason.starts_with("tag:")));

        // An SLO of 150 ms: the cascade's p95 (its escalated item took both steps, 200 ms) is
        // over it; single calls (100 ms) are not.
        let mut input = input;
        input.classes[0].providers[0].tags.clear();
        input.classes[0].providers[1].tags.clear();
        let policy = Policy {
            classes: [(
                "w".to_string(),
                ClassPolicy {
                    p95_latency_ms: Some(150.0),
                    batch_allowed: true,
                    ..ClassPolicy::default()
                },
            )]
            .into(),
            resamples: 100,
            ..Policy::default()
        };
        let r = &route(&input, &policy, &opts()).classes[0];
        let cascade = r.rejected.iter().find(|x| x.candidate == "cheap -> dear");
        assert_eq!(
            cascade.map(|x| x.reason.as_str()),
            Some("SLO: p95 latency 200 ms is above the class's 150 ms")
        );
        assert_eq!(r.choice.as_ref().map(|f| f.name.as_str()), Some("dear"));
    }

    #[test]
    fn the_frontier_keeps_only_undominated_providers_cheapest_first() {
        let mut c = data::tests::toy();
        // A third provider, dearer than `dear` and no better: dominated.
        let mut worse = c.providers[1].clone();
        worse.id = "worse".into();
        worse.cost = vec![2.0; 3];
        c.providers.push(worse);
        let sims: Vec<Sim> = (0..3).map(|p| simulate(&c, &[p])).collect();
        assert_eq!(frontier(&[0, 1, 2], &sims), vec![0, 1]);
    }
}
