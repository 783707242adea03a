//! When and how long to wait before trying a request again.

use std::time::Duration;

use ureq::http::StatusCode;

/// Bounded exponential backoff for 5xx, 429 and broken connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries of one request (1 = no retry).
    pub attempts: u32,
    /// The first wait; doubled after each failure.
    pub base_delay: Duration,
    /// No wait is longer than this (except a registry's own Retry-After, up to `max_retry_after`).
    pub max_delay: Duration,
    /// Retry-After values above this are cut down to it.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Fast retries for tests.
    pub fn quick() -> Self {
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            max_retry_after: Duration::from_secs(3),
        }
    }

    /// The wait after failed try number `attempt` (0-based).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.max_retry_after);
        }
        let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Whether an HTTP status is worth retrying.
pub fn retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED
}

/// Whether a transport error is worth retrying (resets, timeouts, refused connects).
pub fn retryable_error(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::Protocol(_)
    )
}

/// Parses `Retry-After` given in seconds (the HTTP-date form is rare from registries).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_bounded() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(0, None), Duration::from_millis(500));
        assert_eq!(p.delay(1, None), Duration::from_secs(1));
        assert_eq!(p.delay(10, None), Duration::from_secs(8));
        assert_eq!(p.delay(40, None), Duration::from_secs(8));
        assert_eq!(p.delay(0, Some(Duration::from_secs(3))), Duration::from_secs(3));
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(999))),
            Duration::from_secs(60)
        );
        let s = |code| StatusCode::from_u16(code).unwrap();
        assert!(retryable_status(s(503)) && retryable_status(s(429)) && !retryable_status(s(404)));
        assert!(!retryable_status(s(501)) && !retryable_status(s(400)));
        assert_eq!(parse_retry_after(" 2 "), Some(Duration::from_secs(2)));
    }
}
