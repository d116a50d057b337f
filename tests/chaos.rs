//! Property test: whatever a provider sends back (any status, any `retry-after`,
//! `retry-after-ms` and `x-should-retry` value, any body: huge numbers, invalid UTF-8,
//! truncated JSON, absurd usage), the run neither panics nor hangs, exits 0 or 4, and stores
//! every attempt the server answered.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use proptest::prelude::*;
use serde_json::json;

fn header_value() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::of(prop::sample::select(vec![
        "0",
        "0.01",
        "1e25",
        "1e300",
        "-1",
        "NaN",
        "inf",
        "soon",
        "99999999999999999999999",
        "Wed, 21 Oct 2015 07:28:00 GMT",
        "Fri, 31 Dec 9999 23:59:59 GMT",
    ]))
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let huge_usage = {
        let mut v = chat_response("42");
        v["usage"]["prompt_tokens"] = json!(u64::MAX);
        v["usage"]["completion_tokens"] = json!(1e300);
        v.to_string().into_bytes()
    };
    prop_oneof![
        Just(chat_response("42").to_string().into_bytes()),
        Just(huge_usage),
        Just(b"{\"choices\": [{\"message\": {\"content\": \"4".to_vec()),
        Just(vec![0xff, 0xfe, 0x7b, 0x80]),
        Just(b"{\"error\": {\"message\": 1e400, \"code\": 18446744073709551616}}".to_vec()),
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    retry_after: Option<&'static str>,
    retry_after_ms: Option<&'static str>,
    should_retry: Option<&'static str>,
    body: Vec<u8>,
}

fn answer() -> impl Strategy<Value = Answer> {
    (
        prop::sample::select(vec![
            200u16, 200, 204, 400, 401, 402, 408, 409, 429, 500, 503,
        ]),
        header_value(),
        header_value(),
        prop::option::of(prop::sample::select(vec!["true", "false", "maybe"])),
        body(),
    )
        .prop_map(
            |(status, retry_after, retry_after_ms, should_retry, body)| Answer {
                status,
                retry_after,
                retry_after_ms,
                should_retry,
                body,
            },
        )
}

proptest! {
    // Few cases, short timeouts: this runs the real binary per case and must stay well under
    // a minute in CI.
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    // Regression: `retry-after-ms: 1e300` or `retry-after: 1e25` panicked the run.
    #[test]
    fn no_server_reply_panics_or_loses_an_attempt(answers in prop::collection::vec(answer(), 1..6)) {
        let answers = Arc::new(answers);
        let next = Arc::new(AtomicUsize::new(0));
        let (a, n) = (answers.clone(), next.clone());
        let server = ScriptServer::start(move |_, _| {
            let x = &a[n.fetch_add(1, Ordering::SeqCst) % a.len()];
            let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
            for (k, v) in [
                ("retry-after", x.retry_after),
                ("retry-after-ms", x.retry_after_ms),
                ("x-should-retry", x.should_retry),
            ] {
                if let Some(v) = v {
                    headers.push((k.to_string(), v.to_string()));
                }
            }
            Reply::Bytes { status: x.status, headers, body: x.body.clone() }
        });
        let ws = Workspace::new();
        let suite = ws.write("suite.yaml", &suite_yaml("s", &[("t1", "42"), ("t2", "42")]));
        let provs = ws.write(
            "providers.yaml",
            &providers_yaml(&[Provider::new("p", &server.base_url())
                .timeout_s(5.0)
                .max_retries(2)
                .max_retry_after_s(1)]),
        );
        let out = ws.run(&[&suite], &provs, &[]);
        // A 401 stops the provider and ends the run with a configuration error (exit 2).
        let auth = out.code == 2 && out.stderr.contains("answered HTTP 401");
        prop_assert!(out.code == 0 || out.code == 4 || auth, "{}", out);
        prop_assert!(!out.stderr.contains("panicked"), "{}", out);
        let stored = ws.attempts().iter().filter(|a| a.http_status.is_some()).count();
        prop_assert_eq!(stored, server.requests().len(), "{}", out);
    }
}
