//! The steps of `switchover` and `failover`, in order, each observing before
//! it acts (see [`crate::execute::steps`]): a second run after a crash finds
//! what the first one did and goes on from there — it never promotes twice
//! nor moves the endpoint twice.
//!
//! check-standby → fence-primary → wait-replay → promote → repoint-standbys →
//! move-endpoint → rejoin-old-primary.

use super::local::{self, LocalServer};
use super::{lag_guard, Candidate, Kind, DEFAULT_MAX_LAG_SECONDS};
use crate::execute::steps::{Decision, DynStep, Step};
use crate::plan::route53::{self as route53_plan, wanted_record};
use crate::providers::pg_role::{self, Lsn, RoleState};
use crate::providers::{rds, route53, ProviderError, Systems};
use crate::spec::{Conninfo, Desired, Standby};
use crate::state::rds::RdsLive;
use crate::state::route53::Record;
use crate::state::Live;
use futures_util::future::BoxFuture;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Everything the steps share: the plan, the clients, the standby taking
/// over, and what earlier steps learned.
pub struct RoleChange<'a> {
    pub desired: &'a Desired,
    /// The plan file with the new roles (the primary and the standby exchanged).
    pub after: Desired,
    pub systems: &'a Systems,
    pub kind: Kind,
    pub to: &'a Standby,
    pub force: Option<String>,
    /// How long a switchover waits for the standby to replay the primary's last WAL.
    pub replay_timeout: Duration,
    /// How long to wait for Route53 to report the change in sync.
    pub dns_timeout: Duration,
    /// The fenced primary's last WAL position.
    final_lsn: Mutex<Option<Lsn>>,
    /// What a person must know or do afterwards (could not fence, rejoin by hand).
    notes: Mutex<Vec<String>>,
}

impl<'a> RoleChange<'a> {
    pub fn new(
        desired: &'a Desired,
        systems: &'a Systems,
        kind: Kind,
        to: &'a Standby,
        force: Option<String>,
    ) -> Self {
        RoleChange {
            desired,
            after: super::swapped(desired, to),
            systems,
            kind,
            to,
            force,
            replay_timeout: Duration::from_secs(30),
            dns_timeout: Duration::from_secs(300),
            final_lsn: Mutex::new(None),
            notes: Mutex::new(Vec::new()),
        }
    }

    pub fn notes(&self) -> Vec<String> {
        self.notes.lock().unwrap().clone()
    }

    fn note(&self, text: String) {
        let mut notes = self.notes.lock().unwrap();
        if !notes.contains(&text) {
            notes.push(text);
        }
    }

    fn old_info(&self) -> Option<&Conninfo> {
        self.desired.plan.primary.postgres.as_ref()
    }

    fn role_of_to(&self) -> String {
        format!("standby.{}", self.to.name)
    }

    /// The old primary's state; `None` without a conninfo (an RDS primary).
    async fn old(&self) -> Option<Result<RoleState, ProviderError>> {
        let info = self.old_info()?;
        Some(pg_role::state("primary", info, &self.systems.pg).await)
    }

    /// Whether the standby taking over still replays (not promoted yet), and
    /// its state when pgdr can reach it over SQL.
    async fn taking_over(&self) -> Result<(bool, Option<RoleState>), ProviderError> {
        if let Some(info) = &self.to.postgres {
            let state = pg_role::state(&self.role_of_to(), info, &self.systems.pg).await?;
            return Ok((state.in_recovery, Some(state)));
        }
        let instance = self.rds_instance().await?;
        Ok((instance.replica_source.is_some(), None))
    }

    async fn rds_instance(&self) -> Result<crate::state::rds::InstanceLive, ProviderError> {
        let id = self
            .to
            .rds
            .as_ref()
            .map(|r| r.instance.as_str())
            .ok_or_else(|| {
                ProviderError::new(
                    self.role_of_to(),
                    "the standby has neither a conninfo nor an RDS instance",
                )
            })?;
        let client = self.systems.aws.rds(self.standby_region()).await;
        rds::observe_instance(&client, id)
            .await?
            .ok_or_else(|| ProviderError::new(format!("rds.{id}"), "the instance does not exist"))
    }

