//! check-standby: the standby can take over — reachable, and within its
//! `max_lag` unless forced past it with a reason (`--force`). A standby
//! already promoted means an earlier run got this far.

use super::RoleChange;
use crate::execute::role_change::{lag_guard, Candidate, DEFAULT_MAX_LAG_SECONDS};
use crate::execute::steps::{Decision, Step};
use crate::providers::ProviderError;

pub struct Guard(pub Option<String>);

pub struct Checked {
    promoted: bool,
    candidate: Candidate,
}

impl<'a> Step<RoleChange<'a>> for Guard {
    type Seen = Checked;
    type Act = ();
    type Error = ProviderError;
    fn name(&self) -> &str {
        "check-standby"
    }
    async fn observe(&self, ctx: &RoleChange<'a>) -> Result<Checked, ProviderError> {
        // Both servers at once: each read is a connection and a query.
        let (taking_over, old) = tokio::join!(ctx.taking_over(), ctx.old());
        let (in_recovery, standby) = match taking_over {
            Ok(seen) => seen,
            Err(e) if e.unreachable => (true, None),
            Err(e) => return Err(e),
        };
        let mut candidate = Candidate {
            name: ctx.to.name.to_string(),
            streaming: false,
            synchronous: ctx.to.synchronous,
            same_region: true,
            lag_seconds: None,
            lag_bytes: None,
            reachable: standby.is_some() || ctx.to.postgres.is_none(),
            primary_lost: None,
            replayed: standby.as_ref().and_then(|s| s.replay_lsn).map(|l| l.0),
            max_lag_seconds: ctx
                .to
                .max_lag
                .map_or(DEFAULT_MAX_LAG_SECONDS, |d| d.as_secs() as f64),
        };
        if !in_recovery {
            return Ok(Checked {
                promoted: true,
                candidate,
            });
        }
        if let (Some(Ok(primary)), Some(standby)) = (&old, &standby) {
            let row = primary
                .replication
                .iter()
                .find(|(n, _, _)| *n == candidate.name);
            candidate.streaming = row.is_some_and(|(_, s, _)| s == "streaming");
            // The primary's measure and the standby's own (WAL received
            // and waiting to be replayed), whichever is worse.
            candidate.lag_seconds =
                row.map(|(_, _, lag)| lag.max(standby.replay_delay_seconds.unwrap_or(0.0)));
            candidate.lag_bytes = match (primary.flush_lsn, standby.replay_lsn) {
                (Some(p), Some(s)) => Some(p.0.saturating_sub(s.0) as i64),
                _ => None,
            };
        } else if let (Some(Err(_)), Some(standby)) = (&old, &standby) {
            // The primary is gone: the standby can measure only the WAL it
            // received and has not replayed (what the seed's check saw);
            // the guard says that what was never sent cannot be measured.
            // None: WAL waits to be replayed and no commit was ever
            // replayed, so its age cannot be told; the guard refuses then.
            candidate.lag_seconds = standby.replay_delay_seconds;
            candidate.primary_lost = Some(standby.last_commit_age_seconds);
        }
        *ctx.measured_lag.lock().unwrap() = candidate.lag_seconds;
        Ok(Checked {
            promoted: false,
            candidate,
        })
    }
    fn decide(&self, seen: &Checked) -> Decision {
        if seen.promoted {
            return Decision::Done(format!(
                "standby `{}` is already promoted (an earlier run got this far)",
                seen.candidate.name
            ));
        }
        lag_guard(&seen.candidate, self.0.as_deref())
    }
    /// A guard only checks: `decide` never says act.
    async fn act(&self, _: &RoleChange<'a>, _: ()) -> Result<(), ProviderError> {
        Ok(())
    }
}
