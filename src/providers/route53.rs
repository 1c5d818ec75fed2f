//! The DNS endpoint: one record in a Route53 hosted zone found by name.
//!
//! A run reads each zone once for every record its plan files name
//! ([`read_zone`]), and every request waits its turn under Route53's rate limit.
//!
//! Only the record the plan file names is read or written; every other record
//! in the zone is left as it is. A type change (A ⇄ CNAME) is one atomic batch
//! (delete the old set, create the new one), since UPSERT cannot change a type.

use super::aws::Route53;
use super::ProviderError;
use crate::state::route53::{normalize, EndpointLive, Latency, Record};
use aws_sdk_route53::types::{self as r53t};
use std::collections::{BTreeMap, BTreeSet};

/// Records per page of `ListResourceRecordSets` (Route53's maximum).
const PAGE: usize = 300;

/// One hosted zone as read for a run: its id and the record sets at the names
/// the plan files ask about (every set at each name, of any type).
#[derive(Debug, Clone)]
pub struct ZoneLive {
    pub zone_id: String,
    sets: BTreeMap<String, Vec<r53t::ResourceRecordSet>>,
}

/// The hosted zone named `zone_name`: its id and record set count. Exactly one
/// zone may have the name (a public and a private one would leave pgdr unable
/// to tell which one clients resolve).
async fn find_zone(
    r53: &Route53,
    zone_name: &str,
    system: &str,
) -> Result<(String, usize), ProviderError> {
    let zones = r53
        .turn()
        .await
        .list_hosted_zones_by_name()
        .dns_name(zone_name)
        .send()
        .await
        .map_err(|e| super::aws_error("finding the hosted zone", system, &e))?;
    let matching: Vec<&r53t::HostedZone> = zones
        .hosted_zones()
        .iter()
        .filter(|z| normalize(z.name()) == zone_name)
        .collect();
    match matching.as_slice() {
        [one] => Ok((
            one.id().trim_start_matches("/hostedzone/").to_string(),
            one.resource_record_set_count().unwrap_or(i64::MAX).max(0) as usize,
        )),
        [] => Err(ProviderError::new(system, format!("no hosted zone named {zone_name}"))
            .hint("create the zone, or correct endpoint.hosted_zone")),
        _ => Err(ProviderError::new(system, format!("{} hosted zones are named {zone_name} (public and private?)", matching.len()))
            .hint("pgdr cannot tell which one clients resolve; keep one zone of that name in this account")),
    }
}

