//! The lint rules. Each is a function of the plan file (and the tier policy)
//! returning findings; the numbers behind each are explained by `lint::RULES` (each rule's page in docs/reference/rules/).

use super::policy::{PolicyFile, TierPolicy};
use super::{Raw, Severity};
use crate::spec::units::numeric_in_base;
use crate::spec::{Desired, Duration, LockMode, PlanFile, Tier};

/// Streaming with a walsender for each standby, plus one for a base backup
/// (pg_basebackup -X stream also takes a temporary slot).
const BASE_BACKUP_ROOM: u32 = 1;
/// PostgreSQL's defaults for max_wal_senders and max_replication_slots.
const DEFAULT_SENDERS: u32 = 10;
/// Above this a TTL is a warning: resolvers keep the old primary that long.
const TTL_WARNING_SECS: u64 = 60;
/// RDS ships transaction logs to its backup storage every five minutes.
const RDS_LOG_SHIPPING_SECS: u64 = 300;
const RDS_MAX_RETENTION_DAYS: u64 = 35;

fn raw(rule: &'static str, path: impl Into<String>, message: String) -> Raw {
    Raw {
        rule,
        path: path.into(),
        message,
        severity: None,
    }
}

fn error(rule: &'static str, path: impl Into<String>, message: String) -> Raw {
    Raw {
        rule,
        path: path.into(),
        message,
        severity: Some(Severity::Error),
    }
}

fn warning(rule: &'static str, path: impl Into<String>, message: String) -> Raw {
    Raw {
        rule,
        path: path.into(),
        message,
        severity: Some(Severity::Warning),
    }
}

fn setting<'a>(plan: &'a PlanFile, name: &str) -> Option<&'a str> {
    plan.settings.get(name).map(|v| v.0.as_str())
}

/// A time setting in seconds (`60s`, `1min` and `60` alike); `None` if unset or unparsable.
fn seconds(plan: &PlanFile, name: &str) -> Option<f64> {
    setting(plan, name).and_then(|v| numeric_in_base(v, Some("s")).ok())
}

fn count(plan: &PlanFile, name: &str) -> Option<u32> {
    setting(plan, name).and_then(|v| v.trim().parse().ok())
}

fn tier_name(tier: Tier) -> &'static str {
    match tier {
        Tier::Mvp => "mvp",
        Tier::Saas => "saas",
        Tier::Financial => "financial",
        Tier::MultiRegion => "multi-region",
    }
}

/// The recovery window the kept base backups promise: every × keep.
fn backup_window(plan: &PlanFile) -> Option<Duration> {
    let base = plan.archive.as_ref()?.base_backups.as_ref()?;
    Some(Duration::from_secs(base.every.as_secs() * base.keep as u64))
}

fn has_sync(plan: &PlanFile) -> bool {
    plan.standbys.iter().any(|s| s.synchronous)
        || plan
            .primary
            .rds
            .as_ref()
            .is_some_and(|r| r.multi_az == Some(true))
}

pub fn run(desired: &Desired, policy: &PolicyFile) -> Vec<Raw> {
    let plan = &desired.plan;
    let mut out = Vec::new();
    wal_retention_covers_backups(plan, &mut out);
    rpo_archive_timeout(plan, &mut out);
    rpo_zero_needs_sync(plan, &mut out);
    max_lag_within_rpo(plan, &mut out);
    sync_cross_region(plan, &mut out);
    endpoint_ttl(plan, &mut out);
    slot_capacity(plan, &mut out);
    archive_configured(plan, &mut out);
    let tier = policy
        .tiers
        .get(tier_name(plan.tier))
        .cloned()
        .unwrap_or_default();
    immutable_archive(plan, &tier, &mut out);
    rds_backups(plan, &mut out);
    drill_cadence(plan, &tier, &mut out);
    tier_requirements(plan, &tier, &mut out);
    failover_fencing(plan, &mut out);
    failover_within_rto(plan, &mut out);
    failover_drilled(plan, &mut out);
    out
}

