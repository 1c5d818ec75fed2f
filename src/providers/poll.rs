//! Waiting for a live system to reach a state: the one polling loop pgdr
//! has (a server promoted, a standby replayed, a record in sync, WAL
//! archived), so every wait checks at least once, sleeps between checks,
//! stops at its limit and says what it saw last.

use std::future::Future;
use std::time::{Duration, Instant};

/// What one check saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Polled<T, S> {
    /// The state was reached: stop, with this.
    Ready(T),
    /// Not yet; what was seen (kept for the message when time runs out).
    Waiting(S),
}

/// Runs `check` every `every` until it is [`Polled::Ready`], for at most
/// `limit` (it always runs at least once). `Ok(Ok(value))` when ready,
/// `Ok(Err(last))` with the last thing seen when time ran out, `Err` at once
/// when a check fails.
pub async fn poll_until<T, S, E, F, Fut>(
    every: Duration,
    limit: Duration,
    mut check: F,
) -> Result<Result<T, S>, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Polled<T, S>, E>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match check().await? {
            Polled::Ready(value) => return Ok(Ok(value)),
            Polled::Waiting(last) if Instant::now() >= deadline => return Ok(Err(last)),
            Polled::Waiting(_) => tokio::time::sleep(every).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test]
    async fn a_poll_stops_when_ready_when_time_runs_out_or_at_the_first_error() {
        let calls = Cell::new(0);
        let ready = poll_until(Duration::from_millis(1), Duration::from_secs(5), || async {
            calls.set(calls.get() + 1);
            Ok::<_, ()>(if calls.get() == 3 {
                Polled::Ready("done")
            } else {
                Polled::Waiting(calls.get())
            })
        })
        .await;
        assert_eq!(ready, Ok(Ok("done")));
        assert_eq!(calls.get(), 3);

        let started = Instant::now();
        let timed_out = poll_until(
            Duration::from_millis(5),
            Duration::from_millis(30),
            || async { Ok::<Polled<(), _>, ()>(Polled::Waiting("still")) },
        )
        .await;
        assert_eq!(timed_out, Ok(Err("still")));
        assert!(started.elapsed() >= Duration::from_millis(30));

        // A zero limit still checks once.
        let once = poll_until(Duration::from_secs(1), Duration::ZERO, || async {
            Ok::<_, ()>(Polled::<_, ()>::Ready(1))
        })
        .await;
        assert_eq!(once, Ok(Ok(1)));

        let failed = poll_until(Duration::from_millis(1), Duration::from_secs(5), || async {
            Err::<Polled<(), ()>, _>("broken")
        })
        .await;
        assert_eq!(failed, Err("broken"));
    }
}
