//! Terminal progress of the initial copy.
//!
//! When stderr is a terminal, `replicate` draws one line per copying service
//! (rows copied / estimated total, rows/s over the last seconds, ETA),
//! redrawn about once a second below the log, and cleared when no service
//! is copying any more. When stderr is not a terminal nothing is drawn: the
//! log carries the copy's progress ("copying in parallel key ranges",
//! "table copied", "copy finished") and `status`/metrics show the counters.
//!
//! Drawing leaves the cursor at the start of the first progress line, and
//! [`ACTIVE`] is set while lines are shown: the log writer clears them
//! (`ESC [J`) before writing a log line, which then takes their place; the
//! next redraw puts them back below it.

use crate::control::stats::ServiceStats;
use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// True while progress lines are on the terminal (see the module doc).
pub static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Clears the progress lines, if shown, so a log line can take their place.
pub const CLEAR: &str = "\x1b[J";

/// `1234567` -> `1,234,567`.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Seconds as `m:ss`, or `h:mm:ss` from an hour on.
pub fn clock(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// Seconds left at `rate` rows/s, `None` when unknown (no rate yet, no
/// estimate, or more rows copied than estimated).
pub fn eta_secs(copied: u64, total: u64, rate: f64) -> Option<u64> {
    if total == 0 || copied > total || !rate.is_finite() || rate <= 0.0 {
        return None;
    }
    Some(((total - copied) as f64 / rate).ceil() as u64)
}

/// One service's progress line.
pub fn line(service: &str, copied: u64, total: u64, rate: f64) -> String {
    let mut out = format!("copy {service}: {} rows", group(copied));
    if total > 0 && copied <= total {
        let pct = copied as f64 * 100.0 / total as f64;
        out.push_str(&format!(" of ~{} ({pct:.0}%)", group(total)));
    }
    out.push_str(&format!(", {} rows/s", group(rate.max(0.0).round() as u64)));
    match eta_secs(copied, total, rate) {
        Some(s) => out.push_str(&format!(", ETA {}", clock(s))),
        None => out.push_str(", ETA ?"),
    }
    out
}

/// Rows/s over a sliding window of samples.
#[derive(Default)]
pub struct Rate {
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    /// Window of samples kept (about that many seconds at one a second).
    const WINDOW: usize = 6;

    /// Records `copied` at `at` and returns the rate over the window.
    pub fn sample(&mut self, at: Instant, copied: u64) -> f64 {
        // A restarted copy counts from a lower number: start over.
        if self.samples.back().is_some_and(|&(_, n)| copied < n) {
            self.samples.clear();
        }
        self.samples.push_back((at, copied));
        while self.samples.len() > Self::WINDOW {
            self.samples.pop_front();
        }
        let (Some(&(t0, n0)), Some(&(t1, n1))) = (self.samples.front(), self.samples.back()) else {
            return 0.0;
        };
        let dt = t1.duration_since(t0).as_secs_f64();
        if dt <= 0.0 {
            return 0.0;
        }
        (n1 - n0) as f64 / dt
    }
}

/// Draws the progress of copying services on stderr until `stop`; returns
/// at once when stderr is not a terminal.
pub async fn run(services: Vec<(String, Arc<ServiceStats>)>, mut stop: watch::Receiver<bool>) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    let mut rates: Vec<Rate> = services.iter().map(|_| Rate::default()).collect();
    loop {
        let now = Instant::now();
        let mut text = String::new();
        let mut lines = 0;
        for ((name, stats), rate) in services.iter().zip(rates.iter_mut()) {
            if stats.state() != Some(crate::state::ServiceState::Copying) {
                *rate = Rate::default();
                continue;
            }
            let copied = stats.rows_copied.load(Relaxed);
            let total = stats.copy_rows_total.load(Relaxed);
            let r = rate.sample(now, copied);
            text.push_str(&format!("\r{CLEAR}{}\n", line(name, copied, total, r)));
            lines += 1;
        }
        {
            let mut err = std::io::stderr().lock();
            if lines > 0 {
                // Back to the first line: a log line written next replaces them.
                text.push_str(&format!("\x1b[{lines}A"));
                let _ = err.write_all(text.as_bytes());
                ACTIVE.store(true, Relaxed);
            } else if ACTIVE.swap(false, Relaxed) {
                let _ = err.write_all(format!("\r{CLEAR}").as_bytes());
            }
            let _ = err.flush();
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    if ACTIVE.swap(false, Relaxed) {
        let _ = std::io::stderr().write_all(format!("\r{CLEAR}").as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
    }

    #[test]
    fn clock_formats_minutes_and_hours() {
        assert_eq!(clock(0), "0:00");
        assert_eq!(clock(65), "1:05");
        assert_eq!(clock(3600 + 62), "1:01:02");
    }

    #[test]
    fn eta_is_rows_left_over_rate_rounded_up() {
        assert_eq!(eta_secs(250, 1000, 100.0), Some(8));
        assert_eq!(eta_secs(0, 1000, 3.0), Some(334));
        assert_eq!(eta_secs(1000, 1000, 50.0), Some(0));
        assert_eq!(eta_secs(10, 1000, 0.0), None);
        assert_eq!(eta_secs(10, 0, 5.0), None);
        assert_eq!(eta_secs(1200, 1000, 5.0), None, "estimate exceeded");
    }

    #[test]
    fn line_shows_rows_total_rate_and_eta() {
        assert_eq!(
            line("users", 250_000, 1_000_000, 50_000.4),
            "copy users: 250,000 rows of ~1,000,000 (25%), 50,000 rows/s, ETA 0:15"
        );
        assert_eq!(
            line("u", 1_500, 1_000, 10.0),
            "copy u: 1,500 rows, 10 rows/s, ETA ?"
        );
    }

    #[test]
    fn rate_is_over_the_window_and_restarts_on_a_lower_count() {
        let t = Instant::now();
        let mut r = Rate::default();
        assert_eq!(r.sample(t, 0), 0.0);
        assert_eq!(r.sample(t + Duration::from_secs(1), 100), 100.0);
        assert_eq!(r.sample(t + Duration::from_secs(2), 400), 200.0);
        for i in 3..10u64 {
            r.sample(t + Duration::from_secs(i), 400 + (i - 2) * 1000);
        }
        // Only the last 6 samples (5 s, all at 1000 rows/s) count.
        assert_eq!(r.sample(t + Duration::from_secs(10), 8400), 1000.0);
        assert_eq!(r.sample(t + Duration::from_secs(11), 5), 0.0);
    }
}
