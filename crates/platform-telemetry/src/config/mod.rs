//! Configuration: the standard `OTEL_*` environment variables first, the [`Builder`](crate::Builder)
//! second, the OpenTelemetry specification's defaults last.
//!
//! Every value is parsed here, once. A malformed value never fails start-up: it produces one
//! [`ConfigWarning`] naming the variable, the value and what was used instead.

mod otlp;
use otlp::parse_otlp;
#[cfg(test)]
mod tests;
mod values;

use std::path::PathBuf;
use std::time::Duration;

pub use values::ConfigWarning;
pub(crate) use values::{Env, Warnings, parse_key_values};
pub(crate) use values::{bounds, parse_count, parse_integer};
use values::{parse_bool, parse_duration, parse_timeout};

/// The OTLP wire protocol (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over gRPC (`grpc`), default port 4317. Needs the `grpc` feature (on by default).
    Grpc,
    /// OTLP over HTTP with protobuf bodies (`http/protobuf`), default port 4318. The
    /// specification's default.
    HttpProtobuf,
}

impl Protocol {
    fn default_endpoint(self) -> &'static str {
        match self {
            Protocol::Grpc => "http://localhost:4317",
            Protocol::HttpProtobuf => "http://localhost:4318",
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// How stdout log lines are written (`LOG_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, with `trace_id` and `span_id`. The default when stdout is not a
    /// terminal (containers, CI).
    Json,
    /// Multi-line, human-readable. The default on a terminal.
    Pretty,
    /// One human-readable line per event.
    Compact,
}

/// The three signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    Traces,
    Logs,
    Metrics,
}

impl Signal {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }
    fn upper(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Logs => "LOGS",
            Signal::Metrics => "METRICS",
        }
    }
}

/// Where one signal's OTLP data goes and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OtlpConfig {
    pub(crate) protocol: Protocol,
    /// The final URL: for HTTP it includes `/v1/{signal}`.
    pub(crate) endpoint: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Duration,
    pub(crate) gzip: bool,
    pub(crate) tls: TlsFiles,
}

/// A file named by a variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConfiguredFile {
    /// The variable that named it (per-signal or general).
    pub(crate) variable: String,
    pub(crate) path: PathBuf,
}

/// `OTEL_EXPORTER_OTLP_[SIGNAL_]CERTIFICATE`, `..._CLIENT_KEY`, `..._CLIENT_CERTIFICATE`: read
/// (bounded) only when the endpoint is `https://`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// PEM certificates to trust besides the platform's roots.
    pub(crate) certificate: Option<ConfiguredFile>,
    /// The client's PEM private key (mTLS).
    pub(crate) client_key: Option<ConfiguredFile>,
    /// The client's PEM certificate chain (mTLS).
    pub(crate) client_certificate: Option<ConfiguredFile>,
}

/// Batch processor settings (`OTEL_BSP_*`, `OTEL_BLRP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchSettings {
    pub(crate) schedule_delay: Duration,
    pub(crate) export_timeout: Duration,
    pub(crate) max_queue_size: usize,
    pub(crate) max_export_batch_size: usize,
}

/// The sampler (`OTEL_TRACES_SAMPLER[_ARG]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum SamplerConfig {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio(f64),
}

/// A propagator named in `OTEL_PROPAGATORS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PropagatorKind {
    TraceContext,
    Baggage,
    #[cfg(feature = "b3")]
    B3Single,
    #[cfg(feature = "b3")]
    B3Multi,
}

/// Which exporters a signal uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Exporters {
    pub(crate) otlp: bool,
    pub(crate) console: bool,
    pub(crate) prometheus: bool,
}

/// Turns the process and tokio runtime metrics off (`false`) or on (`true`, the default). Not a
/// specification variable; named like `OTEL_RUST_METRICS_CARDINALITY_LIMIT`.
pub(crate) const RUNTIME_METRICS_VARIABLE: &str = "OTEL_RUST_RUNTIME_METRICS";

