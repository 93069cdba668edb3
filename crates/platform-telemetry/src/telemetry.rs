//! The telemetry instance, its builder, the global installation and the shutdown guard.

use std::fmt;
use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::Dispatch;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{self, CodeDefaults, ConfigWarning, Env, LogFormat, Protocol, Warnings};
use crate::exporters::ExportRuntime;
use crate::metrics::{ExpositionFormat, PrometheusReader};
use crate::pipeline::{Counters, PipelineStats};
use crate::resource::ResourceDefaults;
use crate::semconv::attr;
use crate::{Error, logs, metrics, propagation, resource, traces};

/// The default bound on [`Telemetry::shutdown`] (and so on dropping the guard).
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// In-memory exporters added by the `testing` feature's capture.
#[cfg(feature = "testing")]
pub(crate) type CaptureSinks = crate::testing::Sinks;
/// Without the `testing` feature nothing can be captured.
#[cfg(not(feature = "testing"))]
#[derive(Clone, Debug, Default)]
pub(crate) struct CaptureSinks;

/// Configures a telemetry instance. Get one from [`builder()`](crate::builder()) or, to default
/// `service.name` and `service.version` to the calling crate's, from
/// [`builder!()`](crate::builder!).
///
/// Precedence: every `OTEL_*` variable (and `RUST_LOG`, `LOG_FORMAT`) that is set overrides what
/// the builder says; the builder overrides the specification's defaults. Code that must control
/// the configuration completely replaces the environment with [`Builder::env_vars`].
///
/// ```
/// let telemetry = platform_telemetry::builder()
///     .service_name("orders")
///     .service_version("1.4.2")
///     .deployment_environment("staging")
///     .env_vars([("OTEL_TRACES_EXPORTER", "none"), ("OTEL_LOGS_EXPORTER", "none")])
///     .build()?;
/// assert_eq!(telemetry.service_name(), "orders");
/// telemetry.shutdown()?;
/// # Ok::<(), platform_telemetry::Error>(())
/// ```
#[must_use = "a Builder does nothing until `build()` or `init()` is called"]
pub struct Builder {
    resource: ResourceDefaults,
    code: CodeDefaults,
    env: Option<Env>,
    shutdown_timeout: Duration,
    writer: Option<BoxMakeWriter>,
    capture: Option<CaptureSinks>,
    span_source_attributes: bool,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("resource", &self.resource)
            .field("code", &self.code)
            .field("env_replaced", &self.env.is_some())
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("custom_writer", &self.writer.is_some())
            .field("span_source_attributes", &self.span_source_attributes)
            .finish()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            resource: ResourceDefaults::default(),
            code: CodeDefaults::default(),
            env: None,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            writer: None,
            capture: None,
            span_source_attributes: false,
        }
    }
}

