//! Renders the metric data of one `ManualReader::collect` as Prometheus text exposition format
//! 0.0.4 or OpenMetrics 1.0.0 text, following the OpenTelemetry specification "Prometheus and
//! OpenMetrics Compatibility". Pure functions, no panics. Delta sums and histograms and all
//! exponential histograms are skipped: the Prometheus formats have no place for them here.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::UNIX_EPOCH;

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, HistogramDataPoint, Metric, MetricData, ResourceMetrics, ScopeMetrics,
};

/// The two text formats a Prometheus-compatible scraper can ask for (`pub`: the crate
/// re-exports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpositionFormat {
    /// Prometheus text exposition format 0.0.4.
    PrometheusText,
    /// OpenMetrics 1.0.0 text: `# UNIT`, the `info` type, exemplars and a closing `# EOF`.
    OpenMetrics,
}

impl ExpositionFormat {
    /// Negotiates from an HTTP Accept header value the way Prometheus sends it
    /// (e.g. `application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1`):
    /// OpenMetrics when it is acceptable (named explicitly, version 1.0.0 or none, q > 0) with a q
    /// at least as high as text/plain's (from the most specific of `text/plain`, `text/*`, `*/*`),
    /// else PrometheusText. `None` or garbage gives PrometheusText.
    pub(crate) fn from_accept(accept: Option<&str>) -> Self {
        let mut openmetrics_q = 0.0_f32;
        let mut text_q: [Option<f32>; 3] = [None; 3]; // by specificity: */*, text/*, text/plain
        for range in accept.unwrap_or_default().split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let (mut q, mut version) = (Some(1.0_f32), None);
            for param in parts {
                let (key, value) = param.split_once('=').unwrap_or((param, ""));
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    "q" => q = value.parse().ok().filter(|q| (0.0..=1.0).contains(q)),
                    "version" => version = Some(value),
                    _ => {}
                }
            }
            let Some(q) = q else { continue };
            let slot = match (media.as_str(), version) {
                ("application/openmetrics-text", None | Some("1.0.0")) => {
                    openmetrics_q = openmetrics_q.max(q);
                    continue;
                }
                ("text/plain", None | Some("0.0.4")) => 2,
                ("text/*", _) => 1,
                ("*/*", _) => 0,
                _ => continue,
            };
            text_q[slot] = Some(text_q[slot].map_or(q, |old| old.max(q)));
        }
        let text_q = text_q.iter().rev().find_map(|q| *q).unwrap_or(0.0);
        if openmetrics_q > 0.0 && openmetrics_q >= text_q {
            Self::OpenMetrics
        } else {
            Self::PrometheusText
        }
    }

    /// The HTTP `Content-Type` of a response body in this format.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::PrometheusText => "text/plain; version=0.0.4; charset=utf-8",
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// An exemplar to attach to a histogram bucket (OpenMetrics only): the latest sampled trace for the series.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Exemplar {
    /// The trace id, 32 lowercase hex digits.
    pub(crate) trace_id: String,
    /// The span id, 16 lowercase hex digits.
    pub(crate) span_id: String,
    /// The measured value; its bucket is the one whose `le` is the smallest bound >= it, or +Inf.
    pub(crate) value: f64,
    /// When the value was measured, in seconds since the Unix epoch.
    pub(crate) timestamp_seconds: Option<f64>,
}

/// Looks up exemplars for one series: (otel metric name, attribute set of the point sorted by
/// key) -> exemplar for the bucket index the value falls into.
pub(crate) trait ExemplarLookup {
    /// The exemplar for the histogram series `metric_name` with these sorted `attributes`.
    fn exemplar(&self, metric_name: &str, attributes: &[KeyValue]) -> Option<Exemplar>;
}

/// An [`ExemplarLookup`] that never has an exemplar.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NoExemplars;

impl ExemplarLookup for NoExemplars {
    fn exemplar(&self, _metric_name: &str, _attributes: &[KeyValue]) -> Option<Exemplar> {
        None
    }
}