    fn standby_region(&self) -> &str {
        self.to
            .region
            .as_ref()
            .map_or(self.desired.region(), |r| r.as_str())
    }

    /// Host and port other servers reach the new primary at (its plan conninfo).
    fn new_address(&self) -> Option<(String, String)> {
        let info = self.to.postgres.as_ref()?;
        Some((
            info.get("host").or(info.get("hostaddr"))?.to_string(),
            info.get("port").unwrap_or("5432").to_string(),
        ))
    }

    fn points_at_new(&self, state: &RoleState) -> bool {
        let Some((host, port)) = self.new_address() else {
            return false;
        };
        state.upstream.as_ref().is_some_and(|u| {
            u.host.as_deref() == Some(host.as_str()) && u.port.as_deref().unwrap_or("5432") == port
        })
    }
}

fn boxed<'a, T: Send + 'a>(
    f: impl std::future::Future<Output = Result<T, ProviderError>> + Send + 'a,
) -> BoxFuture<'a, Result<T, ProviderError>> {
    Box::pin(f)
}

/// The standby can take over: reachable, and within its `max_lag` unless
/// forced past it with a reason (`--force`).
pub struct Guard(pub Option<String>);

pub struct Checked {
    promoted: bool,
    candidate: Candidate,
}

impl<'a> Step<RoleChange<'a>> for Guard {
    type Seen = Checked;
    fn name(&self) -> &str {
        "check-standby"
    }
    fn observe<'b>(
        &'b self,
        ctx: &'b RoleChange<'a>,
    ) -> BoxFuture<'b, Result<Checked, ProviderError>> {
        boxed(async move {
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
                    row.map(|(_, _, lag)| lag.max(standby.replay_delay_seconds));
                candidate.lag_bytes = match (primary.flush_lsn, standby.replay_lsn) {
                    (Some(p), Some(s)) => Some(p.0.saturating_sub(s.0) as i64),
                    _ => None,
                };
            } else if let (Some(Err(_)), Some(standby)) = (&old, &standby) {
                // The primary is gone: the standby can measure only the WAL it
                // received and has not replayed (what the seed's check saw);
                // the guard says that what was never sent cannot be measured.
                candidate.lag_seconds = Some(standby.replay_delay_seconds);
                candidate.primary_lost = Some(standby.last_commit_age_seconds);
            }
            Ok(Checked {
                promoted: false,
                candidate,
            })
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
    fn act<'b>(
        &'b self,
        _: &'b RoleChange<'a>,
        _: &'b Checked,
    ) -> BoxFuture<'b, Result<(), ProviderError>> {
        boxed(async { Ok(()) })
    }
}

/// The old primary takes no more writes.
pub struct Fence;

pub struct FenceSeen {
    kind: Kind,
    promoted: bool,
    /// The standby's timeline, when it answers over SQL.
    new_timeline: Option<i64>,
    old: Option<Result<RoleState, String>>,
}