/// Finds the zone by name (one request, once a run) and reads the sets at `records`, in
/// whichever costs fewer requests: the whole zone page by page, or one lookup
/// per record. A fleet's 200 records in a zone of 250 take one page, not 200
/// lookups; one record in a zone of 10,000 takes one lookup, not 34 pages.
pub async fn read_zone(
    r53: &Route53,
    zone: &str,
    records: &BTreeSet<String>,
) -> Result<ZoneLive, ProviderError> {
    let zone_name = normalize(zone);
    let system = format!("route53.{zone_name}");
    let (zone_id, count) = match r53.known_zone(&zone_name) {
        Some(known) => known,
        None => {
            let found = find_zone(r53, &zone_name, &system).await?;
            r53.remember_zone(&zone_name, &found.0, found.1);
            found
        }
    };
    let wanted: BTreeSet<String> = records.iter().map(|r| normalize(r)).collect();
    let mut live = ZoneLive {
        zone_id,
        sets: BTreeMap::new(),
    };
    let keep = |live: &mut ZoneLive, sets: &[r53t::ResourceRecordSet]| {
        for set in sets {
            let name = normalize(set.name());
            if wanted.contains(&name) {
                live.sets.entry(name).or_default().push(set.clone());
            }
        }
    };
    if count.div_ceil(PAGE).max(1) <= wanted.len() {
        // The whole zone, page by page.
        let mut next: Option<(String, r53t::RrType, Option<String>)> = None;
        loop {
            let mut request = r53
                .turn()
                .await
                .list_resource_record_sets()
                .hosted_zone_id(&live.zone_id);
            if let Some((name, rtype, identifier)) = next.take() {
                request = request
                    .start_record_name(name)
                    .start_record_type(rtype)
                    .set_start_record_identifier(identifier);
            }
            let page = request
                .send()
                .await
                .map_err(|e| super::aws_error("listing the zone's records", &system, &e))?;
            keep(&mut live, page.resource_record_sets());
            match (
                page.is_truncated(),
                page.next_record_name(),
                page.next_record_type(),
            ) {
                (true, Some(name), Some(rtype)) => {
                    next = Some((
                        name.to_string(),
                        rtype.clone(),
                        page.next_record_identifier().map(str::to_string),
                    ))
                }
                _ => break,
            }
        }
    } else {
        // One lookup per record (the listing starts at the name), all asked
        // for at once; the rate limit spaces them.
        let zone_id = &live.zone_id;
        let pages = futures_util::future::join_all(wanted.iter().map(|name| async move {
            r53.turn()
                .await
                .list_resource_record_sets()
                .hosted_zone_id(zone_id)
                .start_record_name(name)
                .send()
                .await
        }))
        .await;
        for page in pages {
            let page = page.map_err(|e| super::aws_error("reading the record", &system, &e))?;
            keep(&mut live, page.resource_record_sets());
        }
    }
    Ok(live)
}

/// The endpoint record as pgdr sees it, from a zone read by [`read_zone`]
/// with `record` among its names.
pub fn endpoint(zone: &ZoneLive, record: &str) -> EndpointLive {
    let name = normalize(record);
    let mut live = EndpointLive {
        zone_id: zone.zone_id.clone(),
        record: None,
        latency: Vec::new(),
        unmanageable: None,
    };
    for set in zone.sets.get(&name).into_iter().flatten() {
        let rtype = set.r#type().as_str().to_string();
        if rtype != "A" && rtype != "CNAME" {
            continue;
        }
        let latency = match (set.set_identifier(), set.region()) {
            (Some(id), Some(region)) => Some(Latency {
                set_identifier: id.to_string(),
                region: region.as_str().to_string(),
            }),
            (None, _) => None,
            (Some(_), None) => {
                live.unmanageable = Some(format!(
                    "{name} is a weighted, failover or geolocation {rtype} record; pgdr manages simple and latency records only"
                ));
                continue;
            }
        };
        if set.alias_target().is_some() {
            live.unmanageable = Some(format!(
                "{name} is an alias {rtype} record; pgdr manages simple and latency records only"
            ));
            continue;
        }
        let record = Record {
            rtype,
            ttl: set.ttl().unwrap_or(0),
            values: set
                .resource_records()
                .iter()
                .map(|r| r.value().to_string())
                .collect(),
            latency,
        };
        match record.latency {
            Some(_) => live.latency.push(record),
            None => live.record = Some(record),
        }
    }
    live
}

/// One endpoint record on its own (a role change re-reads it before and after).
pub async fn observe(
    r53: &Route53,
    zone: &str,
    record: &str,
) -> Result<EndpointLive, ProviderError> {
    let zone = read_zone(r53, zone, &BTreeSet::from([record.to_string()])).await?;
    Ok(endpoint(&zone, record))
}

