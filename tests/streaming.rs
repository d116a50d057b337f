//! `stream: true`: answers read as server-sent events from loopback servers that pace their
//! chunks, for each protocol: usage from the stream and its exact cost, time to first token,
//! error events after a 200, streams without usage or cut short, and replay without streaming.

mod common;

use common::*;
use serde_json::{Value, json};

/// One providers-file entry that streams.
fn streaming(id: &str, protocol: &str, base_url: &str, price: &str, retries: u32) -> String {
    format!(
        "  - id: {id}\n    protocol: {protocol}\n    base_url: {base_url}\n    model: test-model\n    \
         price: {price}\n    stream: true\n    max_concurrency: 2\n    timeout_s: 20\n    \
         retry: {{max_retries: {retries}, base_delay_ms: 10, max_delay_ms: 20}}\n"
    )
}

/// The server's base URL without the `/v1` Chat Completions wants (Anthropic, Gemini).
fn host(server: &ScriptServer) -> String {
    server.base_url().trim_end_matches("/v1").to_string()
}

/// Events sent at once.
fn now(events: &[String]) -> Vec<(u64, String)> {
    events.iter().map(|e| (0, e.clone())).collect()
}

fn sse(event: Option<&str>, data: &Value) -> String {
    match event {
        Some(e) => format!("event: {e}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

/// A Chat Completions server answering every request with `chunks`, and a workspace whose
/// suite (task `t1`, answer `Hello`) and one streaming provider `p` at [`CHAT_PRICE`] point at it.
fn chat_stream(
    chunks: Vec<(u64, String)>,
    complete: bool,
) -> (
    ScriptServer,
    Workspace,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let server = ScriptServer::start(move |_, _| Reply::Sse {
        chunks: chunks.clone(),
        complete,
    });
    let ws = Workspace::new();
    let (suite, provs) = setup(
        &ws,
        "Hello",
        &[streaming("p", "openai", &server.base_url(), CHAT_PRICE, 0)],
    );
    (server, ws, suite, provs)
}

const CHAT_PRICE: &str = "{input: 0.40, cached_input: 0.10, output: 1.60}";

fn setup(
    ws: &Workspace,
    answer: &str,
    providers: &[String],
) -> (std::path::PathBuf, std::path::PathBuf) {
    let suite = ws.write("suite.yaml", &suite_yaml("s", &[("t1", answer)]));
    let provs = ws.write(
        "providers.yaml",
        &format!("providers:\n{}", providers.concat()),
    );
    (suite, provs)
}

#[test]
fn openai_usage_comes_from_the_stream_at_its_exact_cost_and_ttft_is_recorded() {
    // The first content chunk comes 120 ms after the role chunk, the second 120 ms later.
    let paced: Vec<(u64, String)> = sse_events("openai-chat-stream.sse")
        .into_iter()
        .enumerate()
        .map(|(i, e)| (if i == 1 || i == 2 { 120 } else { 0 }, e))
        .collect();
    let (server, ws, suite, provs) = chat_stream(paced, true);
    let out = ws.run(&[&suite], &provs, &[]);
    out.assert_code(0);

    let sent = &server.requests()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.body["stream"], json!(true));
    assert_eq!(sent.body["stream_options"], json!({"include_usage": true}));

    let a = &ws.attempts()[0];
    assert!(a.answered, "{a:?}");
    assert_eq!(a.output.as_deref(), Some("Hello world."));
    // prompt 1200 of which 1024 cached; completion 76 of which 64 reasoning.
    assert_eq!(
        (
            a.input_tokens,
            a.cached_tokens,
            a.output_tokens,
            a.reasoning_tokens
        ),
        (176, 1024, 76, 64)
    );
    // 176 × 0.40 + 1024 × 0.10 + 76 × 1.60 = 294.4 USD per 1M tokens.
    assert_eq!(a.cost_femto, Some(294_400_000_000));
    let ttft = a
        .ttft_ms
        .expect("a streamed answer records its time to first token");
    assert!(
        ttft >= 120.0,
        "ttft {ttft} ms is before the first content chunk"
    );
    assert!(
        a.latency_ms >= ttft + 100.0,
        "latency {} ms ends at the last chunk, 120 ms after the first token at {ttft} ms",
        a.latency_ms
    );
    let report = out.json();
    let r = row(&report, "p");
    assert!(r["ttft_ms"]["p50"].as_f64().unwrap() >= 120.0, "{r}");
    assert_eq!(r["ttft_ms"]["p95"], r["ttft_ms"]["p50"], "one call: {r}");
}

#[test]
fn anthropic_usage_is_the_last_message_delta_at_its_exact_cost() {
    let events = sse_events("anthropic-messages-stream.sse");
    let server = ScriptServer::start(move |_, _| Reply::Sse {
        chunks: now(&events),
        complete: true,
    });
    let ws = Workspace::new();
    let price = "{input: 3, cached_input: 0.30, cache_write: 3.75, output: 15}";
    let (suite, provs) = setup(
        &ws,
        "Hello",
        &[streaming("claude", "anthropic", &host(&server), price, 0)],
    );
    ws.run(&[&suite], &provs, &[]).assert_code(0);
    let sent = &server.requests()[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.body["stream"], json!(true));
    let a = &ws.attempts()[0];
    assert_eq!(a.output.as_deref(), Some("Hello world."));
    // output 9 from message_delta, not message_start's placeholder 1.
    assert_eq!(
        (a.input_tokens, a.cached_tokens, a.output_tokens),
        (312, 10240, 9)
    );
    // 312 × 3 + 10240 × 0.30 + 9 × 15 = 4143 USD per 1M tokens.
    assert_eq!(a.cost_femto, Some(4_143_000_000_000));
    assert!(a.ttft_ms.is_some_and(|t| t > 0.0), "{a:?}");
}

#[test]
fn gemini_streams_from_its_sse_endpoint_and_takes_the_last_usage() {
    let events = sse_events("gemini-stream.sse");
    let server = ScriptServer::start(move |_, _| Reply::Sse {
        chunks: now(&events),
        complete: true,
    });
    let ws = Workspace::new();
    let (suite, provs) = setup(
        &ws,
        "Hello",
        &[streaming(
            "gem",
            "gemini",
            &host(&server),
            "{input: 0.30, output: 2.50}",
            0,
        )],
    );
    ws.run(&[&suite], &provs, &[]).assert_code(0);
    let sent = &server.requests()[0];
    assert_eq!(
        sent.path,
        "/v1beta/models/test-model:streamGenerateContent?alt=sse"
    );
    assert!(
        sent.body.get("stream").is_none(),
        "the URL asks for the stream"
    );
    let a = &ws.attempts()[0];
    assert_eq!(a.output.as_deref(), Some("Hello world."));
    // candidates 4 + thoughts 250 from the last chunk; 900 × 0.30 + 254 × 2.50 = 905.
    assert_eq!((a.input_tokens, a.output_tokens), (900, 254));
    assert_eq!(a.cost_femto, Some(905_000_000_000));
    assert!(a.ttft_ms.is_some());
}

#[test]
fn a_streamed_responses_answer_costs_what_the_same_answer_costs_unstreamed() {
    let resp = fixture("openai-responses.json");
    let server = ScriptServer::start(move |seen, _| {
        if seen.body["stream"] == json!(true) {
            Reply::Sse {
                chunks: now(&[
                    sse(
                        Some("response.created"),
                        &json!({"type": "response.created", "response": {"status": "in_progress"}}),
                    ),
                    sse(
                        Some("response.output_text.delta"),
                        &json!({"type": "response.output_text.delta", "delta": "x"}),
                    ),
                    sse(
                        Some("response.completed"),
                        &json!({"type": "response.completed", "response": resp}),
                    ),
                ]),
                complete: true,
            }
        } else {
            Reply::Json(200, resp.clone())
        }
    });
    let ws = Workspace::new();
    let price = "{input: 5, cached_input: 0.5, output: 30}";
    let plain = streaming("plain", "openai-responses", &server.base_url(), price, 0)
        .replace("    stream: true\n", "");
    let (suite, provs) = setup(
        &ws,
        "{",
        &[
            streaming("streamed", "openai-responses", &server.base_url(), price, 0),
            plain,
        ],
    );
    ws.run(&[&suite], &provs, &[]).assert_code(0);
    let all = ws.attempts();
    let s = tries_of(&all, "streamed", "t1")[0];
    let p = tries_of(&all, "plain", "t1")[0];
    assert!(s.cost_femto.is_some_and(|c| c > 0), "{s:?}");
    assert_eq!(s.cost_femto, p.cost_femto);
    assert_eq!(s.output, p.output);
    assert!(s.ttft_ms.is_some() && p.ttft_ms.is_none());
}

#[test]
fn an_error_event_after_the_200_is_a_failed_attempt_of_its_kind() {
    // Anthropic overloaded mid-stream, then a good stream on the retry.
    let good = sse_events("anthropic-messages-stream.sse");
    let server = ScriptServer::start(move |_, nth| {
        if nth == 0 {
            Reply::Sse {
                chunks: now(&[
                    good[0].clone(),
                    sse(
                        Some("error"),
                        &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                    ),
                ]),
                complete: true,
            }
        } else {
            Reply::Sse {
                chunks: now(&good),
                complete: true,
            }
        }
    });
    let ws = Workspace::new();
    let price = "{input: 3, cached_input: 0.30, output: 15}";
    let (suite, provs) = setup(
        &ws,
        "Hello",
        &[streaming("claude", "anthropic", &host(&server), price, 1)],
    );
    let out = ws.run(&[&suite], &provs, &[]);
    out.assert_code(0);
    let all = ws.attempts();
    let tries = tries_of(&all, "claude", "t1");
    assert_eq!(kinds(&tries), vec![Some("overloaded".into()), None]);
    let failed = tries[0];
    assert_eq!(failed.http_status, Some(200));
    assert!(!failed.answered);
    // The provider may have billed what it generated before the error: unknown, not 0.
    assert_eq!(failed.cost_femto, None);
    assert!(
        failed
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("after HTTP 200") && m.contains("Overloaded")),
        "{failed:?}"
    );
    let report = out.json();
    let r = row(&report, "claude");
    assert_eq!(r["failures"]["overloaded"]["count"], 1);
    assert_eq!(r["error_rates"]["overloaded"], 0.5);
    assert_eq!(r["error_rates"]["rate_limited"], 0.0);
    assert_eq!(r["retries"], 1);
}

#[test]
fn an_openrouter_error_chunk_fails_the_attempt() {
    let server = ScriptServer::start(|_, _| Reply::Sse {
        chunks: now(&[
            sse(
                None,
                &json!({"id": "gen-1", "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": null}]}),
            ),
            sse(
                None,
                &json!({"id": "gen-1", "error": {"code": 502, "message": "Provider returned error"},
                        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]}),
            ),
        ]),
        complete: true,
    });
    let ws = Workspace::new();
    let (suite, provs) = setup(
        &ws,
        "Hello",
        &[streaming(
            "or",
            "openai",
            &server.base_url(),
            "{input: 1, output: 2}",
            0,
        )],
    );
    // The one outcome got no answer: above the default --max-failed-share of 0.
    let out = ws.run(&[&suite], &provs, &[]);
    out.assert_code(4);
    let a = &ws.attempts()[0];
    assert_eq!(a.error_kind.as_deref(), Some("server_error"));
    assert!(!a.answered && a.cost_femto.is_none(), "{a:?}");
    assert!(
        a.error_message
            .as_deref()
            .is_some_and(|m| m.contains("502") && m.contains("Provider returned error")),
        "{a:?}"
    );
}