impl<'a> Step<RoleChange<'a>> for Fence {
    type Seen = FenceSeen;
    fn name(&self) -> &str {
        "fence-primary"
    }
    fn observe<'b>(
        &'b self,
        ctx: &'b RoleChange<'a>,
    ) -> BoxFuture<'b, Result<FenceSeen, ProviderError>> {
        boxed(async move {
            let (taking_over, old) = tokio::join!(ctx.taking_over(), ctx.old());
            let (promoted, new_timeline) = match taking_over {
                Ok((in_recovery, state)) => (!in_recovery, state.map(|s| s.timeline)),
                Err(_) => (false, None),
            };
            let old = match old {
                None => None,
                Some(Ok(state)) => Some(Ok(state)),
                Some(Err(e)) if e.unreachable => Some(Err(e.to_string())),
                Some(Err(e)) => return Err(e),
            };
            if let Some(Ok(state)) = &old {
                if !state.in_recovery && state.read_only && state.writers == 0 {
                    *ctx.final_lsn.lock().unwrap() = state.flush_lsn;
                }
            }
            if let (Some(Err(e)), Kind::Failover) = (&old, ctx.kind) {
                ctx.note(format!(
                    "pgdr could not fence the old primary: it does not answer ({e}). If it comes back accepting writes, `pgdr plan` reports split brain, and pgdr never points the endpoint at it; stop it, or rejoin it as a standby of `{}`",
                    ctx.to.name
                ));
            }
            Ok(FenceSeen {
                kind: ctx.kind,
                promoted,
                new_timeline,
                old,
            })
        })
    }
    fn decide(&self, seen: &FenceSeen) -> Decision {
        match &seen.old {
            None => Decision::Done(
                "the primary is an RDS instance: pgdr does not fence it (RDS offers no read-only switch); promote only when it is lost or stopped".into(),
            ),
            Some(Err(e)) if seen.kind == Kind::Switchover && !seen.promoted => Decision::Refuse(format!(
                "the primary does not answer ({e}): a switchover needs it to hand over. If it is lost, run `pgdr failover`"
            )),
            Some(Err(_)) => Decision::Done("could not fence the old primary: it does not answer".into()),
            Some(Ok(s)) if s.in_recovery => Decision::Done("the old primary is in recovery: it takes no writes".into()),
            Some(Ok(s)) if s.read_only && s.writers == 0 => Decision::Done(format!(
                "fenced: read-only, no session writing; its last WAL position is {}",
                s.flush_lsn.map_or("unknown".into(), |l| l.to_string())
            )),
            // Both accept writes: fence the plan's primary only when the
            // standby's promotion is newer (a higher timeline). Otherwise the
            // plan file may already name the new roles, and the "primary" is
            // the server that took over: pgdr will not fence it.
            Some(Ok(s)) if seen.promoted && seen.new_timeline.is_none_or(|t| s.timeline >= t) => Decision::Refuse(format!(
                "split brain: the plan file's primary and standby both accept writes, and the primary is on timeline {} (the standby on {}): pgdr cannot tell which one lost, and fences neither. Stop the one that lost, or fix the plan file",
                s.timeline,
                seen.new_timeline.map_or("unknown".into(), |t| t.to_string())
            )),
            Some(Ok(_)) => Decision::Act(
                "fence the primary: default_transaction_read_only = on, end every other session, checkpoint".into(),
            ),
        }
    }
    fn act<'b>(
        &'b self,
        ctx: &'b RoleChange<'a>,
        _: &'b FenceSeen,
    ) -> BoxFuture<'b, Result<(), ProviderError>> {
        boxed(async move {
            let info = ctx.old_info().expect("decide acts only with a conninfo");
            pg_role::fence("primary", info, &ctx.systems.pg).await
        })
    }
}

/// Switchover: the standby has replayed everything the fenced primary wrote.
pub struct WaitReplay;

pub struct ReplaySeen {
    promoted: bool,
    replayed: Option<Lsn>,
    target: Option<Lsn>,
}

