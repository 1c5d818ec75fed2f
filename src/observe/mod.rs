//! Reads the live state a plan file names, all parts of a cluster concurrently.
//! AWS is read once per scope for a whole run ([`shared`]); PostgreSQL and the
//! archive's contents are read per cluster.
//!
//! If any part cannot be read, the whole cluster fails: planning (and so
//! applying) against half a picture could undo what the unread half holds.
//! (An unreachable standby is the exception: it is recorded in the live state.)

pub mod archive;
mod shared;

use crate::format::ArchiveUrl;
use crate::providers::postgres;
use crate::providers::storage::Store;
use crate::providers::{ProviderError, Systems};
use crate::spec::{Archiver, Desired};
use crate::state::archive::{ArchiveLive, FailoversLive};
use crate::state::rds::RdsLive;
use crate::state::watch::Leases;
use crate::state::{Live, StandbyLive};
use shared::Shared;

/// The GUC names to read from a server: every setting the plan names, plus
/// the ones pgdr derives for the primary.
fn setting_names(desired: &Desired, primary: bool) -> Vec<String> {
    let mut names: Vec<String> = desired
        .server_settings()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    if primary && desired.synchronous_standby_names().is_some() {
        names.push("synchronous_standby_names".into());
    }
    names
}

/// One cluster on its own (a role change, a drill): its AWS reads are its own.
pub async fn observe(desired: &Desired, systems: &Systems) -> Result<Live, ProviderError> {
    let shared = Shared::read([desired], systems).await;
    observe_with(desired, systems, &shared).await
}

/// Every cluster of a run, in order: AWS once per scope for all of them, then
/// at most `systems.parallelism` clusters read at a time (each holds its
/// PostgreSQL connections while it is read). Each read is logged with its
/// duration (`-v`, target `pgdr::observe`).
pub async fn observe_all(
    desired: &[Desired],
    systems: &Systems,
) -> Vec<Result<Live, ProviderError>> {
    let shared = &Shared::read(desired, systems).await;
    let reads = desired.iter().map(|d| async move {
        let started = std::time::Instant::now();
        let live = observe_with(d, systems, shared).await;
        tracing::info!(
            target: "pgdr::observe",
            cluster = d.cluster(),
            ms = started.elapsed().as_millis() as u64,
            read = live.is_ok(),
            "observed"
        );
        live
    });
    crate::providers::bounded(reads, systems.parallelism).await
}

/// One cluster of a run, its AWS state taken from the run's [`Shared`] reads.
async fn observe_with(
    desired: &Desired,
    systems: &Systems,
    shared: &Shared,
) -> Result<Live, ProviderError> {
    let plan = &desired.plan;
    let env = &systems.pg;
    let primary_names = setting_names(desired, true);
    let standby_names = setting_names(desired, false);
    // A primary that cannot be read is reported, and the standbys, the
    // bucket, the endpoint and the network are still read: that moment (the
    // primary lost) is when the rest matters most.
    let primary = async {
        match &plan.primary.postgres {
            Some(info) => match postgres::observe("primary", info, env, &primary_names).await {
                Ok(live) => Ok((Some(live), None)),
                // Down or cut off: report it and read the rest. A server that
                // answers and refuses (password, TLS) is a configuration error
                // of this plan: the cluster cannot be read.
                Err(e) if e.unreachable => Ok((None, Some(e.to_string()))),
                Err(e) => Err(e),
            },
            None => Ok((None, None)),
        }
    };
    let standbys = futures_util::future::join_all(plan.standbys.iter().filter_map(|s| {
        let info = s.postgres.as_ref()?;
        let role = format!("standby.{}", s.name);
        let names = &standby_names;
        Some(async move {
            let observed = postgres::observe(&role, info, env, names).await;
            let state = match observed {
                Ok(live) => StandbyLive {
                    live: Some(live),
                    error: None,
                },
                Err(e) => StandbyLive {
                    live: None,
                    error: Some(e.to_string()),
                },
            };
            (s.name.as_str().to_string(), state)
        })
    }));
    let archive = async {
        match (&plan.archive, &plan.aws) {
            (Some(archive), Some(aws_section)) => {
                let region = aws_section.region.as_str();
                let bucket = shared.bucket(region, archive.bucket.as_str(), desired.cluster())?;
                // When pgdr fills the archive, its contents too; a bucket still
                // to be created holds nothing, so it is not listed.
                let store = Store::s3(systems.aws.s3(region).await, archive.bucket.as_str());
                let content = async {
                    match bucket.exists && desired.archiver() == Some(Archiver::Pgdr) {
                        true => {
                            let mut content = observe_content(&store, &archive.url()).await;
                            if let Ok(content) = &mut content {
                                content.copies =
                                    observe_copies(archive, systems, &store, &content.backups)
                                        .await;
                            }
                            Some(content)
                        }
                        false => None,
                    }
                };
                let roles = async {
                    match bucket.exists {
                        true => observe_roles(desired, &store, &archive.url()).await,
                        false => (None, None),
                    }
                };
                let (content, roles) = tokio::join!(content, roles);
                Ok((Some(bucket), content, roles))
            }
            _ => Ok((None, None, (None, None))),
        }
    };
    let endpoint = match (&plan.endpoint, &plan.aws) {
        (Some(endpoint), Some(_)) => {
            Some(shared.endpoint(&endpoint.hosted_zone, &endpoint.record)?)
        }
        _ => None,
    };
    let network = match (&plan.replication_network, &plan.aws) {
        (Some(network), Some(aws_section)) => Some(shared.group(
            aws_section.region.as_str(),
            &network.security_group,
            network.vpc.as_deref(),
        )?),
        _ => None,
    };
    let rds_state = rds_from(desired, shared)?;
    let archive_copies = copy_buckets(desired, shared);
    let (primary, standbys, archive, active_active) =
        tokio::join!(primary, standbys, archive, observe_nodes(desired, systems));
    let (archive, archive_content, (failovers, leases)) = archive?;
    let (primary, primary_error) = primary?;
    Ok(Live {
        primary,
        primary_error,
        standbys: standbys.into_iter().collect(),
        archive,
        archive_copies,
        active_active,
        archive_content,
        failovers,
        leases,
        endpoint,
        network,
        rds: rds_state,
    })
}