impl Builder {
    /// `service.name`, unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` set it. Without
    /// either, the executable's name is used.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.resource.service_name = Some(name.into());
        self
    }

    /// `service.version`, unless `OTEL_RESOURCE_ATTRIBUTES` sets it.
    pub fn service_version(mut self, version: impl Into<String>) -> Self {
        self.resource.service_version = Some(version.into());
        self
    }

    /// `service.namespace`, unless `OTEL_RESOURCE_ATTRIBUTES` sets it.
    pub fn service_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.resource.service_namespace = Some(namespace.into());
        self
    }

    /// `deployment.environment.name`, unless `OTEL_RESOURCE_ATTRIBUTES` sets it.
    pub fn deployment_environment(mut self, environment: impl Into<String>) -> Self {
        self.resource.deployment_environment = Some(environment.into());
        self
    }

    /// Any other resource attribute, unless `OTEL_RESOURCE_ATTRIBUTES` sets the same key.
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource.attributes.push((key.into(), value.into()));
        self
    }

    /// The general OTLP endpoint (like `OTEL_EXPORTER_OTLP_ENDPOINT`, which overrides it, as do
    /// the per-signal variables). For HTTP, `/v1/traces` etc. are appended.
    pub fn otlp_endpoint(mut self, url: impl Into<String>) -> Self {
        self.code.otlp_endpoint = Some(url.into());
        self
    }

    /// The OTLP protocol, unless `OTEL_EXPORTER_OTLP[_SIGNAL]_PROTOCOL` sets it.
    pub fn otlp_protocol(mut self, protocol: Protocol) -> Self {
        self.code.otlp_protocol = Some(protocol);
        self
    }

    /// The stdout log format, unless `LOG_FORMAT` sets it.
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.code.log_format = Some(format);
        self
    }

    /// The log filter used when `RUST_LOG` is unset (default `info`), in `RUST_LOG` syntax.
    pub fn default_log_filter(mut self, filter: impl Into<String>) -> Self {
        self.code.log_filter = Some(filter.into());
        self
    }

    /// The most attribute sets (series) each metric stream keeps, unless
    /// `OTEL_RUST_METRICS_CARDINALITY_LIMIT` sets it (default 2000, from 1 to 65536). Beyond it,
    /// measurements are added up in one series with `otel.metric.overflow="true"`, and the first
    /// scrape that sees it logs one warning naming the metric.
    ///
    /// ```
    /// let telemetry = platform_telemetry::builder()
    ///     .metric_cardinality_limit(500)
    ///     .env_vars([("OTEL_TRACES_EXPORTER", "none"), ("OTEL_LOGS_EXPORTER", "none")])
    ///     .build()?;
    /// # drop(telemetry);
    /// # Ok::<(), platform_telemetry::Error>(())
    /// ```
    pub fn metric_cardinality_limit(mut self, series: usize) -> Self {
        self.code.metric_cardinality_limit = Some(series);
        self
    }

    /// Process and tokio runtime metrics (default on), unless `OTEL_RUST_RUNTIME_METRICS`
    /// (`true` or `false`) says otherwise: `process.cpu.time`, `process.memory.usage`,
    /// `process.memory.virtual`, `process.thread.count` and `process.unix.file_descriptor.count`
    /// (Linux; nothing elsewhere), and, when the instance is built inside a tokio runtime, that
    /// runtime's `tokio.workers`, `tokio.alive_tasks`, `tokio.global_queue_depth` and
    /// `tokio.worker.busy_duration`. They are read when the metrics are (a scrape or an OTLP
    /// export), never on a timer.
    ///
    /// ```
    /// let telemetry = platform_telemetry::builder()
    ///     .runtime_metrics(false)
    ///     .env_vars([("OTEL_TRACES_EXPORTER", "none"), ("OTEL_LOGS_EXPORTER", "none")])
    ///     .build()?;
    /// assert!(!telemetry.scrape_metrics(None).body.contains("process_cpu_time"));
    /// # Ok::<(), platform_telemetry::Error>(())
    /// ```
    pub fn runtime_metrics(mut self, on: bool) -> Self {
        self.code.runtime_metrics = Some(on);
        self
    }

    /// The bound on shutdown and on the flush after a panic (default 5 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Reads configuration from these variables instead of the process environment. Useful in
    /// tests, and for processes that host several logical services.
    ///
    /// The OTLP exporter crate still merges `OTEL_EXPORTER_OTLP_HEADERS` from the process
    /// environment into its headers.
    pub fn env_vars<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.env = Some(Env::from_pairs(vars));
        self
    }

    /// Where log lines go instead of stdout (for example a file or a test buffer).
    pub fn log_writer<W>(mut self, writer: W) -> Self
    where
        W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    {
        self.writer = Some(BoxMakeWriter::new(writer));
        self
    }

    /// Records where each `tracing` span was created and on which thread: `code.file.path`,
    /// `code.line.number`, `thread.id` and `thread.name` on every span made from a `tracing`
    /// span (the semantic-convention names). Off by default: they are not HTTP or messaging
    /// semantic-convention attributes, and building, storing and encoding them costs every span
    /// (the request, client and message spans the library creates itself never carry them).
    /// tracing-opentelemetry's `target` and `code.module.name` are never recorded: the semantic
    /// conventions define neither (the module path is the log records' scope name).
    ///
    /// ```
    /// let telemetry = platform_telemetry::builder()
    ///     .span_source_attributes(true)
    ///     .env_vars([("OTEL_TRACES_EXPORTER", "none"), ("OTEL_LOGS_EXPORTER", "none")])
    ///     .build()?;
    /// # drop(telemetry);
    /// # Ok::<(), platform_telemetry::Error>(())
    /// ```
    pub fn span_source_attributes(mut self, on: bool) -> Self {
        self.span_source_attributes = on;
        self
    }

    /// Also records spans and log records in these in-memory exporters (feature `testing`).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn capture_into(mut self, sinks: CaptureSinks) -> Self {
        self.capture = Some(sinks);
        self
    }

    /// Builds an instance without installing anything globally. Use its
    /// [`subscriber()`](Telemetry::subscriber) with `tracing::dispatcher::with_default` or
    /// `tracing::instrument::WithSubscriber`.
    #[must_use = "the instance shuts down when the last clone is dropped; keep it"]
    pub fn build(self) -> Result<Telemetry, Error> {
        build(self)
    }

    /// Builds the instance and installs it globally: the `tracing` subscriber, the OpenTelemetry
    /// tracer and meter providers, the propagator, `log` records, and a panic hook that logs the
    /// panic with its trace context and flushes. Fails if called twice.
    #[must_use = "dropping the guard shuts telemetry down at once; bind it: `let _telemetry = builder().init()?;`"]
    pub fn init(self) -> Result<TelemetryGuard, Error> {
        install_global(self)
    }
}

