//! The most a call can have cost when its bill was never seen (a timeout after the request was
//! written, an answer without usage): every prompt token at the dearest prompt rate plus the
//! request's completion cap at the output rate.
//!
//! The prompt's token count is bounded by the request body's UTF-8 length: tokenizers never
//! emit more tokens than bytes, and the JSON keys around each turn outweigh the few tokens a
//! chat template adds per turn. A request without a completion cap, or a provider without a
//! price, has no bound.

use serde_json::Value;

use super::{Money, Price, Rate};

/// The completion cap a request body sets, under any protocol's name for it.
pub fn completion_cap(body: &Value) -> Option<u64> {
    ["max_tokens", "max_completion_tokens", "max_output_tokens"]
        .iter()
        .find_map(|k| body.get(k))
        .or_else(|| body.pointer("/generationConfig/maxOutputTokens"))
        .and_then(Value::as_u64)
}

/// The conservative prompt-token estimate of a request body: its UTF-8 length.
pub fn prompt_token_bound(body: &Value) -> u64 {
    body.to_string().len() as u64
}

/// The most a request can cost: `prompt_tokens` at the dearest prompt rate plus its completion
/// cap at the output rate; `None` without a cap or a price.
pub fn cost_bound(price: Option<&Price>, body: &Value, prompt_tokens: u64) -> Option<Money> {
    let price = price?;
    let cap = completion_cap(body)?;
    Some(max_cost(price, prompt_tokens, cap))
}

/// The most `prompt_tokens` and `cap` completion tokens can cost under `price`.
pub fn max_cost(price: &Price, prompt_tokens: u64, cap: u64) -> Money {
    prompt_rate(price)
        .cost(prompt_tokens)
        .plus(price.dearest().output.cost(cap))
}

/// The dearest rate a prompt token can be billed at under any rule of the price (a cache write
/// can cost more than input; a long-context tier or a priority tier more than the list rate).
pub fn prompt_rate(price: &Price) -> Rate {
    price.dearest().prompt
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn price(input: &str, output: &str, write: Option<&str>) -> Price {
        let rate = |r: &str| Rate::parse_per_million(r).unwrap();
        Price {
            cache_write: write.map(rate),
            ..Price::new(rate(input), rate(output))
        }
    }

    #[test]
    fn bound_is_prompt_at_the_dearest_prompt_rate_plus_the_cap() {
        let body = json!({"model": "m", "max_tokens": 100, "messages": []});
        let p = price("1", "4", None);
        // 1000 prompt tokens at $1/1M + 100 at $4/1M = $0.0014.
        assert_eq!(
            cost_bound(Some(&p), &body, 1000),
            Some(Money::parse_usd("0.0014").unwrap())
        );
        // An Anthropic cache write costs more than plain input: the bound uses it.
        let p = price("1", "4", Some("1.25"));
        assert_eq!(
            cost_bound(Some(&p), &body, 1000),
            Some(Money::parse_usd("0.00165").unwrap())
        );
    }

    #[test]
    fn no_cap_or_no_price_means_no_bound() {
        let p = price("1", "4", None);
        assert_eq!(cost_bound(Some(&p), &json!({"messages": []}), 10), None);
        assert_eq!(cost_bound(None, &json!({"max_tokens": 5}), 10), None);
    }

    #[test]
    fn caps_of_every_protocol() {
        assert_eq!(
            completion_cap(&json!({"max_completion_tokens": 7})),
            Some(7)
        );
        assert_eq!(completion_cap(&json!({"max_output_tokens": 8})), Some(8));
        assert_eq!(
            completion_cap(&json!({"generationConfig": {"maxOutputTokens": 9}})),
            Some(9)
        );
    }
}
