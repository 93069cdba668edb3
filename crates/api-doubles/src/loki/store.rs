//! How Loki turns an OTLP log record into an entry (index labels, structured metadata, line),
//! what it refuses, and what a test made it lose.
//!
//! Follows Loki's `pkg/loghttp/push/otlp.go` and `otlplabels/config.go` (3.8): the default
//! resource attributes promoted to index labels, every other resource, scope and log attribute
//! as structured metadata (names normalised: dots and other invalid characters become `_`,
//! maps flattened as `key_subkey`), the record's `severity_number`, `severity_text`,
//! `observed_timestamp` (when both timestamps are set), `flags`, `dropped_attributes_count`,
//! `trace_id`, `span_id` (hex), `scope_name`, `scope_version`; `service_name` discovered or
//! `unknown_service`; `detected_level` added as the distributor does with `discover_log_levels`.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use base64::Engine as _;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use otlp_receiver::{ReceivedLogRecord, hex};
use serde_json::{Value, json};

use crate::common::{now_nanos, rfc3339};

/// Resource attributes Loki indexes by default
/// (`distributor.otlp.default_resource_attributes_as_index_labels`).
const INDEX_LABELS: [&str; 18] = [
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
];

/// `limits_config.discover_service_name`'s default, looked up among index labels.
const SERVICE_NAME_SOURCES: [&str; 13] = [
    "service",
    "app",
    "application",
    "app_name",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "k8s_container_name",
    "component",
    "workload",
    "job",
    "k8s_job_name",
];

/// Decides which log records a store loses.
pub(crate) type LogPredicate = Box<dyn Fn(&ReceivedLogRecord) -> bool + Send + Sync>;

/// One stored line.
#[derive(Debug)]
pub(crate) struct Entry {
    at: Instant,
    /// The tenant it was pushed for (`fake` when single-tenant).
    tenant: String,
    pub(crate) ts: u64,
    pub(crate) line: String,
    /// Index labels, sorted by name.
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) metadata: Vec<(String, String)>,
    record: ReceivedLogRecord,
}

#[derive(Default)]
pub(crate) struct LogStore {
    entries: Vec<Entry>,
    drop: Option<LogPredicate>,
    forgotten: HashSet<Vec<u8>>,
    /// The server clock's offset from the system clock, in nanoseconds (see
    /// `LokiDouble::set_clock`).
    pub(crate) clock_offset_ns: i128,
}

impl fmt::Debug for LogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore")
            .field("entries", &self.entries.len())
            .field("drops", &self.drop.is_some())
            .finish()
    }
}

impl LogStore {
    /// Validates and stores `record` for `tenant`; `Err` is Loki's message for a refused entry.
    pub(crate) fn push(&mut self, tenant: &str, record: &ReceivedLogRecord) -> Result<(), String> {
        let mut entry = to_entry(record);
        tenant.clone_into(&mut entry.tenant);
        let now = u64::try_from(i128::from(now_nanos()) + self.clock_offset_ns).unwrap_or(0);
        let stream = labels_string(&entry.labels);
        let at = |ns: u64| rfc3339(std::time::UNIX_EPOCH + Duration::from_nanos(ns));
        // limits_config: creation_grace_period 10m, reject_old_samples_max_age 1w.
        if entry.ts > now.saturating_add(600_000_000_000) {
            return Err(format!(
                "entry for stream '{stream}' has timestamp too new: {}",
                at(entry.ts)
            ));
        }
        let oldest = now.saturating_sub(7 * 24 * 3_600_000_000_000);
        if entry.ts < oldest {
            let (ts, oldest) = (at(entry.ts), at(oldest));
            return Err(format!(
                "entry for stream '{stream}' has timestamp too old: {ts}, oldest acceptable timestamp is: {oldest}"
            ));
        }
        let dropped = self.drop.as_ref().is_some_and(|p| p(record));
        if !dropped && !self.forgotten.contains(&record.record.trace_id) {
            self.entries.push(entry);
        }
        Ok(())
    }

    pub(crate) fn drop_logs(&mut self, predicate: LogPredicate) {
        self.entries.retain(|e| !predicate(&e.record));
        self.drop = Some(predicate);
    }

    pub(crate) fn forget(&mut self, id: [u8; 16]) {
        self.entries.retain(|e| e.record.record.trace_id != id);
        self.forgotten.insert(id.to_vec());
    }

    /// Entries of `tenant` received at least `lag` ago.
    pub(crate) fn visible<'a>(
        &'a self,
        tenant: &'a str,
        lag: Duration,
    ) -> impl Iterator<Item = &'a Entry> {
        self.entries
            .iter()
            .filter(move |e| e.tenant == tenant && e.at.elapsed() >= lag)
    }

    /// Every record stored, of every tenant.
    pub(crate) fn records(&self) -> Vec<ReceivedLogRecord> {
        self.entries.iter().map(|e| e.record.clone()).collect()
    }

    /// Every record stored for `tenant`.
    pub(crate) fn records_of(&self, tenant: &str) -> Vec<ReceivedLogRecord> {
        let entries = self.entries.iter().filter(|e| e.tenant == tenant);
        entries.map(|e| e.record.clone()).collect()
    }
}

