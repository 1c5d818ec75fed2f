//! Live PostgreSQL: connect the way libpq would, read settings, slots and the
//! archiver, and make single repeat-safe writes (ALTER SYSTEM, slot creation).
//!
//! Never drops a slot and never runs anything but the statements named here.

use super::tls::{self, Verify};
use super::ProviderError;
use crate::settings::PgEnv;
use crate::spec::Conninfo;
use crate::state::postgres::{
    Archiver, LiveSetting, PgHealth, PgLive, Replay, Replication, SlotHealth,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio_postgres::config::{SslMode, TargetSessionAttrs};
use tokio_postgres::{Client, Config, NoTls};

/// Used when neither the conninfo nor PGCONNECT_TIMEOUT sets one: an unreachable
/// server must fail in seconds, not hang a CI job.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn system(role: &str, info: &Conninfo) -> String {
    format!("postgres.{role} ({info})")
}

/// One line of a pgpass file matches when every field equals or is `*`.
fn pgpass_lookup(text: &str, host: &str, port: &str, db: &str, user: &str) -> Option<String> {
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => field.extend(chars.next()),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
                c => field.push(c),
            }
        }
        fields.push(field);
        if fields.len() != 5 {
            continue;
        }
        let wanted = [host, port, db, user];
        if fields[..4]
            .iter()
            .zip(wanted)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

fn password_from_pgpass(
    env: &PgEnv,
    info: &Conninfo,
    host: &str,
    port: &str,
    db: &str,
    user: &str,
) -> Option<String> {
    let path = info
        .get("passfile")
        .map(PathBuf::from)
        .or_else(|| env.get("PGPASSFILE").map(PathBuf::from))
        .or_else(|| env.home().map(|h| h.join(".pgpass")))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // libpq ignores a password file others can read; so do we, and say so.
        if let Ok(meta) = std::fs::metadata(&path) {
            if meta.permissions().mode() & 0o077 != 0 {
                eprintln!(
                    "warning: password file {} has group or world access; it is ignored (chmod 0600 it)",
                    path.display()
                );
                return None;
            }
        }
    }
    let text = std::fs::read_to_string(&path).ok()?;
    // libpq matches a Unix-socket connection against "localhost".
    let host = if host.starts_with('/') {
        "localhost"
    } else {
        host
    };
    pgpass_lookup(&text, host, port, db, user)
}

/// Builds the tokio-postgres configuration and TLS choice from a conninfo plus
/// the libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD,
/// PGPASSFILE, PGSSLMODE, PGSSLROOTCERT, PGCONNECT_TIMEOUT).
fn resolve(info: &Conninfo, env: &PgEnv) -> Result<(Config, String, Verify, Duration), String> {
    let get = |key: &str, var: &str| info.get(key).or_else(|| env.get(var)).map(str::to_string);
    let host = get("host", "PGHOST").unwrap_or_else(|| "localhost".into());
    let port = get("port", "PGPORT").unwrap_or_else(|| "5432".into());
    let user = get("user", "PGUSER")
        .or_else(|| env.get("USER").map(str::to_string))
        .unwrap_or_else(|| "postgres".into());
    let dbname = get("dbname", "PGDATABASE").unwrap_or_else(|| user.clone());
    let sslmode = get("sslmode", "PGSSLMODE").unwrap_or_else(|| "prefer".into());
    let timeout = get("connect_timeout", "PGCONNECT_TIMEOUT")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);

    let mut config = Config::new();
    config
        .host(&host)
        .port(
            port.parse()
                .map_err(|_| format!("port `{port}` is not a number"))?,
        )
        .user(&user)
        .dbname(&dbname)
        .application_name(info.get("application_name").unwrap_or("pgdr"))
        .connect_timeout(timeout);
    if let Some(addr) = info.get("hostaddr") {
        config.hostaddr(
            addr.parse()
                .map_err(|_| format!("hostaddr `{addr}` is not an IP address"))?,
        );
    }
    if let Some(options) = info.get("options") {
        config.options(options);
    }
    if info.get("target_session_attrs") == Some("read-write") {
        config.target_session_attrs(TargetSessionAttrs::ReadWrite);
    }
    if let Some(password) = env
        .get("PGPASSWORD")
        .map(str::to_string)
        .or_else(|| password_from_pgpass(env, info, &host, &port, &dbname, &user))
    {
        config.password(password);
    }

    let root = get("sslrootcert", "PGSSLROOTCERT").or_else(|| {
        let default = env.home()?.join(".postgresql/root.crt");
        default.exists().then(|| default.display().to_string())
    });
    let verify = match sslmode.as_str() {
        "verify-ca" | "verify-full" => {
            let root = root.ok_or_else(|| format!("sslmode={sslmode} needs a root certificate: set sslrootcert in the conninfo, PGSSLROOTCERT, or create ~/.postgresql/root.crt"))?;
            let roots = tls::load_roots(&root)?;
            if sslmode == "verify-full" {
                Verify::Full(roots)
            } else {
                Verify::Chain(roots)
            }
        }
        // As in libpq: with a root certificate at hand, require checks the chain.
        "require" => match root {
            Some(root) => Verify::Chain(tls::load_roots(&root)?),
            None => Verify::Nothing,
        },
        _ => Verify::Nothing,
    };
    config.ssl_mode(match sslmode.as_str() {
        "disable" => SslMode::Disable,
        "allow" | "prefer" => SslMode::Prefer,
        _ => SslMode::Require,
    });
    Ok((config, sslmode, verify, timeout))
}