/// Appends the exposition of one collection (`ManualReader::collect`) to `out`.
///
/// Families are sorted by name, series by their sorted labels. Resource attributes become one
/// `target_info` family. Instruments mapping to one sanitized name share one family; one whose
/// name is taken by a family of another type is skipped, as is a series repeating the labels of
/// one already written. Scopes (by name, version) and instruments (by name) are taken in order.
pub(crate) fn encode(
    metrics: &ResourceMetrics,
    format: ExpositionFormat,
    exemplars: &dyn ExemplarLookup,
    out: &mut String,
) {
    let om = format == ExpositionFormat::OpenMetrics;
    let mut families = Families::default();
    let resource = metrics
        .resource()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()));
    let resource = render_labels(label_map(resource, &[]));
    if !resource.is_empty()
        && let Some(family) = families.family("target", Kind::Info, "Target metadata", "")
    {
        let line = format!("target_info{{{resource}}} 1\n");
        family.series.insert(resource, line);
    }
    let mut scopes: Vec<&ScopeMetrics> = metrics.scope_metrics().collect();
    scopes.sort_by_key(|s| (s.scope().name(), s.scope().version()));
    for scope_metrics in scopes {
        let scope = scope_metrics.scope();
        let mut scope_labels = vec![("otel_scope_name", scope.name())];
        if let Some(version) = scope.version().filter(|v| !v.is_empty()) {
            scope_labels.push(("otel_scope_version", version));
        }
        let mut instruments: Vec<&Metric> = scope_metrics.metrics().collect();
        instruments.sort_by_key(|m| m.name());
        for metric in instruments {
            let cx = Cx {
                metric,
                scope: &scope_labels,
                om,
                exemplars,
            };
            match metric.data() {
                AggregatedMetrics::F64(data) => cx.add(&mut families, data),
                AggregatedMetrics::U64(data) => cx.add(&mut families, data),
                AggregatedMetrics::I64(data) => cx.add(&mut families, data),
            }
        }
    }
    families.write(om, out);
}

/// The Prometheus type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
    Info,
}

/// The value types the SDK aggregates: integers are written as integers.
trait Value: Copy {
    fn text(self, om: bool) -> String;
    fn float(self) -> f64;
}

macro_rules! integer_value {
    ($($t:ty),*) => {$(impl Value for $t {
        fn text(self, _om: bool) -> String { self.to_string() }
        fn float(self) -> f64 { self as f64 }
    })*};
}
integer_value!(u64, i64);

impl Value for f64 {
    fn text(self, om: bool) -> String {
        fmt_float(self, om)
    }
    fn float(self) -> f64 {
        self
    }
}

/// One family: a single `# HELP`/`# TYPE` block and its series' sample lines by sorted labels.
#[derive(Debug)]
struct Family {
    kind: Kind,
    help: String,
    unit: String,
    series: BTreeMap<String, String>,
}

/// The families of one exposition by base name (the OpenMetrics family name).
#[derive(Debug, Default)]
struct Families {
    by_name: BTreeMap<String, Family>,
    /// Every family and sample name in use -> the base name of the family using it.
    claims: HashMap<String, String>,
}

impl Families {
    /// The family `base` of `kind`, created if new; `None` when one of its names is taken by a
    /// family of another type or name (e.g. gauge `x` against counter `x`, or `x_total` against it).
    fn family(&mut self, base: &str, kind: Kind, help: &str, unit: &str) -> Option<&mut Family> {
        let suffixes: &[&str] = match kind {
            Kind::Counter => &["", "_total"],
            Kind::Gauge => &[""],
            Kind::Histogram => &["", "_bucket", "_sum", "_count"],
            Kind::Info => &["", "_info"],
        };
        let names: Vec<String> = suffixes.iter().map(|s| format!("{base}{s}")).collect();
        let taken = |n: &String| self.claims.get(n).is_some_and(|owner| owner != base);
        if names.iter().any(taken) || self.by_name.get(base).is_some_and(|f| f.kind != kind) {
            return None;
        }
        for name in names {
            self.claims.insert(name, base.to_owned());
        }
        let family = self
            .by_name
            .entry(base.to_owned())
            .or_insert_with(|| Family {
                kind,
                help: help.to_owned(),
                unit: unit.to_owned(),
                series: BTreeMap::new(),
            });
        if family.help.is_empty() {
            family.help = help.to_owned();
        }
        if family.unit.is_empty() {
            family.unit = unit.to_owned();
        }
        Some(family)
    }

