//! The report's charts as inline SVG: shapes placed here, drawn (and escaped) by the template.
//!
//! Per suite: cost per accepted outcome against acceptance with both intervals as whiskers and
//! the Pareto frontier; the cost per accepted outcome split into tokens and rejections; the
//! latency distribution of answering calls. Colours come from the page's CSS variables, so the
//! charts follow dark mode and print.

use serde::Serialize;

use super::suite_rows;
use crate::analysis::{Row, RunAnalysis};
use crate::export::markup;

/// One drawn element.
#[derive(Serialize)]
#[serde(tag = "k", rename_all = "snake_case")]
enum El {
    Line {
        x1: f64,
        y1: f64,
        x2: f64,
        y2: f64,
        class: &'static str,
    },
    Rect {
        x: f64,
        y: f64,
        w: f64,
        h: f64,
        class: &'static str,
        tip: String,
    },
    Circle {
        x: f64,
        y: f64,
        r: f64,
        class: &'static str,
        tip: String,
    },
    Poly {
        points: String,
        class: &'static str,
    },
    Text {
        x: f64,
        y: f64,
        anchor: &'static str,
        class: &'static str,
        text: String,
        rotate: bool,
    },
}

/// One chart.
#[derive(Serialize)]
pub(super) struct Svg {
    width: u32,
    height: u32,
    title: String,
    els: Vec<El>,
}

/// The charts of one suite.
#[derive(Serialize)]
pub(super) struct SuiteCharts {
    suite: String,
    workload: String,
    svgs: Vec<Svg>,
}

/// Every suite's charts.
pub(super) fn all(a: &RunAnalysis) -> Vec<SuiteCharts> {
    a.run
        .plan
        .suites
        .iter()
        .map(|s| {
            let rows = suite_rows(a, &s.name);
            let figures: Vec<&Row> = rows.iter().map(|r| &r.figures).collect();
            let latencies: Vec<(String, Vec<f32>)> = rows
                .iter()
                .map(|r| {
                    let mut l: Vec<f32> = r.outcomes.iter().filter_map(|o| o.latency_ms).collect();
                    l.sort_unstable_by(f32::total_cmp);
                    (r.figures.provider.clone(), l)
                })
                .collect();
            SuiteCharts {
                suite: s.name.clone(),
                workload: s.workload.clone(),
                svgs: vec![
                    scatter(&figures, s.quality_threshold, a.options.confidence),
                    breakdown(&figures),
                    latency(&latencies),
                ],
            }
        })
        .collect()
}

fn r1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// About five round tick values covering [lo, hi].
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 && out.len() < 12 {
        out.push(t);
        t += step;
    }
    out
}

/// A plot area with linear scales, its axes and labels.
struct Frame {
    left: f64,
    top: f64,
    w: f64,
    h: f64,
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    fn px(&self, v: f64) -> f64 {
        r1(self.left + (v - self.x.0) / (self.x.1 - self.x.0) * self.w)
    }
    fn py(&self, v: f64) -> f64 {
        r1(self.top + self.h - (v - self.y.0) / (self.y.1 - self.y.0) * self.h)
    }

    /// Axes, grid lines, tick labels and axis titles.
    fn axes(
        &self,
        els: &mut Vec<El>,
        xlabel: &str,
        ylabel: Option<&str>,
        fx: &dyn Fn(f64) -> String,
        fy: &dyn Fn(f64) -> String,
    ) {
        let (b, l) = (self.top + self.h, self.left);
        for t in ticks(self.x.0, self.x.1) {
            let x = self.px(t);
            els.push(El::Line {
                x1: x,
                y1: self.top,
                x2: x,
                y2: b,
                class: "grid",
            });
            els.push(text(x, b + 14.0, "middle", "muted", fx(t)));
        }
        if ylabel.is_some() {
            for t in ticks(self.y.0, self.y.1) {
                let y = self.py(t);
                els.push(El::Line {
                    x1: l,
                    y1: y,
                    x2: l + self.w,
                    y2: y,
                    class: "grid",
                });
                els.push(text(l - 4.0, y + 4.0, "end", "muted", fy(t)));
            }
        }
        els.push(El::Line {
            x1: l,
            y1: b,
            x2: l + self.w,
            y2: b,
            class: "axis",
        });
        els.push(El::Line {
            x1: l,
            y1: self.top,
            x2: l,
            y2: b,
            class: "axis",
        });
        els.push(text(
            l + self.w / 2.0,
            b + 30.0,
            "middle",
            "",
            xlabel.into(),
        ));
        if let Some(y) = ylabel {
            let (x, yy) = (12.0, self.top + self.h / 2.0);
            els.push(El::Text {
                x,
                y: r1(yy),
                anchor: "middle",
                class: "",
                text: y.into(),
                rotate: true,
            });
        }
    }
}

