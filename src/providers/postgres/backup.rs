//! What base backups, restores and drills ask of a server: its identity and
//! size, its databases, a WAL segment switch, the session a file-level
//! backup holds open between `pg_backup_start` and `pg_backup_stop`, and (of
//! a restored server) whether it left recovery and what it replayed.

use super::{connect, query_error, system};
use crate::providers::ProviderError;
use crate::settings::PgEnv;
use crate::spec::Conninfo;
use crate::state::wal::{Lsn, SegmentSize, DEFAULT_SEGMENT_SIZE};
use tokio_postgres::types::PgLsn;
use tokio_postgres::Client;

/// What a base backup records about its source server.
#[derive(Debug, Clone)]
pub struct BackupFacts {
    /// `server_version_num`, e.g. 150004.
    pub version_num: u32,
    pub system_identifier: String,
    pub wal_segment_size: SegmentSize,
    pub in_recovery: bool,
    /// The sum of every database's size: the progress bar's total.
    pub total_bytes: u64,
    /// `data_directory`, as the server names it (on its own host).
    pub data_directory: String,
    /// Pages carry checksums (`initdb -k`) and are `page::PAGE` bytes: a
    /// file-level backup checks every page it reads.
    pub page_checksums: bool,
}

pub async fn backup_facts(
    role: &str,
    info: &Conninfo,
    env: &PgEnv,
) -> Result<BackupFacts, ProviderError> {
    let sys = system(role, info);
    let client = connect(role, info, env).await?;
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int4,
                    (SELECT system_identifier::text FROM pg_control_system()),
                    (SELECT setting::int8 FROM pg_settings WHERE name = 'wal_segment_size'),
                    pg_is_in_recovery(),
                    (SELECT sum(pg_database_size(oid))::int8 FROM pg_database WHERE datallowconn),
                    current_setting('data_directory'),
                    current_setting('data_checksums') = 'on' AND current_setting('block_size') = '8192'",
            &[],
        )
        .await
        .map_err(|e| query_error(&sys, "reading the server's identity", &e))?;
    let facts = (|| -> Result<BackupFacts, tokio_postgres::Error> {
        Ok(BackupFacts {
            version_num: row.try_get::<_, i32>(0)?.max(0) as u32,
            system_identifier: row.try_get::<_, Option<String>>(1)?.unwrap_or_default(),
            // A server only runs with a size PostgreSQL allows.
            wal_segment_size: row
                .try_get::<_, Option<i64>>(2)?
                .and_then(|b| SegmentSize::new(b.max(0) as u64))
                .unwrap_or(DEFAULT_SEGMENT_SIZE),
            in_recovery: row.try_get(3)?,
            total_bytes: row.try_get::<_, Option<i64>>(4)?.unwrap_or(0).max(0) as u64,
            data_directory: row.try_get(5)?,
            page_checksums: row.try_get(6)?,
        })
    })();
    facts.map_err(|e| query_error(&sys, "reading the server's identity", &e))
}

/// The databases a server holds (templates left out): what a restore must bring back.
pub async fn databases(client: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT datname FROM pg_database WHERE NOT datistemplate",
            &[],
        )
        .await?;
    rows.iter().map(|r| r.try_get(0)).collect()
}

/// `pg_switch_wal()`: closes the current segment so it is archived now.
pub async fn switch_wal(role: &str, info: &Conninfo, env: &PgEnv) -> Result<(), ProviderError> {
    let sys = system(role, info);
    let client = connect(role, info, env).await?;
    client
        .simple_query("SELECT pg_switch_wal()")
        .await
        .map(|_| ())
        .map_err(|e| query_error(&sys, "switching WAL segments", &e))
}

/// A non-exclusive base backup in progress: the session that started it
/// must stay open until [`BackupSession::stop`] (PostgreSQL ends the backup
/// when the session ends, so a killed pgdr leaves no backup mode behind).
pub struct BackupSession {
    sys: String,
    client: Client,
    /// PostgreSQL 15 renamed the functions.
    v15: bool,
}

