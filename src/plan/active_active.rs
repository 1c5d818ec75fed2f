//! Planning an active-active topology: each node's replication settings,
//! then pglogical's extension and node, the tables into the replication
//! set, disjoint sequences, then the full mesh of subscriptions. Pure: the
//! nodes come as read ([`crate::state::logical::NodeState`]).
//!
//! What needs a restart (`wal_level`, `shared_preload_libraries`,
//! `track_commit_timestamp`) is written and reported; pglogical is set up
//! by the next apply once the node runs with them. A subscription is made
//! only between nodes whose replicated tables match: DDL does not
//! replicate, and rows sent to a table of another shape stop replication.

use super::logical::{self, WantedSubscription};
use super::postgres::plan_settings;
use super::{Action, Change, ClusterPlan, Note, Op, PgOp, PgWrite, Server};
use crate::spec::{with_pglogical, Desired, Node, Sequences, PGLOGICAL_LIBRARY};
use crate::state::logical::NodeState;
use crate::state::postgres::PgLive;
use crate::state::ActiveActiveNode;
use serde_json::json;
use std::collections::BTreeSet;

/// Values below what any node handed out, plus this margin, are never given
/// to a node made disjoint (apply reads every node's again when it writes).
pub const SEQUENCE_MARGIN: i64 = 1000;

pub fn plan_active_active(
    desired: &Desired,
    nodes: &[(String, ActiveActiveNode)],
    plan: &mut ClusterPlan,
) {
    let Some(aa) = &desired.plan.active_active else {
        return;
    };
    let spec_nodes = desired.active_nodes();
    let replicable = replicable(&spec_nodes, nodes);
    let mut ready = Vec::new();
    // Nodes whose apply workers must restart to read a new conflict rule.
    let mut restarts = Vec::new();
    for (i, node) in spec_nodes.iter().enumerate() {
        let Some(Ok(state)) = nodes.iter().find(|(n, _)| n == node.name).map(|(_, r)| r) else {
            continue;
        };
        let server = match i {
            0 => Server::Primary,
            _ => Server::Node(node.name.to_string()),
        };
        let before = plan.changes.len();
        plan_node_settings(desired, &server, &state.pg, plan);
        let rule = "pglogical.conflict_resolution";
        let new_rule = plan.changes[before..].iter().any(|c| {
            c.address.ends_with(rule) && c.op.is_some() && state.pg.settings.contains_key(rule)
        });
        if new_rule {
            let old = state.pg.settings.get(rule).map(|s| s.setting.clone());
            restarts.push((node.name, server.clone(), old));
        }
        match not_ready(desired, &state.pg) {
            Some(why) => plan.notes.push(Note {
                cluster: plan.cluster.clone(),
                address: format!("replication.node.{}", node.name),
                message: format!("pglogical is set up on {} once it runs with {why}: restart it, then run apply again", node.name),
            }),
            None => {
                plan_node(desired, (node, &server, state), replicable.as_ref(), plan);
                ready.push(node.name);
            }
        }
    }
    if aa.sequences == Sequences::Disjoint {
        plan_sequences(&spec_nodes, nodes, plan);
    }
    let rule = aa.conflict_resolution.as_pglogical();
    for (name, server, old) in restarts {
        let change = Change::new(
            &plan.cluster,
            format!("replication.node.{name}.apply_workers"),
            Action::Update,
            (
                json!({ "conflict_resolution": old }),
                json!({ "conflict_resolution": rule }),
            ),
            "pglogical's workers read the conflict rule only when they start (it handles no reload): once new sessions read the new rule, each subscription of the node is disabled and enabled again, and subscriptions are made only after",
        )
        .op(pg_op(
            &server,
            PgWrite::RestartApply {
                conflict_resolution: rule.to_string(),
            },
        ));
        plan.changes.push(change);
    }
    plan_subscriptions(&spec_nodes, nodes, &ready, plan);
}

