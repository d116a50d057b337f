//! The rules that turn one call's usage into its bill, as the providers bill it.
//!
//! A call is priced from one rate set, chosen in the order pricing.md gives: the batch rates for
//! a batch call, else the rates of the service tier that actually served it (read from the
//! response, not the request), else the off-peak rates when the call started outside the peak
//! windows, else the list rates. Within that set, a prompt above a long-context threshold moves
//! the *whole* request (output included) to that tier's rates. Multipliers the response names
//! (Anthropic's `inference_geo`, fast mode) apply last. A rule that applies but has no price
//! makes the cost unknown, never the list price: a missing batch or tier price is not "no
//! discount" (pricing.md, LiteLLM caveat 5).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Money, Price, Rate, Usage};

/// One set of rates, USD per 1M tokens by token class, with its long-context tiers.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(
    expecting = "a mapping with keys input and output, and optionally cached_input, \
                 cache_write, cache_write_1h and long_context"
)]
pub struct Rates {
    /// Prompt tokens not served from a cache.
    pub input: Rate,
    /// Prompt tokens read from a cache; absent means cached tokens cannot be priced.
    pub cached_input: Option<Rate>,
    /// Prompt tokens written to a cache (Anthropic: the 5-minute write).
    pub cache_write: Option<Rate>,
    /// Prompt tokens written to a 1-hour cache (Anthropic).
    pub cache_write_1h: Option<Rate>,
    /// Completion tokens, reasoning included.
    pub output: Rate,
    /// Long-context tiers of this rate set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub long_context: Vec<LongContext>,
}

/// A long-context tier: a request whose prompt exceeds `above_prompt_tokens` pays these rates on
/// every token (Gemini Pro above 200K, GPT-5.4+ above 272K, Claude Haiku 5.5 above 100K, Qwen's
/// ranges). A class this tier leaves unpriced cannot be priced in such a request.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(
    expecting = "a mapping with keys above_prompt_tokens, input and output, and optionally \
                 cached_input, cache_write and cache_write_1h"
)]
pub struct LongContext {
    /// The tier applies when the prompt (input + cache reads + cache writes) is above this.
    pub above_prompt_tokens: u64,
    /// Prompt tokens not served from a cache.
    pub input: Rate,
    /// Prompt tokens read from a cache.
    pub cached_input: Option<Rate>,
    /// Prompt tokens written to a 5-minute cache.
    pub cache_write: Option<Rate>,
    /// Prompt tokens written to a 1-hour cache.
    pub cache_write_1h: Option<Rate>,
    /// Completion tokens, reasoning included.
    pub output: Rate,
}

/// Off-peak rates (DeepSeek): they replace the list rates for a whole request that starts
/// outside every peak window.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(
    expecting = "a mapping with keys input, output and peak_hours_utc, and optionally \
                 cached_input, cache_write, cache_write_1h and peak_weekdays"
)]
pub struct OffPeak {
    /// Prompt tokens not served from a cache.
    pub input: Rate,
    /// Prompt tokens read from a cache.
    pub cached_input: Option<Rate>,
    /// Prompt tokens written to a 5-minute cache.
    pub cache_write: Option<Rate>,
    /// Prompt tokens written to a 1-hour cache.
    pub cache_write_1h: Option<Rate>,
    /// Completion tokens, reasoning included.
    pub output: Rate,
    /// Peak windows in UTC, `"HH:MM-HH:MM"`, end exclusive (`"01:00-04:00"`).
    pub peak_hours_utc: Vec<Window>,
    /// ISO weekdays (1 = Monday … 7 = Sunday) on which the peak windows apply; default all.
    #[serde(default = "every_day")]
    pub peak_weekdays: Vec<Weekday>,
}

fn every_day() -> Vec<Weekday> {
    (1..=7).map(Weekday).collect()
}

/// An ISO weekday, 1 = Monday … 7 = Sunday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Weekday(u8);

