//! `pgdr watch`: looks at a cluster every `failover.check_every`, decides
//! with [`crate::plan::watch::decide`] whether the primary is lost, and —
//! when the plan opts in, the old primary is fenced and this watcher holds
//! the lease — fails over with the same steps as `pgdr failover`, journaled
//! with `trigger: automatic` and what it saw. [`guard`] is the other half,
//! beside the primary.
//!
//! One look: probe the primary (bounded by `check_every`), ask every standby
//! what its WAL receiver hears, renew (or take, or leave) the watcher lease
//! and read the guard's, then decide; the verdict is kept in the lease
//! object for `status` and for the next `watch --once`.

pub mod act;
pub mod guard;
pub mod lease;

use crate::execute::role_change::{lag_guard, Candidate, DEFAULT_MAX_LAG_SECONDS};
use crate::execute::steps::Decision;
use crate::format::ArchiveUrl;
use crate::plan::watch::{decide, FenceBy, Verdict};
use crate::providers::postgres::role::{self as pg_role, Receiver, RoleState};
use crate::providers::storage::Store;
use crate::providers::{ProviderError, Systems};
use crate::spec::time::{now_unix, Timestamp};
use crate::spec::{Conninfo, Desired, Failover};
use crate::state::watch::{Evaluation, GuardSeen, Leases, WatchSeen, Witness};
use lease::Sighting;
use std::time::{Duration, Instant};

/// A watcher of one cluster, and what it remembers between looks.
pub struct Watcher<'a> {
    pub desired: &'a Desired,
    pub systems: &'a Systems,
    pub failover: Failover,
    store: Store,
    key: String,
    me: String,
    /// When this watcher last reached the primary, and first failed to.
    last_answer: Option<Instant>,
    first_failure: Option<Instant>,
    /// The other holders' leases, as this watcher saw them move.
    watcher_seen: Option<Sighting>,
    guard_seen: Option<Sighting>,
    /// `--write-plan`: an automatic failover writes the new roles into the plan file.
    pub write_plan: bool,
    /// `--once` (cron): this process looks once and remembers nothing, so
    /// it cannot see a lease stand still on its own clock. Runs of `--once`
    /// share one holder name, and judge other holders by the age of their
    /// last renewal (`renewed_at`: the holder's clock against this one's —
    /// keep the clocks in sync, as NTP does).
    once: bool,
    /// The last refusal paged (a person is told once, not every look).
    paged: Option<String>,
    /// Sees each step of an automatic failover as it ends (the command prints it).
    pub on_step: fn(&crate::state::journal::StepRecord),
    /// Sees a verdict that acts (a failover, or finishing one) before the
    /// action begins, so the log says why before it says what.
    pub on_acting: fn(&str, &Verdict),
}

/// What one look concluded, and did.
#[derive(Debug)]
pub struct Look {
    pub verdict: Verdict,
    /// A role change ran: its outcome (`done`, `refused`, `failed`) and
    /// where its journal is.
    pub acted: Option<(String, String)>,
    /// When the primary is silent: how long until `after` (and the guard's
    /// lease with its margin) will have run out, so the next look can come
    /// then rather than up to a check later.
    pub decisive_in: Option<Duration>,
}

impl<'a> Watcher<'a> {
    /// A watcher for `desired` (which has an archive: the lease lives there).
    pub async fn new(desired: &'a Desired, systems: &'a Systems) -> Result<Self, ProviderError> {
        let failover = desired
            .plan
            .failover
            .clone()
            .unwrap_or_else(default_failover);
        let archive = desired.plan.archive.as_ref().ok_or_else(|| {
            ProviderError::new(
                "watch",
                "the plan file has no archive: the watcher keeps its lease in the archive bucket",
            )
        })?;
        let url = ArchiveUrl::parse(&archive.url()).map_err(|e| ProviderError::new("watch", e))?;
        let store = Store::s3(systems.aws.s3(desired.region()).await, &url.bucket);
        Ok(Watcher {
            desired,
            systems,
            failover,
            key: lease::key(&url, desired.cluster()),
            store,
            me: lease::me(),
            last_answer: None,
            first_failure: None,
            watcher_seen: None,
            guard_seen: None,
            write_plan: false,
            once: false,
            paged: None,
            on_step: |_| {},
            on_acting: |_, _| {},
        })
    }

