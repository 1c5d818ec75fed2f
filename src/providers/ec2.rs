//! The replication network: a security group (by name or `sg-` id) and the
//! ingress rules that let standbys reach the primary's port.
//!
//! pgdr's rules carry the description `pgdr:<cluster>`; rules without it are
//! never changed. A rule is authorised or revoked by its exact permission
//! (protocol, port, CIDR), so other rules in the group are untouched.

use super::ProviderError;
use crate::state::ec2::{GroupLive, Ingress};
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{self as ec2t};
use aws_sdk_ec2::Client;

async fn default_vpc(client: &Client, system: &str) -> Result<String, ProviderError> {
    let out = client
        .describe_vpcs()
        .filters(
            ec2t::Filter::builder()
                .name("is-default")
                .values("true")
                .build(),
        )
        .send()
        .await
        .map_err(|e| super::aws_error("finding the default VPC", system, &e))?;
    out.vpcs()
        .first()
        .and_then(|v| v.vpc_id())
        .map(str::to_string)
        .ok_or_else(|| {
            ProviderError::new(system, "this region has no default VPC")
                .hint("name the VPC in replication_network.vpc")
        })
}

/// Values per EC2 filter in one request (EC2 accepts up to 200).
const FILTER_VALUES: usize = 200;

/// A security group the plan files name: by `sg-` id, or by name in a VPC
/// (the region's default VPC when none is given).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupRef {
    pub group: String,
    pub vpc: Option<String>,
}

/// The security groups of one region that a run's plan files name, read
/// together: the default VPC once (if any group needs it), then the groups in
/// as few `DescribeSecurityGroups` requests as the filters allow, paginated.
#[derive(Debug, Clone)]
pub struct RegionGroups {
    default_vpc: Option<Result<String, ProviderError>>,
    found: Vec<ec2t::SecurityGroup>,
}

pub async fn read_groups(
    client: &Client,
    wanted: &[GroupRef],
) -> Result<RegionGroups, ProviderError> {
    let system = format!(
        "ec2.{}",
        wanted
            .first()
            .map_or("security groups", |w| w.group.as_str())
    );
    let needs_default = wanted
        .iter()
        .any(|w| w.vpc.is_none() && !w.group.starts_with("sg-"));
    let (ids, names): (Vec<&GroupRef>, Vec<&GroupRef>) =
        wanted.iter().partition(|w| w.group.starts_with("sg-"));
    let sorted = |refs: Vec<&GroupRef>| {
        let mut out: Vec<String> = refs.into_iter().map(|w| w.group.clone()).collect();
        out.sort();
        out.dedup();
        out
    };
    let (ids, names) = (sorted(ids), sorted(names));
    // The default VPC and the groups at once: groups by name are matched to
    // their VPC afterwards, so the VPC is not needed to ask for them.
    let default_vpc = async {
        if needs_default {
            Some(default_vpc(client, &system).await)
        } else {
            None
        }
    };
    let by_id = futures_util::future::join_all(
        ids.chunks(FILTER_VALUES)
            .map(|chunk| describe_ids(client, &system, chunk)),
    );
    let by_name = futures_util::future::join_all(
        names
            .chunks(FILTER_VALUES)
            .map(|chunk| describe(client, &system, Lookup::Names(chunk))),
    );
    let (default_vpc, by_id, by_name) = tokio::join!(default_vpc, by_id, by_name);
    let mut found = Vec::new();
    for groups in by_id.into_iter().chain(by_name) {
        found.extend(groups?.unwrap_or_default());
    }
    Ok(RegionGroups { default_vpc, found })
}

