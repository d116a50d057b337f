//! Cross-validation of a class's route: the choice rule run on k−1 folds of tasks and measured
//! on the held-out fold, beside four baselines measured on the same held-out tasks (best single,
//! cheapest qualifier, round robin, the per-task oracle), compared with paired intervals.

use super::data::{ClassData, dot};
use super::{Chooser, CrossValidation, HeldOut, Usd, Versus, cpa_of, outcomes_of, rate_of};
use crate::analysis::{self, AnalysisOptions};
use crate::stats::{Outcome, rng::Rng};

/// The route and the baselines chosen on k−1 folds of tasks and measured on the held-out fold.
pub(super) fn cross_validate(
    class: &ClassData,
    ch: &Chooser<'_>,
    folds: usize,
    opts: &AnalysisOptions,
    seed: u64,
) -> Option<CrossValidation> {
    let k = class.clusters();
    let singles: Vec<usize> = ch
        .allowed
        .iter()
        .copied()
        .filter(|&c| ch.cands[c].steps.len() == 1)
        .collect();
    if k < folds || singles.is_empty() {
        return None;
    }
    // Tasks shuffled once (seeded), then dealt to folds.
    let mut order: Vec<usize> = (0..k).collect();
    let mut rng = Rng::stream(seed, u64::MAX);
    for i in (1..k).rev() {
        order.swap(i, rng.index(i + 1));
    }
    let mut fold_of = vec![0usize; k];
    for (pos, &t) in order.iter().enumerate() {
        fold_of[t] = pos % folds;
    }
    let n_items = class.items();
    let oracle = oracle(class, ch, &singles);
    // Per baseline: the candidate serving each item.
    let mut picks: [Vec<usize>; 4] = std::array::from_fn(|_| vec![0; n_items]);
    let mut per_fold: [Vec<String>; 4] = Default::default();
    let mut without = 0;
    for f in 0..folds {
        let w: Vec<f64> = fold_of
            .iter()
            .map(|&g| if g == f { 0.0 } else { 1.0 })
            .collect();
        let n = dot(&w, &ch.items);
        let best = singles
            .iter()
            .copied()
            .max_by(|&a, &b| {
                let (sa, sb) = (ch.weigh(&w, a, n), ch.weigh(&w, b, n));
                sa.accepted
                    .total_cmp(&sb.accepted)
                    .then(sb.per_accepted().total_cmp(&sa.per_accepted()))
                    .then(b.cmp(&a))
            })
            .unwrap_or(singles[0]);
        let routed = ch.pick(&w);
        without += usize::from(routed.is_none());
        let routed = routed.unwrap_or(best);
        let cheapest = ch.pick_among(&w, &singles).unwrap_or(best);
        let mut rr: Vec<usize> = singles
            .iter()
            .copied()
            .filter(|&c| ch.qualifies(ch.weigh(&w, c, n)))
            .collect();
        if rr.is_empty() {
            rr = singles.clone();
        }
        let names = |v: &[usize]| {
            v.iter()
                .map(|&c| ch.cands[c].name.as_str())
                .collect::<Vec<_>>()
                .join(" | ")
        };
        per_fold[0].push(ch.cands[routed].name.clone());
        per_fold[1].push(ch.cands[best].name.clone());
        per_fold[2].push(ch.cands[cheapest].name.clone());
        per_fold[3].push(names(&rr));
        for t in (0..k).filter(|&t| fold_of[t] == f) {
            for i in class.cluster_start[t]..class.cluster_start[t + 1] {
                picks[0][i] = routed;
                picks[1][i] = best;
                picks[2][i] = cheapest;
                picks[3][i] = rr[i % rr.len()];
            }
        }
    }
    let serve = |pick: &[usize]| -> Vec<Outcome> {
        let cost: Vec<f64> = (0..n_items)
            .map(|i| ch.cands[pick[i]].sim.cost[i])
            .collect();
        let acc: Vec<bool> = (0..n_items)
            .map(|i| ch.cands[pick[i]].sim.accepted[i])
            .collect();
        outcomes_of(class, &cost, &acc)
    };
    let served: Vec<Vec<Outcome>> = picks.iter().map(|p| serve(p)).collect();
    let oracle_out = outcomes_of(class, &oracle.0, &oracle.1);
    let held = |name, o: &[Outcome], per_fold: Vec<String>| HeldOut {
        name,
        per_fold,
        acceptance: rate_of(class, o, opts.confidence),
        cost_per_accepted_usd: cpa_of(o, opts),
    };
    let [pf0, pf1, pf2, pf3] = per_fold;
    let versus = |name: &'static str, a: &[Outcome], b: &[Outcome]| -> Versus {
        let d = analysis::paired_cost_ci(a, b, opts).ok();
        let e = d.as_ref().map(|d| d.difference);
        let (low, high) = (e.and_then(|e| e.low), e.and_then(|e| e.high));
        // For savings (baseline − route) a positive interval means the route is better; for the
        // regret (route − oracle) the caller flips the reading.
        let route_is = match (low, high) {
            (Some(l), _) if l > 0.0 => "better",
            (_, Some(h)) if h < 0.0 => "worse",
            _ => "indistinguishable",
        };
        Versus {
            baseline: name,
            difference_usd: Usd {
                estimate: e.and_then(|e| e.estimate),
                low,
                high,
                method: d.as_ref().map_or("paired-bca-bootstrap", |d| d.method),
            },
            route_is,
        }
    };
    let mut regret = versus("oracle", &served[0], &oracle_out);
    regret.route_is = match regret.route_is {
        "better" => "worse",
        "worse" => "better",
        same => same,
    };
    Some(CrossValidation {
        folds,
        method: "k-fold over tasks (seeded shuffle): the route is chosen on k−1 folds and measured on the held-out fold; every task is held out once",
        saving_vs_best_single: versus("best_single", &served[1], &served[0]),
        saving_vs_cheapest_qualifier: versus("cheapest_qualifier", &served[2], &served[0]),
        saving_vs_round_robin: versus("round_robin", &served[3], &served[0]),
        regret_vs_oracle: regret,
        routed: held("routed", &served[0], pf0),
        baselines: vec![
            held("best_single", &served[1], pf1),
            held("cheapest_qualifier", &served[2], pf2),
            held("round_robin", &served[3], pf3),
            held(
                "oracle",
                &oracle_out,
                vec!["per task: the cheapest accepted answer".into()],
            ),
        ],
        folds_without_qualifier: without,
    })
}

/// The per-task oracle: on each item, the cheapest accepted answer among the allowed single
/// providers; when none was accepted, the cheapest answer, rejected.
fn oracle(class: &ClassData, ch: &Chooser<'_>, singles: &[usize]) -> (Vec<f64>, Vec<bool>) {
    let n = class.items();
    let mut cost = Vec::with_capacity(n);
    let mut acc = Vec::with_capacity(n);
    for i in 0..n {
        let tokens = |c: usize| ch.cands[c].sim.tokens[i];
        let best_accepted = singles
            .iter()
            .copied()
            .filter(|&c| ch.cands[c].sim.accepted[i])
            .map(tokens)
            .min_by(f64::total_cmp);
        match best_accepted {
            Some(t) => {
                cost.push(t);
                acc.push(true);
            }
            None => {
                let t = singles
                    .iter()
                    .copied()
                    .map(tokens)
                    .min_by(f64::total_cmp)
                    .unwrap_or(0.0);
                cost.push(t + class.rejection[i]);
                acc.push(false);
            }
        }
    }
    (cost, acc)
}