    /// For `--once`: see [`Watcher::once`].
    pub fn looking_once(mut self) -> Self {
        self.once = true;
        self.me = lease::once_holder();
        self
    }

    /// Seconds `lease` has gone unrenewed, as far as this watcher can tell
    /// (updating what it saw).
    fn unchanged_for(
        once: bool,
        seen: &mut Option<Sighting>,
        lease: &crate::state::watch::Lease,
    ) -> f64 {
        let here = Sighting::unchanged_for(seen, lease);
        if once {
            (now_unix() - lease.renewed_at.secs()).max(0) as f64
        } else {
            here
        }
    }

    /// One look: observe, decide, act when the verdict says so, and record
    /// the verdict in the lease object.
    pub async fn look(&mut self) -> Result<Look, ProviderError> {
        let (seen, leases) = self.observe().await?;
        let verdict = decide(&seen, &self.failover);
        if verdict.acts() {
            (self.on_acting)(self.desired.cluster(), &verdict);
        }
        let acted = act::act(self, &verdict, &seen, &leases).await?;
        self.record(&verdict).await?;
        let decisive_in = decisive_in(&seen, &self.failover);
        Ok(Look {
            verdict,
            acted,
            decisive_in,
        })
    }

    /// The primary, the standbys and the leases, read at once.
    async fn observe(&mut self) -> Result<(WatchSeen, Leases), ProviderError> {
        let probe_limit = self.failover.check_every.std().max(Duration::from_secs(1));
        let (desired, env) = (self.desired, &self.systems.pg);
        let primary = async {
            let info = desired.plan.primary.postgres.as_ref()?;
            Some(
                tokio::time::timeout(probe_limit, pg_role::state("primary", info, env))
                    .await
                    .unwrap_or_else(|_| {
                        Err(ProviderError::new("postgres.primary", "no answer in time")
                            .unreachable())
                    }),
            )
        };
        let standbys = futures_util::future::join_all(
            desired
                .plan
                .standbys
                .iter()
                .filter_map(|s| s.postgres.as_ref().map(|info| (s, info)))
                .map(|(s, info)| async move {
                    let role = format!("standby.{}", s.name);
                    let looked = tokio::time::timeout(probe_limit, async {
                        tokio::try_join!(
                            pg_role::receiver(&role, info, env),
                            pg_role::state(&role, info, env)
                        )
                    })
                    .await
                    .ok()
                    .and_then(Result::ok);
                    (s, looked)
                }),
        );
        let (primary, standbys) = tokio::join!(primary, standbys);
        let answered = matches!(primary, Some(Ok(_)));
        let now = Instant::now();
        if answered {
            self.last_answer = Some(now);
            self.first_failure = None;
        } else if self.first_failure.is_none() {
            self.first_failure = Some(now);
        }
        let (leases, holds) = self.renew(answered).await?;
        let primary_down_for = (!answered).then(|| self.down_for(&leases));
        let witnesses: Vec<Witness> = standbys
            .iter()
            .map(|(s, looked)| witness(self.desired, s.name.as_str(), looked.as_ref()))
            .collect();
        let failed_over = standbys.iter().find_map(|(s, looked)| {
            looked
                .as_ref()
                .filter(|(r, _)| !r.in_recovery)
                .map(|_| format!("standby {}", s.name))
        });
        let guard = leases.guard.as_ref().map(|g| GuardSeen {
            unchanged_for: Self::unchanged_for(self.once, &mut self.guard_seen, g),
            seconds: g.seconds,
        });
        let seen = WatchSeen {
            primary_answers: answered,
            primary_writable: matches!(&primary, Some(Ok(s)) if !s.in_recovery && !s.read_only),
            primary_down_for,
            witnesses,
            failed_over,
            candidate: candidate(&standbys),
            lease: holds,
            last_automatic_age: leases
                .failed_over_at
                .map(|at| (now_unix() - at.secs()).max(0) as u64),
            guard,
            fence_command: self.failover.fence_command.is_some(),
            unfinished: leases.failing_over_to.clone(),
        };
        Ok((seen, leases))
    }

