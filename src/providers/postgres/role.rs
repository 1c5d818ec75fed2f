//! PostgreSQL for role changes (switchover, failover): what a server's role
//! and position are, and the single writes a role change makes — fence and
//! unfence a primary, promote a standby, point a standby at another primary,
//! create a slot on the new primary.
//!
//! `primary_conninfo` may hold a password: it is read and rewritten here, and
//! only its host, port and application_name ever leave this module.

use super::{connect, query_error, system, Session};
use crate::providers::poll::{poll_until, Polled};
use crate::providers::ProviderError;
use crate::settings::PgEnv;
use crate::spec::conninfo::split_pairs;
use crate::spec::Conninfo;
use crate::state::wal::Lsn;
use std::time::Duration;
use tokio_postgres::types::PgLsn;

/// A server's role and position, read in one round trip on a new session (so
/// it sees the configuration the postmaster has now, after any reload).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoleState {
    pub in_recovery: bool,
    /// `default_transaction_read_only` as a new session gets it.
    pub read_only: bool,
    /// Other client sessions holding a transaction id (writing now).
    pub writers: i64,
    /// On a primary: WAL flushed to disk (what a standby can receive).
    pub flush_lsn: Option<Lsn>,
    /// On a standby: replayed.
    pub replay_lsn: Option<Lsn>,
    /// On a standby with WAL received but not replayed: seconds since the last
    /// replayed commit (its own measure of lag); 0 when everything is
    /// replayed; `None` when it has WAL to replay and never replayed a
    /// commit, so its lag cannot be told.
    pub replay_delay_seconds: Option<f64>,
    /// On a standby: seconds since the last replayed transaction committed.
    pub last_commit_age_seconds: Option<f64>,
    pub timeline: i64,
    /// Where its files are and the port it listens on (to tell whether this
    /// machine runs it); the data directory is visible to superusers only.
    pub data_directory: Option<String>,
    pub port: i32,
    pub major: u32,
    /// On a standby: the host, port and application_name of primary_conninfo.
    pub upstream: Option<Upstream>,
    pub slots: Vec<String>,
    /// This server's view of its standbys: application_name, state, replay lag (s).
    pub replication: Vec<(String, String, f64)>,
}

/// Where a standby's primary_conninfo points (nothing else of it is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub host: Option<String>,
    pub port: Option<String>,
    pub application_name: Option<String>,
}

fn upstream_of(conninfo: &str) -> Option<Upstream> {
    if conninfo.trim().is_empty() {
        return None;
    }
    let pairs = split_pairs(conninfo).ok()?;
    let get = |key: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    Some(Upstream {
        host: get("host").or_else(|| get("hostaddr")),
        port: get("port"),
        application_name: get("application_name"),
    })
}

/// Reads a server's role and position.
pub async fn state(role: &str, info: &Conninfo, env: &PgEnv) -> Result<RoleState, ProviderError> {
    let sys = system(role, info);
    let client = connect(role, info, env).await?;
    let row = client
        .query_one(
            "SELECT pg_is_in_recovery(),
                    current_setting('default_transaction_read_only') = 'on',
                    (SELECT count(*) FROM pg_stat_activity
                      WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
                        AND backend_xid IS NOT NULL),
                    CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_flush_lsn() END,
                    pg_last_wal_replay_lsn(),
                    CASE WHEN pg_is_in_recovery() AND pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()
                         THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())
                         ELSE 0 END::float8,
                    CASE WHEN pg_is_in_recovery()
                         THEN (SELECT timeline_id::int8 FROM pg_control_checkpoint())
                         -- A primary's current timeline: its checkpoint's lags
                         -- behind a promotion until the next checkpoint.
                         ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int8 END,
                    (SELECT setting FROM pg_settings WHERE name = 'data_directory'),
                    current_setting('port')::int4,
                    current_setting('server_version_num')::int4 / 10000,
                    (SELECT setting FROM pg_settings WHERE name = 'primary_conninfo'),
                    ARRAY(SELECT slot_name::text FROM pg_replication_slots ORDER BY 1),
                    ARRAY(SELECT application_name || E'\t' || coalesce(state, '') || E'\t'
                                 || coalesce(extract(epoch FROM replay_lag), 0)::text
                            FROM pg_stat_replication),
                    extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8",
            &[],
        )
        .await
        .map_err(|e| query_error(&sys, "reading its role", &e))?;
    let read = |e: tokio_postgres::Error| query_error(&sys, "reading its role", &e);
    let lsn = |i: usize| {
        row.try_get::<_, Option<PgLsn>>(i)
            .map(|l| l.map(|l| Lsn(u64::from(l))))
    };
    let replication: Vec<String> = row.try_get(12).map_err(read)?;
    Ok(RoleState {
        in_recovery: row.try_get(0).map_err(read)?,
        read_only: row.try_get(1).map_err(read)?,
        writers: row.try_get(2).map_err(read)?,
        flush_lsn: lsn(3).map_err(read)?,
        replay_lsn: lsn(4).map_err(read)?,
        replay_delay_seconds: row.try_get(5).map_err(read)?,
        last_commit_age_seconds: row.try_get(13).map_err(read)?,
        timeline: row.try_get::<_, Option<i64>>(6).map_err(read)?.unwrap_or(0),
        data_directory: row.try_get(7).map_err(read)?,
        port: row.try_get(8).map_err(read)?,
        major: row.try_get::<_, i32>(9).map_err(read)?.max(0) as u32,
        upstream: row
            .try_get::<_, Option<String>>(10)
            .map_err(read)?
            .as_deref()
            .and_then(upstream_of),
        slots: row.try_get(11).map_err(read)?,
        // One row per standby, as `name<TAB>state<TAB>lag`.
        replication: replication
            .iter()
            .filter_map(|r| {
                let mut f = r.rsplitn(3, '\t');
                let lag = f.next()?.parse().unwrap_or(0.0);
                let state = f.next()?.to_string();
                Some((f.next()?.to_string(), state, lag))
            })
            .collect(),
    })
}

