//! Retry delays.

use crate::EngineConfig;
use rand::Rng;
use std::time::Duration;

/// Delay before the next attempt of a job that has failed `attempts` times.
///
/// Exponential: `backoff_base × 2^(attempts−1)`, capped at `backoff_cap`, then
/// jittered by ±25 % (still within the cap). When the remote sent a `Retry-After`
/// hint, the delay is `max(hint, computed)`: never earlier than the remote asked,
/// and never shorter than our own backoff. The hint may exceed `backoff_cap`
/// (a maintenance window), up to [`MAX_RETRY_AFTER`]: a bogus one must not park
/// a job, and every later job of its ordering key, for years.
pub fn retry_delay(
    config: &EngineConfig,
    attempts: i32,
    retry_after: Option<Duration>,
) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(0);
    let raw = config
        .backoff_base
        .saturating_mul(2_u32.saturating_pow(exponent))
        .min(config.backoff_cap);
    let factor: f64 = rand::thread_rng().gen_range(0.75..=1.25);
    let jittered = raw.mul_f64(factor).min(config.backoff_cap);
    match retry_after {
        Some(hint) => hint.min(MAX_RETRY_AFTER).max(jittered),
        None => jittered,
    }
}

/// Longest `Retry-After` honoured: a day.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EngineConfig {
        EngineConfig {
            backoff_base: Duration::from_secs(2),
            backoff_cap: Duration::from_secs(60),
            ..EngineConfig::default()
        }
    }

    #[test]
    fn grows_exponentially_within_jitter() {
        let config = config();
        for (attempts, nominal) in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0)] {
            let delay = retry_delay(&config, attempts, None).as_secs_f64();
            assert!(
                delay >= nominal * 0.75 && delay <= nominal * 1.25,
                "{attempts}: {delay}"
            );
        }
    }

    #[test]
    fn a_retry_after_beyond_a_day_waits_a_day() {
        let delay = retry_delay(&config(), 1, Some(Duration::from_secs(u64::MAX / 2)));
        assert_eq!(delay, MAX_RETRY_AFTER);
        let maintenance = Duration::from_secs(2 * 3600);
        assert_eq!(retry_delay(&config(), 1, Some(maintenance)), maintenance);
    }

    #[test]
    fn is_capped() {
        let config = config();
        for attempts in [7, 20, 1000, i32::MAX] {
            assert!(retry_delay(&config, attempts, None) <= Duration::from_secs(60));
        }
    }

    #[test]
    fn honours_retry_after() {
        let config = config();
        let hint = Duration::from_secs(600);
        assert_eq!(retry_delay(&config, 1, Some(hint)), hint);
        // A short hint does not undercut our own backoff.
        assert!(retry_delay(&config, 4, Some(Duration::from_millis(1))) >= Duration::from_secs(12));
    }
}
