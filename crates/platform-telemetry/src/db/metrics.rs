//! `db.client.operation.duration`, recorded once per [`DbSpan`](super::DbSpan) when it ends.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry::trace::SpanContext;

use super::describe::Recorded;
use super::failure::DbFailure;
use crate::metrics::ExemplarStore;
use crate::semconv::{attr, metric};

/// `db.client.operation.duration`: how long a database client operation took.
pub const CLIENT_OPERATION_DURATION: &str = metric::DB_CLIENT_OPERATION_DURATION;

/// The buckets the semantic conventions advise for `db.client.operation.duration` (seconds).
const DURATION_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// The instrument of one telemetry instance.
#[derive(Debug)]
pub(crate) struct DbInstruments {
    duration: Histogram<f64>,
    exemplars: Arc<ExemplarStore>,
}

impl DbInstruments {
    pub(crate) fn new(meter: &Meter, exemplars: Arc<ExemplarStore>) -> Self {
        Self {
            duration: meter
                .f64_histogram(CLIENT_OPERATION_DURATION)
                .with_unit("s")
                .with_description("Duration of database client operations")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            exemplars,
        }
    }
}

/// What one span records when it ends (by `end` or the drop of its last clone).
#[derive(Debug)]
pub(crate) struct DbOutcome {
    instruments: Arc<DbInstruments>,
    started: Instant,
    /// The operation's attributes, shared by every measurement of the same operation.
    recorded: Arc<Recorded>,
    failure: Mutex<Option<DbFailure>>,
    span_context: SpanContext,
}

impl DbOutcome {
    pub(crate) fn new(
        instruments: Arc<DbInstruments>,
        recorded: Arc<Recorded>,
        span_context: SpanContext,
    ) -> Self {
        Self {
            instruments,
            started: Instant::now(),
            recorded,
            failure: Mutex::new(None),
            span_context,
        }
    }

    pub(crate) fn fail(&self, failure: DbFailure) {
        *self
            .failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(failure);
    }
}

impl Drop for DbOutcome {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let failed = self
            .failure
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        // Only a failure needs attributes of its own: the operation's plus `error.type`.
        let exemplars = &self.instruments.exemplars;
        match failed {
            None => {
                let attributes = &self.recorded.attributes;
                self.instruments.duration.record(elapsed, attributes);
                exemplars.record_series(
                    self.recorded.series_hash,
                    CLIENT_OPERATION_DURATION,
                    attributes,
                    elapsed,
                    &self.span_context,
                );
            }
            Some(failure) => {
                let (error_type, status_code) = failure.into_parts();
                let mut attributes = Vec::with_capacity(self.recorded.attributes.len() + 2);
                attributes.extend(self.recorded.attributes.iter().cloned());
                attributes.push(KeyValue::new(attr::ERROR_TYPE, error_type));
                if let Some(code) = status_code {
                    attributes.push(KeyValue::new(attr::DB_RESPONSE_STATUS_CODE, code));
                }
                self.instruments.duration.record(elapsed, &attributes);
                exemplars.record(
                    CLIENT_OPERATION_DURATION,
                    &attributes,
                    elapsed,
                    &self.span_context,
                );
            }
        }
    }
}
