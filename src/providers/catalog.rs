//! The dated price catalog: list prices shipped in `prices/catalog.yaml`, or read from LiteLLM's
//! `model_prices_and_context_window.json`, each with the date it was read and its source.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::pricing::{LongContext, Multiplier, Rates};
use super::{Price, Rate};
use crate::config::{ConfigError, DocPath, Loader};

/// A catalog price older than this draws a warning.
pub const STALE_AFTER_DAYS: u64 = 90;

/// The catalog shipped with costbench.
const BUILTIN: &str = include_str!("../../prices/catalog.yaml");

/// One model's list price, with where and when it was read.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(
    expecting = "a catalog entry: a mapping with keys model, provider, date, source and price, \
                 and optionally aliases"
)]
pub struct Entry {
    /// The model id the price is for.
    pub model: String,
    /// Other ids of the same model at the same price.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The vendor (`openai`, `anthropic`…).
    pub provider: String,
    /// When the price was read, `YYYY-MM-DD`; `None` when the source gives no date.
    pub date: Option<String>,
    /// Where the price came from.
    pub source: String,
    /// The price and its rules.
    pub price: Price,
}

#[derive(Deserialize)]
#[serde(expecting = "a mapping with the key entries, a list of catalog entries")]
struct CatalogFile {
    entries: Vec<Value>,
}

/// A set of dated prices.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Where the catalog was read from, for messages.
    pub origin: String,
    /// Its entries, in file order.
    pub entries: Vec<Entry>,
}

impl Catalog {
    /// The catalog shipped in `prices/catalog.yaml`.
    pub fn builtin() -> Catalog {
        // The file is checked by a test; an entry that failed to parse would be dropped here,
        // never invented.
        let entries = parse_yaml(BUILTIN).unwrap_or_default();
        Catalog {
            origin: "prices/catalog.yaml (built in)".into(),
            entries,
        }
    }

    /// Reads a catalog file: costbench's YAML, or LiteLLM's JSON (by its `.json` extension).
    pub fn load(path: &Path) -> Result<Catalog, ConfigError> {
        let entries = if path.extension().is_some_and(|e| e == "json") {
            from_litellm(path)?
        } else {
            let mut l = Loader::open(path)?;
            let root = l.root.clone();
            let top = DocPath::default();
            let file = l.field::<CatalogFile>(&top, &root);
            let mut out = Vec::new();
            for (i, v) in file.iter().flat_map(|f| f.entries.iter()).enumerate() {
                out.extend(l.field::<Entry>(&top.key("entries").index(i), v));
            }
            l.finish(Some(out))?
        };
        Ok(Catalog {
            origin: path.display().to_string(),
            entries,
        })
    }

    /// The entry for a model id: by id or alias, else a `vendor/model` key's model part.
    pub fn find(&self, model: &str) -> Option<&Entry> {
        let named = |e: &&Entry| e.model == model || e.aliases.iter().any(|a| a == model);
        self.entries.iter().find(named).or_else(|| {
            let mut suffix = self
                .entries
                .iter()
                .filter(|e| e.model.rsplit_once('/').is_some_and(|(_, m)| m == model));
            // Only when unambiguous: `openai/x` and `azure/x` may differ in price.
            match (suffix.next(), suffix.next()) {
                (Some(e), None) => Some(e),
                _ => None,
            }
        })
    }
}

impl Entry {
    /// How many whole days old the price is at `now`; `None` without a readable date.
    pub fn age_days(&self, now: SystemTime) -> Option<u64> {
        let date =
            humantime::parse_rfc3339(&format!("{}T00:00:00Z", self.date.as_deref()?)).ok()?;
        Some(now.duration_since(date).unwrap_or(Duration::ZERO).as_secs() / 86_400)
    }

    /// A warning when the price is older than [`STALE_AFTER_DAYS`] or undated.
    pub fn staleness(&self, now: SystemTime) -> Option<String> {
        match self.age_days(now) {
            Some(d) if d > STALE_AFTER_DAYS => Some(format!(
                "the catalog price of {} is dated {} ({d} days old, over {STALE_AFTER_DAYS}); \
                 check it against {}",
                self.model,
                self.date.as_deref().unwrap_or("?"),
                self.source
            )),
            Some(_) => None,
            None => Some(format!(
                "the catalog price of {} has no date; check it against {}",
                self.model, self.source
            )),
        }
    }
}

fn parse_yaml(text: &str) -> Result<Vec<Entry>, String> {
    #[derive(Deserialize)]
    struct Typed {
        entries: Vec<Entry>,
    }
    serde_saphyr::from_str::<Typed>(text)
        .map(|t| t.entries)
        .map_err(|e| e.to_string())
}