/// Everything the library needs, resolved.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub(crate) sdk_disabled: bool,
    pub(crate) sampler: SamplerConfig,
    pub(crate) propagators: Vec<PropagatorKind>,
    pub(crate) traces_exporters: Exporters,
    pub(crate) logs_exporters: Exporters,
    pub(crate) metrics_exporters: Exporters,
    pub(crate) traces_otlp: OtlpConfig,
    pub(crate) logs_otlp: OtlpConfig,
    pub(crate) metrics_otlp: OtlpConfig,
    pub(crate) bsp: BatchSettings,
    pub(crate) blrp: BatchSettings,
    pub(crate) metric_export_interval: Duration,
    pub(crate) metric_export_timeout: Duration,
    pub(crate) log_format: LogFormat,
    pub(crate) log_filter: String,
    pub(crate) limits: crate::limits::Limits,
    /// Process and tokio runtime metrics (`OTEL_RUST_RUNTIME_METRICS`, default on).
    pub(crate) runtime_metrics: bool,
}

/// What code set on the builder; the environment overrides each of these.
#[derive(Clone, Debug, Default)]
pub(crate) struct CodeDefaults {
    pub(crate) otlp_endpoint: Option<String>,
    pub(crate) otlp_protocol: Option<Protocol>,
    pub(crate) log_format: Option<LogFormat>,
    pub(crate) log_filter: Option<String>,
    pub(crate) stdout_is_terminal: bool,
    pub(crate) metric_cardinality_limit: Option<usize>,
    pub(crate) runtime_metrics: Option<bool>,
}

pub(crate) fn resolve(env: &Env, code: &CodeDefaults, warnings: &mut Warnings) -> Resolved {
    env.report_oversized(warnings);
    let sdk_disabled = parse_bool(env, "OTEL_SDK_DISABLED", false, warnings);
    let propagators = parse_propagators(env, warnings);
    let sampler = parse_sampler(env, warnings);
    let traces_exporters = parse_exporters(env, "OTEL_TRACES_EXPORTER", Signal::Traces, warnings);
    let logs_exporters = parse_exporters(env, "OTEL_LOGS_EXPORTER", Signal::Logs, warnings);
    let metrics_exporters =
        parse_exporters(env, "OTEL_METRICS_EXPORTER", Signal::Metrics, warnings);
    let bsp = parse_batch(env, "BSP", Duration::from_millis(5000), warnings);
    let blrp = parse_batch(env, "BLRP", Duration::from_millis(1000), warnings);
    let metric_export_interval = parse_duration(
        env,
        "OTEL_METRIC_EXPORT_INTERVAL",
        Duration::from_millis(60_000),
        bounds::MIN_METRIC_INTERVAL,
        bounds::MAX_DURATION,
        warnings,
    );
    let metric_export_timeout = parse_timeout(
        env,
        "OTEL_METRIC_EXPORT_TIMEOUT",
        Duration::from_millis(30_000),
        warnings,
    );
    let default_format = code.log_format.unwrap_or(if code.stdout_is_terminal {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    });
    let log_format = match env.value("LOG_FORMAT") {
        None => default_format,
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "json" => LogFormat::Json,
            "pretty" => LogFormat::Pretty,
            "compact" => LogFormat::Compact,
            _ => {
                warnings.push(
                    "LOG_FORMAT",
                    &v,
                    "expected one of json, pretty, compact",
                    format!("{default_format:?}").to_lowercase(),
                );
                default_format
            }
        },
    };
    // The SDK's own chatter (e.g. "Global tracer provider is set") stays below the default.
    let default_filter = code
        .log_filter
        .clone()
        .unwrap_or_else(|| "info,opentelemetry=warn,opentelemetry_sdk=warn".into());
    let log_filter = match env.value("RUST_LOG") {
        None => default_filter,
        Some(v) => match tracing_subscriber::EnvFilter::builder().parse(&v) {
            Ok(_) => v,
            Err(e) => {
                warnings.push(
                    "RUST_LOG",
                    &v,
                    format!("not a valid filter ({e})"),
                    format!("{default_filter:?}"),
                );
                default_filter
            }
        },
    };
    Resolved {
        sdk_disabled,
        sampler,
        propagators,
        traces_exporters,
        logs_exporters,
        metrics_exporters,
        traces_otlp: parse_otlp(env, code, Signal::Traces, warnings),
        logs_otlp: parse_otlp(env, code, Signal::Logs, warnings),
        metrics_otlp: parse_otlp(env, code, Signal::Metrics, warnings),
        bsp,
        blrp,
        metric_export_interval,
        metric_export_timeout,
        log_format,
        log_filter,
        limits: crate::limits::resolve(env, code.metric_cardinality_limit, warnings),
        runtime_metrics: parse_bool(
            env,
            RUNTIME_METRICS_VARIABLE,
            code.runtime_metrics.unwrap_or(true),
            warnings,
        ),
    }
}