/// The tables every node has with the same shape (no drift between the
/// first node and any other), once every node was read; `None` before.
fn replicable(
    spec_nodes: &[Node],
    nodes: &[(String, ActiveActiveNode)],
) -> Option<BTreeSet<String>> {
    let read: Vec<&NodeState> = nodes.iter().filter_map(|(_, r)| r.as_ref().ok()).collect();
    if read.len() != spec_nodes.len() || read.is_empty() {
        return None;
    }
    let first = &read[0].schema;
    let mut tables: BTreeSet<String> = first.tables.iter().map(|t| t.name.clone()).collect();
    for other in &read[1..] {
        let theirs: BTreeSet<String> = other.schema.tables.iter().map(|t| t.name.clone()).collect();
        tables.retain(|t| theirs.contains(t));
        for drift in logical::schema_drift(first, &other.schema) {
            let table: String = drift
                .object
                .split('.')
                .take(2)
                .collect::<Vec<_>>()
                .join(".");
            tables.remove(&table);
        }
    }
    Some(tables)
}

fn pg_op(server: &Server, write: PgWrite) -> Option<Op> {
    Some(Op::Pg(PgOp {
        server: server.clone(),
        write,
    }))
}

/// `wal_level`, `track_commit_timestamp`, the conflict rule, and pglogical
/// added to the node's own `shared_preload_libraries`.
fn plan_node_settings(desired: &Desired, server: &Server, pg: &PgLive, plan: &mut ClusterPlan) {
    let Some(aa) = &desired.plan.active_active else {
        return;
    };
    let mut settings: Vec<(String, String)> = aa
        .node_settings()
        .into_iter()
        // pglogical's own settings exist once its library is loaded, at the
        // restart shared_preload_libraries asks for (PostgreSQL 15's ALTER
        // SYSTEM refuses a setting no loaded library defines).
        .filter(|(name, _)| pg.settings.contains_key(name))
        .collect();
    if let Some(preload) = pg.settings.get("shared_preload_libraries") {
        // What a restart would load: a value waiting in the files, or the active one.
        let current = match (preload.pending_restart, &preload.file_value) {
            (true, Some(file)) => file.clone(),
            _ => preload.setting.clone(),
        };
        let want = desired
            .plan
            .settings
            .get("shared_preload_libraries")
            .map(|v| v.0.clone())
            .or_else(|| with_pglogical(&current))
            .unwrap_or(current);
        settings.push(("shared_preload_libraries".into(), want));
    }
    plan_settings(plan, server, &settings, pg);
}

/// What the node must still run with before pglogical can be set up, or
/// `None` when it runs with everything.
fn not_ready(desired: &Desired, pg: &PgLive) -> Option<String> {
    let aa = desired.plan.active_active.as_ref()?;
    let active = |name: &str| pg.settings.get(name).map(|s| s.setting.as_str());
    let mut lacking = Vec::new();
    if active("wal_level") != Some("logical") {
        lacking.push("wal_level = logical".to_string());
    }
    if active("shared_preload_libraries").is_none_or(|l| with_pglogical(l).is_some()) {
        lacking.push(format!("{PGLOGICAL_LIBRARY} in shared_preload_libraries"));
    }
    let timestamps = aa
        .node_settings()
        .iter()
        .any(|(n, _)| n == "track_commit_timestamp");
    if timestamps && active("track_commit_timestamp") != Some("on") {
        lacking.push("track_commit_timestamp = on".into());
    }
    (!lacking.is_empty()).then(|| lacking.join(", "))
}