struct Inner {
    service_name: String,
    resource: Resource,
    tracer_provider: Option<SdkTracerProvider>,
    tracer: Option<SdkTracer>,
    logger_provider: Option<SdkLoggerProvider>,
    meter_provider: SdkMeterProvider,
    prometheus: Option<PrometheusReader>,
    propagator: Arc<TextMapCompositePropagator>,
    propagator_kinds: Vec<config::PropagatorKind>,
    dispatch: Dispatch,
    span_counters: Arc<Counters>,
    log_counters: Arc<Counters>,
    exemplars: Arc<crate::metrics::ExemplarStore>,
    /// What the library's own spans and metrics need (the messaging and database instruments),
    /// for code that runs while no instance's subscriber is current.
    instance: CurrentInstance,
    warnings: Vec<ConfigWarning>,
    shutdown_timeout: Duration,
    shut_down: AtomicBool,
    sdk_disabled: bool,
    // Declared last: dropped after the providers that use it.
    _runtime: Option<ExportRuntime>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.shut_down.swap(true, Ordering::SeqCst) {
            let _ = shutdown_providers(self, "shutdown");
        }
        // Dropping the last handle on a provider runs the SDK's own shutdown, which can wait on
        // an export in flight: never on the caller's thread.
        let providers = (self.tracer_provider.take(), self.logger_provider.take());
        if providers.0.is_some() || providers.1.is_some() {
            let _ = std::thread::Builder::new()
                .name("telemetry-release".into())
                .spawn(move || drop(providers));
        }
    }
}

/// A telemetry instance: providers for the three signals, the `tracing` subscriber that feeds
/// them, and the propagator. Cheap to clone.
///
/// The global instance comes from [`init()`](crate::init); a non-global one from
/// [`Builder::build`], for processes that host several logical services.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("service_name", &self.inner.service_name)
            .field("sdk_disabled", &self.inner.sdk_disabled)
            .field("pipeline", &self.pipeline_stats())
            .finish_non_exhaustive()
    }
}

/// A scrape of the instance's metrics, ready to serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsScrape {
    /// The `Content-Type` to answer with.
    pub content_type: &'static str,
    /// The exposition text.
    pub body: String,
}

impl Telemetry {
    /// The resolved `service.name`.
    pub fn service_name(&self) -> &str {
        &self.inner.service_name
    }

    /// The resource every signal carries.
    pub fn resource(&self) -> &Resource {
        &self.inner.resource
    }

    /// The `tracing` dispatcher that writes logs and records spans for this instance.
    pub fn subscriber(&self) -> Dispatch {
        self.inner.dispatch.clone()
    }

