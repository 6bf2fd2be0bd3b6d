//! When to try a judge request again: the server's Retry-After (delay seconds or an HTTP
//! date) when it gives one, else exponential backoff with jitter; never longer than
//! `judge.max_backoff_secs`, whatever the server says.

use std::time::{Duration, SystemTime};

use super::JudgeSettings;

/// The most a Retry-After is read as, before `max_backoff_secs` applies: an hour. `inf`,
/// `1e20` or a 20-digit number of seconds (more than a Duration holds) end up here.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A Retry-After header's wait from `now`: seconds (any non-negative number, capped at
/// MAX_RETRY_AFTER) or an HTTP date (zero once past). None for anything else (negative,
/// NaN, words), and the caller's own backoff applies.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        // NaN and negatives are no wait at all: ignored rather than read as "now"
        if secs.is_nan() || secs < 0.0 {
            return None;
        }
        return Some(if secs >= MAX_RETRY_AFTER.as_secs_f64() {
            MAX_RETRY_AFTER
        } else {
            Duration::from_secs_f64(secs)
        });
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

/// The wait before retry `attempt` (1 = the first retry): the server's `after` when given,
/// else base x 2^(attempt-1) plus `jitter` (0..=1) of a base; at most `max_backoff_secs`.
pub fn backoff_with(attempt: u32, after: Option<Duration>, s: &JudgeSettings, jitter: f64) -> Duration {
    // validated settings are finite and >= 0; a hand-made one that is not waits nothing
    // rather than panicking in Duration
    let max = seconds(s.max_backoff_secs);
    if let Some(a) = after {
        return a.min(max);
    }
    let base = s.backoff_secs.max(0.0);
    // 2^1100 is inf in f64: capped below by the min, never handed to Duration as inf
    let exp = base * 2f64.powi(attempt.saturating_sub(1).min(1100) as i32);
    seconds(exp + jitter.clamp(0.0, 1.0) * base).min(max)
}

/// `backoff_with` with fresh jitter.
pub fn backoff(attempt: u32, after: Option<Duration>, s: &JudgeSettings) -> Duration {
    use rand::Rng;
    backoff_with(attempt, after, s, rand::rng().random_range(0.0..=1.0))
}

/// Seconds as a Duration: inf and anything past a Duration's range is MAX_SECONDS' worth
/// of seconds; NaN and negatives are zero.
fn seconds(x: f64) -> Duration {
    if x.is_nan() || x <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(x.min(super::settings::MAX_SECONDS)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    #[test]
    fn hostile_values_are_capped_or_ignored_never_a_panic() {
        for capped in ["inf", "Infinity", "1e20", "99999999999999999999", "18446744073709551616", "1e400"] {
            assert_eq!(parse_retry_after(capped, now()), Some(MAX_RETRY_AFTER), "{capped}");
        }
        for ignored in ["-3", "nan", "-inf", "soon", "", "1 2"] {
            assert_eq!(parse_retry_after(ignored, now()), None, "{ignored}");
        }
        assert_eq!(parse_retry_after(" 2 ", now()), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("1.5", now()), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn http_dates_count_from_now() {
        let later = httpdate::fmt_http_date(now() + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&later, now()), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now() - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now()), Some(Duration::ZERO));
        let far = httpdate::fmt_http_date(now() + Duration::from_secs(10 * 86_400));
        assert_eq!(parse_retry_after(&far, now()), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_stays_under_the_maximum() {
        let s = JudgeSettings { backoff_secs: 5.0, max_backoff_secs: 60.0, ..Default::default() };
        // 5, 10, 20, 40 s, then the 60 s cap; jitter adds up to one base (5 s)
        let waits: Vec<f64> = (1..=6).map(|a| backoff_with(a, None, &s, 0.0).as_secs_f64()).collect();
        assert_eq!(waits, vec![5.0, 10.0, 20.0, 40.0, 60.0, 60.0]);
        assert_eq!(backoff_with(1, None, &s, 1.0), Duration::from_secs(10));
        // the server's wait wins, up to the maximum
        assert_eq!(backoff_with(1, Some(Duration::from_secs(2)), &s, 1.0), Duration::from_secs(2));
        assert_eq!(backoff_with(1, Some(MAX_RETRY_AFTER), &s, 0.0), Duration::from_secs(60));
    }

    #[test]
    fn a_huge_attempt_count_or_unvalidated_settings_never_panic() {
        let s = JudgeSettings { backoff_secs: 5.0, max_backoff_secs: 60.0, ..Default::default() };
        assert_eq!(backoff_with(u32::MAX, None, &s, 0.5), Duration::from_secs(60));
        let bad = JudgeSettings { backoff_secs: -3.0, max_backoff_secs: f64::INFINITY, ..Default::default() };
        assert_eq!(backoff_with(2, None, &bad, 0.5), Duration::ZERO);
        let nan = JudgeSettings { backoff_secs: f64::NAN, max_backoff_secs: f64::NAN, ..Default::default() };
        assert_eq!(backoff_with(2, None, &nan, 0.5), Duration::ZERO);
    }
}
