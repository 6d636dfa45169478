//! Rate limits (`[rate_limits]`): requests per minute with a burst, per caller (a token's user,
//! else an API key) and per organisation (all its callers together), as GCRA cells from
//! `governor`. Checked when a request is authenticated (see `auth.rs`), so they apply to every
//! authenticated API route and to nothing else (`/healthz`, `/readyz`, the web app's files).
//!
//! A caller's request spends one cell of its own limit, then one of its organisation's; a
//! request refused by either is answered 429 with `Retry-After`. The limiters keep one small
//! state per key in memory, per replica; states that have refilled are dropped now and then.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::ApiError;
use crate::access::Actor;
use crate::config::RateLimitConfig;

/// After this many checks, states that have fully refilled are dropped.
const CHECKS_BETWEEN_CLEANUPS: u64 = 4096;

/// The configured limits; each is off when its rate is 0.
pub struct RateLimits {
    per_user: Option<DefaultKeyedRateLimiter<Actor>>,
    per_org: Option<DefaultKeyedRateLimiter<String>>,
    checks: AtomicU64,
}

fn quota(per_minute: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_minute)?;
    Some(Quota::per_minute(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(rate)))
}

/// Whole seconds to wait, at least one (a `Retry-After` of 0 invites an immediate retry).
fn retry_after_secs(wait: Duration) -> u64 {
    u64::try_from(wait.as_nanos().div_ceil(1_000_000_000))
        .unwrap_or(u64::MAX)
        .max(1)
}

impl RateLimits {
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            per_user: quota(config.per_user_per_minute, config.per_user_burst)
                .map(RateLimiter::keyed),
            per_org: quota(config.per_org_per_minute, config.per_org_burst).map(RateLimiter::keyed),
            checks: AtomicU64::new(0),
        }
    }

    /// Spends one request of `actor`'s and `org`'s limits, or says how long to wait.
    pub fn check(&self, actor: &Actor, org: &str) -> Result<(), ApiError> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % CHECKS_BETWEEN_CLEANUPS
            == CHECKS_BETWEEN_CLEANUPS - 1
        {
            self.forget_refilled();
        }
        if let Some(limiter) = &self.per_user
            && let Err(not_until) = limiter.check_key(actor)
        {
            let wait = not_until.wait_time_from(limiter.clock().now());
            tracing::warn!(user = %actor.user_id(), "rate limited (per user)");
            return Err(ApiError::RateLimited {
                retry_after_secs: retry_after_secs(wait),
            });
        }
        if let Some(limiter) = &self.per_org
            && let Err(not_until) = limiter.check_key(&org.to_owned())
        {
            let wait = not_until.wait_time_from(limiter.clock().now());
            tracing::warn!(org, "rate limited (per organisation)");
            return Err(ApiError::RateLimited {
                retry_after_secs: retry_after_secs(wait),
            });
        }
        Ok(())
    }

    fn forget_refilled(&self) {
        if let Some(limiter) = &self.per_user {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.per_org {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(label: &str) -> Actor {
        Actor::Key {
            label: label.to_owned(),
        }
    }

    fn retry_after(result: Result<(), ApiError>) -> Option<u64> {
        match result {
            Ok(()) => None,
            Err(ApiError::RateLimited { retry_after_secs }) => Some(retry_after_secs),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn no_limits_by_default() {
        let limits = RateLimits::new(&RateLimitConfig::default());
        for _ in 0..1000 {
            assert!(limits.check(&key("a"), "org").is_ok());
        }
    }

    #[test]
    fn each_user_has_a_burst_then_waits_for_the_rate() {
        let limits = RateLimits::new(&RateLimitConfig {
            per_user_per_minute: 6,
            per_user_burst: 3,
            ..RateLimitConfig::default()
        });
        for _ in 0..3 {
            assert_eq!(retry_after(limits.check(&key("a"), "org")), None);
        }
        // One request every 10 s refills the cell.
        let wait = retry_after(limits.check(&key("a"), "org")).expect("limited");
        assert!((1..=10).contains(&wait), "{wait}");
        // Another user of the same organisation is not held up.
        assert_eq!(retry_after(limits.check(&key("b"), "org")), None);
        let token_user = Actor::User {
            issuer: "portal".to_owned(),
            subject: "a".to_owned(),
        };
        assert_eq!(retry_after(limits.check(&token_user, "org")), None);
    }

    #[test]
    fn an_organisation_limit_holds_all_its_users_together() {
        let limits = RateLimits::new(&RateLimitConfig {
            per_org_per_minute: 2,
            ..RateLimitConfig::default()
        });
        assert!(limits.check(&key("a"), "org").is_ok());
        assert!(limits.check(&key("b"), "org").is_ok());
        let wait = retry_after(limits.check(&key("c"), "org")).expect("limited");
        assert!((1..=30).contains(&wait), "{wait}");
        assert!(limits.check(&key("c"), "other").is_ok());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(200)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }
}