fn parse_batch(
    env: &Env,
    prefix: &str,
    default_delay: Duration,
    warnings: &mut Warnings,
) -> BatchSettings {
    let var = |suffix: &str| format!("OTEL_{prefix}_{suffix}");
    let schedule_delay = parse_duration(
        env,
        &var("SCHEDULE_DELAY"),
        default_delay,
        bounds::MIN_SCHEDULE_DELAY,
        bounds::MAX_DURATION,
        warnings,
    );
    let export_timeout = parse_timeout(
        env,
        &var("EXPORT_TIMEOUT"),
        Duration::from_millis(30_000),
        warnings,
    );
    let max_queue = bounds::MAX_QUEUE_SIZE as usize;
    let max_queue_size = parse_count(env, &var("MAX_QUEUE_SIZE"), 2048, 1, max_queue, warnings);
    let mut max_export_batch_size = parse_count(
        env,
        &var("MAX_EXPORT_BATCH_SIZE"),
        512,
        1,
        max_queue,
        warnings,
    );
    let batch_size_set = env.value(&var("MAX_EXPORT_BATCH_SIZE")).is_some();
    // A default batch size above a small queue is capped quietly: the user asked for nothing
    // that is being overridden.
    if max_export_batch_size > max_queue_size && batch_size_set {
        let name = var("MAX_EXPORT_BATCH_SIZE");
        warnings.push(
            &name,
            &max_export_batch_size.to_string(),
            format!(
                "must not exceed {} ({max_queue_size})",
                var("MAX_QUEUE_SIZE")
            ),
            max_queue_size.to_string(),
        );
    }
    max_export_batch_size = max_export_batch_size.min(max_queue_size);
    BatchSettings {
        schedule_delay,
        export_timeout,
        max_queue_size,
        max_export_batch_size,
    }
}

fn parse_ratio(env: &Env, warnings: &mut Warnings) -> f64 {
    match env.value("OTEL_TRACES_SAMPLER_ARG") {
        None => 1.0,
        Some(v) => match v.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => r,
            _ => {
                warnings.push(
                    "OTEL_TRACES_SAMPLER_ARG",
                    &v,
                    "expected a sampling probability between 0 and 1",
                    "1.0",
                );
                1.0
            }
        },
    }
}

fn parse_sampler(env: &Env, warnings: &mut Warnings) -> SamplerConfig {
    let Some(v) = env.value("OTEL_TRACES_SAMPLER") else {
        return SamplerConfig::ParentBasedAlwaysOn;
    };
    match v.to_ascii_lowercase().as_str() {
        "always_on" => SamplerConfig::AlwaysOn,
        "always_off" => SamplerConfig::AlwaysOff,
        "traceidratio" => SamplerConfig::TraceIdRatio(parse_ratio(env, warnings)),
        "parentbased_always_on" => SamplerConfig::ParentBasedAlwaysOn,
        "parentbased_always_off" => SamplerConfig::ParentBasedAlwaysOff,
        "parentbased_traceidratio" => {
            SamplerConfig::ParentBasedTraceIdRatio(parse_ratio(env, warnings))
        }
        other => {
            let problem = if matches!(
                other,
                "jaeger_remote" | "parentbased_jaeger_remote" | "xray"
            ) {
                "this sampler is not supported by platform-telemetry"
            } else {
                "expected always_on, always_off, traceidratio, parentbased_always_on, \
                 parentbased_always_off or parentbased_traceidratio"
            };
            warnings.push("OTEL_TRACES_SAMPLER", &v, problem, "parentbased_always_on");
            SamplerConfig::ParentBasedAlwaysOn
        }
    }
}

