//! `costbench route` through the binary on constructed runs (scripted servers on 127.0.0.1 decide
//! which tasks each provider gets right), the LiteLLM export read back field by field against
//! reference/routing-formats.md, bad input, and a seeded simulation of the choice itself.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use costbench::analysis::AnalysisOptions;
use costbench::route::data::{ClassData, ProviderData};
use costbench::route::policy::Policy;
use costbench::route::{ClassVerdict, RouteInput, decide, route};
use costbench::stats::rng::Rng;
use serde_json::Value;

/// Usage of every scripted answer (the openai-chat fixture): 2048 prompt tokens (1536 cached)
/// and 310 completion tokens, 2358 tokens in all.
const TOKENS: f64 = 2358.0;
/// `cheap` costs $0.1 per 1M tokens of every kind, `dear` $1.
const CHEAP_CALL: f64 = TOKENS * 0.1e-6;
const DEAR_CALL: f64 = TOKENS * 1.0e-6;
const KEY_VAR: &str = "ROUTE_TEST_API_KEY";
const SECRET: &str = "sk-route-test-secret-0123456789";

/// A suite over `n` tasks whose right answer is `right`, with the given graders.
fn suite(n: usize, graders: &str) -> String {
    let mut s = format!(
        "suite: s\nworkload: test\nquality_threshold: 0.5\nrepeats: 1\n\
         prompt:\n  user: \"task {{{{ q }}}}\"\n\
         params: {{temperature: 0, max_tokens: 16}}\n\
         graders:\n{graders}\ntasks:\n"
    );
    for i in 0..n {
        s.push_str(&format!(
            "  - {{id: t{i}, vars: {{q: t{i}, answer: right}}}}\n"
        ));
    }
    s
}

/// A format check that can run at serving time, then the reference check.
const RUNTIME_GRADERS: &str = "  - {type: regex, pattern: \"^(right|wrong)$\", runtime: true}\n  - {type: contains, value: \"{{ answer }}\"}";
/// The same checks, neither marked runtime: an `equals` against the reference cannot be one.
const NO_RUNTIME_GRADERS: &str =
    "  - {type: regex, pattern: \"^(right|wrong)$\"}\n  - {type: equals, value: \"{{ answer }}\"}";

/// `cheap` answers `right` on tasks 0–41, garbage (failing the runtime check) on 42–53 and
/// `wrong` (passing it, rejected by the reference) on 54–59; `dear` is always right.
fn cheap_answer(i: usize) -> &'static str {
    match i {
        0..=41 => "right",
        42..=53 => "garbage",
        _ => "wrong",
    }
}

struct Setup {
    ws: Workspace,
    _servers: Vec<ScriptServer>,
}

fn setup(graders: &str) -> Setup {
    let n = 60;
    let answers = |f: &dyn Fn(usize) -> &'static str| -> Vec<(String, &'static str)> {
        (0..n).map(|i| (format!("t{i}"), f(i))).collect()
    };
    let refs = |v: &[(String, &'static str)]| -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.clone(), b.to_string())).collect()
    };
    let cheap = refs(&answers(&cheap_answer));
    let dear = refs(&answers(&|_| "right"));
    let server = |v: Vec<(String, String)>| {
        let r: Vec<(&str, &str)> = v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        ScriptServer::start(answer_with(&r))
    };
    let (a, b) = (server(cheap), server(dear));
    let ws = Workspace::new();
    let s = ws.write("suite.yaml", &suite(n, graders));
    let p = ws.write(
        "providers.yaml",
        &providers_yaml(&[
            Provider::new("cheap", &a.base_url())
                .price(Some("{input: 0.1, cached_input: 0.1, output: 0.1}"))
                .api_key_env(KEY_VAR)
                .max_concurrency(16),
            Provider::new("dear", &b.base_url())
                .price(Some("{input: 1, cached_input: 1, output: 1}"))
                .api_key_env(KEY_VAR)
                .max_concurrency(16),
        ]),
    );
    let mut c = ws.cmd();
    c.env(KEY_VAR, SECRET)
        .arg("run")
        .arg(&s)
        .arg("--providers")
        .arg(&p)
        .args(["--no-progress", "--format", "json"]);
    Out::of(c.output().expect("run costbench")).assert_code(0);
    Setup {
        ws,
        _servers: vec![a, b],
    }
}

const POLICY: &str = "classes:\n  test:\n    quality_threshold: 0.7\n    monthly_volume: 100000\n    incumbent: dear\n";

