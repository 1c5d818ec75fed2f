//! pglogical 2.4 on one node: what it has set up (the extension, the local
//! node, the replication set's tables, the subscriptions and their status)
//! and the single writes that set it up, each safe to repeat. Every
//! statement is pglogical's own SQL API (`pglogical--2.4.2.sql`).

use super::{quote_ident, quote_literal, Session};
use crate::providers::ProviderError;
use crate::state::logical::{PglogicalLive, Subscription};
use tokio_postgres::Client;

pub async fn read(client: &Client) -> Result<PglogicalLive, tokio_postgres::Error> {
    let version: Option<String> = client
        .query_opt(
            "SELECT extversion FROM pg_extension WHERE extname = 'pglogical'",
            &[],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    if version.is_none() {
        return Ok(PglogicalLive::default());
    }
    let node = client
        .query_opt(
            "SELECT n.node_name::text FROM pglogical.local_node l \
             JOIN pglogical.node n ON n.node_id = l.node_id",
            &[],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    let tables = client
        .query(
            "SELECT nspname::text || '.' || relname::text FROM pglogical.tables \
             WHERE set_name = 'default' ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let subscriptions = client
        .query(
            "SELECT subscription_name, status, provider_node, \
                    coalesce(forward_origins, '{}'), coalesce(replication_sets, '{}') \
             FROM pglogical.show_subscription_status() ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Subscription {
                name: r.try_get(0)?,
                status: r.try_get(1)?,
                provider_node: r.try_get(2)?,
                forward_origins: r.try_get(3)?,
                replication_sets: r.try_get(4)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    Ok(PglogicalLive {
        version,
        node,
        tables,
        subscriptions,
    })
}

/// `CREATE EXTENSION IF NOT EXISTS pglogical` (it needs pglogical in
/// `shared_preload_libraries`, active: a restart first).
pub async fn create_extension(session: &Session) -> Result<(), ProviderError> {
    session
        .run(
            "CREATE EXTENSION pglogical",
            "CREATE EXTENSION IF NOT EXISTS pglogical",
        )
        .await
}

/// The local node, reachable by the others at `dsn` (no password in it:
/// the peers' own `.pgpass` or certificates authenticate). A node already
/// there is left as it is (plan reports one of another name).
pub async fn create_node(session: &Session, name: &str, dsn: &str) -> Result<(), ProviderError> {
    session
        .run(
            &format!("pglogical.create_node({name})"),
            &format!(
                "SELECT pglogical.create_node(node_name := {}, dsn := {}) \
                 WHERE NOT EXISTS (SELECT 1 FROM pglogical.local_node)",
                quote_literal(name),
                quote_literal(dsn)
            ),
        )
        .await
}

/// These tables (`schema.table`) into the `default` set; one already there
/// is skipped.
pub async fn add_tables(session: &Session, tables: &[String]) -> Result<(), ProviderError> {
    for table in tables {
        session
            .run(
                &format!("pglogical.replication_set_add_table(default, {table})"),
                &format!(
                    "SELECT pglogical.replication_set_add_table('default', {0}::regclass) \
                     WHERE NOT EXISTS (SELECT 1 FROM pglogical.tables \
                       WHERE set_name = 'default' AND relid = {0}::regclass)",
                    quote_literal(&quote_qualified(table))
                ),
            )
            .await?;
    }
    Ok(())
}

/// `schema.table` as a quoted identifier pair, for `::regclass`.
fn quote_qualified(name: &str) -> String {
    match name.split_once('.') {
        Some((schema, table)) => format!("{}.{}", quote_ident(schema), quote_ident(table)),
        None => quote_ident(name),
    }
}

/// Makes `sequence` hand out only values `≡ residue (mod increment)`, from
/// the first such value at or above both `floor` and what it handed out
/// last (read here, so repeating this never goes back).
pub async fn disjoint_sequence(
    session: &Session,
    sequence: &str,
    (increment, residue, floor): (i64, i64, i64),
) -> Result<(), ProviderError> {
    let seq = quote_literal(&quote_qualified(sequence));
    let (schema, name) = sequence.split_once('.').unwrap_or(("public", sequence));
    let (schema, name) = (quote_literal(schema), quote_literal(name));
    // Everything in one statement: the sequence's last value and the ALTER
    // cannot drift apart between two round trips.
    let sql = format!(
        "DO $pgdr$ DECLARE last bigint; v bigint; BEGIN \
           SELECT coalesce(last_value, start_value - 1) INTO last FROM pg_sequences \
            WHERE schemaname = {schema} AND sequencename = {name}; \
           v := greatest({floor}, last + 1); \
           v := v + (({residue} - v) % {increment} + {increment}) % {increment}; \
           EXECUTE format('ALTER SEQUENCE %s INCREMENT BY {increment} START WITH %s RESTART WITH %s', \
                          {seq}::regclass, v, v); \
         END $pgdr$"
    );
    session
        .run(
            &format!("ALTER SEQUENCE {sequence} INCREMENT BY {increment}"),
            &sql,
        )
        .await
}

/// A subscription to `provider_dsn` of the `default` set that forwards no
/// other node's changes (`forward_origins = '{}'`: a change made on a node
/// goes to each other node once, never back). `copy_data`: only a node
/// joining the seed. One of that name already there is left as it is.
pub async fn create_subscription(
    session: &Session,
    name: &str,
    provider_dsn: &str,
    copy_data: bool,
) -> Result<(), ProviderError> {
    session
        .run(
            &format!("pglogical.create_subscription({name})"),
            &format!(
                "SELECT pglogical.create_subscription(subscription_name := {0}, provider_dsn := {1}, \
                 replication_sets := ARRAY['default'], synchronize_data := {copy_data}, \
                 forward_origins := '{{}}') \
                 WHERE NOT EXISTS (SELECT 1 FROM pglogical.subscription WHERE sub_name = {0})",
                quote_literal(name),
                quote_literal(provider_dsn)
            ),
        )
        .await
}

/// Disables and enables again every subscription of the node, at once
/// (`immediate`): their apply workers start anew and read the settings.
pub async fn restart_apply(session: &Session) -> Result<(), ProviderError> {
    session
        .run(
            "pglogical.alter_subscription_disable/enable(every subscription)",
            "SELECT pglogical.alter_subscription_disable(sub_name, true), \
                    pglogical.alter_subscription_enable(sub_name, true) \
             FROM pglogical.subscription WHERE sub_enabled",
        )
        .await
}

/// Whether a session started now reads `name` as `value`: the server has
/// loaded its configuration, and workers it starts from now on read it too.
pub async fn setting_is(session: &Session, name: &str, value: &str) -> Result<bool, ProviderError> {
    let row = session
        .client()
        .query_one("SELECT current_setting($1)", &[&name])
        .await
        .map_err(|e| super::query_error(session.system(), &format!("reading {name}"), &e))?;
    let current: String = row
        .try_get(0)
        .map_err(|e| super::query_error(session.system(), &format!("reading {name}"), &e))?;
    Ok(current == value)
}
