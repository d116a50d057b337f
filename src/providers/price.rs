//! Exact money: prices and costs as integers, never floats.
//!
//! Prices are written per 1M tokens in USD (`0.028`). One femto-dollar (1e-15 USD) per token is
//! exactly one nano-dollar per 1M tokens, so any price with up to 9 decimals is an integer
//! number of femto-dollars per token, and `tokens × rate` is exact in `i128`. Floats appear only
//! when a figure is printed.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// An exact amount of money in femto-dollars (1e-15 USD).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(pub i128);

/// Femto-dollars in one dollar.
const PER_USD: i128 = 1_000_000_000_000_000;

impl Money {
    /// Zero dollars.
    pub const ZERO: Money = Money(0);

    /// Parses a decimal USD amount (`"0.028"`, `"12"`, `"4.2e-06"`) with ≤ 15 decimals.
    pub fn parse_usd(s: &str) -> Result<Money, String> {
        parse_decimal(s, 15).map(Money)
    }

    /// The nearest `f64` number of dollars, for display and statistics only.
    pub fn usd(self) -> f64 {
        // Split to keep full precision for large values.
        (self.0 / PER_USD) as f64 + (self.0 % PER_USD) as f64 / PER_USD as f64
    }

    /// Adds, saturating rather than overflowing on absurd inputs.
    pub fn plus(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }

    /// Multiplies by a count.
    pub fn times(self, n: u64) -> Money {
        Money(self.0.saturating_mul(n as i128))
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Money::plus)
    }
}

impl fmt::Display for Money {
    /// Dollars with the fewest decimals that show the exact value (at most 15).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        let whole = a / PER_USD as u128;
        let frac = a % PER_USD as u128;
        if frac == 0 {
            return write!(f, "{sign}${whole}");
        }
        let digits = format!("{frac:015}");
        write!(f, "{sign}${whole}.{}", digits.trim_end_matches('0'))
    }
}

impl Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.usd())
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        let s = decimal_text(d)?;
        Money::parse_usd(&s).map_err(serde::de::Error::custom)
    }
}

/// Money of which some amounts are unknown: the known sum, and the unknown amounts counted
/// with the most they can add, so one unknown amount never blanks the rest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// The sum of the known amounts.
    pub known: Money,
    /// How many amounts are unknown.
    pub unknown: u64,
    /// How many of those have no bound.
    pub unbounded: u64,
    /// The most the bounded unknown amounts can add together.
    pub bound: Money,
}

impl Tally {
    /// Adds one amount: known, or unknown with its bound (if any).
    pub fn add(&mut self, amount: Option<Money>, bound: Option<Money>) {
        match (amount, bound) {
            (Some(m), _) => self.known = self.known.plus(m),
            (None, Some(b)) => {
                self.unknown += 1;
                self.bound = self.bound.plus(b);
            }
            (None, None) => {
                self.unknown += 1;
                self.unbounded += 1;
            }
        }
    }

    /// Adds another tally.
    pub fn merge(&mut self, other: &Tally) {
        self.known = self.known.plus(other.known);
        self.unknown += other.unknown;
        self.unbounded += other.unbounded;
        self.bound = self.bound.plus(other.bound);
    }

    /// The most the unknown amounts can add; `None` when one has no bound.
    pub fn unknown_max(&self) -> Option<Money> {
        (self.unbounded == 0).then_some(self.bound)
    }

    /// The known sum plus every unknown amount at its bound; `None` when one has no bound.
    pub fn max(&self) -> Option<Money> {
        self.unknown_max().map(|u| self.known.plus(u))
    }
}

impl fmt::Display for Tally {
    /// `$0.0123`, `$0.0123 (+ up to $0.004 in 2 calls of unknown cost)`, or
    /// `unknown ($0.0123 known + 2 calls of unknown cost, 1 of them unbounded)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.unknown, self.unbounded) {
            (0, _) => write!(f, "{}", self.known),
            (n, 0) => write!(
                f,
                "{} (+ up to {} in {n} calls of unknown cost)",
                self.known, self.bound
            ),
            (n, u) => write!(
                f,
                "unknown ({} known + {n} calls of unknown cost, {u} of them unbounded)",
                self.known
            ),
        }
    }
}

/// A price in USD per 1M tokens, stored exactly as femto-dollars per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(pub i128);

impl Rate {
    /// Parses a USD-per-1M-tokens decimal with at most 9 decimals.
    pub fn parse_per_million(s: &str) -> Result<Rate, String> {
        parse_decimal(s, 9).map(Rate)
    }

    /// The cost of `tokens` tokens at this rate.
    pub fn cost(self, tokens: u64) -> Money {
        Money(self.0.saturating_mul(tokens as i128))
    }
}