fn parse_propagators(env: &Env, warnings: &mut Warnings) -> Vec<PropagatorKind> {
    let default = vec![PropagatorKind::TraceContext, PropagatorKind::Baggage];
    let Some(v) = env.value("OTEL_PROPAGATORS") else {
        return default;
    };
    let mut chosen = Vec::new();
    let mut rejected = Vec::new();
    for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let kind = match name.to_ascii_lowercase().as_str() {
            "none" => return Vec::new(),
            "tracecontext" => Some(PropagatorKind::TraceContext),
            "baggage" => Some(PropagatorKind::Baggage),
            #[cfg(feature = "b3")]
            "b3" => Some(PropagatorKind::B3Single),
            #[cfg(feature = "b3")]
            "b3multi" => Some(PropagatorKind::B3Multi),
            #[cfg(not(feature = "b3"))]
            "b3" | "b3multi" => {
                rejected.push(format!(
                    "{name} (build platform-telemetry with the `b3` feature to use it)"
                ));
                None
            }
            "jaeger" => {
                rejected.push(
                    "jaeger (no propagator crate exists for opentelemetry 0.33; use tracecontext)"
                        .to_string(),
                );
                None
            }
            _ => {
                rejected.push(format!(
                    "{name} (unknown; known: tracecontext, baggage, b3, b3multi, none)"
                ));
                None
            }
        };
        if let Some(kind) = kind
            && !chosen.contains(&kind)
        {
            chosen.push(kind);
        }
    }
    if !rejected.is_empty() {
        let using_list = if chosen.is_empty() { &default } else { &chosen };
        let using = using_list
            .iter()
            .map(|k| format!("{k:?}").to_lowercase())
            .collect::<Vec<_>>()
            .join(",");
        warnings.push(
            "OTEL_PROPAGATORS",
            &v,
            format!("cannot use {}", rejected.join(", ")),
            using,
        );
    }
    if chosen.is_empty() { default } else { chosen }
}

fn parse_exporters(env: &Env, name: &str, signal: Signal, warnings: &mut Warnings) -> Exporters {
    let default = match signal {
        Signal::Metrics => Exporters {
            prometheus: true,
            ..Exporters::default()
        },
        _ => Exporters {
            otlp: true,
            ..Exporters::default()
        },
    };
    let Some(v) = env.value(name) else {
        return default;
    };
    let mut chosen = Exporters::default();
    let mut rejected = Vec::new();
    for item in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match item.to_ascii_lowercase().as_str() {
            "none" => return Exporters::default(),
            "otlp" => chosen.otlp = true,
            "console" => chosen.console = true,
            "prometheus" if signal == Signal::Metrics => chosen.prometheus = true,
            _ => rejected.push(item.to_string()),
        }
    }
    let known = match signal {
        Signal::Metrics => "otlp, prometheus, console, none",
        _ => "otlp, console, none",
    };
    if chosen == Exporters::default() {
        warnings.push(
            name,
            &v,
            format!("no usable exporter (known: {known})"),
            describe_exporters(default),
        );
        return default;
    }
    if !rejected.is_empty() {
        warnings.push(
            name,
            &v,
            format!("ignoring {} (known: {known})", rejected.join(", ")),
            describe_exporters(chosen),
        );
    }
    chosen
}

fn describe_exporters(e: Exporters) -> String {
    let mut names = Vec::new();
    if e.otlp {
        names.push("otlp");
    }
    if e.prometheus {
        names.push("prometheus");
    }
    if e.console {
        names.push("console");
    }
    names.join(",")
}