fn wal_retention_covers_backups(plan: &PlanFile, out: &mut Vec<Raw>) {
    let (Some(window), Some(archive)) = (backup_window(plan), &plan.archive) else {
        return;
    };
    let Some(retention) = archive.wal_retention else {
        return;
    };
    let base = archive
        .base_backups
        .as_ref()
        .expect("window implies base_backups");
    // A kept incremental keeps its full, up to full_every older.
    let window = Duration::from_secs(window.as_secs() + base.full_every.map_or(0, |f| f.as_secs()));
    if retention < window {
        let fulls = base
            .full_every
            .map(|f| format!(", with a full every {f} that the incrementals kept need,"))
            .unwrap_or_default();
        out.push(raw(
            "wal-retention-covers-backups",
            "archive.wal_retention",
            format!(
                "WAL is kept {retention}, but the oldest of {} base backups taken every {}{fulls} is {window} old: restoring it, or any point before it, needs WAL that has already expired. Premature WAL expiry is the leading cause of failed point-in-time recovery. Keep WAL at least {window}, or keep fewer base backups.",
                base.keep, base.every
            ),
        ));
    }
}

fn rpo_archive_timeout(plan: &PlanFile, out: &mut Vec<Raw>) {
    let rpo = plan.objectives.rpo.as_secs();
    if !plan.standbys.is_empty() || rpo == 0 || plan.archive.is_none() {
        return; // streaming bounds the loss, rpo-zero-needs-sync covers 0, archive-configured covers no archive
    }
    if plan.primary.rds.is_some() {
        if rpo < RDS_LOG_SHIPPING_SECS {
            out.push(raw("rpo-archive-timeout", "objectives.rpo", format!(
                "RDS ships WAL to its backups every 5 minutes, so without a standby up to 5 minutes of commits can be lost; an RPO of {} needs a replica or Multi-AZ.",
                plan.objectives.rpo
            )));
        }
        return;
    }
    if let Some(text) = setting(plan, "archive_timeout") {
        if let Err(why) = numeric_in_base(text, Some("s")) {
            out.push(raw("rpo-archive-timeout", "settings.archive_timeout", format!(
                "archive_timeout: {why}; PostgreSQL writes times as 60s, 5min or 1h. Without a streaming standby it must be at most the RPO of {}.",
                plan.objectives.rpo
            )));
            return;
        }
    }
    match seconds(plan, "archive_timeout") {
        Some(t) if t > 0.0 && t <= rpo as f64 => {}
        Some(t) if t > 0.0 => out.push(raw("rpo-archive-timeout", "settings.archive_timeout", format!(
            "without a streaming standby, commits since the last archived WAL segment are lost with the primary; archive_timeout {} s lets that be more than the RPO of {}. Set archive_timeout to at most {}.",
            t, plan.objectives.rpo, plan.objectives.rpo
        ))),
        _ => out.push(raw("rpo-archive-timeout", "settings.archive_timeout", format!(
            "without a streaming standby, commits since the last archived WAL segment are lost with the primary, and with archive_timeout unset (0) a quiet server may not switch segments for hours. Set archive_timeout to at most the RPO of {}.",
            plan.objectives.rpo
        ))),
    }
}

fn rpo_zero_needs_sync(plan: &PlanFile, out: &mut Vec<Raw>) {
    if plan.objectives.rpo.as_secs() == 0 && !has_sync(plan) {
        out.push(raw("rpo-zero-needs-sync", "objectives.rpo", "an RPO of zero means no committed transaction may be lost, which only a synchronous standby (or RDS Multi-AZ) guarantees: a commit returns once the standby has the WAL. Mark a standby `synchronous: true`, or state the RPO you can keep.".into()));
    }
}

fn max_lag_within_rpo(plan: &PlanFile, out: &mut Vec<Raw>) {
    let rpo = plan.objectives.rpo;
    if rpo.as_secs() == 0 {
        return;
    }
    for (i, standby) in plan.standbys.iter().enumerate() {
        if let Some(lag) = standby.max_lag {
            if lag > rpo && !standby.synchronous {
                out.push(raw("max-lag-within-rpo", format!("standbys[{i}].max_lag"), format!(
                    "standby `{}` may lag {lag} and still be a failover target, but failing over to it then loses up to {lag} of commits, more than the RPO of {rpo}. Set max_lag to at most {rpo}.",
                    standby.name
                )));
            }
        }
    }
}

