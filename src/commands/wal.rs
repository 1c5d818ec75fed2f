//! `wal-push`, `wal-fetch` and the detached `wal-prefetch`: the commands
//! PostgreSQL runs. They keep its rules: no plan file (one archive URL is all
//! the configuration), nothing on stdout, exit 0 only on success, and exit 1
//! (never above 125, which would abort recovery) on any failure.

use super::{Outcome, QuietFailure};
use crate::archive::wal_fetch::{self, Delivered};
use crate::archive::wal_push::{self, PushOptions, Pushed};
use crate::archive::ArchiveUrl;
use crate::cli::{CompressionArg, WalFetchArgs, WalPrefetchArgs, WalPushArgs};
use crate::providers::aws::AwsClients;
use crate::settings::Settings;
use crate::spec::{Compression, DEFAULT_S3_REGION};
use anyhow::Context;

pub async fn push(args: &WalPushArgs, settings: &Settings) -> anyhow::Result<Outcome> {
    let url = ArchiveUrl::parse(&args.archive)?;
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
    let started = std::time::Instant::now();
    let (pushed, ahead) = wal_push::push(|| aws.s3(region), &options, &args.wal_path)
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

pub async fn fetch(args: &WalFetchArgs, settings: &Settings) -> anyhow::Result<Outcome> {
    let url = ArchiveUrl::parse(&args.archive)?;
    let aws = AwsClients::new(settings.aws.clone());
    let region = args.region.as_deref().unwrap_or(DEFAULT_S3_REGION);
    let fetched = wal_fetch::fetch(|| aws.s3(region), &url, &args.wal_name, &args.dest)
        .await
        .with_context(|| format!("wal-fetch {}", args.wal_name))?;
    let Some((how, size)) = fetched else {
        tracing::info!(target: "pgdr::archive", file = args.wal_name, "not in the archive");
        return Err(QuietFailure(format!("{} is not in {url}", args.wal_name)).into());
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
    if wal_fetch::following(&args.wal_name, 1, segment_size.max(1 << 20)).is_empty() {
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
    let url = ArchiveUrl::parse(&args.archive)?;
    let aws = AwsClients::new(settings.aws.clone());
    let region = args.region.as_deref().unwrap_or(DEFAULT_S3_REGION);
    let client = aws.s3(region).await;
    wal_fetch::prefetch(
        &client,
        &url,
        &args.wal_name,
        &args.dir,
        usize::from(args.count),
        args.segment_size,
        4,
    )
    .await?;
    Ok(Outcome::Clean)
}