    /// A meter for creating instruments. Its data is served by [`Telemetry::scrape_metrics`] and,
    /// when `OTEL_METRICS_EXPORTER` includes `otlp`, pushed over OTLP.
    ///
    /// ```
    /// let telemetry = platform_telemetry::builder()
    ///     .env_vars([("OTEL_TRACES_EXPORTER", "none"), ("OTEL_LOGS_EXPORTER", "none")])
    ///     .build()?;
    /// let orders = telemetry.meter("orders").u64_counter("orders.placed").build();
    /// orders.add(1, &[]);
    /// assert!(telemetry.scrape_metrics(None).body.contains("orders_placed_total"));
    /// # Ok::<(), platform_telemetry::Error>(())
    /// ```
    pub fn meter(&self, scope: &'static str) -> Meter {
        self.inner.meter_provider.meter(scope)
    }

    /// The library's own meter (scope `platform-telemetry`, with the semantic-conventions
    /// schema URL).
    #[cfg_attr(
        not(any(feature = "http-server", feature = "http-client")),
        allow(dead_code)
    )]
    pub(crate) fn library_meter(&self) -> Meter {
        self.inner
            .meter_provider
            .meter_with_scope(crate::semconv::scope(INSTRUMENTATION_SCOPE))
    }

    /// The meter provider (for views or custom readers).
    pub fn meter_provider(&self) -> &SdkMeterProvider {
        &self.inner.meter_provider
    }

    /// The tracer provider; `None` when the SDK is disabled.
    pub fn tracer_provider(&self) -> Option<&SdkTracerProvider> {
        self.inner.tracer_provider.as_ref()
    }

    /// The tracer the library's own request, client and message spans are started with.
    #[cfg_attr(
        not(any(feature = "http-server", feature = "http-client")),
        allow(dead_code)
    )]
    pub(crate) fn tracer(&self) -> Option<&SdkTracer> {
        self.inner.tracer.as_ref()
    }

    /// True when this is the instance [`init()`](crate::init) installed: its subscriber is the
    /// global default, so nothing needs to switch to it.
    #[cfg_attr(not(feature = "http-server"), allow(dead_code))]
    pub(crate) fn is_global(&self) -> bool {
        GLOBAL
            .get()
            .is_some_and(|g| Arc::ptr_eq(&g.inner, &self.inner))
    }

    /// The logger provider; `None` when OTLP log export is off or the SDK is disabled.
    pub fn logger_provider(&self) -> Option<&SdkLoggerProvider> {
        self.inner.logger_provider.as_ref()
    }

    /// The propagator chosen by `OTEL_PROPAGATORS`.
    pub fn propagator(&self) -> &TextMapCompositePropagator {
        &self.inner.propagator
    }

    /// Problems found in the configuration (each was also logged once as a warning).
    pub fn config_warnings(&self) -> &[ConfigWarning] {
        &self.inner.warnings
    }

    /// True when `OTEL_SDK_DISABLED=true`: logs go to stdout only, nothing is exported.
    pub fn is_sdk_disabled(&self) -> bool {
        self.inner.sdk_disabled
    }

    /// Counts of queued, exported, failed and dropped spans and log records.
    pub fn pipeline_stats(&self) -> PipelineStats {
        PipelineStats {
            spans: self.inner.span_counters.snapshot(),
            logs: self.inner.log_counters.snapshot(),
        }
    }

    /// Renders the metrics for a scrape. `accept` is the request's `Accept` header: OpenMetrics
    /// when the scraper asks for it, the Prometheus text format otherwise. Empty when
    /// `OTEL_METRICS_EXPORTER` does not include `prometheus`.
    pub fn scrape_metrics(&self, accept: Option<&str>) -> MetricsScrape {
        let format = ExpositionFormat::from_accept(accept);
        let body = match &self.inner.prometheus {
            Some(reader) => reader.render(format, &*self.inner.exemplars),
            None if format == ExpositionFormat::OpenMetrics => "# EOF\n".to_string(),
            None => String::new(),
        };
        MetricsScrape {
            content_type: format.content_type(),
            body,
        }
    }

    /// The latest sampled trace per histogram series, served as OpenMetrics exemplars.
    #[cfg_attr(not(feature = "http-server"), allow(dead_code))]
    pub(crate) fn exemplars(&self) -> &crate::metrics::ExemplarStore {
        &self.inner.exemplars
    }

    /// Exports everything buffered now, within the shutdown bound.
    pub fn force_flush(&self) -> Result<(), Error> {
        let inner = &self.inner;
        let mut tasks: Vec<Task> = Vec::new();
        if let Some(p) = inner.tracer_provider.clone() {
            tasks.push(("traces", Box::new(move || p.force_flush())));
        }
        if let Some(p) = inner.logger_provider.clone() {
            tasks.push(("logs", Box::new(move || p.force_flush())));
        }
        let p = inner.meter_provider.clone();
        tasks.push(("metrics", Box::new(move || p.force_flush())));
        run_bounded("flush", inner.shutdown_timeout, tasks)
    }

    /// Flushes and stops every signal. Returns within the shutdown bound (default 5 s) even
    /// when the endpoint is unreachable; what could not be exported by then is lost and the
    /// error says which signals were pending. Calling it again does nothing.
    pub fn shutdown(&self) -> Result<(), Error> {
        if self.inner.shut_down.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        shutdown_providers(&self.inner, "shutdown")
    }
}