/// The position a standby has replayed, on an open session: what a
/// switchover polls while it waits (one connection, not one per look).
pub async fn replayed(session: &Session) -> Result<Option<Lsn>, ProviderError> {
    let row = session
        .client()
        .query_one("SELECT pg_last_wal_replay_lsn()", &[])
        .await
        .map_err(|e| query_error(session.system(), "reading the replayed position", &e))?;
    row.try_get::<_, Option<PgLsn>>(0)
        .map(|l| l.map(|l| Lsn(u64::from(l))))
        .map_err(|e| query_error(session.system(), "reading the replayed position", &e))
}

async fn load_time(session: &Session) -> Result<String, ProviderError> {
    session
        .client()
        .query_one("SELECT pg_conf_load_time()::text", &[])
        .await
        .and_then(|r| r.try_get::<_, String>(0))
        .map_err(|e| query_error(session.system(), "reading pg_conf_load_time()", &e))
}

/// Fences a primary: no new writes (`default_transaction_read_only`, kept
/// across restarts), every other client session ended (their open
/// transactions roll back), then a checkpoint so everything written is
/// flushed and can be streamed. Replication connections are not touched.
pub async fn fence(role: &str, info: &Conninfo, env: &PgEnv) -> Result<(), ProviderError> {
    let session = Session::open(role, info, env).await?;
    let sys = session.system().to_string();
    let before = load_time(&session).await?;
    session
        .set_setting("default_transaction_read_only", "on")
        .await?;
    session.reload().await?;
    // The postmaster re-reads its configuration asynchronously: wait until it
    // has, so every session started from now on is read-only.
    let reloaded = poll_until(
        Duration::from_millis(20),
        Duration::from_secs(10),
        || async {
            Ok::<_, ProviderError>(if load_time(&session).await? == before {
                Polled::Waiting(())
            } else {
                Polled::Ready(())
            })
        },
    )
    .await?;
    if reloaded.is_err() {
        return Err(ProviderError::new(
            &sys,
            "the server did not reload its configuration within 10s",
        ));
    }
    // Every other client session, idle or not: a session that has not yet
    // noticed the reload could otherwise still start a writing transaction.
    // Sessions that stay past 10s are left to the checkpoint (and the fence).
    let _ =
        poll_until(
            Duration::from_millis(20),
            Duration::from_secs(10),
            || async {
                let row = session
                    .client()
                    .query_one(
                        "SELECT count(*) FILTER (WHERE NOT pg_terminate_backend(pid)),
                        count(*)
                   FROM pg_stat_activity
                  WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
                        &[],
                    )
                    .await
                    .and_then(|row| {
                        Ok::<_, tokio_postgres::Error>((
                            row.try_get::<_, i64>(0)?,
                            row.try_get::<_, i64>(1)?,
                        ))
                    })
                    .map_err(|e| query_error(&sys, "ending the other sessions", &e))?;
                let (refused, sessions) = row;
                if refused > 0 {
                    return Err(ProviderError::new(
                &sys,
                format!("{refused} session(s) could not be ended (pg_terminate_backend refused)"),
            )
            .hint("the plan's role needs to be a superuser or a member of pg_signal_backend"));
                }
                Ok(if sessions == 0 {
                    Polled::Ready(())
                } else {
                    Polled::Waiting(())
                })
            },
        )
        .await?;
    session.run("CHECKPOINT", "CHECKPOINT").await
}

