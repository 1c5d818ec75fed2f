//! `pgdr restore PLAN_FILE --to DIR [--target-time T | --target-lsn L |
//! --latest] [--backup ID]`: the chosen backup and the recovery configuration
//! written into an empty folder, ready for a plain `pg_ctl start`.

use super::{archive_at, load_cluster, out, Outcome};
use crate::cli::RestoreArgs;
use crate::execute::restore::{self, RestoreRequest};
use crate::observe::archive as catalog;
use crate::plan::recovery::restore::Target;
use crate::providers::storage::Store;
use crate::providers::Systems;
use crate::render;
use crate::settings::Settings;
use crate::spec::DEFAULT_S3_REGION;
use crate::state::wal::Lsn;
use anyhow::{anyhow, Context};
use std::io::IsTerminal;

/// The recovery target the flags ask for; `now` is seconds since the epoch.
pub fn target_of(time: Option<&str>, lsn: Option<&str>, now: i64) -> anyhow::Result<Target> {
    Ok(match (time, lsn) {
        (Some(t), _) => Target::Time(
            crate::spec::time::parse_target(t, now).map_err(|e| anyhow!("--target-time: {e}"))?,
        ),
        (_, Some(l)) => Target::Lsn(Lsn::parse(l).ok_or_else(|| {
            anyhow!("--target-lsn: `{l}` is not a WAL position; expected the form 0/9000138")
        })?),
        _ => Target::Latest,
    })
}

/// "about 2m 10s" from the last passed drill's rates, or why there is none.
pub fn estimate(
    drill: Option<&crate::state::drill::DrillReport>,
    backup_bytes: u64,
    wal_bytes: u64,
) -> String {
    let Some(drill) = drill else {
        return "no estimate: no drill has passed yet (`pgdr drill` measures the rates)".into();
    };
    match drill.rates() {
        (Some(restore_rate), replay_rate) => {
            let replay = replay_rate.map_or(0.0, |r| wal_bytes as f64 / r);
            let seconds = backup_bytes as f64 / restore_rate + replay;
            format!(
                "about {:.0}s (the drill of {} restored at {:.0} MB/s{})",
                seconds.ceil(),
                drill.started_at,
                restore_rate / 1e6,
                replay_rate
                    .map(|r| format!(" and replayed WAL at {:.0} MB/s", r / 1e6))
                    .unwrap_or_default()
            )
        }
        _ => "no estimate: the last drill recorded no rates".into(),
    }
}

pub async fn run(args: &RestoreArgs, settings: &Settings) -> anyhow::Result<Outcome> {
    let desired = load_cluster(&args.path, "restore")?;
    let super::ArchiveAt { url, region, .. } = archive_at(&desired, args.from_copy.as_deref())?;
    let now = crate::spec::time::now_unix();
    let target = target_of(args.target_time.as_deref(), args.target_lsn.as_deref(), now)?;
    // Refuse a folder in use before reading anything remote.
    if args.delta {
        restore::delta::check_target(&args.to)
            .with_context(|| format!("restore --delta into {}", args.to.display()))?;
    } else {
        restore::check_dir(&args.to)?;
    }
    let owner = restore::intended_owner(&args.to);
    let store = Store::s3(Systems::new(settings).aws.s3(&region).await, &url.bucket);
    let (chosen, drills) = tokio::join!(
        restore::choose_in_archive(
            &store,
            &url,
            &target,
            args.backup.as_deref(),
            now,
            args.accept_loss
        ),
        catalog::drills(&store, &url)
    );
    let chosen = chosen.with_context(|| format!("restore of {}", desired.cluster()))?;
    let drills = drills.unwrap_or_default();
    let b = &chosen.backup;
    let target = chosen.target.clone();
    if let Some(loss) = &chosen.accepted_loss {
        out(&format!("Loss accepted (--accept-loss): {loss}.\n"))?;
    }
    out(&render::archive::restoring(
        desired.cluster(),
        &args.to,
        &chosen,
        &estimate(
            drills.newest_ok.as_ref(),
            b.size_bytes,
            chosen.segments * b.wal_segment_size.bytes(),
        ),
    ))?;
    let pgdr = super::pgdr_for_restore(&desired)?;
    let request = RestoreRequest {
        url: &url,
        region: (region != DEFAULT_S3_REGION).then_some(region.as_str()),
        backup: b,
        chain: &chosen.chain,
        target: target.clone(),
        dir: &args.to,
        pgdr: &pgdr,
        wal_until: Some(chosen.wal_until()),
        accept_loss: chosen.accepted_loss.is_some(),
        delta: args.delta,
        extra_settings: &[],
        progress: std::io::stderr().is_terminal(),
    };
    let unpacked = restore::restore(&store, &request)
        .await
        .with_context(|| format!("restore of backup {} into {}", b.id, args.to.display()))?;
    if let Some(owner) = owner {
        restore::chown_tree(&args.to, owner)?;
    }
    let text = render::archive::restored(
        b,
        &args.to,
        &unpacked,
        &restore::recovery_settings(&request),
        args.start,
        &url,
    );
    out(&text)?;
    if args.start {
        let primary = desired.plan.primary.postgres.as_ref();
        let objectives = crate::state::drill::Objectives {
            rpo_seconds: desired.plan.objectives.rpo.as_secs(),
            rto_seconds: desired.plan.objectives.rto.as_secs(),
        };
        let started = restore::start::start(
            &args.to,
            args.port,
            b.pg_version / 10_000,
            (
                primary.and_then(|i| i.get("user")).unwrap_or("postgres"),
                primary.and_then(|i| i.get("dbname")).unwrap_or("postgres"),
            ),
            &objectives,
        )
        .await?;
        out(&format!(
            "Recovered and promoted in {:.1}s: last replayed transaction {} (WAL {}).\nRunning on port {} (socket in {}, log {}); stop it with pg_ctl -D {} stop.\n",
            started.seconds,
            started.last_transaction,
            started.replay_lsn,
            started.port,
            args.to.display(),
            started.log.display(),
            args.to.display()
        ))?;
        let ext = &started.extensions;
        out(&format!(
            "Extensions: {}{}\n",
            if ext.ok { "" } else { "PROBLEM: " },
            ext.detail
        ))?;
        if !ext.ok {
            // It runs, but a failover to these binaries would need work first.
            return Ok(Outcome::Found);
        }
    }
    Ok(Outcome::Clean)
}
