//! `pgdr watch --guard`: runs beside the primary, renews the guard lease in
//! the bucket, watches its standbys answer, and fences its own server (as
//! `fence-primary` does: read-only, every session ended) when
//! [`crate::plan::watch::guard_decide`] says it is cut off — so that when a
//! watcher promotes a standby, the old primary is already taking no writes.
//!
//! The ordering that keeps two primaries from taking writes at once is in
//! the lease object, written only with conditional puts: a watcher starts a
//! failover only while the guard's renewal counter is the one it saw lapse,
//! and the guard lifts its own fence only after a renewal that found no
//! failover started. Of the two writes one comes first; the other sees it.

use super::lease;
use crate::plan::watch::{
    guard_decide, GuardLook, GuardVerdict, STANDBY_SILENCE, STANDBY_SILENCE_OWED,
};
use crate::providers::postgres::role as pg_role;
use crate::providers::postgres::Session;
use crate::providers::storage::Store;
use crate::providers::{ProviderError, Systems};
use crate::spec::time::now_unix;
use crate::spec::{Desired, Failover};
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub struct Guard<'a> {
    desired: &'a Desired,
    systems: &'a Systems,
    pub failover: Failover,
    store: Store,
    key: String,
    me: String,
    /// Its own server, kept open between looks.
    session: Option<Session>,
    started_at: i64,
    last_renewed: Option<Instant>,
    fenced_by_me: bool,
    /// Each standby's last reply time and when this guard saw it change.
    replies_seen: HashMap<String, (Option<f64>, Instant)>,
}

/// How often the guard looks: four times a check, at most a second apart
/// between looks at its own server (a local query; the bucket is asked only
/// when a renewal is due or the standbys fall silent). The lost-write window
/// of a partition is about [`STANDBY_SILENCE`] plus this plus the bucket probe.
pub fn guard_every(failover: &Failover) -> Duration {
    failover.check_every.std().min(Duration::from_secs(1)) / 4
}

/// How long the bucket may take to confirm the guard is cut off, once its
/// standbys are silent (a healthy S3 answers a HEAD in tens of milliseconds).
const CUT_OFF_PROBE: Duration = Duration::from_millis(500);

/// What one look of the guard concluded and did.
#[derive(Debug)]
pub struct GuardLooked {
    pub verdict: GuardVerdict,
    /// The look's figures, for the log line.
    pub look: GuardLook,
}

impl<'a> Guard<'a> {
    pub async fn new(desired: &'a Desired, systems: &'a Systems) -> Result<Self, ProviderError> {
        let watcher = super::Watcher::new(desired, systems).await?;
        if desired.plan.primary.postgres.is_none() {
            return Err(ProviderError::new(
                "watch --guard",
                "the guard fences the primary over SQL: the plan file needs primary.postgres",
            ));
        }
        Ok(Guard {
            desired,
            systems,
            failover: watcher.failover,
            store: watcher.store,
            key: watcher.key,
            me: watcher.me,
            session: None,
            started_at: now_unix(),
            last_renewed: None,
            fenced_by_me: false,
            replies_seen: HashMap::new(),
        })
    }