    /// Writes the families that have series, sorted by the name they have in the format.
    fn write(&self, om: bool, out: &mut String) {
        let mut families: Vec<(String, &Family)> = Vec::new();
        for (base, family) in self.by_name.iter().filter(|(_, f)| !f.series.is_empty()) {
            let name = match (om, family.kind) {
                (false, Kind::Counter) => format!("{base}_total"),
                (false, Kind::Info) => format!("{base}_info"),
                _ => base.clone(),
            };
            families.push((name, family));
        }
        families.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, family) in families {
            if !family.help.is_empty() {
                let _ = writeln!(out, "# HELP {name} {}", escape_help(&family.help, om));
            }
            let kind = match family.kind {
                Kind::Counter => "counter",
                Kind::Histogram => "histogram",
                Kind::Info if om => "info",
                Kind::Gauge | Kind::Info => "gauge",
            };
            let _ = writeln!(out, "# TYPE {name} {kind}");
            if om && !family.unit.is_empty() && name.ends_with(&format!("_{}", family.unit)) {
                let _ = writeln!(out, "# UNIT {name} {}", family.unit);
            }
            family.series.values().for_each(|lines| out.push_str(lines));
        }
        if om {
            out.push_str("# EOF\n");
        }
    }
}

/// What one instrument of one scope is encoded with.
struct Cx<'a> {
    metric: &'a Metric,
    scope: &'a [(&'a str, &'a str)],
    om: bool,
    exemplars: &'a dyn ExemplarLookup,
}

impl Cx<'_> {
    /// Adds the series of the instrument to its family.
    fn add<T: Value>(&self, families: &mut Families, data: &MetricData<T>) {
        let (kind, temporality) = match data {
            MetricData::Gauge(_) => (Kind::Gauge, Temporality::Cumulative),
            MetricData::Sum(s) if s.is_monotonic() => (Kind::Counter, s.temporality()),
            MetricData::Sum(s) => (Kind::Gauge, s.temporality()),
            MetricData::Histogram(h) => (Kind::Histogram, h.temporality()),
            MetricData::ExponentialHistogram(_) => return,
        };
        if temporality != Temporality::Cumulative {
            return;
        }
        let m = self.metric;
        let (base, unit) = family_name(m.name(), m.unit(), kind);
        let Some(family) = families.family(&base, kind, m.description(), &unit) else {
            return;
        };
        let total = if kind == Kind::Counter { "_total" } else { "" };
        let name = format!("{base}{total}");
        let series: Vec<(String, String)> = match data {
            MetricData::Gauge(g) => g
                .data_points()
                .map(|p| self.single(&name, p.attributes(), p.value()))
                .collect(),
            MetricData::Sum(s) => s
                .data_points()
                .map(|p| self.single(&name, p.attributes(), p.value()))
                .collect(),
            MetricData::Histogram(h) => h.data_points().map(|p| self.histogram(&name, p)).collect(),
            MetricData::ExponentialHistogram(_) => Vec::new(),
        };
        for (labels, lines) in series {
            family.series.entry(labels).or_insert(lines);
        }
    }

    /// (labels, sample line) of a counter or gauge point.
    fn single<'k, T: Value>(
        &self,
        name: &str,
        attributes: impl Iterator<Item = &'k KeyValue>,
        value: T,
    ) -> (String, String) {
        let labels = render_labels(self.labels(attributes));
        let line = format!("{name}{} {}\n", braces(&labels), value.text(self.om));
        (labels, line)
    }

    /// (labels without `le`, sample lines) of a histogram point: cumulative `_bucket`s up to
    /// `+Inf` (with their exemplars in OpenMetrics), `_sum` and `_count`.
    fn histogram<T: Value>(&self, name: &str, point: &HistogramDataPoint<T>) -> (String, String) {
        let mut labels = self.labels(point.attributes());
        labels.remove("le");
        let labels = render_labels(labels);
        let separator = if labels.is_empty() { "" } else { "," };
        let bounds = point.bounds().chain([f64::INFINITY]);
        let buckets = bounds
            .zip(point.bucket_counts())
            .zip(self.bucket_exemplars(point));
        let (mut lines, mut cumulative) = (String::new(), 0_u64);
        for ((bound, count), exemplar) in buckets {
            cumulative = cumulative.saturating_add(count);
            let le = fmt_float(bound, self.om);
            let _ = write!(
                lines,
                "{name}_bucket{{{labels}{separator}le=\"{le}\"}} {cumulative}"
            );
            if let Some(e) = exemplar {
                let (trace, span) = (escape_label(&e.trace_id), escape_label(&e.span_id));
                let value = fmt_float(e.value, true);
                let _ = write!(
                    lines,
                    " # {{trace_id=\"{trace}\",span_id=\"{span}\"}} {value}"
                );
                if let Some(seconds) = e.timestamp_seconds.filter(|t| t.is_finite()) {
                    let _ = write!(lines, " {seconds}");
                }
            }
            lines.push('\n');
        }
        let (braces, sum) = (braces(&labels), point.sum().text(self.om));
        let _ = write!(
            lines,
            "{name}_sum{braces} {sum}\n{name}_count{braces} {}\n",
            point.count()
        );
        (labels, lines)
    }

    /// The exemplar of each bucket (none outside OpenMetrics): the latest of the SDK's own,
    /// overridden in its bucket by the lookup's.
    fn bucket_exemplars<T: Value>(&self, point: &HistogramDataPoint<T>) -> Vec<Option<Exemplar>> {
        let bounds: Vec<f64> = point.bounds().collect();
        let bucket = |v: f64| bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len());
        let mut slots: Vec<Option<Exemplar>> = vec![None; bounds.len() + 1];
        if !self.om {
            return slots;
        }
        for e in point.exemplars().filter(|e| e.trace_id() != &[0; 16]) {
            let since_epoch = e.time().duration_since(UNIX_EPOCH).ok();
            let time = since_epoch.map(|d| d.as_secs_f64());
            let (trace_id, span_id, value) = (hex(e.trace_id()), hex(e.span_id()), e.value.float());
            let new = Exemplar {
                trace_id,
                span_id,
                value,
                timestamp_seconds: time,
            };
            let newer = |old: &Exemplar| old.timestamp_seconds <= time;
            if let Some(slot) = slots.get_mut(bucket(value))
                && slot.as_ref().is_none_or(newer)
            {
                *slot = Some(new);
            }
        }
        let mut attributes: Vec<KeyValue> = point.attributes().cloned().collect();
        attributes.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
        if let Some(e) = self.exemplars.exemplar(self.metric.name(), &attributes)
            && let Some(slot) = slots.get_mut(bucket(e.value))
        {
            *slot = Some(e);
        }
        slots
    }

    /// The labels of a point: its attributes and the scope's.
    fn labels<'k>(&self, attrs: impl Iterator<Item = &'k KeyValue>) -> BTreeMap<String, String> {
        label_map(
            attrs.map(|kv| (kv.key.as_str(), kv.value.as_str())),
            self.scope,
        )
    }
}

