//! `pgdr drill --rejoin` (active-active): after the checks, the restored
//! node joins the mesh again the way a node rebuilt from its archive
//! would, and is taken out again. Its rows are as of the backup, so the
//! replicated tables are emptied and copied from the first peer; it then
//! streams from every peer until it has what they wrote meanwhile. It does
//! so as a node of its own (`<node>_drill`): its subscriptions and their
//! slots on the peers are the drill's, never production's, and they are
//! removed at the end whatever happened. Nothing is sent to the peers: no
//! peer subscribes to the restored copy.
//!
//! What it costs production: one slot per peer for the drill's duration
//! and a full read of the replicated tables on the first peer.

use super::steps::Drill;
use crate::execute::steps::{Decision, Step};
use crate::execute::ArchiveError;
use crate::providers::postgres::{self, pglogical};
use crate::settings::PgEnv;
use crate::spec::Conninfo;
use crate::state::drill::CheckResult;
use std::time::{Duration, Instant};

/// What re-joining needs: the drill node's name and the peers.
pub struct Rejoin {
    /// `<node>_drill`: a name no production node has.
    pub node: String,
    /// Each peer's name and conninfo (how pgdr and the restored server reach it).
    pub peers: Vec<(String, Conninfo)>,
}

/// The drill's subscription from `peer`.
fn subscription(peer: &str) -> String {
    format!("drill_from_{}", peer.replace('-', "_"))
}

pub struct RejoinMesh;

impl<'a> Step<Drill<'a>> for RejoinMesh {
    type Seen = bool;
    type Act = ();
    type Error = ArchiveError;
    fn name(&self) -> &str {
        "rejoin"
    }
    async fn observe(&self, ctx: &Drill<'a>) -> Result<bool, ArchiveError> {
        let report = ctx.report.lock().unwrap();
        Ok(report.checks.iter().any(|c| c.name == "rejoin"))
    }
    fn decide(&self, done: &bool) -> Decision {
        if *done {
            Decision::Done("re-joined".into())
        } else {
            Decision::Act(
                "re-join the restored node to the mesh, then take it out".into(),
                (),
            )
        }
    }
    async fn act(&self, ctx: &Drill<'a>, _: ()) -> Result<(), ArchiveError> {
        let Some(rejoin) = &ctx.request.rejoin else {
            return Ok(());
        };
        let started = Instant::now();
        // The slots the drill's subscriptions made, by peer: the only ones it removes.
        let made = std::sync::Mutex::new(Vec::new());
        let result = rejoin_mesh(ctx, rejoin, &made).await;
        // Whatever happened, the drill's subscriptions and slots go.
        let made = made.into_inner().unwrap_or_else(|e| e.into_inner());
        let cleaned = remove(ctx, rejoin, &made).await;
        let (ok, detail) = match (result, cleaned) {
            (Ok(copied), Ok(removed)) => (
                true,
                format!(
                    "re-joined as {} from {}: {copied} row(s) copied, then caught up with every peer, in {:.1}s; {removed}",
                    rejoin.node,
                    rejoin.peers.first().map_or("", |(n, _)| n.as_str()),
                    started.elapsed().as_secs_f64()
                ),
            ),
            (Err(why), Ok(removed)) => (false, format!("{why}; {removed}")),
            (Ok(_), Err(left)) | (Err(_), Err(left)) => (false, left),
        };
        ctx.report.lock().unwrap().checks.push(CheckResult {
            name: "rejoin".into(),
            ok,
            detail,
            duration_seconds: Some(started.elapsed().as_secs_f64()),
        });
        Ok(())
    }
}