#[test]
fn a_stream_that_ends_without_usage_has_an_unknown_bounded_cost_not_zero() {
    let mut events = sse_events("openai-chat-stream.sse");
    // Drop the usage chunk (the one before [DONE]): a server ignoring include_usage.
    events.remove(events.len() - 2);
    let (_server, ws, suite, provs) = chat_stream(now(&events), true);
    let out = ws.run(&[&suite], &provs, &[]);
    out.assert_code(0);
    let a = &ws.attempts()[0];
    assert!(a.answered && !a.usage_known, "{a:?}");
    assert_eq!(a.cost_femto, None);
    assert!(
        a.error_message
            .as_deref()
            .is_some_and(|m| m.contains("without usage")),
        "{a:?}"
    );
    let report = out.json();
    let r = row(&report, "p");
    assert_eq!(r["unpriced_calls"], 1);
    assert_eq!(r["cost_usd"]["tokens"], Value::Null, "never 0: {r}");
    assert!(
        r["cost_usd"]["unknown_max"]
            .as_f64()
            .is_some_and(|m| m > 0.0),
        "bounded by the prompt and max_tokens: {r}"
    );
}

#[test]
fn a_stream_cut_short_is_a_broken_connection_of_unknown_cost() {
    let events = sse_events("openai-chat-stream.sse");
    let (_server, ws, suite, provs) = chat_stream(now(&events[..2]), false);
    ws.run(&[&suite], &provs, &[]).assert_code(4);
    let a = &ws.attempts()[0];
    assert_eq!(a.error_kind.as_deref(), Some("connection"));
    assert!(!a.answered && a.cost_femto.is_none(), "{a:?}");
}