impl<'a> Step<RoleChange<'a>> for WaitReplay {
    type Seen = ReplaySeen;
    fn name(&self) -> &str {
        "wait-replay"
    }
    fn observe<'b>(
        &'b self,
        ctx: &'b RoleChange<'a>,
    ) -> BoxFuture<'b, Result<ReplaySeen, ProviderError>> {
        boxed(async move {
            let (in_recovery, state) = ctx.taking_over().await?;
            Ok(ReplaySeen {
                promoted: !in_recovery,
                replayed: state.and_then(|s| s.replay_lsn),
                target: *ctx.final_lsn.lock().unwrap(),
            })
        })
    }
    fn decide(&self, seen: &ReplaySeen) -> Decision {
        match (seen.promoted, seen.target, seen.replayed) {
            (true, _, _) => Decision::Done("the standby is already promoted".into()),
            (false, None, _) => Decision::Done(
                "the old primary was not fenced (it does not answer): the standby promotes with all the WAL it received".into(),
            ),
            (false, Some(target), Some(replayed)) if replayed >= target => Decision::Done(format!(
                "the standby replayed up to {replayed}, past the primary's last WAL position {target}: nothing is lost"
            )),
            (false, Some(target), replayed) => Decision::Act(format!(
                "wait until the standby has replayed {target} (now {})",
                replayed.map_or("unknown".into(), |l| l.to_string())
            )),
        }
    }
    fn act<'b>(
        &'b self,
        ctx: &'b RoleChange<'a>,
        seen: &'b ReplaySeen,
    ) -> BoxFuture<'b, Result<(), ProviderError>> {
        boxed(async move {
            let target = seen.target.expect("decide acts only with a target");
            if let Some(info) = &ctx.to.postgres {
                if pg_role::resume_replay(&ctx.role_of_to(), info, &ctx.systems.pg).await? {
                    ctx.note(format!(
                        "replay was paused on standby `{}`; pgdr resumed it to reach the primary's last WAL position",
                        ctx.to.name
                    ));
                }
            }
            let deadline = Instant::now() + ctx.replay_timeout;
            let mut last = seen.replayed;
            while Instant::now() < deadline {
                let (_, state) = ctx.taking_over().await?;
                last = state.and_then(|s| s.replay_lsn);
                if last.is_some_and(|l| l >= target) {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // Abort: the primary takes writes again, nothing else changed.
            let info = ctx
                .old_info()
                .expect("a target comes from a fenced primary");
            let unfenced = pg_role::unfence("primary", info, &ctx.systems.pg).await;
            Err(ProviderError::new(
                ctx.role_of_to(),
                format!(
                    "did not replay {target} within {}s (it is at {}); {}",
                    ctx.replay_timeout.as_secs(),
                    last.map_or("unknown".into(), |l| l.to_string()),
                    match unfenced {
                        Ok(()) => "the primary was unfenced and takes writes again; nothing else was changed".to_string(),
                        Err(e) => format!("unfencing the primary failed too, it is still read-only: {e}"),
                    }
                ),
            ))
        })
    }
}

/// The standby becomes the primary.
pub struct Promote;

impl<'a> Step<RoleChange<'a>> for Promote {
    type Seen = bool;
    fn name(&self) -> &str {
        "promote"
    }
    fn observe<'b>(
        &'b self,
        ctx: &'b RoleChange<'a>,
    ) -> BoxFuture<'b, Result<bool, ProviderError>> {
        boxed(async move { Ok(!ctx.taking_over().await?.0) })
    }
    fn decide(&self, promoted: &bool) -> Decision {
        if *promoted {
            Decision::Done("it accepts writes".into())
        } else {
            Decision::Act("promote the standby".into())
        }
    }
    fn act<'b>(
        &'b self,
        ctx: &'b RoleChange<'a>,
        _: &'b bool,
    ) -> BoxFuture<'b, Result<(), ProviderError>> {
        boxed(async move {
            if let Some(info) = &ctx.to.postgres {
                if ctx.to.rds.is_none() {
                    return pg_role::promote(&ctx.role_of_to(), info, &ctx.systems.pg).await;
                }
            }
            let instance = ctx.rds_instance().await?;
            let client = ctx.systems.aws.rds(ctx.standby_region()).await;
            rds::promote_read_replica(&client, &instance.id).await?;
            // RDS reboots the instance; it is promoted once it no longer names a source.
            let deadline = Instant::now() + Duration::from_secs(1800);
            loop {
                let now = ctx.rds_instance().await?;
                if now.replica_source.is_none() && now.status == "available" {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(ProviderError::new(
                        format!("rds.{}", instance.id),
                        format!("still `{}` 30 minutes after PromoteReadReplica", now.status),
                    ));
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        })
    }
}

