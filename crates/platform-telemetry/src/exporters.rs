//! OTLP exporters (gRPC and HTTP/protobuf), TLS, and the `console` exporters.
//!
//! Exports never run on the application's runtime: HTTP uses a blocking client with its own
//! thread, and gRPC channels live on a small runtime owned by the library ([`ExportRuntime`]).
//! A `current_thread` runtime, a single CPU, or an application blocked in shutdown can therefore
//! not starve the exporter — the classic opentelemetry-rust shutdown deadlock.

use std::io::Write as _;
use std::time::Duration;

use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use crate::Error;
use crate::config::{OtlpConfig, Protocol, Signal, Warnings};
use crate::tls::{self, TlsMaterial};

/// A small multi-thread runtime (one worker) that drives gRPC channels.
#[derive(Debug)]
pub(crate) struct ExportRuntime(Option<tokio::runtime::Runtime>);

impl ExportRuntime {
    pub(crate) fn start() -> Result<Self, Error> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("telemetry-export")
            .enable_all()
            .build()
            .map(|rt| Self(Some(rt)))
            .map_err(Error::Runtime)
    }

    /// No runtime: for configurations without gRPC.
    pub(crate) fn none() -> Self {
        Self(None)
    }

    #[cfg_attr(not(feature = "grpc"), allow(dead_code))]
    fn enter(&self) -> Option<tokio::runtime::EnterGuard<'_>> {
        self.0.as_ref().map(|rt| rt.enter())
    }
}

impl Drop for ExportRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside an async context: never block here.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

fn build_error(
    signal: Signal,
    cfg: &OtlpConfig,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    Error::Exporter {
        signal: signal.as_str(),
        endpoint: cfg.endpoint.clone(),
        source: source.into(),
    }
}

fn tls_material(cfg: &OtlpConfig, signal: Signal, warnings: &mut Warnings) -> TlsMaterial {
    if cfg.endpoint.starts_with("https://") {
        tls::load(&cfg.tls, signal, warnings)
    } else {
        TlsMaterial::default()
    }
}

/// The blocking HTTP client, built on its own thread: reqwest's blocking client must be neither
/// built nor dropped on an async runtime thread.
fn http_client(
    cfg: &OtlpConfig,
    signal: Signal,
    material: &TlsMaterial,
) -> Result<reqwest::blocking::Client, Error> {
    let tls = tls::rustls_client_config(material).map_err(|e| build_error(signal, cfg, e))?;
    let timeout = cfg.timeout;
    std::thread::Builder::new()
        .name("telemetry-http-client-init".into())
        .spawn(move || {
            reqwest::blocking::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                .tls_backend_preconfigured(tls)
                .build()
        })
        .map_err(|e| build_error(signal, cfg, e))?
        .join()
        .map_err(|_| build_error(signal, cfg, "building the HTTP client panicked"))?
        .map_err(|e| build_error(signal, cfg, e))
}

#[cfg(feature = "grpc")]
fn tonic_metadata(cfg: &OtlpConfig) -> opentelemetry_otlp::tonic_types::metadata::MetadataMap {
    let mut headers = http::HeaderMap::new();
    for (k, v) in &cfg.headers {
        if let (Ok(name), Ok(value)) = (
            http::header::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            headers.insert(name, value);
        }
    }
    opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(headers)
}

