//! The OTLP exporter reports a `partial_success` (the backend accepted the request but rejected
//! some items) only as an internal warning event, never as an error. `obs verify` listens for
//! those events so a backend that refused part of the probe is reported as such, not as "not
//! found later". (In `obs sidecar` the events go to obs's own log instead.)

use std::fmt::Write as _;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt as _};

static CAPTURED: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

struct PartialSuccess;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for PartialSuccess {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let name = event.metadata().name();
        if name.ends_with(".PartialSuccess") {
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            if let Ok(mut captured) = CAPTURED.lock() {
                captured.push(format!("{name}:{}", fields.0));
            }
        }
    }
}

/// Installs the listener as the global subscriber; false when another one is already global.
pub fn install() -> bool {
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(PartialSuccess))
        .is_ok()
}

/// The partial-success reports seen since the last call.
pub fn take() -> Vec<String> {
    CAPTURED
        .lock()
        .map(|mut c| std::mem::take(&mut *c))
        .unwrap_or_default()
}
