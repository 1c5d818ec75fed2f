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
    let slots_behind = client
        .query(
            "SELECT slot_name::text, \
                    coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint \
             FROM pg_replication_slots WHERE slot_type = 'logical' ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    if version.is_none() {
        return Ok(PglogicalLive {
            slots_behind,
            ..PglogicalLive::default()
        });
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
                    coalesce(forward_origins, '{}'), coalesce(replication_sets, '{}'), slot_name \
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
                slot: r.try_get(5)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    Ok(PglogicalLive {
        version,
        node,
        tables,
        subscriptions,
        slots_behind,
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

/// The last value `sequence` (`schema.name`) handed out, if any.
pub async fn sequence_last_value(
    client: &Client,
    sequence: &str,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let (schema, name) = sequence.split_once('.').unwrap_or(("public", sequence));
    let row = client
        .query_opt(
            "SELECT last_value FROM pg_sequences WHERE schemaname = $1 AND sequencename = $2",
            &[&schema, &name],
        )
        .await?;
    Ok(match row {
        Some(row) => row.try_get(0)?,
        None => None,
    })
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

// What a drill's re-join does on the restored server and on the peers
// (`execute::drill::rejoin`).

/// The tables of a restored node's `default` set, read from pglogical's
/// catalog tables (plain tables: readable without the library loaded).
pub async fn restored_tables(client: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pglogical')",
            &[],
        )
        .await?
        .try_get(0)?;
    if !exists {
        return Ok(Vec::new());
    }
    client
        .query(
            "SELECT n.nspname || '.' || c.relname \
             FROM pglogical.replication_set_table t \
             JOIN pglogical.replication_set s ON s.set_id = t.set_id \
             JOIN pg_class c ON c.oid = t.set_reloid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE s.set_name = 'default' ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect()
}

/// Removes a restored node's pglogical identity: the extension (its node,
/// sets and subscriptions) and the replication origins of its
/// subscriptions. Only on a restored copy, never on a production node.
pub async fn forget(client: &Client) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(
            "DROP EXTENSION IF EXISTS pglogical CASCADE; \
             SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin \
             WHERE roname LIKE 'pgl\\_%'",
        )
        .await
}

/// Makes the connected server a new, empty pglogical node `node`: the
/// replicated `tables` emptied (a copy from a peer fills them).
pub async fn join_empty(
    client: &Client,
    node: &str,
    dsn: &str,
    tables: &[String],
) -> Result<(), tokio_postgres::Error> {
    let list: Vec<String> = tables.iter().map(|t| quote_qualified(t)).collect();
    client
        .batch_execute(&format!(
            "TRUNCATE {} CASCADE; CREATE EXTENSION pglogical; \
             SELECT pglogical.create_node(node_name := {}, dsn := {})",
            list.join(", "),
            quote_literal(node),
            quote_literal(dsn)
        ))
        .await
}

/// [`create_subscription`] on a plain connection.
pub async fn subscribe_client(
    client: &Client,
    name: &str,
    provider_dsn: &str,
    copy_data: bool,
) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "SELECT pglogical.create_subscription(subscription_name := {}, provider_dsn := {}, \
             replication_sets := ARRAY['default'], synchronize_data := {copy_data}, \
             forward_origins := '{{}}')",
            quote_literal(name),
            quote_literal(provider_dsn)
        ))
        .await
}

/// Waits until the subscription's initial copy is done.
pub async fn wait_synchronized(client: &Client, name: &str) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "SELECT pglogical.wait_for_subscription_sync_complete({})",
            quote_literal(name)
        ))
        .await
}

/// The slot on the provider a subscription streams from.
pub async fn subscription_slot(
    client: &Client,
    name: &str,
) -> Result<String, tokio_postgres::Error> {
    client
        .query_one(
            "SELECT sub_slot_name::text FROM pglogical.subscription WHERE sub_name = $1",
            &[&name],
        )
        .await?
        .try_get(0)
}

/// The provider's current WAL position, as text.
pub async fn current_lsn(client: &Client) -> Result<String, tokio_postgres::Error> {
    client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await?
        .try_get(0)
}

/// Whether the subscriber of `slot` has confirmed everything up to `lsn`.
pub async fn slot_confirmed(
    client: &Client,
    slot: &str,
    lsn: &str,
) -> Result<bool, tokio_postgres::Error> {
    client
        .query_one(
            "SELECT coalesce(bool_and(confirmed_flush_lsn >= $2::text::pg_lsn), false) \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot, &lsn],
        )
        .await?
        .try_get(0)
}

/// The rows of `tables`, together.
pub async fn count_rows(client: &Client, tables: &[String]) -> Result<i64, tokio_postgres::Error> {
    let mut total = 0;
    for table in tables {
        let n: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {}", quote_qualified(table)),
                &[],
            )
            .await?
            .try_get(0)?;
        total += n;
    }
    Ok(total)
}

/// Drops a subscription (and its slot on the provider, when it answers).
pub async fn drop_subscription(client: &Client, name: &str) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "SELECT pglogical.drop_subscription({}, ifexists := true)",
            quote_literal(name)
        ))
        .await
}

/// The slot a subscription `sub` of database `dbname` uses on the provider
/// node `provider`, named by the provider's own pglogical.
pub async fn slot_name_on(
    provider: &Client,
    (dbname, provider_node, sub): (&str, &str, &str),
) -> Result<String, tokio_postgres::Error> {
    provider
        .query_one(
            "SELECT pglogical.pglogical_gen_slot_name($1, $2, $3)::text",
            &[&dbname, &provider_node, &sub],
        )
        .await?
        .try_get(0)
}

/// Whether `slot` exists on the connected server.
pub async fn slot_exists(client: &Client, slot: &str) -> Result<bool, tokio_postgres::Error> {
    client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
            &[&slot],
        )
        .await?
        .try_get(0)
}

/// Drops `slot` when it is there (and no longer in use).
pub async fn drop_slot(client: &Client, slot: &str) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map(|_| ())
}
