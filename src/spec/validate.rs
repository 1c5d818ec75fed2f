//! Checks that span several keys or depend on values, run after serde has
//! read the file; each returns the key path it concerns, so it can be located.

use super::PlanFile;
use std::collections::{BTreeMap, BTreeSet};

fn is_guc_name(name: &str) -> bool {
    let mut parts = name.split('.');
    let ok_part = |p: &str| {
        !p.is_empty()
            && p.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    parts.all(ok_part) && name.split('.').count() <= 2
}

/// Checks that span keys or depend on values; returns (key path, message)
/// pairs. One function a section, each a list of independent checks.
pub(super) fn validate(plan: &PlanFile) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut err = |path: &str, message: String| out.push((path.to_string(), message));
    check_top(plan, &mut err);
    check_aws_needed(plan, &mut err);
    check_drill(plan, &mut err);
    check_archive(plan, &mut err);
    check_standbys(plan, &mut err);
    check_endpoint_and_network(plan, &mut err);
    check_failover(plan, &mut err);
    check_active_active(plan, &mut err);
    out
}

/// `active_active`: a self-managed primary, peers with names of their own,
/// a conflict rule the provider has, tables named with their schema.
fn check_active_active(plan: &PlanFile, err: &mut impl FnMut(&str, String)) {
    use super::Provider;
    let Some(aa) = &plan.active_active else {
        return;
    };
    if plan.primary.postgres.is_none() || plan.primary.rds.is_some() {
        err(
            "active_active",
            "active-active replication needs a self-managed primary (`primary.postgres`, no `primary.rds`): pgdr sets up its replication itself".into(),
        );
    }
    if aa.peers.is_empty() {
        err(
            "active_active.peers",
            "name at least one other writable node (name, postgres, region)".into(),
        );
    }
    let own = aa
        .node_name
        .as_ref()
        .map_or(plan.cluster.as_str(), |n| n.as_str());
    let mut names = BTreeSet::from([own]);
    for (i, peer) in aa.peers.iter().enumerate() {
        if !names.insert(peer.name.as_str()) {
            err(
                &format!("active_active.peers[{i}].name"),
                format!(
                    "`{}` names two nodes (the primary's node is `{own}`); give each its own name",
                    peer.name.as_str()
                ),
            );
        }
    }
    if aa.provider == Provider::Native {
        err(
            "active_active.provider",
            "`native` (PostgreSQL 16+'s own subscriptions with origin = none) is designed but not built in this version: pgdr sets up and tests active-active with pglogical 2.4 on PostgreSQL 15; write `provider: pglogical` (native would also resolve no conflict: the incoming change wins or replication stops)".into(),
        );
    }
    // The nodes' replication settings are pgdr's; `settings` may repeat
    // them, not contradict them.
    for (name, value) in aa.node_settings() {
        if let Some(given) = plan.settings.get(&name) {
            if !given.0.eq_ignore_ascii_case(&value) {
                err(
                    &format!("settings.{name}"),
                    format!("active-active replication needs `{name}: {value}` on every node; remove the key (pgdr sets it) or write `{value}`"),
                );
            }
        }
    }
    if let Some(given) = plan.settings.get("shared_preload_libraries") {
        if super::with_pglogical(&given.0).is_some() {
            err(
                "settings.shared_preload_libraries",
                format!("`{}` lacks pglogical, which active-active replication loads on every node; add it, or remove the key (pgdr adds pglogical to each node's own list)", given.0),
            );
        }
    }
    for (i, table) in aa.tables.iter().enumerate() {
        let qualified = table
            .split_once('.')
            .is_some_and(|(s, t)| !s.is_empty() && !t.is_empty() && !t.contains('.'));
        if !qualified {
            err(
                &format!("active_active.tables[{i}]"),
                format!("`{table}` is not a table with its schema; expected schema.table (e.g. public.orders)"),
            );
        }
    }
}

/// `` `section` manages AWS resources and needs an `aws:` section ``.
fn needs_aws(section: &str) -> String {
    format!("`{section}` manages AWS resources and needs an `aws:` section with a `region`")
}

/// The version, the primary and the setting names.
fn check_top(plan: &PlanFile, err: &mut impl FnMut(&str, String)) {
    if plan.version != 1 {
        err(
            "version",
            format!(
                "version {} is not supported; this pgdr reads version 1",
                plan.version
            ),
        );
    }
    if plan.primary.postgres.is_none() && plan.primary.rds.is_none() {
        err(
            "primary",
            "the primary needs `postgres` (a conninfo) or `rds` (an instance), or both".into(),
        );
    }
    if let Some(rds) = &plan.primary.rds {
        if let Some(days) = rds.backup_retention_days {
            if days > 35 {
                err(
                    "primary.rds.backup_retention_days",
                    format!("{days} is out of range; RDS accepts 0-35 days"),
                );
            }
        }
        if rds.instance.is_empty() {
            err("primary.rds.instance", "must not be empty".into());
        }
    }
    for name in plan.settings.keys() {
        if !is_guc_name(name) {
            err(
                &format!("settings.{name}"),
                format!("`{name}` is not a server setting name; expected lower-case letters, digits and `_` (e.g. archive_timeout)"),
            );
        }
    }
}