fn sync_cross_region(plan: &PlanFile, out: &mut Vec<Raw>) {
    let home = plan.aws.as_ref().map(|a| a.region.as_str());
    for (i, standby) in plan.standbys.iter().enumerate() {
        if let (true, Some(region), Some(home)) = (standby.synchronous, &standby.region, home) {
            if region.as_str() != home {
                out.push(raw("sync-cross-region", format!("standbys[{i}].synchronous"), format!(
                    "standby `{}` is synchronous but in {region}, another region than the primary ({home}): every commit waits for a cross-region round trip (tens of milliseconds), and a slow link stalls writes. Prefer a synchronous standby in the primary's region and an asynchronous one across regions.",
                    standby.name
                )));
            }
        }
    }
}

fn endpoint_ttl(plan: &PlanFile, out: &mut Vec<Raw>) {
    let Some(endpoint) = &plan.endpoint else {
        return;
    };
    let ttl = endpoint.ttl.as_secs();
    let rto = plan.objectives.rto.as_secs();
    if ttl >= rto {
        out.push(error("endpoint-ttl", "endpoint.ttl", format!(
            "clients may keep resolving the old primary for the whole TTL of {}, which alone uses up the RTO of {}. Keep the TTL well under the RTO; 30s to 60s is usual.",
            endpoint.ttl, plan.objectives.rto
        )));
    } else if ttl > TTL_WARNING_SECS {
        out.push(warning("endpoint-ttl", "endpoint.ttl", format!(
            "clients keep resolving the old primary for up to {} after a failover; above 60s that delay dominates most failovers. 30s to 60s is usual.",
            endpoint.ttl
        )));
    }
}

fn slot_capacity(plan: &PlanFile, out: &mut Vec<Raw>) {
    let streaming = plan.standbys.iter().filter(|s| s.rds.is_none()).count() as u32;
    if streaming == 0 || plan.primary.rds.is_some() {
        return;
    }
    let needed = streaming + BASE_BACKUP_ROOM;
    for name in ["max_wal_senders", "max_replication_slots"] {
        let have = count(plan, name).unwrap_or(DEFAULT_SENDERS);
        if have < needed {
            out.push(raw("slot-capacity", format!("settings.{name}"), format!(
                "{name} is {have}, but {streaming} standby(s) each need one and a base backup needs another: {needed}. When they run out, a standby cannot reconnect or a backup fails. Set {name} to at least {needed}."
            )));
        }
    }
}

fn archive_configured(plan: &PlanFile, out: &mut Vec<Raw>) {
    if plan.archive.is_none() || plan.primary.rds.is_some() {
        return; // RDS archives WAL itself
    }
    if let Some(level) = setting(plan, "wal_level") {
        if !matches!(level.to_ascii_lowercase().as_str(), "replica" | "logical") {
            out.push(raw("archive-configured", "settings.wal_level", format!(
                "wal_level {level} writes too little WAL to archive or replay; set it to replica (or logical)."
            )));
        }
    }
    if plan.archiver() == Some(crate::spec::Archiver::Pgdr) {
        return; // pgdr sets archive_mode and archive_command itself
    }
    let mode = setting(plan, "archive_mode").map(|m| m.to_ascii_lowercase());
    if !matches!(
        mode.as_deref(),
        Some("on") | Some("always") | Some("true") | Some("yes") | Some("1")
    ) {
        out.push(raw("archive-configured", "settings.archive_mode", "the plan has an archive, but archive_mode is not on (PostgreSQL's default is off), so no WAL reaches it. Set archive_mode: \"on\".".into()));
    }
    let command = setting(plan, "archive_command").filter(|c| !c.trim().is_empty());
    let library = setting(plan, "archive_library").filter(|c| !c.trim().is_empty());
    if command.is_none() && library.is_none() {
        out.push(raw("archive-configured", "settings.archive_command", "the plan has an archive, but no archive_command (or archive_library) says how WAL gets there. Set it, for example to your pgBackRest or WAL-G archive-push command.".into()));
    }
}

