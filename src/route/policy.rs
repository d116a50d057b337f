//! The routing policy file: per workload class, what a candidate must meet to be chosen.
//!
//! ```yaml
//! stability: 0.90          # share of task resamples the choice must win (default 0.90)
//! folds: 5                 # cross-validation folds over tasks (default 5)
//! resamples: 1000          # bootstrap resamples of the stability check (default 1000)
//! classes:
//!   regulated:
//!     quality_threshold: 0.95        # default: the highest `quality_threshold` of its suites
//!     p95_latency_ms: 4000           # the candidate's p95 latency (cascade steps summed)
//!     required_tags: {jurisdiction: [us, eu]}   # a provider's tag must have one of the values
//!     forbidden_tags: {data_retention: days}    # a provider with such a tag value is out
//!     batch_allowed: false           # providers tagged `delivery: batch` (default false)
//!     monthly_volume: 250000         # requests a month, for the projected bill
//!     incumbent: gpt-4.1             # the provider the class uses today
//! ```
//!
//! Read through [`crate::config::Loader`], so every problem carries file:line:col and the
//! dotted path; names the runs do not know (a class, a tag, a provider) are problems too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::config::{ConfigError, DocPath, Loader};

/// A provider with this tag value is a batch endpoint (answers within hours).
pub const BATCH_TAG: (&str, &str) = ("delivery", "batch");

/// The rules of one class.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassPolicy {
    /// Acceptance the candidate's interval lower bound must reach.
    pub quality_threshold: Option<f64>,
    /// The most the candidate's p95 latency may be, ms.
    pub p95_latency_ms: Option<f64>,
    /// Tag → allowed values; a provider must have the tag with one of them.
    pub required_tags: BTreeMap<String, Vec<String>>,
    /// Tag → refused values; a provider with one of them is out.
    pub forbidden_tags: BTreeMap<String, Vec<String>>,
    /// Whether providers tagged `delivery: batch` may serve the class.
    pub batch_allowed: bool,
    /// Requests a month.
    pub monthly_volume: Option<f64>,
    /// The provider serving the class today.
    pub incumbent: Option<String>,
}

/// A routing policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Where it was read from (`None`: the defaults).
    pub file: Option<String>,
    /// Share of resamples the choice must win.
    pub stability: f64,
    /// Cross-validation folds.
    pub folds: usize,
    /// Resamples of the stability check (and of the monthly bill's interval).
    pub resamples: usize,
    /// Per class.
    pub classes: BTreeMap<String, ClassPolicy>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            file: None,
            stability: 0.90,
            folds: 5,
            resamples: 1000,
            classes: BTreeMap::new(),
        }
    }
}

impl Policy {
    /// The rules of a class (the defaults when the policy does not name it).
    pub fn class(&self, workload: &str) -> ClassPolicy {
        self.classes.get(workload).cloned().unwrap_or_default()
    }
}

/// What the runs know, against which a policy's names are checked.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Workload classes.
    pub classes: BTreeSet<String>,
    /// Provider ids.
    pub providers: BTreeSet<String>,
    /// Tag names any provider has.
    pub tags: BTreeSet<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "a mapping with `classes` and optionally stability, folds and resamples")]
struct Head {
    stability: Option<f64>,
    folds: Option<usize>,
    resamples: Option<usize>,
    #[serde(default)]
    classes: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(
    expecting = "a class policy: a mapping with quality_threshold, p95_latency_ms, required_tags, \
                 forbidden_tags, batch_allowed, monthly_volume or incumbent"
)]
struct Raw {
    quality_threshold: Option<f64>,
    p95_latency_ms: Option<f64>,
    #[serde(default)]
    required_tags: BTreeMap<String, Value>,
    #[serde(default)]
    forbidden_tags: BTreeMap<String, Value>,
    #[serde(default)]
    batch_allowed: bool,
    monthly_volume: Option<f64>,
    incumbent: Option<String>,
}

