//! Metrics: a meter provider whose instruments are served in the Prometheus exposition formats
//! (pulled by a scrape of `/metrics`), and optionally pushed over OTLP or printed to stdout.

pub(crate) mod exposition;

use std::sync::{Arc, Weak};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    Instrument, InstrumentKind, ManualReader, PeriodicReader, Pipeline, SdkMeterProvider, Stream,
    Temporality,
};

use crate::Error;
use crate::config::{Resolved, Warnings};
use crate::exporters::{ConsoleMetricExporter, ExportRuntime, metric_exporter};
use crate::limits::LimitCounts;
use crate::pipeline::Counters;
use crate::semconv::attr;

pub use exposition::ExpositionFormat;

/// A pull reader shared between the meter provider and the `/metrics` handler.
#[derive(Clone, Debug)]
pub(crate) struct PrometheusReader {
    reader: Arc<ManualReader>,
    /// Told of every stream that reached the cardinality limit, at each scrape.
    limits: Arc<LimitCounts>,
    cardinality_limit: usize,
}

impl PrometheusReader {
    pub(crate) fn new(limits: Arc<LimitCounts>, cardinality_limit: usize) -> Self {
        Self {
            reader: Arc::new(
                ManualReader::builder()
                    .with_temporality(Temporality::Cumulative)
                    .build(),
            ),
            limits,
            cardinality_limit,
        }
    }

    /// Collects every instrument now and renders it.
    pub(crate) fn render(
        &self,
        format: ExpositionFormat,
        exemplars: &dyn exposition::ExemplarLookup,
    ) -> String {
        let mut rm = ResourceMetrics::default();
        let mut out = String::new();
        if self.reader.collect(&mut rm).is_ok() {
            // A stream that overflowed just now is counted by the gauge only from the next
            // collection: collect again (cumulative, so nothing is lost), once per such stream.
            if self.limits.watch_overflow(&rm, self.cardinality_limit) {
                let mut again = ResourceMetrics::default();
                if self.reader.collect(&mut again).is_ok() {
                    rm = again;
                }
            }
            exposition::encode(&rm, format, exemplars, &mut out);
        } else if format == ExpositionFormat::OpenMetrics {
            out.push_str("# EOF\n");
        }
        out
    }
}

impl MetricReader for PrometheusReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.reader.register_pipeline(pipeline);
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.reader.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.reader.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.reader.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.reader.temporality(kind)
    }
}

pub(crate) struct Metrics {
    pub(crate) provider: SdkMeterProvider,
    pub(crate) prometheus: Option<PrometheusReader>,
}

pub(crate) fn provider(
    cfg: &Resolved,
    resource: Resource,
    rt: &ExportRuntime,
    warnings: &mut Warnings,
) -> Result<Metrics, Error> {
    let cardinality = cfg.limits.metric_cardinality;
    // Every stream: name, unit, description and buckets stay the instrument's own.
    let mut builder = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_view(move |_: &Instrument| {
            Stream::builder()
                .with_cardinality_limit(cardinality)
                .build()
                .ok()
        });
    let mut prometheus = None;
    if cfg.metrics_exporters.prometheus {
        let reader = PrometheusReader::new(cfg.limits.counts.clone(), cardinality);
        builder = builder.with_reader(reader.clone());
        prometheus = Some(reader);
    }
    if cfg.metrics_exporters.otlp {
        let mut otlp = cfg.metrics_otlp.clone();
        otlp.timeout = otlp.timeout.min(cfg.metric_export_timeout);
        let exporter = metric_exporter(&otlp, rt, warnings)?;
        builder = builder.with_reader(
            PeriodicReader::builder(exporter)
                .with_interval(cfg.metric_export_interval)
                .build(),
        );
    }
    if cfg.metrics_exporters.console {
        builder = builder.with_reader(
            PeriodicReader::builder(ConsoleMetricExporter)
                .with_interval(cfg.metric_export_interval)
                .build(),
        );
    }
    Ok(Metrics {
        provider: builder.build(),
        prometheus,
    })
}

