//! The `judge` grader: an LLM reads the output against a rubric and answers with a verdict.
//!
//! The judge is any provider of the providers file, called through the same protocol code,
//! HTTP tries and retry policy as the candidates (`run::call`), and its answers go through the
//! same record/replay cache (keyed by the judge request; `sample` 0, and 1 for the one retry
//! after a malformed verdict), so a rerun or `costbench grade` replays them instead of paying
//! again. Every judge call is stored in `judge_calls`, and each grade keeps what its judges
//! cost, which the report adds to cost per accepted outcome.
//!
//! The verdict is read strictly: exactly one JSON object `{"pass": bool, "score": 0..1,
//! "reason": "..."}` (`score` optional unless `threshold` is set; a surrounding ```` ```json ````
//! fence is allowed, prose and unknown keys are not). A malformed verdict is asked for once
//! more; a second malformed one, a failed call or a replay miss is a grader error, never a
//! pass or a fail. Judge calls run concurrently on tokio (up to each judge provider's
//! `max_concurrency`); the local graders stay on rayon.

use std::collections::HashMap;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::template::{TemplateId, TemplateSet, scalar_string};
use super::text::{clip, fenced_body};
use super::{GradeConfigError, Vars, Verdict};
use crate::providers::{ChatRequest, Message, Money, ProviderConfig, Tally, bound, protocol_for};
use crate::run::CacheMode;
use crate::run::call::{CallSpec, backoff, try_once};
use crate::run::spend::Budget;
use crate::store::judge::JudgeCallRow;
use crate::store::{AttemptRow, CacheRecord, ErrorKind, Store, StoreError};

/// Completion cap of a judge call when the spec gives none.
const DEFAULT_MAX_TOKENS: u64 = 512;

/// What the judge is told to do; the rubric and the output follow in the user turn.
const SYSTEM: &str = "You are a strict grader. Judge the RESPONSE against the RUBRIC. Reply with \
exactly one JSON object and nothing else: {\"pass\": true or false, \"score\": a number from 0 \
to 1, \"reason\": \"one short sentence\"}.";

/// `type: judge` — an LLM judge with a rubric decides.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeSpec {
    /// The judge: a provider id of the providers file.
    #[serde(deserialize_with = "scalar_string")]
    pub provider: String,
    /// What a good answer is, a template with the task's variables.
    #[serde(deserialize_with = "scalar_string")]
    pub rubric: String,
    /// When set, the judge's `score` (then required) must reach it to pass, instead of its
    /// `pass`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Completion cap of each judge call (default 512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
}

/// Compiled `judge` grader.
#[derive(Debug, Clone)]
pub(crate) struct JudgeGrader {
    /// The judge's provider id.
    pub(crate) provider: String,
    templates: TemplateSet,
    rubric: TemplateId,
    threshold: Option<f64>,
    max_tokens: u64,
}

/// The verdict object a judge must answer with.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    pass: bool,
    #[serde(default)]
    score: Option<f64>,
    reason: String,
}

impl JudgeGrader {
    /// Checks the spec and compiles the rubric.
    pub(crate) fn compile(spec: &JudgeSpec) -> Result<Self, GradeConfigError> {
        if spec.provider.trim().is_empty() {
            return Err(GradeConfigError::new(
                "judge",
                "provider",
                "name the judge: a provider id of the providers file",
            ));
        }
        if spec.rubric.trim().is_empty() {
            return Err(GradeConfigError::new(
                "judge",
                "rubric",
                "must not be empty: it is what the judge grades against",
            ));
        }
        if let Some(t) = spec.threshold
            && !(0.0..=1.0).contains(&t)
        {
            return Err(GradeConfigError::new(
                "judge",
                "threshold",
                format!("must be a score between 0 and 1 (got {t})"),
            ));
        }
        let max_tokens = spec.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        if max_tokens == 0 {
            return Err(GradeConfigError::new(
                "judge",
                "max_tokens",
                "must be at least 1",
            ));
        }
        let mut templates = TemplateSet::new();
        let rubric = templates.add("judge", "rubric", &spec.rubric)?;
        Ok(Self {
            provider: spec.provider.clone(),
            templates,
            rubric,
            threshold: spec.threshold,
            max_tokens,
        })
    }