fn route_cmd(ws: &Workspace, args: &[&str]) -> Out {
    let mut c = ws.cmd();
    c.arg("route").args(args);
    Out::of(c.output().expect("run costbench route"))
}

fn route_json(ws: &Workspace, policy: &Path) -> Value {
    let out = route_cmd(
        ws,
        &["--policy", policy.to_str().unwrap(), "--format", "json"],
    );
    out.assert_code(0);
    out.json()
}

fn close(v: &Value, expected: f64, rel: f64) {
    let x = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert!(
        (x - expected).abs() <= rel * expected.abs(),
        "{x} is not within {rel} of {expected}"
    );
}

#[test]
fn a_cascade_escalates_on_the_runtime_check_and_pays_every_step() {
    let s = setup(RUNTIME_GRADERS);
    let policy = s.ws.write("policy.yaml", POLICY);
    let j = route_json(&s.ws, &policy);
    let c = &j["classes"][0];
    assert_eq!(c["workload"], "test");
    assert_eq!(c["tasks"], 60);
    assert_eq!(c["threshold_source"], "policy");
    let choice = &c["choice"];
    assert_eq!(choice["kind"], "cascade", "{c:#}");
    assert_eq!(choice["providers"], serde_json::json!(["cheap", "dear"]));
    // Hand-computed: 60 cheap calls, 12 escalations (the garbage answers) to dear; the 6 `wrong`
    // answers pass the runtime check, stay final and are rejected: 54 of 60 accepted.
    close(&choice["acceptance"]["rate"], 54.0 / 60.0, 1e-12);
    close(&choice["escalated_share"], 12.0 / 60.0, 1e-12);
    let cost = 60.0 * CHEAP_CALL + 12.0 * DEAR_CALL;
    close(
        &choice["cost_per_accepted_usd"]["estimate"],
        cost / 54.0,
        1e-9,
    );
    close(&choice["cost_per_request_usd"], cost / 60.0, 1e-9);
    let (lo, hi) = (
        choice["cost_per_accepted_usd"]["low"].as_f64().unwrap(),
        choice["cost_per_accepted_usd"]["high"].as_f64().unwrap(),
    );
    assert!(lo <= cost / 54.0 && cost / 54.0 <= hi);
    assert_eq!(
        choice["cost_per_accepted_usd"]["method"],
        "studentized-bootstrap-log"
    );
    // 42/60 accepted alone: its Wilson lower bound (0.574) is under 0.7.
    let rejected = c["rejected"].as_array().unwrap();
    let reason = |name: &str| {
        rejected
            .iter()
            .find(|r| r["candidate"] == name)
            .map(|r| r["reason"].as_str().unwrap().to_string())
    };
    assert!(
        reason("cheap").unwrap().starts_with("below threshold"),
        "{rejected:?}"
    );
    // dear qualifies (60/60) and is the fallback, not a rejection.
    assert_eq!(c["fallbacks"][0]["providers"], serde_json::json!(["dear"]));
    assert!(reason("dear").is_none());
    assert_eq!(c["verdict"], "chosen", "{c:#}");
    assert!(c["stable_share"].as_f64().unwrap() >= 0.9);
    assert_eq!(c["resample_method"], "task-bootstrap");
    // Monthly at 100,000 requests: the cascade's mean request cost vs dear's.
    let m = &c["monthly"];
    close(
        &m["recommendation_usd"]["estimate"],
        1e5 * cost / 60.0,
        1e-9,
    );
    close(&m["incumbent_usd"]["estimate"], 1e5 * DEAR_CALL, 1e-9);
    close(
        &m["saving_usd"]["estimate"],
        1e5 * (DEAR_CALL - cost / 60.0),
        1e-9,
    );
    close(
        &j["monthly_total"]["saving_usd"]["estimate"],
        1e5 * (DEAR_CALL - cost / 60.0),
        1e-9,
    );
    // Cross-validation: every task held out once, four baselines on the same tasks.
    let cv = &c["cross_validation"];
    assert_eq!(cv["folds"], 5);
    let names: Vec<&str> = cv["baselines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["best_single", "cheapest_qualifier", "round_robin", "oracle"]
    );
    // The oracle takes cheap's answer where it is right and dear's elsewhere.
    let oracle = &cv["baselines"][3];
    close(&oracle["acceptance"]["rate"], 1.0, 1e-12);
    close(
        &oracle["cost_per_accepted_usd"]["estimate"],
        (42.0 * CHEAP_CALL + 18.0 * DEAR_CALL) / 60.0,
        1e-9,
    );
    assert_eq!(cv["saving_vs_best_single"]["baseline"], "best_single");
    assert_eq!(
        cv["saving_vs_best_single"]["difference_usd"]["method"],
        "paired-bca-bootstrap"
    );
}

