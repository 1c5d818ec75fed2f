//! `wal-push`, `wal-fetch` and the detached `wal-prefetch`: the commands
//! PostgreSQL runs. They keep its rules: no plan file (one archive URL is all
//! the configuration), nothing on stdout, exit 0 only on success, and exit 1
//! (never above 125, which would abort recovery) on any failure.

use super::{Outcome, QuietFailure};
use crate::cli::{CompressionArg, WalFetchArgs, WalPrefetchArgs, WalPushArgs};
use crate::execute::wal::fetch::{self as wal_fetch, Delivered};
use crate::execute::wal::push::{self as wal_push, CopyTarget, PushOptions, Pushed};
use crate::format::ArchiveUrl;
use crate::providers::aws::AwsClients;
use crate::providers::storage::Store;
use crate::settings::Settings;
use crate::spec::{Compression, DEFAULT_S3_REGION};
use crate::state::wal::{WalKind, WalName};
use anyhow::Context;

pub async fn push(args: &WalPushArgs, settings: &Settings) -> anyhow::Result<Outcome> {
    let url = ArchiveUrl::parse(&args.archive).map_err(anyhow::Error::msg)?;
    let bucket = url.bucket.clone();
    let aws = AwsClients::new(settings.aws.clone());
    let region = args.region.as_deref().unwrap_or(DEFAULT_S3_REGION);
    let options = PushOptions {
        url,
        compression: match args.compression {
            CompressionArg::Zstd => Compression::Zstd,
            CompressionArg::None => Compression::None,
        },
        parallel: usize::from(args.parallel),
    };
    let copies = args
        .copy
        .iter()
        .map(|text| parse_copy(text))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = std::time::Instant::now();
    let store = || async {
        let mut targets = Vec::new();
        for (region, url) in copies {
            targets.push(CopyTarget {
                store: Store::s3(aws.s3(&region).await, &url.bucket),
                url,
            });
        }
        (Store::s3(aws.s3(region).await, &bucket), targets)
    };
    let (pushed, ahead) = wal_push::push(store, &options, &args.wal_path)
        .await
        .with_context(|| format!("wal-push {}", args.wal_path.display()))?;
    tracing::info!(
        target: "pgdr::archive",
        file = %args.wal_path.display(),
        how = match pushed {
            Pushed::Stored => "stored",
            Pushed::AlreadyArchived => "already archived",
            Pushed::PushedAhead => "pushed ahead earlier",
        },
        pushed_ahead = ahead,
        ms = started.elapsed().as_millis() as u64,
        "wal-push"
    );
    Ok(Outcome::Clean)
}

/// `REGION=s3://BUCKET/PREFIX/`, as `--copy` takes it.
pub fn parse_copy(text: &str) -> anyhow::Result<(String, ArchiveUrl)> {
    let (region, url) = text.split_once('=').ok_or_else(|| {
        anyhow::anyhow!("--copy {text}: expected REGION=s3://BUCKET/PREFIX/ (e.g. us-west-2=s3://orders-wal-west/orders/)")
    })?;
    if region.is_empty() {
        anyhow::bail!(
            "--copy {text}: the region before `=` is empty; expected REGION=s3://BUCKET/PREFIX/"
        );
    }
    let url = ArchiveUrl::parse(url).map_err(|e| anyhow::anyhow!("--copy {text}: {e}"))?;
    Ok((region.to_string(), url))
}

/// The exit code that makes PostgreSQL stop recovery (it reads any exit
/// above 125 from `restore_command` as fatal).
pub const STOP_RECOVERY_EXIT: i32 = 126;

/// `wal-fetch` asks PostgreSQL to stop recovery rather than end it early.
#[derive(Debug, thiserror::Error)]
#[error("wal-fetch: {0}")]
pub struct StopRecovery(pub String);

