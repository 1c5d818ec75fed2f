//! fence-primary: the old primary takes no more writes
//! (`default_transaction_read_only`, every other session ended, a
//! checkpoint). Its last WAL position then is what a switchover waits for.

use super::RoleChange;
use crate::execute::role_change::{Kind, Trigger};
use crate::execute::steps::{Decision, Step};
use crate::providers::postgres::role::{self as pg_role, RoleState};
use crate::providers::ProviderError;
use crate::spec::Conninfo;

pub struct Fence;

pub struct FenceSeen {
    kind: Kind,
    /// Started by the watcher, and how the old primary was fenced if so.
    automatic: bool,
    fenced_by: Option<String>,
    promoted: bool,
    /// The standby's timeline, when it answers over SQL.
    new_timeline: Option<i64>,
    /// The old primary's conninfo and what it answered (`None`: an RDS primary).
    old: Option<(Conninfo, Result<RoleState, String>)>,
}

impl<'a> Step<RoleChange<'a>> for Fence {
    type Seen = FenceSeen;
    /// The old primary to fence.
    type Act = Conninfo;
    type Error = ProviderError;
    fn name(&self) -> &str {
        "fence-primary"
    }
    async fn observe(&self, ctx: &RoleChange<'a>) -> Result<FenceSeen, ProviderError> {
        let (taking_over, old) = tokio::join!(ctx.taking_over(), ctx.old());
        let (promoted, new_timeline) = match taking_over {
            Ok((in_recovery, state)) => (!in_recovery, state.map(|s| s.timeline)),
            Err(_) => (false, None),
        };
        let old = match (ctx.old_info(), old) {
            (Some(info), Some(Ok(state))) => Some((info.clone(), Ok(state))),
            (Some(info), Some(Err(e))) if e.unreachable => Some((info.clone(), Err(e.to_string()))),
            (_, Some(Err(e))) => return Err(e),
            _ => None,
        };
        if let Some((_, Ok(state))) = &old {
            if !state.in_recovery && state.read_only && state.writers == 0 {
                *ctx.final_lsn.lock().unwrap() = state.flush_lsn;
            }
        }
        if let (Some((_, Err(e))), Kind::Failover) = (&old, ctx.kind) {
            ctx.note(format!(
                "pgdr could not fence the old primary: it does not answer ({e}). If it comes back accepting writes, `pgdr plan` reports split brain, and pgdr never points the endpoint at it; stop it, or rejoin it as a standby of `{}`",
                ctx.to.name
            ));
        }
        Ok(FenceSeen {
            kind: ctx.kind,
            automatic: ctx.trigger == Trigger::Automatic,
            fenced_by: ctx.fenced_by.clone(),
            promoted,
            new_timeline,
            old,
        })
    }
    fn decide(&self, seen: &FenceSeen) -> Decision<Conninfo> {
        let Some((info, old)) = &seen.old else {
            return Decision::Done(
                "the primary is an RDS instance: pgdr does not fence it (RDS offers no read-only switch); promote only when it is lost or stopped".into(),
            );
        };
        match old {
            Err(e) if seen.kind == Kind::Switchover && !seen.promoted => Decision::Refuse(format!(
                "the primary does not answer ({e}): a switchover needs it to hand over. If it is lost, run `pgdr failover`"
            )),
            Err(_) => match (&seen.fenced_by, seen.automatic) {
                (Some(how), _) => Decision::Done(format!(
                    "the old primary does not answer; it was fenced before: {how}"
                )),
                // Never two primaries: the watcher promotes only what it knows is alone.
                (None, true) => Decision::Refuse(
                    "the old primary does not answer and nothing fenced it (no fence_command, no lapsed guard lease): an automatic failover does not promote".into(),
                ),
                (None, false) => {
                    Decision::Done("could not fence the old primary: it does not answer".into())
                }
            },
            Ok(s) if s.in_recovery => Decision::Done("the old primary is in recovery: it takes no writes".into()),
            Ok(s) if s.read_only && s.writers == 0 => Decision::Done(format!(
                "fenced: read-only, no session writing; its last WAL position is {}",
                s.flush_lsn.map_or("unknown".into(), |l| l.to_string())
            )),
            // Both accept writes: fence the plan's primary only when the
            // standby's promotion is newer (a higher timeline). Otherwise the
            // plan file may already name the new roles, and the "primary" is
            // the server that took over: pgdr will not fence it.
            Ok(s) if seen.promoted && seen.new_timeline.is_none_or(|t| s.timeline >= t) => Decision::Refuse(format!(
                "split brain: the plan file's primary and standby both accept writes, and the primary is on timeline {} (the standby on {}): pgdr cannot tell which one lost, and fences neither. Stop the one that lost, or fix the plan file",
                s.timeline,
                seen.new_timeline.map_or("unknown".into(), |t| t.to_string())
            )),
            Ok(_) => Decision::Act(
                "fence the primary: default_transaction_read_only = on, end every other session, checkpoint".into(),
                info.clone(),
            ),
        }
    }
    async fn act(&self, ctx: &RoleChange<'a>, info: Conninfo) -> Result<(), ProviderError> {
        pg_role::fence("primary", &info, &ctx.systems.pg).await
    }
}
