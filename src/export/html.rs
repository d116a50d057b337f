//! The HTML report: one self-contained page, for a ticket or a CI artifact.
//!
//! Summary first (per workload class: the recommendation when routing gave one, else the
//! qualifying providers cheapest first, then the provider table), then inline SVG charts, then
//! the per-task drill-down. Rendered by minijinja from a template embedded in the binary and
//! named `*.html`, so auto-escaping is on: every provider name, task variable, answer and grader
//! reason is escaped. The page loads nothing: a Content-Security-Policy allows only its own
//! style and script (by hash), so even markup that escaped the escaping could not run or fetch.
//! The filters are CSS (`:has`) and work without the script, which only counts what is shown.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use minijinja::{Environment, Value, context};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Exporter, markup};
use crate::analysis::{Row, RowAnalysis, RunAnalysis, Verdict};
use crate::compare::{self, CompareError, CompareSpec, Comparison, MigrationVerdict};
use crate::drilldown::{Drilldown, Group, MAX_CHARS};

const TEMPLATE: &str = include_str!("templates/report.html");
const CSS: &str = include_str!("templates/report.css");
const SCRIPT: &str = include_str!("templates/report.js");

/// Another run to show beside this one, with the paired verdict per suite × provider.
#[derive(Debug, Clone)]
pub struct Baseline<'a> {
    /// The other run's analysis.
    pub analysis: &'a RunAnalysis,
    /// Per (suite, provider): this run's provider (candidate) against the other run's.
    pub comparisons: HashMap<(String, String), Comparison>,
}

impl<'a> Baseline<'a> {
    /// Pairs every provider both runs have, on the suites both runs have (`compare`'s API:
    /// the other run is the incumbent, this run the candidate).
    pub fn compare(this: &RunAnalysis, other: &'a RunAnalysis) -> Result<Self, CompareError> {
        let mut comparisons = HashMap::new();
        let shared: Vec<&str> = this
            .run
            .plan
            .providers
            .iter()
            .map(|p| p.id.as_str())
            .filter(|id| other.run.plan.provider(id).is_some())
            .collect();
        if shared.is_empty() {
            // The same error `compare` gives, naming the other run's providers.
            let id = this
                .run
                .plan
                .providers
                .first()
                .map_or("", |p| p.id.as_str());
            compare::check(
                &other.run,
                &this.run,
                &CompareSpec {
                    incumbent: id,
                    candidate: id,
                    suite: None,
                    margin: None,
                },
            )?;
        }
        for id in shared {
            let spec = CompareSpec {
                incumbent: id,
                candidate: id,
                suite: None,
                margin: None,
            };
            let c = compare::compare(other, this, &spec)?;
            for row in c.comparisons {
                if let Some(s) = row.suite.clone() {
                    comparisons.insert((s, id.to_string()), row);
                }
            }
        }
        Ok(Baseline {
            analysis: other,
            comparisons,
        })
    }
}

/// The HTML exporter: the analysis, and what else the page shows when it has it.
#[derive(Default)]
pub struct Html<'a> {
    /// The per-task drill-down (read from the store by the caller).
    pub drilldown: Option<&'a Drilldown>,
    /// Another run to show beside this one.
    pub baseline: Option<&'a Baseline<'a>>,
    /// Routing decisions by workload class, one line each ([`markup::recommendations`]).
    pub recommendations: BTreeMap<String, String>,
}

impl Exporter for Html<'_> {
    fn render(&self, a: &RunAnalysis) -> String {
        let mut env = Environment::new();
        // The name ends in .html: minijinja's default callback turns on HTML escaping.
        if let Err(e) = env.add_template("report.html", TEMPLATE) {
            return format!("<!-- template error: {e} -->");
        }
        let page = self.page(a);
        env.get_template("report.html")
            .and_then(|t| t.render(page))
            .unwrap_or_else(|e| format!("<!-- render error: {e} -->"))
    }
}

