//! A double of an OpenTelemetry Collector pipeline: one OTLP intake (crate `otlp-receiver`:
//! gRPC, and HTTP with protobuf bodies, as the collector's `otlp` receiver on 4317/4318) whose
//! traces go to the Tempo and Jaeger doubles and whose logs go to the Loki double, as a
//! `traces: [otlp] -> [otlp/tempo, otlp/jaeger]`, `logs: [otlp] -> [otlphttp/loki]` pipeline does.
//!
//! Data travels over real OTLP once (client to this receiver); the hand-over to the stores is
//! in-process, so each store sees exactly what a real exporter would have delivered, with the
//! store's own rules applied (Loki's label mapping and its refusal of too old or too new entries,
//! `drop_spans`, `forget_trace`, visibility lags).
//!
//! Not modelled: processors (batching, memory limiter, resource detection), the exporters'
//! retry and queue (a store that is down still receives the data, as if the retry succeeded once
//! it came back), metrics export (metrics are only kept; see [`CollectorDouble::snapshot`]), and
//! the collector's own telemetry (`otelcol_*` metrics).

use std::sync::Arc;

use otlp_receiver::{Behavior, OtlpReceiver, Snapshot};

use crate::chassis::{self, Error, Running};
use crate::common::lock;
use crate::jaeger::JaegerDouble;
use crate::loki::LokiDouble;
use crate::tempo::TempoDouble;

/// A running collector double; dropping it stops its intake.
#[derive(Debug)]
pub struct CollectorDouble {
    receiver: Arc<OtlpReceiver>,
    _running: Running,
}

impl CollectorDouble {
    /// Starts an OTLP intake on free ports that forwards traces to `tempo` and `jaeger` and logs
    /// to `loki` (each optional).
    pub fn start(
        tempo: Option<&TempoDouble>,
        jaeger: Option<&JaegerDouble>,
        loki: Option<&LokiDouble>,
    ) -> Result<Self, Error> {
        let (tempo, jaeger, loki) = (
            tempo.map(TempoDouble::shared),
            jaeger.map(JaegerDouble::shared),
            loki.map(LokiDouble::shared),
        );
        let sink: chassis::Sink = Box::new(move |spans, logs| {
            if let Some(tempo) = &tempo {
                lock(&tempo.traces).ingest(spans);
            }
            if let Some(jaeger) = &jaeger {
                lock(&jaeger.traces).ingest(spans);
            }
            if let Some(loki) = &loki {
                // A refused entry is what the collector's exporter would log and drop.
                let _ = loki.ingest(logs);
            }
        });
        let (running, receiver) =
            chassis::run_with_intake("collector", Vec::new(), sink, Arc::default())?;
        Ok(Self {
            receiver,
            _running: running,
        })
    }

    /// The OTLP/gRPC endpoint (the collector's 4317), `http://127.0.0.1:<port>`.
    pub fn grpc_endpoint(&self) -> String {
        self.receiver.grpc_endpoint()
    }

    /// The OTLP/HTTP base endpoint (the collector's 4318), without `/v1/...`.
    pub fn http_endpoint(&self) -> String {
        self.receiver.http_endpoint()
    }

    /// How the intake answers exports from now on (for example a collector refusing data).
    pub fn set_behavior(&self, behavior: Behavior) {
        self.receiver.set_behavior(behavior);
    }

    /// Everything received so far, metrics included.
    pub fn snapshot(&self) -> Snapshot {
        self.receiver.snapshot()
    }
}