/// Lowercase hex of an id.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Label name -> value: attribute keys sanitized, those colliding merged with their values joined
/// by `;` in sorted key order; then the scope labels, which win over attributes of the same name.
fn label_map<'a, V: AsRef<str>>(
    attributes: impl Iterator<Item = (&'a str, V)>,
    scope: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let mut merged: BTreeMap<String, Vec<(&'a str, V)>> = BTreeMap::new();
    for (key, value) in attributes.filter(|(key, _)| !key.is_empty()) {
        merged
            .entry(sanitize_label(key))
            .or_default()
            .push((key, value));
    }
    let mut labels = BTreeMap::new();
    for (label, mut values) in merged {
        values.sort_by(|a, b| a.0.cmp(b.0));
        let values: Vec<&str> = values.iter().map(|(_, v)| v.as_ref()).collect();
        labels.insert(label, values.join(";"));
    }
    for (name, value) in scope {
        labels.insert((*name).to_owned(), (*value).to_owned());
    }
    labels
}

/// `k1="v1",k2="v2"`, values escaped.
fn render_labels(labels: BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    pairs.join(",")
}

/// `{labels}`, or nothing without labels.
fn braces(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

/// Escapes a label value: backslash, double quote, line feed.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// Escapes HELP text: backslash and line feed, in OpenMetrics also the double quote.
fn escape_help(help: &str, om: bool) -> String {
    let help = help.replace('\\', r"\\").replace('\n', r"\n");
    if om { help.replace('"', "\\\"") } else { help }
}

/// A label name from an attribute key: other characters than `[a-zA-Z0-9_]` become `_`; a leading
/// digit gets the prefix `key_`, a leading `__` (reserved by Prometheus) the prefix `key`.
fn sanitize_label(key: &str) -> String {
    let name: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("key_{name}")
    } else if name.starts_with("__") {
        format!("key{name}")
    } else {
        name
    }
}

/// A metric name of `[a-zA-Z_:][a-zA-Z0-9_:]*`: other characters become `_`, runs of `_`
/// collapse, a leading digit gets the prefix `_`.
fn sanitize_name(name: &str) -> String {
    let mut out = String::from(if name.starts_with(|c: char| c.is_ascii_digit()) {
        "_"
    } else {
        ""
    });
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == ':' {
            c
        } else {
            '_'
        };
        if c != '_' || !out.ends_with('_') {
            out.push(c);
        }
    }
    out
}