/// `{a="b", c="d"}`, as Prometheus' `LabelSet.String` writes it.
pub(crate) fn labels_string(labels: &[(String, String)]) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

/// `otlptranslator.NormalizeLabel`.
fn normalize(key: &str) -> String {
    let mut out: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    } else if out.starts_with('_') && !out.starts_with("__") {
        out.insert_str(0, "key");
    }
    out
}

/// `pcommon.Value.AsString`.
fn as_string(v: &AnyValue) -> String {
    match &v.value {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::BoolValue(b)) => b.to_string(),
        Some(Any::IntValue(i)) => i.to_string(),
        Some(Any::DoubleValue(d)) => d.to_string(),
        Some(Any::BytesValue(b)) => base64::engine::general_purpose::STANDARD.encode(b),
        Some(_) => raw(v).to_string(),
        None => String::new(),
    }
}

fn raw(v: &AnyValue) -> Value {
    match &v.value {
        Some(Any::StringValue(s)) => json!(s),
        Some(Any::BoolValue(b)) => json!(b),
        Some(Any::IntValue(i)) => json!(i),
        Some(Any::DoubleValue(d)) => json!(d),
        Some(Any::BytesValue(b)) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        Some(Any::ArrayValue(a)) => Value::Array(a.values.iter().map(raw).collect()),
        Some(Any::KvlistValue(kv)) => {
            let map = kv
                .values
                .iter()
                .map(|e| (e.key.clone(), e.value.as_ref().map_or(Value::Null, raw)));
            Value::Object(map.collect())
        }
        Some(Any::StringValueStrindex(_)) | None => Value::Null,
    }
}

/// `attributeToLabels`: maps are flattened into `prefix_key` names.
fn attribute_labels(
    key: &str,
    value: Option<&AnyValue>,
    prefix: &str,
    out: &mut Vec<(String, String)>,
) {
    let name = normalize(&if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}_{key}")
    });
    match value.and_then(|v| v.value.as_ref()) {
        Some(Any::KvlistValue(kv)) => {
            for e in &kv.values {
                attribute_labels(&e.key, e.value.as_ref(), &name, out);
            }
        }
        _ => out.push((name, value.map(as_string).unwrap_or_default())),
    }
}

fn attributes(kvs: &[KeyValue], out: &mut Vec<(String, String)>) {
    for kv in kvs {
        attribute_labels(&kv.key, kv.value.as_ref(), "", out);
    }
}

/// The level Loki's distributor detects: from `severity_number`, else `severity_text`, else
/// keywords in the line.
fn detected_level(severity_number: i32, severity_text: &str, line: &str) -> &'static str {
    let by_number = match severity_number {
        1..=4 => Some("trace"),
        5..=8 => Some("debug"),
        9..=12 => Some("info"),
        13..=16 => Some("warn"),
        17..=20 => Some("error"),
        21..=24 => Some("critical"),
        _ => None,
    };
    let by_word = |word: &str| match word.to_ascii_lowercase().as_str() {
        "trace" => Some("trace"),
        "debug" | "dbg" => Some("debug"),
        "info" | "information" | "inf" => Some("info"),
        "warn" | "warning" | "wrn" => Some("warn"),
        "error" | "err" => Some("error"),
        "critical" | "fatal" | "crit" => Some("critical"),
        _ => None,
    };
    by_number
        .or_else(|| by_word(severity_text))
        .or_else(|| {
            line.split(|c: char| !c.is_ascii_alphabetic())
                .find_map(by_word)
        })
        .unwrap_or("unknown")
}

fn to_entry(rec: &ReceivedLogRecord) -> Entry {
    let r = &rec.record;
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    let mut resource_metadata = Vec::new();
    for kv in &rec.resource.attributes {
        let mut pairs = Vec::new();
        attribute_labels(&kv.key, kv.value.as_ref(), "", &mut pairs);
        if INDEX_LABELS.contains(&kv.key.as_str()) {
            labels.extend(pairs);
        } else {
            resource_metadata.extend(pairs);
        }
    }
    if labels.get("service_name").is_none_or(String::is_empty) {
        let found = SERVICE_NAME_SOURCES
            .iter()
            .find_map(|k| labels.get(*k).cloned());
        labels.insert(
            "service_name".into(),
            found.unwrap_or_else(|| "unknown_service".into()),
        );
    }
    let line = r.body.as_ref().map(as_string).unwrap_or_default();
    let mut metadata = Vec::new();
    attributes(&r.attributes, &mut metadata);
    let mut put = |k: &str, v: String| metadata.push((k.to_owned(), v));
    if r.time_unix_nano != 0 && r.observed_time_unix_nano != 0 {
        put("observed_timestamp", r.observed_time_unix_nano.to_string());
    }
    if r.severity_number != 0 {
        put("severity_number", r.severity_number.to_string());
    }
    if !r.severity_text.is_empty() {
        put("severity_text", r.severity_text.clone());
    }
    if r.dropped_attributes_count != 0 {
        put(
            "dropped_attributes_count",
            r.dropped_attributes_count.to_string(),
        );
    }
    if r.flags != 0 {
        put("flags", r.flags.to_string());
    }
    if !r.trace_id.is_empty() {
        put("trace_id", hex(&r.trace_id));
    }
    if !r.span_id.is_empty() {
        put("span_id", hex(&r.span_id));
    }
    metadata.extend(resource_metadata);
    attributes(&rec.scope.attributes, &mut metadata);
    let mut put = |k: &str, v: String| metadata.push((k.to_owned(), v));
    if !rec.scope.name.is_empty() {
        put("scope_name", rec.scope.name.clone());
    }
    if !rec.scope.version.is_empty() {
        put("scope_version", rec.scope.version.clone());
    }
    if rec.scope.dropped_attributes_count != 0 {
        put(
            "scope_dropped_attributes_count",
            rec.scope.dropped_attributes_count.to_string(),
        );
    }
    let level = detected_level(r.severity_number, &r.severity_text, &line);
    metadata.push(("detected_level".into(), level.into()));
    let ts = match (r.time_unix_nano, r.observed_time_unix_nano) {
        (0, 0) => now_nanos(),
        (0, observed) => observed,
        (ts, _) => ts,
    };
    Entry {
        at: Instant::now(),
        tenant: String::new(),
        ts,
        line,
        labels: labels.into_iter().collect(),
        metadata,
        record: rec.clone(),
    }
}