/// Connects, or fails within the connect timeout with a message naming the server.
pub async fn connect(role: &str, info: &Conninfo, env: &PgEnv) -> Result<Client, ProviderError> {
    let sys = system(role, info);
    let started = std::time::Instant::now();
    let (config, sslmode, verify, timeout) =
        resolve(info, env).map_err(|e| ProviderError::new(&sys, e))?;
    let tls = match sslmode.as_str() {
        "disable" => None,
        _ => Some(tokio_postgres_rustls::MakeRustlsConnect::new(
            tls::client_config(verify).map_err(|e| ProviderError::new(&sys, e))?,
        )),
    };
    let attempt = async {
        let client = match tls {
            None => {
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(connection);
                client
            }
            Some(tls) => {
                let (client, connection) = config.connect(tls).await?;
                tokio::spawn(connection);
                client
            }
        };
        Ok::<Client, tokio_postgres::Error>(client)
    };
    // connect_timeout bounds the TCP connect only; a server that accepts and then
    // says nothing must not hang us either.
    let result = tokio::time::timeout(timeout + Duration::from_secs(1), attempt).await;
    tracing::info!(
        target: "pgdr::postgres",
        server = %sys,
        ms = started.elapsed().as_millis() as u64,
        ok = matches!(result, Ok(Ok(_))),
        "connect"
    );
    match result {
        Err(_) => Err(ProviderError::new(
            &sys,
            format!("no answer within {}s", timeout.as_secs() + 1),
        )
        .hint("check that the server is up and reachable from here, or raise connect_timeout in the conninfo")
        .unreachable()),
        Ok(Err(e)) => Err(connect_error(&sys, &e)),
        Ok(Ok(client)) => Ok(client),
    }
}

fn connect_error(sys: &str, e: &tokio_postgres::Error) -> ProviderError {
    let message = error_text(e);
    let hint = if message.contains("password authentication failed")
        || message.contains("password missing")
    {
        Some("supply the password with PGPASSWORD or a ~/.pgpass entry (never in the plan file)")
    } else if message.contains("Connection refused") || message.contains("timed out") {
        Some("check that the server is up and listening on that host and port")
    } else if message.contains("certificate") || message.contains("UnknownIssuer") {
        Some("check sslrootcert, or use sslmode=require to encrypt without verifying")
    } else {
        None
    };
    let mut err = ProviderError::new(sys, format!("cannot connect: {message}"));
    err.unreachable = e.as_db_error().is_none() && is_network_failure(e);
    match hint {
        Some(h) => err.hint(h),
        None => err,
    }
}

/// Whether a connection failed in the network (refused, timed out, no route,
/// name not resolved) rather than by an answer from the server.
fn is_network_failure(e: &tokio_postgres::Error) -> bool {
    use std::io::ErrorKind::*;
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | TimedOut
                    | HostUnreachable
                    | NetworkUnreachable
                    | AddrNotAvailable
                    | NotFound
                    | UnexpectedEof
            ) || io.raw_os_error().is_some();
        }
        source = s.source();
    }
    false
}

/// A tokio-postgres error with its database message or cause, on one line.
pub fn error_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