/// Reads LiteLLM's `model_prices_and_context_window.json`: USD per token as JSON numbers,
/// converted exactly from their decimal text; unknown keys ignored (its schema grows often).
fn from_litellm(path: &Path) -> Result<Vec<Entry>, ConfigError> {
    let located = |message: String| ConfigError::at_file(path, message);
    let text = std::fs::read_to_string(path).map_err(|e| located(e.to_string()))?;
    let root: BTreeMap<String, Value> =
        serde_json::from_str(&text).map_err(|e| located(format!("not LiteLLM's JSON: {e}")))?;
    // LiteLLM entries carry no date: the file's own modification time stands in for it.
    let date = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .map(|t| humantime::format_rfc3339(t).to_string()[..10].to_string());
    Ok(root
        .iter()
        .filter(|(k, _)| k.as_str() != "sample_spec")
        .filter_map(|(k, v)| {
            let price = litellm_price(v)?;
            Some(Entry {
                model: k.clone(),
                aliases: Vec::new(),
                provider: v
                    .get("litellm_provider")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                date: date.clone(),
                source: match v.get("source").and_then(Value::as_str) {
                    Some(s) => format!("LiteLLM ({s})"),
                    None => "LiteLLM (no source given)".into(),
                },
                price,
            })
        })
        .collect())
}

/// A LiteLLM per-token cost as an exact rate; `None` when absent or not a plain number.
fn per_token(v: &Value, key: &str) -> Option<Rate> {
    let n = v.get(key)?.as_number()?;
    super::price::Money::parse_usd(&n.to_string())
        .ok()
        .map(|m| Rate(m.0))
}

/// The five token classes of one LiteLLM variant (`""`, `"_batches"`, `"_above_200k_tokens"`…),
/// as a tier starting at `above` prompt tokens.
fn classes(v: &Value, suffix: &str, above: u64) -> Option<LongContext> {
    Some(LongContext {
        above_prompt_tokens: above,
        input: per_token(v, &format!("input_cost_per_token{suffix}"))?,
        cached_input: per_token(v, &format!("cache_read_input_token_cost{suffix}")),
        cache_write: per_token(v, &format!("cache_creation_input_token_cost{suffix}")),
        cache_write_1h: per_token(
            v,
            &format!("cache_creation_input_token_cost_above_1hr{suffix}"),
        ),
        output: per_token(v, &format!("output_cost_per_token{suffix}"))?,
    })
}

fn rates(v: &Value, suffix: &str) -> Option<Rates> {
    let c = classes(v, suffix, 0)?;
    Some(Rates {
        input: c.input,
        cached_input: c.cached_input,
        cache_write: c.cache_write,
        cache_write_1h: c.cache_write_1h,
        output: c.output,
        long_context: long_context(v, suffix),
    })
}

/// `*_above_{N}k_tokens{suffix}` tiers, and DashScope's `tiered_pricing` ranges.
fn long_context(v: &Value, suffix: &str) -> Vec<LongContext> {
    let mut out: Vec<LongContext> = [32u64, 100, 128, 200, 256, 272, 512]
        .into_iter()
        .filter_map(|n| classes(v, &format!("_above_{n}k_tokens{suffix}"), n * 1000))
        .collect();
    if suffix.is_empty() {
        for t in v
            .get("tiered_pricing")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let lo = t.pointer("/range/0").and_then(Value::as_f64).unwrap_or(0.0);
            let (Some(input), Some(output)) = (
                per_token(t, "input_cost_per_token"),
                per_token(t, "output_cost_per_token"),
            ) else {
                continue;
            };
            // The first range (from 0) is the list price itself.
            if lo > 0.0 {
                out.push(LongContext {
                    above_prompt_tokens: lo as u64,
                    input,
                    cached_input: per_token(t, "cache_read_input_token_cost"),
                    cache_write: None,
                    cache_write_1h: None,
                    output,
                });
            }
        }
    }
    out
}