impl<'de> Deserialize<'de> for Weekday {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Weekday, D::Error> {
        match u8::deserialize(d)? {
            n @ 1..=7 => Ok(Weekday(n)),
            n => Err(serde::de::Error::custom(format!(
                "{n} is not an ISO weekday (1 = Monday … 7 = Sunday)"
            ))),
        }
    }
}

/// A window of the UTC day in minutes, `[start, end)`; `end` may be 24:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    start: u32,
    end: u32,
}

impl Window {
    fn parse(s: &str) -> Result<Window, String> {
        let bad = || format!("`{s}` is not a UTC window like \"01:00-04:00\"");
        let minute = |t: &str| -> Option<u32> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (m < 60 && (h < 24 || h == 24 && m == 0)).then_some(h * 60 + m)
        };
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (start, end) = (minute(a).ok_or_else(bad)?, minute(b).ok_or_else(bad)?);
        if start >= end {
            return Err(format!("`{s}`: the window must end after it starts"));
        }
        Ok(Window { start, end })
    }

    fn contains(self, minute_of_day: u32) -> bool {
        (self.start..self.end).contains(&minute_of_day)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Window, D::Error> {
        Window::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let hm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
        s.collect_str(&format_args!("{}-{}", hm(self.start), hm(self.end)))
    }
}

/// A price multiplier, an exact decimal with at most 9 decimals (`1.1`, `2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Multiplier(i128);

impl<'de> Deserialize<'de> for Multiplier {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Multiplier, D::Error> {
        // A rate's text form is a decimal with 9 decimals: reuse its exact parser.
        Rate::deserialize(d).map(|r| Multiplier(r.0))
    }
}

impl Serialize for Multiplier {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = Money(self.0 * 1_000_000).to_string();
        s.collect_str(m.trim_start_matches('$'))
    }
}

/// How one call was served, as far as its price depends on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Served {
    /// When the request started, in Unix seconds (UTC); `None` when not known.
    pub at_unix: Option<i64>,
    /// The service tier the response says served it (`flex`, `priority`…); `None` or a
    /// standard name (`default`, `standard`) means the list rates.
    pub tier: Option<String>,
    /// Whether the call went through the provider's batch API.
    pub batch: bool,
    /// Response fields that carry a price multiplier, such as `inference_geo` → `us`.
    pub labels: BTreeMap<String, String>,
}

/// Tier names that mean the list rates.
const STANDARD_TIERS: [&str; 4] = ["default", "standard", "auto", "on_demand"];

impl Served {
    /// The served tier, unless it is a standard one.
    fn special_tier(&self) -> Option<&str> {
        self.tier
            .as_deref()
            .filter(|t| !STANDARD_TIERS.contains(&t.to_ascii_lowercase().as_str()))
    }
}

/// The classes of one request's rates, after every selection.
struct Chosen {
    input: Rate,
    cached_input: Option<Rate>,
    cache_write: Option<Rate>,
    cache_write_1h: Option<Rate>,
    output: Rate,
}

impl Chosen {
    fn of(r: &Rates, prompt: u64) -> Chosen {
        match tier_for(&r.long_context, prompt) {
            Some(t) => Chosen::from_tier(t),
            None => Chosen {
                input: r.input,
                cached_input: r.cached_input,
                cache_write: r.cache_write,
                cache_write_1h: r.cache_write_1h,
                output: r.output,
            },
        }
    }

    fn from_tier(t: &LongContext) -> Chosen {
        Chosen {
            input: t.input,
            cached_input: t.cached_input,
            cache_write: t.cache_write,
            cache_write_1h: t.cache_write_1h,
            output: t.output,
        }
    }

    /// Usage × rates, or `None` when a used class has no rate.
    fn cost(&self, u: &Usage) -> Option<Money> {
        let mut total = self.input.cost(u.input).plus(self.output.cost(u.output));
        for (tokens, rate) in [
            (u.cached_input, self.cached_input),
            (u.cache_write, self.cache_write),
            (u.cache_write_1h, self.cache_write_1h),
        ] {
            if tokens > 0 {
                total = total.plus(rate?.cost(tokens));
            }
        }
        Some(total)
    }
}

