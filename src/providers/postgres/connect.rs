//! Connecting the way libpq would: the conninfo plus the libpq environment
//! (PGHOST, PGPASSWORD, PGPASSFILE, PGSSLMODE, ...), `~/.pgpass` with
//! libpq's matching and permission rule, TLS as `sslmode` asks, and a
//! connect that fails within its timeout naming the server.

use super::{error_text, system};
use crate::providers::tls::{self, Verify};
use crate::providers::ProviderError;
use crate::settings::PgEnv;
use crate::spec::Conninfo;
use std::path::PathBuf;
use std::time::Duration;
use tokio_postgres::config::{SslMode, TargetSessionAttrs};
use tokio_postgres::{Client, Config, NoTls};

/// Used when neither the conninfo nor PGCONNECT_TIMEOUT sets one: an unreachable
/// server must fail in seconds, not hang a CI job.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
    let has_password = config.get_password().is_some();
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
        Ok(Err(e)) => Err(connect_error(&sys, &e, has_password)),
        Ok(Ok(client)) => Ok(client),
    }
}

fn connect_error(sys: &str, e: &tokio_postgres::Error, has_password: bool) -> ProviderError {
    use tokio_postgres::error::SqlState;
    let message = error_text(e);
    let network = e.as_db_error().is_none() && is_network_failure(e);
    let hint = match e.code() {
        Some(code) if *code == SqlState::INVALID_PASSWORD => Some(PASSWORD_HINT),
        Some(code) if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => None,
        Some(_) => None,
        None if network => Some("check that the server is up and listening on that host and port"),
        None if is_tls_failure(e) => {
            Some("check sslrootcert, or use sslmode=require to encrypt without verifying")
        }
        // Neither the network, TLS nor the server: with no password
        // configured, the client stopped at the server's password request
        // (tokio-postgres reports that as a configuration error, without a kind).
        None if !has_password => Some(PASSWORD_HINT),
        None => None,
    };
    let mut err =
        ProviderError::new(sys, format!("cannot connect: {message}")).with_code(super::sqlstate(e));
    err.unreachable = network;
    match hint {
        Some(h) => err.hint(h),
        None => err,
    }
}

const PASSWORD_HINT: &str =
    "supply the password with PGPASSWORD or a ~/.pgpass entry (never in the plan file)";

/// Whether the TLS handshake failed (a certificate not trusted or not matching).
fn is_tls_failure(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                return true;
            }
        }
        source = s.source();
    }
    false
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
