//! What the benchmarks share: a loopback OTLP receiver and a full-pipeline instance sending to it.

use std::time::Duration;

use otlp_receiver::OtlpReceiver;
use platform_telemetry::Telemetry;

/// A real OTLP receiver on loopback and the one-worker runtime that serves it.
pub struct Receiver {
    runtime: tokio::runtime::Runtime,
    receiver: Option<OtlpReceiver>,
}

impl Receiver {
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let receiver = runtime
            .block_on(OtlpReceiver::start())
            .expect("OTLP receiver");
        Self {
            runtime,
            receiver: Some(receiver),
        }
    }

    pub fn endpoint(&self) -> String {
        self.receiver.as_ref().expect("running").http_endpoint()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Drop the receiver inside its runtime so its servers see the shutdown signal.
        let _guard = self.runtime.enter();
        self.receiver.take();
    }
}

/// A non-global instance with every signal on (OTLP/HTTP spans and log records to `receiver`,
/// JSON log lines to `std::io::sink`, Prometheus metrics), default queue and batch settings,
/// and the given `OTEL_TRACES_SAMPLER`.
pub fn telemetry(receiver: &Receiver, sampler: &str) -> Telemetry {
    platform_telemetry::builder()
        .env_vars([
            ("OTEL_SERVICE_NAME", "bench".to_string()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_string()),
            ("OTEL_TRACES_SAMPLER", sampler.to_string()),
            ("LOG_FORMAT", "json".to_string()),
        ])
        .log_writer(std::io::sink)
        .shutdown_timeout(Duration::from_secs(5))
        .build()
        .expect("telemetry")
}