fn record_set(name: &str, record: &Record) -> Result<r53t::ResourceRecordSet, String> {
    let mut builder = r53t::ResourceRecordSet::builder()
        .name(name)
        .r#type(r53t::RrType::from(record.rtype.as_str()))
        .ttl(record.ttl);
    if let Some(latency) = &record.latency {
        builder = builder
            .set_identifier(&latency.set_identifier)
            .region(r53t::ResourceRecordSetRegion::from(latency.region.as_str()));
    }
    for value in &record.values {
        builder = builder.resource_records(
            r53t::ResourceRecord::builder()
                .value(value)
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    builder.build().map_err(|e| e.to_string())
}

/// Deletes the record `have` (exactly as read: Route53 deletes a set only
/// when every field matches).
pub async fn delete(
    r53: &Route53,
    zone_id: &str,
    record: &str,
    have: &Record,
) -> Result<String, ProviderError> {
    let system = format!("route53.{record}");
    let bad = |e: String| ProviderError::new(&system, e);
    let change = r53t::Change::builder()
        .action(r53t::ChangeAction::Delete)
        .resource_record_set(record_set(&normalize(record), have).map_err(bad)?)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    submit(r53, zone_id, &system, vec![change]).await
}

/// Makes the record `want`; `old` is the set to delete first when the type
/// changes. Returns Route53's change id (to wait for it with [`wait_in_sync`]).
pub async fn write(
    r53: &Route53,
    zone_id: &str,
    record: &str,
    old: Option<&Record>,
    want: &Record,
) -> Result<String, ProviderError> {
    let system = format!("route53.{record}");
    let name = normalize(record);
    let bad = |e: String| ProviderError::new(&system, e);
    let mut changes = Vec::new();
    let action = match old {
        Some(old) if old.rtype != want.rtype => {
            changes.push(
                r53t::Change::builder()
                    .action(r53t::ChangeAction::Delete)
                    .resource_record_set(record_set(&name, old).map_err(bad)?)
                    .build()
                    .map_err(|e| bad(e.to_string()))?,
            );
            r53t::ChangeAction::Create
        }
        _ => r53t::ChangeAction::Upsert,
    };
    changes.push(
        r53t::Change::builder()
            .action(action)
            .resource_record_set(record_set(&name, want).map_err(bad)?)
            .build()
            .map_err(|e| bad(e.to_string()))?,
    );
    submit(r53, zone_id, &system, changes).await
}

/// One batch of changes to the zone; Route53's change id.
async fn submit(
    r53: &Route53,
    zone_id: &str,
    system: &str,
    changes: Vec<r53t::Change>,
) -> Result<String, ProviderError> {
    let batch = r53t::ChangeBatch::builder()
        .comment("pgdr: endpoint")
        .set_changes(Some(changes))
        .build()
        .map_err(|e| ProviderError::new(system, e.to_string()))?;
    r53.turn()
        .await
        .change_resource_record_sets()
        .hosted_zone_id(zone_id)
        .change_batch(batch)
        .send()
        .await
        .map(|out| {
            out.change_info()
                .map(|c| c.id().trim_start_matches("/change/").to_string())
                .unwrap_or_default()
        })
        .map_err(|e| super::aws_error("changing the record", system, &e))
}

/// Waits until Route53 reports the change `INSYNC` (every authoritative name
/// server answers with it), polling every `every`, for at most `limit`.
pub async fn wait_in_sync(
    r53: &Route53,
    record: &str,
    change_id: &str,
    every: std::time::Duration,
    limit: std::time::Duration,
) -> Result<(), ProviderError> {
    let system = format!("route53.{record}");
    let synced = super::poll::poll_until(every, limit, || async {
        let out = r53
            .turn()
            .await
            .get_change()
            .id(change_id)
            .send()
            .await
            .map_err(|e| super::aws_error("reading the change's status", &system, &e))?;
        let status = out.change_info().map(|c| c.status().as_str().to_string());
        Ok::<_, ProviderError>(if status.as_deref() == Some("INSYNC") {
            super::poll::Polled::Ready(())
        } else {
            super::poll::Polled::Waiting(status.unwrap_or_default())
        })
    })
    .await?;
    synced.map_err(|status| {
        ProviderError::new(
            &system,
            format!(
                "change {change_id} is still {status} after {}s",
                limit.as_secs()
            ),
        )
        .hint("the record is written; Route53 has not yet reported every name server updated. Run the command again to wait again")
    })
}
