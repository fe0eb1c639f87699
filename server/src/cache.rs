//! Signed OCSP answers kept in memory, keyed by the DER CertID asked about (hash algorithm and
//! its parameters included: a client matches the answer's CertID byte for byte).
//!
//! Only the CA worker writes: it signs answers ahead of requests, again at half of their
//! validity, and drops a serial's answers when the store shows its row changed. Request
//! handlers only read. `unknown` answers are not kept, so the cache holds at most a few
//! entries per certificate this CA issued, whatever clients send.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use hljca_core::ocsp::Query;
use time::OffsetDateTime;

/// One signed answer.
#[derive(Debug)]
pub struct Entry {
    /// The DER OCSPResponse.
    pub der: Bytes,
    /// The query it answers (to sign it again).
    pub query: Query,
    /// `good` or `revoked`.
    pub status: &'static str,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
    /// When the worker signs it again (half of its validity).
    pub refresh_at: OffsetDateTime,
    /// HTTP entity tag.
    pub etag: String,
}

/// The cache.
#[derive(Debug, Default)]
pub struct Cache {
    map: RwLock<HashMap<Vec<u8>, Arc<Entry>>>,
}

impl Cache {
    /// A fresh answer for `cert_id_der`: one whose nextUpdate is still ahead.
    pub fn get(&self, cert_id_der: &[u8], now: OffsetDateTime) -> Option<Arc<Entry>> {
        let map = self.map.read().ok()?;
        map.get(cert_id_der)
            .filter(|e| e.next_update > now)
            .cloned()
    }

    /// Keeps `entry`.
    pub fn insert(&self, entry: Entry) {
        if let Ok(mut map) = self.map.write() {
            map.insert(entry.query.cert_id_der.clone(), Arc::new(entry));
        }
    }

    /// Drops every answer about `serial`; returns how many.
    pub fn invalidate(&self, serial: &str) -> usize {
        match self.map.write() {
            Ok(mut map) => {
                let before = map.len();
                map.retain(|_, e| e.query.serial != serial);
                before - map.len()
            }
            Err(_) => 0,
        }
    }

    /// The queries whose answers are due to be signed again at `now`.
    pub fn due(&self, now: OffsetDateTime) -> Vec<Query> {
        match self.map.read() {
            Ok(map) => map
                .values()
                .filter(|e| e.refresh_at <= now)
                .map(|e| e.query.clone())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// True when `cert_id_der` has an answer not yet due for refresh.
    pub fn is_fresh(&self, cert_id_der: &[u8], now: OffsetDateTime) -> bool {
        self.map
            .read()
            .ok()
            .and_then(|m| m.get(cert_id_der).map(|e| e.refresh_at > now))
            .unwrap_or(false)
    }

    /// Number of answers kept.
    pub fn len(&self) -> usize {
        self.map.read().map(|m| m.len()).unwrap_or(0)
    }
}