/// The extension, the node and the tables of one node that runs with what
/// pglogical needs.
fn plan_node(
    desired: &Desired,
    (node, server, state): (&Node, &Server, &NodeState),
    replicable: Option<&BTreeSet<String>>,
    plan: &mut ClusterPlan,
) {
    let address = format!("replication.node.{}", node.name);
    let pgl = &state.pglogical;
    if pgl.version.is_none() {
        let change = Change::new(
            &plan.cluster,
            format!("{address}.extension"),
            Action::Create,
            (json!(null), json!(PGLOGICAL_LIBRARY)),
            "the node replicates through pglogical",
        )
        .op(pg_op(server, PgWrite::CreatePglogical));
        plan.changes.push(change);
    }
    match &pgl.node {
        Some(name) if name == node.name => {}
        Some(other) => plan.problem(
            address.clone(),
            format!("the server is pglogical node `{other}`, not `{}`; pgdr never drops or renames a node: rename it in the plan file, or drop it with pglogical.drop_node", node.name),
        ),
        None => {
            let dsn = node.postgres.to_libpq();
            let change = Change::new(
                &plan.cluster,
                address.clone(),
                Action::Create,
                (json!(null), json!({ "node": node.name, "dsn": dsn })),
                "each node is a pglogical node the others subscribe to",
            )
            .op(pg_op(
                server,
                PgWrite::CreateNode {
                    node: node.name.to_string(),
                    dsn,
                },
            ));
            plan.changes.push(change);
        }
    }
    let Some(aa) = &desired.plan.active_active else {
        return;
    };
    let on_node: Vec<&str> = state
        .schema
        .tables
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    let wanted: Vec<&str> = if aa.tables.is_empty() {
        // Every table with a key: one without cannot be added (its updates
        // could not replicate), and plan reports it.
        let keyed = state.schema.tables.iter().filter(|t| t.has_key);
        keyed.map(|t| t.name.as_str()).collect()
    } else {
        for missing in aa.tables.iter().filter(|t| !on_node.contains(&t.as_str())) {
            plan.problem(
                format!("replication.table.{missing}"),
                format!("{missing} is in active_active.tables but not on node {}: create it there (DDL does not replicate)", node.name),
            );
        }
        aa.tables
            .iter()
            .map(String::as_str)
            .filter(|t| on_node.contains(t))
            .filter(|t| {
                state
                    .schema
                    .tables
                    .iter()
                    .any(|x| x.name == *t && x.has_key)
            })
            .collect()
    };
    // Only a table every node has, in the same shape: rows of a table
    // another node lacks stop that node's replication from this one.
    let lacking: Vec<String> = wanted
        .into_iter()
        .filter(|t| replicable.is_some_and(|r| r.contains(*t)))
        .filter(|t| !pgl.tables.iter().any(|x| x == t))
        .map(str::to_string)
        .collect();
    if !lacking.is_empty() {
        let mut after = pgl.tables.clone();
        after.extend(lacking.iter().cloned());
        after.sort();
        let change = Change::new(
            &plan.cluster,
            format!("{address}.tables"),
            Action::Update,
            (json!(pgl.tables), json!(after)),
            format!(
                "{} table(s) written on {} would not reach the other nodes",
                lacking.len(),
                node.name
            ),
        )
        .op(pg_op(server, PgWrite::ReplicateTables { tables: lacking }));
        plan.changes.push(change);
    }
}