/// What one `DescribeSecurityGroups` asks for.
enum Lookup<'a> {
    Ids(&'a [String]),
    Names(&'a [String]),
}

/// Groups by id, many per request. One unknown id fails a whole request
/// (`InvalidGroup.NotFound`), so then each id of the batch is asked alone.
async fn describe_ids(
    client: &Client,
    system: &str,
    ids: &[String],
) -> Result<Option<Vec<ec2t::SecurityGroup>>, ProviderError> {
    if let Some(groups) = describe(client, system, Lookup::Ids(ids)).await? {
        return Ok(Some(groups));
    }
    if ids.len() == 1 {
        return Ok(None);
    }
    let alone = futures_util::future::join_all(
        ids.chunks(1)
            .map(|id| describe(client, system, Lookup::Ids(id))),
    )
    .await;
    let mut groups = Vec::new();
    for one in alone {
        groups.extend(one?.unwrap_or_default());
    }
    Ok(Some(groups))
}

/// Every page of one `DescribeSecurityGroups`; `None` when EC2 answers
/// `InvalidGroup.NotFound` (an id that does not exist).
async fn describe(
    client: &Client,
    system: &str,
    lookup: Lookup<'_>,
) -> Result<Option<Vec<ec2t::SecurityGroup>>, ProviderError> {
    let mut groups = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = client
            .describe_security_groups()
            .set_next_token(token.take());
        let request = match &lookup {
            // All of them in one answer (EC2 takes no page size with ids).
            Lookup::Ids(ids) => request.set_group_ids(Some(ids.to_vec())),
            Lookup::Names(names) => request
                .filters(
                    ec2t::Filter::builder()
                        .name("group-name")
                        .set_values(Some(names.to_vec()))
                        .build(),
                )
                // Paginated requests need a page size; 1000 is EC2's largest.
                .max_results(1000),
        };
        match request.send().await {
            Ok(out) => {
                groups.extend(out.security_groups().iter().cloned());
                match out.next_token() {
                    Some(next) if !next.is_empty() => token = Some(next.to_string()),
                    _ => return Ok(Some(groups)),
                }
            }
            Err(e) if e.code() == Some("InvalidGroup.NotFound") => return Ok(None),
            Err(e) => return Err(super::aws_error("reading the security group", system, &e)),
        }
    }
}

/// One group as pgdr sees it, from the region's groups read by [`read_groups`].
pub fn group_live(region: &RegionGroups, wanted: &GroupRef) -> Result<GroupLive, ProviderError> {
    let system = format!("ec2.{}", wanted.group);
    let vpc_id = || -> Result<String, ProviderError> {
        match (&wanted.vpc, &region.default_vpc) {
            (Some(v), _) => Ok(v.clone()),
            (None, _) if wanted.group.starts_with("sg-") => Ok(String::new()),
            (None, Some(Ok(v))) => Ok(v.clone()),
            (None, Some(Err(e))) => Err(ProviderError {
                system: system.clone(),
                ..e.clone()
            }),
            (None, None) => Err(ProviderError::new(&system, "the default VPC was not read")),
        }
    };
    let found = if wanted.group.starts_with("sg-") {
        region
            .found
            .iter()
            .find(|g| g.group_id() == Some(wanted.group.as_str()))
    } else {
        let vpc = vpc_id()?;
        region.found.iter().find(|g| {
            g.group_name() == Some(wanted.group.as_str()) && g.vpc_id() == Some(vpc.as_str())
        })
    };
    let Some(found) = found else {
        return Ok(GroupLive {
            id: None,
            vpc_id: vpc_id()?,
            ingress: Vec::new(),
        });
    };
    let mut ingress = Vec::new();
    for permission in found.ip_permissions() {
        let protocol = permission.ip_protocol().unwrap_or("-1").to_string();
        let from_port = permission.from_port().unwrap_or(-1);
        let to_port = permission.to_port().unwrap_or(-1);
        for range in permission.ip_ranges() {
            ingress.push(Ingress {
                protocol: protocol.clone(),
                from_port,
                to_port,
                cidr: range.cidr_ip().unwrap_or_default().to_string(),
                description: range.description().map(str::to_string),
            });
        }
        for range in permission.ipv6_ranges() {
            ingress.push(Ingress {
                protocol: protocol.clone(),
                from_port,
                to_port,
                cidr: range.cidr_ipv6().unwrap_or_default().to_string(),
                description: range.description().map(str::to_string),
            });
        }
    }
    ingress.sort_by(|a, b| (&a.cidr, a.from_port).cmp(&(&b.cidr, b.from_port)));
    Ok(GroupLive {
        id: found.group_id().map(str::to_string),
        vpc_id: found.vpc_id().unwrap_or_default().to_string(),
        ingress,
    })
}

