//! The reconnect backoff of the binlog connection.

use std::time::Duration;

pub(super) const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The reconnect backoff: starts at [`BACKOFF_MIN`], doubles per failed
/// attempt up to [`BACKOFF_MAX`], and starts over once a stream has stayed up
/// for [`BACKOFF_MAX`], so one blip after weeks of healthy streaming costs
/// milliseconds, not the cap.
#[derive(Debug)]
pub(super) struct Backoff(Duration);

impl Backoff {
    pub(super) fn new() -> Backoff {
        Backoff(BACKOFF_MIN)
    }

    /// A stream that was up for `up` ended.
    pub(super) fn ended_after(&mut self, up: Duration) {
        if up >= BACKOFF_MAX {
            self.0 = BACKOFF_MIN;
        }
    }

    /// The wait before the next attempt (the one after waits longer).
    pub(super) fn next_wait(&mut self) -> Duration {
        let w = self.0;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_to_its_cap_and_starts_over_after_a_healthy_stream() {
        let mut b = Backoff::new();
        let waits: Vec<u128> = (0..9).map(|_| b.next_wait().as_millis()).collect();
        assert_eq!(
            waits,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]
        );
        // Short-lived streams (connected, then lost at once) do not reset it.
        b.ended_after(Duration::from_secs(2));
        assert_eq!(b.next_wait(), BACKOFF_MAX);
        // A stream that stayed up does.
        b.ended_after(Duration::from_secs(30));
        assert_eq!(b.next_wait(), BACKOFF_MIN);
        assert_eq!(b.next_wait(), BACKOFF_MIN * 2);
    }
}
