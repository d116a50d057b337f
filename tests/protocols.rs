//! The Anthropic and Gemini protocols end to end against loopback servers speaking their wire
//! formats: the request each one sends (path, key header, body shape), cache reads and writes,
//! thinking tokens and `repeats > 1`, each priced exactly from the built-in catalog.

mod common;

use common::*;
use serde_json::{Value, json};

/// A providers file with one entry of `protocol`, its key in `PROTO_TEST_KEY`, priced from
/// the catalog. Anthropic and Gemini append their own versioned path to the server's root.
fn providers(protocol: &str, base_url: &str, model: &str) -> String {
    let base_url = match protocol {
        "anthropic" | "gemini" => base_url.trim_end_matches("/v1"),
        _ => base_url,
    };
    format!(
        "providers:\n  - id: p\n    protocol: {protocol}\n    base_url: {base_url}\n    \
         model: {model}\n    api_key_env: PROTO_TEST_KEY\n    price: catalog\n    \
         retry: {{max_retries: 0}}\n"
    )
}

/// Runs a two-task suite with `repeats: 2` against a server answering `body` every time.
fn run(protocol: &str, model: &str, body: Value) -> (Out, Value, Vec<Seen>, Vec<Attempt>) {
    let server = ScriptServer::start(move |_, _| Reply::Json(200, body.clone()));
    let ws = Workspace::new();
    let suite = suite_yaml("s", &[("t1", "42"), ("t2", "42")]).replace("repeats: 1", "repeats: 2");
    let suite = ws.write("suite.yaml", &suite);
    let provs = ws.write(
        "providers.yaml",
        &providers(protocol, &server.base_url(), model),
    );
    let mut c = ws.cmd();
    c.env("PROTO_TEST_KEY", "sk-proto-secret")
        .arg("run")
        .arg(&suite)
        .arg("--providers")
        .arg(&provs)
        .args(["--no-progress", "--format", "json"]);
    let out = Out::of(c.output().expect("run costbench"));
    out.assert_code(0);
    let report = out.json();
    (out, report, server.requests(), ws.attempts())
}

fn header<'a>(s: &'a Seen, name: &str) -> Option<&'a str> {
    s.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

// anthropic-messages.json: input 312, cache reads 8192, 5-minute cache writes 2048, output 187.
// claude-sonnet-4-6 from the catalog: 3 / 0.30 read / 3.75 write / 15 per 1M:
//   312 × 3 + 8192 × 0.30 + 2048 × 3.75 + 187 × 15 = 936 + 2457.6 + 7680 + 2805 = 13,878.6 per 1M
//   calls = $0.0138786 per call; 4 calls (2 tasks × 2 repeats).
#[test]
fn anthropic_cache_reads_and_writes_with_repeats() {
    let (_, report, seen, attempts) = run(
        "anthropic",
        "claude-sonnet-4-6",
        fixture("anthropic-messages.json"),
    );
    assert_eq!(seen.len(), 4);
    for s in &seen {
        assert_eq!(s.path, "/v1/messages");
        assert_eq!(header(s, "x-api-key"), Some("sk-proto-secret"));
        assert_eq!(header(s, "anthropic-version"), Some("2023-06-01"));
        // The system prompt goes in `system`, not as a message; max_tokens is required.
        assert_eq!(s.body["system"], json!("Answer briefly."));
        assert_eq!(s.body["messages"][0]["role"], json!("user"));
        assert_eq!(s.body["max_tokens"], json!(16));
    }
    assert_eq!(attempts.len(), 4);
    for a in &attempts {
        assert_eq!(a.cost_femto, Some(13_878_600_000_000), "{a:?}");
        assert_eq!(
            (a.input_tokens, a.cached_tokens, a.output_tokens),
            (312, 8192, 187)
        );
    }
    let r = row(&report, "p");
    assert_eq!(r["accepted"], json!(4));
    assert_eq!(r["tokens"]["cache_write"], json!(4 * 2048));
    assert_close(&r["cost_usd"]["tokens"], 4.0 * 0.0138786, 1e-12);
    assert_close(&r["cost_per_accepted_usd"], 0.0138786, 1e-12);
}

// The same answer with half its writes to the 1-hour cache and 100 thinking tokens (inside
// output_tokens, which stays the billed total): 1024 × 3.75 + 1024 × 6 replaces 2048 × 3.75:
//   936 + 2457.6 + 3840 + 6144 + 2805 = 16,182.6 per 1M calls.
#[test]
fn anthropic_one_hour_writes_and_thinking_tokens() {
    let mut body = fixture("anthropic-messages.json");
    body["usage"]["cache_creation"] = json!({
        "ephemeral_5m_input_tokens": 1024, "ephemeral_1h_input_tokens": 1024});
    body["usage"]["output_tokens_details"] = json!({"thinking_tokens": 100});
    let (_, report, _, attempts) = run("anthropic", "claude-sonnet-4-6", body);
    for a in &attempts {
        assert_eq!(a.cost_femto, Some(16_182_600_000_000), "{a:?}");
        assert_eq!((a.output_tokens, a.reasoning_tokens), (187, 100));
    }
    assert_eq!(row(&report, "p")["tokens"]["reasoning"], json!(400));
}

