//! The span store behind the Tempo and Jaeger doubles: what arrived, when, for which tenant,
//! and what a test made it lose.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use otlp_receiver::ReceivedSpan;

/// Decides which spans a store loses (see `drop_spans`).
pub(crate) type SpanPredicate = Box<dyn Fn(&ReceivedSpan) -> bool + Send + Sync>;

#[derive(Default)]
pub(crate) struct TraceStore {
    spans: Vec<(Instant, Arc<str>, ReceivedSpan)>,
    drop: Option<SpanPredicate>,
    forgotten: HashSet<Vec<u8>>,
}

impl fmt::Debug for TraceStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceStore")
            .field("spans", &self.spans.len())
            .field("drops", &self.drop.is_some())
            .field("forgotten", &self.forgotten.len())
            .finish()
    }
}

impl TraceStore {
    /// Stores `spans` for `tenant` as received now, except those dropped or of forgotten
    /// traces.
    pub(crate) fn ingest(&mut self, tenant: &str, spans: &[ReceivedSpan]) {
        let now = Instant::now();
        let tenant: Arc<str> = Arc::from(tenant);
        for span in spans {
            let dropped = self.drop.as_ref().is_some_and(|p| p(span));
            if !dropped && !self.forgotten.contains(&span.span.trace_id) {
                self.spans.push((now, Arc::clone(&tenant), span.clone()));
            }
        }
    }

    /// Loses every stored and future span matching `predicate`.
    pub(crate) fn drop_spans(&mut self, predicate: SpanPredicate) {
        self.spans.retain(|(_, _, s)| !predicate(s));
        self.drop = Some(predicate);
    }

    /// Loses every stored and future span of trace `id`.
    pub(crate) fn forget(&mut self, id: [u8; 16]) {
        self.spans.retain(|(_, _, s)| s.span.trace_id != id);
        self.forgotten.insert(id.to_vec());
    }

    /// Spans of `tenant` received at least `lag` ago, oldest first.
    pub(crate) fn visible<'a>(
        &'a self,
        tenant: &'a str,
        lag: Duration,
    ) -> impl Iterator<Item = &'a ReceivedSpan> {
        self.spans
            .iter()
            .filter(move |(at, t, _)| **t == *tenant && at.elapsed() >= lag)
            .map(|(_, _, s)| s)
    }

    /// The spans of `tenant`'s trace `id` received at least `lag` ago.
    pub(crate) fn trace<'a>(
        &'a self,
        tenant: &'a str,
        id: &[u8; 16],
        lag: Duration,
    ) -> Vec<&'a ReceivedSpan> {
        self.visible(tenant, lag)
            .filter(|s| s.span.trace_id == id)
            .collect()
    }

    /// Every stored span (visible or not yet, of any tenant), for assertions.
    pub(crate) fn all(&self) -> Vec<ReceivedSpan> {
        self.spans.iter().map(|(_, _, s)| s.clone()).collect()
    }

    /// Every stored span of `tenant`, for assertions.
    pub(crate) fn of_tenant(&self, tenant: &str) -> Vec<ReceivedSpan> {
        let spans = self.spans.iter().filter(|(_, t, _)| **t == *tenant);
        spans.map(|(_, _, s)| s.clone()).collect()
    }
}

/// Parses a 32-hex-digit trace id (as `forget_trace` takes it), padding short ids with zeros.
pub(crate) fn parse_hex_id(id: &str) -> Option<[u8; 16]> {
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = format!("{id:0>32}");
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(padded.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