/// The other standbys stream from the new primary, through their slots on it.
pub struct Repoint;

pub struct RepointSeen {
    missing_slots: Vec<String>,
    to_repoint: Vec<String>,
    unreachable: Vec<String>,
}

impl<'a> RoleChange<'a> {
    /// The slots the new primary needs: every self-managed standby of the new
    /// roles (the old primary takes the promoted standby's entry).
    fn slots_needed(&self) -> Vec<String> {
        self.after
            .plan
            .standbys
            .iter()
            .filter(|s| s.rds.is_none() && s.postgres.is_some())
            .map(Standby::slot_name)
            .collect()
    }

    fn others(&self) -> impl Iterator<Item = &'a Standby> + '_ {
        self.desired
            .plan
            .standbys
            .iter()
            .filter(|s| s.name != self.to.name && s.rds.is_none() && s.postgres.is_some())
    }
}

impl<'a> Step<RoleChange<'a>> for Repoint {
    type Seen = RepointSeen;
    fn name(&self) -> &str {
        "repoint-standbys"
    }
    fn observe<'b>(
        &'b self,
        ctx: &'b RoleChange<'a>,
    ) -> BoxFuture<'b, Result<RepointSeen, ProviderError>> {
        boxed(async move {
            let mut seen = RepointSeen {
                missing_slots: Vec::new(),
                to_repoint: Vec::new(),
                unreachable: Vec::new(),
            };
            let Some(info) = &ctx.to.postgres else {
                return Ok(seen);
            };
            if ctx.to.rds.is_some() {
                return Ok(seen);
            }
            let primary = pg_role::state(&ctx.role_of_to(), info, &ctx.systems.pg).await?;
            seen.missing_slots = ctx
                .slots_needed()
                .into_iter()
                .filter(|s| !primary.slots.contains(s))
                .collect();
            for standby in ctx.others() {
                let info = standby.postgres.as_ref().expect("others have a conninfo");
                match pg_role::state(&format!("standby.{}", standby.name), info, &ctx.systems.pg)
                    .await
                {
                    Ok(state) if ctx.points_at_new(&state) => {}
                    Ok(_) => seen.to_repoint.push(standby.name.to_string()),
                    Err(e) if e.unreachable => {
                        ctx.note(format!(
                            "standby `{}` does not answer: when it is back, point its primary_conninfo at the new primary ({})",
                            standby.name,
                            info_address(ctx.to.postgres.as_ref())
                        ));
                        seen.unreachable.push(standby.name.to_string());
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(seen)
        })
    }
    fn decide(&self, seen: &RepointSeen) -> Decision {
        if seen.missing_slots.is_empty() && seen.to_repoint.is_empty() {
            let mut done = "every other standby streams from the new primary".to_string();
            if !seen.unreachable.is_empty() {
                done = format!(
                    "{done}, except {} (not answering)",
                    seen.unreachable.join(", ")
                );
            }
            return Decision::Done(done);
        }
        let mut what = Vec::new();
        if !seen.missing_slots.is_empty() {
            what.push(format!(
                "create slot(s) {} on the new primary",
                seen.missing_slots.join(", ")
            ));
        }
        if !seen.to_repoint.is_empty() {
            what.push(format!(
                "point {} at the new primary",
                seen.to_repoint.join(", ")
            ));
        }
        Decision::Act(what.join("; "))
    }
    fn act<'b>(
        &'b self,
        ctx: &'b RoleChange<'a>,
        seen: &'b RepointSeen,
    ) -> BoxFuture<'b, Result<(), ProviderError>> {
        boxed(async move {
            let info = ctx.to.postgres.as_ref().expect("observed with a conninfo");
            pg_role::ensure_slots(
                &ctx.role_of_to(),
                info,
                &ctx.systems.pg,
                &seen.missing_slots,
            )
            .await?;
            let (host, port) = ctx.new_address().expect("a conninfo with a host");
            for standby in ctx
                .others()
                .filter(|s| seen.to_repoint.contains(&s.name.to_string()))
            {
                let sinfo = standby.postgres.as_ref().expect("others have a conninfo");
                pg_role::follow(
                    &format!("standby.{}", standby.name),
                    sinfo,
                    &ctx.systems.pg,
                    &pg_role::Follow {
                        host: &host,
                        port: &port,
                        application_name: standby.name.as_str(),
                        slot: &standby.slot_name(),
                    },
                )
                .await?;
            }
            Ok(())
        })
    }
}

