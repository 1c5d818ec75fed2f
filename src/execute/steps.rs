//! Ordered steps: the executor shape for recovery sequences (switchover,
//! failover, restore drills), where a step must not run after the one before
//! it failed, and a re-run after a crash must resume, not repeat.
//!
//! Each step is *observe → decide → act → record*:
//! - `observe` reads what the step needs (I/O);
//! - `decide` is a pure function of what was observed: already done, needed,
//!   or refused (so tests drive it with hand-made state, like the planner);
//! - `act` performs the step; the runner then observes again and requires the
//!   step to be done, so an act that did not take effect is a failure, not a
//!   silent success;
//! - every step's outcome is recorded, and handed to the caller as it happens,
//!   so a journal can be written while the sequence runs.
//!
//! A step already done is skipped (its act never runs again): that is how a
//! second run after a crash resumes.

use futures_util::future::BoxFuture;
use std::future::Future;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// What a step's pure `decide` concluded from what it observed. `A` is what
/// `act` needs to do the step (a server's address, the record to write),
/// decided here, so `act` never has to find it again or assume it is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<A = ()> {
    /// Already in the state the step would bring about: skip it. Says why.
    Done(String),
    /// Needed: says what `act` will do, and hands it what it needs.
    Act(String, A),
    /// Must not go ahead (a lag guard, a fence that cannot be set): says why.
    /// The sequence stops here.
    Refuse(String),
    /// A check with nothing to act on passed (a lag guard): says what it measured.
    Passed(String),
}

/// One step of a sequence over a context `C` (connections, clients, the plan).
pub trait Step<C: Sync>: Send + Sync {
    /// What the step observes.
    type Seen: Send + Sync;
    /// What `act` is handed when `decide` says [`Decision::Act`].
    type Act: Send;
    /// Why observing or acting failed (its message goes to the journal).
    type Error: std::fmt::Display + Send;

    /// A short, stable name for logs and the journal: `fence-primary`.
    fn name(&self) -> &str;

    /// Whether the steps after it must not run when it does not succeed. A
    /// step that is not required (rejoining an old server) is recorded as it
    /// ended, and the sequence goes on.
    fn required(&self) -> bool {
        true
    }

    /// Reads what the decision needs.
    fn observe(&self, ctx: &C) -> impl Future<Output = Result<Self::Seen, Self::Error>> + Send;

    /// Pure: what to do, given what was observed.
    fn decide(&self, seen: &Self::Seen) -> Decision<Self::Act>;

    /// Makes the step happen, with what `decide` handed over.
    fn act(&self, ctx: &C, with: Self::Act)
        -> impl Future<Output = Result<(), Self::Error>> + Send;
}

pub use crate::state::journal::{StepOutcome, StepRecord};

/// An object-safe view of a [`Step`], so one sequence can hold steps whose
/// observations have different types.
pub trait DynStep<C: Sync>: Send + Sync {
    fn name(&self) -> &str;
    fn required(&self) -> bool;
    fn run<'a>(&'a self, ctx: &'a C) -> BoxFuture<'a, StepOutcome>;
}

impl<C: Sync, S: Step<C>> DynStep<C> for S {
    fn name(&self) -> &str {
        Step::name(self)
    }

    fn required(&self) -> bool {
        Step::required(self)
    }