/// One group on its own (apply looks its id up before a write).
pub async fn observe(
    client: &Client,
    group: &str,
    vpc: Option<&str>,
) -> Result<GroupLive, ProviderError> {
    let wanted = GroupRef {
        group: group.to_string(),
        vpc: vpc.map(str::to_string),
    };
    let region = read_groups(client, std::slice::from_ref(&wanted)).await?;
    group_live(&region, &wanted)
}

/// The group's id: given, or looked up by name in the VPC (it may have been created by this apply).
async fn group_id(client: &Client, group: &str, vpc_id: &str) -> Result<String, ProviderError> {
    if group.starts_with("sg-") {
        return Ok(group.to_string());
    }
    let live = observe(client, group, Some(vpc_id)).await?;
    live.id.ok_or_else(|| {
        ProviderError::new(format!("ec2.{group}"), "the security group does not exist")
    })
}

pub async fn create_group(
    client: &Client,
    group: &str,
    vpc_id: &str,
    cluster: &str,
) -> Result<(), ProviderError> {
    let system = format!("ec2.{group}");
    match client
        .create_security_group()
        .group_name(group)
        .description(format!(
            "PostgreSQL replication for {cluster} (managed by pgdr)"
        ))
        .vpc_id(vpc_id)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("InvalidGroup.Duplicate") => Ok(()),
        Err(e) => Err(super::aws_error("creating the security group", &system, &e)),
    }
}

fn permission(cidr: &str, port: u16, description: &str) -> ec2t::IpPermission {
    let builder = ec2t::IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port as i32)
        .to_port(port as i32);
    if cidr.contains(':') {
        builder
            .ipv6_ranges(
                ec2t::Ipv6Range::builder()
                    .cidr_ipv6(cidr)
                    .description(description)
                    .build(),
            )
            .build()
    } else {
        builder
            .ip_ranges(
                ec2t::IpRange::builder()
                    .cidr_ip(cidr)
                    .description(description)
                    .build(),
            )
            .build()
    }
}

/// Adds (`allow: true`) or removes one ingress rule, identified by its exact
/// permission; both are repeat-safe (a duplicate or a missing rule is success).
pub async fn set_ingress(
    client: &Client,
    group: &str,
    vpc_id: &str,
    (cidr, port, description): (&str, u16, &str),
    allow: bool,
) -> Result<(), ProviderError> {
    let system = format!("ec2.{group}");
    let id = group_id(client, group, vpc_id).await?;
    let permission = permission(cidr, port, description);
    let (sent, done_already) = if allow {
        let sent = client
            .authorize_security_group_ingress()
            .group_id(id)
            .ip_permissions(permission)
            .send()
            .await;
        (
            sent.map(|_| ()).map_err(|e| {
                (
                    e.code().map(str::to_string),
                    super::aws_error(&format!("allowing {cidr} to port {port}"), &system, &e),
                )
            }),
            "InvalidPermission.Duplicate",
        )
    } else {
        let sent = client
            .revoke_security_group_ingress()
            .group_id(id)
            .ip_permissions(permission)
            .send()
            .await;
        (
            sent.map(|_| ()).map_err(|e| {
                (
                    e.code().map(str::to_string),
                    super::aws_error(&format!("removing {cidr} port {port}"), &system, &e),
                )
            }),
            "InvalidPermission.NotFound",
        )
    };
    match sent {
        Ok(()) => Ok(()),
        Err((Some(code), _)) if code == done_already => Ok(()),
        Err((_, e)) => Err(e),
    }
}