/// The `sha256-…` source of a Content-Security-Policy for an inline element's text.
fn csp_hash(text: &str) -> String {
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
    )
}

#[derive(Serialize)]
struct RowView {
    provider: String,
    accepted: String,
    acceptance: String,
    qual: &'static str,
    qual_class: &'static str,
    cpa: String,
    cpa_bound: Option<String>,
    token_cost: String,
    rejection_cost: String,
    p95: String,
    errors: String,
    error_kinds: Vec<String>,
    was: Option<WasView>,
    verdict: Option<VerdictView>,
}

#[derive(Serialize)]
struct WasView {
    acceptance: String,
    cpa: String,
    token_cost: String,
    rejection_cost: String,
    p95: String,
    errors: String,
}

#[derive(Serialize)]
struct VerdictView {
    label: &'static str,
    class: &'static str,
    detail: String,
}

#[derive(Serialize)]
struct SuiteView {
    name: String,
    tasks: u64,
    threshold: String,
    rows: Vec<RowView>,
}

#[derive(Serialize)]
struct ClassView {
    workload: String,
    recommendation: Option<String>,
    qualifying: Vec<String>,
    suites: Vec<SuiteView>,
}

/// Whether a row qualifies: its whole acceptance interval clears the threshold.
fn qualification(r: &Row) -> (&'static str, &'static str) {
    match (r.quality_threshold, r.acceptance.low, r.acceptance.rate) {
        (None, ..) => ("no threshold", "muted"),
        (Some(_), None, _) => ("nothing decided", "muted"),
        (Some(t), Some(low), _) if low >= t => ("✓ qualifies", "yes"),
        (Some(t), _, Some(rate)) if rate >= t => ("? interval reaches below", "maybe"),
        _ => ("✗ below threshold", "no"),
    }
}

fn acceptance(r: &Row) -> String {
    format!(
        "{} [{} – {}]",
        markup::pct(r.acceptance.rate),
        markup::pct(r.acceptance.low),
        markup::pct(r.acceptance.high)
    )
}

fn cpa(r: &Row) -> String {
    let mark = if r.unpriced_calls > 0 {
        markup::UNKNOWN_MARK
    } else {
        ""
    };
    match r.cost_per_accepted_usd {
        None if r.accepted == 0 => "nothing accepted".into(),
        None => "unknown".into(),
        Some(v) => format!(
            "{}{mark} [{} – {}]",
            markup::usd(Some(v)),
            markup::usd(r.cost_per_accepted_ci.low),
            r.cost_per_accepted_ci
                .high
                .map_or_else(|| "∞".into(), |h| markup::usd(Some(h)))
        ),
    }
}

fn cpa_bound(r: &Row) -> Option<String> {
    (r.unpriced_calls > 0).then(|| match r.cost_per_accepted_max_usd {
        Some(m) => format!(
            "≤ {} with {} call(s) of unknown cost at their bound",
            markup::usd(Some(m)),
            r.unpriced_calls
        ),
        None => format!(
            "{} call(s) of unknown cost, no bound (no completion cap or price)",
            r.unpriced_calls
        ),
    })
}

fn errors(r: &Row) -> (String, Vec<String>) {
    let rate = |n: u64| {
        if r.calls == 0 {
            "–".to_string()
        } else {
            format!("{:.1}%", n as f64 * 100.0 / r.calls as f64)
        }
    };
    let kinds = r
        .failures
        .iter()
        .map(|(k, f)| format!("{k} {} ({})", f.count, rate(f.count)))
        .collect();
    (
        format!(
            "{} of {} ({})",
            r.failed_calls,
            r.calls,
            rate(r.failed_calls)
        ),
        kinds,
    )
}