    /// Seconds since the primary last answered: on this watcher's clock when
    /// it saw it answer, else from the lease (another run of `--once`), else
    /// from this watcher's first failed probe.
    fn down_for(&self, leases: &Leases) -> f64 {
        if let Some(last) = self.last_answer {
            return last.elapsed().as_secs_f64();
        }
        let from_lease = leases
            .primary_seen_at
            .or(leases.primary_lost_since)
            .map(|at| (now_unix() - at.secs()).max(0) as f64);
        let here = self
            .first_failure
            .map_or(0.0, |f| f.elapsed().as_secs_f64());
        from_lease.unwrap_or(0.0).max(here)
    }

    /// Renews or takes the watcher lease, and notes whether the primary
    /// answered. Returns the object and whether this watcher holds the lease
    /// (else who does).
    async fn renew(
        &mut self,
        answered: bool,
    ) -> Result<(Leases, Result<(), String>), ProviderError> {
        let me = self.me.clone();
        let seconds = self.failover.lease_time().as_secs();
        let mut holds = Err(String::new());
        let seen = &mut self.watcher_seen;
        let once = self.once;
        let limit = bucket_limit(&self.failover);
        let update = lease::update(&self.store, &self.key, self.desired.cluster(), |leases| {
            let unchanged = leases
                .watcher
                .as_ref()
                .map_or(0.0, |l| Self::unchanged_for(once, seen, l));
            holds = if lease::take_or_renew(&mut leases.watcher, &me, seconds, unchanged) {
                Ok(())
            } else {
                Err(leases
                    .watcher
                    .as_ref()
                    .map_or_else(String::new, |l| l.holder.clone()))
            };
            if holds.is_err() {
                return false;
            }
            let now = Timestamp(now_unix());
            if answered {
                leases.primary_seen_at = Some(now);
                leases.primary_lost_since = None;
            } else if leases.primary_lost_since.is_none() {
                leases.primary_lost_since = Some(now);
            }
            true
        });
        let leases = lease::bounded(&self.store, limit, update).await?;
        Ok((leases, holds))
    }

    /// Keeps the verdict in the lease object (only the holder writes).
    async fn record(&self, verdict: &Verdict) -> Result<(), ProviderError> {
        let me = self.me.clone();
        let evaluation = Evaluation {
            at: Timestamp(now_unix()),
            by: me.clone(),
            verdict: verdict.word().to_string(),
            detail: describe(verdict),
        };
        let update = lease::update(&self.store, &self.key, self.desired.cluster(), |leases| {
            if leases.watcher.as_ref().is_none_or(|l| l.holder != me) {
                return false;
            }
            let changed = leases
                .last_evaluation
                .as_ref()
                .is_none_or(|e| e.verdict != evaluation.verdict || e.detail != evaluation.detail);
            if changed {
                leases.last_evaluation = Some(evaluation.clone());
            }
            changed
        });
        lease::bounded(&self.store, bucket_limit(&self.failover), update)
            .await
            .map(|_| ())
    }

    /// Gives the watcher lease up (SIGTERM): another watcher takes over at once.
    pub async fn release(&self) -> Result<(), ProviderError> {
        let me = self.me.clone();
        let update = lease::update(&self.store, &self.key, self.desired.cluster(), |leases| {
            if leases.watcher.as_ref().is_some_and(|l| l.holder == me) {
                leases.watcher = None;
                true
            } else {
                false
            }
        });
        lease::bounded(&self.store, bucket_limit(&self.failover), update)
            .await
            .map(|_| ())
    }
}

/// How long one bucket call of a look may take: a check's worth, at least
/// two seconds (an object store's slow moments), well inside the lease.
pub(super) fn bucket_limit(failover: &Failover) -> Duration {
    failover.check_every.std().max(Duration::from_secs(2))
}

/// While the primary is silent and not yet lost: when the verdict can next
/// change — `after` run out, and the guard's lease lapsed with its margin.
fn decisive_in(seen: &WatchSeen, failover: &Failover) -> Option<Duration> {
    let down = seen.primary_down_for.filter(|_| !seen.primary_answers)?;
    let mut wait = failover.after.as_secs_f64() - down;
    if let Some(guard) = seen.guard {
        let lapse = guard.seconds as f64 + crate::plan::watch::guard_margin(failover);
        wait = wait.max(lapse - guard.unchanged_for);
    }
    // Just past the line, so that the look then finds it crossed.
    (wait > 0.0).then(|| Duration::from_secs_f64(wait + 0.05))
}

