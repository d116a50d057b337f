//! A loopback server imitating the three batch APIs' lifecycles, for tests/batch.rs and
//! benches/batch.rs: OpenAI (file upload, `validating` → `in_progress` → `completed`, output
//! and error files), Anthropic Message Batches (`in_progress` → `ended`, JSONL results at
//! `results_url`) and Gemini `batchGenerateContent` (`BATCH_STATE_PENDING` → `RUNNING` →
//! `SUCCEEDED`, inlined responses). Result bodies are the fixtures' shapes and usage.
//!
//! What each request gets is decided by a [`Decide`] function of its prompt text; the server
//! counts batch creations and polls, and can hold every batch in progress until released.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What one batch request comes back as.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// An answer with this text (the fixtures' usage).
    Answer(String),
    /// A per-request error with an HTTP status and message.
    Error(u16, String),
    /// The window ended before it ran.
    Expired,
    /// The batch was cancelled before it ran.
    Canceled,
}

/// Decides a request's outcome from its prompt's last user text.
pub type Decide = Arc<dyn Fn(&str) -> Outcome + Send + Sync>;

struct Batch {
    api: &'static str,
    /// (custom_id, prompt text) of each request.
    requests: Vec<(String, String)>,
    polls: usize,
}

#[derive(Default)]
struct State {
    files: HashMap<String, Vec<u8>>,
    batches: HashMap<String, Batch>,
    /// Every request line received across batches.
    submitted: usize,
}

/// The server; dropped with its runtime thread.
pub struct BatchServer {
    pub addr: std::net::SocketAddr,
    state: Arc<(Mutex<State>, Condvar)>,
    /// Batch creations.
    pub creations: Arc<AtomicUsize>,
    /// Batch polls.
    pub polls: Arc<AtomicUsize>,
    /// While set, no batch ever ends.
    pub hold: Arc<AtomicBool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Clone)]
struct Shared {
    state: Arc<(Mutex<State>, Condvar)>,
    creations: Arc<AtomicUsize>,
    polls: Arc<AtomicUsize>,
    hold: Arc<AtomicBool>,
    decide: Decide,
    /// Polls a batch takes to end (after creation).
    polls_to_end: usize,
    addr: std::net::SocketAddr,
}

impl BatchServer {
    /// Starts the server: batches end on their `polls_to_end`-th poll (at least 1).
    pub fn start(
        polls_to_end: usize,
        decide: impl Fn(&str) -> Outcome + Send + Sync + 'static,
    ) -> BatchServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let shared = Shared {
            state: Arc::new((Mutex::new(State::default()), Condvar::new())),
            creations: Arc::new(AtomicUsize::new(0)),
            polls: Arc::new(AtomicUsize::new(0)),
            hold: Arc::new(AtomicBool::new(false)),
            decide: Arc::new(decide),
            polls_to_end: polls_to_end.max(1),
            addr,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sh = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                tokio::pin!(stopped);
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        acc = listener.accept() => {
                            let Ok((sock, _)) = acc else { continue };
                            tokio::spawn(serve(sock, sh.clone()));
                        }
                    }
                }
            });
        });
        BatchServer {
            addr,
            state: shared.state,
            creations: shared.creations,
            polls: shared.polls,
            hold: shared.hold,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many request lines all batches held.
    pub fn submitted(&self) -> usize {
        self.state.0.lock().unwrap().submitted
    }

    /// The custom ids and prompts of every batch, by creation order of their ids.
    pub fn batch_sizes(&self) -> Vec<usize> {
        let s = self.state.0.lock().unwrap();
        let mut v: Vec<(&String, usize)> = s
            .batches
            .iter()
            .map(|(k, b)| (k, b.requests.len()))
            .collect();
        v.sort();
        v.into_iter().map(|(_, n)| n).collect()
    }

    /// Blocks until `cond(creations, polls)` holds; the timeout is only a failsafe.
    pub fn wait_until(&self, what: &str, cond: impl Fn(usize, usize) -> bool) {
        let (lock, cv) = &*self.state;
        let guard = lock.lock().unwrap();
        let (_g, res) = cv
            .wait_timeout_while(guard, Duration::from_secs(120), |_| {
                !cond(
                    self.creations.load(Ordering::SeqCst),
                    self.polls.load(Ordering::SeqCst),
                )
            })
            .unwrap();
        assert!(!res.timed_out(), "timed out waiting until {what}");
    }
}