/// Builds one signal's OTLP exporter from its resolved configuration. `$builder` is e.g.
/// `opentelemetry_otlp::SpanExporter::builder()`.
macro_rules! otlp_exporter {
    ($builder:expr, $cfg:expr, $signal:expr, $rt:expr, $warnings:expr) => {{
        let cfg: &OtlpConfig = $cfg;
        let material = tls_material(cfg, $signal, $warnings);
        match cfg.protocol {
            #[cfg(feature = "grpc")]
            Protocol::Grpc => {
                use opentelemetry_otlp::WithTonicConfig as _;
                let _entered = $rt.enter();
                let mut b = $builder
                    .with_tonic()
                    .with_endpoint(cfg.endpoint.clone())
                    .with_timeout(cfg.timeout)
                    .with_metadata(tonic_metadata(cfg));
                if cfg.gzip {
                    b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
                }
                if cfg.endpoint.starts_with("https://") {
                    b = b.with_tls_config(tls::tonic_client_config(&material));
                }
                b.build().map_err(|e| build_error($signal, cfg, e))
            }
            #[cfg(not(feature = "grpc"))]
            Protocol::Grpc => Err(build_error(
                $signal,
                cfg,
                "gRPC needs the `grpc` feature of platform-telemetry",
            )),
            Protocol::HttpProtobuf => {
                let _ = $rt; // gRPC only
                let client = http_client(cfg, $signal, &material)?;
                let mut b = $builder
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(cfg.endpoint.clone())
                    .with_timeout(cfg.timeout)
                    .with_http_client(client)
                    .with_headers(cfg.headers.iter().cloned().collect());
                if cfg.gzip {
                    b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
                }
                b.build().map_err(|e| build_error($signal, cfg, e))
            }
        }
    }};
}

pub(crate) fn span_exporter(
    cfg: &OtlpConfig,
    rt: &ExportRuntime,
    warnings: &mut Warnings,
) -> Result<opentelemetry_otlp::SpanExporter, Error> {
    otlp_exporter!(
        opentelemetry_otlp::SpanExporter::builder(),
        cfg,
        Signal::Traces,
        rt,
        warnings
    )
}

pub(crate) fn log_exporter(
    cfg: &OtlpConfig,
    rt: &ExportRuntime,
    warnings: &mut Warnings,
) -> Result<opentelemetry_otlp::LogExporter, Error> {
    otlp_exporter!(
        opentelemetry_otlp::LogExporter::builder(),
        cfg,
        Signal::Logs,
        rt,
        warnings
    )
}

pub(crate) fn metric_exporter(
    cfg: &OtlpConfig,
    rt: &ExportRuntime,
    warnings: &mut Warnings,
) -> Result<opentelemetry_otlp::MetricExporter, Error> {
    otlp_exporter!(
        opentelemetry_otlp::MetricExporter::builder().with_temporality(Temporality::Cumulative),
        cfg,
        Signal::Metrics,
        rt,
        warnings
    )
}

/// `OTEL_TRACES_EXPORTER=console`: one JSON line per finished span on stdout.
#[derive(Debug, Default)]
pub(crate) struct ConsoleSpanExporter;

impl SpanExporter for ConsoleSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut out = std::io::stdout().lock();
        for span in batch {
            let duration = span
                .end_time
                .duration_since(span.start_time)
                .unwrap_or_default();
            let attributes: serde_json::Map<String, serde_json::Value> = span
                .attributes
                .iter()
                .map(|kv| (kv.key.to_string(), kv.value.to_string().into()))
                .collect();
            let line = serde_json::json!({
                "otel.span": span.name,
                "trace_id": span.span_context.trace_id().to_string(),
                "span_id": span.span_context.span_id().to_string(),
                "parent_span_id": span.parent_span_id.to_string(),
                "kind": format!("{:?}", span.span_kind),
                "duration_ms": duration.as_secs_f64() * 1000.0,
                "status": format!("{:?}", span.status),
                "attributes": attributes,
            });
            let _ = writeln!(out, "{line}");
        }
        Ok(())
    }
}

/// `OTEL_METRICS_EXPORTER=console`: the Prometheus text exposition on stdout at every interval.
#[derive(Debug, Default)]
pub(crate) struct ConsoleMetricExporter;

impl PushMetricExporter for ConsoleMetricExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let mut text = String::new();
        crate::metrics::exposition::encode(
            metrics,
            crate::metrics::exposition::ExpositionFormat::PrometheusText,
            &crate::metrics::exposition::NoExemplars,
            &mut text,
        );
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}