/// Sections that manage AWS resources need `aws:`.
fn check_aws_needed(plan: &PlanFile, err: &mut impl FnMut(&str, String)) {
    if plan.aws.is_none() {
        if plan.archive.is_some() {
            err("archive", needs_aws("archive"));
        }
        if plan.primary.rds.is_some() {
            err("primary.rds", needs_aws("primary.rds"));
        }
        if plan.endpoint.is_some() {
            err("endpoint", needs_aws("endpoint"));
        }
        if plan.replication_network.is_some() {
            err("replication_network", needs_aws("replication_network"));
        }
    }
}

/// `drill`: a target, something to restore from, checks with names and SQL.
fn check_drill(plan: &PlanFile, err: &mut impl FnMut(&str, String)) {
    if let Some(drill) = &plan.drill {
        if let Err(message) = drill.target() {
            err("drill.target", message);
        }
        if plan.archive.is_none() && plan.primary.rds.is_none() {
            err(
                "drill",
                "a drill restores from the archive (or RDS point-in-time recovery); add an `archive` section".into(),
            );
        }
        if let Some(factor) = drill.max_slowdown {
            if !(factor >= 1.0 && factor.is_finite()) {
                err(
                    "drill.max_slowdown",
                    format!("{factor} is not a slowdown factor; expected a number of at least 1 (2 = a check may take twice as long as in the last passed drill)"),
                );
            }
        }
        if drill.region_every.is_some() && plan.archive.as_ref().is_none_or(|a| a.copies.is_empty())
        {
            err(
                "drill.region_every",
                "a region-loss drill restores from a copy of the archive; add `archive.copies`"
                    .into(),
            );
        }
        let mut names = BTreeSet::new();
        for (i, check) in drill.checks.iter().enumerate() {
            if check.name.trim().is_empty() || check.sql.trim().is_empty() {
                err(
                    &format!("drill.checks[{i}]"),
                    "every check needs a `name` and the `sql` that must return true".into(),
                );
            }
            if !names.insert(check.name.as_str()) {
                err(
                    &format!("drill.checks[{i}].name"),
                    format!("`{}` names two checks; give each its own name (the report lists them by name)", check.name),
                );
            }
        }
    }
}

/// `archive`: prefix, object lock, encryption, who archives, retention, backups.
fn check_archive(plan: &PlanFile, err: &mut impl FnMut(&str, String)) {
    if let Some(archive) = &plan.archive {
        if !archive.prefix.is_empty()
            && (!archive.prefix.ends_with('/') || archive.prefix.starts_with('/'))
        {
            err(
                "archive.prefix",
                format!(
                    "`{}` must end with `/` and must not start with one (e.g. `orders/`)",
                    archive.prefix
                ),
            );
        }
        if let Some(lock) = &archive.object_lock {
            if !(1..=36_500).contains(&lock.days) {
                err(
                    "archive.object_lock.days",
                    format!("{} is out of range; expected 1-36500 days", lock.days),
                );
            }
            if archive.versioning == Some(false) {
                err(
                    "archive.versioning",
                    "object lock requires versioning; set `versioning: true` or remove `object_lock`".into(),
                );
            }
        }
        if let Some(enc) = &archive.encryption {
            match (&enc.kms_key, &enc.sse) {
                (Some(_), Some(_)) | (None, None) => err(
                    "archive.encryption",
                    "give exactly one of `kms_key` (a KMS key id, ARN or alias) or `sse: AES256`"
                        .into(),
                ),
                (None, Some(sse)) if sse != "AES256" && sse != "aws:kms" => err(
                    "archive.encryption.sse",
                    format!(
                        "`{sse}` is not accepted; expected AES256 or aws:kms (or give kms_key)"
                    ),
                ),
                (Some(key), None) if key.trim().is_empty() => {
                    err("archive.encryption.kms_key", "must not be empty".into())
                }
                _ => {}
            }
        }
        let sets_command = plan.settings.contains_key("archive_command");
        if archive.archiver == Some(super::Archiver::Pgdr) && plan.primary.rds.is_some() {
            err(
                "archive.archiver",
                "the primary is RDS, which archives its own WAL and does not let archive_command be set; remove `archiver: pgdr` (RDS's point-in-time recovery covers it)".into(),
            );
        }
        if archive.archiver == Some(super::Archiver::Pgdr) && sets_command {
            err(
                "archive.archiver",
                "`archiver: pgdr` sets archive_command itself; remove `settings.archive_command` or write `archiver: external`".into(),
            );
        }
        if plan.archiver() == Some(super::Archiver::Pgdr) {
            if let Some(mode) = plan.settings.get("archive_mode") {
                if !matches!(mode.0.as_str(), "on" | "always") {
                    err(
                        "settings.archive_mode",
                        format!("`{}` stops archiving, but pgdr archives WAL for this plan (archive.archiver); expected on or always, or write `archiver: external`", mode.0),
                    );
                }
            }
        }
        if let Some(path) = &archive.pgdr_path {
            let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+".contains(c);
            if path.is_empty() || !path.chars().all(safe) {
                err(
                    "archive.pgdr_path",
                    format!("`{path}` cannot go into archive_command unquoted; expected a path of letters, digits and / . _ - + (e.g. /usr/local/bin/pgdr)"),
                );
            }
        }
        if let Some(retention) = archive.wal_retention {
            match retention.whole_days() {
                Some(0) | None => err(
                    "archive.wal_retention",
                    format!("{retention} cannot be an S3 lifecycle expiry; expected a whole number of days, at least 1d (e.g. 35d or 5w)"),
                ),
                _ => {}
            }
        }
        check_copies(archive, err);
        if let Some(base) = &archive.base_backups {
            if base.keep == 0 {
                err("archive.base_backups.keep", "must be at least 1".into());
            }
            if base.every.as_secs() == 0 {
                err(
                    "archive.base_backups.every",
                    "must be longer than 0s".into(),
                );
            }
        }
    }
}