type Task = (&'static str, Box<dyn FnOnce() -> OTelSdkResult + Send>);

/// Shutting down closes the span and log gates, so that everything emitted from then on is
/// dropped, counted ([`SignalStats::dropped_after_shutdown`](crate::SignalStats)) and warned
/// about once, and exports what was queued, within the bound. The tracer and logger providers
/// are flushed, not shut down: a shut-down SDK provider would turn later spans into no-ops
/// nobody counts and warn once per log record.
fn shutdown_providers(inner: &Inner, what: &'static str) -> Result<(), Error> {
    let timeout = inner.shutdown_timeout;
    inner.span_counters.close();
    inner.log_counters.close();
    let mut tasks: Vec<Task> = Vec::new();
    if let Some(p) = inner.tracer_provider.clone() {
        tasks.push(("traces", Box::new(move || p.force_flush())));
    }
    if let Some(p) = inner.logger_provider.clone() {
        tasks.push(("logs", Box::new(move || p.force_flush())));
    }
    let p = inner.meter_provider.clone();
    tasks.push((
        "metrics",
        Box::new(move || p.shutdown_with_timeout(timeout)),
    ));
    run_bounded(what, timeout, tasks)
}

/// Runs each task on its own thread and waits for all of them, but never longer than `timeout`.
fn run_bounded(what: &'static str, timeout: Duration, tasks: Vec<Task>) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut pending: Vec<&'static str> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for (signal, task) in tasks {
        let tx = tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("telemetry-{what}-{signal}"))
            .spawn(move || {
                let _ = tx.send((signal, task()));
            });
        match spawned {
            Ok(_) => pending.push(signal),
            Err(e) => failures.push(format!("{signal}: cannot start a thread ({e})")),
        }
    }
    drop(tx);
    while !pending.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((signal, result)) => {
                pending.retain(|s| *s != signal);
                match result {
                    Ok(()) | Err(opentelemetry_sdk::error::OTelSdkError::AlreadyShutdown) => {}
                    Err(e) => failures.push(format!("{signal}: {e}")),
                }
            }
            Err(_) => {
                return Err(Error::Timeout {
                    what,
                    timeout,
                    pending: pending.join(", "),
                });
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Export {
            what,
            details: failures.join("; "),
        })
    }
}

