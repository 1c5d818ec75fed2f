//! Active-active drift, pure: what differs between two nodes' tables (DDL
//! does not replicate: pgdr diffs the schemas), which tables cannot
//! replicate updates (no key), which sequences can hand out the same value
//! on two nodes (with the increments and offsets that make them disjoint),
//! and which subscriptions of the mesh are not replicating or lag.

use crate::state::logical::{NodeLive, NodeState, SequenceLive, TableLive};
use std::collections::BTreeMap;

/// A subscription the full mesh needs: `subscriber` receives what
/// `provider` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedSubscription {
    /// `<subscriber>_from_<provider>` (`-` as `_`).
    pub name: String,
    pub subscriber: String,
    pub provider: String,
    /// Copy the provider's rows first: only a peer joining from the seed.
    pub copy_data: bool,
}

/// Every node subscribes to every other: with `forward_origins = '{}'` a
/// change is sent only by the node it was made on, so a node passes nothing
/// on and each pair needs its own subscription. A peer copies the seed's
/// (the primary's) rows when it joins; nothing else is copied.
pub fn wanted_subscriptions(nodes: &[&str], seed: &str) -> Vec<WantedSubscription> {
    let mut wanted = Vec::new();
    for subscriber in nodes {
        for provider in nodes.iter().filter(|p| *p != subscriber) {
            wanted.push(WantedSubscription {
                name: format!("{subscriber}_from_{provider}").replace('-', "_"),
                subscriber: subscriber.to_string(),
                provider: provider.to_string(),
                copy_data: *provider == seed,
            });
        }
    }
    wanted
}

/// A node as read (see [`crate::state::ActiveActiveNode`]).
pub type NodeRead = crate::state::ActiveActiveNode;

/// What `plan` reports of an active-active topology's shape, as (address,
/// message): a subscription forwarding other nodes' changes, tables
/// differing between nodes, tables without a key, and (when apply does not
/// make them disjoint) sequences that collide. `nodes` in the plan's order,
/// the seed first. Whether each direction replicates, and how late, is
/// judged in [`crate::plan::assess::nodes`] (`status` shows it too); a
/// missing subscription is apply's to make.
pub fn problems(nodes: &[(String, NodeRead)], report_collisions: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let read: Vec<(&str, &NodeState)> = nodes
        .iter()
        .filter_map(|(n, r)| r.as_ref().ok().map(|s| (n.as_str(), s)))
        .collect();
    for (name, state) in &read {
        for sub in state.pglogical.subscriptions.iter() {
            if !sub.forward_origins.is_empty() {
                out.push((
                    format!("replication.subscription.{}", sub.name),
                    format!(
                        "{} (on {name}) forwards changes of origins {:?}: in a mesh each change would arrive twice or loop; it must forward none (drop it and apply again)",
                        sub.name, sub.forward_origins
                    ),
                ));
            }
        }
    }
    if let Some((_, first)) = read.first() {
        let first_live = &first.schema;
        for (_, state) in read.iter().skip(1) {
            for d in schema_drift(first_live, &state.schema) {
                out.push((
                    format!(
                        "replication.table.{}",
                        d.object.split('.').take(2).collect::<Vec<_>>().join(".")
                    ),
                    format!(
                        "{} {} (DDL does not replicate: run it on every node)",
                        d.object, d.what
                    ),
                ));
            }
        }
        for table in without_key(first_live) {
            out.push((
                format!("replication.table.{table}"),
                format!("{table} has no primary key or replica identity: its updates and deletes cannot replicate"),
            ));
        }
    }
    let lives: Vec<&NodeLive> = read.iter().map(|(_, s)| &s.schema).collect();
    for seq in colliding(&lives, nodes.len())
        .into_iter()
        .filter(|_| report_collisions)
    {
        out.push((
            format!("replication.sequence.{seq}"),
            format!("{seq} can hand out the same value on two nodes (sequences: unmanaged); with `sequences: disjoint` apply gives each node its own remainder of the node count"),
        ));
    }
    out
}