fn immutable_archive(plan: &PlanFile, tier: &TierPolicy, out: &mut Vec<Raw>) {
    let Some(archive) = &plan.archive else { return };
    let tier_name = tier_name(plan.tier);
    if tier.require_versioning && archive.versioning != Some(true) {
        out.push(raw("immutable-archive", "archive.versioning", format!(
            "the {tier_name} tier requires versioning on the WAL archive, so an overwritten or deleted WAL file can be recovered. Set versioning: true."
        )));
    }
    if let Some(required) = tier.object_lock {
        let have = archive.object_lock.as_ref().map(|l| l.mode);
        let strong_enough = match (required, have) {
            (_, None) => false,
            (LockMode::Governance, Some(_)) => true,
            (LockMode::Compliance, Some(mode)) => mode == LockMode::Compliance,
        };
        if !strong_enough {
            out.push(raw("immutable-archive", "archive.object_lock", format!(
                "the {tier_name} tier requires an object lock in {} mode, so not even an administrator (or an attacker with their keys) can delete archived WAL early. Set object_lock: {{ mode: {}, days: ... }}.",
                required.as_s3().to_ascii_lowercase(),
                required.as_s3().to_ascii_lowercase()
            )));
        }
    }
    if let (Some(lock), Some(retention)) = (&archive.object_lock, archive.wal_retention) {
        if lock.days as u64 * 86_400 > retention.as_secs() {
            out.push(warning("immutable-archive", "archive.object_lock.days", format!(
                "objects are locked for {} days but WAL expires after {retention}: the lifecycle rule cannot remove locked versions, so they are kept (and paid for) until the lock ends. Make the lock no longer than wal_retention.",
                lock.days
            )));
        }
    }
}

fn rds_backups(plan: &PlanFile, out: &mut Vec<Raw>) {
    let Some(rds) = &plan.primary.rds else { return };
    let days = rds.backup_retention_days.unwrap_or(0) as u64;
    if days == 0 {
        out.push(raw("rds-backups", "primary.rds.backup_retention_days", "RDS automated backups are off (0 days, or not set), so there is no point-in-time recovery of the instance. Set backup_retention_days between 1 and 35.".into()));
        return;
    }
    let window = [
        backup_window(plan),
        plan.archive.as_ref().and_then(|a| a.wal_retention),
    ]
    .into_iter()
    .flatten()
    .max();
    if let Some(window) = window {
        if days * 86_400 < window.as_secs() {
            if window.as_secs() > RDS_MAX_RETENTION_DAYS * 86_400 {
                out.push(warning("rds-backups", "primary.rds.backup_retention_days", format!(
                    "the recovery window is {window}, but RDS keeps automated backups for at most 35 days; beyond that, recovery relies on the S3 archive alone. Keep backup_retention_days at 35 and make sure the archive covers the rest."
                )));
            } else {
                out.push(raw("rds-backups", "primary.rds.backup_retention_days", format!(
                    "RDS keeps automated backups for {days} days, less than the recovery window of {window} the archive promises. Set backup_retention_days to at least {}.",
                    window.as_secs().div_ceil(86_400)
                )));
            }
        }
    }
}

/// Standbys, and active-active peers, in another region than `aws.region`:
/// a peer there takes the region's place as well as a standby would, and
/// takes writes while it does.
fn in_other_regions(plan: &PlanFile) -> u32 {
    let home = plan.aws.as_ref().map(|a| a.region.as_str());
    let other = |region: Option<&str>| region.is_some_and(|r| Some(r) != home);
    let standbys = plan
        .standbys
        .iter()
        .filter(|s| other(s.region.as_ref().map(|r| r.as_str())));
    let peers = plan.active_active.iter().flat_map(|aa| &aa.peers);
    let peers = peers.filter(|p| other(p.region.as_ref().map(|r| r.as_str())));
    (standbys.count() + peers.count()) as u32
}

