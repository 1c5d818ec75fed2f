//! The AWS reads a run shares: each hosted zone, each region's RDS instances
//! and security groups, each parameter group and each bucket, read once for
//! every cluster that names it, before any cluster is observed.
//!
//! A fleet's AWS requests then grow with its zones, regions and buckets, not
//! with its clusters (docs/guides/fleets.md). Each cluster's view is cut out
//! of this picture ([`Shared::endpoint`] …), so planning stays per cluster and
//! pure. A read that fails fails only the clusters that need it.

use crate::providers::ec2::{self, GroupRef, RegionGroups};
use crate::providers::rds;
use crate::providers::route53::{self, ZoneLive};
use crate::providers::s3::{self, BucketRead};
use crate::providers::{bounded, ProviderError, Systems};
use crate::spec::Desired;
use crate::state::ec2::GroupLive;
use crate::state::rds::{InstanceLive, ParameterGroupLive};
use crate::state::route53::{normalize, EndpointLive};
use crate::state::s3::S3Live;
use futures_util::future::join_all;
use std::collections::{BTreeMap, BTreeSet};

type Read<T> = Result<T, ProviderError>;

#[derive(Default)]
pub struct Shared {
    zones: BTreeMap<String, Read<ZoneLive>>,
    instances: BTreeMap<String, Read<BTreeMap<String, InstanceLive>>>,
    parameter_groups: BTreeMap<(String, String), Read<ParameterGroupLive>>,
    groups: BTreeMap<String, Read<RegionGroups>>,
    buckets: BTreeMap<(String, String), Read<BucketRead>>,
}

/// What the clusters of a run ask AWS about, by scope.
#[derive(Default)]
struct Wanted {
    /// Zone name → record names in it.
    zones: BTreeMap<String, BTreeSet<String>>,
    /// Region → RDS instance ids (primaries and replicas).
    instances: BTreeMap<String, BTreeSet<String>>,
    /// (region, parameter group) → setting names.
    parameter_groups: BTreeMap<(String, String), BTreeSet<String>>,
    /// Region → security groups.
    groups: BTreeMap<String, BTreeSet<GroupRef>>,
    /// (region, bucket).
    buckets: BTreeSet<(String, String)>,
}

fn wanted<'a>(desired: impl IntoIterator<Item = &'a Desired>) -> Wanted {
    let mut w = Wanted::default();
    for d in desired {
        let plan = &d.plan;
        let Some(aws) = &plan.aws else { continue };
        let region = aws.region.as_str().to_string();
        if let Some(endpoint) = &plan.endpoint {
            w.zones
                .entry(normalize(&endpoint.hosted_zone))
                .or_default()
                .insert(endpoint.record.clone());
        }
        if let Some(spec) = &plan.primary.rds {
            // The primary in the plan's region, each replica in its own.
            let replicas = plan.standbys.iter().filter_map(|s| {
                let replica_region = s.region.as_ref().map_or(region.as_str(), |r| r.as_str());
                Some((replica_region, &s.rds.as_ref()?.instance))
            });
            for (in_region, id) in
                std::iter::once((region.as_str(), &spec.instance)).chain(replicas)
            {
                w.instances
                    .entry(in_region.to_string())
                    .or_default()
                    .insert(id.clone());
            }
            if let Some(group) = &spec.parameter_group {
                w.parameter_groups
                    .entry((region.clone(), group.clone()))
                    .or_default()
                    .extend(plan.settings.keys().cloned());
            }
        }
        if let Some(network) = &plan.replication_network {
            w.groups
                .entry(region.clone())
                .or_default()
                .insert(GroupRef {
                    group: network.security_group.clone(),
                    vpc: network.vpc.clone(),
                });
        }
        if let Some(archive) = &plan.archive {
            w.buckets
                .insert((region.clone(), archive.bucket.as_str().to_string()));
            for copy in &archive.copies {
                w.buckets
                    .insert((copy.region.clone(), copy.bucket.as_str().to_string()));
            }
        }
    }
    w
}

