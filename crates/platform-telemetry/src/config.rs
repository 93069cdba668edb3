//! Configuration: the standard `OTEL_*` environment variables first, the [`Builder`](crate::Builder)
//! second, the OpenTelemetry specification's defaults last.
//!
//! Every value is parsed here, once. A malformed value never fails start-up: it produces one
//! [`ConfigWarning`] naming the variable, the value and what was used instead.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// One problem found in the configuration, and what was done about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The environment variable (or builder method) that held the value.
    pub variable: String,
    /// The value as found.
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
    /// What the library uses instead.
    pub using: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={:?}: {}; using {}",
            self.variable, self.value, self.problem, self.using
        )
    }
}

/// Where configuration variables are read from.
#[derive(Clone, Debug, Default)]
pub(crate) struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    pub(crate) fn from_process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    pub(crate) fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name`, trimmed; an empty value counts as unset, as the specification says.
    pub(crate) fn value(&self, name: &str) -> Option<String> {
        let v = self.vars.get(name)?.trim();
        (!v.is_empty()).then(|| v.to_string())
    }
}

/// Collects warnings while resolving; each variable is reported at most once.
#[derive(Debug, Default)]
pub(crate) struct Warnings(Vec<ConfigWarning>);

impl Warnings {
    pub(crate) fn push(
        &mut self,
        variable: &str,
        value: &str,
        problem: impl Into<String>,
        using: impl Into<String>,
    ) {
        if self.0.iter().any(|w| w.variable == variable) {
            return;
        }
        self.0.push(ConfigWarning {
            variable: variable.to_string(),
            value: value.to_string(),
            problem: problem.into(),
            using: using.into(),
        });
    }

    pub(crate) fn into_vec(self) -> Vec<ConfigWarning> {
        self.0
    }
}

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
    pub(crate) certificate: Option<PathBuf>,
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
}

/// What code set on the builder; the environment overrides each of these.
#[derive(Clone, Debug, Default)]
pub(crate) struct CodeDefaults {
    pub(crate) otlp_endpoint: Option<String>,
    pub(crate) otlp_protocol: Option<Protocol>,
    pub(crate) log_format: Option<LogFormat>,
    pub(crate) log_filter: Option<String>,
    pub(crate) stdout_is_terminal: bool,
}

pub(crate) fn resolve(env: &Env, code: &CodeDefaults, warnings: &mut Warnings) -> Resolved {
    let sdk_disabled = parse_bool(env, "OTEL_SDK_DISABLED", false, warnings);
    let propagators = parse_propagators(env, warnings);
    let sampler = parse_sampler(env, warnings);
    let traces_exporters = parse_exporters(env, "OTEL_TRACES_EXPORTER", Signal::Traces, warnings);
    let logs_exporters = parse_exporters(env, "OTEL_LOGS_EXPORTER", Signal::Logs, warnings);
    let metrics_exporters =
        parse_exporters(env, "OTEL_METRICS_EXPORTER", Signal::Metrics, warnings);
    let bsp = parse_batch(env, "BSP", Duration::from_millis(5000), warnings);
    let blrp = parse_batch(env, "BLRP", Duration::from_millis(1000), warnings);
    let metric_export_interval = parse_millis(
        env,
        "OTEL_METRIC_EXPORT_INTERVAL",
        Duration::from_millis(60_000),
        warnings,
    );
    let metric_export_timeout = parse_millis(
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
    }
}

fn parse_bool(env: &Env, name: &str, default: bool, warnings: &mut Warnings) -> bool {
    match env.value(name) {
        None => default,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => {
            warnings.push(name, &v, "expected true or false", default.to_string());
            default
        }
    }
}

fn parse_millis(env: &Env, name: &str, default: Duration, warnings: &mut Warnings) -> Duration {
    match env.value(name) {
        None => default,
        Some(v) => match v.parse::<u64>() {
            Ok(ms) => Duration::from_millis(ms),
            Err(_) => {
                warnings.push(
                    name,
                    &v,
                    "expected a whole number of milliseconds",
                    format!("{}", default.as_millis()),
                );
                default
            }
        },
    }
}

fn parse_count(env: &Env, name: &str, default: usize, warnings: &mut Warnings) -> usize {
    match env.value(name) {
        None => default,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                warnings.push(
                    name,
                    &v,
                    "expected a whole number greater than 0",
                    default.to_string(),
                );
                default
            }
        },
    }
}

fn parse_batch(
    env: &Env,
    prefix: &str,
    default_delay: Duration,
    warnings: &mut Warnings,
) -> BatchSettings {
    let var = |suffix: &str| format!("OTEL_{prefix}_{suffix}");
    let schedule_delay = parse_millis(env, &var("SCHEDULE_DELAY"), default_delay, warnings);
    let export_timeout = parse_millis(
        env,
        &var("EXPORT_TIMEOUT"),
        Duration::from_millis(30_000),
        warnings,
    );
    let max_queue_size = parse_count(env, &var("MAX_QUEUE_SIZE"), 2048, warnings);
    let mut max_export_batch_size = parse_count(env, &var("MAX_EXPORT_BATCH_SIZE"), 512, warnings);
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

fn parse_protocol(env: &Env, code: &CodeDefaults, signal: Signal, w: &mut Warnings) -> Protocol {
    let default = code.otlp_protocol.unwrap_or(Protocol::HttpProtobuf);
    let signal_var = format!("OTEL_EXPORTER_OTLP_{}_PROTOCOL", signal.upper());
    for name in [signal_var.as_str(), "OTEL_EXPORTER_OTLP_PROTOCOL"] {
        let Some(v) = env.value(name) else { continue };
        return match v.as_str() {
            "grpc" if cfg!(feature = "grpc") => Protocol::Grpc,
            "grpc" => {
                w.push(
                    name,
                    &v,
                    "this build has no gRPC support (the `grpc` feature is off)",
                    "http/protobuf",
                );
                Protocol::HttpProtobuf
            }
            "http/protobuf" => Protocol::HttpProtobuf,
            "http/json" => {
                w.push(
                    name,
                    &v,
                    "http/json is not supported",
                    Protocol::HttpProtobuf.as_str(),
                );
                Protocol::HttpProtobuf
            }
            _ => {
                w.push(name, &v, "expected grpc or http/protobuf", default.as_str());
                default
            }
        };
    }
    default
}

/// Checks that `v` is an absolute http(s) URL with a host. Returns the reason otherwise.
fn check_url(v: &str) -> Result<(), &'static str> {
    let rest = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"))
        .ok_or("expected an http:// or https:// URL")?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.starts_with(':') {
        return Err("the URL has no host");
    }
    if let Some((_, port)) = authority.rsplit_once(':')
        && !authority.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err("the URL's port is not a number from 0 to 65535");
    }
    if v.contains(char::is_whitespace) {
        return Err("the URL contains white space");
    }
    Ok(())
}

fn parse_otlp(env: &Env, code: &CodeDefaults, signal: Signal, w: &mut Warnings) -> OtlpConfig {
    let protocol = parse_protocol(env, code, signal, w);
    let up = signal.upper();
    let http_path = format!("/v1/{}", signal.as_str());
    let with_path = |base: &str| match protocol {
        Protocol::Grpc => base.to_string(),
        Protocol::HttpProtobuf => format!("{}{http_path}", base.trim_end_matches('/')),
    };
    let default_endpoint = code
        .otlp_endpoint
        .as_deref()
        .filter(|e| check_url(e).is_ok())
        .map(&with_path)
        .unwrap_or_else(|| with_path(protocol.default_endpoint()));
    let signal_var = format!("OTEL_EXPORTER_OTLP_{up}_ENDPOINT");
    let endpoint = match (
        env.value(&signal_var),
        env.value("OTEL_EXPORTER_OTLP_ENDPOINT"),
    ) {
        (Some(v), general) => match check_url(&v) {
            // The per-signal endpoint is used as is, as the specification says.
            Ok(()) => v,
            Err(problem) => {
                let fallback = general
                    .filter(|g| check_url(g).is_ok())
                    .map(|g| with_path(&g))
                    .unwrap_or(default_endpoint);
                w.push(&signal_var, &v, problem, fallback.clone());
                fallback
            }
        },
        (None, Some(v)) => match check_url(&v) {
            Ok(()) => with_path(&v),
            Err(problem) => {
                w.push(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    &v,
                    problem,
                    default_endpoint.clone(),
                );
                default_endpoint
            }
        },
        (None, None) => default_endpoint,
    };
    if let Some(e) = code.otlp_endpoint.as_deref()
        && let Err(problem) = check_url(e)
    {
        w.push("Builder::otlp_endpoint", e, problem, endpoint.clone());
    }

    let headers_var = format!("OTEL_EXPORTER_OTLP_{up}_HEADERS");
    let headers = match env.value(&headers_var) {
        Some(v) => parse_key_values(&headers_var, &v, w),
        None => env
            .value("OTEL_EXPORTER_OTLP_HEADERS")
            .map(|v| parse_key_values("OTEL_EXPORTER_OTLP_HEADERS", &v, w))
            .unwrap_or_default(),
    };

    let timeout_var = format!("OTEL_EXPORTER_OTLP_{up}_TIMEOUT");
    let general_timeout = parse_millis(
        env,
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        Duration::from_millis(10_000),
        w,
    );
    let timeout = parse_millis(env, &timeout_var, general_timeout, w);

    let compression_var = format!("OTEL_EXPORTER_OTLP_{up}_COMPRESSION");
    let mut gzip = false;
    for name in [compression_var.as_str(), "OTEL_EXPORTER_OTLP_COMPRESSION"] {
        let Some(v) = env.value(name) else { continue };
        match v.to_ascii_lowercase().as_str() {
            "gzip" => gzip = true,
            "none" => gzip = false,
            _ => {
                w.push(name, &v, "expected gzip or none", "none");
                continue;
            }
        }
        break;
    }

    let cert_var = format!("OTEL_EXPORTER_OTLP_{up}_CERTIFICATE");
    let certificate = env
        .value(&cert_var)
        .or_else(|| env.value("OTEL_EXPORTER_OTLP_CERTIFICATE"))
        .map(PathBuf::from);

    OtlpConfig {
        protocol,
        endpoint,
        headers,
        timeout,
        gzip,
        certificate,
    }
}

/// Parses the W3C-baggage-like `key=value,key2=value2` lists used by `OTEL_RESOURCE_ATTRIBUTES`
/// and `OTEL_EXPORTER_OTLP_HEADERS`; values are percent-decoded. Malformed pairs are skipped
/// with one warning for the variable.
pub(crate) fn parse_key_values(name: &str, v: &str, w: &mut Warnings) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            bad.push(pair.to_string());
            continue;
        };
        let key = key.trim();
        let decoded = percent_encoding::percent_decode_str(value.trim()).decode_utf8();
        match decoded {
            Ok(value) if !key.is_empty() && !key.contains(char::is_whitespace) => {
                out.push((key.to_string(), value.into_owned()));
            }
            _ => bad.push(pair.to_string()),
        }
    }
    if !bad.is_empty() {
        // Header values are credentials: a warning names keys only, never values.
        let secret = name.contains("HEADERS");
        let shown_value = if secret {
            v.split(',')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) => format!("{}=<redacted>", k.trim()),
                    None => "<malformed entry>".to_string(),
                })
                .collect::<Vec<_>>()
                .join(",")
        } else {
            v.to_string()
        };
        let bad = if secret {
            vec![format!(
                "{} malformed entr(y/ies), not shown because they may hold secrets",
                bad.len()
            )]
        } else {
            bad
        };
        let kept = out
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(",");
        w.push(
            name,
            &shown_value,
            format!(
                "malformed entries {bad:?} (expected key=value pairs separated by commas, values percent-encoded)"
            ),
            if kept.is_empty() {
                "no entries".to_string()
            } else {
                format!("only the keys {kept}")
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_with(pairs: &[(&str, &str)]) -> (Resolved, Vec<ConfigWarning>) {
        let env = Env::from_pairs(pairs.iter().copied());
        let mut w = Warnings::default();
        let r = resolve(&env, &CodeDefaults::default(), &mut w);
        (r, w.into_vec())
    }

    #[test]
    fn defaults_follow_the_specification() {
        let (r, w) = resolve_with(&[]);
        assert!(w.is_empty());
        assert_eq!(r.sampler, SamplerConfig::ParentBasedAlwaysOn);
        assert_eq!(r.traces_otlp.protocol, Protocol::HttpProtobuf);
        assert_eq!(r.traces_otlp.endpoint, "http://localhost:4318/v1/traces");
        assert_eq!(r.logs_otlp.endpoint, "http://localhost:4318/v1/logs");
        assert_eq!(r.traces_otlp.timeout, Duration::from_secs(10));
        assert_eq!(r.bsp.max_queue_size, 2048);
        assert_eq!(r.bsp.schedule_delay, Duration::from_secs(5));
        assert_eq!(r.blrp.schedule_delay, Duration::from_secs(1));
        assert!(r.metrics_exporters.prometheus && !r.metrics_exporters.otlp);
        assert!(r.traces_exporters.otlp);
        assert_eq!(
            r.propagators,
            vec![PropagatorKind::TraceContext, PropagatorKind::Baggage]
        );
        assert_eq!(
            r.log_filter,
            "info,opentelemetry=warn,opentelemetry_sdk=warn"
        );
        assert_eq!(r.log_format, LogFormat::Json);
    }

    #[test]
    fn per_signal_endpoint_wins_and_is_used_as_is() {
        let (r, w) = resolve_with(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                "http://loki:3100/otlp/v1/logs",
            ),
        ]);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(r.traces_otlp.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(r.logs_otlp.endpoint, "http://loki:3100/otlp/v1/logs");
    }

    #[test]
    fn grpc_endpoint_gets_no_path() {
        let (r, _) = resolve_with(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
        ]);
        if cfg!(feature = "grpc") {
            assert_eq!(r.traces_otlp.protocol, Protocol::Grpc);
            assert_eq!(r.traces_otlp.endpoint, "http://collector:4317");
        }
    }

    #[test]
    fn every_malformed_value_warns_once_and_falls_back() {
        let (r, w) = resolve_with(&[
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_TRACES_SAMPLER_ARG", "abc"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=abc,broken"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "-1"),
            ("OTEL_SDK_DISABLED", "yes"),
            ("OTEL_PROPAGATORS", "tracecontext,xray"),
            ("OTEL_METRICS_EXPORTER", "statsd"),
            ("RUST_LOG", "info,[[["),
            ("LOG_FORMAT", "yaml"),
        ]);
        let vars: Vec<&str> = w.iter().map(|w| w.variable.as_str()).collect();
        for expected in [
            "OTEL_TRACES_SAMPLER",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "OTEL_EXPORTER_OTLP_COMPRESSION",
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "OTEL_SDK_DISABLED",
            "OTEL_PROPAGATORS",
            "OTEL_METRICS_EXPORTER",
            "RUST_LOG",
            "LOG_FORMAT",
        ] {
            assert_eq!(
                vars.iter().filter(|v| **v == expected).count(),
                1,
                "{expected} must be reported exactly once in {vars:?}"
            );
        }
        assert_eq!(r.sampler, SamplerConfig::ParentBasedAlwaysOn);
        assert_eq!(r.traces_otlp.endpoint, "http://localhost:4318/v1/traces");
        assert_eq!(
            r.traces_otlp.headers,
            vec![("api-key".to_string(), "abc".to_string())]
        );
        assert_eq!(r.bsp.max_queue_size, 2048);
        assert!(!r.sdk_disabled);
        assert_eq!(r.propagators, vec![PropagatorKind::TraceContext]);
        assert!(r.metrics_exporters.prometheus);
        let endpoint = w
            .iter()
            .find(|w| w.variable == "OTEL_EXPORTER_OTLP_ENDPOINT")
            .map(ToString::to_string)
            .unwrap_or_default();
        assert_eq!(
            endpoint,
            "OTEL_EXPORTER_OTLP_ENDPOINT=\"collector:4317\": expected an http:// or https:// URL; \
             using http://localhost:4318/v1/traces"
        );
    }

    #[test]
    fn ratio_out_of_range_is_rejected() {
        for bad in ["1.5", "-0.1", "NaN", "abc"] {
            let (r, w) = resolve_with(&[
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", bad),
            ]);
            assert_eq!(
                r.sampler,
                SamplerConfig::ParentBasedTraceIdRatio(1.0),
                "{bad}"
            );
            assert_eq!(w.len(), 1, "{bad}: {w:?}");
            assert_eq!(w[0].variable, "OTEL_TRACES_SAMPLER_ARG");
        }
        let (r, w) = resolve_with(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ]);
        assert!(w.is_empty());
        assert_eq!(r.sampler, SamplerConfig::TraceIdRatio(0.25));
    }

    #[test]
    fn header_warnings_never_show_values() {
        let (_, w) = resolve_with(&[(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Bearer%20s3cr3t,x-api-key s3cr3t",
        )]);
        assert_eq!(w.len(), 1);
        let text = w[0].to_string();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains("authorization=<redacted>"), "{text}");
    }

    #[test]
    fn headers_are_percent_decoded() {
        let mut w = Warnings::default();
        let kv = parse_key_values(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Basic%20dXNlcjpwYXNz, x-tenant = a%2Cb",
            &mut w,
        );
        assert_eq!(
            kv,
            vec![
                ("authorization".into(), "Basic dXNlcjpwYXNz".into()),
                ("x-tenant".into(), "a,b".into())
            ]
        );
        assert!(w.into_vec().is_empty());
    }

    #[test]
    fn none_disables_a_signal_and_batch_size_is_capped_by_queue() {
        let (r, w) = resolve_with(&[
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_METRICS_EXPORTER", "otlp,prometheus"),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "512"),
        ]);
        assert_eq!(r.traces_exporters, Exporters::default());
        assert!(r.metrics_exporters.otlp && r.metrics_exporters.prometheus);
        assert_eq!(r.blrp.max_export_batch_size, 100);
        assert_eq!(w.len(), 1);
        // The default batch size (512) above a small queue is capped without a warning about
        // a variable the user never set.
        let (r, w) = resolve_with(&[("OTEL_BSP_MAX_QUEUE_SIZE", "64")]);
        assert_eq!(r.bsp.max_export_batch_size, 64);
        assert!(w.is_empty(), "{w:?}");
    }

    /// Arbitrary values for every variable the library reads: resolution never panics, every
    /// warning names a variable that was set (once), credentials in
    /// `OTEL_EXPORTER_OTLP_HEADERS` never appear in a warning, and the result stays usable.
    /// 2048 environments per run (`PROPTEST_CASES` raises it).
    mod arbitrary_environments {
        use super::*;
        use proptest::prelude::*;

        const VARIABLES: &[&str] = &[
            "OTEL_SDK_DISABLED",
            "OTEL_TRACES_SAMPLER",
            "OTEL_TRACES_SAMPLER_ARG",
            "OTEL_PROPAGATORS",
            "OTEL_TRACES_EXPORTER",
            "OTEL_LOGS_EXPORTER",
            "OTEL_METRICS_EXPORTER",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
            "OTEL_EXPORTER_OTLP_COMPRESSION",
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            "OTEL_BSP_SCHEDULE_DELAY",
            "OTEL_BSP_EXPORT_TIMEOUT",
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            "OTEL_BLRP_SCHEDULE_DELAY",
            "OTEL_BLRP_MAX_QUEUE_SIZE",
            "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
            "OTEL_METRIC_EXPORT_INTERVAL",
            "OTEL_METRIC_EXPORT_TIMEOUT",
            "RUST_LOG",
            "LOG_FORMAT",
        ];

        /// Values that look like what the variables take, mixed with anything at all.
        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                "[-+0-9.eE_ ]{0,24}",
                "[a-z_/:.,=%0-9\\[\\] ]{0,40}",
                "(https?|grpc|ftp)://[a-z0-9.:\\[\\]@%/-]{0,30}",
                prop::sample::select(vec![
                    "always_on",
                    "parentbased_traceidratio",
                    "grpc",
                    "http/protobuf",
                    "http/json",
                    "otlp,none",
                    "none",
                    "gzip",
                    "json",
                    "99999999999999999999",
                    "-1",
                    "0",
                    "1e309",
                    "NaN",
                    "\u{0}",
                    "tracecontext,baggage,b3multi",
                ])
                .prop_map(str::to_string),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]
            #[test]
            fn any_environment_resolves_with_one_clear_warning_per_bad_variable(
                vars in proptest::collection::vec((prop::sample::select(VARIABLES), value()), 0..16),
                secret in "[A-Za-z0-9]{24}",
                junk in "[ -~]{0,24}",
            ) {
                let headers = format!("authorization=Bearer%20{secret},{junk}");
                let mut pairs: Vec<(String, String)> = vars
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect();
                pairs.push(("OTEL_EXPORTER_OTLP_HEADERS".into(), headers));
                let env = Env::from_pairs(pairs.iter().cloned());
                let mut warnings = Warnings::default();
                let r = resolve(&env, &CodeDefaults::default(), &mut warnings);
                let warnings = warnings.into_vec();
                for w in &warnings {
                    prop_assert!(
                        pairs.iter().any(|(k, _)| *k == w.variable),
                        "warning for a variable that was not set: {w}"
                    );
                    prop_assert_eq!(
                        warnings.iter().filter(|o| o.variable == w.variable).count(),
                        1
                    );
                    prop_assert!(!w.to_string().contains(&secret), "credential leaked: {w}");
                    prop_assert!(!w.problem.is_empty() && !w.using.is_empty(), "{w}");
                }
                for batch in [&r.bsp, &r.blrp] {
                    prop_assert!(batch.max_queue_size > 0);
                    prop_assert!(batch.max_export_batch_size > 0);
                    prop_assert!(batch.max_export_batch_size <= batch.max_queue_size);
                }
                for otlp in [&r.traces_otlp, &r.logs_otlp, &r.metrics_otlp] {
                    prop_assert!(
                        otlp.endpoint.starts_with("http://") || otlp.endpoint.starts_with("https://"),
                        "{}", otlp.endpoint
                    );
                }
                prop_assert!(!r.log_filter.is_empty());
            }
        }
    }
}