/// Re-joins; the rows copied from the first peer. Each slot a subscription
/// of the drill makes is added to `made` before it is made.
async fn rejoin_mesh(
    ctx: &Drill<'_>,
    rejoin: &Rejoin,
    made: &std::sync::Mutex<Vec<(String, String)>>,
) -> Result<i64, String> {
    let env = PgEnv::default();
    let info = ctx.info().map_err(|e| e.to_string())?;
    let text =
        |what: &str, e: tokio_postgres::Error| format!("{what}: {}", postgres::error_text(&e));
    // The restored copy is still the production node (its pglogical
    // identity, its subscriptions' origins): forget it, while pglogical is
    // not loaded, so nothing of it can connect once it is.
    let tables = {
        let pg = postgres::connect("restored", &info, &env)
            .await
            .map_err(|e| e.to_string())?;
        let tables = pglogical::restored_tables(&pg)
            .await
            .map_err(|e| text("reading the restored replication set", e))?;
        pglogical::forget(&pg)
            .await
            .map_err(|e| text("removing the restored node's pglogical state", e))?;
        tables
    };
    if tables.is_empty() {
        return Err("the restored copy replicates no table (its pglogical set is empty)".into());
    }
    ctx.scratch
        .restart_with_replication()
        .map_err(|e| e.to_string())?;
    let limit = Duration::from_secs(ctx.request.objectives.rto_seconds.max(60));
    let pg = ctx.scratch.server.wait_promoted(&info, &env, limit).await?;
    let own = info.to_libpq();
    pglogical::join_empty(&pg, &rejoin.node, &own, &tables)
        .await
        .map_err(|e| text("setting up the drill node", e))?;
    let dbname = ctx.request.dbname.as_str();
    for (i, (peer, peer_info)) in rejoin.peers.iter().enumerate() {
        let sub = subscription(peer);
        // pglogical takes over a slot of the same name that is not in use:
        // one already there is someone else's (a node named like the
        // drill's, a drill killed before it cleaned up), never the drill's.
        let provider = postgres::connect(&format!("node.{peer}"), peer_info, &env)
            .await
            .map_err(|e| e.to_string())?;
        let slot = pglogical::slot_name_on(&provider, (dbname, peer, &sub))
            .await
            .map_err(|e| text(&format!("naming the drill's slot on {peer}"), e))?;
        if pglogical::slot_exists(&provider, &slot)
            .await
            .map_err(|e| text(&format!("reading {peer}'s slots"), e))?
        {
            return Err(format!("{peer} already has a slot {slot}, which the drill's subscription {sub} would take over: refusing (a node named like the drill's, or a drill killed before it removed its own: drop it there if it is one)"));
        }
        made.lock().unwrap().push((peer.clone(), slot));
        pglogical::subscribe_client(&pg, &sub, &peer_info.to_libpq(), i == 0)
            .await
            .map_err(|e| text(&format!("subscribing to {peer}"), e))?;
    }
    let first = subscription(&rejoin.peers[0].0);
    tokio::time::timeout(limit, pglogical::wait_synchronized(&pg, &first))
        .await
        .map_err(|_| {
            format!(
                "the copy from {} took longer than {}s",
                rejoin.peers[0].0,
                limit.as_secs()
            )
        })?
        .map_err(|e| text("waiting for the copy", e))?;
    // Caught up: each peer's slot for the drill confirms what the peer had
    // written once the copy was done.
    for (peer, peer_info) in &rejoin.peers {
        let slot = pglogical::subscription_slot(&pg, &subscription(peer))
            .await
            .map_err(|e| text("reading the drill's slot name", e))?;
        let provider = postgres::connect(&format!("node.{peer}"), peer_info, &env)
            .await
            .map_err(|e| e.to_string())?;
        let target = pglogical::current_lsn(&provider)
            .await
            .map_err(|e| text(&format!("reading {peer}'s WAL position"), e))?;
        let deadline = Instant::now() + limit;
        while !pglogical::slot_confirmed(&provider, &slot, &target)
            .await
            .map_err(|e| text(&format!("reading {peer}'s slot {slot}"), e))?
        {
            if Instant::now() > deadline {
                return Err(format!(
                    "did not catch up with {peer} within {}s",
                    limit.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    pglogical::count_rows(&pg, &tables)
        .await
        .map_err(|e| text("counting the copied rows", e))
}

/// Drops the drill's subscriptions on the restored server (which drops
/// their slots on the peers), then any slot in `made` still on its peer,
/// and checks each is gone. Says what was removed, or what is left and must
/// be removed by hand.
async fn remove(
    ctx: &Drill<'_>,
    rejoin: &Rejoin,
    made: &[(String, String)],
) -> Result<String, String> {
    let env = PgEnv::default();
    if let Ok(info) = ctx.info() {
        if let Ok(pg) = postgres::connect("restored", &info, &env).await {
            for (peer, _) in &rejoin.peers {
                let _ = pglogical::drop_subscription(&pg, &subscription(peer)).await;
            }
        }
    }
    let mut left = Vec::new();
    for (peer, slot) in made {
        let Some((_, peer_info)) = rejoin.peers.iter().find(|(n, _)| n == peer) else {
            continue;
        };
        let dropped = async {
            let provider = postgres::connect(&format!("node.{peer}"), peer_info, &env)
                .await
                .map_err(|e| e.to_string())?;
            let text = |e: tokio_postgres::Error| postgres::error_text(&e);
            pglogical::drop_slot(&provider, slot).await.map_err(text)?;
            match pglogical::slot_exists(&provider, slot)
                .await
                .map_err(text)?
            {
                true => Err("still there".to_string()),
                false => Ok(()),
            }
        };
        if let Err(why) = dropped.await {
            left.push(format!(
                "slot {slot} on {peer} ({why}): drop it there with pg_drop_replication_slot('{slot}')"
            ));
        }
    }
    if left.is_empty() {
        Ok("the drill's subscriptions and its slots on the peers removed".into())
    } else {
        Err(format!("LEFT BEHIND: {}", left.join("; ")))
    }
}