/// A backup is only proven by a drill, and the proof must outlive the WAL it
/// needs until the next drill: drill.every within the tier's maximum and
/// within archive.wal_retention.
fn drill_cadence(plan: &PlanFile, tier: &TierPolicy, out: &mut Vec<Raw>) {
    let name = tier_name(plan.tier);
    match (&plan.drill, tier.max_drill_interval) {
        (None, Some(max)) => out.push(raw(
            "drill-cadence",
            "drill",
            format!("the {name} tier requires a restore drill at least every {max}: add `drill: {{ every: {max} }}` and run `pgdr drill` (recovery is only as reliable as its last successful test)"),
        )),
        (Some(drill), Some(max)) if drill.every > max => out.push(raw(
            "drill-cadence",
            "drill.every",
            format!("the {name} tier requires a restore drill at least every {max}, not every {}", drill.every),
        )),
        _ => {}
    }
    if let (Some(drill), Some(retention)) = (
        &plan.drill,
        plan.archive.as_ref().and_then(|a| a.wal_retention),
    ) {
        if drill.every > retention {
            out.push(raw(
                "drill-cadence",
                "drill.every",
                format!("drills every {} but WAL is kept {retention}: between drills the lifecycle rule removes WAL the last drilled backup needs, so the proof lapses before the next drill. Drill at least every {retention}, or keep WAL longer", drill.every),
            ));
        }
    }
}

fn tier_requirements(plan: &PlanFile, tier: &TierPolicy, out: &mut Vec<Raw>) {
    let name = tier_name(plan.tier);
    let mut need = |path: &str, what: String| {
        out.push(raw(
            "tier-requirements",
            path,
            format!("the {name} tier ({}) requires {what}", tier.description),
        ))
    };
    if tier.require_archive && plan.archive.is_none() {
        need(
            "archive",
            "continuous WAL archiving with point-in-time recovery: add an `archive` section".into(),
        );
    }
    if let Some(max) = tier.max_base_backup_interval {
        match plan.archive.as_ref().and_then(|a| a.base_backups.as_ref()) {
            None if plan.archive.is_some() => need("archive.base_backups", format!("base backups at least every {max}: add base_backups: {{ every: {max}, keep: ... }}")),
            Some(b) if b.every > max => need("archive.base_backups.every", format!("base backups at least every {max}, not every {}", b.every)),
            _ => {}
        }
    }
    if let (Some(min), Some(archive)) = (tier.min_wal_retention, &plan.archive) {
        match archive.wal_retention {
            Some(r) if r < min => need(
                "archive.wal_retention",
                format!("at least {min} of WAL, not {r}"),
            ),
            _ => {}
        }
    }
    if tier.require_kms {
        if let Some(archive) = &plan.archive {
            if archive
                .encryption
                .as_ref()
                .and_then(|e| e.kms_key.as_ref())
                .is_none()
            {
                need("archive.encryption", "the archive encrypted with a KMS key you control: encryption: { kms_key: ... }".into());
            }
        }
    }
    if tier.require_deletion_protection {
        if let Some(rds) = &plan.primary.rds {
            if rds.deletion_protection != Some(true) {
                need(
                    "primary.rds.deletion_protection",
                    "deletion protection on the RDS primary: deletion_protection: true".into(),
                );
            }
        }
    }
    let multi_az = plan
        .primary
        .rds
        .as_ref()
        .is_some_and(|r| r.multi_az == Some(true)) as u32;
    let other_zone = plan
        .standbys
        .iter()
        .filter(|s| s.availability_zone.is_some())
        .count() as u32
        + multi_az;
    if other_zone < tier.min_standbys_other_zone {
        need("standbys", format!("{} standby(s) in another availability zone (a standby with availability_zone, or an RDS Multi-AZ primary)", tier.min_standbys_other_zone));
    }
    let sync = plan.standbys.iter().filter(|s| s.synchronous).count() as u32 + multi_az;
    if sync < tier.min_synchronous_standbys {
        need(
            "standbys",
            format!(
                "{} synchronous standby(s): synchronous: true",
                tier.min_synchronous_standbys
            ),
        );
    }
    if in_other_regions(plan) < tier.min_standbys_other_region {
        need(
            "standbys",
            format!(
                "{} standby(s) in another region than aws.region, or writable nodes there (active_active.peers with a region)",
                tier.min_standbys_other_region
            ),
        );
    }
    if tier.min_archive_copies_other_region > 0 {
        let home = plan.aws.as_ref().map(|a| a.region.as_str());
        let copies = plan.archive.iter().flat_map(|a| &a.copies);
        let other = copies.filter(|c| Some(c.region.as_str()) != home).count() as u32;
        if other < tier.min_archive_copies_other_region && plan.archive.is_some() {
            need(
                "archive.copies",
                format!(
                    "{} copy(ies) of the archive in another region than aws.region, so a restore survives the loss of the home region: add archive.copies: [{{ bucket: ..., region: ... }}]",
                    tier.min_archive_copies_other_region
                ),
            );
        }
    }
    if let Some(max) = tier.max_rpo {
        if plan.objectives.rpo > max {
            need(
                "objectives.rpo",
                format!("an RPO of at most {max}, not {}", plan.objectives.rpo),
            );
        }
    }
}

