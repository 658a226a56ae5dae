//! Request log and counters, so tests can assert how many upstream calls a sync made and with which headers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderMap, Method, Uri};
use serde::Serialize;

/// Headers worth asserting on; everything else is left out of the log.
const LOGGED_HEADERS: [&str; 12] = [
    "if-match",
    "if-none-match",
    "x-csrf-token",
    "prefer",
    "content-type",
    "accept",
    "x-netsuite-propertynamevalidation",
    "data-access-intent",
    "maxdataserviceversion",
    "odata-maxversion",
    "isolation",
    "x-http-method",
];

#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    pub seq: u64,
    /// Emulator clock when the request arrived (ms since epoch).
    pub at_ms: i64,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// First word of `Authorization` (`Bearer`, `Basic`, `OAuth`), never the credential.
    pub auth_scheme: Option<String>,
    pub has_cookie: bool,
    pub headers: BTreeMap<String, String>,
    pub status: Option<u16>,
}

#[derive(Debug)]
pub struct RequestLog {
    entries: Mutex<VecDeque<LogEntry>>,
    total: AtomicU64,
    capacity: usize,
}

impl RequestLog {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(VecDeque::new()),
            total: AtomicU64::new(0),
            capacity,
        }
    }

    pub fn start(&self, at_ms: i64, method: &Method, uri: &Uri, headers: &HeaderMap) -> u64 {
        let seq = self.total.fetch_add(1, Ordering::SeqCst) + 1;
        let logged = LOGGED_HEADERS
            .iter()
            .filter_map(|h| {
                headers
                    .get(*h)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| (h.to_string(), v.to_string()))
            })
            .collect();
        let auth_scheme = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_whitespace().next())
            .map(str::to_string);
        let entry = LogEntry {
            seq,
            at_ms,
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
            auth_scheme,
            has_cookie: headers.contains_key("cookie"),
            headers: logged,
            status: None,
        };
        let mut e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if e.len() == self.capacity {
            e.pop_front();
        }
        e.push_back(entry);
        seq
    }

    pub fn finish(&self, seq: u64, status: u16) {
        let mut e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = e.iter_mut().rev().find(|x| x.seq == seq) {
            entry.status = Some(status);
        }
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }

    pub fn entries(&self, since: u64) -> Vec<LogEntry> {
        let e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        e.iter().filter(|x| x.seq > since).cloned().collect()
    }

    /// Counts per `METHOD path` of the retained entries.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        let e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut m = BTreeMap::new();
        for x in e.iter() {
            *m.entry(format!("{} {}", x.method, x.path)).or_insert(0) += 1;
        }
        m
    }

    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.total.store(0, Ordering::SeqCst);
    }
}