/// Registers the pipeline's own health as the semantic conventions' SDK metrics, so a full
/// queue or a refusing endpoint is visible on `/metrics` (`otel_sdk_processor_span_processed_total{error_type="queue_full"}`
/// and friends).
pub(crate) fn register_pipeline_metrics(
    meter: &Meter,
    spans: &Arc<Counters>,
    logs: &Arc<Counters>,
    limits: &Arc<LimitCounts>,
    endpoints: [&str; 2],
) {
    let l = limits.clone();
    let _log_attributes_dropped = meter
        .u64_observable_counter("platform_telemetry.log_record.dropped_attributes")
        .with_unit("{attribute}")
        .with_description(
            "Log record attributes dropped by OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT (OTLP log \
             records carry no dropped-attributes count from this SDK)",
        )
        .with_callback(move |observer| observer.observe(l.log_attributes_dropped(), &[]))
        .build();
    let l = limits.clone();
    let _overflowed = meter
        .u64_observable_gauge("platform_telemetry.metric.overflowed_streams")
        .with_unit("{stream}")
        .with_description(
            "Metric streams that reached the cardinality limit: their further attribute sets \
             are added up in the otel.metric.overflow=true series",
        )
        .with_callback(move |observer| observer.observe(l.overflowed_streams(), &[]))
        .build();
    let [span_endpoint, log_endpoint] = endpoints;
    for (signal, unit, processor_type, counters, endpoint) in [
        (
            "span",
            "{span}",
            "batching_span_processor",
            spans.clone(),
            span_endpoint,
        ),
        (
            "log",
            "{log_record}",
            "batching_log_processor",
            logs.clone(),
            log_endpoint,
        ),
    ] {
        // One processor and one exporter of each signal per instance: instance counter 0.
        let component = [
            KeyValue::new(attr::OTEL_COMPONENT_TYPE, processor_type),
            KeyValue::new(attr::OTEL_COMPONENT_NAME, format!("{processor_type}/0")),
        ];
        let c = counters.clone();
        let attrs = component.clone();
        let _processed = meter
            .u64_observable_counter(format!("otel.sdk.processor.{signal}.processed"))
            .with_unit(unit)
            .with_description(
                "Items whose processing finished; error.type=queue_full counts items dropped \
                 because the export queue was full, error.type=shutdown items that arrived after \
                 shutdown",
            )
            .with_callback(move |observer| {
                let s = c.snapshot();
                let [kind, name] = &attrs;
                observer.observe(s.exported + s.failed, &attrs);
                observer.observe(
                    s.dropped - s.dropped_after_shutdown,
                    &[
                        kind.clone(),
                        name.clone(),
                        KeyValue::new(attr::ERROR_TYPE, "queue_full"),
                    ],
                );
                if s.dropped_after_shutdown > 0 {
                    observer.observe(
                        s.dropped_after_shutdown,
                        &[
                            kind.clone(),
                            name.clone(),
                            KeyValue::new(attr::ERROR_TYPE, "shutdown"),
                        ],
                    );
                }
            })
            .build();
        let c = counters.clone();
        let attrs = component.clone();
        let _queue = meter
            .i64_observable_up_down_counter(format!("otel.sdk.processor.{signal}.queue.size"))
            .with_unit(unit)
            .with_description("Items waiting in the export queue or being exported")
            .with_callback(move |observer| {
                let size = i64::try_from(c.snapshot().queued).unwrap_or(i64::MAX);
                observer.observe(size, &attrs);
            })
            .build();
        let c = counters.clone();
        let attrs = component.clone();
        let _capacity = meter
            .i64_observable_up_down_counter(format!("otel.sdk.processor.{signal}.queue.capacity"))
            .with_unit(unit)
            .with_description("The export queue's bound")
            .with_callback(move |observer| {
                let capacity = i64::try_from(c.snapshot().capacity).unwrap_or(i64::MAX);
                observer.observe(capacity, &attrs);
            })
            .build();
        let c = counters;
        let exporter_type = format!("otlp_{signal}_exporter");
        let mut exporter = vec![
            KeyValue::new(attr::OTEL_COMPONENT_NAME, format!("{exporter_type}/0")),
            KeyValue::new(attr::OTEL_COMPONENT_TYPE, exporter_type),
        ];
        exporter.extend(endpoint_server(endpoint));
        let mut failed = exporter.clone();
        failed.push(KeyValue::new(attr::ERROR_TYPE, "export_failed"));
        let _exported = meter
            .u64_observable_counter(format!("otel.sdk.exporter.{signal}.exported"))
            .with_unit(unit)
            .with_description(
                "Items the exporter sent; error.type=export_failed counts items in failed exports",
            )
            .with_callback(move |observer| {
                let s = c.snapshot();
                observer.observe(s.exported, &exporter);
                observer.observe(s.failed, &failed);
            })
            .build();
    }
}