impl Drop for BatchServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(mut sock: tokio::net::TcpStream, sh: Shared) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let mut chunk = [0u8; 65536];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut start = lines.next().unwrap_or("").split(' ');
        let method = start.next().unwrap_or("").to_string();
        let path = start.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let body_start = head_end + 4;
        while buf.len() < body_start + len {
            let mut chunk = [0u8; 65536];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[body_start..body_start + len].to_vec();
        buf.drain(..body_start + len);
        let content_type = headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let (status, content) = route(&sh, &method, &path, &content_type, &body);
        {
            let (_, cv) = &*sh.state;
            cv.notify_all();
        }
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            content.len()
        );
        let mut out = head.into_bytes();
        out.extend_from_slice(&content);
        if sock.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn json_reply(v: Value) -> (u16, Vec<u8>) {
    (200, v.to_string().into_bytes())
}

/// The last user text of a request body in any of the three protocols.
fn prompt_of(body: &Value) -> String {
    let from_messages = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str());
    let from_contents = body["contents"]
        .as_array()
        .and_then(|c| c.last())
        .and_then(|c| c.pointer("/parts/0/text"))
        .and_then(Value::as_str);
    from_messages.or(from_contents).unwrap_or("").to_string()
}

/// The content of the `file` part of a multipart body.
fn multipart_file(content_type: &str, body: &[u8]) -> Option<Vec<u8>> {
    let boundary = content_type.split("boundary=").nth(1)?.trim_matches('"');
    let delim = format!("\r\n--{boundary}");
    let text = body;
    let marker = b"name=\"file\"";
    let at = text.windows(marker.len()).position(|w| w == marker)?;
    let start = at + text[at..].windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let end = start
        + text[start..]
            .windows(delim.len())
            .position(|w| w == delim.as_bytes())?;
    Some(text[start..end].to_vec())
}

fn create(sh: &Shared, api: &'static str, requests: Vec<(String, String)>) -> String {
    let n = sh.creations.fetch_add(1, Ordering::SeqCst) + 1;
    let id = match api {
        "openai" => format!("batch_{n:04}"),
        "anthropic" => format!("msgbatch_{n:04}"),
        _ => format!("batches/{n:04}"),
    };
    let mut s = sh.state.0.lock().unwrap();
    s.submitted += requests.len();
    s.batches.insert(
        id.clone(),
        Batch {
            api,
            requests,
            polls: 0,
        },
    );
    id
}

/// Advances a batch by one poll; returns (poll index, ended).
fn poll(sh: &Shared, id: &str) -> Option<(usize, bool)> {
    sh.polls.fetch_add(1, Ordering::SeqCst);
    let mut s = sh.state.0.lock().unwrap();
    let b = s.batches.get_mut(id)?;
    let k = b.polls;
    b.polls += 1;
    Some((
        k,
        !sh.hold.load(Ordering::SeqCst) && k + 1 >= sh.polls_to_end,
    ))
}

fn requests_of(sh: &Shared, id: &str) -> Vec<(String, String)> {
    sh.state.0.lock().unwrap().batches[id].requests.clone()
}

fn openai_body(text: &str) -> Value {
    json!({"id": "chatcmpl-fx", "object": "chat.completion", "created": 1795000100,
        "model": "gpt-4.1-mini-2025-04-14",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 21, "completion_tokens": 2, "total_tokens": 23,
            "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}},
        "service_tier": "default"})
}

