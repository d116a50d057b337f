//! `costbench plan`: what a run of some suites on some providers would call and cost, worked
//! out before anything is spent. (Not to be confused with [`crate::run::plan`], the slots of a
//! run being made.)
//!
//! Per suite × provider: the calls (tasks × repeats); the prompt tokens, counted with the
//! model's own tokenizer where a crate has it (OpenAI models, through tiktoken-rs: the
//! cookbook's count of 3 framing tokens a message and 3 priming the reply) and otherwise
//! estimated as the UTF-8 bytes of the request's messages / 4, rounded up per request; the
//! output tokens, whose upper bound is the completion cap on every call and whose expectation,
//! when the database holds an earlier run of the same suite on the same provider, is that
//! run's mean per answered call ("from history", with its p95); and the cost of both online and
//! at the provider's batch rates ("no batch price" when it has none).
//!
//! Costs are exact: each request is priced on its own with [`Price::cost`], so a prompt above a
//! long-context threshold moves that request to its tier. Every prompt token is priced as
//! uncached input (a plan cannot know what a provider's cache will hold), at the list rates:
//! no service tier, off-peak discount or response-named multiplier is assumed. The history
//! mean is rounded to whole tokens per call.
//!
//! JSON (`costbench plan --format json`):
//!
//! ```text
//! { "rows": [ { "suite", "provider", "model", "tasks", "repeats", "calls", "render_errors",
//!               "prompt_tokens": { "total", "max_per_call", "counted_with" },
//!               "output_tokens": { "cap", "max_total",
//!                                  "history": null | { "run", "samples", "mean", "p95", "expected_total" } },
//!               "cost_usd": { "online": { "max", "expected" },
//!                             "batch": null | { "max", "expected" } } } ],
//!   "totals": { "calls", "prompt_tokens", "output_tokens_max",
//!               "cost_usd": { "online": { "max", "max_rows", "expected", "expected_rows" },
//!                             "batch": { "max", "max_rows", "expected", "expected_rows" } } } }
//! ```
//!
//! `counted_with` names the tokenizer (`"o200k_base"`, `"cl100k_base"`) or says
//! `"estimate: UTF-8 bytes / 4"`. A cost is `null` when it cannot be computed: no price, no
//! completion cap (for `max`), no history (for `expected`), or a price rule that leaves a used
//! token class unpriced. A total cost adds up the rows that have the figure and says how many
//! do (`max_rows`, `expected_rows`); `output_tokens_max` is `null` when a row sends no cap.

use serde::Serialize;

use crate::providers::pricing::Served;
use crate::providers::{
    ChatRequest, Message, Money, Price, ProviderConfig, Usage, bound, protocol_for,
};
use crate::store::{Store, StoreError};
use crate::suite::Suite;

/// How a row's prompt tokens were counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// The model's own BPE.
    Tiktoken(tiktoken_rs::tokenizer::Tokenizer),
    /// UTF-8 bytes / 4, rounded up per request.
    Estimate,
}

impl Counter {
    /// The counter for a provider's model: tiktoken for an OpenAI chat model spoken to over an
    /// OpenAI protocol (OpenRouter's `openai/` prefix allowed), else the estimate.
    pub fn for_provider(p: &ProviderConfig) -> Counter {
        use tiktoken_rs::tokenizer::{Tokenizer, get_tokenizer};
        if !p.protocol.starts_with("openai") {
            return Counter::Estimate;
        }
        let model = p.model.strip_prefix("openai/").unwrap_or(&p.model);
        match get_tokenizer(model) {
            // Chat token counting exists for these encodings only.
            Some(t @ (Tokenizer::O200kBase | Tokenizer::Cl100kBase)) => Counter::Tiktoken(t),
            _ => Counter::Estimate,
        }
    }

    /// The prompt tokens of one request's messages.
    pub fn count(self, messages: &[Message]) -> u64 {
        match self {
            Counter::Tiktoken(t) => {
                let Ok(bpe) = tiktoken_rs::bpe_for_tokenizer(t) else {
                    return estimate(messages);
                };
                // The OpenAI cookbook's chat count: 3 tokens framing each message, 3 priming
                // the reply.
                let text: u64 = messages
                    .iter()
                    .map(|m| {
                        3 + bpe.count_with_special_tokens(&m.role) as u64
                            + bpe.count_with_special_tokens(&m.content) as u64
                    })
                    .sum();
                text + 3
            }
            Counter::Estimate => estimate(messages),
        }
    }