    /// The rubric rendered for a task.
    pub(crate) fn rubric(&self, vars: &Vars) -> Result<String, String> {
        self.templates
            .render(self.rubric, vars)
            .map(|c| c.into_owned())
    }

    /// The judge's conversation for one output.
    fn messages(&self, output: &str, vars: &Vars) -> Result<Vec<Message>, String> {
        let rubric = self.rubric(vars)?;
        Ok(vec![
            Message {
                role: "system".into(),
                content: SYSTEM.into(),
            },
            Message {
                role: "user".into(),
                content: format!("RUBRIC:\n{rubric}\n\nRESPONSE:\n<<<\n{output}\n>>>"),
            },
        ])
    }

    /// Reads a judge's answer strictly into a verdict; `Err` says why it is malformed.
    pub(crate) fn verdict(&self, text: &str) -> Result<Verdict, String> {
        let t = text.trim();
        let body = match fenced_body(t) {
            Some((body, rest)) if rest.trim().is_empty() => body.trim(),
            Some(_) => return Err("text after the fenced verdict".into()),
            None => t,
        };
        let reply: Reply = serde_json::from_str(body).map_err(|e| {
            format!(
                "not a verdict object ({e}): \"{}\"",
                clip(body).replace('"', "'")
            )
        })?;
        if let Some(s) = reply.score
            && !(s.is_finite() && (0.0..=1.0).contains(&s))
        {
            return Err(format!("score {s} is not between 0 and 1"));
        }
        let passed = match (self.threshold, reply.score) {
            (Some(t), Some(s)) => s >= t,
            (Some(_), None) => return Err("no score, and the grader has a threshold".into()),
            (None, _) => reply.pass,
        };
        let reason = match (self.threshold, reply.score) {
            (Some(t), Some(s)) => format!("judge score {s} (threshold {t}): {}", reply.reason),
            _ => format!("judge: {}", reply.reason),
        };
        Ok(Verdict {
            passed,
            reason,
            error: None,
            score: reply.score,
            detail: None,
        })
    }
}

/// The providers judge graders may call, and how: the whole providers file (a judge need not
/// be a candidate), the run's cache mode, and the async runtime and HTTP clients, made on
/// first use.
pub struct Judges {
    providers: Vec<ProviderConfig>,
    mode: CacheMode,
    rt: Option<tokio::runtime::Runtime>,
    clients: HashMap<String, reqwest::Client>,
    /// The run's `--max-spend`, which judge calls count against like any other call.
    budget: Option<Budget>,
}

/// One judge request ready to resolve: the body, its two cache keys and what the cache holds.
pub(crate) struct JudgeRequest {
    /// Which output of the batch, and which grader.
    pub(crate) item: usize,
    pub(crate) grader: usize,
    attempt_id: i64,
    base: AttemptRow,
    provider: usize,
    body: Value,
    keys: [String; 2],
    cached: [Option<(String, Option<f64>)>; 2],
}

/// A resolved judge request: the verdict, what the judge calls cost, and what to store.
pub(crate) struct JudgeResult {
    pub(crate) item: usize,
    pub(crate) grader: usize,
    pub(crate) verdict: Verdict,
    pub(crate) cost: Tally,
    pub(crate) calls: Vec<JudgeCallRow>,
    pub(crate) answers: Vec<CacheRecord>,
    /// The spend cap kept a call from being sent: the output must stay ungraded.
    pub(crate) capped: bool,
}

/// Where a judged output came from (the candidate's answer).
pub(crate) struct Judged<'a> {
    /// The answering attempt.
    pub(crate) attempt_id: i64,
    /// Run, suite, task and repeat of the outcome.
    pub(crate) run_id: i64,
    pub(crate) suite: &'a str,
    pub(crate) task_id: &'a str,
    pub(crate) repeat: u32,
    /// The output and its task's variables.
    pub(crate) output: &'a str,
    pub(crate) vars: &'a Vars,
}

impl Judges {
    /// Judges that may call `providers`, using the cache as `mode` says.
    pub fn new(providers: Vec<ProviderConfig>, mode: CacheMode) -> Judges {
        Judges {
            providers,
            mode,
            rt: None,
            clients: HashMap::new(),
            budget: None,
        }
    }

    /// Judges whose calls stay within `cap`, of which `spent_before` is already used: a call
    /// that could pass it is not sent, and its output is left ungraded for a resume.
    pub fn with_cap(mut self, cap: Money, spent_before: Tally) -> Judges {
        self.budget = Some(Budget::new(cap, spent_before));
        self
    }

