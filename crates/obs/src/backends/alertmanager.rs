//! Alertmanager (v0.2x API v2): readiness and the alerts it holds.

use super::{Http, Readiness, StoreError, StoreUrl};

/// An Alertmanager.
#[derive(Clone, Debug)]
pub struct Alertmanager {
    base: StoreUrl,
}

/// An alert Alertmanager holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldAlert {
    /// Its `alertname` label.
    pub name: String,
    /// `active`, `suppressed` or `unprocessed`.
    pub state: String,
}

impl Alertmanager {
    /// Alertmanager at `base` (`http://alertmanager:9093`, or below a path prefix).
    pub fn new(base: StoreUrl) -> Self {
        Self { base }
    }

    /// Where it is (redacted).
    pub fn base(&self) -> &StoreUrl {
        &self.base
    }

    /// `/-/ready`; where that is 404 (Mimir's Alertmanager below `/alertmanager`),
    /// `/api/v2/status`.
    pub async fn ready(&self, http: &Http) -> Readiness {
        match http.readiness(self.base.join(&["-", "ready"])).await {
            Readiness::NotReady(StoreError::Status { status: 404, .. }) => {
                http.readiness(self.base.join(&["api", "v2", "status"]))
                    .await
            }
            other => other,
        }
    }

    /// The alerts named `alertname` (`/api/v2/alerts?filter=alertname="…"`).
    pub async fn alerts(&self, http: &Http, alertname: &str) -> Result<Vec<HeldAlert>, StoreError> {
        let filter = format!("alertname=\"{alertname}\"");
        let body = http
            .get_json(
                self.base.join(&["api", "v2", "alerts"]),
                &[("filter", &filter)],
            )
            .await?;
        Ok(body
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| HeldAlert {
                name: a["labels"]["alertname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                state: a["status"]["state"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            })
            .filter(|a| a.name == alertname)
            .collect())
    }
}
