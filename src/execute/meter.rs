//! A progress line on stderr for long transfers (backup, restore), shown only
//! on a terminal.

use std::time::{Duration, Instant};

/// A progress line on stderr, redrawn at most once a second.
pub struct Meter {
    label: &'static str,
    verb: &'static str,
    total: u64,
    on: bool,
    started: Instant,
    last: Instant,
}

impl Meter {
    pub fn new(label: &'static str, verb: &'static str, total: u64, on: bool) -> Self {
        let now = Instant::now();
        Meter {
            label,
            verb,
            total,
            on,
            started: now,
            last: now,
        }
    }

    pub fn show(&mut self, read: u64) {
        if !self.on || self.last.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last = Instant::now();
        let mb = |b: u64| b as f64 / 1e6;
        let rate = mb(read) / self.started.elapsed().as_secs_f64().max(0.001);
        let pct = if self.total > 0 {
            format!(
                " ({:.0}%)",
                (read as f64 / self.total as f64 * 100.0).min(100.0)
            )
        } else {
            String::new()
        };
        eprint!(
            "\r  {}: {:.0} MB of about {:.0} MB{pct}, {rate:.0} MB/s   ",
            self.label,
            mb(read),
            mb(self.total)
        );
    }

    pub fn done(&self, read: u64) {
        if self.on {
            eprintln!(
                "\r  {}: {:.0} MB {}{:30}",
                self.label,
                read as f64 / 1e6,
                self.verb,
                ""
            );
        }
    }
}