    /// No judge provider at all: a judge grader is then a grader error.
    pub fn none() -> Judges {
        Judges::new(Vec::new(), CacheMode::Off)
    }

    /// Renders the judge request for one output and looks its answers up in the cache.
    pub(crate) fn prepare(
        &self,
        store: &Store,
        g: &JudgeGrader,
        (item, grader): (usize, usize),
        o: &Judged<'_>,
    ) -> Result<Result<JudgeRequest, String>, StoreError> {
        let Some(provider) = self.providers.iter().position(|p| p.id == g.provider) else {
            return Ok(Err(format!(
                "judge provider `{}` is not in the providers file given (costbench grade: pass \
                 it with --providers FILE)",
                g.provider
            )));
        };
        let cfg = &self.providers[provider];
        let Some(protocol) = protocol_for(&cfg.protocol) else {
            return Ok(Err(format!("unknown protocol `{}`", cfg.protocol)));
        };
        let messages = match g.messages(o.output, o.vars) {
            Ok(m) => m,
            Err(e) => return Ok(Err(e)),
        };
        let mut params = serde_json::Map::new();
        params.insert("temperature".into(), json!(0));
        params.insert("max_tokens".into(), json!(g.max_tokens));
        let body = protocol.body(cfg, &ChatRequest { messages, params });
        let keys = [0, 1].map(|s| crate::run::cache::request_key(cfg, &body, s));
        let mut cached = [None, None];
        if self.mode != CacheMode::Off {
            for (slot, key) in cached.iter_mut().zip(&keys) {
                *slot = store.cache_get(key)?;
            }
        }
        Ok(Ok(JudgeRequest {
            item,
            grader,
            attempt_id: o.attempt_id,
            base: AttemptRow {
                run_id: o.run_id,
                suite: o.suite.to_string(),
                provider: cfg.id.clone(),
                task_id: o.task_id.to_string(),
                repeat: o.repeat,
                ..Default::default()
            },
            provider,
            body,
            keys,
            cached,
        }))
    }