/// Automatic failover done naively is how split brains happen: a watcher that
/// lost its own network promotes a standby while the old primary keeps taking
/// writes. Before promoting, pgdr needs the old primary fenced: by the guard
/// beside it, or a STONITH command. Without either it can only fence a
/// primary that still answers, and refuses otherwise.
fn failover_fencing(plan: &PlanFile, out: &mut Vec<Raw>) {
    let Some(failover) = plan.failover.as_ref().filter(|f| f.automatic) else {
        return;
    };
    if failover.fence_command.is_some() || failover.guard {
        return;
    }
    let message = "automatic failover with neither `guard: true` (a `pgdr watch --guard` beside the primary fences it when it is cut off) nor a `fence_command` (STONITH): when the primary stops answering, the watcher cannot know it stopped taking writes, so it refuses to promote and pages instead — no automatic failover when it matters most. Add one of them".to_string();
    out.push(if plan.tier == Tier::Financial {
        error("failover-fencing", "failover", message)
    } else {
        warning("failover-fencing", "failover", message)
    });
}

/// The watcher waits `after` before acting; clients then wait out the
/// endpoint's TTL. Both come out of the RTO before the promotion itself.
fn failover_within_rto(plan: &PlanFile, out: &mut Vec<Raw>) {
    let Some(failover) = plan.failover.as_ref().filter(|f| f.automatic) else {
        return;
    };
    let ttl = plan.endpoint.as_ref().map_or(0, |e| e.ttl.as_secs());
    let spent = failover.after.as_secs() + ttl;
    let rto = plan.objectives.rto;
    if spent >= rto.as_secs() {
        out.push(error("failover-within-rto", "failover.after", format!(
            "the watcher waits {} before it acts{}, which alone uses up the RTO of {rto}: shorten failover.after (or the TTL), or state the RTO you can keep",
            failover.after,
            if ttl > 0 { format!(" and clients keep the old address for the endpoint's TTL ({}s)", ttl) } else { String::new() }
        )));
    } else if spent * 2 > rto.as_secs() {
        out.push(warning("failover-within-rto", "failover.after", format!(
            "the watcher's wait ({}) and the endpoint's TTL ({ttl}s) use more than half of the RTO of {rto}, leaving little for promotion, the endpoint move and anything that goes wrong",
            failover.after
        )));
    }
}

/// A failover that was never rehearsed is a runbook never run: with
/// automatic failover on, the plan should say how often a switchover or
/// failover is measured (`drill.failover_every`), and `plan` then checks it.
fn failover_drilled(plan: &PlanFile, out: &mut Vec<Raw>) {
    if !plan.failover.as_ref().is_some_and(|f| f.automatic) {
        return;
    }
    if plan.drill.as_ref().and_then(|d| d.failover_every).is_none() {
        let message = "automatic failover is on, but nothing says how often a failover is rehearsed: set `drill.failover_every` (90d is usual) and run `pgdr switchover` that often; `plan` then reports a failover drill that is missing, old, or beyond the objectives".to_string();
        out.push(if plan.tier == Tier::Financial {
            error("failover-drilled", "drill.failover_every", message)
        } else {
            warning("failover-drilled", "drill.failover_every", message)
        });
    }
}