/// The highest long-context tier whose threshold the prompt exceeds.
fn tier_for(tiers: &[LongContext], prompt: u64) -> Option<&LongContext> {
    tiers
        .iter()
        .filter(|t| prompt > t.above_prompt_tokens)
        .max_by_key(|t| t.above_prompt_tokens)
}

impl OffPeak {
    /// Whether a request starting at `at_unix` (UTC) is outside every peak window.
    fn applies_at(&self, at_unix: i64) -> bool {
        let days = at_unix.div_euclid(86_400);
        let minute = (at_unix.rem_euclid(86_400) / 60) as u32;
        // 1970-01-01 was a Thursday (ISO weekday 4).
        let weekday = Weekday(((days + 3).rem_euclid(7) + 1) as u8);
        let peak = self.peak_weekdays.contains(&weekday)
            && self.peak_hours_utc.iter().any(|w| w.contains(minute));
        !peak
    }

    fn rates(&self) -> Chosen {
        Chosen {
            input: self.input,
            cached_input: self.cached_input,
            cache_write: self.cache_write,
            cache_write_1h: self.cache_write_1h,
            output: self.output,
        }
    }
}

impl Price {
    /// A price of input and output tokens only, with no other class or rule.
    pub fn new(input: Rate, output: Rate) -> Price {
        Price {
            input,
            cached_input: None,
            cache_write: None,
            cache_write_1h: None,
            output,
            long_context: Vec::new(),
            service_tiers: BTreeMap::new(),
            batch: None,
            off_peak: None,
            multipliers: BTreeMap::new(),
        }
    }

    /// The exact cost of one call served as `served`, or `None` when it cannot be priced: a used
    /// token class without a rate, a batch call or a special tier without its rates, off-peak
    /// pricing with no start time, or a multiplier that does not come out in whole femto-dollars.
    pub fn cost(&self, u: &Usage, served: &Served) -> Option<Money> {
        let prompt = u
            .input
            .saturating_add(u.cached_input)
            .saturating_add(u.cache_write)
            .saturating_add(u.cache_write_1h);
        let chosen = if served.batch {
            Chosen::of(self.batch.as_ref()?, prompt)
        } else if let Some(tier) = served.special_tier() {
            Chosen::of(self.service_tiers.get(tier)?, prompt)
        } else if let Some(off) = &self.off_peak {
            if off.applies_at(served.at_unix?) {
                off.rates()
            } else {
                Chosen::of(&self.list_rates(), prompt)
            }
        } else {
            Chosen::of(&self.list_rates(), prompt)
        };
        let mut total = chosen.cost(u)?;
        for (field, values) in &self.multipliers {
            if let Some(m) = served.labels.get(field).and_then(|v| values.get(v)) {
                total = multiply(total, *m)?;
            }
        }
        Some(total)
    }

    /// The dearest prompt and output rates any rule of this price can bill, multipliers
    /// included (rounded up): what bounds a call whose usage was never seen.
    pub fn dearest(&self) -> Dearest {
        let list = self.list_rates();
        let sets = std::iter::once(&list)
            .chain(self.service_tiers.values())
            .chain(&self.batch);
        let mut rows: Vec<Chosen> = sets
            .flat_map(|r| {
                std::iter::once(Chosen::of(r, 0))
                    .chain(r.long_context.iter().map(Chosen::from_tier))
            })
            .collect();
        rows.extend(self.off_peak.as_ref().map(OffPeak::rates));
        let prompt = rows
            .iter()
            .flat_map(|c| {
                [
                    Some(c.input),
                    c.cached_input,
                    c.cache_write,
                    c.cache_write_1h,
                ]
            })
            .flatten()
            .map(|r| r.0)
            .max()
            .unwrap_or(0);
        let output = rows.iter().map(|c| c.output.0).max().unwrap_or(0);
        // Every multiplier that could apply at once: the dearest value of each field, never
        // below 1.
        const ONE: i128 = 1_000_000_000;
        let factor = self.multipliers.values().fold(ONE, |f, vals| {
            let m = vals.values().map(|m| m.0).max().unwrap_or(ONE).max(ONE);
            f.saturating_mul(m) / ONE
        });
        let up = |r: i128| Rate(r.saturating_mul(factor).saturating_add(ONE - 1) / ONE);
        Dearest {
            prompt: up(prompt),
            output: up(output),
        }
    }

