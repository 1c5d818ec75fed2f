//! pglogical 2.4 on one node (issue 31, in progress): what it has set up —
//! the extension, the local node, the replication set's tables, the
//! subscriptions and their status — and the single writes that set it up.
//! Every statement is pglogical's own SQL API (`pglogical--2.4.2.sql`).

use super::quote_literal;
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

/// `CREATE EXTENSION IF NOT EXISTS pglogical` (needs it in
/// `shared_preload_libraries` and a restart first).
pub async fn create_extension(client: &Client) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pglogical")
        .await
}

/// The local node, reachable by the others at `dsn` (no password in it:
/// the peers' own `.pgpass` or certificates authenticate).
pub async fn create_node(
    client: &Client,
    name: &str,
    dsn: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "SELECT pglogical.create_node(node_name := {}, dsn := {})",
            quote_literal(name),
            quote_literal(dsn)
        ))
        .await
}

/// Every table of `schemas` into the `default` set.
pub async fn add_all_tables(
    client: &Client,
    schemas: &[String],
) -> Result<(), tokio_postgres::Error> {
    let list: Vec<String> = schemas.iter().map(|s| quote_literal(s)).collect();
    client
        .batch_execute(&format!(
            "SELECT pglogical.replication_set_add_all_tables('default', ARRAY[{}]::text[])",
            list.join(", ")
        ))
        .await
}

/// A subscription to `provider_dsn` that forwards no other node's changes
/// (`forward_origins = '{}'`: a change made on a node goes to each other
/// node once, never back). `copy_data`: only the node that joins empty.
pub async fn create_subscription(
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
