//! The command line: argument parsing and the order in which the stages are called.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::analysis::{AnalysisOptions, RunAnalysis};
use crate::baseline::{Baseline, BaselineError};
use crate::compare::{self, CompareError, CompareSpec};
use crate::config::ConfigError;
use crate::export::routing::RouteFormat;
use crate::export::{self, Format};
use crate::gate::{self, GateError, GateSpec};
use crate::grade::Judges;
use crate::grade::stored::{GradeSummary, SuiteGrading, grade_run};
use crate::labels::{self, LabelFormat, Only};
use crate::providers::catalog::{self, Catalog};
use crate::providers::{ProviderConfig, load_providers_with};
use crate::reprice::{self, RepriceError};
use crate::route::policy::{Policy, load_policy};
use crate::route::{self, RouteError, RouteInput};
use crate::run::{self, CacheMode, RunOptions};
use crate::store::Store;
use crate::suite::{Suite, load_suite};

/// Documented exit codes.
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// An internal or I/O error.
    pub const INTERNAL: i32 = 1;
    /// Invalid usage or configuration.
    pub const CONFIG: i32 = 2;
    /// `costbench gate`: a regression is significant and beyond its threshold.
    pub const GATE_FAILED: i32 = 3;
    /// Some outcomes got no answer (provider failures, replay misses) above the allowed share.
    pub const PROVIDER_FAILURES: i32 = 4;
    /// Another costbench process is running the same run (same suites and providers).
    pub const BUSY: i32 = 5;
    /// `run --max-spend`: the run stopped calling at the spend cap; a higher cap resumes it.
    pub const SPEND_CAP: i32 = 6;
    /// Stopped by Ctrl-C; run the same command again to resume.
    pub const INTERRUPTED: i32 = 130;
}

/// costbench: which LLM provider should own which workload, by cost per accepted outcome.
#[derive(Parser, Debug)]
#[command(
    name = "costbench",
    version,
    about,
    max_term_width = 100,
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// SQLite database holding runs, attempts, grades and the record/replay cache.
    #[arg(
        long,
        global = true,
        default_value = "results/costbench.db",
        env = "COSTBENCH_DB"
    )]
    pub db: PathBuf,
    #[command(subcommand)]
    command: Command,
}

/// The exit codes, as `--help` shows them (the README's list).
const EXIT_CODES: &str = "Exit codes: 0 ok · 1 internal error · 2 usage or config error (also a \
missing, corrupt or incompatible baseline; a key or model refused in a run) · 3 `gate`: a regression is significant and beyond \
its threshold · 4 more outcomes without an answer than --max-failed-share allows · 5 another \
costbench process is running the same run · 6 `run` stopped at the --max-spend cap (a higher \
cap resumes) · 130 interrupted";

#[derive(Subcommand, Debug)]
enum Command {
    /// Replay suites across providers, store every attempt, grade, and print the report.
    Run(RunArgs),
    /// Print the report of a stored run (the latest by default).
    Report(ReportArgs),
    /// Calls, tokens and cost per suite × provider, online and batch, before anything is
    /// spent; output tokens from history when the database holds a run of the same pair.
    Plan(PlanArgs),
    /// Re-grade a run's stored outputs with the suites' current graders; calls no provider.
    Grade(GradeArgs),
    /// Migration verdict: may the candidate replace the incumbent? Paired, non-inferiority
    /// against the suite's margin, with the saving per accepted outcome; no provider calls.
    Compare(CompareArgs),
    /// Every cost figure and interval of a stored run under another price table; no calls.
    Reprice(RepriceArgs),
    /// List the price catalog (or one model's entry) with each price's date and source.
    Prices(PricesArgs),
    /// Save a stored run as the baseline file `gate` compares against (commit it).
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// CI regression gate: exit 3 when a run regressed against a baseline, significantly
    /// (paired tests, Holm) and beyond the thresholds; no provider calls.
    #[command(after_help = EXIT_CODES)]
    Gate(GateArgs),
    /// Which provider, or cascade, should own each workload class, from stored runs: choice,
    /// stability, cross-validated figures, monthly bill, gateway exports; no provider calls.
    Route(RouteArgs),
    /// List runs; with --health, each provider's failure rates by kind, retries, latency and
    /// time to first token per run, so a provider getting worse shows.
    Runs(RunsArgs),
    /// Check suite and provider files; calls nothing.
    Validate(ValidateArgs),
    /// Move recorded answers between the database and a JSONL cassette.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Write costbench suites (and a providers file) from a promptfoo config or OpenAI Evals,
    /// with IMPORT_REPORT.md listing everything not mapped one to one.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Human labels: export outcomes to label, import the verdicts (they override the
    /// graders' in every figure), and see how well the graders agree with the humans.
    #[command(subcommand)]
    Labels(LabelsCommand),
}

#[derive(Subcommand, Debug)]
enum LabelsCommand {
    /// Write a run's answered outcomes to label, pre-filled with the automatic verdict.
    Export(LabelsExportArgs),
    /// Read labels (CSV, JSONL, Label Studio tasks or JSON export) into the database.
    Import(LabelsImportArgs),
    /// Agreement of each grader with the humans, and acceptance corrected for grader error.
    Agreement(LabelsAgreementArgs),
}

#[derive(Args, Debug)]
struct LabelsExportArgs {
    /// Run id (default: the latest).
    #[arg(long)]
    run: Option<i64>,
    /// The file to write.
    #[arg(long)]
    out: PathBuf,
    /// File format (default: from the extension: .csv, .jsonl, .json = Label Studio tasks).
    #[arg(long, value_enum)]
    format: Option<LabelFormat>,
    /// At most N items, spread evenly across providers.
    #[arg(long, value_name = "N")]
    sample: Option<usize>,
    /// Seed of the sample.
    #[arg(long, default_value_t = 20261127)]
    seed: u64,
    /// Only these outcomes: disagreements (tasks providers got different verdicts on),
    /// rejected or accepted.
    #[arg(long, value_enum)]
    only: Option<Only>,
}

#[derive(Args, Debug)]
struct LabelsImportArgs {
    /// The label file.
    file: PathBuf,
    /// The run of rows that name none (rows that name another run are refused).
    #[arg(long)]
    run: Option<i64>,
    /// The rater of rows that name none; without it such rows are taken as not reviewed.
    #[arg(long)]
    rater: Option<String>,
    /// File format (default: from the extension: .csv, .jsonl, .json = Label Studio).
    #[arg(long, value_enum)]
    format: Option<LabelFormat>,
}

/// Output formats of `costbench labels agreement`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AgreementFormat {
    /// Terminal tables.
    Table,
    /// The JSON report's `agreement` section.
    Json,
}

#[derive(Args, Debug)]
struct LabelsAgreementArgs {
    /// Run id (default: the latest).
    #[arg(long)]
    run: Option<i64>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: AgreementFormat,
    /// Fit the tables to this many columns.
    #[arg(long, value_parser = clap::value_parser!(u16).range(40..))]
    width: Option<u16>,
    #[command(flatten)]
    stats: StatsFlags,
}

