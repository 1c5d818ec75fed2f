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

/// A [`Meter`] several workers add to at once (a backup's or a restore's
/// objects, read and written in parallel).
pub struct SharedMeter {
    read: std::sync::atomic::AtomicU64,
    meter: std::sync::Mutex<Meter>,
}

impl SharedMeter {
    pub fn new(label: &'static str, verb: &'static str, total: u64, on: bool) -> Self {
        SharedMeter {
            read: std::sync::atomic::AtomicU64::new(0),
            meter: std::sync::Mutex::new(Meter::new(label, verb, total, on)),
        }
    }

    /// Counts `n` more bytes; redraws unless another worker is drawing.
    pub fn add(&self, n: u64) {
        let read = self.read.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
        if let Ok(mut meter) = self.meter.try_lock() {
            meter.show(read);
        }
    }

    /// Bytes counted so far.
    pub fn read(&self) -> u64 {
        self.read.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn done(&self) {
        let read = self.read();
        if let Ok(meter) = self.meter.lock() {
            meter.done(read);
        }
    }
}