/// `server.address` and `server.port` of an OTLP endpoint URL (recommended on the
/// `otel.sdk.exporter.*` metrics): the port the URL names, else its scheme's. Nothing for a URL
/// without a host (the configuration has already warned about it).
pub(crate) fn endpoint_server(url: &str) -> Vec<KeyValue> {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return Vec::new();
    };
    let Some(host) = uri.host() else {
        return Vec::new();
    };
    let port = uri.port_u16().or(match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    });
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let mut out = vec![KeyValue::new(attr::SERVER_ADDRESS, host)];
    out.extend(port.map(|p| KeyValue::new(attr::SERVER_PORT, i64::from(p))));
    out
}

/// The latest sampled trace per histogram series, for OpenMetrics exemplars: a latency spike on
/// a dashboard links to a trace that shows it. Bounded: series beyond [`MAX_EXEMPLAR_SERIES`] get
/// no exemplar.
///
/// Recording is on the request path, so it keeps the ids raw and allocates only for a series it
/// has not seen before; the ids are formatted when a scrape asks for them.
#[derive(Debug, Default)]
pub(crate) struct ExemplarStore {
    latest: std::sync::Mutex<ExemplarSeries>,
}

#[derive(Debug, Default)]
struct ExemplarSeries {
    /// Series by the order-independent hash of (metric, attributes); a collision shares a bucket.
    by_hash: std::collections::HashMap<u64, Vec<ExemplarSlot>>,
    count: usize,
}

#[derive(Debug)]
struct ExemplarSlot {
    metric: Box<str>,
    attributes: Vec<KeyValue>,
    trace_id: opentelemetry::trace::TraceId,
    span_id: opentelemetry::trace::SpanId,
    value: f64,
    time: std::time::SystemTime,
}

impl ExemplarSlot {
    fn is(&self, metric: &str, attributes: &[KeyValue]) -> bool {
        &*self.metric == metric && same_attributes(&self.attributes, attributes)
    }
}

#[cfg_attr(not(feature = "http-server"), allow(dead_code))]
/// The most series the exemplar store remembers (the SDK's default cardinality limit).
pub(crate) const MAX_EXEMPLAR_SERIES: usize = 2000;

/// Attribute sets are equal whatever their order (keys are unique within a set).
fn same_attributes(a: &[KeyValue], b: &[KeyValue]) -> bool {
    a.len() == b.len() && a.iter().all(|kv| b.contains(kv))
}

/// A hash of the metric and its attribute set that does not depend on the attributes' order:
/// FNV-1a per attribute, summed. Not DoS-resistant, which it need not be: the attributes are the
/// application's own and the store holds at most [`MAX_EXEMPLAR_SERIES`] series; it runs on
/// every sampled request, where SipHash per attribute was a visible share of the cost.
pub(crate) fn series_hash(metric: &str, attributes: &[KeyValue]) -> u64 {
    struct Fnv(u64);
    impl Fnv {
        fn new() -> Self {
            Self(0xcbf2_9ce4_8422_2325)
        }
        fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
            for byte in bytes {
                self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
            }
            // A separator, so ("ab", "c") and ("a", "bc") differ.
            self.0 = (self.0 ^ 0xff).wrapping_mul(0x0000_0100_0000_01b3);
            self
        }
    }
    let hash_one = |kv: &KeyValue| {
        let mut h = Fnv::new();
        h.bytes(kv.key.as_str().as_bytes());
        match &kv.value {
            opentelemetry::Value::Bool(v) => h.bytes(&[0, u8::from(*v)]),
            opentelemetry::Value::I64(v) => h.bytes(&[1]).bytes(&v.to_le_bytes()),
            opentelemetry::Value::F64(v) => h.bytes(&[2]).bytes(&v.to_bits().to_le_bytes()),
            opentelemetry::Value::String(v) => h.bytes(&[3]).bytes(v.as_str().as_bytes()),
            other => h.bytes(&[4]).bytes(other.to_string().as_bytes()),
        };
        h.0
    };
    let mut h = Fnv::new();
    h.bytes(metric.as_bytes());
    attributes.iter().map(hash_one).fold(h.0, u64::wrapping_add)
}

impl ExemplarStore {
    #[cfg_attr(not(feature = "http-server"), allow(dead_code))]
    /// Remembers `value` measured in the span `span_context` for the series.
    pub(crate) fn record(
        &self,
        metric: &str,
        attributes: &[KeyValue],
        value: f64,
        span_context: &opentelemetry::trace::SpanContext,
    ) {
        if !span_context.is_sampled() {
            return;
        }
        self.record_series(
            series_hash(metric, attributes),
            metric,
            attributes,
            value,
            span_context,
        );
    }

