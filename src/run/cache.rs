//! The record/replay cache: answers keyed by a hash of the request, exportable as a cassette.
//!
//! Key: SHA-256 of the canonical JSON (object keys sorted) of
//! `{"v": CACHE_FORMAT, "protocol", "base_url", "model", "body", "sample"}`, where `body` is the
//! request body exactly as sent and `sample` is the repeat index (so repeated samples are
//! distinct answers). The API key is never part of it. The same key can be recomputed with any
//! language's SHA-256 and a sorted-keys JSON dump.
//!
//! The canonical JSON stays our own (`suite::canonical_json`, serde_json's number format) and
//! is not RFC 8785 (`serde_jcs`): JCS writes `0.0` as `0`, so every recorded request with a
//! float such as `temperature: 0.0` would get a new key and be paid for again. (The committed
//! quickstart cassette has only integers and hashes the same either way.)
//!
//! A cassette is JSONL, one [`CacheEntry`] a line, sorted by key so diffs stay small.

use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::RunError;
use crate::providers::{Money, Protocol, ProviderConfig, quirks};
use crate::store::{AttemptRow, CacheEntry, CacheRecord, Delivery, ErrorKind, Store};
use crate::suite::canonical_json;

/// Version of the cache key format; bump to invalidate every recorded answer.
pub const CACHE_FORMAT: u32 = 1;

/// How the run uses the record/replay cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CacheMode {
    /// Serve recorded answers; call and record the rest.
    #[value(name = "rw")]
    ReadWrite,
    /// Serve recorded answers only; a missing one is an error and nothing is called.
    #[value(name = "replay")]
    Replay,
    /// Call every request; record nothing.
    #[value(name = "off")]
    Off,
}

impl CacheMode {
    /// The name used on the command line and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheMode::ReadWrite => "rw",
            CacheMode::Replay => "replay",
            CacheMode::Off => "off",
        }
    }
}

/// The cache key of a request.
pub fn request_key(cfg: &ProviderConfig, body: &serde_json::Value, sample: u32) -> String {
    let v = json!({
        "v": CACHE_FORMAT,
        "protocol": cfg.protocol,
        "base_url": cfg.base_url,
        "model": cfg.model,
        "body": body,
        "sample": sample,
    });
    hex::encode(Sha256::digest(canonical_json(&v).as_bytes()))
}

/// A cache record for a fresh answer.
pub fn record(
    cfg: &ProviderConfig,
    key: &str,
    body: &serde_json::Value,
    response: String,
    latency_ms: f64,
) -> CacheRecord {
    CacheRecord {
        key: key.to_string(),
        protocol: cfg.protocol.clone(),
        base_url: cfg.base_url.clone(),
        model: cfg.model.clone(),
        request: body.to_string(),
        response,
        latency_ms: Some(latency_ms),
    }
}

/// The stored attempt for an answer served from the cache: its recorded usage priced at the
/// current price (the production estimate), and nothing spent.
pub fn replayed_row(
    mut row: AttemptRow,
    (response, latency_ms): (&str, Option<f64>),
    cfg: &ProviderConfig,
    protocol: &dyn Protocol,
) -> AttemptRow {
    row.started_at = crate::store::now();
    row.replayed = true;
    row.is_final = true;
    row.spent = Some(Money::ZERO);
    row.http_status = Some(200);
    row.delivery = Delivery::Answered;
    row.latency_ms = latency_ms.unwrap_or(0.0);
    match protocol.parse(response.as_bytes()) {
        Ok(mut c) => {
            // A batch provider's production price is its batch rate.
            c.served.batch = cfg.mode == crate::providers::Mode::Batch;
            row.error_message = quirks::sane_usage(&mut c);
            row.cost = quirks::price(&c, cfg, &row.started_at);
            row.usage = c.usage;
            row.finish_reason = c.finish_reason;
            row.output = Some(c.text);
            row.answered = true;
        }
        Err(e) => {
            row.error_kind = Some(ErrorKind::BadResponse);
            row.error_message = Some(format!("recorded answer unreadable: {e}"));
        }
    }
    row
}

/// Loads a cassette into the store's cache.
pub fn import_cassette(store: &mut Store, path: &Path) -> Result<usize, RunError> {
    let err = |message: String| RunError::Cassette {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    // A byte-order mark, as some editors write, is accepted as it is in tasks files.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let e: CacheEntry =
            serde_json::from_str(line).map_err(|e| err(format!("line {}: {e}", i + 1)))?;
        entries.push(e);
    }
    Ok(store.cache_import(&entries)?)
}

/// Writes the whole cache to a cassette (atomically: a temporary file beside it, renamed into
/// place), refusing the database itself and its WAL/SHM files as the output.
pub fn export_cassette(store: &Store, db: &Path, path: &Path) -> Result<usize, RunError> {
    super::check_output(db, path)?;
    let err = |message: String| RunError::Cassette {
        path: path.to_path_buf(),
        message,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| err(e.to_string()))?;
    let mut f = std::io::BufWriter::new(tmp);
    let n = store.cache_export(&mut f)?;
    let tmp = f.into_inner().map_err(|e| err(e.error().to_string()))?;
    tmp.persist(path).map_err(|e| err(e.error.to_string()))?;
    Ok(n)
}