fn litellm_price(v: &Value) -> Option<Price> {
    let list = rates(v, "").or_else(|| {
        // DashScope entries may carry only `tiered_pricing`: its first range is the list price.
        let first = v.pointer("/tiered_pricing/0")?;
        Some(Rates {
            long_context: long_context(v, ""),
            ..rates(first, "")?
        })
    })?;
    let mut service_tiers = BTreeMap::new();
    for tier in ["flex", "priority"] {
        if let Some(r) = rates(v, &format!("_{tier}")) {
            service_tiers.insert(tier.to_string(), r);
        }
    }
    let mut multipliers: BTreeMap<String, BTreeMap<String, Multiplier>> = BTreeMap::new();
    for (k, m) in v
        .get("provider_specific_entry")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let Ok(m) = serde_json::from_value::<Multiplier>(m.clone()) else {
            continue;
        };
        // Anthropic's entry: `us` is the `inference_geo` uplift, `fast` the fast-mode one.
        let field = if k == "fast" {
            "speed"
        } else {
            "inference_geo"
        };
        multipliers
            .entry(field.to_string())
            .or_default()
            .insert(k.clone(), m);
    }
    Some(Price {
        input: list.input,
        cached_input: list.cached_input,
        cache_write: list.cache_write,
        cache_write_1h: list.cache_write_1h,
        output: list.output,
        long_context: list.long_context,
        service_tiers,
        batch: rates(v, "_batches"),
        off_peak: None,
        multipliers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{Money, Served, Usage};

    #[test]
    fn the_builtin_catalog_parses_whole_and_dated() {
        let entries = parse_yaml(BUILTIN).unwrap();
        assert!(entries.len() >= 20, "{}", entries.len());
        let now = humantime::parse_rfc3339("2026-11-30T00:00:00Z").unwrap();
        for e in &entries {
            assert!(
                e.age_days(now).is_some(),
                "{} has no readable date",
                e.model
            );
            assert!(!e.source.is_empty(), "{} has no source", e.model);
        }
        let c = Catalog::builtin();
        assert_eq!(c.entries.len(), entries.len());
        assert_eq!(
            c.find("claude-sonnet-4-5").unwrap().model,
            "claude-sonnet-4-6"
        );
        // kimi-k2.5 was read on 2026-03-26: stale by late November.
        assert!(c.find("kimi-k2.5").unwrap().staleness(now).is_some());
        assert!(c.find("gpt-4.1-mini").unwrap().staleness(now).is_none());
    }

    #[test]
    fn litellm_entries_map_every_rule() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model_prices_and_context_window.json");
        std::fs::write(
            &path,
            r#"{
  "sample_spec": {"input_cost_per_token": "the input price"},
  "gpt-5.4": {"litellm_provider": "openai", "mode": "chat",
    "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1.5e-05,
    "cache_read_input_token_cost": 2.5e-07,
    "input_cost_per_token_above_272k_tokens": 5e-06,
    "output_cost_per_token_above_272k_tokens": 2.25e-05,
    "cache_read_input_token_cost_above_272k_tokens": 5e-07,
    "input_cost_per_token_batches": 1.25e-06, "output_cost_per_token_batches": 7.5e-06,
    "input_cost_per_token_priority": 5e-06, "output_cost_per_token_priority": 3e-05,
    "source": "https://developers.openai.com/api/docs/pricing", "supports_vision": true},
  "claude-opus-4-7": {"litellm_provider": "anthropic",
    "input_cost_per_token": 5e-06, "output_cost_per_token": 2.5e-05,
    "cache_creation_input_token_cost": 6.25e-06,
    "cache_creation_input_token_cost_above_1hr": 1e-05,
    "cache_read_input_token_cost": 5e-07,
    "provider_specific_entry": {"us": 1.1, "fast": 2.0}},
  "dashscope/qwen3-max": {"litellm_provider": "dashscope",
    "tiered_pricing": [
      {"range": [0, 32000], "input_cost_per_token": 1.2e-06, "output_cost_per_token": 6e-06},
      {"range": [32000, 128000], "input_cost_per_token": 2.4e-06, "output_cost_per_token": 1.2e-05}]},
  "text-embedding-3-small": {"litellm_provider": "openai", "mode": "embedding",
    "input_cost_per_token": 2e-08}
}"#,
        )
        .unwrap();
        let c = Catalog::load(&path).unwrap();
        let rate = |s: &str| Rate::parse_per_million(s).unwrap();
        let gpt = &c.find("gpt-5.4").unwrap().price;
        assert_eq!((gpt.input, gpt.output), (rate("2.5"), rate("15")));
        assert_eq!(gpt.cached_input, Some(rate("0.25")));
        assert_eq!(gpt.long_context[0].above_prompt_tokens, 272_000);
        assert_eq!(gpt.long_context[0].output, rate("22.5"));
        assert_eq!(gpt.batch.as_ref().unwrap().input, rate("1.25"));
        assert_eq!(gpt.service_tiers["priority"].output, rate("30"));
        assert_eq!(
            c.find("gpt-5.4").unwrap().source,
            "LiteLLM (https://developers.openai.com/api/docs/pricing)"
        );
        // Anthropic: both cache writes, and the geo and fast multipliers priced exactly.
        let opus = &c.find("claude-opus-4-7").unwrap().price;
        assert_eq!(opus.cache_write_1h, Some(rate("10")));
        let u = Usage {
            input: 1_000_000,
            ..Usage::default()
        };
        let mut s = Served::default();
        s.labels.insert("inference_geo".into(), "us".into());
        s.labels.insert("speed".into(), "fast".into());
        assert_eq!(opus.cost(&u, &s), Some(Money::parse_usd("11").unwrap()));
        // DashScope's ranges by the vendor/model key's model part.
        let qwen = &c.find("qwen3-max").unwrap().price;
        assert_eq!(qwen.input, rate("1.2"));
        assert_eq!(qwen.long_context[0].above_prompt_tokens, 32_000);
        // An entry with no output price (an embedding model) is not a chat price.
        assert!(c.find("text-embedding-3-small").is_none());
    }
}
