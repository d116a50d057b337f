//! The record/replay cache's rows: answers keyed by the hash of their request.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, now, sql};

/// A cached response, keyed by the request hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheEntry {
    /// SHA-256 of the canonical request.
    pub key: String,
    /// Protocol name.
    pub protocol: String,
    /// Provider base URL.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// The request body as sent (no credentials).
    pub request: serde_json::Value,
    /// The response body as received.
    pub response: serde_json::Value,
    /// How long the recorded call took; replayed answers report it as their latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

/// A cache entry as stored: request and response as JSON text (compact in memory).
#[derive(Debug, Clone)]
pub struct CacheRecord {
    /// SHA-256 of the canonical request.
    pub key: String,
    /// Protocol name.
    pub protocol: String,
    /// Provider base URL.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// The request body as sent.
    pub request: String,
    /// The response body as received.
    pub response: String,
    /// How long the recorded call took.
    pub latency_ms: Option<f64>,
}

impl From<&CacheEntry> for CacheRecord {
    fn from(e: &CacheEntry) -> Self {
        CacheRecord {
            key: e.key.clone(),
            protocol: e.protocol.clone(),
            base_url: e.base_url.clone(),
            model: e.model.clone(),
            request: e.request.to_string(),
            response: e.response.to_string(),
            latency_ms: e.latency_ms,
        }
    }
}

impl From<&CacheRecord> for CacheEntry {
    fn from(r: &CacheRecord) -> Self {
        CacheEntry {
            key: r.key.clone(),
            protocol: r.protocol.clone(),
            base_url: r.base_url.clone(),
            model: r.model.clone(),
            request: serde_json::from_str(&r.request).unwrap_or_default(),
            response: serde_json::from_str(&r.response).unwrap_or_default(),
            latency_ms: r.latency_ms,
        }
    }
}

impl Store {
    /// Looks up a cached response body (as recorded) and the recorded call's latency.
    pub fn cache_get(&self, key: &str) -> Result<Option<(String, Option<f64>)>, StoreError> {
        self.conn
            .prepare_cached("SELECT response, latency_ms FROM cache WHERE key = ?1")
            .and_then(|mut st| {
                st.query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(|e| self.err(e))
    }

    /// Writes every cache entry as one JSON object a line; returns how many.
    pub fn cache_export(&self, out: &mut dyn std::io::Write) -> Result<usize, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT key, protocol, base_url, model, request, response, latency_ms FROM cache ORDER BY key")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(CacheRecord {
                    key: r.get(0)?,
                    protocol: r.get(1)?,
                    base_url: r.get(2)?,
                    model: r.get(3)?,
                    request: r.get(4)?,
                    response: r.get(5)?,
                    latency_ms: r.get(6)?,
                })
            })
            .map_err(|e| self.err(e))?;
        let mut n = 0;
        for row in rows {
            let e = CacheEntry::from(&row.map_err(|e| self.err(e))?);
            let line = serde_json::to_string(&e).map_err(|e| StoreError::Io(e.to_string()))?;
            writeln!(out, "{line}").map_err(|e| StoreError::Io(e.to_string()))?;
            n += 1;
        }
        Ok(n)
    }

    /// Inserts cache entries (existing keys are kept); returns how many were new.
    pub fn cache_import(&mut self, entries: &[CacheEntry]) -> Result<usize, StoreError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| sql(&path, e))?;
        let mut n = 0;
        for e in entries {
            n += insert_cache(&tx, &CacheRecord::from(e)).map_err(|e| sql(&path, e))?;
        }
        tx.commit().map_err(|e| sql(&path, e))?;
        Ok(n)
    }
}

pub(super) fn insert_cache(conn: &Connection, e: &CacheRecord) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO cache (key, protocol, base_url, model, request, response, latency_ms,
            created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        e.key,
        e.protocol,
        e.base_url,
        e.model,
        e.request,
        e.response,
        e.latency_ms,
        now()
    ])
}