fn route(sh: &Shared, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let json_body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let not_found = (
        404,
        br#"{"error": {"message": "no such route", "type": "not_found_error"}}"#.to_vec(),
    );
    match (method, path) {
        // ---- OpenAI
        ("POST", "/v1/files") => {
            let Some(file) = multipart_file(content_type, body) else {
                return (400, br#"{"error": {"message": "no file part"}}"#.to_vec());
            };
            let mut s = sh.state.0.lock().unwrap();
            let id = format!("file-{}", s.files.len() + 1);
            s.files.insert(id.clone(), file);
            json_reply(json!({"id": id, "object": "file", "purpose": "batch"}))
        }
        ("POST", "/v1/batches") => {
            let fid = json_body["input_file_id"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let file = sh.state.0.lock().unwrap().files.get(&fid).cloned();
            let Some(file) = file else {
                return (
                    400,
                    br#"{"error": {"message": "unknown input_file_id"}}"#.to_vec(),
                );
            };
            let mut reqs = Vec::new();
            for line in file.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let v: Value = serde_json::from_slice(line).expect("input line is JSON");
                assert_eq!(v["method"], "POST");
                assert_eq!(v["url"], "/v1/chat/completions");
                reqs.push((
                    v["custom_id"].as_str().unwrap().to_string(),
                    prompt_of(&v["body"]),
                ));
            }
            let id = create(sh, "openai", reqs);
            json_reply(json!({"id": id, "object": "batch", "status": "validating",
                "endpoint": json_body["endpoint"], "completion_window": "24h"}))
        }
        ("GET", p) if p.starts_with("/v1/batches/") => {
            let id = &p["/v1/batches/".len()..];
            let Some((k, ended)) = poll(sh, id) else {
                return not_found;
            };
            let status = if ended {
                "completed"
            } else if k == 0 {
                "validating"
            } else {
                "in_progress"
            };
            let mut v = json!({"id": id, "object": "batch", "status": status});
            if ended {
                v["output_file_id"] = json!(format!("out-{id}"));
                v["error_file_id"] = json!(format!("err-{id}"));
            }
            json_reply(v)
        }
        ("GET", p) if p.starts_with("/v1/files/") && p.ends_with("/content") => {
            let fid = &p["/v1/files/".len()..p.len() - "/content".len()];
            let (errors, id) = match (fid.strip_prefix("out-"), fid.strip_prefix("err-")) {
                (Some(id), _) => (false, id),
                (_, Some(id)) => (true, id),
                _ => return not_found,
            };
            let mut out = Vec::new();
            for (cid, prompt) in requests_of(sh, id) {
                let line = match (sh.decide)(&prompt) {
                    Outcome::Answer(t) if !errors => json!({"id": "batch_req", "custom_id": cid,
                        "response": {"status_code": 200, "request_id": "req", "body": openai_body(&t)}, "error": null}),
                    Outcome::Error(status, m) if errors => {
                        json!({"id": "batch_req", "custom_id": cid,
                        "response": {"status_code": status, "request_id": "req", "body": {"error": {"message": m, "type": "invalid_request_error", "code": "invalid_value"}}}, "error": null})
                    }
                    Outcome::Expired if errors => {
                        json!({"id": "batch_req", "custom_id": cid, "response": null,
                        "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}})
                    }
                    Outcome::Canceled if errors => {
                        json!({"id": "batch_req", "custom_id": cid, "response": null,
                        "error": {"code": "batch_cancelled", "message": "This request was cancelled."}})
                    }
                    _ => continue,
                };
                out.extend_from_slice(line.to_string().as_bytes());
                out.push(b'\n');
            }
            (200, out)
        }
        // ---- Anthropic
        ("POST", "/v1/messages/batches") => {
            let reqs = json_body["requests"]
                .as_array()
                .expect("requests array")
                .iter()
                .map(|r| {
                    (
                        r["custom_id"].as_str().unwrap().to_string(),
                        prompt_of(&r["params"]),
                    )
                })
                .collect();
            let id = create(sh, "anthropic", reqs);
            json_reply(
                json!({"id": id, "type": "message_batch", "processing_status": "in_progress"}),
            )
        }
        ("GET", p) if p.starts_with("/v1/messages/batches/") && p.ends_with("/results") => {
            let id = &p["/v1/messages/batches/".len()..p.len() - "/results".len()];
            let mut out = Vec::new();
            for (cid, prompt) in requests_of(sh, id) {
                let result = match (sh.decide)(&prompt) {
                    Outcome::Answer(t) => {
                        json!({"type": "succeeded", "message": {"id": "msg_fx", "type": "message",
                        "role": "assistant", "model": "claude-haiku-4-5-20251001",
                        "content": [{"type": "text", "text": t}], "stop_reason": "end_turn",
                        "usage": {"input_tokens": 19, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                            "output_tokens": 4, "service_tier": "batch"}}})
                    }
                    Outcome::Error(_, m) => json!({"type": "errored", "error": {"type": "error",
                        "error": {"type": "invalid_request_error", "message": m}, "request_id": null}}),
                    Outcome::Expired => json!({"type": "expired"}),
                    Outcome::Canceled => json!({"type": "canceled"}),
                };
                out.extend_from_slice(
                    json!({"custom_id": cid, "result": result})
                        .to_string()
                        .as_bytes(),
                );
                out.push(b'\n');
            }
            (200, out)
        }
        ("GET", p) if p.starts_with("/v1/messages/batches/") => {
            let id = &p["/v1/messages/batches/".len()..];
            let Some((_, ended)) = poll(sh, id) else {
                return not_found;
            };
            let mut v = json!({"id": id, "type": "message_batch",
                "processing_status": if ended { "ended" } else { "in_progress" }});
            if ended {
                v["results_url"] = json!(format!(
                    "http://{}/v1/messages/batches/{id}/results",
                    sh.addr
                ));
            }
            json_reply(v)
        }
        // ---- Gemini
        ("POST", p) if p.starts_with("/v1beta/models/") && p.ends_with(":batchGenerateContent") => {
            let reqs = json_body
                .pointer("/batch/inputConfig/requests/requests")
                .and_then(Value::as_array)
                .expect("inlined requests")
                .iter()
                .map(|r| {
                    (
                        r["metadata"]["key"].as_str().unwrap().to_string(),
                        prompt_of(&r["request"]),
                    )
                })
                .collect();
            let id = create(sh, "gemini", reqs);
            json_reply(
                json!({"name": id, "metadata": {"@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
                "state": "BATCH_STATE_PENDING"}}),
            )
        }
        ("GET", p) if p.starts_with("/v1beta/batches/") => {
            let id = &p["/v1beta/".len()..];
            let Some((k, ended)) = poll(sh, id) else {
                return not_found;
            };
            let state = if ended {
                "BATCH_STATE_SUCCEEDED"
            } else if k == 0 {
                "BATCH_STATE_PENDING"
            } else {
                "BATCH_STATE_RUNNING"
            };
            let mut v = json!({"name": id, "metadata": {"state": state}, "done": ended});
            if ended {
                let responses: Vec<Value> = requests_of(sh, id)
                    .into_iter()
                    .map(|(key, prompt)| match (sh.decide)(&prompt) {
                        Outcome::Answer(t) => json!({"response": {"candidates": [{"content": {"parts": [{"text": t}], "role": "model"},
                            "finishReason": "STOP", "index": 0}],
                            "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 1, "totalTokenCount": 13},
                            "modelVersion": "gemini-2.5-flash"}, "metadata": {"key": key}}),
                        Outcome::Error(status, m) => json!({"error": {"code": status, "message": m, "status": "INVALID_ARGUMENT"},
                            "metadata": {"key": key}}),
                        Outcome::Expired | Outcome::Canceled => json!({"error": {"code": 499, "message": "not run", "status": "CANCELLED"},
                            "metadata": {"key": key}}),
                    })
                    .collect();
                v["response"] = json!({"@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput",
                    "inlinedResponses": {"inlinedResponses": responses}});
            }
            json_reply(v)
        }
        _ => not_found,
    }
}
