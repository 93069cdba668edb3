//! What an operation records that depends only on what it is (its system, query or command,
//! namespace, collection and server): the span name and the attributes, worked out once per
//! thread for each distinct operation and shared by every span and measurement of it.
//!
//! Sanitizing and summarizing SQL costs more than the span itself; an application runs the same
//! few statements over and over, so each thread keeps the last [`CACHED_OPERATIONS`] it saw.
//! Bounded: at most that many entries per thread, none for a query over
//! [`MAX_CACHED_QUERY_BYTES`] (a generated statement, described afresh each time), and a full
//! cache is emptied rather than grown.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry::{KeyValue, Value};

use super::sql::{cut, sanitize_sql};
use super::{DbOperation, MAX_NAME_BYTES, Query};
use crate::semconv::attr;

/// Distinct operations each thread remembers.
const CACHED_OPERATIONS: usize = 256;

/// The longest query text remembered.
const MAX_CACHED_QUERY_BYTES: usize = 4096;

/// The span name and attributes of one kind of operation.
#[derive(Debug)]
pub(super) struct Recorded {
    /// `db.query.summary`, else `{operation} {collection}`, else the operation, else the system.
    pub(super) span_name: String,
    /// The metric's attributes, also the span's.
    pub(super) attributes: Vec<KeyValue>,
    /// The exemplar store's hash of `db.client.operation.duration` with `attributes`.
    pub(super) series_hash: u64,
    /// `db.query.text` (the span's only).
    pub(super) query_text: Option<KeyValue>,
}

impl Recorded {
    /// The span's attributes: the metric's and the query text.
    pub(super) fn span_attributes(&self) -> impl Iterator<Item = KeyValue> + '_ {
        self.attributes
            .iter()
            .cloned()
            .chain(self.query_text.clone())
    }
}

/// The inputs an entry was made from, compared on a hit (hashes can collide).
struct Entry {
    system: &'static str,
    sql: bool,
    query: Box<str>,
    namespace: Option<Box<str>>,
    collection: Option<Box<str>>,
    server: Option<(Box<str>, u16)>,
    recorded: Arc<Recorded>,
}

impl Entry {
    fn is(&self, operation: &DbOperation<'_>) -> bool {
        let (sql, query) = parts(operation);
        self.system == operation.system
            && self.sql == sql
            && *self.query == *query
            && self.namespace.as_deref() == operation.namespace
            && self.collection.as_deref() == operation.collection
            && self.server.as_ref().map(|(a, p)| (&**a, *p)) == operation.server
    }
}

thread_local! {
    static CACHE: RefCell<HashMap<u64, Entry>> = RefCell::new(HashMap::new());
}

fn parts<'a>(operation: &DbOperation<'a>) -> (bool, &'a str) {
    match operation.query {
        Query::Sql(query) => (true, query),
        Query::Command(command) => (false, command),
    }
}

/// A fast hash of the inputs, eight bytes at a time: the key of this thread's cache, not a
/// defence against collisions (an entry is used only when its inputs are equal) or against
/// chosen inputs (the operations are the application's own, and the cache is bounded).
fn hash(operation: &DbOperation<'_>) -> u64 {
    struct Words(u64);
    impl Words {
        fn text(&mut self, text: &str) {
            let bytes = text.as_bytes();
            let mut chunks = bytes.chunks_exact(8);
            for chunk in &mut chunks {
                let mut word = [0; 8];
                word.copy_from_slice(chunk);
                self.word(u64::from_le_bytes(word));
            }
            let mut last = [0; 8];
            last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
            self.word(u64::from_le_bytes(last));
            // The length ends each field, so ("ab", "c") and ("a", "bc") differ.
            self.word(bytes.len() as u64);
        }
        fn word(&mut self, word: u64) {
            self.0 = (self.0 ^ word)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .rotate_left(29);
        }
    }
    let (sql, query) = parts(operation);
    let mut h = Words(u64::from(sql));
    h.text(operation.system);
    h.text(query);
    for field in [operation.namespace, operation.collection] {
        match field {
            Some(text) => h.text(text),
            None => h.word(u64::MAX),
        }
    }
    match operation.server {
        Some((address, port)) => {
            h.text(address);
            h.word(u64::from(port));
        }
        None => h.word(u64::MAX),
    }
    h.0
}

/// What `operation` records: from this thread's cache, or worked out (and cached).
pub(super) fn recorded(operation: &DbOperation<'_>) -> Arc<Recorded> {
    let (_, query) = parts(operation);
    if query.len() > MAX_CACHED_QUERY_BYTES {
        return Arc::new(describe(operation));
    }
    let key = hash(operation);
    let cached = CACHE.try_with(|cache| {
        let cache = cache.try_borrow().ok()?;
        let entry = cache.get(&key)?;
        entry.is(operation).then(|| entry.recorded.clone())
    });
    if let Ok(Some(recorded)) = cached {
        return recorded;
    }
    let recorded = Arc::new(describe(operation));
    // A thread being torn down, or a re-entrant call, just goes uncached.
    let _ = CACHE.try_with(|cache| {
        if let Ok(mut cache) = cache.try_borrow_mut() {
            if cache.len() >= CACHED_OPERATIONS {
                cache.clear();
            }
            cache.insert(
                key,
                Entry {
                    system: operation.system,
                    sql: parts(operation).0,
                    query: query.into(),
                    namespace: operation.namespace.map(Into::into),
                    collection: operation.collection.map(Into::into),
                    server: operation.server.map(|(a, p)| (a.into(), p)),
                    recorded: recorded.clone(),
                },
            );
        }
    });
    recorded
}