/// How far a subscription is behind its provider: the WAL the provider
/// holds that the subscriber has not confirmed (bytes, by its slot), and
/// the provider's sender's `replay_lag` in seconds where the sender reports
/// one (pglogical 2.4's output plugin reports no progress, so its senders
/// have none: its lag is judged in bytes).
pub fn lag_of(
    provider: &NodeState,
    sub: &crate::state::logical::Subscription,
) -> (Option<f64>, Option<i64>) {
    let senders = &provider.pg.health.replication;
    let seconds = senders
        .iter()
        .find(|r| r.application_name == sub.name)
        .and_then(|r| (r.replay_lag_seconds > 0.0).then_some(r.replay_lag_seconds));
    let bytes = provider
        .pglogical
        .slots_behind
        .iter()
        .find(|(slot, _)| *slot == sub.slot)
        .map(|(_, b)| (*b).max(0));
    (seconds, bytes)
}

/// One difference between two nodes' tables, said with both names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// `schema.table`, or `schema.table.column`.
    pub object: String,
    pub what: String,
}

/// Every difference between the tables of `a` and `b` (both ways).
pub fn schema_drift(a: &NodeLive, b: &NodeLive) -> Vec<Drift> {
    let by_name = |n: &NodeLive| -> BTreeMap<String, TableLive> {
        n.tables
            .iter()
            .map(|t| (t.name.clone(), t.clone()))
            .collect()
    };
    let (ta, tb) = (by_name(a), by_name(b));
    let mut drift = Vec::new();
    for (name, table) in &ta {
        match tb.get(name) {
            None => drift.push(Drift {
                object: name.clone(),
                what: format!("is on {} but not on {}", a.name, b.name),
            }),
            Some(other) => drift.extend(table_drift(name, (&a.name, table), (&b.name, other))),
        }
    }
    for name in tb.keys().filter(|n| !ta.contains_key(*n)) {
        drift.push(Drift {
            object: name.clone(),
            what: format!("is on {} but not on {}", b.name, a.name),
        });
    }
    drift
}

fn table_drift(name: &str, (na, a): (&str, &TableLive), (nb, b): (&str, &TableLive)) -> Vec<Drift> {
    let mut drift = Vec::new();
    let cols = |t: &TableLive| -> BTreeMap<String, (String, bool)> {
        t.columns
            .iter()
            .map(|c| (c.name.clone(), (c.data_type.clone(), c.not_null)))
            .collect()
    };
    let (ca, cb) = (cols(a), cols(b));
    for (col, (ty, nn)) in &ca {
        let object = format!("{name}.{col}");
        match cb.get(col) {
            None => drift.push(Drift {
                object,
                what: format!("column on {na} ({ty}) but not on {nb}"),
            }),
            Some((ty_b, nn_b)) if ty_b != ty => drift.push(Drift {
                object,
                what: format!("is {ty} on {na} but {ty_b} on {nb}"),
            }),
            Some((_, nn_b)) if nn_b != nn => drift.push(Drift {
                object,
                what: format!(
                    "is {} on {na} but {} on {nb}",
                    null_word(*nn),
                    null_word(*nn_b)
                ),
            }),
            _ => {}
        }
    }
    for (col, (ty, _)) in cb.iter().filter(|(c, _)| !ca.contains_key(*c)) {
        drift.push(Drift {
            object: format!("{name}.{col}"),
            what: format!("column on {nb} ({ty}) but not on {na}"),
        });
    }
    let sets = |v: &[String]| v.iter().cloned().collect::<std::collections::BTreeSet<_>>();
    for index in sets(&a.indexes).symmetric_difference(&sets(&b.indexes)) {
        let on = if a.indexes.contains(index) {
            (na, nb)
        } else {
            (nb, na)
        };
        drift.push(Drift {
            object: name.to_string(),
            what: format!("index {index} on {} but not on {}", on.0, on.1),
        });
    }
    let cons =
        |t: &TableLive| -> BTreeMap<String, String> { t.constraints.iter().cloned().collect() };
    let (ka, kb) = (cons(a), cons(b));
    for (cname, def) in &ka {
        match kb.get(cname) {
            Some(other) if other == def => {}
            Some(other) => drift.push(Drift {
                object: name.to_string(),
                what: format!("constraint {cname} is `{def}` on {na} but `{other}` on {nb}"),
            }),
            None => drift.push(Drift {
                object: name.to_string(),
                what: format!("constraint {cname} (`{def}`) on {na} but not on {nb}"),
            }),
        }
    }
    for (cname, def) in kb.iter().filter(|(c, _)| !ka.contains_key(*c)) {
        drift.push(Drift {
            object: name.to_string(),
            what: format!("constraint {cname} (`{def}`) on {nb} but not on {na}"),
        });
    }
    drift
}

