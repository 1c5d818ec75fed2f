//! The steps of `switchover` and `failover`, in order, one file each, each
//! observing before it acts (see [`crate::execute::steps`]): a second run
//! after a crash finds what the first one did and goes on from there — it
//! never promotes twice nor moves the endpoint twice.
//!
//! check-standby ([`guard`]) → fence-primary ([`fence`]) → wait-replay
//! ([`wait_replay`]) → promote ([`promote`]) → repoint-standbys
//! ([`repoint`]) → move-endpoint ([`move_endpoint`]) → rejoin-old-primary
//! ([`rejoin`]).
//!
//! What the steps share is [`RoleChange`]; what a step's `act` needs is
//! handed over by its `decide` (`Decision::Act`), so no `act` looks it up
//! again or assumes it is there.

pub mod fence;
pub mod guard;
pub mod move_endpoint;
pub mod promote;
pub mod rejoin;
pub mod repoint;
pub mod wait_replay;

use super::{Kind, Trigger};
use crate::execute::steps::DynStep;
use crate::providers::postgres::role::{self as pg_role, RoleState};
use crate::providers::{rds, ProviderError, Systems};
use crate::spec::{Conninfo, Desired, Standby};
use crate::state::wal::Lsn;
use std::sync::Mutex;
use std::time::Duration;

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
    /// Started by the watcher: an old primary that does not answer must
    /// have been fenced another way (`fenced_by`), or nothing is promoted.
    pub trigger: Trigger,
    /// How the old primary was fenced before this run, when it does not
    /// answer (the watcher's fence_command, the guard's lapsed lease).
    pub fenced_by: Option<String>,
    /// The fenced primary's last WAL position.
    pub(super) final_lsn: Mutex<Option<Lsn>>,
    /// The standby's lag as check-standby measured it (seconds).
    pub(super) measured_lag: Mutex<Option<f64>>,
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
            trigger: Trigger::Manual,
            fenced_by: None,
            final_lsn: Mutex::new(None),
            measured_lag: Mutex::new(None),
            notes: Mutex::new(Vec::new()),
        }
    }

    pub fn notes(&self) -> Vec<String> {
        self.notes.lock().unwrap().clone()
    }

    /// The standby's lag as check-standby measured it, in seconds.
    pub fn measured_lag(&self) -> Option<f64> {
        *self.measured_lag.lock().unwrap()
    }

    pub(super) fn note(&self, text: String) {
        let mut notes = self.notes.lock().unwrap();
        if !notes.contains(&text) {
            notes.push(text);
        }
    }

    pub(super) fn old_info(&self) -> Option<&Conninfo> {
        self.desired.plan.primary.postgres.as_ref()
    }

    pub(super) fn role_of_to(&self) -> String {
        format!("standby.{}", self.to.name)
    }

    /// The old primary's state; `None` without a conninfo (an RDS primary).
    pub(super) async fn old(&self) -> Option<Result<RoleState, ProviderError>> {
        let info = self.old_info()?;
        Some(pg_role::state("primary", info, &self.systems.pg).await)
    }

    /// Whether the standby taking over still replays (not promoted yet), and
    /// its state when pgdr can reach it over SQL.
    pub(super) async fn taking_over(&self) -> Result<(bool, Option<RoleState>), ProviderError> {
        if let Some(info) = &self.to.postgres {
            let state = pg_role::state(&self.role_of_to(), info, &self.systems.pg).await?;
            return Ok((state.in_recovery, Some(state)));
        }
        let instance = self.rds_instance().await?;
        Ok((instance.replica_source.is_some(), None))
    }

    pub(super) async fn rds_instance(
        &self,
    ) -> Result<crate::state::rds::InstanceLive, ProviderError> {
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

    pub(super) fn standby_region(&self) -> &str {
        self.to
            .region
            .as_ref()
            .map_or(self.desired.region(), |r| r.as_str())
    }

    /// Host and port other servers reach the new primary at (its plan conninfo).
    pub(super) fn new_address(&self) -> Option<(String, String)> {
        let info = self.to.postgres.as_ref()?;
        Some((
            info.get("host").or(info.get("hostaddr"))?.to_string(),
            info.get("port").unwrap_or("5432").to_string(),
        ))
    }

    pub(super) fn points_at_new(&self, state: &RoleState) -> bool {
        let Some((host, port)) = self.new_address() else {
            return false;
        };
        state.upstream.as_ref().is_some_and(|u| {
            u.host.as_deref() == Some(host.as_str()) && u.port.as_deref().unwrap_or("5432") == port
        })
    }
}

impl<'a> RoleChange<'a> {
    /// The slots the new primary needs: every self-managed standby of the new
    /// roles (the old primary takes the promoted standby's entry).
    pub(super) fn slots_needed(&self) -> Vec<String> {
        self.after
            .plan
            .standbys
            .iter()
            .filter(|s| s.rds.is_none() && s.postgres.is_some())
            .map(Standby::slot_name)
            .collect()
    }

    pub(super) fn others(&self) -> impl Iterator<Item = &'a Standby> + '_ {
        self.desired
            .plan
            .standbys
            .iter()
            .filter(|s| s.name != self.to.name && s.rds.is_none() && s.postgres.is_some())
    }
}

pub(super) fn info_address(info: Option<&Conninfo>) -> String {
    info.map_or("unknown".into(), |i| i.to_string())
}

/// The steps, in order. A failover runs the same ones: it fences and waits
/// for replay when the old primary still answers, and skips both when not.
pub fn sequence<'a>(force: Option<String>) -> Vec<Box<dyn DynStep<RoleChange<'a>> + 'a>> {
    vec![
        Box::new(guard::Guard(force)),
        Box::new(fence::Fence),
        Box::new(wait_replay::WaitReplay),
        Box::new(promote::Promote),
        Box::new(repoint::Repoint),
        // The endpoint moves as soon as the new primary takes writes and the
        // old one is fenced: a slow or failing rejoin never holds up clients.
        Box::new(move_endpoint::MoveEndpoint),
        Box::new(rejoin::Rejoin),
    ]
}
