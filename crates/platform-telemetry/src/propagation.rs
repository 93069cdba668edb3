//! Context propagation: the composite propagator chosen by `OTEL_PROPAGATORS`
//! (default `tracecontext,baggage`: W3C `traceparent`/`tracestate` and `baggage`).

use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

use crate::config::PropagatorKind;

// opentelemetry-zipkin marks its whole crate deprecated (the Zipkin exporter); its B3
// propagator is the maintained one in the 0.33 family.
#[cfg_attr(feature = "b3", allow(deprecated))]
pub(crate) fn composite(kinds: &[PropagatorKind]) -> TextMapCompositePropagator {
    let propagators: Vec<Box<dyn TextMapPropagator + Send + Sync>> = kinds
        .iter()
        .map(|kind| -> Box<dyn TextMapPropagator + Send + Sync> {
            match kind {
                PropagatorKind::TraceContext => Box::new(TraceContextPropagator::new()),
                PropagatorKind::Baggage => Box::new(BaggagePropagator::new()),
                #[cfg(feature = "b3")]
                PropagatorKind::B3Single => {
                    Box::new(opentelemetry_zipkin::Propagator::with_encoding(
                        opentelemetry_zipkin::B3Encoding::SingleHeader,
                    ))
                }
                #[cfg(feature = "b3")]
                PropagatorKind::B3Multi => {
                    Box::new(opentelemetry_zipkin::Propagator::with_encoding(
                        opentelemetry_zipkin::B3Encoding::MultipleHeader,
                    ))
                }
            }
        })
        .collect();
    TextMapCompositePropagator::new(propagators)
}