pub(crate) fn query_error(sys: &str, what: &str, e: &tokio_postgres::Error) -> ProviderError {
    ProviderError::new(sys, format!("{what}: {}", error_text(e)))
}

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
                pg_last_wal_replay_lsn()::text,
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
    let mut file_values: BTreeMap<String, String> = BTreeMap::new();
    if let Ok(rows) = files {
        for row in rows {
            file_values.insert(row.get(0), row.get(1));
        }
    }

    let mut live = PgLive {
        server: info.to_string(),
        version_num: basics.get(0),
        in_recovery: basics.get(1),
        settings: BTreeMap::new(),
        slots: BTreeMap::new(),
        primary_conninfo_readable: conninfo.is_some(),
        primary_conninfo_app: conninfo
            .as_ref()
            .and_then(|row| application_name_of(&row.get::<_, String>(0))),
        health: PgHealth {
            conninfo_user: conninfo
                .as_ref()
                .and_then(|row| conninfo_key(&row.get::<_, String>(0), "user")),
            limits: readiness
                .iter()
                .filter(|r| r.get::<_, &str>(0) == "s")
                .map(|r| {
                    (
                        r.get::<_, String>(1),
                        r.get::<_, Option<i64>>(2).unwrap_or(0),
                    )
                })
                .collect(),
            expiring_roles: readiness
                .iter()
                .filter(|r| r.get::<_, &str>(0) == "r")
                .map(|r| {
                    (
                        r.get::<_, String>(1),
                        r.get::<_, Option<f64>>(3).unwrap_or(0.0),
                    )
                })
                .collect(),
            replication: replication
                .iter()
                .map(|row| Replication {
                    application_name: row.get(0),
                    state: row.get(1),
                    sync_state: row.get(2),
                    replay_lag_seconds: row.get(3),
                    replay_lag_bytes: row.get(4),
                })
                .collect(),
            receiver: receiver.map(|row| row.get(0)),
            replay: basics.get::<_, bool>(1).then(|| Replay {
                lsn: basics.get(2),
                last_transaction: basics.get(3),
                age_seconds: basics.get(4),
            }),
            ..PgHealth::default()
        },
    };
    for row in settings {
        let name: String = row.get(0);
        let pending_restart: bool = row.get(8);
        live.settings.insert(
            name.clone(),
            LiveSetting {
                // archive_command reads "(disabled)" while archive_mode is off; the
                // configured value is what a restart with archiving on will use.
                setting: match row.get::<_, String>(1) {
                    s if s == "(disabled)" => file_values.get(&name).cloned().unwrap_or_default(),
                    s => s,
                },
                unit: row.get(2),
                vartype: row.get(3),
                context: row.get(4),
                enumvals: row.get(5),
                min_val: row.get(6),
                max_val: row.get(7),
                pending_restart,
                display: row.get(9),
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
        let name: String = row.get(0);
        let slot_type: String = row.get(1);
        live.slots.insert(name.clone(), slot_type.clone());
        live.health.slots.push(SlotHealth {
            name,
            slot_type,
            active: row.get(2),
            retained_bytes: row.get(3),
            failover: row.get(4),
        });
    }
    live.health.archiver = Some(Archiver {
        archive_mode: archiver.get(0),
        failed_count: archiver.get(1),
        last_failed_wal: archiver.get(2),
        last_failed_time: archiver.get(3),
        last_archived_wal: archiver.get(4),
        last_archived_time: archiver.get(5),
        failing: archiver.get(6),
        current_wal: archiver.get(7),
    });
    tracing::info!(
        target: "pgdr::postgres",
        server = %sys,
        ms = started.elapsed().as_millis() as u64,
        "read settings, slots, archiver and replication"
    );
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

/// `"name"` as an SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'value'` as an SQL string literal (standard_conforming_strings is on since 9.1).
pub(crate) fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// An open session for applying several changes to one server.
pub struct Session {
    sys: String,
    client: Client,
}

impl Session {
    pub async fn open(role: &str, info: &Conninfo, env: &PgEnv) -> Result<Self, ProviderError> {
        Ok(Session {
            sys: system(role, info),
            client: connect(role, info, env).await?,
        })
    }

    /// The open connection, for queries that read.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// `postgres.<role> (host:port)`, for messages.
    pub(crate) fn system(&self) -> &str {
        &self.sys
    }

    /// Runs one statement, logging it with its duration.
    pub(crate) async fn run(&self, what: &str, sql: &str) -> Result<(), ProviderError> {
        let started = std::time::Instant::now();
        let result = self.client.simple_query(sql).await;
        tracing::info!(
            target: "pgdr::postgres",
            server = %self.sys,
            ms = started.elapsed().as_millis() as u64,
            ok = result.is_ok(),
            "{what}"
        );
        result
            .map(|_| ())
            .map_err(|e| query_error(&self.sys, what, &e))
    }

    /// `ALTER SYSTEM RESET`: back to the configuration files' value.
    pub async fn reset_setting(&self, name: &str) -> Result<(), ProviderError> {
        self.run(
            &format!("ALTER SYSTEM RESET {name}"),
            &format!("ALTER SYSTEM RESET {}", quote_ident(name)),
        )
        .await
    }

    /// `ALTER SYSTEM SET`: writes postgresql.auto.conf; takes effect on reload or restart.
    pub async fn set_setting(&self, name: &str, value: &str) -> Result<(), ProviderError> {
        let sql = format!(
            "ALTER SYSTEM SET {} = {}",
            quote_ident(name),
            quote_literal(value)
        );
        self.run(&format!("ALTER SYSTEM SET {name}"), &sql).await
    }

    /// Sets `application_name` in this standby's primary_conninfo, keeping every
    /// other key as it is.
    pub async fn set_application_name(&self, name: &str) -> Result<(), ProviderError> {
        let conninfo = self
            .primary_conninfo_with(&[("application_name", name)])
            .await?;
        self.set_setting("primary_conninfo", &conninfo).await
    }

    /// This server's primary_conninfo with the keys of `set` replaced (a
    /// `host` also replaces `hostaddr`), every other key kept. Read and
    /// rewritten here, at apply time, so the rest of the conninfo (which may
    /// hold a password) never enters a plan or a message.
    pub(crate) async fn primary_conninfo_with(
        &self,
        set: &[(&str, &str)],
    ) -> Result<String, ProviderError> {
        let row = self
            .client
            .query_one("SELECT current_setting('primary_conninfo')", &[])
            .await
            .map_err(|e| query_error(&self.sys, "reading primary_conninfo", &e))?;
        let current: String = row.get(0);
        let mut pairs = crate::spec::conninfo::split_pairs(&current).map_err(|e| {
            ProviderError::new(&self.sys, format!("primary_conninfo cannot be parsed: {e}"))
        })?;
        pairs.retain(|(k, _)| {
            !set.iter()
                .any(|(key, _)| k == key || (*key == "host" && k == "hostaddr"))
        });
        pairs.extend(set.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Ok(crate::spec::conninfo::render_pairs(&pairs))
    }

    pub async fn reload(&self) -> Result<(), ProviderError> {
        self.run("pg_reload_conf()", "SELECT pg_reload_conf()")
            .await
    }

    /// Creates a physical slot that reserves WAL at once; an existing one is left as it is.
    pub async fn create_slot(&self, slot: &str) -> Result<(), ProviderError> {
        let started = std::time::Instant::now();
        let result = self
            .client
            .execute(
                "SELECT pg_create_physical_replication_slot($1, true)",
                &[&slot],
            )
            .await;
        tracing::info!(
            target: "pgdr::postgres",
            server = %self.sys,
            ms = started.elapsed().as_millis() as u64,
            "create slot {slot}"
        );
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT) => {
                Ok(())
            }
            Err(e) => Err(query_error(&self.sys, &format!("creating slot {slot}"), &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pgpass_lookup;

    #[test]
    fn pgpass_matches_fields_wildcards_and_escapes() {
        let text = "# comment\nother:5432:*:*:nope\nlocalhost:5433:*:dr_admin:s\\:cret\n*:*:*:*:fallback\n";
        assert_eq!(
            pgpass_lookup(text, "localhost", "5433", "postgres", "dr_admin").as_deref(),
            Some("s:cret")
        );
        assert_eq!(
            pgpass_lookup(text, "db", "5432", "postgres", "x").as_deref(),
            Some("fallback")
        );
        assert_eq!(pgpass_lookup("a:b:c:d:e", "x", "b", "c", "d"), None);
    }
}

/// What a base backup records about its source server.
#[derive(Debug, Clone)]
pub struct BackupFacts {
    /// `server_version_num`, e.g. 150004.
    pub version_num: u32,
    pub system_identifier: String,
    pub wal_segment_size: u64,
    pub in_recovery: bool,
    /// The sum of every database's size: the progress bar's total.
    pub total_bytes: u64,
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
                    (SELECT sum(pg_database_size(oid))::int8 FROM pg_database WHERE datallowconn)",
            &[],
        )
        .await
        .map_err(|e| query_error(&sys, "reading the server's identity", &e))?;
    Ok(BackupFacts {
        version_num: row.get::<_, i32>(0).max(0) as u32,
        system_identifier: row.get::<_, Option<String>>(1).unwrap_or_default(),
        wal_segment_size: row.get::<_, Option<i64>>(2).unwrap_or(16 << 20).max(1) as u64,
        in_recovery: row.get(3),
        total_bytes: row.get::<_, Option<i64>>(4).unwrap_or(0).max(0) as u64,
    })
}

/// The databases a server holds (templates left out): what a restore must bring back.
pub async fn databases(client: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT datname FROM pg_database WHERE NOT datistemplate",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
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