    /// Resolves every request: from the cache where it can, else by calling the judges
    /// concurrently (each provider up to its `max_concurrency`). Results come in any order.
    pub(crate) fn run(
        &mut self,
        graders: &[super::CompiledGrader],
        reqs: Vec<JudgeRequest>,
    ) -> Vec<JudgeResult> {
        if reqs.is_empty() {
            return Vec::new();
        }
        if self.rt.is_none() {
            match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => self.rt = Some(rt),
                Err(e) => {
                    let why = format!("cannot start the judge runtime: {e}");
                    return reqs.into_iter().map(|r| failed(&r, why.clone())).collect();
                }
            }
        }
        for p in &self.providers {
            if !self.clients.contains_key(&p.id)
                && let Ok(c) = reqwest::Client::builder()
                    .pool_max_idle_per_host(p.max_concurrency)
                    .build()
            {
                self.clients.insert(p.id.clone(), c);
            }
        }
        let mut by_provider: Vec<Vec<JudgeRequest>> =
            (0..self.providers.len()).map(|_| Vec::new()).collect();
        for r in reqs {
            by_provider[r.provider].push(r);
        }
        let this = &*self;
        let Some(rt) = this.rt.as_ref() else {
            return Vec::new();
        };
        rt.block_on(async {
            let per_provider = by_provider.into_iter().enumerate().map(|(p, reqs)| {
                let cfg = &this.providers[p];
                futures_util::stream::iter(reqs)
                    .map(move |r| {
                        let judge = graders.get(r.grader).and_then(|g| g.as_judge());
                        async move { this.resolve(cfg, judge, r).await }
                    })
                    .buffer_unordered(cfg.max_concurrency.max(1))
                    .collect::<Vec<_>>()
            });
            futures_util::future::join_all(per_provider)
                .await
                .into_iter()
                .flatten()
                .collect()
        })
    }

    /// One judge request: sample 0, and sample 1 when the first verdict was malformed.
    async fn resolve(
        &self,
        cfg: &ProviderConfig,
        grader: Option<&JudgeGrader>,
        r: JudgeRequest,
    ) -> JudgeResult {
        let Some(g) = grader else {
            return failed(&r, "internal error: no judge grader".into());
        };
        let Some(protocol) = protocol_for(&cfg.protocol) else {
            return failed(&r, format!("unknown protocol `{}`", cfg.protocol));
        };
        let mut out = JudgeResult {
            item: r.item,
            grader: r.grader,
            verdict: error_verdict(String::new()),
            cost: Tally::default(),
            calls: Vec::new(),
            answers: Vec::new(),
            capped: false,
        };
        let mut malformed = Vec::new();
        for sample in 0..2u32 {
            let mut base = r.base.clone();
            base.request_hash = r.keys[sample as usize].clone();
            let rows = match &r.cached[sample as usize] {
                Some((resp, latency)) => vec![crate::run::cache::replayed_row(
                    base,
                    (resp, *latency),
                    cfg,
                    protocol,
                )],
                None if self.mode == CacheMode::Replay => {
                    out.verdict = error_verdict(format!(
                        "no recorded answer of judge `{}` (--cache replay makes no network call)",
                        cfg.id
                    ));
                    return out;
                }
                None => {
                    // Only a capped run needs the call's bound (a pass over the body).
                    let budget = self.budget.as_ref().map(|b| {
                        let prompt = bound::prompt_token_bound(&r.body);
                        (b, bound::cost_bound(cfg.price.as_ref(), &r.body, prompt))
                    });
                    // Held while the call (and its retries) is in flight.
                    let _permit = match budget {
                        Some((b, bound)) => match b.admit(bound).await {
                            Ok(p) => Some(p),
                            Err(_) => {
                                out.capped = true;
                                out.verdict = error_verdict("stopped at the spend cap".into());
                                return out;
                            }
                        },
                        None => None,
                    };
                    let rows = self.call(cfg, protocol, &r, base, &mut out.answers).await;
                    if let Some((b, bound)) = budget {
                        for row in &rows {
                            b.record(row.spent, bound);
                        }
                    }
                    rows
                }
            };
            let last = rows.last().cloned();
            for row in rows {
                out.cost.add(row.cost, None);
                out.calls.push(JudgeCallRow {
                    attempt_id: r.attempt_id,
                    grader: r.grader,
                    sample,
                    row,
                });
            }
            let last = match last {
                Some(l) if l.answered => l,
                other => {
                    let why = other
                        .and_then(|l| l.error_message)
                        .unwrap_or_else(|| "no answer".into());
                    out.verdict = error_verdict(format!("judge `{}` call failed: {why}", cfg.id));
                    return out;
                }
            };
            match g.verdict(last.output.as_deref().unwrap_or("")) {
                Ok(v) => {
                    out.verdict = v;
                    return out;
                }
                Err(why) => malformed.push(why),
            }
        }
        out.verdict = error_verdict(format!(
            "judge `{}` gave a malformed verdict twice: {}",
            cfg.id,
            malformed.join("; then ")
        ));
        out
    }

    /// Calls the judge with the provider's retry policy; returns every try, the last final.
    async fn call(
        &self,
        cfg: &ProviderConfig,
        protocol: &'static dyn crate::providers::Protocol,
        r: &JudgeRequest,
        mut base: AttemptRow,
        answers: &mut Vec<CacheRecord>,
    ) -> Vec<AttemptRow> {
        let key = match &cfg.api_key_env {
            Some(var) => match std::env::var(var) {
                Ok(k) if !k.is_empty() => Some(k),
                _ => {
                    return vec![AttemptRow {
                        is_final: true,
                        started_at: crate::store::now(),
                        error_kind: Some(ErrorKind::MissingKey),
                        error_message: Some(format!("environment variable {var} is not set")),
                        cost: Some(crate::providers::Money::ZERO),
                        spent: Some(crate::providers::Money::ZERO),
                        ..base
                    }];
                }
            },
            None => None,
        };
        let Some(client) = self.clients.get(&cfg.id) else {
            return Vec::new();
        };
        let spec = CallSpec {
            cfg,
            protocol,
            client,
            key: key.as_deref(),
            body: &r.body,
            // A judge's verdict is read whole; its time to first token is of no use.
            stream: false,
        };
        let mut delays = backoff(cfg);
        let mut rows = Vec::new();
        loop {
            let t = try_once(&spec, base.clone()).await;
            let wait =
                if t.retryable { delays.next() } else { None }.map(|d| t.retry_after.unwrap_or(d));
            let mut row = t.row;
            row.is_final = row.answered || wait.is_none();
            if let Some(resp) = t.body.filter(|_| self.mode == CacheMode::ReadWrite) {
                answers.push(crate::run::cache::record(
                    cfg,
                    &row.request_hash,
                    &r.body,
                    resp,
                    row.latency_ms,
                ));
            }
            rows.push(row);
            let Some(wait) = wait else { return rows };
            tokio::time::sleep(wait).await;
            base.try_no += 1;
        }
    }
}