fn text(x: f64, y: f64, anchor: &'static str, class: &'static str, text: String) -> El {
    El::Text {
        x: r1(x),
        y: r1(y),
        anchor,
        class,
        text,
        rotate: false,
    }
}

fn line(x1: f64, y1: f64, x2: f64, y2: f64, class: &'static str) -> El {
    El::Line {
        x1,
        y1,
        x2,
        y2,
        class,
    }
}

/// Providers no other provider beats on both acceptance (higher) and cost per accepted (lower).
pub(super) fn pareto(points: &[(f64, f64)]) -> Vec<usize> {
    let mut front: Vec<usize> = (0..points.len())
        .filter(|&i| {
            let (a, c) = points[i];
            !points
                .iter()
                .any(|&(a2, c2)| a2 >= a && c2 <= c && (a2 > a || c2 < c))
        })
        .collect();
    front.sort_by(|&i, &j| points[i].0.total_cmp(&points[j].0));
    front
}

fn scatter(rows: &[&Row], threshold: Option<f64>, confidence: f64) -> Svg {
    let conf = format!("{:.0}%", confidence * 100.0);
    let mut els = Vec::new();
    let pts: Vec<(usize, f64, f64)> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i, r.acceptance.rate?, r.cost_per_accepted_usd?)))
        .collect();
    let lows = rows.iter().filter_map(|r| r.acceptance.low);
    let highs = rows.iter().filter_map(|r| r.acceptance.high);
    let xlo = lows.chain(threshold).fold(1.0f64, f64::min);
    let xhi = highs.chain(threshold).fold(0.0f64, f64::max);
    let (xlo, xhi) = if xhi > xlo {
        ((xlo - 0.05).max(0.0), (xhi + 0.05).min(1.0))
    } else {
        (0.0, 1.0)
    };
    let yhi = rows
        .iter()
        .flat_map(|r| [r.cost_per_accepted_usd, r.cost_per_accepted_ci.high])
        .flatten()
        .fold(0.0f64, f64::max);
    let f = Frame {
        left: 84.0,
        top: 14.0,
        w: 346.0,
        h: 220.0,
        x: (xlo, xhi),
        y: (0.0, if yhi > 0.0 { yhi * 1.1 } else { 1.0 }),
    };
    f.axes(
        &mut els,
        &format!("acceptance ({conf} Wilson interval)"),
        Some("USD per accepted outcome"),
        &|v| format!("{:.0}%", v * 100.0),
        &|v| markup::usd(Some(v)),
    );
    if let Some(t) = threshold.filter(|t| *t >= xlo && *t <= xhi) {
        let x = f.px(t);
        els.push(line(x, f.top, x, f.top + f.h, "thr"));
        els.push(text(
            x + 3.0,
            f.top + f.h - 4.0,
            "start",
            "muted",
            "threshold".into(),
        ));
    }
    let front = pareto(&pts.iter().map(|p| (p.1, p.2)).collect::<Vec<_>>());
    if front.len() > 1 {
        let points = front
            .iter()
            .map(|&k| format!("{},{}", f.px(pts[k].1), f.py(pts[k].2)))
            .collect::<Vec<_>>()
            .join(" ");
        els.push(El::Poly {
            points,
            class: "front-line",
        });
    }
    for (k, &(i, acc, cost)) in pts.iter().enumerate() {
        let r = rows[i];
        let (x, y) = (f.px(acc), f.py(cost));
        if let (Some(lo), Some(hi)) = (r.acceptance.low, r.acceptance.high) {
            els.push(line(f.px(lo), y, f.px(hi), y, "wh"));
        }
        let top = r
            .cost_per_accepted_ci
            .high
            .map_or(f.top, |h| f.py(h.min(f.y.1)));
        if let Some(lo) = r.cost_per_accepted_ci.low {
            els.push(line(x, f.py(lo), x, top, "wh"));
        }
        if r.cost_per_accepted_ci.high.is_none() && r.cost_per_accepted_ci.low.is_some() {
            els.push(text(x, f.top - 2.0, "middle", "muted", "∞".into()));
        }
        let on_front = front.contains(&k);
        els.push(El::Circle {
            x,
            y,
            r: 4.0,
            class: if on_front { "pt front" } else { "pt" },
            tip: format!(
                "{}: acceptance {}, {} per accepted{}",
                r.provider,
                markup::pct(Some(acc)),
                markup::usd(Some(cost)),
                if on_front { " (Pareto frontier)" } else { "" }
            ),
        });
        // Labels alternate above and below their points so that close points stay legible.
        let dy = if k % 2 == 0 { -6.0 } else { 14.0 };
        // Points in the right third are labelled to their left, inside the chart.
        if x > f.left + f.w * 0.66 {
            els.push(text(x - 6.0, y + dy, "end", "", r.provider.clone()));
        } else {
            els.push(text(x + 6.0, y + dy, "start", "", r.provider.clone()));
        }
    }
    let missing: Vec<&str> = rows
        .iter()
        .filter(|r| r.cost_per_accepted_usd.is_none())
        .map(|r| r.provider.as_str())
        .collect();
    let mut h = 290;
    els.push(text(
        8.0,
        h as f64 - 8.0,
        "start",
        "muted",
        "green: Pareto frontier (no provider both accepts more and costs less)".into(),
    ));
    if !missing.is_empty() {
        h += 16;
        els.push(text(
            8.0,
            h as f64 - 8.0,
            "start",
            "muted",
            format!(
                "not placed (nothing accepted or cost unknown): {}",
                missing.join(", ")
            ),
        ));
    }
    Svg {
        width: 450,
        height: h,
        title: "Cost per accepted outcome against acceptance".into(),
        els,
    }
}

