//! Active-active drift, pure (issue 31, in progress): what differs between
//! two nodes' tables (DDL does not replicate: pgdr diffs the schemas), which
//! tables cannot replicate updates (no key), and which sequences can hand
//! out the same value on two nodes — with the increments and offsets that
//! make them disjoint.

use crate::state::logical::{NodeLive, SequenceLive, TableLive};
use std::collections::BTreeMap;

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
/// distinct remainders. `nodes`: each node's sequences, in the plan's order.
pub fn colliding(nodes: &[&NodeLive]) -> Vec<String> {
    let mut by_name: BTreeMap<&str, Vec<&SequenceLive>> = BTreeMap::new();
    for node in nodes {
        for s in &node.sequences {
            by_name.entry(&s.name).or_default().push(s);
        }
    }
    let n = nodes.len() as i64;
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
mod tests {
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
        assert_eq!(colliding(&[&a, &b]), ["public.orders_id_seq"]);
        let ((inc_a, start_a), (inc_b, start_b)) = (disjoint(2, 0), disjoint(2, 1));
        let a = node("a", vec![], vec![seq(inc_a, start_a)]);
        let b = node("b", vec![], vec![seq(inc_b, start_b)]);
        assert!(colliding(&[&a, &b]).is_empty());
        // Same increment, same remainder: still colliding.
        let b = node("b", vec![], vec![seq(2, 3)]);
        assert_eq!(colliding(&[&a, &b]), ["public.orders_id_seq"]);
    }
}