/// `standbys`: unique names and slots, a server each, zones in their region.
fn check_standbys(plan: &PlanFile, err: &mut impl FnMut(&str, String)) {
    let mut names = BTreeSet::new();
    let mut slots = BTreeMap::new();
    for (i, standby) in plan.standbys.iter().enumerate() {
        let at = format!("standbys[{i}]");
        if !names.insert(standby.name.as_str()) {
            err(
                &format!("{at}.name"),
                format!(
                    "standby name `{}` is used twice; every standby needs its own name",
                    standby.name
                ),
            );
        }
        let slot = standby.slot_name();
        if let Some(other) = slots.insert(slot.clone(), standby.name.as_str()) {
            err(
                &format!("{at}.slot"),
                format!("slot `{slot}` is also used by standby `{other}`; each standby needs its own slot"),
            );
        }
        if standby.postgres.is_none() && standby.rds.is_none() {
            err(
                &at,
                "a standby needs `postgres` (a conninfo) or `rds` (a read replica), or both".into(),
            );
        }
        if standby.rds.is_some() && plan.aws.is_none() {
            err(&format!("{at}.rds"), needs_aws("standbys[].rds"));
        }
        if let (Some(zone), Some(region)) = (
            &standby.availability_zone,
            standby
                .region
                .as_ref()
                .or(plan.aws.as_ref().map(|a| &a.region)),
        ) {
            if !zone.starts_with(region.as_str()) {
                err(
                    &format!("{at}.availability_zone"),
                    format!(
                        "`{zone}` is not in region {region}; expected a zone such as {region}a"
                    ),
                );
            }
        }
    }
}

/// `endpoint` inside its zone with a sane TTL; `replication_network` with CIDRs and a port.
fn check_endpoint_and_network(plan: &PlanFile, err: &mut impl FnMut(&str, String)) {
    if let Some(endpoint) = &plan.endpoint {
        if endpoint.ttl.as_secs() == 0 || endpoint.ttl.as_secs() > 2_147_483_647 {
            err("endpoint.ttl", "expected a TTL between 1s and 68y".into());
        }
        let zone = endpoint.hosted_zone.trim_end_matches('.');
        let record = endpoint.record.trim_end_matches('.');
        if zone.is_empty() || !(record == zone || record.ends_with(&format!(".{zone}"))) {
            err(
                "endpoint.record",
                format!(
                    "`{}` is not inside hosted zone `{}`",
                    endpoint.record, endpoint.hosted_zone
                ),
            );
        }
        if endpoint.routing == super::endpoint::Routing::Latency {
            match &plan.active_active {
                None => err(
                    "endpoint.routing",
                    "`latency` sends each client to the nearest writable node and needs `active_active`; with one primary write `simple` (or leave the key out)".into(),
                ),
                Some(aa) => {
                    for (i, peer) in aa.peers.iter().enumerate() {
                        if peer.region.is_none() {
                            err(
                                &format!("active_active.peers[{i}].region"),
                                format!("node `{}` needs its AWS region: its latency record is answered to clients nearest that region", peer.name.as_str()),
                            );
                        }
                    }
                }
            }
        }
    }
    if let Some(network) = &plan.replication_network {
        if network.allow_cidrs.is_empty() {
            err(
                "replication_network.allow_cidrs",
                "list at least one CIDR block that may reach the primary (e.g. [10.1.0.0/16])"
                    .into(),
            );
        }
        if network.port == 0 {
            err(
                "replication_network.port",
                "expected a TCP port, 1-65535".into(),
            );
        }
    }
}