    /// How the JSON and the table name it.
    pub fn name(self) -> &'static str {
        use tiktoken_rs::tokenizer::Tokenizer;
        match self {
            Counter::Tiktoken(Tokenizer::O200kBase) => "o200k_base",
            Counter::Tiktoken(Tokenizer::Cl100kBase) => "cl100k_base",
            Counter::Tiktoken(_) => "tiktoken",
            Counter::Estimate => "estimate: UTF-8 bytes / 4",
        }
    }
}

impl Serialize for Counter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// The documented estimate: the messages' UTF-8 bytes / 4, rounded up.
fn estimate(messages: &[Message]) -> u64 {
    let bytes: u64 = messages.iter().map(|m| m.content.len() as u64).sum();
    bytes.div_ceil(4)
}

/// Output tokens recorded in an earlier run of the same suite on the same provider.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct History {
    /// The run they come from (the latest with answers).
    pub run: i64,
    /// How many answered calls reported usage.
    pub samples: u64,
    /// Mean output tokens per call.
    pub mean: f64,
    /// 95th percentile (nearest rank).
    pub p95: u64,
    /// The mean, rounded to whole tokens, times the plan's calls.
    pub expected_total: u64,
}

impl History {
    /// Summarises recorded output-token counts (`expected_total` left 0 for the caller, who
    /// knows the calls); `None` when there are none.
    pub fn of(run: i64, mut tokens: Vec<u64>) -> Option<History> {
        if tokens.is_empty() {
            return None;
        }
        tokens.sort_unstable();
        let n = tokens.len();
        let mean = tokens.iter().map(|&t| t as f64).sum::<f64>() / n as f64;
        let rank = (0.95 * n as f64).ceil().max(1.0) as usize;
        Some(History {
            run,
            samples: n as u64,
            mean,
            p95: tokens[rank.min(n) - 1],
            expected_total: 0,
        })
    }

    /// The per-call output the expected cost uses: the mean, rounded.
    fn per_call(&self) -> u64 {
        self.mean.round() as u64
    }
}

/// Prompt-token figures of a row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptTokens {
    /// All calls together.
    pub total: u64,
    /// The largest request.
    pub max_per_call: u64,
    /// How they were counted.
    pub counted_with: Counter,
}

/// Output-token figures of a row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputTokens {
    /// The completion cap each request sends; `None` when it sends none.
    pub cap: Option<u64>,
    /// The cap on every call: the most the answers can use.
    pub max_total: Option<u64>,
    /// From an earlier run in the database, when there is one.
    pub history: Option<History>,
}

/// A cost at the cap and, with history, the expected one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Costs {
    /// Every answer using its whole completion cap.
    pub max: Option<Money>,
    /// Every answer using the history mean.
    pub expected: Option<Money>,
}

/// Online and batch costs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CostFigures {
    /// Through the provider's online API.
    pub online: Costs,
    /// At its batch rates; `None`: the price has no batch rates.
    pub batch: Option<Costs>,
}

/// One suite × provider of the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRow {
    /// Suite name.
    pub suite: String,
    /// Provider id.
    pub provider: String,
    /// The provider's model.
    pub model: String,
    /// Tasks of the suite.
    pub tasks: u64,
    /// Samples per task.
    pub repeats: u32,
    /// Requests the run would send (tasks × repeats, less those that cannot render).
    pub calls: u64,
    /// Tasks whose prompt fails to render for this provider (a run records them unanswered
    /// without calling).
    pub render_errors: u64,
    /// Prompt tokens.
    pub prompt_tokens: PromptTokens,
    /// Output tokens.
    pub output_tokens: OutputTokens,
    /// USD.
    pub cost_usd: CostFigures,
}

/// Totals over every row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    /// Requests.
    pub calls: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// The most output tokens; `None` when a row has no cap.
    pub output_tokens_max: Option<u64>,
    /// Costs over the rows that have them.
    pub cost_usd: TotalCosts,
}

/// Total costs: online and batch, each at the cap and expected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TotalCosts {
    /// Online.
    pub online: TotalCost,
    /// At batch rates.
    pub batch: TotalCost,
}

/// One cost summed over the rows that have it, saying how many do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TotalCost {
    /// The sum at the caps; `None` when no row has it.
    pub max: Option<Money>,
    /// How many rows `max` adds up.
    pub max_rows: u64,
    /// The sum from history; `None` when no row has it.
    pub expected: Option<Money>,
    /// How many rows `expected` adds up.
    pub expected_rows: u64,
}

impl TotalCost {
    fn add(&mut self, c: &Costs) {
        if let Some(m) = c.max {
            self.max = Some(self.max.unwrap_or_default().plus(m));
            self.max_rows += 1;
        }
        if let Some(m) = c.expected {
            self.expected = Some(self.expected.unwrap_or_default().plus(m));
            self.expected_rows += 1;
        }
    }
}