fn build(builder: Builder) -> Result<Telemetry, Error> {
    let Builder {
        resource: resource_defaults,
        mut code,
        env,
        shutdown_timeout,
        writer,
        capture,
        span_source_attributes,
    } = builder;
    // reqwest is built without a bundled crypto provider; make ring the process default so that
    // every reqwest client in the process (ours and the application's) can do TLS. An
    // application that installed another provider first keeps it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env = env.unwrap_or_else(Env::from_process);
    code.stdout_is_terminal = writer.is_none() && std::io::stdout().is_terminal();
    let mut warnings = Warnings::default();
    let cfg = config::resolve(&env, &code, &mut warnings);
    let resource = resource::build(&env, &resource_defaults, &mut warnings);
    let service_name = resource
        .get(&opentelemetry::Key::from_static_str(attr::SERVICE_NAME))
        .map(|v| v.to_string())
        .unwrap_or_default();
    let propagator = Arc::new(propagation::composite(&cfg.propagators));
    let span_counters = Counters::with_capacity("spans", cfg.bsp.max_queue_size);
    let log_counters = Counters::with_capacity("log records", cfg.blrp.max_queue_size);

    let uses_grpc = !cfg.sdk_disabled
        && [
            (cfg.traces_exporters.otlp, &cfg.traces_otlp),
            (cfg.logs_exporters.otlp, &cfg.logs_otlp),
            (cfg.metrics_exporters.otlp, &cfg.metrics_otlp),
        ]
        .iter()
        .any(|(on, otlp)| *on && otlp.protocol == Protocol::Grpc);
    let runtime = if uses_grpc {
        Some(ExportRuntime::start()?)
    } else {
        None
    };
    let no_runtime = ExportRuntime::none();
    let rt = runtime.as_ref().unwrap_or(&no_runtime);

    let (tracer_provider, logger_provider, meters) = if cfg.sdk_disabled {
        let meters = metrics::Metrics {
            provider: SdkMeterProvider::builder().build(),
            prometheus: None,
        };
        (None, None, meters)
    } else {
        let tracer_provider = traces::provider(
            &cfg,
            resource.clone(),
            rt,
            &span_counters,
            capture.as_ref(),
            &mut warnings,
        )?;
        let logger_provider = logs::provider(
            &cfg,
            resource.clone(),
            rt,
            &log_counters,
            capture.as_ref(),
            &mut warnings,
        )?;
        let meters = metrics::provider(&cfg, resource.clone(), rt, &mut warnings)?;
        let e = cfg.metrics_exporters;
        // Without a reader the SDK refuses observable instruments (and says so at ERROR).
        if e.prometheus || e.otlp || e.console {
            // One scope, with the schema URL, for every instrument the library registers.
            let library_meter = meters
                .provider
                .meter_with_scope(crate::semconv::scope(INSTRUMENTATION_SCOPE));
            metrics::register_pipeline_metrics(
                &library_meter,
                &span_counters,
                &log_counters,
                &cfg.limits.counts,
                [
                    if cfg.traces_exporters.otlp {
                        &cfg.traces_otlp.endpoint
                    } else {
                        ""
                    },
                    if cfg.logs_exporters.otlp {
                        &cfg.logs_otlp.endpoint
                    } else {
                        ""
                    },
                ],
            );
            if cfg.runtime_metrics {
                crate::runtime_metrics::register(&library_meter);
            }
        }
        (Some(tracer_provider), logger_provider, meters)
    };

    let tracer = tracer_provider
        .as_ref()
        .map(|p| p.tracer_with_scope(crate::semconv::scope(INSTRUMENTATION_SCOPE)));
    let exemplars = Arc::new(crate::metrics::ExemplarStore::default());
    let meter = meters
        .provider
        .meter_with_scope(crate::semconv::scope(INSTRUMENTATION_SCOPE));
    let messaging = Arc::new(crate::messaging::MessagingInstruments::new(
        &meter,
        exemplars.clone(),
    ));
    let db = Arc::new(crate::db::DbInstruments::new(&meter, exemplars.clone()));
    let instance = CurrentInstance {
        tracer: tracer.clone(),
        messaging,
        db,
    };
    let dispatch = subscriber(
        &cfg,
        writer,
        instance.clone(),
        logger_provider.as_ref(),
        span_source_attributes,
    );
    let warnings = warnings.into_vec();
    tracing::dispatcher::with_default(&dispatch, || {
        for w in &warnings {
            tracing::warn!(
                target: "platform_telemetry::config",
                variable = %w.variable,
                value = %w.value,
                using = %w.using,
                "{w}"
            );
        }
    });

    Ok(Telemetry {
        inner: Arc::new(Inner {
            service_name,
            resource,
            tracer_provider,
            tracer,
            logger_provider,
            meter_provider: meters.provider,
            prometheus: meters.prometheus,
            propagator,
            propagator_kinds: cfg.propagators.clone(),
            dispatch,
            span_counters,
            log_counters,
            exemplars,
            instance,
            warnings,
            shutdown_timeout,
            shut_down: AtomicBool::new(false),
            sdk_disabled: cfg.sdk_disabled,
            _runtime: runtime,
        }),
    })
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// The instrumentation scope of every span and instrument the library creates.
pub(crate) const INSTRUMENTATION_SCOPE: &str = "platform-telemetry";

/// A layer that does nothing but let code find the instance whose subscriber is current
/// (`Dispatch::downcast_ref`), so the spans the library starts with the SDK tracer directly go
/// to the same instance as the `tracing` spans around them.
#[derive(Clone)]
struct CurrentInstance {
    tracer: Option<SdkTracer>,
    messaging: Arc<crate::messaging::MessagingInstruments>,
    db: Arc<crate::db::DbInstruments>,
}

impl<S: tracing::Subscriber> Layer<S> for CurrentInstance {}

/// The tracer of the instance whose `tracing` subscriber is current on this thread; without
/// one, the global instance's.
#[cfg(feature = "http-client")]
pub(crate) fn current_tracer() -> Option<SdkTracer> {
    current_instance(|i| i.tracer.clone()).flatten()
}

/// `pick` applied to the instance whose subscriber is current on this thread, else to the
/// global instance; `None` without either.
fn current_instance<T>(pick: impl Fn(&CurrentInstance) -> T) -> Option<T> {
    tracing::dispatcher::get_default(|dispatch| {
        dispatch.downcast_ref::<CurrentInstance>().map(&pick)
    })
    .or_else(|| GLOBAL.get().map(|t| pick(&t.inner.instance)))
}

/// The tracer (if traces are on) and the messaging instruments of the current instance.
pub(crate) fn current_messaging() -> Option<(
    Option<SdkTracer>,
    Arc<crate::messaging::MessagingInstruments>,
)> {
    current_instance(|i| (i.tracer.clone(), i.messaging.clone()))
}

/// The tracer (if traces are on) and the database instrument of the current instance.
pub(crate) fn current_db() -> Option<(Option<SdkTracer>, Arc<crate::db::DbInstruments>)> {
    current_instance(|i| (i.tracer.clone(), i.db.clone()))
}

fn subscriber(
    cfg: &config::Resolved,
    writer: Option<BoxMakeWriter>,
    instance: CurrentInstance,
    logger_provider: Option<&SdkLoggerProvider>,
    span_source_attributes: bool,
) -> Dispatch {
    let custom_writer = writer.is_some();
    let writer = writer.unwrap_or_else(|| BoxMakeWriter::new(std::io::stdout));
    let ansi = !custom_writer && std::io::stdout().is_terminal();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    let mut layers: Vec<BoxedLayer> = Vec::new();
    layers.push(match cfg.log_format {
        // The JSON line names the current span itself (from the registry), so the layer never
        // sees spans: it would format every span's fields into a string no line ever prints.
        LogFormat::Json => fmt
            .event_format(logs::JsonFormat)
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.is_event()
            }))
            .boxed(),
        LogFormat::Pretty => fmt
            .event_format(logs::WithTraceIds(
                tracing_subscriber::fmt::format().pretty(),
            ))
            .boxed(),
        LogFormat::Compact => fmt
            .event_format(logs::WithTraceIds(
                tracing_subscriber::fmt::format().compact(),
            ))
            .boxed(),
    });
    let not_machinery =
        tracing_subscriber::filter::filter_fn(|meta| !logs::is_export_machinery(meta.target()));
    if let Some(tracer) = &instance.tracer {
        layers.push(
            tracing_opentelemetry::layer()
                .with_tracer(tracer.clone())
                // `busy_ns`/`idle_ns` are not semantic-convention attributes, and tracking them
                // reads the clock on every enter and exit (every poll of an instrumented future).
                .with_tracked_inactivity(false)
                .with_location(span_source_attributes)
                .with_threads(span_source_attributes)
                // `target` is not a semantic-convention attribute (`code.module.name` neither,
                // which `with_location` adds: `semconv::SpanEventHygiene` removes it).
                .with_target(false)
                .with_filter(not_machinery.clone())
                .boxed(),
        );
    }
    layers.push(instance.boxed());
    if let Some(provider) = logger_provider {
        layers.push(
            opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(
                &crate::semconv::SchemaScopedLoggers(provider.clone()),
            )
            .with_filter(not_machinery)
            .boxed(),
        );
    }
    let filter = EnvFilter::builder().parse_lossy(&cfg.log_filter);
    Dispatch::new(Registry::default().with(layers).with(filter))
}