#[derive(Args, Debug)]
struct RunsArgs {
    /// One line per provider × run: error rate by kind, retries, p50/p95/p99 latency and TTFT.
    #[arg(long)]
    health: bool,
    /// Only the last N runs.
    #[arg(long, value_name = "N")]
    last: Option<usize>,
    /// With --health: only this provider id.
    #[arg(long, value_name = "ID", requires = "health")]
    provider: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: ListFormat,
}

/// Formats of the `runs` listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ListFormat {
    /// A terminal table.
    Table,
    /// JSON.
    Json,
}

#[derive(Subcommand, Debug)]
enum ImportCommand {
    /// A promptfoo config (promptfooconfig.yaml) and the prompt and test files it names.
    Promptfoo {
        /// The promptfoo config.
        config: PathBuf,
        /// Folder to write the suites, tasks files, providers.yaml and IMPORT_REPORT.md into.
        #[arg(long)]
        out: PathBuf,
    },
    /// An openai/evals registry YAML (with its samples JSONL), or a hosted Evals API eval
    /// definition (JSON: data_source_config + testing_criteria) with --data and --run.
    #[command(name = "openai-evals")]
    OpenaiEvals {
        /// The registry YAML or the eval definition JSON.
        file: PathBuf,
        /// Folder to write into.
        #[arg(long)]
        out: PathBuf,
        /// Hosted evals: the items, one `{"item": {...}}` a line (the JSONL uploaded to OpenAI).
        #[arg(long, value_name = "ITEMS.jsonl")]
        data: Option<PathBuf>,
        /// Hosted evals: the run definition (its data_source: input_messages, model,
        /// sampling_params, and file_content items when --data is not given).
        #[arg(long, value_name = "RUN.json")]
        run: Option<PathBuf>,
    },
}

