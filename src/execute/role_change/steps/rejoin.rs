//! rejoin-old-primary: the old primary comes back as a standby of the new
//! one, when this machine runs it (see [`crate::execute::role_change::local`]);
//! otherwise a note says what a person must do. Not required: the endpoint
//! has moved already, and a failed rejoin is reported, not fatal.

use super::{info_address, RoleChange};
use crate::execute::role_change::local::{self, Rejoining};
use crate::execute::steps::{Decision, Step};
use crate::providers::local_server::LocalServer;
use crate::providers::poll::{poll_until, Polled};
use crate::providers::postgres::role::{self as pg_role, Follow};
use crate::providers::ProviderError;
use crate::spec::Conninfo;
use std::time::Duration;

pub struct Rejoin;

pub enum RejoinSeen {
    /// Nothing pgdr can do here; the note says what a person must do.
    ByHand(String),
    Following,
    /// The old primary runs here: its conninfo, the new primary's, and the server.
    Local(Box<Rejoinable>),
}

/// What a local rejoin needs.
pub struct Rejoinable {
    old: Conninfo,
    new: Conninfo,
    server: LocalServer,
}

impl<'a> Step<RoleChange<'a>> for Rejoin {
    type Seen = RejoinSeen;
    type Act = Box<Rejoinable>;
    type Error = ProviderError;
    fn name(&self) -> &str {
        "rejoin-old-primary"
    }
    /// The new primary does not need the old one back to take over (the
    /// endpoint has already moved): a failed rejoin is reported, not fatal.
    fn required(&self) -> bool {
        false
    }
    async fn observe(&self, ctx: &RoleChange<'a>) -> Result<RejoinSeen, ProviderError> {
        let new_primary = info_address(ctx.to.postgres.as_ref());
        let local_new = ctx.to.postgres.as_ref().filter(|_| ctx.to.rds.is_none());
        let seen = match (ctx.old_info(), ctx.old().await) {
            (_, None) => RejoinSeen::ByHand(
                "the old RDS primary cannot become a replica of the new primary: create a new read replica (or keep it as it is and remove it from the plan file)".into(),
            ),
            (_, Some(Err(e))) if e.unreachable => RejoinSeen::ByHand(format!(
                "the old primary does not answer: before it is started again, make it a standby of the new primary ({new_primary}): pg_rewind --target-pgdata=DATA --source-server='<new primary>', then standby.signal and primary_conninfo"
            )),
            (_, Some(Err(e))) => return Err(e),
            (_, Some(Ok(state))) if state.in_recovery && ctx.points_at_new(&state) => {
                RejoinSeen::Following
            }
            (Some(info), Some(Ok(state))) => match (local_new, ctx.new_address()) {
                (Some(new), Some(_)) if !state.in_recovery => match local::find(info, &state) {
                    Some(server) => RejoinSeen::Local(Box::new(Rejoinable {
                        old: info.clone(),
                        new: new.clone(),
                        server,
                    })),
                    None => by_hand(info, state.in_recovery, &new_primary),
                },
                _ => by_hand(info, state.in_recovery, &new_primary),
            },
            // `old()` answers only with a conninfo.
            (None, Some(Ok(_))) => RejoinSeen::ByHand("the old primary has no conninfo".into()),
        };
        if let RejoinSeen::ByHand(why) = &seen {
            ctx.note(why.clone());
        }
        Ok(seen)
    }
    fn decide(&self, seen: &RejoinSeen) -> Decision<Box<Rejoinable>> {
        match seen {
            RejoinSeen::ByHand(why) => Decision::Done(format!("left for a person: {why}")),
            RejoinSeen::Following => {
                Decision::Done("the old primary is a standby of the new primary".into())
            }
            RejoinSeen::Local(rejoinable) => Decision::Act(
                format!(
                    "restart the old primary ({}) as a standby of the new primary, with pg_rewind if its WAL went past the new timeline",
                    rejoinable.server.data.display()
                ),
                Box::new(Rejoinable {
                    old: rejoinable.old.clone(),
                    new: rejoinable.new.clone(),
                    server: rejoinable.server.clone(),
                }),
            ),
        }
    }
    async fn act(&self, ctx: &RoleChange<'a>, with: Box<Rejoinable>) -> Result<(), ProviderError> {
        let result = rejoin(ctx, &with).await;
        if let Err(e) = &result {
            ctx.note(format!(
                "the old primary did not rejoin as a standby (see rejoin-old-primary: {}); it is left read-only. Rejoin it by hand (pg_rewind needs wal_log_hints = on or data checksums), or rebuild it from a base backup",
                e.message.split(';').next().unwrap_or_default()
            ));
        }
        result
    }
}

fn by_hand(info: &Conninfo, in_recovery: bool, new_primary: &str) -> RejoinSeen {
    RejoinSeen::ByHand(format!(
        "the old primary ({info}) is {} and not on this machine: rejoin it as a standby of the new primary ({new_primary}) with pg_rewind, standby.signal and primary_conninfo",
        if in_recovery {
            "in recovery from another server"
        } else {
            "fenced (read-only)"
        }
    ))
}

async fn rejoin(ctx: &RoleChange<'_>, with: &Rejoinable) -> Result<(), ProviderError> {
    let Some((host, port)) = ctx.new_address() else {
        return Err(ProviderError::new(
            ctx.role_of_to(),
            "the new primary's conninfo has no host",
        ));
    };
    let slot = ctx.to.slot_name();
    pg_role::ensure_slots(
        &ctx.role_of_to(),
        &with.new,
        &ctx.systems.pg,
        std::slice::from_ref(&slot),
    )
    .await?;
    pg_role::prepare_rejoin(
        "primary",
        &with.old,
        (&ctx.role_of_to(), &with.new),
        &ctx.systems.pg,
        &Follow {
            host: &host,
            port: &port,
            application_name: ctx.to.name.as_str(),
            slot: &slot,
        },
    )
    .await?;
    let source = with.new.to_libpq();
    let server = with.server.clone();
    let system = format!("postgres.primary ({})", with.old);
    let how = tokio::task::spawn_blocking(move || Rejoining(&server).rejoin(&source))
        .await
        .map_err(|e| ProviderError::new(&system, e.to_string()))?
        .map_err(|e| ProviderError::new(&system, e.to_string()))?;
    let rejoining = Rejoining(&with.server);
    rejoining
        .wait_running(Duration::from_secs(60))
        .await
        .map_err(|e| ProviderError::new(&system, e.to_string()))?;
    ctx.note(format!(
        "the old primary ({}) was restarted as a standby of the new primary: {how}",
        with.server.data.display()
    ));
    // Streaming is the proof: the new primary lists it.
    let streaming = poll_until(
        Duration::from_millis(50),
        Duration::from_secs(30),
        || async {
            let state = pg_role::state(&ctx.role_of_to(), &with.new, &ctx.systems.pg).await?;
            Ok::<_, ProviderError>(
                if state
                    .replication
                    .iter()
                    .any(|(n, s, _)| n == ctx.to.name.as_str() && s == "streaming")
                {
                    Polled::Ready(())
                } else {
                    Polled::Waiting(())
                },
            )
        },
    )
    .await?;
    streaming.map_err(|()| {
        ProviderError::new(
            &system,
            format!(
                "restarted as a standby ({how}), but it is not streaming from the new primary after 30s; {}",
                rejoining.why_not_streaming()
            ),
        )
    })
}
