//! Retry schedule for uploads, pure: exponential backoff with jitter, honouring the
//! server's `Retry-After`.
//!
//! Attempt `n` (0-based, counted since the last success) waits a delay drawn from
//! `[d/2, d)` where `d = min(BASE_MS * 2^n, MAX_MS)` ("equal jitter": never much
//! shorter than the schedule, never synchronised across devices). A `Retry-After`
//! from the server is a floor.

/// First retry delay before jitter.
pub const BASE_MS: u64 = 1_000;
/// Longest delay before jitter (5 minutes).
pub const MAX_MS: u64 = 300_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    attempt: u32,
    base_ms: u64,
    max_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::with_limits(BASE_MS, MAX_MS)
    }
}

impl Backoff {
    pub fn new() -> Self {
        Self::default()
    }

    /// A schedule with another first delay and ceiling (tests use short ones).
    pub fn with_limits(base_ms: u64, max_ms: u64) -> Self {
        Backoff {
            attempt: 0,
            base_ms: base_ms.max(1),
            max_ms: max_ms.max(base_ms.max(1)),
        }
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.attempt
    }

    /// The un-jittered ceiling for the next delay.
    pub fn ceiling_ms(&self) -> u64 {
        let factor = 1u64.checked_shl(self.attempt.min(32)).unwrap_or(u64::MAX);
        self.base_ms.saturating_mul(factor).min(self.max_ms)
    }

    /// Record a failure and return how long to wait before the next attempt.
    /// `jitter` is a random number in `[0, 1)` (clamped); `retry_after_ms` the
    /// server's `Retry-After`, if any.
    pub fn fail(&mut self, jitter: f64, retry_after_ms: Option<u64>) -> u64 {
        let d = self.ceiling_ms();
        self.attempt = self.attempt.saturating_add(1);
        let j = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let half = d / 2;
        // half + j * half, in integers; j < 1 keeps it below d.
        let delay = half + ((half as f64) * j) as u64;
        delay.max(retry_after_ms.unwrap_or(0))
    }

    /// A batch went through: start over.
    pub fn succeed(&mut self) {
        self.attempt = 0;
    }
}

/// Parse a `Retry-After` header: delay-seconds (the form the ingest contract uses).
/// HTTP dates and garbage give `None` (the backoff schedule applies). Capped at one day.
pub fn parse_retry_after(value: &str) -> Option<u64> {
    let secs: u64 = value.trim().parse().ok()?;
    Some(secs.min(86_400) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_doubles_from_one_second_up_to_five_minutes() {
        let mut b = Backoff::new();
        let ceilings: Vec<u64> = (0..12)
            .map(|_| {
                let c = b.ceiling_ms();
                b.fail(0.0, None);
                c
            })
            .collect();
        assert_eq!(
            ceilings,
            [
                1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000, 300000, 300000
            ]
        );
    }

    #[test]
    fn jitter_spans_the_upper_half() {
        let mut b = Backoff::new();
        assert_eq!(b.clone().fail(0.0, None), 500);
        assert_eq!(b.clone().fail(0.5, None), 750);
        assert_eq!(b.clone().fail(0.999, None), 999);
        // Out-of-range jitter is clamped, NaN treated as 0.
        assert_eq!(b.clone().fail(7.0, None), 1000);
        assert_eq!(b.fail(f64::NAN, None), 500);
    }

    #[test]
    fn retry_after_is_a_floor() {
        let mut b = Backoff::new();
        assert_eq!(b.fail(0.0, Some(30_000)), 30_000);
        // A short Retry-After does not shorten the schedule.
        assert_eq!(b.fail(0.0, Some(10)), 1000);
    }

    #[test]
    fn success_resets_the_schedule() {
        let mut b = Backoff::new();
        for _ in 0..5 {
            b.fail(0.0, None);
        }
        assert_eq!(b.failures(), 5);
        b.succeed();
        assert_eq!(b.failures(), 0);
        assert_eq!(b.fail(0.0, None), 500);
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let mut b = Backoff::new();
        for _ in 0..10_000 {
            assert!(b.fail(0.9, None) < MAX_MS);
        }
    }

    #[test]
    fn custom_limits() {
        let mut b = Backoff::with_limits(10, 40);
        let c: Vec<u64> = (0..4)
            .map(|_| {
                let c = b.ceiling_ms();
                b.fail(0.0, None);
                c
            })
            .collect();
        assert_eq!(c, [10, 20, 40, 40]);
    }

    #[test]
    fn retry_after_parsing() {
        assert_eq!(parse_retry_after("5"), Some(5000));
        assert_eq!(parse_retry_after(" 120 "), Some(120_000));
        assert_eq!(parse_retry_after("999999999"), Some(86_400_000));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-3"), None);
        assert_eq!(parse_retry_after(""), None);
    }
}