fn verdict_view(c: &Comparison, conf: &str) -> VerdictView {
    let (label, class) = match c.verdict {
        MigrationVerdict::Superior => ("better", "yes"),
        MigrationVerdict::NonInferior => ("not worse", "yes"),
        MigrationVerdict::Inconclusive => ("inconclusive", "maybe"),
        MigrationVerdict::Inferior => ("worse", "no"),
    };
    let pts = |x: Option<f64>| x.map_or_else(|| "–".into(), |v| format!("{:+.1}", v * 100.0));
    let d = &c.acceptance_diff;
    let mut detail = format!(
        "Δ acceptance {} pts [{} – {}] ({conf} {}), margin {:.1} pts, {} paired",
        pts(d.estimate),
        pts(d.low),
        pts(d.high),
        d.method,
        c.margin * 100.0,
        c.paired
    );
    if let Some(n) = c.tasks_needed {
        detail.push_str(&format!("; about {n} paired tasks would decide it"));
    }
    if let Some(s) = c.saving_per_accepted_usd.estimate {
        detail.push_str(&format!(
            "; saving per accepted {} [{} – {}]",
            markup::usd(Some(s)),
            markup::usd(c.saving_per_accepted_usd.low),
            markup::usd(c.saving_per_accepted_usd.high)
        ));
    }
    VerdictView {
        label,
        class,
        detail,
    }
}

impl Html<'_> {
    fn page(&self, a: &RunAnalysis) -> Value {
        let conf = format!("{:.0}%", a.options.confidence * 100.0);
        let other = self.baseline.map(|b| b.analysis);
        let mut classes: Vec<ClassView> = Vec::new();
        for s in &a.run.plan.suites {
            let rows: Vec<&Row> = a
                .rows
                .iter()
                .map(|r| &r.figures)
                .filter(|r| r.suite == s.name)
                .collect();
            let views = rows
                .iter()
                .map(|r| {
                    let (q, qc) = qualification(r);
                    let (errs, kinds) = errors(r);
                    let was = other.and_then(|o| o.row(&r.suite, &r.provider)).map(|o| {
                        let o = &o.figures;
                        WasView {
                            acceptance: acceptance(o),
                            cpa: cpa(o),
                            token_cost: markup::usd(o.cost_usd.tokens),
                            rejection_cost: markup::usd(Some(o.cost_usd.rejections)),
                            p95: format!("{} ms", markup::ms(o.latency_ms.p95)),
                            errors: errors(o).0,
                        }
                    });
                    let verdict = self.baseline.and_then(|b| {
                        b.comparisons
                            .get(&(r.suite.clone(), r.provider.clone()))
                            .map(|c| verdict_view(c, &conf))
                    });
                    RowView {
                        provider: r.provider.clone(),
                        accepted: format!(
                            "{}/{}",
                            r.accepted,
                            r.outcomes - r.pending - r.grader_errors
                        ),
                        acceptance: acceptance(r),
                        qual: q,
                        qual_class: qc,
                        cpa: cpa(r),
                        cpa_bound: cpa_bound(r),
                        token_cost: markup::usd(r.cost_usd.tokens),
                        rejection_cost: markup::usd(Some(r.cost_usd.rejections)),
                        p95: format!("{} ms", markup::ms(r.latency_ms.p95)),
                        errors: errs,
                        error_kinds: kinds,
                        was,
                        verdict,
                    }
                })
                .collect();
            let suite = SuiteView {
                name: s.name.clone(),
                tasks: s.tasks,
                threshold: s
                    .quality_threshold
                    .map_or_else(|| "not set".into(), |t| markup::pct(Some(t))),
                rows: views,
            };
            let line = markup::qualifying_line(&s.name, s.quality_threshold, &rows);
            match classes.iter_mut().find(|c| c.workload == s.workload) {
                Some(c) => {
                    c.suites.push(suite);
                    c.qualifying.push(line);
                }
                None => classes.push(ClassView {
                    workload: s.workload.clone(),
                    recommendation: self.recommendations.get(&s.workload).cloned(),
                    qualifying: vec![line],
                    suites: vec![suite],
                }),
            }
        }
        let mut notes = Vec::new();
        if let Some(b) = self.baseline {
            notes.push(format!(
                "Second lines are run {}'s figures for the same suite and provider. The verdict pairs the two runs' outcomes on the same task and repeat: this run's provider against run {}'s, non-inferiority at the suite's margin (costbench compare).",
                b.analysis.run.id, b.analysis.run.id
            ));
        }
        notes.push(format!(
            "Qualifies: the whole {conf} Wilson interval of acceptance is at or above the suite's quality threshold; '?' when the estimate is above it but the interval reaches below."
        ));
        let title = markup::title(a);
        context! {
            title,
            subtitle => format!(
                "finished {} · confidence {conf} · generated by costbench {}",
                a.run.finished_at.as_deref().unwrap_or("not yet"),
                env!("CARGO_PKG_VERSION")
            ),
            csp => format!(
                "default-src 'none'; style-src {}; script-src {}; base-uri 'none'; form-action 'none'",
                csp_hash(CSS),
                csp_hash(SCRIPT)
            ),
            css => Value::from_safe_string(CSS.to_string()),
            script => Value::from_safe_string(SCRIPT.to_string()),
            confidence => conf.clone(),
            compare_run => other.map(|o| o.run.id),
            classes => Value::from(minijinja::value::Serde(&classes)),
            footnote => markup::footnote(a),
            notes,
            charts => Value::from(minijinja::value::Serde(charts::all(a))),
            graders => Value::from(minijinja::value::Serde(graders_view(a, &conf))),
            drill => Value::from(minijinja::value::Serde(self.drilldown.map(drill_view))),
        }
    }
}

