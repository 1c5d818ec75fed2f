//! The watcher's decision, pure: from one look at a cluster (and the plan's
//! `failover` section), is the primary lost, and may this watcher fail over?
//!
//! The primary is lost only when all hold:
//! (a) it has not answered for `after`, by consecutive probes;
//! (b) no standby that answers still hears it: each standby's own WAL
//!     receiver is a witness, so a watcher that lost only its own route to
//!     the primary never fails over a healthy one. A cut link sends no reset,
//!     so pgdr bounds how long a receiver trusts a silent primary
//!     (`wal_receiver_timeout`, half of `after`, set by apply) — by the time
//!     `after` has passed, a witness that still hears the primary really does;
//! (c) the chosen standby passes the lag guard;
//! (d) the plan file opts in (`automatic: true`);
//! (e) no automatic failover ran within `cooldown`; never back automatically.
//!
//! And it acts only when the old primary is fenced before the promotion: by
//! `fence_command`, or because the guard's lease has gone unrenewed for its
//! length plus a margin (the guard fences its own server before its lease
//! runs out when it is cut off). Only the holder of the watcher lease acts.

use crate::spec::Failover;
use crate::state::watch::WatchSeen;

/// How the old primary is known to take no writes before the promotion.
#[derive(Debug, Clone, PartialEq)]
pub enum FenceBy {
    /// `fence_command` runs first; its exit 0 is the proof.
    Command,
    /// The guard's lease went unrenewed this long (seconds): the guard has
    /// fenced its server, or the host is gone.
    GuardLeaseExpired(f64),
}

/// What the watcher does.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The primary answers and takes writes.
    Healthy,
    /// Something is off but not (yet) a lost primary: says what.
    Watching(String),
    /// The primary is lost, and pgdr does not fail over: says why. `page`:
    /// a person must act now (run `notify_command`).
    Refuse { why: String, page: bool },
    /// Fail over to this standby, the old primary fenced so.
    FailOver { to: String, fence: FenceBy },
    /// Finish the failover a watcher started (it stopped half way): the
    /// steps find what is done and do the rest.
    Resume { to: String },
}

impl Verdict {
    /// The word `status` and the lease show.
    /// Whether the watcher acts on it (fails over, or finishes a failover).
    pub fn acts(&self) -> bool {
        matches!(self, Verdict::FailOver { .. } | Verdict::Resume { .. })
    }

    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Watching(_) => "watching",
            Verdict::Refuse { .. } => "refused",
            Verdict::FailOver { .. } | Verdict::Resume { .. } => "failing over",
        }
    }
}

/// How much longer than its length a guard lease must stay unrenewed before
/// it counts as expired (and how much before its end the guard fences when
/// it cannot renew): two checks, at most half the lease, so a guard that
/// renews late (a slow bucket) is not mistaken for a gone one and fences
/// well before a watcher may act.
pub fn guard_margin(failover: &Failover) -> f64 {
    (2.0 * failover.check_every.as_secs_f64()).min(failover.guard_lease_time().as_secs_f64() / 2.0)
}