/// The suites and providers `run` and `plan` read, and the providers they keep.
#[derive(Args, Debug)]
struct Selection {
    /// Suite files.
    #[arg(required = true)]
    suites: Vec<PathBuf>,
    /// Providers file.
    #[arg(long, short)]
    providers: PathBuf,
    /// Only these provider ids (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

impl Selection {
    /// The suites, every provider of the file (a judge may be any of them), and those
    /// `--only` keeps.
    fn load(
        &self,
        catalog: &Catalog,
    ) -> Result<(Vec<Suite>, Vec<ProviderConfig>, Vec<ProviderConfig>)> {
        let (suites, every) = load_all(&self.suites, Some(&self.providers), catalog)?;
        let mut kept = every.clone();
        keep_only(&mut kept, &self.only)?;
        Ok((suites, every, kept))
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    select: Selection,
    /// rw: serve recorded answers, call and record the rest; replay: offline, a missing
    /// answer is an error; off: call everything, record nothing.
    #[arg(long, value_enum, default_value = "rw")]
    cache: CacheMode,
    /// JSONL cassette loaded into the cache first; in rw mode it is rewritten with new answers.
    #[arg(long)]
    cassette: Option<PathBuf>,
    /// Start a new run even if an unfinished run of the same inputs exists.
    #[arg(long)]
    new: bool,
    /// Never draw the progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Write the run's events (attempts, retries, outcomes) to FILE as JSON lines.
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// Share of outcomes allowed to end without an answer before exiting with code 4.
    #[arg(long, default_value_t = 0.0)]
    max_failed_share: f64,
    /// Stop calling before the run's spend (earlier sessions included, unknown costs and calls
    /// in flight at their bound) could pass USD; exit 6. A higher cap resumes the run.
    #[arg(long, value_name = "USD", value_parser = parse_max_spend, allow_negative_numbers = true)]
    max_spend: Option<crate::providers::Money>,
    #[command(flatten)]
    catalog: CatalogFlag,
    #[command(flatten)]
    report: ReportFlags,
}

/// Reads `--max-spend`: a non-negative decimal amount of USD.
fn parse_max_spend(s: &str) -> std::result::Result<crate::providers::Money, String> {
    // Money parsing refuses signs, so a cap is never negative.
    crate::providers::Money::parse_usd(s.trim().trim_start_matches('$'))
        .map_err(|e| format!("not an amount of USD ({e}); write e.g. 2.50"))
}

/// The most bootstrap resamples a report may ask for: beyond it the interval no longer
/// changes and the time and memory grow without bound.
const MAX_BOOTSTRAP: usize = 100_000;

#[derive(Args, Debug)]
struct ReportFlags {
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Confidence level of every interval.
    #[arg(long, default_value_t = 0.95)]
    confidence: f64,
    /// Bootstrap resamples for the cost-per-accepted interval.
    #[arg(long, default_value_t = 2000)]
    bootstrap: usize,
    /// Bootstrap seed.
    #[arg(long, default_value_t = 20261127)]
    seed: u64,
    /// Fit the table to this many columns (default: the terminal's width).
    #[arg(long, value_parser = clap::value_parser!(u16).range(40..))]
    width: Option<u16>,
}

impl ReportFlags {
    fn options(&self) -> Result<AnalysisOptions> {
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            bail!(UsageError(format!(
                "--confidence must be between 0 and 1 (got {})",
                self.confidence
            )));
        }
        if self.bootstrap < 100 {
            bail!(UsageError("--bootstrap must be at least 100".into()));
        }
        if self.bootstrap > MAX_BOOTSTRAP {
            bail!(UsageError(format!(
                "--bootstrap must be at most {MAX_BOOTSTRAP} resamples (got {}); 2000 is ample for 95% intervals",
                self.bootstrap
            )));
        }
        Ok(AnalysisOptions {
            confidence: self.confidence,
            bootstrap: self.bootstrap,
            seed: self.seed,
        })
    }
}

#[derive(Args, Debug)]
struct PlanArgs {
    #[command(flatten)]
    select: Selection,
    /// Output format (table, json or md).
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Fit the table to this many columns (default 100).
    #[arg(long, value_parser = clap::value_parser!(u16).range(40..))]
    width: Option<u16>,
    /// Write the output to this file instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    catalog: CatalogFlag,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// Run id (default: the latest).
    #[arg(long)]
    run: Option<i64>,
    /// Write the report to this file instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// With `--format html`: show another run's figures beside this run's, with the paired
    /// verdict of each provider against itself in that run.
    #[arg(long, value_name = "RUN")]
    compare: Option<i64>,
    /// With `--format md` or `html`: the routing policy of the summary's recommendation per
    /// class (as `costbench route --policy`; default: the suites' thresholds, no volumes).
    #[arg(long)]
    policy: Option<PathBuf>,
    #[command(flatten)]
    report: ReportFlags,
}

#[derive(Args, Debug)]
struct CompareArgs {
    /// Provider id of the incumbent (the provider now in use).
    #[arg(long)]
    incumbent: String,
    /// Provider id of the candidate.
    #[arg(long)]
    candidate: String,
    /// Run holding both providers (default: the latest).
    #[arg(long, conflicts_with = "runs")]
    run: Option<i64>,
    /// Two runs of the same suites: the incumbent from the first, the candidate from the second.
    #[arg(long, num_args = 2, value_names = ["ID_A", "ID_B"])]
    runs: Option<Vec<i64>>,
    /// Only this suite.
    #[arg(long)]
    suite: Option<String>,
    /// Non-inferiority margin in acceptance-rate units (overrides the suites' `margin`).
    #[arg(long)]
    margin: Option<f64>,
    /// Write the output to this file instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    report: ReportFlags,
}

#[derive(Args, Debug)]
struct RepriceArgs {
    /// Run id (default: the latest).
    #[arg(long)]
    run: Option<i64>,
    /// A providers file whose entries' `price` replaces the run's prices (by provider id).
    #[arg(long)]
    prices: PathBuf,
    /// Routing policy of the route drawn before and after (as `costbench route --policy`).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Write the output to this file instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    report: ReportFlags,
}

#[derive(Subcommand, Debug)]
enum BaselineCommand {
    /// Write a run's per-outcome results and summary figures to a baseline file.
    Save {
        /// Run id (default: the latest).
        #[arg(long)]
        run: Option<i64>,
        /// The baseline file to write (JSON, one outcome a line).
        #[arg(long)]
        out: PathBuf,
        /// Routing policy the recorded routes are drawn with (as `costbench route --policy`).
        #[arg(long)]
        policy: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct GateArgs {
    /// The baseline file (`costbench baseline save`).
    #[arg(long)]
    baseline: PathBuf,
    /// Run id (default: the latest).
    #[arg(long)]
    run: Option<i64>,
    /// Largest acceptable drop in acceptance, as a share (0.02 = two points).
    #[arg(long, default_value_t = 0.02)]
    max_acceptance_drop: f64,
    /// Largest acceptable increase in cost per accepted outcome, as a share (0.10 = 10%).
    #[arg(long, default_value_t = 0.10)]
    max_cost_increase: f64,
    /// Also write JUnit XML to FILE: one test case per check.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Also write the markdown summary to FILE (for a pull request or $GITHUB_STEP_SUMMARY).
    #[arg(long, value_name = "FILE")]
    md: Option<PathBuf>,
    #[command(flatten)]
    stats: StatsFlags,
}

#[derive(Args, Debug)]
struct RouteArgs {
    /// Runs to route from (repeatable; default: the latest).
    #[arg(long = "run", value_name = "ID")]
    runs: Vec<i64>,
    /// Routing policy file (thresholds, SLOs, tags, volumes, incumbents per class).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Output format: costbench's routing file (yaml, json), a gateway config (litellm,
    /// portkey) or a Markdown summary (md).
    #[arg(long, value_enum, default_value = "yaml")]
    format: RouteFormat,
    /// Write the output to this file instead of stdout (a LiteLLM export's cascade policy goes
    /// beside it, as NAME.cascade.yaml).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    stats: StatsFlags,
}

/// The statistics options of commands that print no report table (`gate`, `route`).
#[derive(Args, Debug)]
struct StatsFlags {
    /// Confidence level of every interval; tests run at α = 1 − confidence.
    #[arg(long, default_value_t = 0.95)]
    confidence: f64,
    /// Bootstrap resamples of each interval.
    #[arg(long, default_value_t = 2000)]
    bootstrap: usize,
    /// Seed of every resample.
    #[arg(long, default_value_t = 20261127)]
    seed: u64,
}

impl StatsFlags {
    /// The analysis options, checked as the report's are.
    fn options(&self) -> Result<AnalysisOptions> {
        ReportFlags {
            format: Format::Table,
            confidence: self.confidence,
            bootstrap: self.bootstrap,
            seed: self.seed,
            width: None,
        }
        .options()
    }
}

#[derive(Args, Debug)]
struct GradeArgs {
    /// Run id (default: the latest).
    #[arg(long)]
    run: Option<i64>,
    /// Suite files to take graders from (default: the paths recorded with the run).
    #[arg(long = "suite")]
    suites: Vec<PathBuf>,
    /// Providers file: needed when a suite has a `judge` grader (its judge is one of them).
    #[arg(long, short)]
    providers: Option<PathBuf>,
    /// How judge calls use the record/replay cache: `rw` replays recorded judge answers and
    /// records new ones, `replay` calls nothing, `off` calls every judge again.
    #[arg(long, value_enum, default_value = "rw")]
    cache: CacheMode,
    #[command(flatten)]
    catalog: CatalogFlag,
}

#[derive(Args, Debug)]
struct ValidateArgs {
    /// Suite files.
    suites: Vec<PathBuf>,
    /// Providers file.
    #[arg(long, short)]
    providers: Option<PathBuf>,
    #[command(flatten)]
    catalog: CatalogFlag,
}

#[derive(Args, Debug)]
struct CatalogFlag {
    /// Price catalog for `price: catalog` entries: costbench's YAML (like prices/catalog.yaml)
    /// or LiteLLM's model_prices_and_context_window.json (default: the built-in catalog).
    #[arg(long = "prices", value_name = "FILE")]
    file: Option<PathBuf>,
}

impl CatalogFlag {
    fn load(&self) -> Result<Catalog> {
        Ok(match &self.file {
            Some(f) => Catalog::load(f)?,
            None => Catalog::builtin(),
        })
    }
}

#[derive(Args, Debug)]
struct PricesArgs {
    /// Only this model (by id or alias).
    model: Option<String>,
    /// Output as JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    catalog: CatalogFlag,
}

#[derive(Subcommand, Debug)]
enum CacheCommand {
    /// Write every recorded answer to a JSONL cassette.
    Export {
        /// Output file.
        file: PathBuf,
    },
    /// Load a JSONL cassette into the database.
    Import {
        /// Input file.
        file: PathBuf,
    },
}

/// A usage error (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            let mut msg = format!("error: {e}");
            for cause in e.chain().skip(1) {
                msg.push_str(&format!("\n  caused by: {cause}"));
            }
            eprintln!("{msg}");
            if let Some(hint) = hint(&e) {
                eprintln!("hint: {hint}");
            }
            if let Some(run::RunError::Busy { .. }) = e.downcast_ref::<run::RunError>() {
                return exit::BUSY;
            }
            if is_bad_input(&e) {
                exit::CONFIG
            } else {
                exit::INTERNAL
            }
        }
    }
}