/// A plain table: its caption, header and rows (every cell text, escaped by the template).
#[derive(Serialize)]
struct TableView {
    caption: String,
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// The graders section: label confusion matrices, field-level precision and recall, and the
/// graders against the human labels.
#[derive(Serialize)]
struct GradersView {
    tables: Vec<TableView>,
    notes: Vec<String>,
}

/// The graders section, or `None` when the run has no `label` or `fields` grader and no label.
fn graders_view(a: &RunAnalysis, conf: &str) -> Option<GradersView> {
    let d = &a.graders;
    let mut tables = Vec::new();
    for m in &d.confusion {
        let mut head = vec!["expected ↓ · answered →".to_string()];
        head.extend(m.labels.iter().cloned());
        tables.push(TableView {
            caption: format!(
                "label confusion · suite {} · graders[{}] · provider {} · {} outputs · accuracy {}",
                m.suite,
                m.grader,
                m.provider,
                m.outputs,
                markup::pct(m.accuracy)
            ),
            head,
            rows: m
                .labels
                .iter()
                .zip(&m.matrix)
                .map(|(l, r)| {
                    std::iter::once(l.clone())
                        .chain(r.iter().map(u64::to_string))
                        .collect()
                })
                .collect(),
        });
    }
    for f in &d.fields {
        tables.push(TableView {
            caption: format!(
                "fields · suite {} · graders[{}] · provider {} · {} outputs (* = micro-average)",
                f.suite, f.grader, f.provider, f.outputs
            ),
            head: [
                "field",
                "expected",
                "present",
                "correct",
                "precision",
                "recall",
                "F1",
            ]
            .map(String::from)
            .to_vec(),
            rows: f
                .fields
                .iter()
                .map(|x| {
                    vec![
                        x.pointer.clone(),
                        x.expected.to_string(),
                        x.predicted.to_string(),
                        x.correct.to_string(),
                        markup::pct(x.precision),
                        markup::pct(x.recall),
                        x.f1.map_or_else(|| "–".into(), |v| format!("{v:.3}")),
                    ]
                })
                .collect(),
        });
    }
    let mut notes = Vec::new();
    if let Some(ag) = &a.agreement {
        let ((gh, gr), (ch, cr)) = super::labels::grids(ag, conf);
        tables.push(TableView {
            caption: format!(
                "graders against {} human-labelled outcome(s)",
                ag.labelled_outcomes
            ),
            head: gh,
            rows: gr,
        });
        tables.push(TableView {
            caption: "acceptance as the graders measured it, and corrected for their error".into(),
            head: ch,
            rows: cr,
        });
        notes.push(super::labels::methods_note(ag));
    }
    (!tables.is_empty()).then_some(GradersView { tables, notes })
}

#[derive(Serialize)]
struct GraderView {
    mark: &'static str,
    class: &'static str,
    reason: String,
}

#[derive(Serialize)]
struct CellView {
    provider: String,
    verdict: &'static str,
    verdict_label: &'static str,
    mark: &'static str,
    meta: String,
    error: Option<String>,
    output: Option<String>,
    output_note: Option<String>,
    graders: Vec<GraderView>,
}

#[derive(Serialize)]
struct SampleView {
    suite: String,
    task: String,
    failure: bool,
    disagree: bool,
    split: bool,
    vars: String,
    cells: Vec<CellView>,
}

#[derive(Serialize)]
struct GroupView {
    title: &'static str,
    count: String,
    open: bool,
    samples: Vec<SampleView>,
}

#[derive(Serialize)]
struct DrillView {
    notes: Vec<String>,
    groups: Vec<GroupView>,
}

fn verdict_name(v: Option<Verdict>) -> (&'static str, &'static str) {
    match v {
        Some(Verdict::Accepted) => ("accepted", "✓ accepted"),
        Some(Verdict::Rejected) => ("rejected", "✗ rejected"),
        Some(Verdict::Unanswered) => ("unanswered", "✗ no answer"),
        Some(Verdict::GraderError) => ("grader_error", "! grader error"),
        Some(Verdict::Ungraded) => ("ungraded", "… not graded"),
        None => ("ungraded", "– not attempted"),
    }
}

/// Samples opened by default in a group: few enough to read at once.
const OPEN_GROUP_MAX: usize = 50;

fn drill_view(d: &Drilldown) -> DrillView {
    let mut notes = Vec::new();
    if d.samples_omitted > 0 {
        notes.push(format!(
            "{} more samples are not listed (a report lists at most {} samples and {} provider outcomes; the least informative groups are cut first).",
            d.samples_omitted,
            crate::drilldown::MAX_SAMPLES,
            crate::drilldown::MAX_CELLS
        ));
    }
    if d.outputs_omitted > 0 {
        notes.push(format!(
            "{} answers are left out to keep the file small (with their task's variables); their verdicts, reasons and costs are shown.",
            d.outputs_omitted
        ));
    }
    let mut groups: Vec<GroupView> = Vec::new();
    for s in &d.samples {
        if groups.last().is_none_or(|g| g.title != s.group.title()) {
            let total = d.totals.get(&s.group).copied().unwrap_or(0);
            groups.push(GroupView {
                title: s.group.title(),
                count: format!("{total} samples"),
                open: false,
                samples: Vec::new(),
            });
        }
        let cells = s.cells.iter().map(cell_view).collect();
        let vars = s
            .cells
            .iter()
            .find_map(|c| c.detail.as_ref())
            .map(|d| d.vars.clone())
            .unwrap_or_default();
        let task = if s.repeat > 0 {
            format!("{} #{}", s.task_id, s.repeat + 1)
        } else {
            s.task_id.clone()
        };
        if let Some(g) = groups.last_mut() {
            g.samples.push(SampleView {
                suite: s.suite.clone(),
                task,
                failure: s.failure,
                disagree: matches!(s.group, Group::Split | Group::Disagree),
                split: s.group == Group::Split,
                vars: cut_note(vars),
                cells,
            });
        }
    }
    for g in &mut groups {
        g.open = g.samples.len() <= OPEN_GROUP_MAX;
        let shown = g.samples.len();
        if g.count != format!("{shown} samples") {
            g.count = format!("{} (listed: {shown})", g.count);
        }
    }
    DrillView { notes, groups }
}

/// Marks text cut at [`MAX_CHARS`] as such.
fn cut_note(s: String) -> String {
    if s.chars().count() >= MAX_CHARS {
        format!("{s}… [cut at {MAX_CHARS} characters]")
    } else {
        s
    }
}

fn cell_view(c: &crate::drilldown::Cell) -> CellView {
    let (verdict, verdict_label) = verdict_name(c.verdict);
    let mut meta = Vec::new();
    if let Some(d) = &c.detail {
        meta.push(format!(
            "{} prompt + {} completion tokens",
            d.prompt_tokens, d.output_tokens
        ));
    }
    if let Some(f) = &c.facts {
        let mut cost = markup::usd(Some(f.known_cost.usd()));
        if f.unknown_calls > 0 {
            cost = if f.unbounded {
                format!("{cost} + {} call(s) of unknown cost", f.unknown_calls)
            } else {
                format!(
                    "{cost} + up to {} unknown",
                    markup::usd(Some(f.unknown_max.usd()))
                )
            };
        }
        meta.push(cost);
        if let Some(l) = f.latency_ms {
            meta.push(format!("{l:.0} ms"));
        }
    }
    let detail = c.detail.as_ref();
    let output_note = match detail {
        _ if c.output_omitted => Some("answer left out (report size limit)".to_string()),
        Some(d) if d.output_chars > d.output.chars().count() as u64 => Some(format!(
            "answer cut: {} of {} characters shown",
            d.output.chars().count(),
            d.output_chars
        )),
        _ => None,
    };
    let answered = detail.is_some_and(|d| d.error_kind.is_none());
    CellView {
        provider: c.provider.clone(),
        verdict,
        verdict_label,
        mark: verdict_label.split(' ').next().unwrap_or(""),
        meta: meta.join(" · "),
        error: detail.and_then(|d| {
            let kind = d.error_kind.as_deref()?;
            Some(match &d.error_message {
                Some(m) => format!("{kind}: {m}"),
                None => kind.to_string(),
            })
        }),
        output: detail
            .filter(|_| answered && !c.output_omitted)
            .map(|d| d.output.clone()),
        output_note,
        graders: c
            .graders
            .iter()
            .map(|v| {
                let (mark, class) = match (&v.error, v.passed) {
                    (Some(_), _) => ("!", "maybe"),
                    (None, true) => ("✓", "yes"),
                    (None, false) => ("✗", "no"),
                };
                GraderView {
                    mark,
                    class,
                    reason: match &v.error {
                        Some(e) => format!("could not grade: {e}"),
                        None => v.reason.clone(),
                    },
                }
            })
            .chain(
                detail
                    .and_then(|d| d.grade_error.clone())
                    .filter(|_| c.graders.is_empty())
                    .map(|e| GraderView {
                        mark: "!",
                        class: "maybe",
                        reason: e,
                    }),
            )
            .collect(),
    }
}

/// Rows of one suite, in plan order.
fn suite_rows<'a>(a: &'a RunAnalysis, suite: &str) -> Vec<&'a RowAnalysis> {
    a.rows.iter().filter(|r| r.figures.suite == suite).collect()
}

mod charts;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_name_turns_on_html_escaping() {
        let mut env = Environment::new();
        env.add_template("report.html", "{{ x }}").unwrap();
        let out = env
            .get_template("report.html")
            .unwrap()
            .render(context! { x => "<script>alert(1)</script>\"'&" })
            .unwrap();
        assert_eq!(
            out,
            "&lt;script&gt;alert(1)&lt;&#x2f;script&gt;&quot;&#x27;&amp;"
        );
    }

    #[test]
    fn csp_hash_is_the_base64_sha256_of_the_text() {
        // echo -n "" | openssl dgst -sha256 -binary | base64
        assert_eq!(
            csp_hash(""),
            "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
        );
    }
}