/// The role-change journals when the plan measures failovers
/// (`drill.failover_every`, a `failover` section) and the leases with a
/// `failover` section: `None` when not asked for or unreadable (a failure is
/// logged; the rest of the cluster is still planned).
async fn observe_roles(
    desired: &Desired,
    store: &Store,
    url: &str,
) -> (Option<FailoversLive>, Option<Leases>) {
    let Ok(url) = ArchiveUrl::parse(url) else {
        return (None, None);
    };
    let plan = &desired.plan;
    let watched = plan.failover.is_some();
    let measured = watched
        || plan
            .drill
            .as_ref()
            .is_some_and(|d| d.failover_every.is_some());
    let failovers = async {
        if !measured {
            return None;
        }
        match archive::failovers(store, &url).await {
            Ok(mut found) => {
                let now = crate::spec::time::now_unix();
                found.newest_done_age_seconds = found
                    .newest_done
                    .as_ref()
                    .map(|j| (now - j.started_at.secs()).max(0) as u64);
                Some(found)
            }
            Err(e) => {
                tracing::warn!(target: "pgdr::observe", error = %e, "role-change journals not read");
                None
            }
        }
    };
    let leases = async {
        if !watched {
            return None;
        }
        archive::leases(store, &url, desired.cluster())
            .await
            .map_err(|e| tracing::warn!(target: "pgdr::observe", error = %e, "leases not read"))
            .ok()
            .flatten()
    };
    tokio::join!(failovers, leases)
}

/// The writable nodes of an active-active plan (the primary first), each
/// with the settings logical replication needs, its tables and pglogical's
/// state, or why it could not be read.
async fn observe_nodes(
    desired: &Desired,
    systems: &Systems,
) -> Option<Vec<(String, crate::state::ActiveActiveNode)>> {
    let env = &systems.pg;
    let aa = desired.plan.active_active.as_ref()?;
    let mut names: Vec<String> = aa.node_settings().into_iter().map(|(n, _)| n).collect();
    names.push("shared_preload_libraries".into());
    let names = &names;
    let reads = desired.active_nodes().into_iter().map(|node| async move {
        let role = format!("node.{}", node.name);
        let read = async {
            let pg = postgres::observe(&role, node.postgres, env, names)
                .await
                .map_err(|e| e.to_string())?;
            let client = postgres::connect(&role, node.postgres, env)
                .await
                .map_err(|e| e.to_string())?;
            let text = |e: tokio_postgres::Error| postgres::error_text(&e);
            let (schema, pglogical) = tokio::join!(
                postgres::logical::read_node(&client, node.name),
                postgres::pglogical::read(&client)
            );
            Ok(crate::state::logical::NodeState {
                pg,
                schema: schema.map_err(text)?,
                pglogical: pglogical.map_err(text)?,
            })
        };
        (node.name.to_string(), read.await)
    });
    Some(futures_util::future::join_all(reads).await)
}