/// A verdict of a judge that could not judge.
fn error_verdict(why: String) -> Verdict {
    Verdict {
        passed: false,
        reason: format!("error: {why}"),
        error: Some(why),
        score: None,
        detail: None,
    }
}

fn failed(r: &JudgeRequest, why: String) -> JudgeResult {
    JudgeResult {
        item: r.item,
        grader: r.grader,
        verdict: error_verdict(why),
        cost: Tally::default(),
        calls: Vec::new(),
        answers: Vec::new(),
        capped: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grader(yaml: &str) -> JudgeGrader {
        let spec: JudgeSpec = serde_saphyr::from_str(yaml).unwrap();
        JudgeGrader::compile(&spec).unwrap()
    }

    #[test]
    fn verdicts_are_read_strictly() {
        let g = grader("{provider: j, rubric: 'is polite'}");
        let v = g
            .verdict(r#"{"pass": true, "score": 0.9, "reason": "polite"}"#)
            .unwrap();
        assert!(v.passed);
        assert_eq!(v.score, Some(0.9));
        assert_eq!(v.reason, "judge: polite");
        let v = g
            .verdict("```json\n{\"pass\": false, \"reason\": \"rude\"}\n```")
            .unwrap();
        assert!(!v.passed);
        assert_eq!(v.score, None);
        for bad in [
            "PASS",
            r#"Sure! {"pass": true, "reason": "x"}"#,
            r#"{"pass": "yes", "reason": "x"}"#,
            r#"{"pass": true}"#,
            r#"{"pass": true, "reason": "x", "extra": 1}"#,
            r#"{"pass": true, "score": 1.5, "reason": "x"}"#,
            "```json\n{\"pass\": true, \"reason\": \"x\"}\n```\nand more",
            r#"[{"pass": true, "reason": "x"}]"#,
        ] {
            assert!(g.verdict(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_threshold_decides_by_score_and_needs_one() {
        let g = grader("{provider: j, rubric: r, threshold: 0.7}");
        assert!(
            !g.verdict(r#"{"pass": true, "score": 0.6, "reason": "x"}"#)
                .unwrap()
                .passed
        );
        assert!(
            g.verdict(r#"{"pass": false, "score": 0.7, "reason": "x"}"#)
                .unwrap()
                .passed
        );
        let e = g.verdict(r#"{"pass": true, "reason": "x"}"#).unwrap_err();
        assert!(e.contains("no score"), "{e}");
    }

    #[test]
    fn bad_specs_are_load_errors() {
        for (yaml, field) in [
            ("{provider: '', rubric: r}", "provider"),
            ("{provider: j, rubric: ' '}", "rubric"),
            ("{provider: j, rubric: r, threshold: 2}", "threshold"),
            ("{provider: j, rubric: r, max_tokens: 0}", "max_tokens"),
            ("{provider: j, rubric: '{{ x'}", "rubric"),
        ] {
            let spec: JudgeSpec = serde_saphyr::from_str(yaml).unwrap();
            let e = JudgeGrader::compile(&spec).unwrap_err();
            assert_eq!(e.field, field, "{yaml}: {e}");
        }
    }

    #[test]
    fn the_rubric_is_rendered_with_the_task_and_the_output_is_delimited() {
        let g = grader("{provider: j, rubric: 'mentions {{ city }}'}");
        let mut vars = Vars::new();
        vars.insert("city".into(), json!("Paris"));
        let m = g.messages("It is Paris.", &vars).unwrap();
        assert_eq!(m[0].role, "system");
        assert_eq!(
            m[1].content,
            "RUBRIC:\nmentions Paris\n\nRESPONSE:\n<<<\nIt is Paris.\n>>>"
        );
        assert!(g.messages("x", &Vars::new()).is_err());
    }
}