fn breakdown(rows: &[&Row]) -> Svg {
    let mut els = Vec::new();
    let per = |r: &Row, v: Option<f64>| v.filter(|_| r.accepted > 0).map(|v| v / r.accepted as f64);
    let bars: Vec<(String, Option<(f64, f64)>)> = rows
        .iter()
        .map(|r| {
            let tok = per(r, r.cost_usd.tokens);
            let rej = per(r, Some(r.cost_usd.rejections));
            (r.provider.clone(), tok.zip(rej))
        })
        .collect();
    let max = bars
        .iter()
        .filter_map(|b| b.1.map(|(t, r)| t + r))
        .fold(0.0f64, f64::max);
    let bar_h = 18.0;
    let h = 20.0 + bars.len() as f64 * (bar_h + 8.0);
    let f = Frame {
        left: 110.0,
        top: 24.0,
        w: 300.0,
        h,
        x: (0.0, if max > 0.0 { max * 1.05 } else { 1.0 }),
        y: (0.0, 1.0),
    };
    els.push(El::Rect {
        x: f.left,
        y: 4.0,
        w: 10.0,
        h: 10.0,
        class: "tok",
        tip: "token cost".into(),
    });
    els.push(text(f.left + 14.0, 13.0, "start", "", "tokens".into()));
    els.push(El::Rect {
        x: f.left + 80.0,
        y: 4.0,
        w: 10.0,
        h: 10.0,
        class: "rej",
        tip: "rejection cost".into(),
    });
    els.push(text(
        f.left + 94.0,
        13.0,
        "start",
        "",
        "rejections (rejected × rejection cost)".into(),
    ));
    f.axes(
        &mut els,
        "USD per accepted outcome",
        None,
        &|v| markup::usd(Some(v)),
        &|_| String::new(),
    );
    for (i, (p, b)) in bars.iter().enumerate() {
        let y = r1(f.top + 10.0 + i as f64 * (bar_h + 8.0));
        els.push(text(f.left - 6.0, y + 13.0, "end", "", p.clone()));
        match b {
            Some((t, r)) => {
                let wt = f.px(*t) - f.left;
                let wr = f.px(t + r) - f.left - wt;
                els.push(El::Rect {
                    x: f.left,
                    y,
                    w: r1(wt),
                    h: bar_h,
                    class: "tok",
                    tip: format!("{p}: tokens {} per accepted", markup::usd(Some(*t))),
                });
                els.push(El::Rect {
                    x: r1(f.left + wt),
                    y,
                    w: r1(wr),
                    h: bar_h,
                    class: "rej",
                    tip: format!("{p}: rejections {} per accepted", markup::usd(Some(*r))),
                });
            }
            None => els.push(text(
                f.left + 4.0,
                y + 13.0,
                "start",
                "muted",
                "nothing accepted, or no cost known".into(),
            )),
        }
    }
    Svg {
        width: 450,
        height: (f.top + f.h + 40.0) as u32,
        title: "Cost per accepted outcome: tokens and rejections".into(),
        els,
    }
}