/// The buckets of the archive's copies. One that cannot be read (its region
/// down) is not planned; its content says why, and that is the problem
/// reported.
fn copy_buckets(desired: &Desired, shared: &Shared) -> Vec<crate::state::s3::S3Live> {
    let archive = desired.plan.archive.iter();
    archive
        .flat_map(|a| &a.copies)
        .filter_map(|c| {
            shared
                .bucket(&c.region, c.bucket.as_str(), desired.cluster())
                .ok()
        })
        .collect()
}

/// Each copy of the archive against home ([`archive::copy_listing`]), all
/// at once; one that cannot be read says why.
pub async fn observe_copies(
    archive: &crate::spec::Archive,
    systems: &Systems,
    home: &Store,
    home_backups: &[crate::state::archive::BackupEntry],
) -> Vec<crate::state::archive::CopyLive> {
    let Ok(home_url) = ArchiveUrl::parse(&archive.url()) else {
        return Vec::new();
    };
    if archive.copies.is_empty() {
        return Vec::new();
    }
    // Home's WAL is listed once, for every copy.
    let first = home_backups.last().map(|b| b.start_wal.as_str());
    let home_wal = archive::wal_objects_with_history((home, &home_url), first)
        .await
        .map(|objects| archive::wal_archived(&home_url, &objects, first))
        .map_err(|e| format!("home's WAL could not be listed: {e}"));
    let home_wal = &home_wal;
    futures_util::future::join_all(archive.copies.iter().map(|copy| async move {
        let url = archive.copy_url(copy);
        let content = match (ArchiveUrl::parse(&url), home_wal) {
            (Err(e), _) => Err(e),
            (_, Err(e)) => Err(e.clone()),
            (Ok(copy_url), Ok(home_wal)) => {
                let store = Store::s3(systems.aws.s3(&copy.region).await, &copy_url.bucket);
                archive::copy_listing(home_wal, first, (&store, &copy_url))
                    .await
                    .map(|mut listing| {
                        let now = crate::spec::time::now_unix();
                        listing.drills.newest_age_seconds = listing
                            .drills
                            .newest
                            .as_ref()
                            .map(|d| (now - d.started_at.secs()).max(0) as u64);
                        listing
                    })
                    .map_err(|e| e.to_string())
            }
        };
        crate::state::archive::CopyLive {
            name: copy.name().to_string(),
            url,
            region: copy.region.clone(),
            content,
        }
    }))
    .await
}

/// The backups and the WAL since the newest (see [`archive::observe`] for the
/// requests), with the newest backup's age. A failure is kept as a message:
/// the bucket's settings can still be planned without it.
pub async fn observe_content(store: &Store, url: &str) -> Result<ArchiveLive, String> {
    let url = ArchiveUrl::parse(url)?;
    let (content, drills) =
        tokio::join!(archive::observe(store, &url), archive::drills(store, &url));
    let mut content = content.map_err(|e| e.to_string())?;
    content.drills = drills.map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    content.observed_at_unix = Some(now);
    let age = |at: crate::spec::time::Timestamp| (now - at.secs()).max(0) as u64;
    content.newest_age_seconds = content.backups.last().map(|b| age(b.stop_time));
    content.drills.newest_age_seconds = content.drills.newest.as_ref().map(|d| age(d.started_at));

    Ok(content)
}

/// The RDS primary, its parameter group and every RDS replica (each in its
/// own region), from the run's reads.
fn rds_from(desired: &Desired, shared: &Shared) -> Result<Option<RdsLive>, ProviderError> {
    let plan = &desired.plan;
    let (Some(spec), Some(aws_section)) = (&plan.primary.rds, &plan.aws) else {
        return Ok(None);
    };
    let region = aws_section.region.as_str();
    let names: Vec<String> = plan.settings.keys().cloned().collect();
    let parameter_group = match &spec.parameter_group {
        Some(name) => Some(shared.parameter_group(region, name, &names)?),
        None => None,
    };
    let mut replicas = std::collections::BTreeMap::new();
    for s in &plan.standbys {
        if let Some(replica) = &s.rds {
            let replica_region = s.region.as_ref().map_or(region, |r| r.as_str());
            replicas.insert(
                s.name.as_str().to_string(),
                shared.instance(replica_region, &replica.instance)?,
            );
        }
    }
    Ok(Some(RdsLive {
        primary: shared.instance(region, &spec.instance)?,
        parameter_group,
        replicas,
    }))
}
