//! What a drill asks of a restored server beyond its data: the extensions
//! its catalogue lists against what its binaries provide, and the logical
//! replication subscriptions it must not run (a restored subscriber would
//! connect to the production publisher and consume its slot).

use super::quote_ident;
use tokio_postgres::Client;

/// One installed extension of the connected database, and what the server's
/// binaries offer for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub name: String,
    /// `pg_extension.extversion`: the version the catalogue says is installed.
    pub installed: String,
    /// The binaries' `default_version`; `None` when they lack it entirely.
    pub default_version: Option<String>,
    /// The binaries have the installed version's scripts.
    pub version_available: bool,
}

pub async fn extensions(client: &Client) -> Result<Vec<Extension>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT e.extname::text, e.extversion, a.default_version, \
                    EXISTS (SELECT 1 FROM pg_available_extension_versions v \
                            WHERE v.name = e.extname AND v.version = e.extversion) \
             FROM pg_extension e LEFT JOIN pg_available_extensions a ON a.name = e.extname \
             ORDER BY 1",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Extension {
                name: r.try_get(0)?,
                installed: r.try_get(1)?,
                default_version: r.try_get(2)?,
                version_available: r.try_get(3)?,
            })
        })
        .collect()
}

/// The subscriptions of the connected database, with whether each is enabled.
pub async fn subscriptions(client: &Client) -> Result<Vec<(String, bool)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT subname::text, subenabled FROM pg_subscription \
             WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             ORDER BY 1",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Disables a subscription and forgets its slot name, so neither starting
/// the server with workers nor dropping the subscription later reaches the
/// publisher (whose slot stays the production subscriber's). Neither
/// statement connects to the publisher.
pub async fn detach_subscription(client: &Client, name: &str) -> Result<(), tokio_postgres::Error> {
    let ident = quote_ident(name);
    client
        .batch_execute(&format!(
            "ALTER SUBSCRIPTION {ident} DISABLE; ALTER SUBSCRIPTION {ident} SET (slot_name = NONE)"
        ))
        .await
}