/// The whole plan (see the module docs for its JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Suite × provider rows, in the order given.
    pub rows: Vec<PlanRow>,
    /// Totals.
    pub totals: Totals,
}

/// Errors of `costbench plan`.
#[derive(Debug, thiserror::Error)]
pub enum EstimateError {
    /// Reading the history failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A tasks file changed while it was read.
    #[error(transparent)]
    TasksChanged(#[from] crate::suite::TasksChanged),
}

/// Adds an amount to an optional sum; one unknown amount makes the sum unknown.
fn add(sum: &mut Option<Money>, m: Option<Money>) {
    *sum = match (*sum, m) {
        (Some(a), Some(b)) => Some(a.plus(b)),
        _ => None,
    };
}

/// Works out the plan. `history` is the database to read earlier runs from, if any.
pub fn plan(
    suites: &[Suite],
    providers: &[ProviderConfig],
    history: Option<&Store>,
) -> Result<Plan, EstimateError> {
    let mut rows = Vec::new();
    for s in suites {
        for p in providers {
            rows.push(row(s, p, history)?);
        }
    }
    let mut totals = Totals {
        calls: 0,
        prompt_tokens: 0,
        output_tokens_max: Some(0),
        cost_usd: TotalCosts::default(),
    };
    for r in &rows {
        totals.calls += r.calls;
        totals.prompt_tokens += r.prompt_tokens.total;
        totals.output_tokens_max = totals
            .output_tokens_max
            .zip(r.output_tokens.max_total)
            .map(|(a, b)| a.saturating_add(b));
        totals.cost_usd.online.add(&r.cost_usd.online);
        totals
            .cost_usd
            .batch
            .add(&r.cost_usd.batch.unwrap_or_default());
    }
    Ok(Plan { rows, totals })
}

fn row(s: &Suite, p: &ProviderConfig, history: Option<&Store>) -> Result<PlanRow, EstimateError> {
    let counter = Counter::for_provider(p);
    let cap = protocol_for(&p.protocol).and_then(|proto| {
        bound::completion_cap(&proto.body(
            p,
            &ChatRequest {
                messages: Vec::new(),
                params: s.params.clone(),
            },
        ))
    });
    let recorded = match history {
        Some(store) => store.recorded_output_tokens(&s.name, &p.id)?,
        None => None,
    };
    let mut history = recorded.and_then(|(run, tokens)| History::of(run, tokens));
    let mean_output = history.as_ref().map(History::per_call);
    // Priced at the list rates: a plan assumes no off-peak window (see the module docs).
    let list = p.price.as_ref().map(|price| Price {
        off_peak: None,
        ..price.clone()
    });
    let batch_served = Served {
        batch: true,
        ..Served::default()
    };
    let has_batch = list.as_ref().is_some_and(|l| l.batch.is_some());
    // Tasks stream from their files; only sums are kept, so a plan's memory does not grow
    // with the suite.
    let mut sums = Sums::new(list.is_some());
    s.for_each_task(|_, t| -> Result<(), EstimateError> {
        sums.tasks += 1;
        let Ok(m) = s.messages(t) else {
            sums.render_errors += 1;
            return Ok(());
        };
        let n = counter.count(&m);
        sums.callable += 1;
        sums.prompt = sums.prompt.saturating_add(n);
        sums.max_prompt = sums.max_prompt.max(n);
        let price = list.as_ref();
        add(
            &mut sums.online.max,
            request_cost(price, n, cap, &Served::default()),
        );
        add(
            &mut sums.online.expected,
            request_cost(price, n, mean_output, &Served::default()),
        );
        add(
            &mut sums.batch.max,
            request_cost(price, n, cap, &batch_served),
        );
        add(
            &mut sums.batch.expected,
            request_cost(price, n, mean_output, &batch_served),
        );
        Ok(())
    })?;
    let repeats = u64::from(s.repeats);
    let calls = sums.callable.saturating_mul(repeats);
    if let Some(h) = &mut history {
        h.expected_total = h.per_call().saturating_mul(calls);
    }
    let times = |c: Costs| Costs {
        max: c.max.map(|m| m.times(repeats)),
        expected: c.expected.map(|m| m.times(repeats)),
    };
    Ok(PlanRow {
        suite: s.name.clone(),
        provider: p.id.clone(),
        model: p.model.clone(),
        tasks: sums.tasks,
        repeats: s.repeats,
        calls,
        render_errors: sums.render_errors.saturating_mul(repeats),
        prompt_tokens: PromptTokens {
            total: sums.prompt.saturating_mul(repeats),
            max_per_call: sums.max_prompt,
            counted_with: counter,
        },
        output_tokens: OutputTokens {
            cap,
            max_total: cap.map(|c| c.saturating_mul(calls)),
            history,
        },
        cost_usd: CostFigures {
            online: times(sums.online),
            batch: has_batch.then(|| times(sums.batch)),
        },
    })
}

/// Running sums of one row while its tasks stream.
struct Sums {
    tasks: u64,
    callable: u64,
    render_errors: u64,
    prompt: u64,
    max_prompt: u64,
    online: Costs,
    batch: Costs,
}

impl Sums {
    /// Costs start at 0 when there is a price to add to, else unknown.
    fn new(priced: bool) -> Sums {
        let zero = priced.then_some(Money::ZERO);
        let costs = Costs {
            max: zero,
            expected: zero,
        };
        Sums {
            tasks: 0,
            callable: 0,
            render_errors: 0,
            prompt: 0,
            max_prompt: 0,
            online: costs,
            batch: costs,
        }
    }
}

/// One request's cost: `input` prompt tokens and `output` completion tokens, served as
/// `served`; `None` without a price or an output figure, or when a rule leaves it unpriced.
fn request_cost(
    price: Option<&Price>,
    input: u64,
    output: Option<u64>,
    served: &Served,
) -> Option<Money> {
    let usage = Usage {
        input,
        output: output?,
        ..Usage::default()
    };
    price?.cost(&usage, served)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(parts: &[(&str, &str)]) -> Vec<Message> {
        parts
            .iter()
            .map(|(r, c)| Message {
                role: (*r).into(),
                content: (*c).into(),
            })
            .collect()
    }

    #[test]
    fn openai_models_count_with_their_tokenizer_others_estimate() {
        let cfg = |protocol: &str, model: &str| {
            crate::providers::testutil::config(
                protocol,
                "http://127.0.0.1:9/v1",
                model,
                serde_json::json!({}),
            )
        };
        let m = msgs(&[("system", "Answer briefly."), ("user", "hello world")]);
        let gpt = Counter::for_provider(&cfg("openai", "gpt-4o-mini"));
        assert_eq!(gpt.name(), "o200k_base");
        // "Answer briefly." is 3 tokens, "hello world" 2, each role 1: 3 + 1 + 3 for the
        // system turn, 3 + 1 + 2 for the user turn, 3 priming the reply.
        assert_eq!(gpt.count(&m), 16);
        let old = Counter::for_provider(&cfg("openai", "gpt-4"));
        assert_eq!(old.name(), "cl100k_base");
        let routed = Counter::for_provider(&cfg("openai", "openai/gpt-4.1-mini"));
        assert_eq!(routed.name(), "o200k_base");
        let other = Counter::for_provider(&cfg("openai", "deepseek-chat"));
        assert_eq!(other, Counter::Estimate);
        // 15 + 11 bytes = 26, / 4 rounded up.
        assert_eq!(other.count(&m), 7);
        let claude = Counter::for_provider(&cfg("anthropic", "gpt-4o"));
        assert_eq!(claude, Counter::Estimate);
    }

    #[test]
    fn history_is_the_mean_and_nearest_rank_p95() {
        let h = History::of(7, (1..=20).rev().collect()).unwrap();
        assert_eq!((h.run, h.samples, h.p95), (7, 20, 19));
        assert!((h.mean - 10.5).abs() < 1e-12);
        // 10.5 rounds to 11 tokens a call.
        assert_eq!(h.per_call(), 11);
        assert_eq!(History::of(7, Vec::new()), None);
    }

    #[test]
    fn each_request_finds_its_long_context_tier() {
        let price: Price = serde_saphyr::from_str(
            "{input: 1, output: 2, long_context: [{above_prompt_tokens: 100, input: 3, output: 4}]}",
        )
        .unwrap();
        let online = Served::default();
        // 50 tokens at $1/1M + 10 × $2/1M; 200 tokens at $3/1M + 10 × $4/1M.
        let usd = |s: &str| Some(Money::parse_usd(s).unwrap());
        assert_eq!(
            request_cost(Some(&price), 50, Some(10), &online),
            usd("0.00007")
        );
        assert_eq!(
            request_cost(Some(&price), 200, Some(10), &online),
            usd("0.00064")
        );
        // No batch rates: a batch call cannot be priced.
        let batch = Served {
            batch: true,
            ..Served::default()
        };
        assert_eq!(request_cost(Some(&price), 50, Some(10), &batch), None);
        assert_eq!(request_cost(None, 50, Some(10), &online), None);
        assert_eq!(request_cost(Some(&price), 50, None, &online), None);
    }
}