    /// The list rates with their long-context tiers.
    fn list_rates(&self) -> Rates {
        Rates {
            input: self.input,
            cached_input: self.cached_input,
            cache_write: self.cache_write,
            cache_write_1h: self.cache_write_1h,
            output: self.output,
            long_context: self.long_context.clone(),
        }
    }
}

/// The dearest rates of a price, for bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dearest {
    /// The dearest rate of any prompt-token class.
    pub prompt: Rate,
    /// The dearest output rate.
    pub output: Rate,
}

/// `amount × m`, exact, or `None` when the product is not a whole number of femto-dollars.
fn multiply(amount: Money, m: Multiplier) -> Option<Money> {
    let p = amount.0.checked_mul(m.0)?;
    const SCALE: i128 = 1_000_000_000;
    (p % SCALE == 0).then_some(Money(p / SCALE))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A price from YAML, as a providers file writes it.
    fn price(yaml: &str) -> Price {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn usd(s: &str) -> Money {
        Money::parse_usd(s).unwrap()
    }

    fn usage(input: u64, cached: u64, output: u64) -> Usage {
        Usage {
            input,
            cached_input: cached,
            output,
            ..Usage::default()
        }
    }

    const GPT_5_4: &str = "
input: 2.5
cached_input: 0.25
output: 15
long_context:
  - {above_prompt_tokens: 272000, input: 5, cached_input: 0.5, output: 22.5}
service_tiers:
  flex: {input: 1.25, cached_input: 0.125, output: 7.5}
  priority: {input: 5, cached_input: 0.5, output: 30}
batch: {input: 1.25, cached_input: 0.125, output: 7.5}
";

    #[test]
    fn long_context_moves_the_whole_request() {
        let p = price(GPT_5_4);
        let s = Served::default();
        // 272,000 prompt tokens is not above the threshold: list rates.
        // 262,000 × 2.5 + 10,000 × 0.25 + 1,000 × 15 = 0.655 + 0.0025 + 0.015 = 0.6725
        assert_eq!(
            p.cost(&usage(262_000, 10_000, 1_000), &s),
            Some(usd("0.6725"))
        );
        // One token more and every token pays the long rate, output included:
        // 262,001 × 5 + 10,000 × 0.5 + 1,000 × 22.5 = 1.310005 + 0.005 + 0.0225 = 1.337505
        assert_eq!(
            p.cost(&usage(262_001, 10_000, 1_000), &s),
            Some(usd("1.337505"))
        );
    }

    #[test]
    fn the_served_tier_prices_the_call_not_the_requested_one() {
        let p = price(GPT_5_4);
        let u = usage(200_000, 0, 100_000);
        let tier = |t: &str| Served {
            tier: Some(t.to_string()),
            ..Served::default()
        };
        // Priority: 200K × 5 + 100K × 30 = 1 + 3 = 4; list would be 0.5 + 1.5 = 2 (half).
        assert_eq!(p.cost(&u, &tier("priority")), Some(usd("4")));
        assert_eq!(p.cost(&u, &tier("flex")), Some(usd("1")));
        // A priority request that the response says ran as `default` costs the list price.
        assert_eq!(p.cost(&u, &tier("default")), Some(usd("2")));
        assert_eq!(p.cost(&u, &tier("standard")), Some(usd("2")));
        // A tier without a price is unknown, not the list price.
        assert_eq!(p.cost(&u, &tier("scale")), None);
    }

    #[test]
    fn batch_rates_and_missing_batch_prices() {
        let p = price(GPT_5_4);
        let batch = Served {
            batch: true,
            ..Served::default()
        };
        // 1M × 1.25 + 1M cached × 0.125 + 100K × 7.5 = 1.25 + 0.125 + 0.75
        assert_eq!(
            p.cost(&usage(1_000_000, 1_000_000, 100_000), &batch),
            Some(usd("2.125"))
        );
        // No batch price (DeepSeek, DashScope, Moonshot): unknown, not "no discount".
        let flat = price("{input: 0.28, cached_input: 0.028, output: 0.42}");
        assert_eq!(flat.cost(&usage(10, 0, 10), &batch), None);
    }

    const DEEPSEEK_FLASH: &str = "
input: 0.30
cached_input: 0.006
output: 1.20
off_peak:
  input: 0.15
  cached_input: 0.003
  output: 0.60
  peak_hours_utc: ['01:00-04:00', '06:00-10:00']
  peak_weekdays: [1, 2, 3, 4, 5]
";

    #[test]
    fn deepseek_off_peak_by_the_request_start_in_utc() {
        let p = price(DEEPSEEK_FLASH);
        let u = usage(1_000_000, 1_000_000, 1_000_000);
        let at = |s: i64| Served {
            at_unix: Some(s),
            ..Served::default()
        };
        // Monday 2026-11-30 (day 20,787 since the epoch).
        let monday = 20_787 * 86_400;
        // 02:30 UTC Monday is peak: 0.30 + 0.006 + 1.20.
        assert_eq!(
            p.cost(&u, &at(monday + 2 * 3600 + 1800)),
            Some(usd("1.506"))
        );
        // 04:00 is off-peak (windows are end-exclusive): half.
        assert_eq!(p.cost(&u, &at(monday + 4 * 3600)), Some(usd("0.753")));
        // 03:59:59 is still peak.
        assert_eq!(p.cost(&u, &at(monday + 4 * 3600 - 1)), Some(usd("1.506")));
        // 10:00 is off-peak, and so is all of Sunday (2026-11-29).
        assert_eq!(p.cost(&u, &at(monday + 10 * 3600)), Some(usd("0.753")));
        assert_eq!(
            p.cost(&u, &at(monday - 86_400 + 2 * 3600)),
            Some(usd("0.753"))
        );
        // Without the start time the window cannot be told: unknown.
        assert_eq!(p.cost(&u, &Served::default()), None);
    }

    #[test]
    fn anthropic_cache_writes_multipliers_and_haiku_long_context() {
        let p = price(
            "
input: 0.10
cached_input: 0.01
cache_write: 0.125
cache_write_1h: 0.20
output: 0.50
long_context:
  - {above_prompt_tokens: 100000, input: 0.50, cached_input: 0.05, cache_write: 0.625, cache_write_1h: 1.00, output: 2.50}
multipliers:
  inference_geo: {us: 1.1}
  speed: {fast: 2}
",
        );
        let u = Usage {
            input: 10_000,
            cached_input: 50_000,
            cache_write: 20_000,
            cache_write_1h: 10_000,
            output: 2_000,
            reasoning: 1_500,
        };
        // Prompt 90,000: list rates. 0.001 + 0.0005 + 0.0025 + 0.002 + 0.001 = 0.007
        // (reasoning is inside output: not billed twice).
        let plain = Served::default();
        assert_eq!(p.cost(&u, &plain), Some(usd("0.007")));
        // Data residency in the US: ×1.1; fast mode on top: ×2.
        let mut us = Served::default();
        us.labels.insert("inference_geo".into(), "us".into());
        assert_eq!(p.cost(&u, &us), Some(usd("0.0077")));
        us.labels.insert("speed".into(), "fast".into());
        assert_eq!(p.cost(&u, &us), Some(usd("0.0154")));
        // A geo without a multiplier ("global") is the list price.
        let mut global = Served::default();
        global
            .labels
            .insert("inference_geo".into(), "global".into());
        assert_eq!(p.cost(&u, &global), Some(usd("0.007")));
        // Prompt 100,001 (cache reads and writes count): 5× on every token.
        let long = Usage { input: 20_001, ..u };
        // 0.0100005 + 0.0025 + 0.0125 + 0.01 + 0.005 = 0.0400005
        assert_eq!(p.cost(&long, &plain), Some(usd("0.0400005")));
    }

    #[test]
    fn qwen_ranges_pick_the_highest_tier_passed() {
        // qwen3-max: ≤32K 1.2/6, 32–128K 2.4/12, 128–252K 3/15.
        let p = price(
            "
input: 1.2
output: 6
long_context:
  - {above_prompt_tokens: 128000, input: 3, output: 15}
  - {above_prompt_tokens: 32000, input: 2.4, output: 12}
",
        );
        let s = Served::default();
        assert_eq!(p.cost(&usage(32_000, 0, 0), &s), Some(usd("0.0384")));
        assert_eq!(p.cost(&usage(32_001, 0, 0), &s), Some(usd("0.0768024")));
        assert_eq!(p.cost(&usage(200_000, 0, 1_000), &s), Some(usd("0.615")));
    }

    #[test]
    fn regressions_peers_have_shipped() {
        let p = price("{input: 2, cached_input: 0.5, output: 8}");
        let s = Served::default();
        // Cached input counted once, at the cached rate (input excludes it after normalizing):
        // 1,000 × 2 + 9,000 × 0.5 = 0.002 + 0.0045; counting it twice would give 0.0245,
        // billing it at the full rate 0.02.
        assert_eq!(p.cost(&usage(1_000, 9_000, 0), &s), Some(usd("0.0065")));
        // Reasoning tokens are output: 500 output of which 400 reasoning = 500 × 8.
        let r = Usage {
            output: 500,
            reasoning: 400,
            ..Usage::default()
        };
        assert_eq!(p.cost(&r, &s), Some(usd("0.004")));
        // A long-context tier that leaves cached input unpriced makes such a call unknown
        // rather than priced at the short-context rate.
        let g = price(
            "{input: 1.25, cached_input: 0.125, output: 10, \
              long_context: [{above_prompt_tokens: 200000, input: 2.5, output: 15}]}",
        );
        assert_eq!(g.cost(&usage(150_000, 60_000, 10), &s), None);
        assert_eq!(
            g.cost(&usage(150_000, 50_000, 10), &s),
            Some(usd("0.19385"))
        );
    }

    #[test]
    fn windows_and_multipliers_parse_strictly() {
        assert!(Window::parse("01:00-04:00").is_ok());
        assert!(Window::parse("22:00-24:00").is_ok());
        assert!(Window::parse("04:00-01:00").is_err());
        assert!(Window::parse("25:00-26:00").is_err());
        assert!(Window::parse("1-4").is_err());
        let w: Window = serde_json::from_value(serde_json::json!("06:00-10:00")).unwrap();
        assert_eq!(serde_json::to_value(w).unwrap(), "06:00-10:00");
        let m: Multiplier = serde_json::from_value(serde_json::json!(1.1)).unwrap();
        assert_eq!(serde_json::to_value(m).unwrap(), "1.1");
        // A product below a femto-dollar cannot be exact: unknown.
        assert_eq!(multiply(Money(3), m), None);
        assert_eq!(multiply(Money(30), m), Some(Money(33)));
    }

    #[test]
    fn the_bound_uses_the_dearest_rule() {
        // Priority output 30 × geo 1.1; long-context input 5 × 1.1.
        let mut p = price(GPT_5_4);
        p.multipliers
            .entry("inference_geo".into())
            .or_default()
            .insert("us".into(), Multiplier(1_100_000_000));
        let d = p.dearest();
        assert_eq!(d.prompt, Rate::parse_per_million("5.5").unwrap());
        assert_eq!(d.output, Rate::parse_per_million("33").unwrap());
        // Any call it can serve costs no more than the bound.
        let u = usage(300_000, 0, 1_000);
        let mut s = Served {
            tier: Some("priority".into()),
            ..Served::default()
        };
        s.labels.insert("inference_geo".into(), "us".into());
        let cost = p.cost(&u, &s).unwrap();
        let bound = d.prompt.cost(300_000).plus(d.output.cost(1_000));
        assert!(cost <= bound, "{cost} > {bound}");
    }
}