    /// One look: the server, its standbys, the bucket; then fence, lift the
    /// fence or leave it.
    pub async fn look(&mut self) -> Result<GuardLooked, ProviderError> {
        let limit = self.failover.check_every.std().max(Duration::from_secs(1));
        let info = self
            .desired
            .plan
            .primary
            .postgres
            .clone()
            .expect("checked in new");
        if self.session.is_none() {
            let opened =
                tokio::time::timeout(limit, Session::open("primary", &info, &self.systems.pg))
                    .await
                    .map_err(|_| {
                        ProviderError::new("postgres.primary", "no answer in time").unreachable()
                    })?;
            self.session = Some(opened?);
        }
        let session = self.session.as_ref().expect("opened above");
        let server = tokio::time::timeout(limit, async {
            tokio::try_join!(pg_role::writable(session), pg_role::replies(session))
        })
        .await
        .unwrap_or_else(|_| Err(ProviderError::new("postgres.primary", "no answer in time")));
        let (writable, replies) = match server {
            Ok(read) => read,
            Err(e) => {
                // Reconnect next look; a server that does not answer its own
                // guard takes no writes from anyone else either.
                self.session = None;
                return Err(e);
            }
        };
        let planned: Vec<&str> = self
            .desired
            .plan
            .standbys
            .iter()
            .filter(|s| s.postgres.is_some() && s.rds.is_none())
            .map(|s| s.name.as_str())
            .collect();
        let now = Instant::now();
        let streaming = planned
            .iter()
            .filter(|name| {
                replies.iter().any(|r| {
                    let limit = if r.owes {
                        STANDBY_SILENCE_OWED
                    } else {
                        STANDBY_SILENCE
                    };
                    r.application_name.as_str() == **name
                        && r.state == "streaming"
                        && self.silent_for(&r.application_name, r.reply_time, now) < limit
                })
            })
            .count();
        self.replies_seen
            .retain(|app, _| replies.iter().any(|r| r.application_name == *app));
        let renew_every = (self.failover.guard_lease_time().as_secs_f64() / 3.0)
            .max(self.failover.check_every.as_secs_f64());
        let due = self
            .last_renewed
            .is_none_or(|at| at.elapsed().as_secs_f64() >= renew_every);
        let silent = writable && streaming < planned.len();
        let (bucket_answers, failed_over) = if due || self.fenced_by_me {
            // With the standbys silent the renewal is also the probe; else
            // at most a second, so a cut during a renewal does not hold the
            // next look back for long.
            let limit = if silent {
                CUT_OFF_PROBE
            } else {
                limit.min(Duration::from_secs(1))
            };
            self.touch_bucket(true, limit).await
        } else if silent {
            self.touch_bucket(false, CUT_OFF_PROBE).await
        } else {
            (true, None)
        };
        let look = GuardLook {
            writable,
            standbys_streaming: streaming,
            standbys: planned.len(),
            bucket_answers,
            unrenewed_for: self
                .last_renewed
                .map_or(f64::MAX, |at| at.elapsed().as_secs_f64()),
            failed_over,
            fenced_by_me: self.fenced_by_me,
        };
        let verdict = guard_decide(&look, &self.failover);
        match &verdict {
            GuardVerdict::Fence(_) => {
                pg_role::fence("primary", &info, &self.systems.pg).await?;
                self.fenced_by_me = true;
            }
            GuardVerdict::Unfence(_) => {
                pg_role::unfence("primary", &info, &self.systems.pg).await?;
                self.fenced_by_me = false;
            }
            _ => {}
        }
        Ok(GuardLooked { verdict, look })
    }

    /// How long (seconds, on this guard's clock) `app`'s reply time has
    /// stood still; a value seen for the first time counts as just heard.
    fn silent_for(&mut self, app: &str, reply: Option<f64>, now: Instant) -> f64 {
        let seen = self
            .replies_seen
            .entry(app.to_string())
            .or_insert((reply, now));
        if seen.0 != reply {
            *seen = (reply, now);
        }
        if reply.is_none() {
            return f64::MAX;
        }
        now.duration_since(seen.1).as_secs_f64()
    }

    /// Stopped on purpose (SIGTERM): the guard lease is removed, not left to
    /// lapse — a lapsed lease tells a watcher the old primary is fenced or
    /// gone, which a stopped guard cannot promise. Without it a watcher
    /// refuses to fail over (nothing can fence) until the guard is back.
    pub async fn release(&self) -> Result<(), ProviderError> {
        let me = self.me.clone();
        lease::update(&self.store, &self.key, self.desired.cluster(), |leases| {
            if leases.guard.as_ref().is_some_and(|g| g.holder == me) {
                leases.guard = None;
                true
            } else {
                false
            }
        })
        .await
        .map(|_| ())
    }

    /// Renews the guard lease when `renew`, else only checks the bucket
    /// answers; bounded by `limit`. Returns whether it answered and, from
    /// the lease object, a failover started or done since this guard began.
    async fn touch_bucket(&mut self, renew: bool, limit: Duration) -> (bool, Option<String>) {
        let me = self.me.clone();
        let seconds = self.failover.guard_lease_time().as_secs();
        let started_at = self.started_at;
        let cluster = self.desired.cluster().to_string();
        let touched = tokio::time::timeout(limit, async {
            if renew {
                lease::update(&self.store, &self.key, &cluster, |leases| {
                    // One guard a cluster (beside its primary): it takes the
                    // slot whoever held it before (a guard restarted).
                    lease::take_or_renew(&mut leases.guard, &me, seconds, f64::MAX)
                })
                .await
                .map(Some)
            } else {
                self.store.head(&self.key).await.map(|_| None)
            }
        })
        .await;
        match touched {
            Ok(Ok(leases)) => {
                if renew {
                    self.last_renewed = Some(Instant::now());
                }
                let failed_over = leases.and_then(|l| {
                    l.failing_over_to.clone().or_else(|| {
                        l.failed_over_at
                            .filter(|at| at.secs() >= started_at)
                            .and(l.failed_over_to.clone())
                    })
                });
                (true, failed_over)
            }
            _ => (false, None),
        }
    }
}