fn info_address(info: Option<&Conninfo>) -> String {
    info.map_or("unknown".into(), |i| i.to_string())
}

/// The old primary comes back as a standby of the new one, when this machine runs it.
pub struct Rejoin;

pub enum RejoinSeen {
    /// Nothing pgdr can do here; the note says what a person must do.
    ByHand(String),
    Following,
    Local(LocalServer),
}

impl<'a> Step<RoleChange<'a>> for Rejoin {
    type Seen = RejoinSeen;
    fn name(&self) -> &str {
        "rejoin-old-primary"
    }
    /// The new primary does not need the old one back to take over (the
    /// endpoint has already moved): a failed rejoin is reported, not fatal.
    fn required(&self) -> bool {
        false
    }
    fn observe<'b>(
        &'b self,
        ctx: &'b RoleChange<'a>,
    ) -> BoxFuture<'b, Result<RejoinSeen, ProviderError>> {
        boxed(async move {
            let new_primary = info_address(ctx.to.postgres.as_ref());
            let seen = match (ctx.old_info(), ctx.old().await) {
                (_, None) => RejoinSeen::ByHand(
                    "the old RDS primary cannot become a replica of the new primary: create a new read replica (or keep it as it is and remove it from the plan file)".into(),
                ),
                (_, Some(Err(e))) if e.unreachable => RejoinSeen::ByHand(format!(
                    "the old primary does not answer: before it is started again, make it a standby of the new primary ({new_primary}): pg_rewind --target-pgdata=DATA --source-server='<new primary>', then standby.signal and primary_conninfo"
                )),
                (_, Some(Err(e))) => return Err(e),
                (_, Some(Ok(state))) if state.in_recovery && ctx.points_at_new(&state) => RejoinSeen::Following,
                (Some(info), Some(Ok(state))) => match (ctx.to.postgres.is_some() && ctx.to.rds.is_none())
                    .then(|| local::find(info, &state))
                    .flatten()
                {
                    Some(server) if !state.in_recovery => RejoinSeen::Local(server),
                    _ => RejoinSeen::ByHand(format!(
                        "the old primary ({}) is {} and not on this machine: rejoin it as a standby of the new primary ({new_primary}) with pg_rewind, standby.signal and primary_conninfo",
                        info,
                        if state.in_recovery { "in recovery from another server" } else { "fenced (read-only)" }
                    )),
                },
                (None, Some(Ok(_))) => unreachable!("old() needs a conninfo"),
            };
            if let RejoinSeen::ByHand(why) = &seen {
                ctx.note(why.clone());
            }
            Ok(seen)
        })
    }
    fn decide(&self, seen: &RejoinSeen) -> Decision {
        match seen {
            RejoinSeen::ByHand(why) => Decision::Done(format!("left for a person: {why}")),
            RejoinSeen::Following => Decision::Done("the old primary is a standby of the new primary".into()),
            RejoinSeen::Local(server) => Decision::Act(format!(
                "restart the old primary ({}) as a standby of the new primary, with pg_rewind if its WAL went past the new timeline",
                server.data.display()
            )),
        }
    }
    fn act<'b>(
        &'b self,
        ctx: &'b RoleChange<'a>,
        seen: &'b RejoinSeen,
    ) -> BoxFuture<'b, Result<(), ProviderError>> {
        boxed(async move {
            let RejoinSeen::Local(server) = seen else {
                unreachable!("decide acts only on a local server")
            };
            let result = rejoin(ctx, server).await;
            if let Err(e) = &result {
                ctx.note(format!(
                    "the old primary did not rejoin as a standby (see rejoin-old-primary: {}); it is left read-only. Rejoin it by hand (pg_rewind needs wal_log_hints = on or data checksums), or rebuild it from a base backup",
                    e.message.split(';').next().unwrap_or_default()
                ));
            }
            result
        })
    }
}