    fn run<'a>(&'a self, ctx: &'a C) -> BoxFuture<'a, StepOutcome> {
        Box::pin(async move {
            let seen = match self.observe(ctx).await {
                Ok(seen) => seen,
                Err(e) => return StepOutcome::Failed(e.to_string()),
            };
            let (what, with) = match self.decide(&seen) {
                Decision::Done(why) => return StepOutcome::AlreadyDone(why),
                Decision::Refuse(why) => return StepOutcome::Refused(why),
                Decision::Passed(what) => return StepOutcome::Passed(what),
                Decision::Act(what, with) => (what, with),
            };
            tracing::info!(target: "pgdr::steps", step = Step::name(self), "{what}");
            if let Err(e) = self.act(ctx, with).await {
                return StepOutcome::Failed(e.to_string());
            }
            // Check after acting too: an act that did not take effect must not
            // let the next step run.
            match self.observe(ctx).await {
                Err(e) => StepOutcome::Failed(format!("acted, then could not check: {e}")),
                Ok(after) => match self.decide(&after) {
                    Decision::Done(_) | Decision::Passed(_) => StepOutcome::Done(what),
                    Decision::Act(still, _) | Decision::Refuse(still) => {
                        StepOutcome::Failed(format!("acted, but it did not take effect: {still}"))
                    }
                },
            }
        })
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs `steps` in order. Stops at the first required step that does not
/// succeed; the steps after it are recorded as [`StepOutcome::NotRun`]. `record` sees each
/// record as soon as its step ends (to write a journal as the sequence runs).
pub async fn run_steps<C: Sync>(
    ctx: &C,
    steps: &[&dyn DynStep<C>],
    mut record: impl FnMut(&StepRecord),
) -> Vec<StepRecord> {
    let mut records = Vec::with_capacity(steps.len());
    let mut stopped = false;
    for step in steps {
        let started_unix_ms = unix_ms();
        let started = Instant::now();
        let outcome = if stopped {
            StepOutcome::NotRun
        } else {
            step.run(ctx).await
        };
        stopped |= !outcome.succeeded() && step.required();
        let entry = StepRecord {
            step: step.name().to_string(),
            started_unix_ms,
            duration_ms: started.elapsed().as_millis() as u64,
            outcome,
        };
        tracing::info!(target: "pgdr::steps", step = %entry.step, ms = entry.duration_ms, outcome = ?entry.outcome, "step ended");
        record(&entry);
        records.push(entry);
    }
    records
}

/// Whether every step of a run succeeded.
pub fn all_succeeded(records: &[StepRecord]) -> bool {
    records.iter().all(|r| r.outcome.succeeded())
}

/// Whether every required step of a run succeeded (`records` from [`run_steps`]
/// over `steps`).
pub fn required_succeeded<C: Sync>(steps: &[&dyn DynStep<C>], records: &[StepRecord]) -> bool {
    steps
        .iter()
        .zip(records)
        .all(|(step, record)| record.outcome.succeeded() || !step.required())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ProviderError;
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    /// A world of named flags; each step sets one. `broken` flags ignore being
    /// set (an act without effect); `failing` flags make act return an error.
    #[derive(Default)]
    struct World {
        set: Mutex<BTreeSet<&'static str>>,
        acts: Mutex<Vec<&'static str>>,
        failing: BTreeSet<&'static str>,
        broken: BTreeSet<&'static str>,
        refuse: BTreeSet<&'static str>,
    }

    struct SetFlag(&'static str);

    impl Step<World> for SetFlag {
        type Seen = bool;
        type Act = ();
        type Error = ProviderError;
        fn name(&self) -> &str {
            self.0
        }
        async fn observe(&self, w: &World) -> Result<bool, ProviderError> {
            Ok(w.set.lock().unwrap().contains(self.0))
        }
        fn decide(&self, seen: &bool) -> Decision {
            if *seen {
                Decision::Done(format!("{} is set", self.0))
            } else if self.0.starts_with("guard") {
                Decision::Refuse(format!("{} refused", self.0))
            } else {
                Decision::Act(format!("set {}", self.0), ())
            }
        }
        async fn act(&self, w: &World, _: ()) -> Result<(), ProviderError> {
            w.acts.lock().unwrap().push(self.0);
            if w.failing.contains(self.0) {
                return Err(ProviderError::new(self.0, "boom"));
            }
            if !w.broken.contains(self.0) && !w.refuse.contains(self.0) {
                w.set.lock().unwrap().insert(self.0);
            }
            Ok(())
        }
    }

    fn run(world: &World, names: &[&'static str]) -> Vec<StepRecord> {
        let steps: Vec<SetFlag> = names.iter().map(|n| SetFlag(n)).collect();
        let dyns: Vec<&dyn DynStep<World>> =
            steps.iter().map(|s| s as &dyn DynStep<World>).collect();
        let mut seen = Vec::new();
        let records = futures_util::FutureExt::now_or_never(run_steps(world, &dyns, |r| {
            seen.push(r.step.clone())
        }))
        .expect("the test world never waits");
        assert_eq!(
            seen,
            names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            "every step is recorded as it ends, in order"
        );
        records
    }

    fn outcomes(records: &[StepRecord]) -> Vec<&StepOutcome> {
        records.iter().map(|r| &r.outcome).collect()
    }

    #[test]
    fn steps_run_in_order_and_each_is_checked_after_acting() {
        let world = World::default();
        let records = run(&world, &["a", "b", "c"]);
        assert!(all_succeeded(&records));
        assert_eq!(*world.acts.lock().unwrap(), vec!["a", "b", "c"]);
        assert_eq!(
            outcomes(&records),
            vec![
                &StepOutcome::Done("set a".into()),
                &StepOutcome::Done("set b".into()),
                &StepOutcome::Done("set c".into())
            ]
        );
    }

    #[test]
    fn a_failed_step_stops_the_sequence_and_a_rerun_resumes_without_repeating() {
        let mut world = World {
            failing: ["b"].into(),
            ..World::default()
        };
        let first = run(&world, &["a", "b", "c"]);
        assert!(!all_succeeded(&first));
        assert!(matches!(first[1].outcome, StepOutcome::Failed(ref m) if m.contains("boom")));
        assert_eq!(first[2].outcome, StepOutcome::NotRun);
        assert_eq!(*world.acts.lock().unwrap(), vec!["a", "b"], "c never ran");

        // The fault is gone; the second run skips `a` (done) and finishes.
        world.failing.clear();
        world.acts.lock().unwrap().clear();
        let second = run(&world, &["a", "b", "c"]);
        assert!(all_succeeded(&second));
        assert_eq!(
            second[0].outcome,
            StepOutcome::AlreadyDone("a is set".into())
        );
        assert_eq!(
            *world.acts.lock().unwrap(),
            vec!["b", "c"],
            "a is not repeated"
        );
    }

    #[test]
    fn an_act_without_effect_fails_instead_of_letting_the_next_step_run() {
        let world = World {
            broken: ["a"].into(),
            ..World::default()
        };
        let records = run(&world, &["a", "b"]);
        assert!(
            matches!(records[0].outcome, StepOutcome::Failed(ref m) if m.contains("did not take effect")),
            "{:?}",
            records[0].outcome
        );
        assert_eq!(records[1].outcome, StepOutcome::NotRun);
    }

    #[test]
    fn a_refusal_stops_the_sequence_without_acting() {
        let world = World::default();
        let records = run(&world, &["a", "guard-lag", "c"]);
        assert_eq!(
            records[1].outcome,
            StepOutcome::Refused("guard-lag refused".into())
        );
        assert_eq!(records[2].outcome, StepOutcome::NotRun);
        assert_eq!(*world.acts.lock().unwrap(), vec!["a"]);
    }

    #[test]
    fn records_serialise_for_a_journal() {
        let world = World::default();
        let records = run(&world, &["a"]);
        let json = serde_json::to_value(&records[0]).unwrap();
        assert_eq!(json["step"], "a");
        assert_eq!(json["outcome"], "done");
        assert_eq!(json["detail"], "set a");
        assert!(json["started_unix_ms"].as_u64().unwrap() > 1_600_000_000_000);
    }
}