/// Whether an error is the user's input (exit 2) rather than costbench failing (exit 1),
/// wherever in the cause chain it sits, so every command gives the same code for it.
fn is_bad_input(e: &anyhow::Error) -> bool {
    use crate::store::StoreError as S;
    e.chain().any(|c| {
        c.downcast_ref::<ConfigError>().is_some()
            || c.downcast_ref::<UsageError>().is_some()
            || c.downcast_ref::<CompareError>().is_some()
            || c.downcast_ref::<RepriceError>().is_some()
            || c.downcast_ref::<BaselineError>().is_some()
            || c.downcast_ref::<GateError>().is_some()
            || c.downcast_ref::<RouteError>().is_some()
            || matches!(
                c.downcast_ref::<run::RunError>(),
                Some(
                    run::RunError::Cassette { .. }
                        | run::RunError::Unwritable { .. }
                        | run::RunError::TasksChanged(_)
                )
            )
            || matches!(
                c.downcast_ref::<S>(),
                Some(
                    S::TooNew { .. }
                        | S::Foreign { .. }
                        | S::Missing { .. }
                        | S::NoRun(_)
                        | S::Corrupt { .. }
                        | S::Unreadable { .. }
                        | S::NeedsUpgrade { .. }
                )
            )
            || matches!(
                c.downcast_ref::<run::RunError>(),
                Some(run::RunError::Store(
                    S::TooNew { .. } | S::Foreign { .. } | S::Corrupt { .. }
                ))
            )
    })
}

fn hint(e: &anyhow::Error) -> Option<&'static str> {
    if e.downcast_ref::<ConfigError>().is_some() {
        Some("the README documents every suite and provider field")
    } else {
        e.downcast_ref::<CompareError>()
            .map(CompareError::hint)
            .or_else(|| e.downcast_ref::<RepriceError>().map(RepriceError::hint))
            .or_else(|| e.downcast_ref::<BaselineError>().map(BaselineError::hint))
            .or_else(|| e.downcast_ref::<GateError>().map(GateError::hint))
            .or_else(|| e.downcast_ref::<RouteError>().map(RouteError::hint))
    }
}

fn dispatch(cli: &Cli) -> Result<i32> {
    match &cli.command {
        Command::Run(a) => cmd_run(&cli.db, a),
        Command::Report(a) => {
            let opts = a.report.options()?;
            if a.compare.is_some() && a.report.format != Format::Html {
                bail!(UsageError(
                    "--compare RUN shows two runs side by side in the HTML report: add --format html (or use `costbench compare --runs A B`)".into()
                ));
            }
            let store = Store::open_to_read(&cli.db)?;
            let analysis = analyse_for(&store, store.run(a.run)?, opts, a.report.format)?;
            let other = match a.compare {
                Some(id) => Some(RunAnalysis::load(&store, store.run(Some(id))?, opts)?),
                None => None,
            };
            emit(
                &render_report(
                    &store,
                    &analysis,
                    &a.report,
                    other.as_ref(),
                    a.policy.as_deref(),
                )?,
                a.out.as_deref(),
            )
        }
        Command::Plan(a) => cmd_plan(&cli.db, a),
        Command::Grade(a) => cmd_grade(&cli.db, a),
        Command::Compare(a) => cmd_compare(&cli.db, a),
        Command::Reprice(a) => cmd_reprice(&cli.db, a),
        Command::Prices(a) => cmd_prices(a),
        Command::Baseline(BaselineCommand::Save { run, out, policy }) => {
            cmd_baseline_save(&cli.db, *run, out, policy.as_deref())
        }
        Command::Gate(a) => cmd_gate(&cli.db, a),
        Command::Route(a) => cmd_route(&cli.db, a),
        Command::Runs(a) => cmd_runs(&cli.db, a),
        Command::Validate(a) => cmd_validate(a),
        Command::Cache(c) => cmd_cache(&cli.db, c),
        Command::Import(c) => cmd_import(c),
        Command::Labels(c) => cmd_labels(&cli.db, c),
    }
}

/// The format of a label file: `--format`, else the file's extension.
fn label_format(given: Option<LabelFormat>, path: &Path) -> Result<LabelFormat> {
    given
        .or_else(|| LabelFormat::from_path(path))
        .ok_or_else(|| {
            UsageError(format!(
                "cannot tell the format of {} from its extension: give --format csv, jsonl or label-studio",
                path.display()
            ))
            .into()
        })
}