/// The `stats` object of a `query_range` answer, every counter Loki 3.8 writes, mostly zero.
pub(crate) fn stats(lines: usize, bytes: usize, returned: usize, metadata_bytes: usize) -> Value {
    let zeros =
        |keys: &[&str]| -> Value { keys.iter().map(|k| ((*k).to_owned(), json!(0))).collect() };
    let chunk = zeros(&[
        "headChunkBytes",
        "headChunkLines",
        "decompressedBytes",
        "decompressedLines",
        "compressedBytes",
        "totalDuplicates",
        "postFilterLines",
        "headChunkStructuredMetadataBytes",
        "decompressedStructuredMetadataBytes",
    ]);
    let dataobj = zeros(&[
        "prePredicateDecompressedRows",
        "prePredicateDecompressedBytes",
        "prePredicateDecompressedStructuredMetadataBytes",
        "postPredicateRows",
        "postPredicateDecompressedBytes",
        "postPredicateStructuredMetadataBytes",
        "postFilterRows",
        "pagesScanned",
        "pagesDownloaded",
        "pagesDownloadedBytes",
        "pageBatches",
        "totalRowsAvailable",
        "totalPageDownloadTime",
        "wireBytesTransferred",
    ]);
    let store = |head: bool| {
        let mut chunk = chunk.clone();
        if head {
            chunk["headChunkBytes"] = json!(bytes);
            chunk["headChunkLines"] = json!(lines);
            chunk["postFilterLines"] = json!(returned);
            chunk["headChunkStructuredMetadataBytes"] = json!(metadata_bytes);
        }
        json!({
            "totalChunksRef": 0, "totalChunksDownloaded": 0, "chunksDownloadTime": 0,
            "queryReferencedStructuredMetadata": head, "queryUsedV2Engine": false, "chunk": chunk,
            "chunkRefsFetchTime": 0, "congestionControlLatency": 0,
            "pipelineWrapperFilteredLines": 0, "dataobj": dataobj.clone(),
        })
    };
    let cache_entry = zeros(&[
        "entriesFound",
        "entriesRequested",
        "entriesStored",
        "bytesReceived",
        "bytesSent",
        "requests",
        "downloadTime",
        "queryLengthServed",
    ]);
    let caches = [
        "chunk",
        "index",
        "result",
        "statsResult",
        "volumeResult",
        "seriesResult",
        "labelResult",
        "instantMetricResult",
        "logResult",
        "taskResult",
    ];
    let cache: Value = caches
        .iter()
        .map(|k| ((*k).to_owned(), cache_entry.clone()))
        .collect();
    json!({
        "summary": {
            "bytesProcessedPerSecond": bytes * 100, "linesProcessedPerSecond": lines * 100,
            "totalBytesProcessed": bytes, "totalLinesProcessed": lines, "execTime": 0.01,
            "queueTime": 0.0, "subqueries": 0, "totalEntriesReturned": returned, "splits": 0,
            "shards": 1, "totalPostFilterLines": returned,
            "totalStructuredMetadataBytesProcessed": metadata_bytes,
        },
        "querier": { "store": store(false), "querierExecTime": 0.0 },
        "ingester": {
            "totalReached": 1, "totalChunksMatched": usize::from(lines > 0),
            "totalBatches": usize::from(lines > 0), "totalLinesSent": returned,
            "store": store(true), "recvWaitTime": 0.0,
        },
        "cache": cache,
        "index": {
            "totalChunks": 0, "postFilterChunks": 0, "shardsDuration": 0, "usedBloomFilters": false,
            "totalStreams": 0, "chunkRefsLookupTime": 0, "bloomFilterTime": 0,
        },
    })
}
