//! Traces: the tracer provider, its sampler, and the gated batch pipeline.

use std::sync::Arc;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanExporter,
};

use crate::Error;
use crate::config::{BatchSettings, Resolved, SamplerConfig, Warnings};
use crate::exporters::{ConsoleSpanExporter, ExportRuntime, span_exporter};
use crate::limits::ValueLengthLimit;
use crate::pipeline::{Counters, CountingExporter, GatedSpanProcessor};
use crate::semconv::SpanEventHygiene;
use crate::telemetry::CaptureSinks;

/// Starts the span `builder` describes as a child of `parent` and returns the context holding
/// it. `record` (name, attributes) runs only when the sampler records the span; an unsampled
/// span is kept as its ids and flags alone (children stay unsampled, logs keep the ids), so it
/// costs no attribute work and no boxed span. The library's own spans (HTTP server and client,
/// messaging) all start here.
#[cfg_attr(
    not(any(feature = "http-server", feature = "http-client")),
    allow(dead_code)
)]
pub(crate) fn start_child(
    tracer: &opentelemetry_sdk::trace::SdkTracer,
    builder: opentelemetry::trace::SpanBuilder,
    parent: &opentelemetry::Context,
    record: impl FnOnce(&mut opentelemetry_sdk::trace::Span),
) -> opentelemetry::Context {
    use opentelemetry::trace::{Span as _, TraceContextExt as _};
    let mut span = builder.start_with_context(tracer, parent);
    if !span.is_recording() {
        return parent.with_remote_span_context(span.span_context().clone());
    }
    record(&mut span);
    parent.with_span(span)
}

pub(crate) fn sampler(config: SamplerConfig) -> Sampler {
    match config {
        SamplerConfig::AlwaysOn => Sampler::AlwaysOn,
        SamplerConfig::AlwaysOff => Sampler::AlwaysOff,
        SamplerConfig::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
        SamplerConfig::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerConfig::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerConfig::ParentBasedTraceIdRatio(r) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
        }
    }
}

fn gated_batch<E: SpanExporter + 'static>(
    exporter: E,
    batch: BatchSettings,
    counters: &Arc<Counters>,
) -> GatedSpanProcessor<BatchSpanProcessor> {
    let config = BatchConfigBuilder::default()
        .with_max_queue_size(batch.max_queue_size)
        .with_max_export_batch_size(batch.max_export_batch_size)
        .with_scheduled_delay(batch.schedule_delay)
        .build();
    let processor = BatchSpanProcessor::builder(CountingExporter {
        inner: exporter,
        counters: counters.clone(),
    })
    .with_batch_config(config)
    .build();
    GatedSpanProcessor {
        inner: processor,
        counters: counters.clone(),
    }
}

/// The tracer provider always exists while the SDK is enabled, even with no exporter: spans
/// still give logs their trace ids and carry context to the next hop.
pub(crate) fn provider(
    cfg: &Resolved,
    resource: Resource,
    rt: &ExportRuntime,
    counters: &Arc<Counters>,
    capture: Option<&CaptureSinks>,
    warnings: &mut Warnings,
) -> Result<SdkTracerProvider, Error> {
    // Set explicitly: the SDK would otherwise read OTEL_SPAN_* from the process environment,
    // unbounded and past `Builder::env_vars`.
    let mut builder = SdkTracerProvider::builder()
        .with_sampler(sampler(cfg.sampler))
        .with_span_limits(cfg.limits.span.sdk())
        .with_resource(resource);
    let length = cfg.limits.span.attribute_value_length;
    let limited = |inner| SpanEventHygiene {
        inner: ValueLengthLimit {
            inner,
            limit: length,
        },
    };
    if cfg.traces_exporters.otlp {
        let mut otlp = cfg.traces_otlp.clone();
        // OTEL_BSP_EXPORT_TIMEOUT bounds each export, as does OTEL_EXPORTER_OTLP_TIMEOUT.
        otlp.timeout = otlp.timeout.min(cfg.bsp.export_timeout);
        let exporter = span_exporter(&otlp, rt, warnings)?;
        builder = builder.with_span_processor(limited(gated_batch(exporter, cfg.bsp, counters)));
    }
    if cfg.traces_exporters.console {
        // The console exporter has its own queue; its counts are not the OTLP pipeline's.
        let console_counters = counters.sibling(cfg.bsp.max_queue_size);
        builder = builder.with_span_processor(limited(gated_batch(
            ConsoleSpanExporter,
            cfg.bsp,
            &console_counters,
        )));
    }
    #[cfg(feature = "testing")]
    if let Some(sinks) = capture {
        builder = builder.with_span_processor(SpanEventHygiene {
            inner: ValueLengthLimit {
                inner: opentelemetry_sdk::trace::SimpleSpanProcessor::new(sinks.spans.clone()),
                limit: length,
            },
        });
    }
    #[cfg(not(feature = "testing"))]
    let _ = capture;
    Ok(builder.build())
}