static GLOBAL: OnceLock<Telemetry> = OnceLock::new();
static INSTALL: Mutex<()> = Mutex::new(());

/// The globally installed instance, if [`init()`](crate::init) succeeded.
pub fn global() -> Option<Telemetry> {
    GLOBAL.get().cloned()
}

fn install_global(builder: Builder) -> Result<TelemetryGuard, Error> {
    let _installing = INSTALL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(installed) = GLOBAL.get() {
        return Err(if installed.inner.shut_down.load(Ordering::SeqCst) {
            Error::AlreadyShutDown
        } else {
            Error::AlreadyInitialized
        });
    }
    let telemetry = build(builder)?;
    tracing::dispatcher::set_global_default(telemetry.subscriber())
        .map_err(|_| Error::SubscriberAlreadySet)?;
    if let Some(p) = telemetry.tracer_provider() {
        opentelemetry::global::set_tracer_provider(p.clone());
    }
    opentelemetry::global::set_meter_provider(telemetry.meter_provider().clone());
    opentelemetry::global::set_text_map_propagator(propagation::composite(
        &telemetry.inner.propagator_kinds,
    ));
    // `log` records from libraries that do not use `tracing`; an existing logger wins.
    let _ = tracing_log::LogTracer::init();
    install_panic_hook();
    let _ = GLOBAL.set(telemetry.clone());
    Ok(TelemetryGuard { telemetry })
}

fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_string());
        let location = info.location();
        let at = location
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        // The semantic conventions' exception attributes on a log record, and where it
        // happened as `code.file.path`, `code.line.number`, `code.column.number`.
        tracing::event!(
            target: "panic",
            tracing::Level::ERROR,
            exception.r#type = "panic",
            exception.message = %message,
            code.file.path = location.map(|l| l.file()),
            code.line.number = location.map(|l| i64::from(l.line())),
            code.column.number = location.map(|l| i64::from(l.column())),
            "panicked at {at}: {message}"
        );
        if let Some(telemetry) = GLOBAL.get() {
            let _ = telemetry.force_flush();
        }
        previous(info);
    }));
}

/// Returned by [`init()`](crate::init): dropping it (or calling
/// [`shutdown`](TelemetryGuard::shutdown)) flushes every signal within the shutdown bound.
/// Keep it alive for the life of `main`.
#[must_use = "dropping the guard shuts telemetry down at once; bind it: `let _telemetry = init()?;`"]
pub struct TelemetryGuard {
    telemetry: Telemetry,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TelemetryGuard")
            .field(&self.telemetry)
            .finish()
    }
}

impl TelemetryGuard {
    /// The installed instance.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Flushes and stops every signal now, reporting what could not be exported.
    pub fn shutdown(self) -> Result<(), Error> {
        self.telemetry.shutdown()
    }
}

impl std::ops::Deref for TelemetryGuard {
    type Target = Telemetry;
    fn deref(&self) -> &Telemetry {
        &self.telemetry
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(e) = self.telemetry.shutdown() {
            tracing::warn!(target: "platform_telemetry", error = %e, "telemetry shutdown incomplete");
        }
    }
}