async fn rejoin(ctx: &RoleChange<'_>, server: &LocalServer) -> Result<(), ProviderError> {
    let old = ctx.old_info().expect("a local server has a conninfo");
    let new = ctx
        .to
        .postgres
        .as_ref()
        .expect("a local rejoin needs the new primary's conninfo");
    let (host, port) = ctx.new_address().expect("a conninfo with a host");
    let slot = ctx.to.slot_name();
    pg_role::ensure_slots(
        &ctx.role_of_to(),
        new,
        &ctx.systems.pg,
        std::slice::from_ref(&slot),
    )
    .await?;
    pg_role::prepare_rejoin(
        "primary",
        old,
        (&ctx.role_of_to(), new),
        &ctx.systems.pg,
        &pg_role::Follow {
            host: &host,
            port: &port,
            application_name: ctx.to.name.as_str(),
            slot: &slot,
        },
    )
    .await?;
    let source = new.to_libpq();
    let server = server.clone();
    let system = format!("postgres.primary ({old})");
    let done = tokio::task::spawn_blocking(move || {
        let how = server.rejoin(&source)?;
        server.wait_running(Duration::from_secs(60))?;
        Ok::<_, String>((how, server))
    })
    .await
    .map_err(|e| ProviderError::new(&system, e.to_string()))?
    .map_err(|e| ProviderError::new(&system, e))?;
    ctx.note(format!(
        "the old primary ({}) was restarted as a standby of the new primary: {}",
        done.1.data.display(),
        done.0
    ));
    // Streaming is the proof: the new primary lists it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = pg_role::state(&ctx.role_of_to(), new, &ctx.systems.pg).await?;
        if state
            .replication
            .iter()
            .any(|(n, s, _)| n == ctx.to.name.as_str() && s == "streaming")
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(ProviderError::new(
                        &system,
                        format!(
                            "restarted as a standby ({}), but it is not streaming from the new primary after 30s; {}",
                            done.0,
                            done.1.why_not_streaming()
                        ),
                    ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The endpoint record points at the new primary, and Route53 has it in sync.
pub struct MoveEndpoint;

pub struct EndpointSeen {
    none: bool,
    zone_id: String,
    have: Option<Record>,
    want: Result<Record, String>,
    new_writable: bool,
    old_writable: bool,
}

impl<'a> Step<RoleChange<'a>> for MoveEndpoint {
    type Seen = EndpointSeen;
    fn name(&self) -> &str {
        "move-endpoint"
    }
    fn observe<'b>(
        &'b self,
        ctx: &'b RoleChange<'a>,
    ) -> BoxFuture<'b, Result<EndpointSeen, ProviderError>> {
        boxed(async move {
            let Some(endpoint) = &ctx.desired.plan.endpoint else {
                return Ok(EndpointSeen {
                    none: true,
                    zone_id: String::new(),
                    have: None,
                    want: Err(String::new()),
                    new_writable: true,
                    old_writable: false,
                });
            };
            let client = ctx.systems.aws.route53().await;
            // The record, the new primary's RDS address (an RDS primary is
            // reached through it) and both servers' roles, read at once.
            let rds_instance = async {
                match ctx.to.rds {
                    Some(_) => ctx.rds_instance().await.map(Some),
                    None => Ok(None),
                }
            };
            let (live, instance, taking_over, old) = tokio::join!(
                route53::observe(&client, &endpoint.hosted_zone, &endpoint.record),
                rds_instance,
                ctx.taking_over(),
                ctx.old()
            );
            let live = live?;
            if let Some(why) = live.unmanageable {
                return Err(ProviderError::new(
                    format!("route53.{}", endpoint.record),
                    why,
                ));
            }
            let after_live = Live {
                rds: instance?.map(|primary| RdsLive {
                    primary: Some(primary),
                    ..RdsLive::default()
                }),
                ..Live::default()
            };
            let want = wanted_record(&ctx.after, &after_live);
            let new_writable = !taking_over?.0;
            let old_writable = match old {
                Some(Ok(s)) => !s.in_recovery && !s.read_only,
                _ => false,
            };
            Ok(EndpointSeen {
                none: false,
                zone_id: live.zone_id,
                have: live.record,
                want,
                new_writable,
                old_writable,
            })
        })
    }
    fn decide(&self, seen: &EndpointSeen) -> Decision {
        if seen.none {
            return Decision::Done("the plan file has no endpoint".into());
        }
        let want = match &seen.want {
            Ok(want) => want,
            Err(why) => {
                return Decision::Refuse(format!(
                    "cannot tell where the endpoint should point: {why}"
                ))
            }
        };
        if seen
            .have
            .as_ref()
            .is_some_and(|h| route53_plan::same(h, want))
        {
            return Decision::Done(format!(
                "points at {} ({})",
                want.values.join(", "),
                want.rtype
            ));
        }
        if !seen.new_writable {
            return Decision::Refuse(
                "the new primary does not accept writes: the endpoint is not moved".into(),
            );
        }
        if seen.old_writable {
            return Decision::Refuse(
                "split brain: the old primary accepts writes as well; the endpoint is not moved. Stop or fence the old primary, then run again".into(),
            );
        }
        Decision::Act(format!(
            "point the endpoint at {} ({}), was {}",
            want.values.join(", "),
            want.rtype,
            seen.have
                .as_ref()
                .map_or("absent".into(), |h| h.values.join(", "))
        ))
    }
    fn act<'b>(
        &'b self,
        ctx: &'b RoleChange<'a>,
        seen: &'b EndpointSeen,
    ) -> BoxFuture<'b, Result<(), ProviderError>> {
        boxed(async move {
            let endpoint = ctx
                .desired
                .plan
                .endpoint
                .as_ref()
                .expect("observed with an endpoint");
            let want = seen.want.as_ref().expect("decide acts only with a record");
            let client = ctx.systems.aws.route53().await;
            let change = route53::write(
                &client,
                &seen.zone_id,
                &endpoint.record,
                seen.have.as_ref(),
                want,
            )
            .await?;
            route53::wait_in_sync(
                &client,
                &endpoint.record,
                &change,
                Duration::from_millis(500),
                ctx.dns_timeout,
            )
            .await
        })
    }
}

/// The steps, in order. A failover runs the same ones: it fences and waits
/// for replay when the old primary still answers, and skips both when not.
pub fn sequence<'a>(force: Option<String>) -> Vec<Box<dyn DynStep<RoleChange<'a>> + 'a>> {
    vec![
        Box::new(Guard(force)),
        Box::new(Fence),
        Box::new(WaitReplay),
        Box::new(Promote),
        Box::new(Repoint),
        // The endpoint moves as soon as the new primary takes writes and the
        // old one is fenced: a slow or failing rejoin never holds up clients.
        Box::new(MoveEndpoint),
        Box::new(Rejoin),
    ]
}