pub fn decide(seen: &WatchSeen, failover: &Failover) -> Verdict {
    if let (Some(to), Ok(())) = (&seen.unfinished, &seen.lease) {
        return Verdict::Resume { to: to.clone() };
    }
    if let Some(writer) = &seen.failed_over {
        return Verdict::Watching(format!(
            "{writer} accepts writes: a failover happened. pgdr never fails back by itself; update the plan file to the new roles (`pgdr failover --write-plan` writes it)"
        ));
    }
    if seen.primary_answers {
        return if seen.primary_writable {
            Verdict::Healthy
        } else {
            Verdict::Watching(
                "the primary answers but takes no writes (in recovery or fenced)".into(),
            )
        };
    }
    let after = failover.after.as_secs_f64();
    let down = seen.primary_down_for.unwrap_or(0.0);
    if down < after {
        return Verdict::Watching(format!(
            "the primary has not answered for {down:.0}s; it is lost after {}",
            failover.after
        ));
    }
    // (b) a witness that still hears the primary: the watcher's route is cut.
    if let Some(w) = seen
        .witnesses
        .iter()
        .find(|w| w.reachable && w.hears_primary)
    {
        return Verdict::Watching(format!(
            "the primary does not answer this watcher, but standby `{}` still receives WAL from it ({}): only this watcher's route is cut; no failover",
            w.name, w.said
        ));
    }
    let lost = format!("the primary has not answered for {down:.0}s");
    if !seen.witnesses.iter().any(|w| w.reachable) {
        return Verdict::Refuse {
            why: format!(
                "{lost}, and no standby answers either: nothing can be promoted from here"
            ),
            page: true,
        };
    }
    if !failover.automatic {
        return Verdict::Refuse {
            why: format!("{lost}; automatic failover is off (failover.automatic): run `pgdr failover PLAN_FILE` to promote a standby"),
            page: true,
        };
    }
    if let Err(holder) = &seen.lease {
        return Verdict::Watching(format!(
            "{lost}; another watcher holds the lease ({holder}) and acts"
        ));
    }
    if let Some(age) = seen
        .last_automatic_age
        .filter(|age| *age < failover.cooldown.as_secs())
    {
        return Verdict::Refuse {
            why: format!(
                "{lost}; an automatic failover ran {age}s ago, within failover.cooldown ({}): a second one needs a person (`pgdr failover`)",
                failover.cooldown
            ),
            page: true,
        };
    }
    let to = match &seen.candidate {
        None => {
            return Verdict::Refuse {
                why: format!("{lost}; no standby can take over"),
                page: true,
            }
        }
        Some((name, Err(why))) => {
            return Verdict::Refuse {
                why: format!("{lost}; standby `{name}` is refused by the lag guard: {why}"),
                page: true,
            }
        }
        Some((name, Ok(_))) => name.clone(),
    };
    if seen.fence_command {
        return Verdict::FailOver {
            to,
            fence: FenceBy::Command,
        };
    }
    match seen.guard {
        Some(guard) if guard.unchanged_for > guard.seconds as f64 + guard_margin(failover) => {
            Verdict::FailOver {
                to,
                fence: FenceBy::GuardLeaseExpired(guard.unchanged_for),
            }
        }
        Some(guard) => Verdict::Watching(format!(
            "{lost}; the guard's lease was renewed {:.0}s ago: waiting until it has lapsed ({}s and a margin) — then the guard has fenced the old primary, or is gone with it",
            guard.unchanged_for, guard.seconds
        )),
        None => Verdict::Refuse {
            why: format!("{lost}, and nothing can fence it: no fence_command, and no guard lease (failover.guard). Promoting now could leave two primaries taking writes; a person must check the old primary is down, then run `pgdr failover`"),
            page: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Duration;
    use crate::state::watch::{GuardSeen, Witness};

    fn failover() -> Failover {
        Failover {
            automatic: true,
            after: Duration::from_secs(30),
            check_every: Duration::from_secs(2),
            fence_command: None,
            guard: true,
            cooldown: Duration::from_secs(3600),
            notify_command: None,
        }
    }

    fn witness(name: &str, reachable: bool, hears: bool) -> Witness {
        Witness {
            name: name.into(),
            reachable,
            hears_primary: hears,
            said: "streaming".into(),
        }
    }

    /// One condition of [`lost`] taken away.
    type Change = Box<dyn Fn(&mut WatchSeen, &mut Failover)>;

    /// The primary gone for 40s, the standby up and no longer hearing it,
    /// the lag guard passing, the guard's lease lapsed, this watcher holding
    /// the lease: every condition for a failover.
    fn lost() -> WatchSeen {
        WatchSeen {
            primary_answers: false,
            primary_writable: false,
            primary_down_for: Some(40.0),
            witnesses: vec![witness("b", true, false)],
            failed_over: None,
            candidate: Some(("b".into(), Ok("0.1s behind".into()))),
            lease: Ok(()),
            last_automatic_age: None,
            guard: Some(GuardSeen {
                unchanged_for: 40.0,
                seconds: 30,
            }),
            fence_command: false,
            unfinished: None,
        }
    }

    #[test]
    fn a_failover_needs_every_condition_and_names_what_is_missing() {
        let f = failover();
        assert_eq!(
            decide(&lost(), &f),
            Verdict::FailOver {
                to: "b".into(),
                fence: FenceBy::GuardLeaseExpired(40.0)
            }
        );
        // Each condition taken away in turn, and what the watcher says then.
        let cases: Vec<(&str, Change, &str)> = vec![
            (
                "answers",
                Box::new(|s, _| {
                    s.primary_answers = true;
                    s.primary_writable = true;
                }),
                "healthy",
            ),
            (
                "not long enough",
                Box::new(|s, _| s.primary_down_for = Some(29.0)),
                "it is lost after 30s",
            ),
            (
                "a witness hears it",
                Box::new(|s, _| s.witnesses.push(witness("c", true, true))),
                "only this watcher's route is cut",
            ),
            (
                "no standby answers",
                Box::new(|s, _| s.witnesses = vec![witness("b", false, false)]),
                "no standby answers",
            ),
            (
                "automatic off",
                Box::new(|_, f| f.automatic = false),
                "automatic failover is off",
            ),
            (
                "another watcher",
                Box::new(|s, _| s.lease = Err("w2:42".into())),
                "another watcher holds the lease (w2:42)",
            ),
            (
                "cooldown",
                Box::new(|s, _| s.last_automatic_age = Some(600)),
                "within failover.cooldown",
            ),
            (
                "lag guard",
                Box::new(|s, _| s.candidate = Some(("b".into(), Err("45s behind".into())))),
                "refused by the lag guard: 45s behind",
            ),
            (
                "guard renewed lately",
                Box::new(|s, _| {
                    s.guard = Some(GuardSeen {
                        unchanged_for: 33.0,
                        seconds: 30,
                    })
                }),
                "waiting until it has lapsed",
            ),
            (
                "nothing can fence",
                Box::new(|s, _| s.guard = None),
                "nothing can fence it",
            ),
            (
                "failed over already",
                Box::new(|s, _| s.failed_over = Some("standby b".into())),
                "never fails back by itself",
            ),
        ];
        for (what, change, says) in cases {
            let (mut seen, mut f) = (lost(), failover());
            change(&mut seen, &mut f);
            let verdict = decide(&seen, &f);
            assert!(
                !matches!(verdict, Verdict::FailOver { .. }),
                "{what}: {verdict:?}"
            );
            let text = match &verdict {
                Verdict::Healthy => "healthy".to_string(),
                Verdict::Watching(t) => t.clone(),
                Verdict::Refuse { why, .. } => why.clone(),
                Verdict::FailOver { .. } | Verdict::Resume { .. } => unreachable!(),
            };
            assert!(text.contains(says), "{what}: {text}");
        }
        // A fence_command replaces the guard.
        let mut seen = lost();
        seen.guard = None;
        seen.fence_command = true;
        assert_eq!(
            decide(&seen, &f),
            Verdict::FailOver {
                to: "b".into(),
                fence: FenceBy::Command
            }
        );
        // A failover left half way by a watcher that died is finished by the
        // lease's next holder, whatever the servers look like now.
        let mut seen = lost();
        seen.failed_over = Some("standby b".into());
        seen.unfinished = Some("b".into());
        assert_eq!(decide(&seen, &f), Verdict::Resume { to: "b".into() });
        seen.lease = Err("w1:7".into());
        assert!(matches!(decide(&seen, &f), Verdict::Watching(_)));
        // A witness that does not answer is no witness either way.
        let mut seen = lost();
        seen.witnesses.push(witness("c", false, true));
        assert!(matches!(decide(&seen, &f), Verdict::FailOver { .. }));
    }

    #[test]
    fn refusals_that_need_a_person_page_and_waiting_does_not() {
        let f = failover();
        let mut seen = lost();
        seen.candidate = Some(("b".into(), Err("behind".into())));
        assert!(matches!(
            decide(&seen, &f),
            Verdict::Refuse { page: true, .. }
        ));
        let mut seen = lost();
        seen.primary_down_for = Some(3.0);
        assert!(matches!(decide(&seen, &f), Verdict::Watching(_)));
    }
}

/// What the guard beside the primary saw in one look.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardLook {
    /// Its server takes writes now.
    pub writable: bool,
    /// How many of the plan's standbys stream from it and answered within
    /// [`STANDBY_SILENCE`]; and how many the plan lists.
    pub standbys_streaming: usize,
    pub standbys: usize,
    /// The bucket answered this look.
    pub bucket_answers: bool,
    /// Seconds since the guard last renewed its lease.
    pub unrenewed_for: f64,
    /// A watcher has started or finished a failover since this guard began:
    /// its server is the old primary.
    pub failed_over: Option<String>,
    /// This guard fenced its server and may lift it again.
    pub fenced_by_me: bool,
}

/// A standby that has not answered its primary this long (seconds) is gone:
/// standbys answer at least every second (`wal_receiver_status_interval`,
/// set by apply), and at every WAL write when busy. Silence alone fences
/// nothing: the bucket must also fail to answer.
pub const STANDBY_SILENCE: f64 = 1.5;

/// The same for a standby that owes an answer: the primary has WAL it has not
/// written. A connected standby answers as soon as it writes what it
/// received, however far behind; silence with WAL owed means the link is
/// gone, and that is exactly when writes are being acknowledged that the
/// standby will never have — so the guard judges it four times sooner.
pub const STANDBY_SILENCE_OWED: f64 = 0.5;

#[derive(Debug, Clone, PartialEq)]
pub enum GuardVerdict {
    Healthy,
    /// Fence the server (it takes writes): says why.
    Fence(String),
    /// The guard fenced it, and it is back in touch: lift the fence.
    Unfence(String),
    /// Leave it as it is: says why.
    Hold(String),
}

/// The guard's decision, pure. It fences its own server when it is cut off:
/// at once when its standbys and the bucket vanish together (a partition —
/// no need to wait for its lease to run out), and when it cannot renew its
/// lease within the lease's length less a margin — unless every standby
/// still streams from it (then nothing can be promoted, and a bucket outage
/// alone must not take a healthy cluster down). After a failover it keeps
/// the old primary fenced. It lifts only a fence it set, once back in touch
/// and with no failover started.
pub fn guard_decide(look: &GuardLook, failover: &Failover) -> GuardVerdict {
    if let Some(to) = &look.failed_over {
        return if look.writable {
            GuardVerdict::Fence(format!(
                "a watcher failed over to standby `{to}`: this server is the old primary and stays fenced"
            ))
        } else {
            GuardVerdict::Hold(format!(
                "failed over to standby `{to}`; this server stays fenced"
            ))
        };
    }
    let all_streaming = look.standbys > 0 && look.standbys_streaming == look.standbys;
    let cut_off_now = look.standbys_streaming == 0 && !look.bucket_answers;
    let lapsing = look.unrenewed_for
        > (failover.guard_lease_time().as_secs_f64() - guard_margin(failover)).max(0.0);
    if look.writable {
        if look.standbys == 0 {
            // Nothing can be promoted: fencing would only stop the one server.
            return GuardVerdict::Healthy;
        }
        if cut_off_now {
            return GuardVerdict::Fence(
                "cut off from every standby and from the bucket: a watcher may promote a standby now".into(),
            );
        }
        if lapsing && !all_streaming {
            return GuardVerdict::Fence(format!(
                "the lease has not been renewed for {:.0}s and not every standby streams from this server: before the lease lapses and a watcher promotes",
                look.unrenewed_for
            ));
        }
        return GuardVerdict::Healthy;
    }
    if look.fenced_by_me && look.bucket_answers && !lapsing && look.standbys_streaming > 0 {
        return GuardVerdict::Unfence(
            "back in touch with the bucket and its standbys, and no failover started".into(),
        );
    }
    GuardVerdict::Hold("this server takes no writes".into())
}

#[cfg(test)]
mod guard_tests {
    use super::*;
    use crate::spec::Duration;

    fn failover() -> Failover {
        Failover {
            automatic: true,
            after: Duration::from_secs(10),
            check_every: Duration::from_secs(1),
            fence_command: None,
            guard: true,
            cooldown: Duration::from_secs(3600),
            notify_command: None,
        }
    }

    fn healthy() -> GuardLook {
        GuardLook {
            writable: true,
            standbys_streaming: 2,
            standbys: 2,
            bucket_answers: true,
            unrenewed_for: 1.0,
            failed_over: None,
            fenced_by_me: false,
        }
    }

    #[test]
    fn the_guard_fences_when_cut_off_and_not_for_a_bucket_outage_alone() {
        let f = failover();
        assert_eq!(guard_decide(&healthy(), &f), GuardVerdict::Healthy);
        // A partition: standbys and bucket gone together, fenced at once.
        let cut = GuardLook {
            standbys_streaming: 0,
            bucket_answers: false,
            unrenewed_for: 2.0,
            ..healthy()
        };
        assert!(
            matches!(guard_decide(&cut, &f), GuardVerdict::Fence(why) if why.contains("cut off"))
        );
        // The bucket down for long, every standby streaming: no fence.
        let s3_down = GuardLook {
            bucket_answers: false,
            unrenewed_for: 60.0,
            ..healthy()
        };
        assert_eq!(guard_decide(&s3_down, &f), GuardVerdict::Healthy);
        // …but with a standby gone, fenced before the guard's lease lapses
        // (half of `after`, 5s, less a margin of two checks: after 3s).
        assert_eq!(f.guard_lease_time().as_secs(), 5);
        let one_gone = GuardLook {
            standbys_streaming: 1,
            ..s3_down.clone()
        };
        assert!(matches!(
            guard_decide(&one_gone, &f),
            GuardVerdict::Fence(_)
        ));
        let early = GuardLook {
            unrenewed_for: 2.5,
            ..one_gone.clone()
        };
        assert_eq!(guard_decide(&early, &f), GuardVerdict::Healthy);
        // Standbys gone but the bucket answers (and the lease is renewed): no fence.
        let standbys_gone = GuardLook {
            standbys_streaming: 0,
            ..healthy()
        };
        assert_eq!(guard_decide(&standbys_gone, &f), GuardVerdict::Healthy);
    }

    #[test]
    fn after_a_failover_the_old_primary_stays_fenced_and_only_its_own_fence_is_lifted() {
        let f = failover();
        let after = GuardLook {
            failed_over: Some("b".into()),
            ..healthy()
        };
        assert!(matches!(guard_decide(&after, &f), GuardVerdict::Fence(_)));
        let after_fenced = GuardLook {
            writable: false,
            fenced_by_me: true,
            ..after
        };
        assert!(matches!(
            guard_decide(&after_fenced, &f),
            GuardVerdict::Hold(_)
        ));
        let back = GuardLook {
            writable: false,
            fenced_by_me: true,
            ..healthy()
        };
        assert!(matches!(guard_decide(&back, &f), GuardVerdict::Unfence(_)));
        let not_mine = GuardLook {
            fenced_by_me: false,
            ..back.clone()
        };
        assert!(matches!(guard_decide(&not_mine, &f), GuardVerdict::Hold(_)));
        let still_cut = GuardLook {
            bucket_answers: false,
            ..back
        };
        assert!(matches!(
            guard_decide(&still_cut, &f),
            GuardVerdict::Hold(_)
        ));
    }
}