/// The family base name (counters without `_total`) and the unit suffix (`""` if none).
fn family_name(name: &str, unit: &str, kind: Kind) -> (String, String) {
    let unit = unit_suffix(unit, kind == Kind::Gauge);
    let mut base = sanitize_name(name);
    if kind == Kind::Counter
        && let Some(stripped) = base.strip_suffix("_total")
    {
        base = stripped.to_owned();
    }
    if !unit.is_empty() && base != unit && !base.ends_with(&format!("_{unit}")) {
        base = sanitize_name(&format!("{base}_{unit}"));
    }
    (base, unit)
}

/// UCUM units with a Prometheus name, from the specification's table.
const UNITS: &str = "d:days h:hours min:minutes s:seconds ms:milliseconds us:microseconds \
    ns:nanoseconds By:bytes KiBy:kibibytes MiBy:mebibytes GiBy:gibibytes TiBy:tibibytes \
    KBy:kilobytes MBy:megabytes GBy:gigabytes TBy:terabytes m:meters V:volts A:amperes J:joules \
    W:watts g:grams Cel:celsius Hz:hertz %:percent";
/// The names of units after a `/`.
const PER_UNITS: &str = "s:second m:minute h:hour d:day w:week mo:month y:year";

/// The Prometheus suffix of a UCUM unit: `s` -> `seconds`, `By/s` -> `bytes_per_second`,
/// `{request}` -> nothing, `1` -> `ratio` (gauges only), other units sanitized.
fn unit_suffix(unit: &str, gauge: bool) -> String {
    let (mut plain, mut depth) = (String::new(), 0_usize);
    for c in unit.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let name = |table: &'static str, unit: &str| {
        let mut entries = table.split_whitespace().filter_map(|e| e.split_once(':'));
        let known = entries.find(|(k, _)| *k == unit).map(|(_, v)| v.to_owned());
        known.unwrap_or_else(|| sanitize_name(unit).trim_matches('_').to_owned())
    };
    let (numerator, per) = match plain.split_once('/') {
        Some((n, d)) => (n.trim(), name(PER_UNITS, d.trim())),
        None => (plain.trim(), String::new()),
    };
    let numerator = match numerator {
        "1" if gauge && per.is_empty() => "ratio".to_owned(),
        "1" => String::new(),
        other => name(UNITS, other),
    };
    match (numerator.is_empty(), per.is_empty()) {
        (_, true) => numerator,
        (true, false) => format!("per_{per}"),
        (false, false) => format!("{numerator}_per_{per}"),
    }
}