impl<'de> Deserialize<'de> for Rate {
    /// A number, a numeric string, or the stored form `"$0.4/1M"` (how the run plan keeps it).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
        let s = decimal_text(d)?;
        let t = s.trim();
        let t = t.strip_prefix('$').unwrap_or(t);
        let t = t.strip_suffix("/1M").unwrap_or(t);
        Rate::parse_per_million(t).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Rate {
    /// As exact text (`"$0.4/1M"`), so a stored plan loses no digit.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // femto per token == nano per million: print as dollars per million.
        let m = Money(self.0 * 1_000_000);
        write!(f, "{m}/1M")
    }
}

/// Reads a number or numeric string as its shortest decimal text.
///
/// YAML numbers arrive as `f64`; Rust prints the shortest text that round-trips, which is the
/// text the user wrote for any price with ≤ 15 significant digits, so no binary error leaks in.
fn decimal_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a plain decimal number, like 0.28")]
    enum Num {
        I(i64),
        F(f64),
        S(String),
    }
    Ok(match Num::deserialize(d)? {
        Num::I(i) => i.to_string(),
        Num::F(f) => format!("{f}"),
        Num::S(s) => s,
    })
}

/// Parses a non-negative decimal into an integer scaled by 10^scale, rejecting lost digits.
///
/// Accepts every non-negative form a JSON number can take, exponent included (`4.2e-06`, how
/// JSON writers print small amounts), and computes it exactly from the digits.
fn parse_decimal(s: &str, scale: u32) -> Result<i128, String> {
    let t = s.trim();
    let bad = || format!("`{s}` is not a plain non-negative decimal number");
    let (mantissa, exp) = match t.split_once(['e', 'E']) {
        Some((m, e)) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            // Exponents this large cannot name a price or a cost; refuse rather than overflow.
            let e: i64 = e.parse().map_err(|_| bad())?;
            (m, e.clamp(-1000, 1000))
        }
        None => (t, 0),
    };
    let (whole, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    // value = digits × 10^(exp − frac.len()); scaled = digits × 10^(shift).
    let digits = format!("{whole}{frac}");
    let digits = digits.trim_start_matches('0');
    let shift = exp - frac.len() as i64 + i64::from(scale);
    let (kept, dropped) = if shift >= 0 {
        (digits, "")
    } else {
        let cut = digits.len().saturating_sub(shift.unsigned_abs() as usize);
        digits.split_at(cut)
    };
    if dropped.chars().any(|c| c != '0') {
        return Err(format!("`{s}` has more than {scale} decimals"));
    }
    if kept.is_empty() {
        return Ok(0);
    }
    let base: i128 = kept.parse().map_err(|_| bad())?;
    let up = u32::try_from(shift.max(0)).map_err(|_| bad())?;
    10i128
        .checked_pow(up)
        .and_then(|p| base.checked_mul(p))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_exact() {
        let r = Rate::parse_per_million("0.028").unwrap();
        assert_eq!(r.0, 28_000_000);
        // 1M tokens at $0.028/1M cost exactly $0.028.
        assert_eq!(r.cost(1_000_000), Money::parse_usd("0.028").unwrap());
        assert_eq!(r.cost(1_000_000).to_string(), "$0.028");
    }

    #[test]
    fn rejects_bad_decimals() {
        assert!(Rate::parse_per_million("-1").is_err());
        assert!(Rate::parse_per_million("1e-10").is_err());
        assert!(Rate::parse_per_million("1e").is_err());
        assert!(Rate::parse_per_million("e5").is_err());
        assert!(Rate::parse_per_million("1e+-3").is_err());
        assert!(Rate::parse_per_million("1e99999999999999999999").is_err());
        assert!(Rate::parse_per_million("0.0000000001").is_err());
        assert!(Rate::parse_per_million("").is_err());
        assert!(Money::parse_usd("abc").is_err());
    }

    #[test]
    fn every_json_number_form_parses_exactly() {
        let usd = |s: &str| Money::parse_usd(s).map(|m| m.0);
        // OpenRouter's `usage.cost` as JSON writers print it.
        assert_eq!(usd("4.2e-06"), Ok(4_200_000_000));
        assert_eq!(usd("4.2E-6"), Ok(4_200_000_000));
        assert_eq!(usd("0.0000042"), Ok(4_200_000_000));
        assert_eq!(usd("42e-7"), Ok(4_200_000_000));
        assert_eq!(usd("1e2"), Ok(100 * PER_USD));
        assert_eq!(usd("1.5e+1"), Ok(15 * PER_USD));
        assert_eq!(usd("0e-400"), Ok(0));
        assert_eq!(usd("1.2300e-13"), Ok(123));
        assert!(
            usd("1.234e-13").is_err(),
            "a digit below a femto-dollar is lost"
        );
        assert_eq!(Rate::parse_per_million("1e-3"), Ok(Rate(1_000_000)));
    }

    #[test]
    fn yaml_float_becomes_the_written_decimal() {
        let r: Rate = serde_json::from_value(serde_json::json!(0.1)).unwrap();
        assert_eq!(r.0, 100_000_000);
        let m: Money = serde_json::from_value(serde_json::json!(0.05)).unwrap();
        assert_eq!(m.to_string(), "$0.05");
    }
}
