//! Provider batch APIs, the wire side: one [`Api`] per protocol family, each in its own file
//! (`openai_batch`, `anthropic_batch`, `gemini_batch`), behind the same four steps: build a
//! request line, submit a chunk, poll a batch, fetch its result lines.
//!
//! Payloads are assembled as text from each request's body (already JSON), so a chunk of
//! 50,000 requests is one string, never 50,000 JSON trees. Limits per batch (shared/reference/
//! providers.md): OpenAI 50,000 requests and 200 MB per input file; Anthropic 100,000
//! requests and 256 MB per request; Gemini inline requests under 20 MB in all (its request
//! count limit is not documented in the sources we have; 50,000 is assumed).

use serde_json::Value;

use super::{Protocol, ProviderConfig, error_chain};

/// A batch API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// OpenAI Batch: a JSONL file uploaded to `/files`, then `/batches`.
    OpenAi,
    /// Anthropic Message Batches.
    Anthropic,
    /// Gemini `batchGenerateContent` with inlined requests.
    Gemini,
}

/// What one request line of a batch came back as.
#[derive(Debug, Clone, PartialEq)]
pub enum LineResult {
    /// The response body the online API would have sent (JSON text).
    Response(String),
    /// The provider refused or failed this request.
    Error {
        /// The HTTP status the line carries, when it names one.
        status: Option<u16>,
        /// The provider's error code or type.
        code: Option<String>,
        /// The provider's message.
        message: String,
    },
    /// The batch's window ended before the request ran.
    Expired(String),
    /// The batch was cancelled before the request ran.
    Canceled(String),
}

/// One result line, keyed by the request's `custom_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultLine {
    /// The `custom_id` (Gemini: the `key`) the request was submitted with.
    pub custom_id: String,
    /// What came back.
    pub result: LineResult,
}

/// How a batch ended, for the requests it has no result line for.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// Every request was processed.
    Completed,
    /// The whole batch failed (validation, say); the provider's message.
    Failed(String),
    /// The window ended first.
    Expired,
    /// It was cancelled.
    Canceled,
}

/// A batch's state as a poll saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// The provider's own status word (`in_progress`, `ended`, `BATCH_STATE_RUNNING`…).
    pub status: String,
    /// Set once the batch has ended.
    pub end: Option<End>,
    /// The batch object as received, for fetching its results.
    pub raw: Value,
}

/// A failed exchange with a batch endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct WireError {
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// What went wrong (never contains the API key).
    pub message: String,
    /// Whether trying again later may help (408, 409, 429, 5xx, connection errors).
    pub transient: bool,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "HTTP {s}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Everything a batch endpoint call needs.
pub struct Conn<'a> {
    /// The provider.
    pub cfg: &'a ProviderConfig,
    /// Its protocol (auth headers, error bodies).
    pub protocol: &'a dyn Protocol,
    /// Its HTTP client.
    pub client: &'a reqwest::Client,
    /// Its API key, if it needs one.
    pub key: Option<&'a str>,
    /// The timeout of one HTTP exchange.
    pub timeout: std::time::Duration,
}

impl Conn<'_> {
    /// A request with the provider's auth headers and the call timeout.
    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let mut r = self.client.request(method, url).timeout(self.timeout);
        if let Some(k) = self.key {
            for (h, v) in self.protocol.auth_headers(k) {
                r = r.header(h, v);
            }
        }
        r
    }

    /// Sends a request and returns a 2xx body; anything else is a [`WireError`].
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Result<Vec<u8>, WireError> {
        let redact = |m: String| match self.key {
            Some(k) if !k.is_empty() => m.replace(k, "[REDACTED]"),
            _ => m,
        };
        let resp = req.send().await.map_err(|e| WireError {
            status: None,
            message: redact(error_chain(&e)),
            transient: true,
        })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| WireError {
            status: Some(status),
            message: redact(error_chain(&e)),
            transient: true,
        })?;
        if (200..300).contains(&status) {
            return Ok(bytes.to_vec());
        }
        let info = self.protocol.parse_error(&bytes);
        let message = info
            .message
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(300).collect());
        Err(WireError {
            status: Some(status),
            message: redact(message),
            transient: matches!(status, 408 | 409 | 429 | 500..=599),
        })
    }

    /// Sends a request and reads a JSON 2xx body.
    pub async fn json(&self, req: reqwest::RequestBuilder) -> Result<Value, WireError> {
        let bytes = self.send(req).await?;
        serde_json::from_slice(&bytes).map_err(|e| WireError {
            status: None,
            message: format!("unreadable batch response: {e}"),
            transient: false,
        })
    }
}