/// A plan without a `failover` section is watched with the defaults and
/// never acted on.
fn default_failover() -> Failover {
    serde_json::from_value(serde_json::json!({})).expect("every key has a default")
}

/// The verdict as one line.
pub fn describe(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Healthy => "the primary answers and takes writes".into(),
        Verdict::Watching(what) => what.clone(),
        Verdict::Refuse { why, .. } => why.clone(),
        Verdict::FailOver { to, fence } => match fence {
            FenceBy::Command => {
                format!("failing over to standby `{to}` once fence_command fences the primary")
            }
            FenceBy::GuardLeaseExpired(seconds) => format!(
                "failing over to standby `{to}`: the guard's lease went unrenewed for {seconds:.0}s"
            ),
        },
        Verdict::Resume { to } => {
            format!("finishing the failover to standby `{to}` a watcher started")
        }
    }
}

/// What a standby's receiver says: it hears the primary when it streams,
/// heard from its upstream within its own timeout, and that upstream is not
/// another standby of the plan (a cascade hears a standby, not the primary).
fn witness(desired: &Desired, name: &str, looked: Option<&(Receiver, RoleState)>) -> Witness {
    let Some((receiver, _)) = looked else {
        return Witness {
            name: name.to_string(),
            reachable: false,
            hears_primary: false,
            said: "does not answer".into(),
        };
    };
    let from_standby = receiver.sender.as_ref().is_some_and(|(host, port)| {
        desired.plan.standbys.iter().any(|s| {
            s.postgres.as_ref().is_some_and(|i: &Conninfo| {
                i.get("host").or(i.get("hostaddr")) == Some(host.as_str())
                    && i.get("port").unwrap_or("5432") == port.to_string()
            })
        })
    });
    let fresh = receiver
        .last_message_age
        .is_some_and(|age| age < receiver.timeout_seconds);
    let streaming = receiver.status.as_deref() == Some("streaming");
    Witness {
        name: name.to_string(),
        reachable: true,
        hears_primary: streaming && fresh && !from_standby,
        said: match (&receiver.status, receiver.last_message_age) {
            (Some(status), Some(age)) => format!(
                "receiver {status}, last heard {age:.1}s ago (gives up after {:.0}s)",
                receiver.timeout_seconds
            ),
            (Some(status), None) => format!("receiver {status}"),
            _ => "no WAL receiver".into(),
        },
    }
}

/// The standby that would take over with the primary gone: in recovery and
/// answering, synchronous first, least to replay; and the lag guard's
/// verdict on it (what it can measure without the primary).
fn candidate(
    standbys: &[(&crate::spec::Standby, Option<(Receiver, RoleState)>)],
) -> Option<(String, Result<String, String>)> {
    let (standby, state) = standbys
        .iter()
        .filter_map(|(s, looked)| looked.as_ref().map(|(_, state)| (*s, state)))
        .filter(|(_, state)| state.in_recovery)
        .min_by(|(a, sa), (b, sb)| {
            let delay = |s: &RoleState| s.replay_delay_seconds.unwrap_or(f64::MAX);
            (!a.synchronous, delay(sa))
                .partial_cmp(&(!b.synchronous, delay(sb)))
                .unwrap_or(std::cmp::Ordering::Equal)
        })?;
    let candidate = Candidate {
        name: standby.name.to_string(),
        streaming: false,
        synchronous: standby.synchronous,
        same_region: true,
        lag_seconds: state.replay_delay_seconds,
        lag_bytes: None,
        reachable: true,
        primary_lost: Some(state.last_commit_age_seconds),
        replayed: state.replay_lsn.map(|l| l.0),
        max_lag_seconds: standby
            .max_lag
            .map_or(DEFAULT_MAX_LAG_SECONDS, |d| d.as_secs() as f64),
    };
    let verdict = match lag_guard(&candidate, None) {
        Decision::Passed(measured) | Decision::Done(measured) => Ok(measured),
        Decision::Refuse(why) | Decision::Act(why, ()) => Err(why),
    };
    Some((candidate.name, verdict))
}