pub async fn fetch(args: &WalFetchArgs, settings: &Settings) -> anyhow::Result<Outcome> {
    let url = ArchiveUrl::parse(&args.archive).map_err(anyhow::Error::msg)?;
    let until = match &args.until {
        Some(name) => Some(
            WalName::parse(name)
                .filter(|w| w.kind == WalKind::Segment)
                .ok_or_else(|| anyhow::anyhow!("--until {name}: not a WAL segment name"))?,
        ),
        None => None,
    };
    // PostgreSQL runs restore_command in the data folder.
    let guard = wal_fetch::Guard {
        archive_recovery: std::path::Path::new("recovery.signal").exists()
            && !std::path::Path::new("standby.signal").exists(),
        until,
        accept_loss: args.accept_loss,
    };
    if guard.archive_recovery {
        // Even a bug must not read as "no more WAL" here.
        super::set_panic_exit_code(STOP_RECOVERY_EXIT);
    }
    let aws = AwsClients::new(settings.aws.clone());
    let region = args.region.as_deref().unwrap_or(DEFAULT_S3_REGION);
    let store = || async { Store::s3(aws.s3(region).await, &url.bucket) };
    let fetched = wal_fetch::fetch(store, &url, &args.wal_name, &args.dest).await;
    let unavailable = match fetched {
        Ok(Some(delivered)) => Ok(delivered),
        Ok(None) if guard.needs_later(&args.wal_name) => {
            let store = Store::s3(aws.s3(region).await, &url.bucket);
            match wal_fetch::later_segment(&store, &url, &args.wal_name).await {
                Ok(later) => Err(wal_fetch::Unavailable::Missing { later }),
                Err(e) => Err(wal_fetch::Unavailable::Failed(format!(
                    "missing, and the archive could not be listed to tell a gap from the end: {e}"
                ))),
            }
        }
        Ok(None) => Err(wal_fetch::Unavailable::Missing { later: None }),
        Err(e) => Err(wal_fetch::Unavailable::Failed(e.to_string())),
    };
    let (how, size) = match unavailable {
        Ok(delivered) => delivered,
        Err(why) => {
            if let wal_fetch::Verdict::Stop(reason) = guard.judge(&args.wal_name, &why) {
                return Err(StopRecovery(reason).into());
            }
            return Err(match why {
                wal_fetch::Unavailable::Failed(e) => {
                    anyhow::anyhow!("wal-fetch {}: {e}", args.wal_name)
                }
                wal_fetch::Unavailable::Missing { .. } => {
                    tracing::info!(target: "pgdr::archive", file = args.wal_name, "not in the archive");
                    QuietFailure(format!("{} is not in {url}", args.wal_name)).into()
                }
            });
        }
    };
    tracing::info!(
        target: "pgdr::archive",
        file = args.wal_name,
        prefetched = how == Delivered::Prefetched,
        "wal-fetch"
    );
    if args.prefetch > 0 {
        if let Some(dir) = wal_fetch::prefetch_dir(&args.dest) {
            start_prefetch(args, &dir, size);
        }
    }
    Ok(Outcome::Clean)
}

/// Starts `pgdr wal-prefetch` detached: recovery goes on while it downloads.
/// A failure to start it only costs speed.
fn start_prefetch(args: &WalFetchArgs, dir: &std::path::Path, segment_size: u64) {
    // A delivered segment's size is the segment size; a history or backup
    // file has nothing after it worth fetching.
    let Some(size) = crate::state::wal::SegmentSize::new(segment_size) else {
        return;
    };
    if wal_fetch::following(&args.wal_name, 1, size).is_empty() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut command = std::process::Command::new(exe);
    command
        .arg("wal-prefetch")
        .arg(&args.archive)
        .arg(&args.wal_name)
        .arg(dir)
        .arg("--count")
        .arg(args.prefetch.to_string())
        .arg("--segment-size")
        .arg(segment_size.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(region) = &args.region {
        command.arg("--region").arg(region);
    }
    if let Err(e) = command.spawn() {
        tracing::warn!(target: "pgdr::archive", error = %e, "prefetch not started");
    }
}

pub async fn prefetch(args: &WalPrefetchArgs, settings: &Settings) -> anyhow::Result<Outcome> {
    let url = ArchiveUrl::parse(&args.archive).map_err(anyhow::Error::msg)?;
    let aws = AwsClients::new(settings.aws.clone());
    let region = args.region.as_deref().unwrap_or(DEFAULT_S3_REGION);
    let store = Store::s3(aws.s3(region).await, &url.bucket);
    wal_fetch::prefetch(
        &store,
        &url,
        &args.wal_name,
        &args.dir,
        usize::from(args.count),
        crate::state::wal::SegmentSize::new(args.segment_size).ok_or_else(|| {
            anyhow::anyhow!(
                "--segment-size {}: not a WAL segment size (a power of two from 1 MiB to 1 GiB)",
                args.segment_size
            )
        })?,
        4,
    )
    .await?;
    Ok(Outcome::Clean)
}
