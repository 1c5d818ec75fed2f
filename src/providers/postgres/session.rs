//! An open session for the single, repeat-safe writes apply and the role
//! changes make: `ALTER SYSTEM SET/RESET`, reload, slot creation, and
//! rewriting `primary_conninfo` key by key (it may hold a password, so it is
//! read and rewritten here and never leaves this module whole).

use super::{connect, query_error, quote_ident, quote_literal, system};
use crate::providers::ProviderError;
use crate::settings::PgEnv;
use crate::spec::Conninfo;
use tokio_postgres::Client;

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
            .and_then(|row| row.try_get::<_, String>(0))
            .map_err(|e| query_error(&self.sys, "reading primary_conninfo", &e))?;
        let current = row;
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