fn cmd_labels(db: &Path, c: &LabelsCommand) -> Result<i32> {
    match c {
        LabelsCommand::Export(a) => {
            let format = label_format(a.format, &a.out)?;
            if a.sample == Some(0) {
                bail!(UsageError("--sample must be at least 1".into()));
            }
            let store = Store::open_to_read(db)?;
            let run = store.run(a.run)?;
            let spec = labels::ExportSpec {
                format,
                sample: a.sample,
                seed: a.seed,
                only: a.only,
            };
            let e = labels::export(&store, &run, &spec)?;
            write_output(&a.out, &e.text)?;
            let n: usize = e.per_provider.values().sum();
            let per: Vec<String> = e
                .per_provider
                .iter()
                .map(|(p, n)| format!("{p} {n}"))
                .collect();
            eprintln!(
                "wrote {n} of {} outcomes of run {} to label to {} ({})",
                e.eligible,
                run.id,
                a.out.display(),
                if per.is_empty() {
                    "none".into()
                } else {
                    per.join(", ")
                }
            );
            Ok(exit::OK)
        }
        LabelsCommand::Import(a) => {
            let format = label_format(a.format, &a.file)?;
            let text = std::fs::read_to_string(&a.file)
                .map_err(|e| UsageError(format!("cannot read {}: {e}", a.file.display())))?;
            let mut store = Store::open_existing(db)?;
            let source = a.file.display().to_string();
            let r = labels::import(
                &mut store,
                &text,
                format,
                &source,
                a.run,
                a.rater.as_deref(),
            )?;
            let s = r.stored;
            eprintln!(
                "{}: {} label(s) imported ({} new, {} changed, {} unchanged){}{}",
                a.file.display(),
                s.added + s.changed + s.unchanged,
                s.added,
                s.changed,
                s.unchanged,
                match r.runs.as_slice() {
                    [] => String::new(),
                    runs => format!(
                        " into run {}",
                        runs.iter()
                            .map(i64::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
                if r.unreviewed > 0 {
                    format!(
                        "; {} item(s) not reviewed (no verdict, or no rater: give --rater NAME to sign them)",
                        r.unreviewed
                    )
                } else {
                    String::new()
                }
            );
            if r.problems.is_empty() {
                return Ok(exit::OK);
            }
            eprintln!(
                "error: {} row(s) not imported (the others were):",
                r.problems.len()
            );
            for p in &r.problems {
                eprintln!("  {}:{}: {}", a.file.display(), p.line, p.message);
            }
            Ok(exit::CONFIG)
        }
        LabelsCommand::Agreement(a) => {
            let opts = a.stats.options()?;
            let store = Store::open_to_read(db)?;
            let run = store.run(a.run)?;
            let id = run.id;
            let analysis = RunAnalysis::load(&store, run, opts)?;
            let Some(ag) = &analysis.agreement else {
                bail!(UsageError(format!(
                    "run {id} has no human labels\nhint: `costbench labels export --run {id} --out labels.csv`, label them, then `costbench labels import labels.csv`"
                )));
            };
            match a.format {
                AgreementFormat::Json => println!("{}", serde_json::to_string_pretty(ag)?),
                AgreementFormat::Table => println!(
                    "{}",
                    export::labels::table(ag, id, opts.confidence, a.width)
                ),
            }
            Ok(exit::OK)
        }
    }
}

/// Loads every suite and the providers file, gathering all problems from all files.
fn load_all(
    suites: &[PathBuf],
    providers: Option<&Path>,
    catalog: &Catalog,
) -> Result<(Vec<Suite>, Vec<ProviderConfig>)> {
    let mut problems = Vec::new();
    let mut loaded = Vec::new();
    for s in suites {
        match load_suite(s) {
            Ok(s) => loaded.push(s),
            Err(e) => problems.extend(e.problems),
        }
    }
    let mut names = HashMap::new();
    for s in &loaded {
        if let Some(other) = names.insert(s.name.clone(), s.path.clone()) {
            problems.push(crate::config::Problem {
                file: s.path.clone(),
                line_col: None,
                path: crate::config::DocPath::default().key("suite"),
                message: format!(
                    "suite name `{}` is also used by {}",
                    s.name,
                    other.display()
                ),
            });
        }
    }
    let mut provs_read = false;
    let provs = match providers.map(|p| load_providers_with(p, catalog)) {
        Some(Ok(p)) => {
            provs_read = true;
            p
        }
        Some(Err(e)) => {
            problems.extend(e.problems);
            Vec::new()
        }
        None => Vec::new(),
    };
    // A judge must be a provider of the providers file; checked where the judge was named.
    if let Some(file) = providers.filter(|_| provs_read) {
        for s in &loaded {
            for (id, at) in &s.judges {
                if !provs.iter().any(|p| &p.id == id) {
                    let mut p = at.clone();
                    p.message = format!(
                        "judge provider `{id}` is not in the providers file {}",
                        file.display()
                    );
                    problems.push(p);
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError { problems }.into());
    }
    let now = std::time::SystemTime::now();
    for p in &provs {
        if let Some(w) = p.price_from.as_ref().and_then(|e| e.staleness(now)) {
            eprintln!("warning: provider {}: {w}", p.id);
        }
    }
    Ok((loaded, provs))
}

/// Keeps the providers `--only` names (all when it names none); an unknown id is an error.
fn keep_only(providers: &mut Vec<ProviderConfig>, only: &[String]) -> Result<()> {
    if only.is_empty() {
        return Ok(());
    }
    let unknown: Vec<&str> = only
        .iter()
        .filter(|id| !providers.iter().any(|p| &&p.id == id))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        bail!(UsageError(format!(
            "--only names unknown provider(s): {}",
            unknown.join(", ")
        )));
    }
    providers.retain(|p| only.contains(&p.id));
    Ok(())
}

fn cmd_plan(db: &Path, a: &PlanArgs) -> Result<i32> {
    if a.format == Format::Html {
        bail!(UsageError(
            "`costbench plan` has no HTML output; use --format table, md or json".into()
        ));
    }
    let (suites, _, providers) = a.select.load(&a.catalog.load()?)?;
    // History is optional: no database yet just means no history.
    let store = if db.exists() {
        Some(Store::open_to_read(db)?)
    } else {
        None
    };
    let plan = crate::estimate::plan(&suites, &providers, store.as_ref())?;
    emit(
        &export::plan::render(&plan, a.format, a.width),
        a.out.as_deref(),
    )
}

fn cmd_run(db: &Path, a: &RunArgs) -> Result<i32> {
    let opts = a.report.options()?;
    if !(0.0..=1.0).contains(&a.max_failed_share) {
        bail!(UsageError(format!(
            "--max-failed-share must be a share between 0 and 1 (got {})",
            a.max_failed_share
        )));
    }
    // A judge need not be a candidate: judges are taken from the whole providers file.
    let (suites, judge_providers, providers) = a.select.load(&a.catalog.load()?)?;
    // A cap is kept only with a bound on every call; a replay calls nothing.
    if a.max_spend.is_some() && a.cache != CacheMode::Replay {
        let mut problems = run::spend::unboundable(&suites, &providers);
        problems.extend(run::spend::unboundable_judges(&suites, &judge_providers));
        if !problems.is_empty() {
            bail!(UsageError(format!(
                "--max-spend cannot be kept:\n  {}",
                problems.join("\n  ")
            )));
        }
    }
    if a.cache != CacheMode::Replay {
        for p in &providers {
            if let Some(var) = p
                .api_key_env
                .as_ref()
                .filter(|v| std::env::var_os(v).is_none())
            {
                eprintln!(
                    "warning: {var} is not set: provider `{}` can only answer from the cache",
                    p.id
                );
            }
        }
    }
    let summary = run::execute(
        &suites,
        &providers,
        &RunOptions {
            db: db.to_path_buf(),
            cache: a.cache,
            cassette: a.cassette.clone(),
            progress: !a.no_progress,
            fresh: a.new,
            events: a.events.clone(),
            max_spend: a.max_spend,
        },
    )?;
    let mut store = Store::open(db)?;
    let graders: HashMap<String, SuiteGrading<'_>> = suites
        .iter()
        .map(|s| (s.name.clone(), s.grading()))
        .collect();
    let mut judges = Judges::new(judge_providers, a.cache);
    if let Some(cap) = a.max_spend {
        // Judge calls count against the same cap, after everything the run has spent.
        let mut spent = store.run_spent(summary.run_id)?;
        spent.merge(&store.run_judge_spent(summary.run_id)?);
        judges = judges.with_cap(cap, spent);
    }
    let graded = grade_run(&mut store, summary.run_id, &graders, &mut judges, false)?;
    if graded.capped > 0 && summary.capped.is_none() {
        // Left resumable: the same command with a higher cap grades what is left.
        store.set_run_status(summary.run_id, crate::store::RunStatus::Capped)?;
    }

    // The cassette is written after grading: a failed export never changes the run's
    // figures, and is reported after them.
    let exported = match &a.cassette {
        Some(path) if a.cache == CacheMode::ReadWrite && !summary.interrupted => {
            run::cache::export_cassette(&store, db, path).err()
        }
        _ => None,
    };

    release_free_memory();

    let mut err = std::io::stderr().lock();
    if summary.cache_misses > 0 {
        writeln!(
            err,
            "error: {} outcomes have no recorded answer (--cache replay calls nothing); first:",
            summary.cache_misses
        )?;
        for m in &summary.first_misses {
            writeln!(err, "  no recorded answer for {m}")?;
        }
    }
    writeln!(
        err,
        "run {}{}: {} HTTP calls, {} replayed, {} skipped (answered earlier), {} without answer, {} graded{}{}; spent {} in {:.1}s",
        summary.run_id,
        if summary.resumed { " (resumed)" } else { "" },
        summary.calls,
        summary.replayed,
        summary.skipped,
        summary.failed_slots,
        graded.graded,
        grader_errors(graded.errors),
        judge_calls(&graded),
        summary.spent,
        summary.elapsed_s
    )?;
    if summary.batch_pending > 0 {
        writeln!(
            err,
            "{} outcomes are still in provider batches; run the same command again to collect them (nothing is submitted twice)",
            summary.batch_pending
        )?;
    }
    drop(err);

    let analysis = analyse_for(
        &store,
        store.run(Some(summary.run_id))?,
        opts,
        a.report.format,
    )?;
    println!(
        "{}",
        render_report(&store, &analysis, &a.report, None, None)?
    );

    if let Some(e) = exported {
        eprintln!("error: the run is stored and graded, but writing the cassette failed: {e}");
        return Ok(exit::INTERNAL);
    }
    if !summary.halted.is_empty() {
        // A key, permission or model error is a configuration problem, not a quality result.
        for h in &summary.halted {
            eprintln!("error: {h}");
        }
        eprintln!(
            "  no more calls went to {}; its rows are not evaluated. Fix the configuration and \
             run the same command again: it calls only what has no answer.",
            if summary.halted.len() == 1 {
                "that provider"
            } else {
                "those providers"
            }
        );
        return Ok(exit::CONFIG);
    }
    if summary.interrupted {
        eprintln!(
            "interrupted: everything finished so far is saved; run the same command again to resume"
        );
        return Ok(exit::INTERRUPTED);
    }
    if let Some(run::Capped { stop, pending }) = summary.capped {
        let refused = stop.refused_bound.map_or(String::new(), |b| {
            format!(" (the next call could have cost up to {b})")
        });
        eprintln!(
            "stopped at the spend cap: spent {} of {}; {} outcomes pending; rerun with a higher --max-spend to resume{refused}",
            stop.spent, stop.cap, pending
        );
        return Ok(exit::SPEND_CAP);
    }
    if graded.capped > 0 {
        eprintln!(
            "stopped at the spend cap: {} outputs left ungraded, their judge calls could pass \
             --max-spend {}; rerun with a higher --max-spend to grade them",
            graded.capped,
            a.max_spend.unwrap_or_default()
        );
        return Ok(exit::SPEND_CAP);
    }
    let outcomes: u64 = analysis.rows.iter().map(|r| r.figures.outcomes).sum();
    let unanswered: u64 = analysis.rows.iter().map(|r| r.figures.unanswered).sum();
    if outcomes > 0 && unanswered as f64 / outcomes as f64 > a.max_failed_share {
        let mut msg = format!(
            "error: {unanswered} of {outcomes} outcomes got no answer (allowed share {})",
            a.max_failed_share
        );
        for (kind, f) in analysis.unanswered_by_kind() {
            msg.push_str(&format!("\n  {} {kind}", f.count));
            if let Some(m) = f.first_message {
                msg.push_str(&format!(", first: {m}"));
            }
        }
        msg.push_str("\n  per provider: `costbench report --format json` (rows[].failures)");
        eprintln!("{msg}");
        return Ok(exit::PROVIDER_FAILURES);
    }
    Ok(exit::OK)
}

/// The analysis a report in `format` needs: the row figures only, unless the format wants
/// every outcome (markdown and HTML open with the routing recommendation, which pairs and
/// simulates outcomes; HTML's charts and drill-down show them).
fn analyse_for(
    store: &Store,
    run: crate::store::RunInfo,
    opts: AnalysisOptions,
    format: Format,
) -> Result<RunAnalysis> {
    Ok(if matches!(format, Format::Html | Format::Md) {
        RunAnalysis::load(store, run, opts)?
    } else {
        RunAnalysis::load_figures(store, run, opts)?
    })
}

/// The report of an analysed run in the flags' format. Markdown and HTML open with each class's
/// routing recommendation (under `policy`); HTML adds the per-task drill-down read from the
/// store and, with `other`, that run's figures and the paired verdicts.
fn render_report(
    store: &Store,
    analysis: &RunAnalysis,
    flags: &ReportFlags,
    other: Option<&RunAnalysis>,
    policy: Option<&Path>,
) -> Result<String> {
    use crate::export::{Exporter, html, markdown};
    if !matches!(flags.format, Format::Html | Format::Md) {
        return Ok(export::render(analysis, flags.format, flags.width));
    }
    let plan = route_plan(&route_input(store, &[analysis])?, policy, &analysis.options)?;
    let recommendations = export::markup::recommendations(&plan);
    if flags.format == Format::Md {
        return Ok(markdown::Markdown { recommendations }.render(analysis));
    }
    let drill = crate::drilldown::Drilldown::load(store, analysis)?;
    let baseline = other
        .map(|o| html::Baseline::compare(analysis, o))
        .transpose()?;
    Ok(html::Html {
        drilldown: Some(&drill),
        baseline: baseline.as_ref(),
        recommendations,
    }
    .render(analysis))
}

/// Refuses `--format html` where there is no HTML page.
fn no_html(flags: &ReportFlags, command: &str) -> Result<()> {
    if flags.format == Format::Html {
        bail!(UsageError(format!(
            "`costbench {command}` has no HTML output; use --format table, md or json (the HTML report is `costbench report --format html`)"
        )));
    }
    Ok(())
}

/// Prints an output, or writes it to `out`.
fn emit(text: &str, out: Option<&Path>) -> Result<i32> {
    match out {
        Some(path) => write_output(path, text)?,
        None => println!("{text}"),
    }
    Ok(exit::OK)
}

fn cmd_compare(db: &Path, a: &CompareArgs) -> Result<i32> {
    let opts = a.report.options()?;
    no_html(&a.report, "compare")?;
    let store = Store::open_to_read(db)?;
    let (inc, cand) = match a.runs.as_deref() {
        Some(&[x, y]) => (store.run(Some(x))?, Some(store.run(Some(y))?)),
        _ => (store.run(a.run)?, None),
    };
    let spec = CompareSpec {
        incumbent: &a.incumbent,
        candidate: &a.candidate,
        suite: a.suite.as_deref(),
        margin: a.margin,
    };
    // Bad input is refused before the (possibly long) analyses are loaded.
    compare::check(&inc, cand.as_ref().unwrap_or(&inc), &spec)?;
    let inc = RunAnalysis::load(&store, inc, opts)?;
    let cand = match cand {
        Some(c) if c.id != inc.run.id => Some(RunAnalysis::load(&store, c, opts)?),
        _ => None,
    };
    let c = compare::compare(&inc, cand.as_ref().unwrap_or(&inc), &spec)?;
    emit(
        &export::compare::render(&c, a.report.format, a.report.width),
        a.out.as_deref(),
    )
}

fn cmd_reprice(db: &Path, a: &RepriceArgs) -> Result<i32> {
    let opts = a.report.options()?;
    no_html(&a.report, "reprice")?;
    let entries = crate::providers::load_providers(&a.prices)?;
    let store = Store::open_to_read(db)?;
    let run = store.run(a.run)?;
    let prices = reprice::prices_for(&run, &entries, &a.prices)?;
    let (before, after) = RunAnalysis::load_before_after(&store, run, opts, &prices)?;
    // The runtime checks are the stored grades', the same before and after: read once. The
    // store is read on this thread; the two routes are then drawn side by side.
    let checks = before.runtime_checks(&store)?;
    let inputs = (
        RouteInput::from_runs(&[&before], &[&checks]),
        RouteInput::from_runs(&[&after], &[&checks]),
    );
    let routed = |input: &RouteInput| route_plan(input, a.policy.as_deref(), &opts);
    let (plan_before, plan_after) = rayon::join(|| routed(&inputs.0), || routed(&inputs.1));
    let r = reprice::repriced(&before, &after, &a.prices, (&plan_before?, &plan_after?));
    emit(
        &export::reprice::render(&r, a.report.format, a.report.width),
        a.out.as_deref(),
    )
}

fn cmd_baseline_save(
    db: &Path,
    run: Option<i64>,
    out: &Path,
    policy: Option<&Path>,
) -> Result<i32> {
    let store = Store::open_to_read(db)?;
    let opts = AnalysisOptions::default();
    let analysis = RunAnalysis::load(&store, store.run(run)?, opts)?;
    let b = Baseline::from_analysis(&analysis)?;
    let plan = route_plan(&route_input(&store, &[&analysis])?, policy, &opts)?;
    let b = b.with_routes(&plan);
    write_output(out, b.to_text().trim_end())?;
    eprintln!(
        "wrote the baseline of run {} ({} suite × provider rows, {} outcomes, {} routed classes) to {}",
        b.run.id,
        b.rows.len(),
        b.rows.iter().map(|r| r.outcomes.len()).sum::<usize>(),
        b.routes.as_ref().map_or(0, Vec::len),
        out.display()
    );
    Ok(exit::OK)
}

fn cmd_gate(db: &Path, a: &GateArgs) -> Result<i32> {
    let opts = a.stats.options()?;
    let spec = GateSpec {
        max_acceptance_drop: a.max_acceptance_drop,
        max_cost_increase: a.max_cost_increase,
    };
    let baseline = Baseline::load(&a.baseline)?;
    let store = Store::open_to_read(db)?;
    let run = store.run(a.run)?;
    // Bad input is refused before the analyses are loaded.
    gate::check_plan(&baseline, &run, &spec)?;
    let changed = gate::changed_prices(&baseline, &run);
    let repriced = if changed.is_empty() {
        None
    } else {
        Some(RunAnalysis::load_repriced(
            &store,
            run.clone(),
            opts,
            &changed,
        )?)
    };
    let analysis = RunAnalysis::load(&store, run, opts)?;
    let routes = match &baseline.routes {
        Some(r) if !r.is_empty() => Some(route_input(&store, &[&analysis])?),
        _ => None,
    };
    let report = gate::gate(
        &baseline,
        &analysis,
        repriced.as_ref(),
        routes.as_ref(),
        &spec,
    )?;
    if let Some(path) = &a.junit {
        let xml = export::junit::render(&report).context("rendering the JUnit XML")?;
        write_output(path, xml.trim_end())?;
    }
    if let Some(path) = &a.md {
        write_output(path, export::gate::markdown(&report).trim_end())?;
    }
    println!("{}", export::gate::text(&report));
    Ok(if report.status() == gate::Status::Fail {
        exit::GATE_FAILED
    } else {
        exit::OK
    })
}

fn cmd_route(db: &Path, a: &RouteArgs) -> Result<i32> {
    let opts = a.stats.options()?;
    let store = Store::open_to_read(db)?;
    let mut ids: Vec<Option<i64>> = a.runs.iter().copied().map(Some).collect();
    ids.dedup();
    if ids.is_empty() {
        ids.push(None);
    }
    let mut analyses = Vec::new();
    for id in ids {
        analyses.push(RunAnalysis::load(&store, store.run(id)?, opts)?);
    }
    let input = route_input(&store, &analyses.iter().collect::<Vec<_>>())?;
    let plan = route_plan(&input, a.policy.as_deref(), &opts)?;
    let r = export::routing::render(&plan, a.format);
    if let Some((suffix, text)) = &r.side {
        match &a.out {
            Some(out) => {
                let stem = out.file_stem().unwrap_or_default().to_string_lossy();
                let side = out.with_file_name(format!("{stem}{suffix}"));
                write_output(&side, text)?;
                eprintln!(
                    "note: a class chose a cascade, which a LiteLLM config cannot express; its cascade policy is in {}",
                    side.display()
                );
            }
            None => eprintln!(
                "note: a class chose a cascade, which a LiteLLM config cannot express; give --out FILE to also write its cascade policy beside FILE ({suffix})"
            ),
        }
    }
    emit(&r.main, a.out.as_deref())
}

/// Analysed runs lined up by workload class for routing, with their runtime checks.
fn route_input(store: &Store, analyses: &[&RunAnalysis]) -> Result<RouteInput> {
    let checks = analyses
        .iter()
        .map(|a| a.runtime_checks(store))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RouteInput::from_runs(
        analyses,
        &checks.iter().collect::<Vec<_>>(),
    ))
}

/// Hands memory freed by the finished calls back to the system before the run's summary reads
/// the store: glibc keeps freed pages in each thread's arena (the writer's page cache, the
/// connections' buffers), and the summary would otherwise add to them, raising the run's peak.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the kernel; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The route under a policy file (the defaults without one).
fn route_plan(
    input: &RouteInput,
    policy: Option<&Path>,
    opts: &AnalysisOptions,
) -> Result<route::RoutePlan> {
    let policy = match policy {
        Some(p) => load_policy(p, &input.known())?,
        None => Policy::default(),
    };
    input.check(&policy)?;
    Ok(route::route(input, &policy, opts))
}

/// Writes an output file whole: a temporary file beside it, renamed into place.
fn write_output(path: &Path, text: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.write_all(b"\n"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// ", N could not be graded (grader errors)" when some could not.
fn grader_errors(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} could not be graded: grader errors, left out of acceptance)")
    }
}

/// ", N judge calls (M replayed)" when the suites have judges.
fn judge_calls(g: &GradeSummary) -> String {
    if g.judge_calls + g.judge_replayed == 0 {
        String::new()
    } else {
        format!(
            ", {} judge calls ({} replayed)",
            g.judge_calls, g.judge_replayed
        )
    }
}

fn cmd_grade(db: &Path, a: &GradeArgs) -> Result<i32> {
    let mut store = Store::open_existing(db)?;
    let run = store.run(a.run)?;
    let paths: Vec<PathBuf> = if a.suites.is_empty() {
        if let Some(gone) = run.plan.suites.iter().find(|s| !s.path.exists()) {
            bail!(UsageError(format!(
                "run {}'s suite `{}` was read from {}, which is not there now\nhint: give the suite files with --suite FILE",
                run.id,
                gone.name,
                gone.path.display()
            )));
        }
        run.plan.suites.iter().map(|s| s.path.clone()).collect()
    } else {
        a.suites.clone()
    };
    let (suites, providers) = load_all(&paths, a.providers.as_deref(), &a.catalog.load()?)
        .with_context(|| format!("loading the graders of run {}", run.id))?;
    if a.providers.is_none()
        && let Some((s, (id, _))) = suites.iter().find_map(|s| s.judges.first().map(|j| (s, j)))
    {
        bail!(UsageError(format!(
            "suite `{}` has a judge grader (provider `{id}`), and judges are providers of the \
             providers file\nhint: give it with --providers FILE (recorded judge answers are \
             replayed, not paid again)",
            s.name
        )));
    }
    let graders: HashMap<String, SuiteGrading<'_>> = suites
        .iter()
        .map(|s| (s.name.clone(), s.grading()))
        .collect();
    let mut judges = Judges::new(providers, a.cache);
    let sum = grade_run(&mut store, run.id, &graders, &mut judges, true)?;
    eprintln!(
        "run {}: re-graded {} answers, {} accepted{}{}{}",
        run.id,
        sum.graded,
        sum.accepted,
        grader_errors(sum.errors),
        judge_calls(&sum),
        if sum.skipped > 0 {
            format!(
                "; {} answers of suites not given were left as they were",
                sum.skipped
            )
        } else {
            String::new()
        }
    );
    Ok(exit::OK)
}

fn cmd_prices(a: &PricesArgs) -> Result<i32> {
    let catalog = a.catalog.load()?;
    let entries: Vec<&catalog::Entry> = match &a.model {
        Some(m) => vec![catalog.find(m).ok_or_else(|| {
            UsageError(format!(
                "no price for model `{m}` in the catalog {}",
                catalog.origin
            ))
        })?],
        None => catalog.entries.iter().collect(),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(exit::OK);
    }
    let now = std::time::SystemTime::now();
    println!("catalog: {} (USD per 1M tokens)", catalog.origin);
    for e in entries {
        let p = &e.price;
        let opt = |r: Option<crate::providers::Rate>| r.map_or("-".to_string(), |r| r.to_string());
        let mut rules = Vec::new();
        if !p.long_context.is_empty() {
            rules.push("long-context tiers");
        }
        if !p.service_tiers.is_empty() {
            rules.push("service tiers");
        }
        if p.batch.is_some() {
            rules.push("batch");
        }
        if p.off_peak.is_some() {
            rules.push("off-peak");
        }
        if !p.multipliers.is_empty() {
            rules.push("multipliers");
        }
        println!(
            "{:<24} {:<10} in {} cached {} write {} out {}{}",
            e.model,
            e.provider,
            p.input,
            opt(p.cached_input),
            opt(p.cache_write),
            p.output,
            if rules.is_empty() {
                String::new()
            } else {
                format!(" [{}]", rules.join(", "))
            }
        );
        let age = e
            .age_days(now)
            .map_or("undated".into(), |d| format!("{d} days old"));
        let stale = if e.staleness(now).is_some() {
            "  STALE"
        } else {
            ""
        };
        println!(
            "    {} ({age}){stale}; {}",
            e.date.as_deref().unwrap_or("-"),
            e.source
        );
    }
    Ok(exit::OK)
}

fn cmd_runs(db: &Path, a: &RunsArgs) -> Result<i32> {
    let store = Store::open_to_read(db)?;
    let mut runs = store.runs()?;
    runs.truncate(a.last.unwrap_or(usize::MAX));
    if a.health {
        if let Some(p) = &a.provider
            && !runs.iter().any(|r| r.plan.provider(p).is_some())
        {
            bail!(UsageError(format!(
                "no provider `{p}` in the runs listed; `costbench runs` lists their providers"
            )));
        }
        let mut lines = Vec::new();
        // Oldest first within each provider: a trend reads downwards.
        for r in runs.iter().rev() {
            lines.extend(
                crate::analysis::run_health(&store, r)?
                    .into_iter()
                    .filter(|h| a.provider.as_ref().is_none_or(|p| *p == h.provider)),
            );
        }
        let order: Vec<String> =
            lines
                .iter()
                .map(|h| h.provider.clone())
                .fold(Vec::new(), |mut seen, p| {
                    if !seen.contains(&p) {
                        seen.push(p);
                    }
                    seen
                });
        lines.sort_by_key(|h| (order.iter().position(|p| *p == h.provider), h.run));
        println!(
            "{}",
            export::health::render(&lines, a.format == ListFormat::Json)
        );
        return Ok(exit::OK);
    }
    if a.format == ListFormat::Json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(exit::OK);
    }
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(["id", "started", "status", "cache", "suites", "providers"]);
    for r in runs {
        let join = |v: Vec<&str>| v.join(", ");
        t.add_row([
            r.id.to_string(),
            r.created_at.clone(),
            r.status.to_string(),
            r.cache_mode.clone(),
            join(r.plan.suites.iter().map(|s| s.name.as_str()).collect()),
            join(r.plan.providers.iter().map(|p| p.id.as_str()).collect()),
        ]);
    }
    println!("{t}");
    Ok(exit::OK)
}

fn cmd_validate(a: &ValidateArgs) -> Result<i32> {
    if a.suites.is_empty() && a.providers.is_none() {
        bail!(UsageError("give suite files and/or --providers".into()));
    }
    let (suites, providers) = load_all(&a.suites, a.providers.as_deref(), &a.catalog.load()?)?;
    for s in &suites {
        println!(
            "ok  suite {} ({}): {} tasks × {} repeats, {} graders, workload {}",
            s.name,
            s.path.display(),
            s.task_count,
            s.repeats,
            s.graders.len(),
            s.workload
        );
    }
    for p in &providers {
        let key = match &p.api_key_env {
            None => "no key needed".to_string(),
            Some(v) if std::env::var_os(v).is_some() => format!("{v} is set"),
            Some(v) => format!("{v} is NOT set (needed unless --cache replay)"),
        };
        let price = match (&p.price, &p.price_from) {
            (Some(_), Some(e)) => format!(
                "catalog price of {} ({}, {})",
                e.model,
                e.date.as_deref().unwrap_or("undated"),
                e.source
            ),
            (Some(_), None) => "priced".into(),
            (None, _) => "no price: costs will be unknown".into(),
        };
        println!(
            "ok  provider {} ({} {}): {key}; {price}",
            p.id, p.protocol, p.model
        );
    }
    Ok(exit::OK)
}

fn cmd_cache(db: &Path, c: &CacheCommand) -> Result<i32> {
    match c {
        CacheCommand::Export { file } => {
            let store = Store::open_existing(db)?;
            let n = run::cache::export_cassette(&store, db, file)?;
            eprintln!("wrote {n} recorded answers to {}", file.display());
        }
        CacheCommand::Import { file } => {
            let mut store = Store::open(db)?;
            let n = run::cache::import_cassette(&mut store, file)?;
            eprintln!("imported {n} new recorded answers from {}", file.display());
        }
    }
    Ok(exit::OK)
}

fn cmd_import(c: &ImportCommand) -> Result<i32> {
    let (import, out) = match c {
        ImportCommand::Promptfoo { config, out } => {
            (crate::import::promptfoo::import(config)?, out)
        }
        ImportCommand::OpenaiEvals {
            file,
            out,
            data,
            run,
        } => (
            crate::import::openai_evals::import(file, data.as_deref(), run.as_deref())?,
            out,
        ),
    };
    let written = crate::import::write(import, out)?;
    crate::import::print_summary(&written, out);
    Ok(exit::OK)
}