/// `text` cut to [`MAX_NAME_BYTES`] on a character boundary.
fn bounded(text: &str) -> &str {
    cut(text, MAX_NAME_BYTES)
}

fn shared(text: &str) -> Value {
    Value::from(Arc::<str>::from(text))
}

/// Works out what `operation` records.
fn describe(operation: &DbOperation<'_>) -> Recorded {
    let given_collection = operation.collection.map(|c| bounded(c).to_string());
    let (summary, op, collection, text) = match operation.query {
        Query::Sql(query) => {
            let sql = sanitize_sql(query);
            (
                (!sql.summary.is_empty()).then_some(sql.summary),
                sql.operation,
                given_collection.or(sql.collection),
                Some(sql.text),
            )
        }
        Query::Command(command) => {
            let name = command
                .split_whitespace()
                .next()
                .map(|c| bounded(c).to_ascii_uppercase());
            (None, name, given_collection, None)
        }
    };
    let span_name = match (&summary, &op, &collection) {
        (Some(summary), _, _) => summary.clone(),
        (None, Some(op), Some(collection)) => format!("{op} {collection}"),
        (None, Some(op), None) => op.clone(),
        _ => operation.system.to_string(),
    };
    let mut attributes = Vec::with_capacity(8);
    attributes.push(KeyValue::new(attr::DB_SYSTEM_NAME, operation.system));
    if let Some(namespace) = operation.namespace {
        attributes.push(KeyValue::new(
            attr::DB_NAMESPACE,
            shared(bounded(namespace)),
        ));
    }
    if let Some(op) = &op {
        attributes.push(KeyValue::new(attr::DB_OPERATION_NAME, shared(op)));
    }
    if let Some(collection) = &collection {
        attributes.push(KeyValue::new(attr::DB_COLLECTION_NAME, shared(collection)));
    }
    if let Some(summary) = &summary {
        attributes.push(KeyValue::new(attr::DB_QUERY_SUMMARY, shared(summary)));
    }
    if let Some((address, port)) = operation.server {
        attributes.push(KeyValue::new(
            attr::SERVER_ADDRESS,
            shared(bounded(address)),
        ));
        attributes.push(KeyValue::new(attr::SERVER_PORT, i64::from(port)));
    }
    Recorded {
        span_name,
        series_hash: crate::metrics::series_hash(super::CLIENT_OPERATION_DURATION, &attributes),
        attributes,
        query_text: text.map(|t| KeyValue::new(attr::DB_QUERY_TEXT, shared(&t))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(recorded: &Recorded, key: &str) -> Option<String> {
        recorded
            .span_attributes()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    }

    #[test]
    fn the_same_operation_is_described_once_per_thread() {
        let select = || DbOperation::sql("postgresql", "SELECT * FROM t WHERE id = 1");
        let first = recorded(&select());
        let again = recorded(&select());
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(first.span_name, "SELECT t");
        assert_eq!(
            attribute(&first, "db.query.text").as_deref(),
            Some("SELECT * FROM t WHERE id = ?")
        );
    }

    #[test]
    fn any_difference_in_what_the_operation_is_gives_its_own_description() {
        let base = || DbOperation::sql("postgresql", "SELECT * FROM t");
        let variants = [
            recorded(&base()),
            recorded(&DbOperation::sql("mysql", "SELECT * FROM t")),
            recorded(&DbOperation::sql("postgresql", "SELECT * FROM u")),
            recorded(&DbOperation::command("postgresql", "SELECT * FROM t")),
            recorded(&base().namespace("a")),
            recorded(&base().namespace("b")),
            recorded(&base().collection("c")),
            recorded(&base().server("h", 1)),
            recorded(&base().server("h", 2)),
        ];
        for (i, a) in variants.iter().enumerate() {
            for b in &variants[i + 1..] {
                assert!(!Arc::ptr_eq(a, b));
            }
        }
        assert_eq!(
            attribute(&variants[5], "db.namespace").as_deref(),
            Some("b")
        );
        assert_eq!(attribute(&variants[8], "server.port").as_deref(), Some("2"));
        assert_eq!(
            variants[3].span_name, "SELECT",
            "a command is named by its first word"
        );
    }

    #[test]
    fn the_cache_stays_bounded_and_long_queries_are_not_kept() {
        for n in 0..(CACHED_OPERATIONS * 3) {
            let query = format!("SELECT * FROM t{n}");
            let _ = recorded(&DbOperation::sql("postgresql", &query));
        }
        let size = CACHE.with(|c| c.borrow().len());
        assert!(size <= CACHED_OPERATIONS, "{size} entries");

        let long = format!(
            "SELECT * FROM t WHERE x IN ({})",
            "1,".repeat(MAX_CACHED_QUERY_BYTES)
        );
        let a = recorded(&DbOperation::sql("postgresql", &long));
        let b = recorded(&DbOperation::sql("postgresql", &long));
        assert!(!Arc::ptr_eq(&a, &b), "a long query is described afresh");
        assert_eq!(a.span_name, "SELECT t");
    }
}
