//! Injected failures, so alerts can be proven to fire.

/// Injected failures (`ORDERS_FAULT_RATIO`): this share of lookups answers 503, spread evenly
/// (a ratio of 0.25 fails every fourth request), so alerts can be proven to fire.
#[derive(Debug, Default)]
pub struct Faults {
    ratio: f64,
    requests: std::sync::atomic::AtomicU64,
}

impl Faults {
    /// Fails `ratio` of the requests (clamped to 0..=1; NaN is 0).
    pub fn new(ratio: f64) -> Self {
        let ratio = if ratio.is_nan() {
            0.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        Self {
            ratio,
            requests: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Reads `ORDERS_FAULT_RATIO` (unset: no faults).
    pub fn from_env() -> anyhow::Result<Self> {
        match std::env::var("ORDERS_FAULT_RATIO") {
            Err(_) => Ok(Self::default()),
            Ok(v) => {
                let ratio: f64 = v.trim().parse().map_err(|_| {
                    anyhow::anyhow!(
                        "ORDERS_FAULT_RATIO={v:?} is not a number from 0 to 1 (e.g. 0.25)"
                    )
                })?;
                anyhow::ensure!(
                    (0.0..=1.0).contains(&ratio),
                    "ORDERS_FAULT_RATIO={v:?} is not a number from 0 to 1 (e.g. 0.25)"
                );
                Ok(Self::new(ratio))
            }
        }
    }

    /// True when this request is one to fail.
    pub(crate) fn fail_next(&self) -> bool {
        if self.ratio <= 0.0 {
            return false;
        }
        let n = self
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed) as f64;
        ((n + 1.0) * self.ratio).floor() > (n * self.ratio).floor()
    }
}

#[cfg(test)]
mod tests {
    use super::Faults;

    #[test]
    fn a_fault_ratio_fails_that_share_of_requests_evenly() {
        let quarter = Faults::new(0.25);
        let failed: Vec<bool> = (0..8).map(|_| quarter.fail_next()).collect();
        assert_eq!(
            failed,
            [false, false, false, true, false, false, false, true]
        );
        let all = Faults::new(1.0);
        assert!((0..10).all(|_| all.fail_next()));
        let none = Faults::new(f64::NAN);
        assert!((0..10).all(|_| !none.fail_next()));
    }
}