/// `failover`: a watcher needs a standby to fail over to and the archive
/// bucket (its lease lives there); `check_every` shorter than `after`.
fn check_failover(plan: &PlanFile, err: &mut impl FnMut(&str, String)) {
    let Some(failover) = &plan.failover else {
        return;
    };
    if failover.after.as_secs() < 2 {
        err(
            "failover.after",
            format!(
                "{} is too short to tell a lost primary from a slow one; expected at least 2s (30s is the playbook's)",
                failover.after
            ),
        );
    }
    if failover.check_every.as_secs() == 0 || failover.check_every >= failover.after {
        err(
            "failover.check_every",
            format!(
                "{} must be at least 1s and shorter than failover.after ({}), so several probes fail before the watcher acts",
                failover.check_every, failover.after
            ),
        );
    }
    if (failover.automatic || failover.guard) && plan.archive.is_none() {
        err(
            "failover",
            "the watcher and the guard hold their leases in the archive bucket (`<prefix>leases/`): add an `archive` section".into(),
        );
    }
    if failover.automatic && plan.standbys.is_empty() {
        err(
            "failover.automatic",
            "there is no standby to fail over to: add one under `standbys`, or set `automatic: false`".into(),
        );
    }
    for (key, command) in [
        ("failover.fence_command", &failover.fence_command),
        ("failover.notify_command", &failover.notify_command),
    ] {
        if command.as_deref().is_some_and(|c| c.trim().is_empty()) {
            err(
                key,
                "must not be empty: give the command, or leave the key out".into(),
            );
        }
    }
}

/// `archive.copies`: each a name of its own, a region, a prefix like home's,
/// and somewhere other than home (a copy in the home bucket and prefix would
/// be the archive itself).
fn check_copies(archive: &super::Archive, err: &mut impl FnMut(&str, String)) {
    let mut names = BTreeSet::new();
    for (i, copy) in archive.copies.iter().enumerate() {
        let at = format!("archive.copies[{i}]");
        let name = copy.name();
        let name_ok = !name.is_empty()
            && name.len() <= 40
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            err(
                &format!("{at}.name"),
                format!("`{name}` is not a copy name; expected 1-40 of a-z, 0-9 and `-` (it defaults to the region)"),
            );
        }
        if !names.insert(name) {
            err(
                &format!("{at}.name"),
                format!("`{name}` names two copies; give each its own `name` (`--from-copy` and the addresses use it)"),
            );
        }
        let region_ok = !copy.region.is_empty()
            && copy
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            err(
                &format!("{at}.region"),
                format!("`{}` is not an AWS region name; expected lower-case letters, digits and `-` (e.g. us-west-2)", copy.region),
            );
        }
        if let Some(prefix) = &copy.prefix {
            let safe = |c: char| c.is_ascii_alphanumeric() || "/._-".contains(c);
            if !prefix.chars().all(safe) {
                err(
                    &format!("{at}.prefix"),
                    format!("`{prefix}` goes into archive_command; expected letters, digits and / . _ - (e.g. `orders/`)"),
                );
            } else if !prefix.is_empty() && (!prefix.ends_with('/') || prefix.starts_with('/')) {
                err(
                    &format!("{at}.prefix"),
                    format!(
                        "`{prefix}` must end with `/` and must not start with one (e.g. `orders/`)"
                    ),
                );
            }
        }
        let home_key = archive
            .encryption
            .as_ref()
            .and_then(|e| e.kms_key.as_deref());
        if let Some(home_key) = home_key {
            if copy.kms_key.is_none() && !home_key.starts_with("alias/") {
                err(
                    &format!("{at}.kms_key"),
                    format!("home's encryption.kms_key `{home_key}` is a key of one region; give the copy's bucket a key of its region (kms_key: an id, ARN or alias there)"),
                );
            }
        } else if copy.kms_key.is_some() {
            err(
                &format!("{at}.kms_key"),
                "home's bucket has no encryption.kms_key; the copy's is set only with it (the copy keeps home's encryption)".into(),
            );
        }
        if archive.copy_url(copy) == archive.url() {
            err(
                &format!("{at}.bucket"),
                "the copy is the home archive itself (same bucket and prefix); name a bucket in another region".into(),
            );
        }
    }
}