fn null_word(not_null: bool) -> &'static str {
    if not_null {
        "NOT NULL"
    } else {
        "nullable"
    }
}

/// Tables whose updates and deletes cannot replicate: no primary key and no
/// replica identity index.
pub fn without_key(node: &NodeLive) -> Vec<String> {
    node.tables
        .iter()
        .filter(|t| !t.has_key)
        .map(|t| t.name.clone())
        .collect()
}

/// What makes sequence values disjoint across `nodes` nodes: node `index`
/// (0-based) hands out the values `≡ index + 1 (mod nodes)`.
pub fn disjoint(nodes: usize, index: usize) -> (i64, i64) {
    (nodes as i64, index as i64 + 1)
}

/// Sequences that can hand out the same value on two nodes: for each name,
/// unless every node's increment is the node count and their values fall in
/// distinct remainders. `nodes`: each node read, in the plan's order;
/// `count`: how many nodes the plan has (a node not read still counts).
pub fn colliding(nodes: &[&NodeLive], count: usize) -> Vec<String> {
    let mut by_name: BTreeMap<&str, Vec<&SequenceLive>> = BTreeMap::new();
    for node in nodes {
        for s in &node.sequences {
            by_name.entry(&s.name).or_default().push(s);
        }
    }
    let n = count as i64;
    by_name
        .into_iter()
        .filter(|(_, seqs)| {
            let residues: std::collections::BTreeSet<i64> =
                seqs.iter().map(|s| s.start.rem_euclid(n.max(1))).collect();
            seqs.len() > 1
                && !(seqs.iter().all(|s| s.increment == n) && residues.len() == seqs.len())
        })
        .map(|(name, _)| name.to_string())
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::state::logical::ColumnLive;

    fn table(name: &str, cols: &[(&str, &str, bool)], key: bool) -> TableLive {
        TableLive {
            name: name.into(),
            columns: cols
                .iter()
                .map(|(n, t, nn)| ColumnLive {
                    name: n.to_string(),
                    data_type: t.to_string(),
                    not_null: *nn,
                })
                .collect(),
            has_key: key,
            indexes: vec!["UNIQUE USING btree (id)".into()],
            constraints: vec![("orders_pkey".into(), "PRIMARY KEY (id)".into())],
        }
    }

    fn node(name: &str, tables: Vec<TableLive>, seqs: Vec<SequenceLive>) -> NodeLive {
        NodeLive {
            name: name.into(),
            tables,
            sequences: seqs,
        }
    }

    #[test]
    fn an_alter_table_on_one_node_is_named_with_table_and_column() {
        let east = node(
            "east",
            vec![table(
                "public.orders",
                &[("id", "integer", true), ("note", "text", false)],
                true,
            )],
            vec![],
        );
        let mut west_orders = table("public.orders", &[("id", "bigint", true)], true);
        west_orders.indexes.push("USING btree (note)".into());
        let west = node(
            "west",
            vec![west_orders, table("public.log", &[], false)],
            vec![],
        );
        let drift = schema_drift(&east, &west);
        let said: Vec<String> = drift
            .iter()
            .map(|d| format!("{}: {}", d.object, d.what))
            .collect();
        assert_eq!(
            said,
            [
                "public.orders.id: is integer on east but bigint on west",
                "public.orders.note: column on east (text) but not on west",
                "public.orders: index USING btree (note) on west but not on east",
                "public.log: is on west but not on east",
            ]
        );
        assert_eq!(without_key(&west), ["public.log"]);
        assert!(schema_drift(&east, &east).is_empty());
    }

    #[test]
    fn the_mesh_has_a_subscription_each_way_and_only_the_seed_is_copied() {
        let wanted = wanted_subscriptions(&["east", "west", "eu-1"], "east");
        let said: Vec<String> = wanted
            .iter()
            .map(|w| format!("{} {}", w.name, w.copy_data))
            .collect();
        assert_eq!(
            said,
            [
                "east_from_west false",
                "east_from_eu_1 false",
                "west_from_east true",
                "west_from_eu_1 false",
                "eu_1_from_east true",
                "eu_1_from_west false",
            ]
        );
    }

    /// A node as read, with these subscriptions.
    pub(crate) fn state(
        live: NodeLive,
        subs: Vec<crate::state::logical::Subscription>,
    ) -> NodeState {
        NodeState {
            pg: crate::state::postgres::PgLive::default(),
            schema: live,
            pglogical: crate::state::logical::PglogicalLive {
                version: Some("2.4.2".into()),
                node: None,
                tables: vec![],
                subscriptions: subs,
                slots_behind: vec![],
            },
        }
    }

    #[test]
    fn plan_names_a_forwarding_subscription_drift_a_keyless_table_and_collisions() {
        use crate::state::logical::Subscription;
        let forwarding = Subscription {
            name: "east_from_west".into(),
            status: "replicating".into(),
            provider_node: "west".into(),
            forward_origins: vec!["all".into()],
            replication_sets: vec!["default".into()],
            slot: "pgl_postgres_west_east_from_west".into(),
        };
        let t = table("public.orders", &[("id", "integer", true)], true);
        let seq = SequenceLive {
            name: "public.orders_id_seq".into(),
            increment: 1,
            start: 1,
            last_value: None,
        };
        let east = node("east", vec![t.clone()], vec![seq.clone()]);
        let mut west_t = t.clone();
        west_t.columns.push(crate::state::logical::ColumnLive {
            name: "note".into(),
            data_type: "text".into(),
            not_null: false,
        });
        let west = node(
            "west",
            vec![west_t, table("public.log", &[], false)],
            vec![seq],
        );
        let nodes = vec![
            ("east".to_string(), Ok(state(east, vec![forwarding]))),
            ("west".to_string(), Ok(state(west, vec![]))),
            ("eu".to_string(), Err("connection refused".to_string())),
        ];
        let got = problems(&nodes, true);
        let said: Vec<String> = got.iter().map(|(a, m)| format!("{a}: {m}")).collect();
        assert_eq!(said.len(), 4, "{said:#?}");
        assert!(said[0].starts_with("replication.subscription.east_from_west: east_from_west (on east) forwards changes of origins [\"all\"]"), "{}", said[0]);
        assert!(
            said[2]
                .starts_with("replication.table.public.log: public.log is on west but not on east"),
            "{}",
            said[2]
        );
        assert!(said[1].starts_with("replication.table.public.orders: public.orders.note column on west (text) but not on east"), "{}", said[1]);
        assert!(
            said[3].starts_with("replication.sequence.public.orders_id_seq: "),
            "{}",
            said[3]
        );
        // With `sequences: disjoint` apply fixes collisions: not a problem.
        assert_eq!(problems(&nodes, false).len(), 3);
    }

    #[test]
    fn sequences_collide_unless_each_node_has_its_own_remainder() {
        let seq = |inc, start| SequenceLive {
            name: "public.orders_id_seq".into(),
            increment: inc,
            start,
            last_value: None,
        };
        let (a, b) = (
            node("a", vec![], vec![seq(1, 1)]),
            node("b", vec![], vec![seq(1, 1)]),
        );
        assert_eq!(colliding(&[&a, &b], 2), ["public.orders_id_seq"]);
        let ((inc_a, start_a), (inc_b, start_b)) = (disjoint(2, 0), disjoint(2, 1));
        let a = node("a", vec![], vec![seq(inc_a, start_a)]);
        let b = node("b", vec![], vec![seq(inc_b, start_b)]);
        assert!(colliding(&[&a, &b], 2).is_empty());
        // Same increment, same remainder: still colliding.
        let b = node("b", vec![], vec![seq(2, 3)]);
        assert_eq!(colliding(&[&a, &b], 2), ["public.orders_id_seq"]);
    }
}
