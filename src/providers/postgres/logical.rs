//! What an active-active node holds, read for the drift checks (issue 31, in
//! progress): its user tables' columns, keys, indexes and constraints, and
//! its sequences ([`crate::state::logical`]). Reads only.

use crate::state::logical::{ColumnLive, NodeLive, SequenceLive, TableLive};
use std::collections::BTreeMap;
use tokio_postgres::Client;

/// Schemas that are the server's or an extension's, not the application's.
const SYSTEM: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pglogical') \
                      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";

/// Reads the connected database as node `name`.
pub async fn read_node(client: &Client, name: &str) -> Result<NodeLive, tokio_postgres::Error> {
    let tables = format!(
        "SELECT n.nspname || '.' || c.relname, \
                EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid \
                        AND (i.indisprimary OR i.indisreplident)) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND {SYSTEM} ORDER BY 1"
    );
    let columns = format!(
        "SELECT n.nspname || '.' || c.relname, a.attname::text, \
                format_type(a.atttypid, a.atttypmod), a.attnotnull \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped AND {SYSTEM} \
         ORDER BY 1, 2"
    );
    let indexes = format!(
        "SELECT n.nspname || '.' || c.relname, \
                CASE WHEN x.indisunique THEN 'UNIQUE ' ELSE '' END \
                || btrim(substring(pg_get_indexdef(x.indexrelid) from ' USING .*$')) \
         FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND {SYSTEM} ORDER BY 1, 2"
    );
    let constraints = format!(
        "SELECT n.nspname || '.' || c.relname, k.conname::text, pg_get_constraintdef(k.oid) \
         FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND {SYSTEM} ORDER BY 1, 2"
    );
    let sequences =
        "SELECT schemaname || '.' || sequencename, increment_by, start_value, last_value \
                     FROM pg_sequences \
                     WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'pglogical') \
                     ORDER BY 1";
    let (t, c, i, k, s) = tokio::try_join!(
        client.query(&tables, &[]),
        client.query(&columns, &[]),
        client.query(&indexes, &[]),
        client.query(&constraints, &[]),
        client.query(sequences, &[]),
    )?;
    let mut by_name: BTreeMap<String, TableLive> = BTreeMap::new();
    for row in &t {
        let table: String = row.try_get(0)?;
        by_name.insert(
            table.clone(),
            TableLive {
                name: table,
                has_key: row.try_get(1)?,
                ..TableLive::default()
            },
        );
    }
    for row in &c {
        if let Some(table) = by_name.get_mut(&row.try_get::<_, String>(0)?) {
            table.columns.push(ColumnLive {
                name: row.try_get(1)?,
                data_type: row.try_get(2)?,
                not_null: row.try_get(3)?,
            });
        }
    }
    for row in &i {
        if let Some(table) = by_name.get_mut(&row.try_get::<_, String>(0)?) {
            table
                .indexes
                .push(row.try_get::<_, Option<String>>(1)?.unwrap_or_default());
        }
    }
    for row in &k {
        if let Some(table) = by_name.get_mut(&row.try_get::<_, String>(0)?) {
            table.constraints.push((row.try_get(1)?, row.try_get(2)?));
        }
    }
    let sequences = s
        .iter()
        .map(|row| {
            Ok(SequenceLive {
                name: row.try_get(0)?,
                increment: row.try_get(1)?,
                start: row.try_get(2)?,
                last_value: row.try_get(3)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    Ok(NodeLive {
        name: name.to_string(),
        tables: by_name.into_values().collect(),
        sequences,
    })
}