/// What `pg_backup_stop` returns: the end of the WAL the backup needs and
/// the `backup_label` (and `tablespace_map`) files the copy must carry.
pub struct BackupStopped {
    pub lsn: Lsn,
    pub label_file: String,
    pub tablespace_map: String,
}

impl BackupSession {
    /// `pg_backup_start(label, fast => true)`: an immediate checkpoint, then
    /// the position the backup starts from.
    pub async fn start(
        role: &str,
        info: &Conninfo,
        env: &PgEnv,
        version_num: u32,
        label: &str,
    ) -> Result<(BackupSession, Lsn), ProviderError> {
        let sys = system(role, info);
        let client = connect(role, info, env).await?;
        let v15 = version_num >= 150000;
        let sql = if v15 {
            "SELECT pg_backup_start($1, true)"
        } else {
            "SELECT pg_start_backup($1, true, false)"
        };
        let row = client
            .query_one(sql, &[&label])
            .await
            .map_err(|e| query_error(&sys, "starting the backup (pg_backup_start)", &e))?;
        let lsn: PgLsn = row
            .try_get(0)
            .map_err(|e| query_error(&sys, "starting the backup (pg_backup_start)", &e))?;
        Ok((BackupSession { sys, client, v15 }, Lsn(u64::from(lsn))))
    }

    /// `pg_backup_stop(wait_for_archive => true)`: on a primary it returns
    /// once the backup's last WAL segment is archived.
    pub async fn stop(self) -> Result<BackupStopped, ProviderError> {
        let sql = if self.v15 {
            "SELECT lsn, labelfile, spcmapfile FROM pg_backup_stop(true)"
        } else {
            "SELECT lsn, labelfile, spcmapfile FROM pg_stop_backup(false, true)"
        };
        let what = "ending the backup (pg_backup_stop)";
        let row = self
            .client
            .query_one(sql, &[])
            .await
            .map_err(|e| query_error(&self.sys, what, &e))?;
        let read = |e: tokio_postgres::Error| query_error(&self.sys, what, &e);
        let lsn: PgLsn = row.try_get(0).map_err(read)?;
        Ok(BackupStopped {
            lsn: Lsn(u64::from(lsn)),
            label_file: row.try_get(1).map_err(read)?,
            tablespace_map: row
                .try_get::<_, Option<String>>(2)
                .map_err(read)?
                .unwrap_or_default(),
        })
    }
}

/// Whether a server is still in recovery.
pub async fn in_recovery(client: &Client) -> Result<bool, ProviderError> {
    client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|e| query_error("postgres.restored", "reading pg_is_in_recovery()", &e))
}

/// What a restored server replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct Replayed {
    /// Its last transaction's commit time: seconds since the epoch, and as
    /// PostgreSQL prints it (to the microsecond).
    pub commit_epoch: Option<f64>,
    pub commit_text: Option<String>,
    /// The position replay reached.
    pub lsn: Option<Lsn>,
}

pub async fn replayed(client: &Client) -> Result<Replayed, ProviderError> {
    let read = |e: tokio_postgres::Error| {
        query_error("postgres.restored", "reading what recovery replayed", &e)
    };
    let row = client
        .query_one(
            "SELECT extract(epoch FROM pg_last_xact_replay_timestamp())::float8,
                    pg_last_xact_replay_timestamp()::text, pg_last_wal_replay_lsn()",
            &[],
        )
        .await
        .map_err(read)?;
    let lsn: Option<PgLsn> = row.try_get(2).map_err(read)?;
    Ok(Replayed {
        commit_epoch: row.try_get(0).map_err(read)?,
        commit_text: row.try_get(1).map_err(read)?,
        lsn: lsn.map(|l| Lsn(u64::from(l))),
    })
}
