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

pub async fn observe(
    client: &Client,
    group: &str,
    vpc: Option<&str>,
) -> Result<GroupLive, ProviderError> {
    let system = format!("ec2.{group}");
    let request = if group.starts_with("sg-") {
        client.describe_security_groups().group_ids(group)
    } else {
        let vpc_id = match vpc {
            Some(v) => v.to_string(),
            None => default_vpc(client, &system).await?,
        };
        client
            .describe_security_groups()
            .filters(
                ec2t::Filter::builder()
                    .name("group-name")
                    .values(group)
                    .build(),
            )
            .filters(
                ec2t::Filter::builder()
                    .name("vpc-id")
                    .values(&vpc_id)
                    .build(),
            )
    };
    let groups = match request.send().await {
        Ok(out) => out.security_groups().to_vec(),
        Err(e) if e.code() == Some("InvalidGroup.NotFound") => Vec::new(),
        Err(e) => return Err(super::aws_error("reading the security group", &system, &e)),
    };
    let Some(found) = groups.first() else {
        let vpc_id = match vpc {
            Some(v) => v.to_string(),
            None if group.starts_with("sg-") => String::new(),
            None => default_vpc(client, &system).await?,
        };
        return Ok(GroupLive {
            id: None,
            vpc_id,
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
