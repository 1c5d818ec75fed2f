//! Reads the live state a plan file names, all parts of a cluster concurrently.
//!
//! If any part cannot be read, the whole cluster fails: planning (and so
//! applying) against half a picture could undo what the unread half holds.
//! (An unreachable standby is the exception: it is recorded in the live state.)

use crate::archive::{catalog, ArchiveUrl};
use crate::providers::aws::AwsClients;
use crate::providers::{ec2, postgres, rds, route53, s3};
use crate::providers::{ProviderError, Systems};
use crate::spec::{Archiver, Desired};
use crate::state::archive::ArchiveLive;
use crate::state::rds::RdsLive;
use crate::state::{Live, StandbyLive};

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

pub async fn observe(desired: &Desired, systems: &Systems) -> Result<Live, ProviderError> {
    let plan = &desired.plan;
    let aws = &systems.aws;
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
                let client = aws.s3(aws_section.region.as_str()).await;
                // The bucket's settings and, when pgdr fills it, its contents, at once.
                let content = async {
                    if desired.archiver() == Some(Archiver::Pgdr) {
                        Some(observe_content(&client, &archive.url()).await)
                    } else {
                        None
                    }
                };
                let (bucket, content) = tokio::join!(
                    s3::observe(&client, archive.bucket.as_str(), desired.cluster()),
                    content
                );
                let bucket = bucket?;
                // A bucket still to be created holds nothing; its listing error says nothing new.
                let content = content.filter(|_| bucket.exists);
                Ok((Some(bucket), content))
            }
            _ => Ok((None, None)),
        }
    };
    let endpoint = async {
        match (&plan.endpoint, &plan.aws) {
            (Some(endpoint), Some(_)) => {
                let client = aws.route53().await;
                route53::observe(&client, &endpoint.hosted_zone, &endpoint.record)
                    .await
                    .map(Some)
            }
            _ => Ok(None),
        }
    };
    let network = async {
        match (&plan.replication_network, &plan.aws) {
            (Some(network), Some(aws_section)) => {
                let client = aws.ec2(aws_section.region.as_str()).await;
                ec2::observe(&client, &network.security_group, network.vpc.as_deref())
                    .await
                    .map(Some)
            }
            _ => Ok(None),
        }
    };
    let rds_state = observe_rds(desired, aws);
    let (primary, standbys, archive, endpoint, network, rds_state) =
        tokio::join!(primary, standbys, archive, endpoint, network, rds_state);
    let (archive, archive_content) = archive?;
    let (primary, primary_error) = primary?;
    Ok(Live {
        primary,
        primary_error,
        standbys: standbys.into_iter().collect(),
        archive,
        archive_content,
        endpoint: endpoint?,
        network: network?,
        rds: rds_state?,
    })
}

/// The backups and the WAL since the newest (see [`catalog::observe`] for the
/// requests), with the newest backup's age. A failure is kept as a message:
/// the bucket's settings can still be planned without it.
async fn observe_content(client: &aws_sdk_s3::Client, url: &str) -> Result<ArchiveLive, String> {
    let url = ArchiveUrl::parse(url).map_err(|e| e.to_string())?;
    let (content, drills) = tokio::join!(
        catalog::observe(client, &url),
        catalog::drills(client, &url)
    );
    let mut content = content.map_err(|e| e.to_string())?;
    content.drills = drills.map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    content.observed_at_unix = Some(now);
    let age = |rfc3339: &str| {
        let at = aws_smithy_types::DateTime::from_str(
            rfc3339,
            aws_smithy_types::date_time::Format::DateTime,
        )
        .ok()?;
        Some((now - at.secs()).max(0) as u64)
    };
    content.newest_age_seconds = content.backups.last().and_then(|b| age(&b.stop_time));
    content.drills.newest_age_seconds = content
        .drills
        .newest
        .as_ref()
        .and_then(|d| age(&d.started_at));
    Ok(content)
}

/// The RDS primary, its parameter group and every RDS replica, concurrently;
/// each replica through the client of its own region.
async fn observe_rds(
    desired: &Desired,
    aws: &AwsClients,
) -> Result<Option<RdsLive>, ProviderError> {
    let plan = &desired.plan;
    let (Some(spec), Some(aws_section)) = (&plan.primary.rds, &plan.aws) else {
        return Ok(None);
    };
    let region = aws_section.region.as_str();
    let client = aws.rds(region).await;
    let names: Vec<String> = plan.settings.keys().cloned().collect();
    let group = async {
        match &spec.parameter_group {
            Some(name) => rds::observe_parameter_group(&client, name, &names)
                .await
                .map(Some),
            None => Ok(None),
        }
    };
    let replicas = futures_util::future::join_all(plan.standbys.iter().filter_map(|s| {
        let replica = s.rds.as_ref()?;
        let replica_region = s.region.as_ref().map_or(region, |r| r.as_str());
        Some(async move {
            let client = aws.rds(replica_region).await;
            let found = rds::observe_instance(&client, &replica.instance).await?;
            Ok::<_, ProviderError>((s.name.as_str().to_string(), found))
        })
    }));
    let (primary, group, replicas) = tokio::join!(
        rds::observe_instance(&client, &spec.instance),
        group,
        replicas
    );
    Ok(Some(RdsLive {
        primary: primary?,
        parameter_group: group?,
        replicas: replicas.into_iter().collect::<Result<_, _>>()?,
    }))
}