/// Nearest-rank quantile of sorted values.
fn q(sorted: &[f32], p: f64) -> f64 {
    let rank = (p * sorted.len() as f64).ceil().max(1.0) as usize;
    f64::from(sorted[rank.min(sorted.len()) - 1])
}

fn latency(rows: &[(String, Vec<f32>)]) -> Svg {
    let mut els = Vec::new();
    let max = rows
        .iter()
        .filter(|r| !r.1.is_empty())
        .map(|r| q(&r.1, 0.95))
        .fold(0.0f64, f64::max);
    let bar_h = 16.0;
    let h = 10.0 + rows.len() as f64 * (bar_h + 10.0);
    let f = Frame {
        left: 110.0,
        top: 10.0,
        w: 300.0,
        h,
        x: (0.0, if max > 0.0 { max * 1.05 } else { 1.0 }),
        y: (0.0, 1.0),
    };
    f.axes(
        &mut els,
        "latency of answering calls (ms)",
        None,
        &|v| format!("{v:.0}"),
        &|_| String::new(),
    );
    els.push(text(
        f.left + f.w / 2.0,
        f.top + f.h + 44.0,
        "middle",
        "muted",
        "box p25–p75 · line p50 · whiskers p5–p95".into(),
    ));
    for (i, (p, l)) in rows.iter().enumerate() {
        let y = r1(f.top + 6.0 + i as f64 * (bar_h + 10.0));
        els.push(text(f.left - 6.0, y + 12.0, "end", "", p.clone()));
        if l.is_empty() {
            els.push(text(
                f.left + 4.0,
                y + 12.0,
                "start",
                "muted",
                "no answers".into(),
            ));
            continue;
        }
        let [p5, p25, p50, p75, p95] = [0.05, 0.25, 0.5, 0.75, 0.95].map(|x| q(l, x));
        let mid = r1(y + bar_h / 2.0);
        els.push(line(f.px(p5), mid, f.px(p95), mid, "wh"));
        els.push(El::Rect {
            x: f.px(p25),
            y,
            w: r1((f.px(p75) - f.px(p25)).max(1.0)),
            h: bar_h,
            class: "box",
            tip: format!(
                "{p}: p5 {p5:.0}, p25 {p25:.0}, p50 {p50:.0}, p75 {p75:.0}, p95 {p95:.0} ms ({} answers)",
                l.len()
            ),
        });
        els.push(line(f.px(p50), y, f.px(p50), y + bar_h, "med"));
    }
    Svg {
        width: 450,
        height: (f.top + f.h + 52.0) as u32,
        title: "Latency distribution per provider".into(),
        els,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_keeps_the_undominated_points_by_acceptance() {
        // (acceptance, cost): b is dominated by a (accepts less, costs more).
        let pts = [(0.9, 2.0), (0.8, 3.0), (0.7, 1.0), (0.95, 5.0)];
        assert_eq!(pareto(&pts), vec![2, 0, 3]);
        // Ties are not domination.
        assert_eq!(pareto(&[(0.5, 1.0), (0.5, 1.0)]), vec![0, 1]);
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let labels: Vec<String> = ticks(0.0, 1.0).iter().map(|t| format!("{t:.2}")).collect();
        assert_eq!(labels, ["0.00", "0.20", "0.40", "0.60", "0.80", "1.00"]);
        let t = ticks(0.013, 0.046);
        assert!(
            t.len() >= 3 && t[0] >= 0.013 && *t.last().unwrap() <= 0.046,
            "{t:?}"
        );
    }
}
