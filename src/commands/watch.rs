//! `pgdr watch PATH [--once] [--guard] [--write-plan] [--metrics-address ADDR]`: watch every cluster of
//! a plan file or fleet folder (or, with `--guard`, guard its primary), one
//! line on stderr per conclusion that changed. In the foreground until
//! SIGTERM or Ctrl-C (a systemd service, a Kubernetes Deployment), which ends
//! it cleanly: the watcher lease is given up, so another watcher takes over
//! at once. `--once` looks once (cron): exit 0 healthy, 2 acted or found
//! something, 1 could not look.

use super::{load_all, Outcome};
use crate::cli::WatchArgs;
use crate::execute::watch::guard::Guard;
use crate::execute::watch::{describe, Watcher};
use crate::plan::watch::{GuardVerdict, Verdict};
use crate::providers::Systems;
use crate::settings::Settings;
use crate::spec::time::log_stamp;
use crate::spec::Desired;
use anyhow::Context;

pub async fn run(args: &WatchArgs, settings: &Settings) -> anyhow::Result<Outcome> {
    let clusters = load_all(&args.path)?;
    let systems = Systems::new(settings);
    let listener = match args.metrics_address {
        Some(address) if !args.once => Some(super::serve_metrics::bind(address).await?),
        _ => None,
    };
    // SIGTERM or Ctrl-C: every loop ends at its next wait (a look in progress
    // finishes first: a failover is never cut half way by the signal).
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let runs = clusters.iter().map(|desired| {
        let stop = stop.clone();
        let systems = &systems;
        async move {
            if args.guard {
                guard(desired, systems, args.once, stop).await
            } else {
                watch(desired, systems, args, stop).await
            }
        }
    });
    let signal = async {
        let signal = super::interrupted().await;
        eprintln!("{} pgdr watch: {signal}: stopping", log_stamp());
        let _ = stop_tx.send(true);
        std::future::pending::<()>().await;
    };
    let copiers = clusters
        .iter()
        .filter(|d| {
            !args.guard
                && !args.once
                && d.plan
                    .archive
                    .as_ref()
                    .is_some_and(|a| !a.copies.is_empty())
        })
        .map(|desired| copier(desired, &systems, settings, stop.clone()));
    let copiers = async {
        futures_util::future::join_all(copiers).await;
        std::future::pending::<()>().await;
    };
    let metrics = async {
        match listener {
            Some(listener) => super::serve_metrics::serve(listener, &clusters, &systems).await,
            None => std::future::pending().await,
        }
    };
    let ended = tokio::select! {
        ended = futures_util::future::join_all(runs) => ended,
        _ = signal => unreachable!("the signal task never ends"),
        _ = metrics => unreachable!("the metrics server never ends"),
        _ = copiers => unreachable!("the copiers never end"),
    };
    let mut found = false;
    for (desired, result) in clusters.iter().zip(ended) {
        match result {
            Ok(quiet) => found |= !quiet,
            Err(e) => {
                eprintln!("pgdr watch {}: could not look: {e:#}", desired.cluster());
                return Err(anyhow::anyhow!(
                    "pgdr watch could not look at every cluster"
                ));
            }
        }
    }
    Ok(if found {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}

/// Watches one cluster. With `--once`: one look; `Ok(true)` when it was
/// healthy. Without: until the process ends.
async fn watch(
    desired: &Desired,
    systems: &Systems,
    args: &WatchArgs,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<bool> {
    let mut watcher = Watcher::new(desired, systems)
        .await
        .with_context(|| format!("watching {}", desired.cluster()))?;
    if args.once {
        watcher = watcher.looking_once();
    }
    watcher.write_plan = args.write_plan;
    watcher.on_acting = |cluster, verdict| {
        eprintln!(
            "{} pgdr watch {cluster}: {}: {}",
            log_stamp(),
            verdict.word(),
            describe(verdict)
        )
    };
    watcher.on_step = |record| {
        eprintln!(
            "{} {}",
            log_stamp(),
            crate::render::role_change::step_line(record)
        )
    };
    let every = watcher.failover.check_every.std();
    let cluster = desired.cluster().to_string();
    let mut last = String::new();
    loop {
        let started = std::time::Instant::now();
        let looked = watcher.look().await;
        let quiet = match &looked {
            Ok(look) => {
                let line = format!("{}: {}", look.verdict.word(), describe(&look.verdict));
                // An action's verdict was said before it began.
                if look.verdict.acts() {
                    last = line;
                } else if line != last || args.once {
                    eprintln!("{} pgdr watch {cluster}: {line}", log_stamp());
                    last = line;
                }
                if let Some((outcome, journal)) = &look.acted {
                    eprintln!(
                        "{} pgdr watch {cluster}: failover {outcome}; journal {journal}",
                        log_stamp()
                    );
                }
                look.verdict == Verdict::Healthy && look.acted.is_none()
            }
            Err(e) if args.once => return Err(anyhow::anyhow!("{e}")),
            Err(e) => {
                // A look that failed (the bucket, a server) is no verdict:
                // said, and the next look tries again.
                let line = format!("could not look: {e}");
                if line != last {
                    eprintln!("{} pgdr watch {cluster}: {line}", log_stamp());
                    last = line;
                }
                false
            }
        };
        if args.once {
            return Ok(quiet);
        }
        let mut pause = every.saturating_sub(started.elapsed());
        if let Some(decisive) = looked.as_ref().ok().and_then(|l| l.decisive_in) {
            pause = pause.min(decisive);
        }
        if stopped(&mut stop, pause).await {
            // Given up at once: another watcher need not wait for it to lapse.
            if let Err(e) = watcher.release().await {
                eprintln!(
                    "pgdr watch {cluster}: the lease was not given up ({e}); it lapses by itself"
                );
            }
            return Ok(true);
        }
    }
}

/// How often the watcher looks at the archive's copies.
const COPY_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Keeps the archive's copies current beside the watch: every
/// [`COPY_EVERY`] a look at what each copy lacks (no lock, nothing written),
/// and `pgdr copy`'s catch-up when one lacks something (what wal-push could
/// not store while the copy's region was unreachable, and new backups).
async fn copier(
    desired: &Desired,
    systems: &Systems,
    settings: &Settings,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let cluster = desired.cluster();
    loop {
        let lacking = super::copy::copy_all(desired, systems, settings, true, 8).await;
        let lacking = match lacking {
            Ok(reports) => reports
                .iter()
                .any(|(_, r)| r.as_ref().map_or(true, |r| r.found)),
            Err(e) => {
                eprintln!(
                    "{} pgdr watch {cluster}: copies not read: {e:#}",
                    log_stamp()
                );
                false
            }
        };
        if lacking {
            match super::copy::copy_all(desired, systems, settings, false, 8).await {
                Ok(reports) => {
                    for (name, report) in reports {
                        match report {
                            Ok(r) => eprint!("{} pgdr watch {cluster}: {}", log_stamp(), r.text),
                            Err(e) => eprintln!(
                                "{} pgdr watch {cluster}: copy {name} not caught up: {e:#}",
                                log_stamp()
                            ),
                        }
                    }
                }
                Err(e) => eprintln!("{} pgdr watch {cluster}: copy: {e:#}", log_stamp()),
            }
        }
        if stopped(&mut stop, COPY_EVERY).await {
            return;
        }
    }
}

/// Waits `pause`, or until told to stop: whether to stop.
async fn stopped(
    stop: &mut tokio::sync::watch::Receiver<bool>,
    pause: std::time::Duration,
) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(pause) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// Guards one cluster's primary. With `--once`: one look.
async fn guard(
    desired: &Desired,
    systems: &Systems,
    once: bool,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<bool> {
    let mut guard = Guard::new(desired, systems)
        .await
        .with_context(|| format!("guarding {}", desired.cluster()))?;
    let every = crate::execute::watch::guard::guard_every(&guard.failover);
    let cluster = desired.cluster().to_string();
    let mut last = String::new();
    loop {
        let started = std::time::Instant::now();
        let looked = guard.look().await;
        let (line, quiet) = match &looked {
            Ok(looked) => (
                match &looked.verdict {
                    GuardVerdict::Healthy => format!(
                        "healthy: {}/{} standbys answer, the bucket {}",
                        looked.look.standbys_streaming,
                        looked.look.standbys,
                        if looked.look.bucket_answers {
                            "answers"
                        } else {
                            "does not answer"
                        }
                    ),
                    GuardVerdict::Fence(why) => format!("fenced the primary: {why}"),
                    GuardVerdict::Unfence(why) => format!("lifted its fence: {why}"),
                    GuardVerdict::Hold(why) => format!("holding: {why}"),
                },
                looked.verdict == GuardVerdict::Healthy,
            ),
            Err(e) if once => return Err(anyhow::anyhow!("{e}")),
            Err(e) => (format!("could not look: {e}"), false),
        };
        // The healthy line carries counts that move: say it when the state changes.
        let key = line.split(':').next().unwrap_or_default().to_string() + &line;
        if key != last || once {
            eprintln!("{} pgdr watch --guard {cluster}: {line}", log_stamp());
            last = key;
        }
        if once {
            return Ok(quiet);
        }
        if stopped(&mut stop, every.saturating_sub(started.elapsed())).await {
            if let Err(e) = guard.release().await {
                eprintln!("pgdr watch --guard {cluster}: the guard lease was not removed ({e}); a watcher may take its lapse for a fenced primary");
            }
            return Ok(true);
        }
    }
}
