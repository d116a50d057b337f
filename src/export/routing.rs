//! The outputs of `costbench route`: costbench's own routing file (YAML or JSON, the
//! [`RoutePlan`] as it is; schema in `docs/routing.md`), and the dispatch to the gateway
//! exports (`litellm`, `portkey`) and the pull-request summary (`route_markdown`).

use crate::route::RoutePlan;

/// Routing output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RouteFormat {
    /// costbench's routing file as YAML.
    Yaml,
    /// costbench's routing file as JSON.
    Json,
    /// A LiteLLM proxy config.yaml (cascades go to a separate cascade policy file).
    Litellm,
    /// A Portkey gateway config (JSON) with a fallback strategy per class.
    Portkey,
    /// A Markdown summary for a pull request.
    Md,
}

/// A rendered routing output: the main file and, when the format cannot hold everything, a
/// second file written beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The main output.
    pub main: String,
    /// `(suffix, content)`: a file named after the main one with this suffix (the LiteLLM
    /// export's cascade policy, `.cascade.yaml`).
    pub side: Option<(&'static str, String)>,
}

impl Rendered {
    fn only(main: String) -> Rendered {
        Rendered { main, side: None }
    }
}

/// Renders a route in a format.
pub fn render(plan: &RoutePlan, format: RouteFormat) -> Rendered {
    match format {
        // Serializing plain data with string keys cannot fail.
        RouteFormat::Json => Rendered::only(serde_json::to_string_pretty(plan).unwrap_or_default()),
        RouteFormat::Yaml => Rendered::only(format!(
            "# costbench routing file (schema: docs/routing.md), runs {}\n{}",
            runs(plan),
            serde_saphyr::to_string(plan).unwrap_or_default().trim_end()
        )),
        RouteFormat::Litellm => super::litellm::render(plan),
        RouteFormat::Portkey => Rendered::only(super::portkey::render(plan)),
        RouteFormat::Md => Rendered::only(super::route_markdown::render(plan)),
    }
}

/// "3 (2026-11-30T10:00:00Z), 4 (...)".
pub fn runs(plan: &RoutePlan) -> String {
    plan.runs
        .iter()
        .map(|r| format!("{} ({})", r.id, r.created_at))
        .collect::<Vec<_>>()
        .join(", ")
}