/// Undoes [`fence`]: the primary takes writes again.
pub async fn unfence(role: &str, info: &Conninfo, env: &PgEnv) -> Result<(), ProviderError> {
    let session = Session::open(role, info, env).await?;
    session
        .reset_setting("default_transaction_read_only")
        .await?;
    session.reload().await
}

/// Resumes replay on a standby where it was paused (`pg_wal_replay_pause()`):
/// a paused standby would never reach the position a role change waits for.
/// Returns whether it was paused.
pub async fn resume_replay(
    role: &str,
    info: &Conninfo,
    env: &PgEnv,
) -> Result<bool, ProviderError> {
    let session = Session::open(role, info, env).await?;
    let row = session
        .client()
        .query_one(
            "SELECT pg_is_in_recovery() AND pg_is_wal_replay_paused()",
            &[],
        )
        .await
        .map_err(|e| query_error(session.system(), "reading whether replay is paused", &e))?;
    let paused: bool = row
        .try_get(0)
        .map_err(|e| query_error(session.system(), "reading whether replay is paused", &e))?;
    if paused {
        session
            .run("pg_wal_replay_resume()", "SELECT pg_wal_replay_resume()")
            .await?;
    }
    Ok(paused)
}

/// `pg_promote(wait => true)`: returns once the server accepts writes.
pub async fn promote(role: &str, info: &Conninfo, env: &PgEnv) -> Result<(), ProviderError> {
    let session = Session::open(role, info, env).await?;
    let row = session
        .client()
        .query_one("SELECT pg_promote(true, 60)", &[])
        .await
        .map_err(|e| query_error(session.system(), "pg_promote()", &e))?;
    let promoted: bool = row
        .try_get(0)
        .map_err(|e| query_error(session.system(), "pg_promote()", &e))?;
    if promoted {
        Ok(())
    } else {
        Err(ProviderError::new(
            session.system(),
            "pg_promote() did not finish within 60s",
        ))
    }
}

/// Where a standby is to stream from, and as what.
pub struct Follow<'a> {
    pub host: &'a str,
    pub port: &'a str,
    pub application_name: &'a str,
    pub slot: &'a str,
}

impl Follow<'_> {
    /// `session`'s primary_conninfo pointed here; user, password, sslmode… kept.
    async fn conninfo_from(&self, session: &Session) -> Result<String, ProviderError> {
        session
            .primary_conninfo_with(&[
                ("host", self.host),
                ("port", self.port),
                ("application_name", self.application_name),
            ])
            .await
    }
}

/// Points a running standby at a new primary and reloads (PostgreSQL 13+
/// reconnects its WAL receiver; with `recovery_target_timeline = latest` it
/// follows the new primary's timeline).
pub async fn follow(
    role: &str,
    info: &Conninfo,
    env: &PgEnv,
    to: &Follow<'_>,
) -> Result<(), ProviderError> {
    let session = Session::open(role, info, env).await?;
    let conninfo = to.conninfo_from(&session).await?;
    session.set_setting("primary_conninfo", &conninfo).await?;
    session.set_setting("primary_slot_name", to.slot).await?;
    session.reload().await
}

/// Prepares a fenced old primary to come back as a standby of `to`: a
/// checkpoint on the new primary (`template`) for pg_rewind, and the
/// configuration the old one needs as a standby (its primary_conninfo made
/// from the new primary's own primary_conninfo, which already holds the
/// replication login; the slot; the fence lifted, since it will be in
/// recovery) written with ALTER SYSTEM while it still runs, so the rejoin
/// keeps them with the server's own `postgresql.auto.conf`.
pub async fn prepare_rejoin(
    role: &str,
    info: &Conninfo,
    template: (&str, &Conninfo),
    env: &PgEnv,
    to: &Follow<'_>,
) -> Result<(), ProviderError> {
    let (source, old) = tokio::try_join!(
        Session::open(template.0, template.1, env),
        Session::open(role, info, env)
    )?;
    let conninfo = to.conninfo_from(&source).await?;
    // pg_rewind reads the new primary's timeline from its control file, which
    // only a checkpoint after the promotion updates (pg_rewind's docs).
    source.run("CHECKPOINT", "CHECKPOINT").await?;
    old.set_setting("primary_conninfo", &conninfo).await?;
    old.set_setting("primary_slot_name", to.slot).await?;
    old.reset_setting("default_transaction_read_only").await
}