impl Shared {
    /// Reads everything the clusters name, every scope concurrently.
    pub async fn read<'a>(
        desired: impl IntoIterator<Item = &'a Desired>,
        systems: &Systems,
    ) -> Shared {
        let w = wanted(desired);
        let aws = &systems.aws;
        // Every zone at once; the run's Route53 rate limit spaces the requests.
        let zones = async {
            if w.zones.is_empty() {
                return Vec::new();
            }
            let r53 = &aws.route53().await;
            join_all(w.zones.iter().map(|(zone, records)| async move {
                (zone.clone(), route53::read_zone(r53, zone, records).await)
            }))
            .await
        };
        let instances = join_all(w.instances.iter().map(|(region, ids)| async move {
            let client = aws.rds(region).await;
            let ids: Vec<String> = ids.iter().cloned().collect();
            (region.clone(), rds::observe_instances(&client, &ids).await)
        }));
        // Parameter groups and buckets can number in the thousands: at most
        // `parallelism` at a time (a bucket is read with 4 requests at once).
        let limit = systems.parallelism;
        let parameter_groups = bounded(
            w.parameter_groups.iter().map(|(key, names)| async move {
                let client = aws.rds(&key.0).await;
                let names: Vec<String> = names.iter().cloned().collect();
                let read = rds::observe_parameter_group(&client, &key.1, &names).await;
                (key.clone(), read)
            }),
            limit,
        );
        let groups = join_all(w.groups.iter().map(|(region, refs)| async move {
            let client = aws.ec2(region).await;
            let refs: Vec<GroupRef> = refs.iter().cloned().collect();
            (region.clone(), ec2::read_groups(&client, &refs).await)
        }));
        let buckets = bounded(
            w.buckets.iter().map(|key| async move {
                let client = aws.s3(&key.0).await;
                (key.clone(), s3::read_bucket(&client, &key.1).await)
            }),
            limit,
        );
        let (zones, instances, parameter_groups, groups, buckets) =
            tokio::join!(zones, instances, parameter_groups, groups, buckets);
        Shared {
            zones: zones.into_iter().collect(),
            instances: instances.into_iter().collect(),
            parameter_groups: parameter_groups.into_iter().collect(),
            groups: groups.into_iter().collect(),
            buckets: buckets.into_iter().collect(),
        }
    }

    pub fn endpoint(&self, zone: &str, record: &str) -> Read<EndpointLive> {
        let zone = take(&self.zones, &normalize(zone), &format!("route53.{zone}"))?;
        Ok(route53::endpoint(zone, record))
    }

    /// The instance, or `None` when it does not exist.
    pub fn instance(&self, region: &str, id: &str) -> Read<Option<InstanceLive>> {
        let found = take(&self.instances, &region.to_string(), &format!("rds.{id}"))?;
        Ok(found.get(&rds::instance_key(id)).cloned())
    }

    /// The parameter group with only the parameters `names` asks for (others
    /// in the run may share the group and ask for more).
    pub fn parameter_group(
        &self,
        region: &str,
        group: &str,
        names: &[String],
    ) -> Read<ParameterGroupLive> {
        let key = (region.to_string(), group.to_string());
        let mut live = take(
            &self.parameter_groups,
            &key,
            &format!("rds.parameter_group.{group}"),
        )?
        .clone();
        live.parameters.retain(|name, _| names.contains(name));
        Ok(live)
    }

    pub fn group(&self, region: &str, group: &str, vpc: Option<&str>) -> Read<GroupLive> {
        let found = take(&self.groups, &region.to_string(), &format!("ec2.{group}"))?;
        ec2::group_live(
            found,
            &GroupRef {
                group: group.to_string(),
                vpc: vpc.map(str::to_string),
            },
        )
    }

    pub fn bucket(&self, region: &str, bucket: &str, cluster: &str) -> Read<S3Live> {
        let key = (region.to_string(), bucket.to_string());
        Ok(take(&self.buckets, &key, &format!("s3.{bucket}"))?.for_cluster(cluster))
    }
}

/// A scope's read, or its error; a scope no cluster asked for is a bug,
/// reported as an error rather than a panic.
fn take<'s, K: Ord, T>(map: &'s BTreeMap<K, Read<T>>, key: &K, system: &str) -> Read<&'s T> {
    match map.get(key) {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => Err(e.clone()),
        None => Err(ProviderError::new(
            system,
            "was not read with the rest of the run (a pgdr bug)",
        )),
    }
}