/// A JSON string literal.
pub(crate) fn quoted(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// A batch response's field as text, or an error naming it.
pub(crate) fn text_field(v: &Value, pointer: &str) -> Result<String, WireError> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| WireError {
            status: None,
            message: format!("batch response has no `{pointer}`: {}", short(v)),
            transient: false,
        })
}

/// A value's JSON text, cut to a length fit for a message.
pub(crate) fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 300 {
        let mut t: String = s.chars().take(300).collect();
        t.push('…');
        t
    } else {
        s
    }
}

/// Parses JSONL result lines with `parse_line`; a line that cannot be read is an error naming it.
pub(crate) fn parse_lines(
    bytes: &[u8],
    parse_line: impl Fn(&Value) -> Option<ResultLine>,
) -> Result<Vec<ResultLine>, WireError> {
    let mut out = Vec::new();
    for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let bad = |why: String| WireError {
            status: None,
            message: format!("batch result line {}: {why}", n + 1),
            transient: false,
        };
        let v: Value = serde_json::from_slice(line).map_err(|e| bad(e.to_string()))?;
        out.push(parse_line(&v).ok_or_else(|| bad(format!("unexpected shape: {}", short(&v))))?);
    }
    Ok(out)
}

impl Api {
    /// The batch API of a protocol, if it has one.
    pub fn of(protocol: &str) -> Option<Api> {
        match protocol {
            "openai" | "openai-responses" => Some(Api::OpenAi),
            "anthropic" => Some(Api::Anthropic),
            "gemini" => Some(Api::Gemini),
            _ => None,
        }
    }

    /// The name stored with each batch.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::OpenAi => "openai",
            Api::Anthropic => "anthropic",
            Api::Gemini => "gemini",
        }
    }

    /// Most requests in one batch.
    pub fn max_requests(self) -> usize {
        match self {
            Api::OpenAi => 50_000,
            Api::Anthropic => 100_000,
            Api::Gemini => 50_000,
        }
    }

    /// Most bytes of request lines in one batch, leaving room for the envelope around them.
    pub fn max_bytes(self) -> usize {
        const ENVELOPE: usize = 64 * 1024;
        match self {
            Api::OpenAi => 200 * 1000 * 1000 - ENVELOPE,
            Api::Anthropic => 256 * 1000 * 1000 - ENVELOPE,
            Api::Gemini => 20 * 1000 * 1000 - ENVELOPE,
        }
    }

    /// What joins two request elements in a payload: lines of a file, or array elements.
    pub fn separator(self) -> &'static str {
        match self {
            Api::OpenAi => "\n",
            Api::Anthropic | Api::Gemini => ",",
        }
    }

    /// One request's element of the batch payload: a JSONL line (OpenAI) or an array element.
    pub fn line(
        self,
        cfg: &ProviderConfig,
        protocol: &dyn Protocol,
        custom_id: &str,
        body: &str,
    ) -> String {
        match self {
            Api::OpenAi => super::openai_batch::line(cfg, protocol, custom_id, body),
            Api::Anthropic => super::anthropic_batch::line(custom_id, body),
            Api::Gemini => super::gemini_batch::line(custom_id, body),
        }
    }

    /// Submits the lines of one chunk (joined by `\n`); returns the provider's batch id and
    /// its first status.
    pub async fn submit(
        self,
        c: &Conn<'_>,
        lines: &str,
        name: &str,
    ) -> Result<(String, String), WireError> {
        match self {
            Api::OpenAi => super::openai_batch::submit(c, lines, name).await,
            Api::Anthropic => super::anthropic_batch::submit(c, lines).await,
            Api::Gemini => super::gemini_batch::submit(c, lines, name).await,
        }
    }

    /// Reads a batch's state.
    pub async fn poll(self, c: &Conn<'_>, id: &str) -> Result<State, WireError> {
        match self {
            Api::OpenAi => super::openai_batch::poll(c, id).await,
            Api::Anthropic => super::anthropic_batch::poll(c, id).await,
            Api::Gemini => super::gemini_batch::poll(c, id).await,
        }
    }

    /// Every result line of an ended batch.
    pub async fn results(self, c: &Conn<'_>, state: &State) -> Result<Vec<ResultLine>, WireError> {
        match self {
            Api::OpenAi => super::openai_batch::results(c, state).await,
            Api::Anthropic => super::anthropic_batch::results(c, state).await,
            Api::Gemini => super::gemini_batch::results(c, state).await,
        }
    }
}