/// Creates physical slots that are missing (reserving WAL at once).
pub async fn ensure_slots(
    role: &str,
    info: &Conninfo,
    env: &PgEnv,
    slots: &[String],
) -> Result<(), ProviderError> {
    let session = Session::open(role, info, env).await?;
    for slot in slots {
        session.create_slot(slot).await?;
    }
    Ok(())
}

/// What a standby's WAL receiver says about its upstream: the watcher's
/// witness of the primary.
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    pub in_recovery: bool,
    /// `streaming`, `waiting`, ...; `None` when no receiver runs.
    pub status: Option<String>,
    /// Seconds since the receiver last heard from its upstream.
    pub last_message_age: Option<f64>,
    /// Where it streams from (host, port), as the receiver connected.
    pub sender: Option<(String, i32)>,
    /// Its `wal_receiver_timeout`, in seconds: a receiver that heard
    /// nothing this long has given up on its upstream.
    pub timeout_seconds: f64,
}

pub async fn receiver(role: &str, info: &Conninfo, env: &PgEnv) -> Result<Receiver, ProviderError> {
    let sys = system(role, info);
    let client = connect(role, info, env).await?;
    let read = |e: tokio_postgres::Error| query_error(&sys, "reading its WAL receiver", &e);
    let row = client
        .query_one(
            "SELECT pg_is_in_recovery(), r.status,
                    extract(epoch FROM now() - r.last_msg_receipt_time)::float8,
                    r.sender_host, r.sender_port,
                    (SELECT setting::float8 / 1000 FROM pg_settings WHERE name = 'wal_receiver_timeout')
               FROM (SELECT 1) one LEFT JOIN pg_stat_wal_receiver r ON true",
            &[],
        )
        .await
        .map_err(read)?;
    let host: Option<String> = row.try_get(3).map_err(read)?;
    let port: Option<i32> = row.try_get(4).map_err(read)?;
    Ok(Receiver {
        in_recovery: row.try_get(0).map_err(read)?,
        status: row.try_get(1).map_err(read)?,
        last_message_age: row.try_get(2).map_err(read)?,
        sender: host.zip(port),
        timeout_seconds: row
            .try_get::<_, Option<f64>>(5)
            .map_err(read)?
            .unwrap_or(60.0),
    })
}

/// One standby as its primary sees it (`pg_stat_replication`).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub application_name: String,
    pub state: String,
    /// When it last answered (`reply_time`, on the standby's clock, as Unix
    /// seconds): the guard judges silence by how long this stands still on
    /// its own clock, so two hosts' clocks are never compared.
    pub reply_time: Option<f64>,
    /// The primary has WAL this standby has not yet written: it owes an answer.
    pub owes: bool,
}

/// Each standby streaming from this server, and whether it owes an answer.
/// What the guard watches beside the primary.
pub async fn replies(session: &Session) -> Result<Vec<Reply>, ProviderError> {
    let read =
        |e: tokio_postgres::Error| query_error(session.system(), "reading pg_stat_replication", &e);
    let rows = session
        .client()
        .query(
            "SELECT application_name, coalesce(state, ''),
                    extract(epoch FROM reply_time)::float8,
                    CASE WHEN pg_is_in_recovery() THEN false
                         ELSE coalesce(write_lsn < pg_current_wal_lsn(), true) END
               FROM pg_stat_replication",
            &[],
        )
        .await
        .map_err(read)?;
    rows.iter()
        .map(|r| {
            Ok(Reply {
                application_name: r.try_get(0)?,
                state: r.try_get(1)?,
                reply_time: r.try_get(2)?,
                owes: r.try_get(3)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(read)
}

/// Whether the server takes writes now: not in recovery, and a new session
/// is not read-only (not fenced).
pub async fn writable(session: &Session) -> Result<bool, ProviderError> {
    let read = |e: tokio_postgres::Error| query_error(session.system(), "reading its role", &e);
    let row = session
        .client()
        .query_one(
            "SELECT NOT pg_is_in_recovery()
                    AND current_setting('default_transaction_read_only') = 'off'",
            &[],
        )
        .await
        .map_err(read)?;
    row.try_get(0).map_err(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_host_port_and_application_name_are_kept_of_primary_conninfo() {
        let up = upstream_of("user=rep password=s3cret host=10.0.0.1 port=5433 application_name=b")
            .unwrap();
        assert_eq!(up.host.as_deref(), Some("10.0.0.1"));
        assert_eq!(up.port.as_deref(), Some("5433"));
        assert_eq!(up.application_name.as_deref(), Some("b"));
        assert!(!format!("{up:?}").contains("s3cret"));
        assert_eq!(upstream_of(""), None);
    }
}