/// A float as Go's `strconv.FormatFloat(f, 'g', -1, 64)` writes it, like Prometheus clients
/// (`0.005`, `1`, `2.5`, `1e+06`, `NaN`, `+Inf`, `-Inf`); OpenMetrics adds `.0` to integral
/// values, its canonical form (`le="1.0"`).
fn fmt_float(f: f64, om: bool) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    } else if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let scientific = format!("{f:e}"); // shortest round-trip digits, e.g. "-1.25e-7"
    let (mantissa, exp) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = mantissa
        .strip_prefix('-')
        .map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let text = if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let dot = if rest.is_empty() { "" } else { "." };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!(
            "{sign}{first}{dot}{rest}e{exp_sign}{:02}",
            exp.unsigned_abs()
        )
    } else if exp < 0 {
        format!(
            "{sign}0.{}{digits}",
            "0".repeat(exp.unsigned_abs() as usize - 1)
        )
    } else {
        let int_len = exp.unsigned_abs() as usize + 1;
        let padded = format!("{digits:0<int_len$}");
        let (int, frac) = padded.split_at(int_len);
        if frac.is_empty() {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{frac}")
        }
    };
    if om && !text.contains(['.', 'e']) {
        text + ".0"
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::InstrumentationScope;
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::metrics::SdkMeterProvider;
    use opentelemetry_sdk::metrics::reader::MetricReader as _;

    /// Records with `record` on a fresh provider and collects once.
    fn collect(resource: &[KeyValue], record: impl FnOnce(&SdkMeterProvider)) -> ResourceMetrics {
        let reader = crate::metrics::PrometheusReader::new(std::sync::Arc::default(), 2000);
        let resource = Resource::builder_empty()
            .with_attributes(resource.to_vec())
            .build();
        let provider = SdkMeterProvider::builder()
            .with_reader(reader.clone())
            .with_resource(resource)
            .build();
        record(&provider);
        let mut metrics = ResourceMetrics::default();
        reader.collect(&mut metrics).unwrap();
        metrics
    }

    fn render(
        metrics: &ResourceMetrics,
        format: ExpositionFormat,
        lookup: &dyn ExemplarLookup,
    ) -> String {
        let mut out = String::new();
        encode(metrics, format, lookup, &mut out);
        out
    }

    fn scope(name: &'static str) -> InstrumentationScope {
        InstrumentationScope::builder(name)
            .with_version("0.3.0")
            .build()
    }

    fn fixture() -> ResourceMetrics {
        let resource = [
            KeyValue::new("service.name", "checkout"),
            KeyValue::new("service.version", "1.4"),
        ];
        collect(&resource, |provider| {
            let meter = provider.meter_with_scope(scope("shop"));
            let get = [KeyValue::new("http.request.method", "GET")];
            let requests = meter
                .u64_counter("http.server.requests")
                .with_unit("{request}");
            requests
                .with_description("Requests served.")
                .build()
                .add(3, &get);
            meter
                .f64_counter("net.io")
                .with_unit("By")
                .build()
                .add(1536.5, &[]);
            meter
                .i64_up_down_counter("queue.depth")
                .with_unit("{item}")
                .build()
                .add(-2, &[]);
            meter
                .f64_gauge("cpu.utilization")
                .with_unit("1")
                .build()
                .record(0.25, &[]);
            let duration = meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s");
            let duration = duration.with_boundaries(vec![0.005, 0.1, 1.0, 2.5]).build();
            for value in [0.0625, 0.75, 3.0] {
                duration.record(value, &get);
            }
        })
    }

    const SCOPE: &str = r#"otel_scope_name="shop",otel_scope_version="0.3.0""#;

    #[test]
    fn prometheus_text_exact() {
        let expected = r#"# TYPE cpu_utilization_ratio gauge
cpu_utilization_ratio{S} 0.25
# TYPE http_server_request_duration_seconds histogram
http_server_request_duration_seconds_bucket{http_request_method="GET",S,le="0.005"} 0
http_server_request_duration_seconds_bucket{http_request_method="GET",S,le="0.1"} 1
http_server_request_duration_seconds_bucket{http_request_method="GET",S,le="1"} 2
http_server_request_duration_seconds_bucket{http_request_method="GET",S,le="2.5"} 2
http_server_request_duration_seconds_bucket{http_request_method="GET",S,le="+Inf"} 3
http_server_request_duration_seconds_sum{http_request_method="GET",S} 3.8125
http_server_request_duration_seconds_count{http_request_method="GET",S} 3
# HELP http_server_requests_total Requests served.
# TYPE http_server_requests_total counter
http_server_requests_total{http_request_method="GET",S} 3
# TYPE net_io_bytes_total counter
net_io_bytes_total{S} 1536.5
# TYPE queue_depth gauge
queue_depth{S} -2
# HELP target_info Target metadata
# TYPE target_info gauge
target_info{service_name="checkout",service_version="1.4"} 1
"#;
        let out = render(&fixture(), ExpositionFormat::PrometheusText, &NoExemplars);
        assert_eq!(
            out,
            expected
                .replace(",S", &format!(",{SCOPE}"))
                .replace("{S}", &format!("{{{SCOPE}}}"))
        );
    }

    /// Exemplars for `http.server.request.duration{http.request.method="GET"}` only.
    struct OneExemplar;

    impl ExemplarLookup for OneExemplar {
        fn exemplar(&self, metric_name: &str, attributes: &[KeyValue]) -> Option<Exemplar> {
            let wanted = [KeyValue::new("http.request.method", "GET")];
            (metric_name == "http.server.request.duration" && attributes == wanted).then(|| {
                Exemplar {
                    trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                    span_id: "00f067aa0ba902b7".into(),
                    value: 0.75,
                    timestamp_seconds: Some(1_700_000_000.5),
                }
            })
        }
    }

    #[test]
    fn openmetrics_exact_with_exemplar() {
        let expected = r#"# TYPE cpu_utilization_ratio gauge
# UNIT cpu_utilization_ratio ratio
cpu_utilization_ratio{S} 0.25
# TYPE http_server_request_duration_seconds histogram
# UNIT http_server_request_duration_seconds seconds
http_server_request_duration_seconds_bucket{http_request_method="GET",S,le="0.005"} 0
http_server_request_duration_seconds_bucket{http_request_method="GET",S,le="0.1"} 1
http_server_request_duration_seconds_bucket{http_request_method="GET",S,le="1.0"} 2 # {trace_id="4bf92f3577b34da6a3ce929d0e0e4736",span_id="00f067aa0ba902b7"} 0.75 1700000000.5
http_server_request_duration_seconds_bucket{http_request_method="GET",S,le="2.5"} 2
http_server_request_duration_seconds_bucket{http_request_method="GET",S,le="+Inf"} 3
http_server_request_duration_seconds_sum{http_request_method="GET",S} 3.8125
http_server_request_duration_seconds_count{http_request_method="GET",S} 3
# HELP http_server_requests Requests served.
# TYPE http_server_requests counter
http_server_requests_total{http_request_method="GET",S} 3
# TYPE net_io_bytes counter
# UNIT net_io_bytes bytes
net_io_bytes_total{S} 1536.5
# TYPE queue_depth gauge
queue_depth{S} -2
# HELP target Target metadata
# TYPE target info
target_info{service_name="checkout",service_version="1.4"} 1
# EOF
"#;
        let out = render(&fixture(), ExpositionFormat::OpenMetrics, &OneExemplar);
        assert_eq!(
            out,
            expected
                .replace(",S", &format!(",{SCOPE}"))
                .replace("{S}", &format!("{{{SCOPE}}}"))
        );
        // Prometheus text never carries exemplars.
        let text = render(&fixture(), ExpositionFormat::PrometheusText, &OneExemplar);
        assert!(!text.contains("trace_id"));
    }

    #[test]
    fn escapes_label_values_and_help() {
        let metrics = collect(&[], |provider| {
            let meter = provider.meter_with_scope(InstrumentationScope::builder("esc").build());
            let gauge = meter
                .i64_gauge("weird")
                .with_description("a \\ b\nc \"d\"")
                .build();
            gauge.record(1, &[KeyValue::new("path", "C:\\tmp\n\"x\"")]);
        });
        let text = render(&metrics, ExpositionFormat::PrometheusText, &NoExemplars);
        let line = r#"weird{otel_scope_name="esc",path="C:\\tmp\n\"x\""} 1"#;
        assert_eq!(
            text,
            format!("# HELP weird a \\\\ b\\nc \"d\"\n# TYPE weird gauge\n{line}\n")
        );
        let om = render(&metrics, ExpositionFormat::OpenMetrics, &NoExemplars);
        assert!(
            om.starts_with("# HELP weird a \\\\ b\\nc \\\"d\\\"\n# TYPE weird gauge\n"),
            "{om}"
        );
        assert!(om.contains(line) && om.ends_with("# EOF\n"));
    }

    #[test]
    fn merges_families_across_scopes_and_skips_type_conflicts() {
        let metrics = collect(&[], |provider| {
            let a = provider.meter_with_scope(InstrumentationScope::builder("a").build());
            let attrs = [
                KeyValue::new("a_b", "y"),
                KeyValue::new("a.b", "x"),
                KeyValue::new("1st", 1),
            ];
            a.u64_counter("jobs.done")
                .with_unit("{job}")
                .build()
                .add(1, &attrs);
            let b = provider.meter_with_scope(InstrumentationScope::builder("b").build());
            b.u64_counter("jobs.done")
                .with_description("Jobs.")
                .build()
                .add(2, &[]);
            b.i64_gauge("jobs.done").build().record(5, &[]); // counter family `jobs_done` exists
            b.f64_gauge("jobs_done_total").build().record(6.0, &[]); // its samples' name
        });
        let text = render(&metrics, ExpositionFormat::PrometheusText, &NoExemplars);
        let expected = r#"# HELP jobs_done_total Jobs.
# TYPE jobs_done_total counter
jobs_done_total{a_b="x;y",key_1st="1",otel_scope_name="a"} 1
jobs_done_total{otel_scope_name="b"} 2
"#;
        assert_eq!(text, expected);
    }

    #[test]
    fn negotiates_accept_header() {
        let cases = r#"text|
text|;;,=q,garbage/
text|*/*
om|application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1
om|application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1
om|application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,text/plain;version=0.0.4;q=0.3
text|text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5
om|application/openmetrics-text
om|Application/OpenMetrics-Text; Version="1.0.0"; Q=0.5, text/*;q=0.5
text|application/openmetrics-text;version=1.0.0;q=0
text|application/openmetrics-text;version=2.0.0
text|application/openmetrics-text;q=high
text|application/openmetrics-text;q=0.2,*/*;q=0.3"#;
        for (want, accept) in cases.lines().filter_map(|l| l.split_once('|')) {
            let got = ExpositionFormat::from_accept(Some(accept));
            assert_eq!(
                got == ExpositionFormat::OpenMetrics,
                want == "om",
                "{accept}"
            );
        }
        let text = ExpositionFormat::from_accept(None);
        assert_eq!(
            text.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let om = ExpositionFormat::OpenMetrics.content_type();
        assert_eq!(
            om,
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
    }

    #[test]
    fn names_units_and_floats() {
        let names = r#"http.server.request.duration|s|histogram|http_server_request_duration_seconds
latency_seconds|s|histogram|latency_seconds
requests_total|{request}|counter|requests
packets|{packet}/s|counter|packets_per_second
io|By/s|gauge|io_bytes_per_second
heap|MiBy|gauge|heap_mebibytes
calls|ms|counter|calls_milliseconds
hits|1|counter|hits
9lives..left|Widget Count|gauge|_9lives_left_Widget_Count"#;
        for line in names.lines() {
            let [name, unit, kind, want] = line.split('|').collect::<Vec<_>>()[..] else {
                panic!("{line}");
            };
            let kind = match kind {
                "counter" => Kind::Counter,
                "gauge" => Kind::Gauge,
                _ => Kind::Histogram,
            };
            assert_eq!(family_name(name, unit, kind).0, want, "{line}");
        }
        assert_eq!(sanitize_label("http.request.method"), "http_request_method");
        assert_eq!(sanitize_label("__name__"), "key__name__");
        let floats = "0.005 0.005 0.005|1 1 1.0|2.5 2.5 2.5|0 0 0.0|123456 123456 123456.0|\
            1e6 1e+06 1e+06|1234567 1.234567e+06 1.234567e+06|1e-5 1e-05 1e-05|\
            -0.0001 -0.0001 -0.0001|NaN NaN NaN|inf +Inf +Inf|-inf -Inf -Inf";
        for case in floats.split('|') {
            let [f, text, om] = case.split_whitespace().collect::<Vec<_>>()[..] else {
                panic!("{case}");
            };
            let f: f64 = f.parse().unwrap();
            assert_eq!([fmt_float(f, false), fmt_float(f, true)], [text, om]);
        }
    }

    #[test]
    fn prometheus_parse_accepts_text_output() {
        use prometheus_parse::{Scrape, Value as Parsed};
        let text = render(&fixture(), ExpositionFormat::PrometheusText, &NoExemplars);
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        assert_eq!(
            scrape.docs["http_server_requests_total"],
            "Requests served."
        );
        let sample = |name: &str| scrape.samples.iter().find(|s| s.metric == name).unwrap();
        let requests = sample("http_server_requests_total");
        assert_eq!(requests.value, Parsed::Counter(3.0));
        assert_eq!(requests.labels.get("http_request_method"), Some("GET"));
        assert_eq!(sample("queue_depth").value, Parsed::Gauge(-2.0));
        assert_eq!(
            sample("target_info").labels.get("service_name"),
            Some("checkout")
        );
        let histogram = sample("http_server_request_duration_seconds");
        let Parsed::Histogram(buckets) = &histogram.value else {
            panic!("{histogram:?}");
        };
        let counts: Vec<String> = buckets
            .iter()
            .map(|b| format!("{}:{}", b.less_than, b.count))
            .collect();
        assert_eq!(counts, ["0.005:0", "0.1:1", "1:2", "2.5:2", "inf:3"]);
        let sum = sample("http_server_request_duration_seconds_sum");
        assert_eq!(sum.value, Parsed::Untyped(3.8125));
        assert_eq!(scrape.samples.len(), 8); // _sum and _count are samples of their own here
    }
}