#[test]
fn a_streamed_answer_replays_from_its_cassette_without_streaming() {
    let events = sse_events("openai-chat-stream.sse");
    let (server, ws, suite, provs) = chat_stream(now(&events), true);
    let cassette = ws.path("cassette.jsonl");
    let cassette_arg = cassette.to_str().unwrap();
    ws.run(&[&suite], &provs, &["--cassette", cassette_arg])
        .assert_code(0);
    // The cassette holds the assembled answer, not the events.
    let line: Value =
        serde_json::from_str(std::fs::read_to_string(&cassette).unwrap().trim()).unwrap();
    let recorded = &line["response"];
    assert_eq!(recorded["object"], "chat.completion");
    assert_eq!(recorded["choices"][0]["message"]["content"], "Hello world.");
    assert!(
        line["request"].get("stream").is_none(),
        "keyed by the plain request: {line}"
    );

    // Another database, the same provider without streaming, replay only.
    let plain = ws.write(
        "plain.yaml",
        &std::fs::read_to_string(&provs)
            .unwrap()
            .replace("    stream: true\n", ""),
    );
    let db2 = ws.path("replay.db");
    let out = Out::of(
        ws.cmd_with_db(&db2)
            .args(["run", suite.to_str().unwrap(), "--providers"])
            .arg(&plain)
            .args(["--no-progress", "--format", "json", "--cache", "replay"])
            .args(["--cassette", cassette_arg])
            .output()
            .unwrap(),
    );
    out.assert_code(0);
    assert_eq!(server.requests().len(), 1, "replay made no call");
    let a = &attempts(&db2)[0];
    assert!(a.replayed && a.answered, "{a:?}");
    assert_eq!(a.output.as_deref(), Some("Hello world."));
    assert_eq!(a.cost_femto, Some(294_400_000_000));
}
