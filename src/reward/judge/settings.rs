//! The ranges of the judge settings, checked when a configuration is loaded and again when a
//! client is made, so a bad value is one error naming its key instead of a failure (or a
//! panic) on every request.

use anyhow::{bail, Result};

use super::JudgeSettings;

/// The longest wait a setting may ask for: a day, in seconds. Longer timeouts or backoffs
/// are typos, not plans.
pub const MAX_SECONDS: f64 = 86_400.0;

/// `judge.max_failure_rate` by default: a step stops when more than a quarter of its rows
/// got the batch-mean Story Quality instead of a judgement. Transient faults that the
/// retries absorb stay far below it (30% of requests failing, 3 retries: under 1% of
/// judgements fail); an outage (a revoked key, a server down) is far above it.
pub const DEFAULT_MAX_FAILURE_RATE: f64 = 0.25;

impl JudgeSettings {
    /// Every range serde cannot check; errors name the key (`judge.timeout_secs`), the value
    /// and what is allowed.
    pub fn validate(&self) -> Result<()> {
        let seconds = |key: &str, v: f64, zero_ok: bool| -> Result<()> {
            let low_ok = if zero_ok { v >= 0.0 } else { v > 0.0 };
            if !(v.is_finite() && low_ok && v <= MAX_SECONDS) {
                let low = if zero_ok { "[0" } else { "(0" };
                bail!("judge.{key} = {v}: must be a number of seconds in {low}, {MAX_SECONDS}]");
            }
            Ok(())
        };
        seconds("timeout_secs", self.timeout_secs, false)?;
        seconds("backoff_secs", self.backoff_secs, true)?;
        seconds("max_backoff_secs", self.max_backoff_secs, true)?;
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            bail!("judge.temperature = {}: must be a number >= 0 (the recipe's is 0.2)", self.temperature);
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            bail!("judge.top_p = {}: must be in (0, 1] (the recipe's is 0.9)", self.top_p);
        }
        if self.max_tokens == 0 {
            bail!("judge.max_tokens = 0: must be at least 1 (the answer needs room; the default is 8192)");
        }
        if self.concurrency == 0 {
            bail!("judge.concurrency = 0: must be at least 1 (requests in flight at most)");
        }
        if !(0.0..=1.0).contains(&self.max_failure_rate) {
            bail!(
                "judge.max_failure_rate = {}: must be in [0, 1] (a step's failed judgements over its rows; 1 never stops)",
                self.max_failure_rate
            );
        }
        if let Some(url) = &self.base_url {
            let ok = reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                bail!("judge.base_url = {url:?}: must be an http:// or https:// URL, e.g. http://localhost:8000/v1");
            }
        }
        for (model, p) in &self.prices {
            for (field, v) in
                [("input_per_million", p.input_per_million), ("output_per_million", p.output_per_million)]
            {
                if !(v.is_finite() && v >= 0.0) {
                    bail!("judge.prices.{model:?}.{field} = {v}: must be a price in dollars >= 0");
                }
            }
        }
        Ok(())
    }
}

/// A step's judgements against `judge.max_failure_rate`: an error (counts, the first reason,
/// what to do) when more than `max_rate` of `rows` failed.
pub fn failure_gate(failures: &[&str], rows: usize, max_rate: f64) -> Result<()> {
    let rate = failures.len() as f64 / rows.max(1) as f64;
    if rate > max_rate {
        bail!(
            "the judge failed on {} of {rows} rows ({:.0}%), more than judge.max_failure_rate = {max_rate} allows; \
             first failure: {}. The step was not trained on or saved: fix the judge and resume \
             (--resume auto), or raise judge.max_failure_rate",
            failures.len(),
            rate * 100.0,
            failures.first().unwrap_or(&"-"),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reward::judge::Price;

    fn error(change: impl FnOnce(&mut JudgeSettings)) -> String {
        let mut s = JudgeSettings::default();
        change(&mut s);
        s.validate().expect_err("accepted").to_string()
    }

    #[test]
    fn the_defaults_are_valid() {
        JudgeSettings::default().validate().unwrap();
    }

    #[test]
    fn bad_values_name_the_key_and_the_range() {
        let e = error(|s| s.timeout_secs = -1.0);
        assert!(e.contains("judge.timeout_secs = -1") && e.contains("(0, 86400]"), "{e}");
        let e = error(|s| s.backoff_secs = -3.0);
        assert!(e.contains("judge.backoff_secs = -3") && e.contains("[0, 86400]"), "{e}");
        for bad in [f64::NAN, f64::INFINITY, 0.0, 1e20] {
            assert!(error(|s| s.timeout_secs = bad).contains("judge.timeout_secs"), "{bad}");
        }
        assert!(error(|s| s.max_backoff_secs = f64::NAN).contains("judge.max_backoff_secs"));
        assert!(error(|s| s.temperature = f64::NAN).contains("judge.temperature"));
        assert!(error(|s| s.top_p = 0.0).contains("judge.top_p"));
        assert!(error(|s| s.max_tokens = 0).contains("judge.max_tokens"));
        assert!(error(|s| s.concurrency = 0).contains("judge.concurrency"));
        assert!(error(|s| s.max_failure_rate = 1.5).contains("judge.max_failure_rate = 1.5"));
        assert!(error(|s| s.max_failure_rate = f64::NAN).contains("judge.max_failure_rate"));
        assert!(error(|s| s.base_url = Some("localhost:8000".into())).contains("judge.base_url"));
        let e = error(|s| {
            s.prices.insert("m".into(), Price { input_per_million: -1.0, output_per_million: 1.0 });
        });
        assert!(e.contains("input_per_million"), "{e}");
    }

    #[test]
    fn the_gate_opens_above_the_rate_only() {
        failure_gate(&[], 48, 0.0).unwrap();
        failure_gate(&["503"; 12], 48, 0.25).unwrap(); // exactly a quarter: trained on
        let e = failure_gate(&["HTTP 503: down"; 13], 48, 0.25).unwrap_err().to_string();
        assert!(e.contains("13 of 48 rows (27%)") && e.contains("judge.max_failure_rate = 0.25"), "{e}");
        assert!(e.contains("first failure: HTTP 503: down"), "{e}");
        failure_gate(&["x"; 48], 48, 1.0).unwrap(); // 1 never stops
        assert!(failure_gate(&["x"], 48, 0.0).is_err());
    }

    #[test]
    fn zero_backoff_and_the_bounds_are_allowed() {
        let mut s = JudgeSettings { backoff_secs: 0.0, max_backoff_secs: 0.0, ..Default::default() };
        s.timeout_secs = MAX_SECONDS;
        s.max_failure_rate = 1.0;
        s.base_url = Some("https://example.org/v1".into());
        s.validate().unwrap();
    }
}
