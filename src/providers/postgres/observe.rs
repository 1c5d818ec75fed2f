//! The live model of one server, read in one round of concurrent queries:
//! its settings (with pending values), slots, the archiver, replication
//! (both sides), what a failover needs (limits, expiring roles). Columns are
//! read with `try_get`: a type the server answers differently is an error
//! naming the query, never a panic.

use super::{connect, query_error, system};
use crate::providers::ProviderError;
use crate::settings::PgEnv;
use crate::spec::Conninfo;
use crate::state::postgres::{
    Archiver, LiveSetting, PgHealth, PgLive, Replay, Replication, SlotHealth,
};
use crate::state::wal::Lsn;
use std::collections::BTreeMap;
use tokio_postgres::types::PgLsn;
use tokio_postgres::Row;

/// Reads the named settings, every slot and the archiver of one server.
pub async fn observe(
    role: &str,
    info: &Conninfo,
    env: &PgEnv,
    setting_names: &[String],
) -> Result<PgLive, ProviderError> {
    let sys = system(role, info);
    let client = connect(role, info, env).await?;
    let started = std::time::Instant::now();
    let names: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&setting_names];
    let basics = client.query_one(
        "SELECT current_setting('server_version_num')::int, pg_is_in_recovery(),
                pg_last_wal_replay_lsn(),
                to_char(pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC',
                extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8",
        &[],
    );
    let settings = client.query(
        "SELECT name, setting, unit, vartype, context, enumvals, min_val, max_val,
                pending_restart, current_setting(name)
           FROM pg_settings WHERE name = ANY($1)",
        &names,
    );
    // The last line for a name in the config files is the value a restart or
    // reload would make active. Only superusers (and pg_read_all_settings) may
    // read it; without it, pending values are unknown and re-issued.
    let files = client.query(
        "SELECT name, setting FROM pg_file_settings
          WHERE name = ANY($1) ORDER BY seqno",
        &names,
    );
    let slots = client.query(
        "SELECT slot_name::text, slot_type, active,
                CASE WHEN restart_lsn IS NULL OR pg_is_in_recovery() THEN NULL
                     ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint END,
                -- `failover` exists from PostgreSQL 17 on.
                coalesce((to_jsonb(s) ->> 'failover')::bool, false)
           FROM pg_replication_slots s ORDER BY slot_name",
        &[],
    );
    let archiver = client.query_one(
        "SELECT current_setting('archive_mode'), failed_count, last_failed_wal,
                to_char(last_failed_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC',
                last_archived_wal,
                to_char(last_archived_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC',
                coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false),
                CASE WHEN pg_is_in_recovery() THEN NULL
                     ELSE pg_walfile_name(pg_current_wal_lsn()) END
           FROM pg_stat_archiver",
        &[],
    );
    let conninfo = client.query_one("SELECT current_setting('primary_conninfo')", &[]);
    let replication = client.query(
        "SELECT application_name, coalesce(state, ''), coalesce(sync_state, ''),
                coalesce(extract(epoch FROM replay_lag), 0)::float8,
                CASE WHEN pg_is_in_recovery() OR replay_lsn IS NULL THEN NULL
                     ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint END
           FROM pg_stat_replication ORDER BY application_name",
        &[],
    );
    let receiver = client.query_opt("SELECT status FROM pg_stat_wal_receiver", &[]);
    // What a failover needs: the settings a standby must match, and login
    // roles whose password expires within 60 days.
    let readiness = client.query(
        "SELECT 's', name, setting::bigint, NULL::float8 FROM pg_settings
          WHERE name IN ('max_connections', 'max_worker_processes', 'max_wal_senders',
                         'max_prepared_transactions', 'max_locks_per_transaction')
         UNION ALL
         SELECT 'r', rolname::text, NULL, extract(epoch FROM rolvaliduntil - now())::float8
           FROM pg_roles
          WHERE rolcanlogin AND rolvaliduntil IS NOT NULL
            AND rolvaliduntil < now() + interval '60 days'",
        &[],
    );
    let (basics, settings, files, slots, archiver, conninfo, replication, receiver, readiness) = tokio::join!(
        basics,
        settings,
        files,
        slots,
        archiver,
        conninfo,
        replication,
        receiver,
        readiness
    );
    let readiness =
        readiness.map_err(|e| query_error(&sys, "reading settings and roles for failover", &e))?;
    // Reading primary_conninfo needs pg_read_all_settings; without it the
    // application_name is unknown and left alone.
    let conninfo = conninfo.ok();
    let replication =
        replication.map_err(|e| query_error(&sys, "reading pg_stat_replication", &e))?;
    let receiver = receiver.map_err(|e| query_error(&sys, "reading pg_stat_wal_receiver", &e))?;
    let basics = basics.map_err(|e| query_error(&sys, "reading the server version", &e))?;
    let settings = settings.map_err(|e| query_error(&sys, "reading pg_settings", &e))?;
    let slots = slots.map_err(|e| query_error(&sys, "reading pg_replication_slots", &e))?;
    let archiver = archiver.map_err(|e| query_error(&sys, "reading pg_stat_archiver", &e))?;
    let rows = Rows {
        basics,
        settings,
        files: files.ok(),
        slots,
        archiver,
        conninfo,
        replication,
        receiver,
        readiness,
    };
    let live =
        decode(info, &rows).map_err(|e| query_error(&sys, "reading the server's state", &e))?;
    tracing::info!(
        target: "pgdr::postgres",
        server = %sys,
        ms = started.elapsed().as_millis() as u64,
        "read settings, slots, archiver and replication"
    );
    Ok(live)
}

/// What the queries of [`observe`] answered.
struct Rows {
    basics: Row,
    settings: Vec<Row>,
    /// `pg_file_settings`: readable by superusers (and pg_read_all_settings) only.
    files: Option<Vec<Row>>,
    slots: Vec<Row>,
    archiver: Row,
    conninfo: Option<Row>,
    replication: Vec<Row>,
    receiver: Option<Row>,
    readiness: Vec<Row>,
}

/// The live model from the rows, every column read with `try_get`.
fn decode(info: &Conninfo, rows: &Rows) -> Result<PgLive, tokio_postgres::Error> {
    let Rows {
        basics,
        settings,
        files,
        slots,
        archiver,
        conninfo,
        replication,
        receiver,
        readiness,
    } = rows;
    let mut file_values: BTreeMap<String, String> = BTreeMap::new();
    if let Some(rows) = files {
        for row in rows {
            file_values.insert(row.try_get(0)?, row.try_get(1)?);
        }
    }
    let conninfo: Option<String> = conninfo.as_ref().map(|r| r.try_get(0)).transpose()?;
    let in_recovery: bool = basics.try_get(1)?;
    let mut live = PgLive {
        server: info.to_string(),
        version_num: basics.try_get(0)?,
        in_recovery,
        settings: BTreeMap::new(),
        slots: BTreeMap::new(),
        primary_conninfo_readable: conninfo.is_some(),
        primary_conninfo_app: conninfo.as_deref().and_then(application_name_of),
        health: PgHealth {
            conninfo_user: conninfo.as_deref().and_then(|c| conninfo_key(c, "user")),
            ..PgHealth::default()
        },
    };
    for r in readiness {
        match r.try_get::<_, &str>(0)? {
            "s" => {
                live.health
                    .limits
                    .insert(r.try_get(1)?, r.try_get::<_, Option<i64>>(2)?.unwrap_or(0));
            }
            _ => live.health.expiring_roles.push((
                r.try_get(1)?,
                r.try_get::<_, Option<f64>>(3)?.unwrap_or(0.0),
            )),
        }
    }
    for row in replication {
        live.health.replication.push(Replication {
            application_name: row.try_get(0)?,
            state: row.try_get(1)?,
            sync_state: row.try_get(2)?,
            replay_lag_seconds: row.try_get(3)?,
            replay_lag_bytes: row.try_get(4)?,
        });
    }
    live.health.receiver = receiver.as_ref().map(|row| row.try_get(0)).transpose()?;
    if in_recovery {
        live.health.replay = Some(Replay {
            lsn: basics
                .try_get::<_, Option<PgLsn>>(2)?
                .map(|l| Lsn(u64::from(l))),
            last_transaction: basics.try_get(3)?,
            age_seconds: basics.try_get(4)?,
        });
    }
    for row in settings {
        let name: String = row.try_get(0)?;
        let pending_restart: bool = row.try_get(8)?;
        let setting: String = row.try_get(1)?;
        live.settings.insert(
            name.clone(),
            LiveSetting {
                // archive_command reads "(disabled)" while archive_mode is off; the
                // configured value is what a restart with archiving on will use.
                setting: if setting == "(disabled)" {
                    file_values.get(&name).cloned().unwrap_or_default()
                } else {
                    setting
                },
                unit: row.try_get(2)?,
                vartype: row.try_get(3)?,
                context: row.try_get(4)?,
                enumvals: row.try_get(5)?,
                min_val: row.try_get(6)?,
                max_val: row.try_get(7)?,
                pending_restart,
                display: row.try_get(9)?,
                file_value: if pending_restart {
                    file_values.get(&name).cloned()
                } else {
                    None
                },
                name,
            },
        );
    }
    for row in slots {
        let name: String = row.try_get(0)?;
        let slot_type: String = row.try_get(1)?;
        live.slots.insert(name.clone(), slot_type.clone());
        live.health.slots.push(SlotHealth {
            name,
            slot_type,
            active: row.try_get(2)?,
            retained_bytes: row.try_get(3)?,
            failover: row.try_get(4)?,
        });
    }
    live.health.archiver = Some(Archiver {
        archive_mode: archiver.try_get(0)?,
        failed_count: archiver.try_get(1)?,
        last_failed_wal: archiver.try_get(2)?,
        last_failed_time: archiver.try_get(3)?,
        last_archived_wal: archiver.try_get(4)?,
        last_archived_time: archiver.try_get(5)?,
        failing: archiver.try_get(6)?,
        current_wal: archiver.try_get(7)?,
    });
    Ok(live)
}

/// The `application_name` of a primary_conninfo, if it sets one.
fn application_name_of(primary_conninfo: &str) -> Option<String> {
    conninfo_key(primary_conninfo, "application_name")
}

/// One key of a primary_conninfo (never `password`: callers ask for others).
fn conninfo_key(primary_conninfo: &str, key: &str) -> Option<String> {
    crate::spec::conninfo::split_pairs(primary_conninfo)
        .ok()?
        .into_iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}
