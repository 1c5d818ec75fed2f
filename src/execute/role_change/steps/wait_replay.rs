//! wait-replay (switchover): the standby has replayed everything the fenced
//! primary wrote. Polled every 10 ms on one connection, so the handover is
//! as fast as replay; on timeout the primary is unfenced and nothing else
//! has changed.

use super::RoleChange;
use crate::execute::steps::{Decision, Step};
use crate::providers::poll::{poll_until, Polled};
use crate::providers::postgres::role as pg_role;
use crate::providers::postgres::Session;
use crate::providers::ProviderError;
use crate::state::wal::Lsn;
use std::time::Duration;

pub struct WaitReplay;

pub struct ReplaySeen {
    promoted: bool,
    replayed: Option<Lsn>,
    target: Option<Lsn>,
}

impl<'a> Step<RoleChange<'a>> for WaitReplay {
    type Seen = ReplaySeen;
    /// The position to wait for, and where the standby is now.
    type Act = (Lsn, Option<Lsn>);
    type Error = ProviderError;
    fn name(&self) -> &str {
        "wait-replay"
    }
    async fn observe(&self, ctx: &RoleChange<'a>) -> Result<ReplaySeen, ProviderError> {
        let (in_recovery, state) = ctx.taking_over().await?;
        Ok(ReplaySeen {
            promoted: !in_recovery,
            replayed: state.and_then(|s| s.replay_lsn),
            target: *ctx.final_lsn.lock().unwrap(),
        })
    }
    fn decide(&self, seen: &ReplaySeen) -> Decision<(Lsn, Option<Lsn>)> {
        match (seen.promoted, seen.target, seen.replayed) {
            (true, _, _) => Decision::Done("the standby is already promoted".into()),
            (false, None, _) => Decision::Done(
                "the old primary does not answer, so its last WAL position is unknown: the standby promotes with all the WAL it received".into(),
            ),
            (false, Some(target), Some(replayed)) if replayed >= target => Decision::Done(format!(
                "the standby replayed up to {replayed}, past the primary's last WAL position {target}: nothing is lost"
            )),
            (false, Some(target), replayed) => Decision::Act(
                format!(
                    "wait until the standby has replayed {target} (now {})",
                    replayed.map_or("unknown".into(), |l| l.to_string())
                ),
                (target, replayed),
            ),
        }
    }
    async fn act(
        &self,
        ctx: &RoleChange<'a>,
        (target, replayed): (Lsn, Option<Lsn>),
    ) -> Result<(), ProviderError> {
        let reached = match &ctx.to.postgres {
            Some(info) => {
                if pg_role::resume_replay(&ctx.role_of_to(), info, &ctx.systems.pg).await? {
                    ctx.note(format!(
                        "replay was paused on standby `{}`; pgdr resumed it to reach the primary's last WAL position",
                        ctx.to.name
                    ));
                }
                let session = Session::open(&ctx.role_of_to(), info, &ctx.systems.pg).await?;
                poll_until(Duration::from_millis(10), ctx.replay_timeout, || async {
                    let now = pg_role::replayed(&session).await?;
                    Ok::<_, ProviderError>(match now {
                        Some(l) if l >= target => Polled::Ready(()),
                        _ => Polled::Waiting(now),
                    })
                })
                .await?
            }
            // Only a server pgdr reaches over SQL has a position to wait for.
            None => Err(replayed),
        };
        let Err(last) = reached else {
            return Ok(());
        };
        // Abort: the primary takes writes again, nothing else changed.
        let unfenced = match ctx.old_info() {
            Some(info) => pg_role::unfence("primary", info, &ctx.systems.pg).await,
            None => Ok(()),
        };
        Err(ProviderError::new(
            ctx.role_of_to(),
            format!(
                "did not replay {target} within {}s (it is at {}); {}",
                ctx.replay_timeout.as_secs(),
                last.map_or("unknown".into(), |l| l.to_string()),
                match unfenced {
                    Ok(()) =>
                        "the primary was unfenced and takes writes again; nothing else was changed"
                            .to_string(),
                    Err(e) =>
                        format!("unfencing the primary failed too, it is still read-only: {e}"),
                }
            ),
        ))
    }
}