    /// [`record`](Self::record) with the series' [`series_hash`] worked out beforehand (an
    /// instrument that records the same attribute set again and again keeps it).
    pub(crate) fn record_series(
        &self,
        hash: u64,
        metric: &str,
        attributes: &[KeyValue],
        value: f64,
        span_context: &opentelemetry::trace::SpanContext,
    ) {
        if !span_context.is_sampled() {
            return;
        }
        let time = std::time::SystemTime::now();
        let (trace_id, span_id) = (span_context.trace_id(), span_context.span_id());
        let mut latest = self
            .latest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let ExemplarSeries { by_hash, count } = &mut *latest;
        if let Some(slot) = by_hash
            .get_mut(&hash)
            .and_then(|bucket| bucket.iter_mut().find(|s| s.is(metric, attributes)))
        {
            slot.trace_id = trace_id;
            slot.span_id = span_id;
            slot.value = value;
            slot.time = time;
            return;
        }
        if *count >= MAX_EXEMPLAR_SERIES {
            return;
        }
        *count += 1;
        by_hash.entry(hash).or_default().push(ExemplarSlot {
            metric: metric.into(),
            attributes: attributes.to_vec(),
            trace_id,
            span_id,
            value,
            time,
        });
    }
}

impl exposition::ExemplarLookup for ExemplarStore {
    fn exemplar(&self, metric_name: &str, attributes: &[KeyValue]) -> Option<exposition::Exemplar> {
        let hash = series_hash(metric_name, attributes);
        let latest = self
            .latest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let slot = latest
            .by_hash
            .get(&hash)?
            .iter()
            .find(|s| s.is(metric_name, attributes))?;
        Some(exposition::Exemplar {
            trace_id: slot.trace_id.to_string(),
            span_id: slot.span_id.to_string(),
            value: slot.value,
            timestamp_seconds: slot
                .time
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs_f64()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::exposition::ExemplarLookup as _;
    use super::*;

    #[test]
    fn an_exporter_names_its_endpoints_host_and_port() {
        let pairs = |url: &str| -> Vec<(String, String)> {
            endpoint_server(url)
                .into_iter()
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect()
        };
        let both = |host: &str, port: &str| {
            vec![
                ("server.address".to_string(), host.to_string()),
                ("server.port".to_string(), port.to_string()),
            ]
        };
        assert_eq!(
            pairs("http://collector:4318/v1/traces"),
            both("collector", "4318")
        );
        assert_eq!(
            pairs("https://otel.example.com"),
            both("otel.example.com", "443")
        );
        assert_eq!(pairs("http://[::1]:4317"), both("::1", "4317"));
        assert_eq!(pairs("http://user:secret@host:1/x"), both("host", "1"));
        assert!(pairs("").is_empty());
        assert!(pairs("not a url").is_empty());
    }
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    fn span(sampled: bool) -> SpanContext {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanContext::new(
            TraceId::from(0x0af7651916cd43dd8448eb211c80319c_u128),
            SpanId::from(0x00f067aa0ba902b7_u64),
            flags,
            false,
            TraceState::default(),
        )
    }

    #[test]
    fn exemplars_keep_the_latest_sampled_trace_per_series_and_stay_bounded() {
        let store = ExemplarStore::default();
        let route = [
            KeyValue::new("http.route", "/a"),
            KeyValue::new("http.request.method", "GET"),
        ];
        store.record("m", &route, 0.5, &span(false));
        assert!(
            store.exemplar("m", &route).is_none(),
            "unsampled traces are not exemplars"
        );
        store.record("m", &route, 0.5, &span(true));
        let mut reversed = route.to_vec();
        reversed.reverse();
        let exemplar = store
            .exemplar("m", &reversed)
            .expect("found in any attribute order");
        assert_eq!(exemplar.trace_id, "0af7651916cd43dd8448eb211c80319c");
        for i in 0..MAX_EXEMPLAR_SERIES + 10 {
            store.record("m", &[KeyValue::new("i", i as i64)], 1.0, &span(true));
        }
        let held = store.latest.lock().map(|l| l.count).unwrap_or_default();
        assert_eq!(held, MAX_EXEMPLAR_SERIES);
    }
}