#[test]
fn without_a_runtime_check_no_cascade_is_simulated() {
    // The regex and an `equals` against the reference: neither can decide at serving time.
    let s = setup(NO_RUNTIME_GRADERS);
    let policy = s.ws.write("policy.yaml", POLICY);
    let j = route_json(&s.ws, &policy);
    let c = &j["classes"][0];
    let all: Vec<&Value> = c["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .chain(c["fallbacks"].as_array().unwrap())
        .chain(std::iter::once(&c["choice"]))
        .collect();
    assert!(
        !all.iter()
            .any(|v| v.to_string().contains("->") || v["kind"] == "cascade"),
        "{c:#}"
    );
    assert_eq!(c["choice"]["providers"], serde_json::json!(["dear"]));
    assert!(
        c["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("no cascades")),
        "{c:#}"
    );
}

#[test]
fn runtime_on_a_grader_that_reads_the_reference_is_refused() {
    let ws = Workspace::new();
    let s = ws.write(
        "suite.yaml",
        &suite(
            2,
            "  - {type: equals, value: \"{{ answer }}\", runtime: true}\n  - {type: regex, pattern: x, runtime: maybe}",
        ),
    );
    let mut c = ws.cmd();
    c.arg("validate").arg(&s);
    let out = Out::of(c.output().unwrap());
    out.assert_code(2);
    assert!(
        out.stderr.contains("graders[0].runtime: a equals grader that reads the task's variables (answer) cannot run at serving time"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("graders[1].runtime: `runtime` must be true or false"),
        "{out}"
    );
}

/// Reads a YAML file as JSON values.
fn yaml(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", p.display()))
}

#[test]
fn the_litellm_export_has_the_fields_litellm_reads_and_no_key() {
    let s = setup(RUNTIME_GRADERS);
    let policy = s.ws.write("policy.yaml", POLICY);
    let out_file = s.ws.path("gateway/litellm.yaml");
    std::fs::create_dir_all(out_file.parent().unwrap()).unwrap();
    let out = route_cmd(
        &s.ws,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--format",
            "litellm",
            "--out",
            out_file.to_str().unwrap(),
        ],
    );
    out.assert_code(0);
    let side: PathBuf = s.ws.path("gateway/litellm.cascade.yaml");
    assert!(
        out.stderr.contains("cannot express") && out.stderr.contains("litellm.cascade.yaml"),
        "{out}"
    );
    let text = std::fs::read_to_string(&out_file).unwrap();
    let side_text = std::fs::read_to_string(&side).unwrap();
    assert!(!text.contains(SECRET) && !side_text.contains(SECRET));
    // The header says the cascade is in the separate file.
    assert!(text.starts_with("# Generated by costbench route"), "{text}");
    assert!(text.contains("cascade policy file"), "{text}");
    let cfg = yaml(&out_file);
    let list = cfg["model_list"].as_array().unwrap();
    let entry = |alias: &str| {
        list.iter()
            .find(|e| e["model_name"] == alias)
            .unwrap_or_else(|| panic!("no {alias} in {cfg:#}"))
    };
    // routing-formats.md (a): model_name alias; litellm_params model `provider/model`,
    // api_base, api_key `os.environ/VAR`, per-token price overrides in litellm_params.
    let primary = &entry("wl/test")["litellm_params"];
    assert_eq!(primary["model"], "openai/test-model");
    assert!(
        primary["api_base"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    assert_eq!(primary["api_key"], format!("os.environ/{KEY_VAR}"));
    close(&primary["input_cost_per_token"], 0.1e-6, 1e-12);
    close(&primary["output_cost_per_token"], 0.1e-6, 1e-12);
    close(&primary["cache_read_input_token_cost"], 0.1e-6, 1e-12);
    // The cascade's second step has its own alias, at dear's prices.
    let step2 = &entry("wl/test-step-2")["litellm_params"];
    close(&step2["input_cost_per_token"], 1e-6, 1e-12);
    assert_eq!(step2["api_key"], format!("os.environ/{KEY_VAR}"));
    // Fallbacks are a list of {alias: [aliases]}, every target an alias of the model list.
    let fb = cfg["router_settings"]["fallbacks"].as_array().unwrap();
    assert_eq!(fb.len(), 1);
    let targets = fb[0]["wl/test"].as_array().unwrap();
    assert_eq!(targets[0], "wl/test-step-2");
    for t in targets {
        entry(t.as_str().unwrap());
    }
    assert_eq!(cfg["router_settings"]["routing_strategy"], "simple-shuffle");
    // The cascade policy: steps in order, the escalation rule, the expected figures.
    let cascade = yaml(&side);
    let c = &cascade["cascades"][0];
    assert_eq!(c["class"], "test");
    assert_eq!(c["steps"][0]["alias"], "wl/test");
    assert_eq!(c["steps"][1]["provider"], "dear");
    assert!(
        c["escalate_when"]
            .as_str()
            .unwrap()
            .contains("runtime: true")
    );
    close(&c["expected"]["acceptance"], 0.9, 1e-12);
}

#[test]
fn the_other_formats_render_the_same_choice() {
    let s = setup(RUNTIME_GRADERS);
    let policy = s.ws.write("policy.yaml", POLICY);
    let p = policy.to_str().unwrap();
    let y = route_cmd(&s.ws, &["--policy", p]);
    y.assert_code(0);
    let v: Value = serde_saphyr::from_str(&y.stdout).unwrap();
    assert_eq!(v["classes"][0]["verdict"], "chosen");
    assert_eq!(v["classes"][0]["choice"]["name"], "cheap -> dear");
    let pk = route_cmd(&s.ws, &["--policy", p, "--format", "portkey"]);
    pk.assert_code(0);
    let pk = pk.json();
    assert_eq!(pk["strategy"]["mode"], "conditional");
    let t = &pk["targets"][0];
    assert_eq!(t["name"], "test");
    assert_eq!(t["strategy"]["mode"], "fallback");
    assert!(
        t["strategy"]["on_status_codes"]
            .as_array()
            .unwrap()
            .contains(&446.into())
    );
    assert_eq!(t["targets"][0]["provider"], "@cheap");
    assert_eq!(t["targets"][1]["provider"], "@dear");
    let md = route_cmd(&s.ws, &["--policy", p, "--format", "md"]);
    md.assert_code(0);
    assert!(
        md.stdout.contains("| test | chosen | cheap -> dear |"),
        "{}",
        md.stdout
    );
    assert!(md.stdout.contains("round_robin"), "{}", md.stdout);

    // The report's markdown and HTML summaries open with the same recommendation.
    let report = |format: &str| {
        let mut c = s.ws.cmd();
        c.args(["report", "--format", format, "--policy", p]);
        let out = Out::of(c.output().expect("run costbench report"));
        out.assert_code(0);
        out.stdout
    };
    let md = report("md");
    assert!(md.contains("- workload `test`: cheap -> dear at $"), "{md}");
    let routing = md
        .find("**Routing recommendation**")
        .expect("a recommendation");
    assert!(routing < md.find("| suite |").expect("the table"), "{md}");
    let html = report("html");
    assert!(
        html.contains("<span data-k=\"recommendation\">cheap -&gt; dear at $"),
        "{}",
        &html[..html.len().min(4000)]
    );
}

#[test]
fn policy_names_the_runs_do_not_know_are_errors_with_the_fix() {
    let s = setup(RUNTIME_GRADERS);
    let cases = [
        (
            "classes:\n  premium:\n    quality_threshold: 0.9\n",
            "policy.yaml:2:3: classes.premium: unknown workload class `premium`: the runs have `test`",
        ),
        (
            "classes:\n  test:\n    required_tags: {jurisdiction: [us, eu]}\n",
            "classes.test.required_tags.jurisdiction: unknown tag `jurisdiction`",
        ),
        (
            "classes:\n  test:\n    incumbent: gpt-9\n",
            "classes.test.incumbent: unknown provider id `gpt-9`: the runs have `cheap`, `dear`",
        ),
        ("stability: 2\n", "stability: must be above 0.5 and below 1"),
    ];
    for (yaml, message) in cases {
        let p = s.ws.write("policy.yaml", yaml);
        let out = route_cmd(&s.ws, &["--policy", p.to_str().unwrap()]);
        out.assert_code(2);
        assert!(out.stderr.contains(message), "{yaml}\n{out}");
    }
}

// ------------------------------------------------------------------------------------------
// Seeded simulation of the choice
// ------------------------------------------------------------------------------------------

/// One simulated class: providers with known true acceptance and mean cost per call (log-normal
/// costs, σ = 0.5), no rejection cost, so the true cost per accepted is mean cost / acceptance.
fn simulated(rng: &mut Rng, n: usize, truth: &[(f64, f64)]) -> ClassData {
    let providers = truth
        .iter()
        .enumerate()
        .map(|(j, &(p, mean))| {
            // E[exp(σZ)] = exp(σ²/2): scale so the mean cost is `mean`.
            let scale = mean / (0.125f64).exp();
            let cost: Vec<f64> = (0..n).map(|_| scale * (0.5 * rng.normal()).exp()).collect();
            let accepted: Vec<bool> = (0..n).map(|_| rng.bernoulli(p)).collect();
            ProviderData {
                id: format!("p{j}"),
                tags: BTreeMap::new(),
                runtime_ok: accepted.clone(),
                accepted,
                cost,
                latency_ms: vec![100.0; n],
                unpriced_calls: 0,
                priced: true,
            }
        })
        .collect();
    ClassData {
        workload: "sim".into(),
        suites: vec!["sim".into()],
        suite_threshold: Some(0.8),
        has_runtime: false,
        cluster_start: (0..=n).collect(),
        rejection: vec![0.0; n],
        providers,
        excluded: Vec::new(),
        dropped_items: 0,
    }
}

#[test]
fn simulated_suites_pick_a_truly_cheapest_qualifier_or_say_no_clear_winner() {
    let mut rng = Rng::new(20261130);
    let opts = AnalysisOptions {
        confidence: 0.95,
        bootstrap: 200,
        seed: 7,
    };
    let policy = Policy {
        resamples: 400,
        ..Policy::default()
    };
    let (mut with_qualifier, mut good, mut confident_wrong, mut unclear) = (0, 0, 0, 0);
    for s in 0..500 {
        // Four providers; qualifying ones accept 0.88–0.98, the others 0.50–0.72, against a
        // threshold of 0.80; one suite in five has no qualifier at all.
        let none = s % 5 == 0;
        let truth: Vec<(f64, f64)> = (0..4)
            .map(|j| {
                let qualifies = !none && (j < 2 || rng.bernoulli(0.5));
                let p = if qualifies {
                    0.88 + 0.10 * rng.uniform()
                } else {
                    0.50 + 0.22 * rng.uniform()
                };
                (p, 10f64.powf(-4.0 + 2.0 * rng.uniform()))
            })
            .collect();
        let class = simulated(&mut rng, 300, &truth);
        let c = decide(&class, &policy, &opts, 0);
        if s < 10 {
            // `decide` is `route`'s decision without its figures: the same on full routes.
            let input = RouteInput {
                runs: Vec::new(),
                classes: vec![class],
                providers: Vec::new(),
                tags: BTreeMap::new(),
            };
            let full = &route(&input, &policy, &opts).classes[0];
            assert_eq!(full.verdict, c.verdict);
            assert_eq!(full.stable_share, c.stable_share);
            assert_eq!(
                full.choice.as_ref().map(|f| &f.providers),
                c.choice.as_ref()
            );
        }
        let true_cpa = |j: usize| truth[j].1 / truth[j].0;
        let best = (0..4)
            .filter(|&j| truth[j].0 >= 0.8)
            .map(true_cpa)
            .min_by(f64::total_cmp);
        let pick = c
            .choice
            .as_ref()
            .map(|f| f[0][1..].parse::<usize>().unwrap());
        let ok = match (best, pick) {
            (Some(b), Some(j)) => truth[j].0 >= 0.8 && true_cpa(j) <= 1.05 * b,
            _ => false,
        };
        if best.is_some() {
            with_qualifier += 1;
            good += usize::from(ok);
        }
        if c.verdict == ClassVerdict::Chosen && !ok {
            confident_wrong += 1;
        }
        unclear += usize::from(c.verdict == ClassVerdict::NoClearWinner);
    }
    eprintln!(
        "{good} of {with_qualifier} suites with a true qualifier picked within 5%; {unclear} no clear winner; {confident_wrong} confident wrong picks"
    );
    assert!(good as f64 >= 0.95 * with_qualifier as f64);
    assert_eq!(confident_wrong, 0);
}