/// Reads and checks a policy file against what the runs know, reporting every problem at once.
pub fn load_policy(file: &Path, known: &Known) -> Result<Policy, ConfigError> {
    let mut l = Loader::open(file)?;
    let root = l.root.clone();
    let top = DocPath::default();
    let Some(head) = l.field::<Head>(&top, &root) else {
        return l.finish(None);
    };
    let mut policy = Policy {
        file: Some(file.display().to_string()),
        ..Policy::default()
    };
    if let Some(s) = head.stability {
        if s > 0.5 && s < 1.0 {
            policy.stability = s;
        } else {
            l.problem(
                &top.key("stability"),
                format!("must be above 0.5 and below 1 (got {s}); 0.9 means 90% of resamples"),
            );
        }
    }
    if let Some(k) = head.folds {
        if (2..=20).contains(&k) {
            policy.folds = k;
        } else {
            l.problem(&top.key("folds"), format!("must be 2 to 20 (got {k})"));
        }
    }
    if let Some(b) = head.resamples {
        if (100..=100_000).contains(&b) {
            policy.resamples = b;
        } else {
            l.problem(
                &top.key("resamples"),
                format!("must be 100 to 100000 (got {b})"),
            );
        }
    }
    for (name, v) in &head.classes {
        let at = top.key("classes").key(name);
        if !known.classes.contains(name) {
            l.problem(
                &at,
                format!(
                    "unknown workload class `{name}`: the runs have {}; name a suite's `workload`",
                    list(&known.classes)
                ),
            );
            continue;
        }
        let Some(raw) = l.field::<Raw>(&at, v) else {
            continue;
        };
        if let Some(q) = raw.quality_threshold
            && !(0.0..=1.0).contains(&q)
        {
            l.problem(&at.key("quality_threshold"), "must be between 0 and 1");
        }
        if let Some(p) = raw.p95_latency_ms
            && !(p > 0.0 && p.is_finite())
        {
            l.problem(&at.key("p95_latency_ms"), "must be a positive number of ms");
        }
        if let Some(m) = raw.monthly_volume
            && !(m >= 0.0 && m.is_finite())
        {
            l.problem(
                &at.key("monthly_volume"),
                "must be a number of requests a month, 0 or more",
            );
        }
        if let Some(i) = &raw.incumbent
            && !known.providers.contains(i)
        {
            l.problem(
                &at.key("incumbent"),
                format!(
                    "unknown provider id `{i}`: the runs have {}",
                    list(&known.providers)
                ),
            );
        }
        let tags = |key: &str, raw: &BTreeMap<String, Value>, l: &mut Loader| {
            let mut out = BTreeMap::new();
            for (tag, v) in raw {
                let p = at.key(key).key(tag);
                if !known.tags.contains(tag) {
                    l.problem(
                        &p,
                        format!(
                            "unknown tag `{tag}`: no provider of the runs has it (their tags: {}); \
                             add `tags: {{{tag}: ...}}` to the providers file",
                            list(&known.tags)
                        ),
                    );
                    continue;
                }
                match values(v) {
                    Some(vals) => {
                        out.insert(tag.clone(), vals);
                    }
                    None => l.problem(&p, "must be a value or a list of values"),
                }
            }
            out
        };
        let required_tags = tags("required_tags", &raw.required_tags, &mut l);
        let forbidden_tags = tags("forbidden_tags", &raw.forbidden_tags, &mut l);
        policy.classes.insert(
            name.clone(),
            ClassPolicy {
                quality_threshold: raw.quality_threshold,
                p95_latency_ms: raw.p95_latency_ms,
                required_tags,
                forbidden_tags,
                batch_allowed: raw.batch_allowed,
                monthly_volume: raw.monthly_volume,
                incumbent: raw.incumbent,
            },
        );
    }
    l.finish(Some(policy))
}

/// A tag value or list of values as text (`none`, `[us, eu]`, `true`).
fn values(v: &Value) -> Option<Vec<String>> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match v {
        Value::Array(a) if !a.is_empty() => a.iter().map(one).collect(),
        other => one(other).map(|s| vec![s]),
    }
}

fn list(s: &BTreeSet<String>) -> String {
    if s.is_empty() {
        return "none".into();
    }
    s.iter()
        .map(|x| format!("`{x}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Known {
        Known {
            classes: ["cheap", "regulated"].map(String::from).into(),
            providers: ["a", "b"].map(String::from).into(),
            tags: ["jurisdiction", "delivery"].map(String::from).into(),
        }
    }

    fn load(yaml: &str) -> Result<Policy, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("policy.yaml");
        std::fs::write(&f, yaml).unwrap();
        load_policy(&f, &known())
    }

    #[test]
    fn a_policy_reads_with_its_defaults() {
        let p = load(
            "classes:\n  regulated:\n    quality_threshold: 0.9\n    required_tags: {jurisdiction: [us, eu]}\n    incumbent: a\n",
        )
        .unwrap();
        assert_eq!((p.stability, p.folds, p.resamples), (0.9, 5, 1000));
        let c = p.class("regulated");
        assert_eq!(c.quality_threshold, Some(0.9));
        assert_eq!(c.required_tags["jurisdiction"], vec!["us", "eu"]);
        assert_eq!(c.incumbent.as_deref(), Some("a"));
        assert_eq!(p.class("cheap"), ClassPolicy::default());
    }

    #[test]
    fn the_documented_example_policy_reads() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("suites/routing-policy.example.yaml");
        let known = Known {
            classes: [
                "premium",
                "cheap",
                "batch",
                "cached",
                "experimental",
                "regulated",
            ]
            .map(String::from)
            .into(),
            providers: ["gpt-4.1", "gpt-4.1-mini", "claude-haiku-4.5"]
                .map(String::from)
                .into(),
            tags: ["jurisdiction", "data_retention", "prompt_cache"]
                .map(String::from)
                .into(),
        };
        let p = load_policy(&file, &known).unwrap();
        assert_eq!(p.classes.len(), 6);
        assert!(p.class("batch").batch_allowed);
        assert_eq!(
            p.class("regulated").forbidden_tags["data_retention"],
            vec!["days", "indefinite"]
        );
    }

    #[test]
    fn unknown_names_are_problems_with_their_place() {
        let e = load(
            "classes:\n  premium:\n    quality_threshold: 0.9\n  cheap:\n    incumbent: zz\n    forbidden_tags: {region: x}\n    treshold: 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("4 problems"), "{e}");
        assert!(
            e.contains(":2:3: classes.premium: unknown workload class `premium`"),
            "{e}"
        );
        assert!(
            e.contains("classes.cheap.incumbent: unknown provider id `zz`"),
            "{e}"
        );
        assert!(
            e.contains("classes.cheap.forbidden_tags.region: unknown tag `region`"),
            "{e}"
        );
        assert!(e.contains("treshold"), "{e}");
    }
}
