//! The OpenTelemetry Collector's own metrics (`http://collector:8888/metrics`), read before and
//! after the probe to name the component that dropped it.

use std::collections::BTreeMap;

use super::{Http, StoreError, StoreUrl};

/// Counter sums by (metric, component).
pub type Counters = BTreeMap<(String, String), f64>;

/// Where the collector serves its own metrics.
#[derive(Clone, Debug)]
pub struct Collector {
    metrics: StoreUrl,
}

impl Collector {
    /// The collector whose metrics are at `metrics` (the full URL, `/metrics` included).
    pub fn new(metrics: StoreUrl) -> Self {
        Self { metrics }
    }

    /// The `otelcol_*` counters now.
    pub async fn counters(&self, http: &Http) -> Result<Counters, StoreError> {
        let text = http.get_ok(self.metrics.join(&[]), &[]).await?;
        Ok(counters(&text))
    }
}

/// Sums of the collector's counters by (metric, component), from its Prometheus text.
pub fn counters(text: &str) -> Counters {
    let mut sums = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("otelcol_")) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let component = labels
            .split(',')
            .find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                matches!(k.trim(), "exporter" | "receiver")
                    .then(|| v.trim_matches(['"', '}']).to_string())
            })
            .unwrap_or_default();
        *sums.entry((name.to_string(), component)).or_insert(0.0) += value;
    }
    sums
}
