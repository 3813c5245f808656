//! Reconnect delays: exponential, capped, jittered so that proxies cut off
//! together do not all reconnect in the same instant.

use std::time::Duration;

use rand::Rng;

#[derive(Clone, Debug)]
pub(super) struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(super) fn new(initial: Duration, max: Duration) -> Backoff {
        let initial = initial.max(Duration::from_millis(1));
        let max = max.max(initial);
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    /// After a connection that worked, the next failure starts over.
    pub(super) fn reset(&mut self) {
        self.next = self.initial;
    }

    /// A delay between half and all of the current step; doubles the step.
    pub(super) fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (step * 2).min(self.max);
        let step_ms = u64::try_from(step.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(step_ms / 2..=step_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let first = b.next_delay();
        assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&first));
        let mut last = first;
        for _ in 0..20 {
            last = b.next_delay();
            assert!(last <= Duration::from_secs(5));
        }
        assert!(last >= Duration::from_millis(2500));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