/// Each sequence on every node made to hand out its own remainder modulo
/// the node count. Only when every node was read: the new values start
/// above what any node handed out.
fn plan_sequences(
    spec_nodes: &[Node],
    nodes: &[(String, ActiveActiveNode)],
    plan: &mut ClusterPlan,
) {
    let read: Vec<&NodeState> = nodes.iter().filter_map(|(_, r)| r.as_ref().ok()).collect();
    if read.len() != spec_nodes.len() {
        return;
    }
    let count = spec_nodes.len();
    let mut names: Vec<&str> = read
        .iter()
        .flat_map(|n| n.schema.sequences.iter().map(|s| s.name.as_str()))
        .collect();
    names.sort();
    names.dedup();
    for seq in names {
        let on: Vec<_> = read
            .iter()
            .filter_map(|n| n.schema.sequences.iter().find(|s| s.name == seq))
            .collect();
        if on.len() < 2 {
            continue;
        }
        // Above everything handed out, with a margin for what is handed out
        // between plan and apply; from the start when nothing was.
        let floor = match on.iter().filter_map(|s| s.last_value).max() {
            Some(highest) => highest.saturating_add(SEQUENCE_MARGIN),
            None => on.iter().map(|s| s.start).min().unwrap_or(1),
        };
        for (i, (node, state)) in spec_nodes.iter().zip(&read).enumerate() {
            let Some(live) = state.schema.sequences.iter().find(|s| s.name == seq) else {
                continue;
            };
            let (increment, residue) = logical::disjoint(count, i);
            if live.increment == increment
                && live.start.rem_euclid(increment) == residue % increment
            {
                continue;
            }
            let server = match i {
                0 => Server::Primary,
                _ => Server::Node(node.name.to_string()),
            };
            let change = Change::new(
                &plan.cluster,
                format!("replication.node.{}.sequence.{seq}", node.name),
                Action::Update,
                (
                    json!({ "increment": live.increment, "start": live.start }),
                    json!({ "increment": increment, "remainder": residue % increment }),
                ),
                format!(
                    "{seq} could hand out on {} a value another node hands out",
                    node.name
                ),
            )
            .op(pg_op(
                &server,
                PgWrite::DisjointSequence {
                    sequence: seq.to_string(),
                    increment,
                    residue,
                    floor,
                },
            ));
            plan.changes.push(change);
        }
    }
}

/// The subscriptions of the full mesh that are missing, between nodes that
/// run pglogical (or get it in this apply) and whose tables match.
fn plan_subscriptions(
    spec_nodes: &[Node],
    nodes: &[(String, ActiveActiveNode)],
    ready: &[&str],
    plan: &mut ClusterPlan,
) {
    let names: Vec<&str> = spec_nodes.iter().map(|n| n.name).collect();
    let state = |name: &str| {
        nodes
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, r)| r.as_ref().ok())
    };
    for want in logical::wanted_subscriptions(&names, names[0]) {
        let (Some(subscriber), Some(provider)) = (state(&want.subscriber), state(&want.provider))
        else {
            continue;
        };
        let has = subscriber
            .pglogical
            .subscriptions
            .iter()
            .any(|s| s.provider_node == want.provider || s.name == want.name);
        if has {
            continue;
        }
        let address = format!("replication.subscription.{}", want.name);
        if !(ready.contains(&want.subscriber.as_str()) && ready.contains(&want.provider.as_str())) {
            continue;
        }
        if !logical::schema_drift(&provider.schema, &subscriber.schema).is_empty() {
            plan.problem(
                address,
                format!("{} does not receive {}'s changes, and no subscription is made while their tables differ (see replication.table): rows of another shape would stop replication", want.subscriber, want.provider),
            );
            continue;
        }
        plan.changes
            .push(subscription_change(&plan.cluster, spec_nodes, &want));
    }
}

fn subscription_change(cluster: &str, spec_nodes: &[Node], want: &WantedSubscription) -> Change {
    let provider = spec_nodes.iter().find(|n| n.name == want.provider);
    let provider_dsn = provider.map(|n| n.postgres.to_libpq()).unwrap_or_default();
    let server = match spec_nodes.first() {
        Some(seed) if seed.name == want.subscriber => Server::Primary,
        _ => Server::Node(want.subscriber.clone()),
    };
    Change::new(
        cluster,
        format!("replication.subscription.{}", want.name),
        Action::Create,
        (
            json!(null),
            json!({ "provider": want.provider, "forward_origins": [], "copy_data": want.copy_data }),
        ),
        format!(
            "{} receives what is written on {}{}",
            want.subscriber,
            want.provider,
            if want.copy_data { ", starting with a copy of its rows" } else { "" }
        ),
    )
    .op(pg_op(
        &server,
        PgWrite::CreateSubscription {
            subscription: want.name.clone(),
            provider_dsn,
            copy_data: want.copy_data,
        },
    ))
}