// gemini-generate.json: promptTokenCount 4210 of which 4000 cached, 120 candidates + 380
// thoughts (billed as output). gemini-2.5-flash from the catalog: 0.30 / 0.03 cached / 2.50:
//   210 × 0.30 + 4000 × 0.03 + 500 × 2.50 = 63 + 120 + 1250 = 1,433 per 1M calls.
#[test]
fn gemini_cached_content_and_thoughts_with_repeats() {
    let (_, report, seen, attempts) = run(
        "gemini",
        "gemini-2.5-flash",
        fixture("gemini-generate.json"),
    );
    assert_eq!(seen.len(), 4);
    for s in &seen {
        assert_eq!(s.path, "/v1beta/models/gemini-2.5-flash:generateContent");
        assert_eq!(header(s, "x-goog-api-key"), Some("sk-proto-secret"));
        assert_eq!(
            s.body["systemInstruction"]["parts"][0]["text"],
            json!("Answer briefly.")
        );
        assert_eq!(s.body["generationConfig"]["maxOutputTokens"], json!(16));
    }
    for a in &attempts {
        assert_eq!(a.cost_femto, Some(1_433_000_000_000), "{a:?}");
        assert_eq!(
            (
                a.input_tokens,
                a.cached_tokens,
                a.output_tokens,
                a.reasoning_tokens
            ),
            (210, 4000, 500, 380)
        );
    }
    let r = row(&report, "p");
    assert_eq!(r["accepted"], json!(4));
    assert_close(&r["cost_per_accepted_usd"], 0.001433, 1e-12);
}

// Gemini names the tier that served a priority request in a header: a call that fell back to
// standard is priced at standard. gemini-3.8-flash lists priority at 1.35 / 6.75 vs 0.75 / 3.75
// (no cached priority rate in the catalog, so the cached tokens are dropped from the fixture):
//   priority: 4210 × 1.35 + 500 × 6.75 = 5683.5 + 3375 = 9058.5; standard: 3157.5 + 1875 = 5032.5.
#[test]
fn gemini_priority_is_priced_as_the_header_says_it_was_served() {
    for (tier, femto) in [
        ("priority", 9_058_500_000_000i64),
        ("standard", 5_032_500_000_000),
    ] {
        let mut body = fixture("gemini-generate.json");
        body["usageMetadata"]
            .as_object_mut()
            .unwrap()
            .remove("cachedContentTokenCount");
        let server = ScriptServer::start(move |_, _| Reply::Bytes {
            status: 200,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-gemini-service-tier".into(), tier.into()),
            ],
            body: body.to_string().into_bytes(),
        });
        let ws = Workspace::new();
        let suite = ws.write("suite.yaml", &suite_yaml("s", &[("t1", "42")]));
        let provs = ws.write(
            "providers.yaml",
            &providers("gemini", &server.base_url(), "gemini-3.8-flash"),
        );
        let mut c = ws.cmd();
        c.env("PROTO_TEST_KEY", "k")
            .arg("run")
            .arg(&suite)
            .arg("--providers")
            .arg(&provs)
            .args(["--no-progress", "--format", "json"]);
        Out::of(c.output().unwrap()).assert_code(0);
        assert_eq!(ws.attempts()[0].cost_femto, Some(femto), "{tier}");
    }
}

// openai-responses.json: input_tokens 5120 of which 4096 cached, output 900 of which 832
// reasoning. gpt-5.5 from the catalog: 5 / 0.50 cached / 30 per 1M:
//   1024 × 5 + 4096 × 0.50 + 900 × 30 = 5120 + 2048 + 27000 = 34,168 per 1M calls.
#[test]
fn openai_responses_api_end_to_end() {
    let (_, report, seen, attempts) = run(
        "openai-responses",
        "gpt-5.5",
        fixture("openai-responses.json"),
    );
    assert_eq!(seen.len(), 4);
    for s in &seen {
        assert_eq!(s.path, "/v1/responses");
        assert_eq!(header(s, "authorization"), Some("Bearer sk-proto-secret"));
        assert_eq!(s.body["instructions"], json!("Answer briefly."));
        assert_eq!(s.body["max_output_tokens"], json!(16));
        assert_eq!(s.body["store"], json!(false));
    }
    for a in &attempts {
        assert_eq!(a.cost_femto, Some(34_168_000_000_000), "{a:?}");
        assert_eq!(
            (a.input_tokens, a.cached_tokens, a.reasoning_tokens),
            (1024, 4096, 832)
        );
    }
    assert_eq!(row(&report, "p")["accepted"], json!(4));
}
