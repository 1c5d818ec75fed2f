//! Active-active (issue 31, in progress): the drift pgdr reads from two real
//! nodes. An `ALTER TABLE` on one node only is named by table and column, a
//! table without a key and a sequence both nodes hand out the same values
//! from are reported — read with pgdr's own provider, compared by the pure
//! planner, each fact set up with psql.

use crate::common::Postgres;
use pgdr::plan::logical::{colliding, schema_drift, without_key};
use pgdr::providers::postgres::logical::read_node;

fn read(pg: &Postgres, name: &str) -> pgdr::state::logical::NodeLive {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let info = pgdr::spec::Conninfo::parse(&pg.conninfo()).unwrap();
        let client =
            pgdr::providers::postgres::connect(name, &info, &pgdr::settings::PgEnv::default())
                .await
                .unwrap();
        read_node(&client, name).await.unwrap()
    })
}

#[test]
fn drift_between_two_nodes_is_named_by_table_and_column() {
    let east = Postgres::start();
    let west = Postgres::start();
    for pg in [&east, &west] {
        pg.psql(
            "CREATE TABLE orders (id serial PRIMARY KEY, note text, total numeric(10,2) NOT NULL)",
        );
        pg.psql("CREATE TABLE events (at timestamptz, what text)");
    }
    // DDL does not replicate: one node only.
    west.psql("ALTER TABLE orders ADD COLUMN region text");
    west.psql("ALTER TABLE orders ALTER COLUMN note TYPE varchar(40)");
    west.psql("CREATE INDEX orders_note ON orders (note)");

    let (a, b) = (read(&east, "east"), read(&west, "west"));
    let said: Vec<String> = schema_drift(&a, &b)
        .iter()
        .map(|d| format!("{}: {}", d.object, d.what))
        .collect();
    assert_eq!(
        said,
        [
            "public.orders.note: is text on east but character varying(40) on west",
            "public.orders.region: column on west (text) but not on east",
            "public.orders: index USING btree (note) on west but not on east",
        ],
        "{a:#?}\n{b:#?}"
    );
    assert_eq!(without_key(&a), ["public.events"]);
    // Both nodes' orders_id_seq start at 1 and step by 1: the same ids on both.
    assert_eq!(colliding(&[&a, &b], 2), ["public.orders_id_seq"]);
    // Made disjoint by hand as apply will: odd on east, even on west.
    east.psql("ALTER SEQUENCE orders_id_seq INCREMENT BY 2 START WITH 1 RESTART WITH 1");
    west.psql("ALTER SEQUENCE orders_id_seq INCREMENT BY 2 START WITH 2 RESTART WITH 2");
    let (a, b) = (read(&east, "east"), read(&west, "west"));
    assert!(
        colliding(&[&a, &b], 2).is_empty(),
        "{:?} {:?}",
        a.sequences,
        b.sequences
    );
}

/// The plan file of a two-node mesh: east (the primary, the seed) and west.
fn mesh_plan(dir: &std::path::Path, east: &Postgres, west: &Postgres) -> String {
    let text = format!(
        "version: 1\ncluster: shop\ntier: saas\nobjectives: {{ rpo: 5m, rto: 30m }}\nprimary:\n  postgres: \"{}\"\nactive_active:\n  node_name: east\n  peers:\n    - {{ name: west, postgres: \"{}\", region: us-west-2 }}\n",
        east.conninfo(),
        west.conninfo()
    );
    let file = crate::common::write_plan(dir, "shop.yaml", &text);
    file.to_str().unwrap().to_string()
}

/// `address: message` of the plan's problems under `replication.`.
fn replication_problems(plan: &serde_json::Value) -> Vec<String> {
    plan["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["address"].as_str().unwrap().starts_with("replication."))
        .map(|p| {
            format!(
                "{}: {}",
                p["address"].as_str().unwrap(),
                p["message"].as_str().unwrap()
            )
        })
        .collect()
}

fn addresses(plan: &serde_json::Value, key: &str) -> Vec<String> {
    plan[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["address"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until every pglogical subscription of `pg` is replicating.
fn wait_replicating(pg: &Postgres) {
    let sql = "SELECT count(*) FILTER (WHERE status <> 'replicating') || '/' || count(*) \
               FROM pglogical.show_subscription_status()";
    let got = pg.wait_for_up_to(sql, "0/1", std::time::Duration::from_secs(60));
    assert_eq!(got, "0/1", "{}", pg.server_log());
}

/// Two updates of one row at once, one on each node.
fn concurrent_updates(east: &Postgres, west: &Postgres, id: i64) {
    let update = |info: String, v: &'static str| {
        std::thread::spawn(move || {
            crate::common::run(
                std::process::Command::new("psql")
                    .args([
                        &info,
                        "-XAtc",
                        &format!("UPDATE orders SET note = '{v}' WHERE id = {id}"),
                    ])
                    .stdin(std::process::Stdio::null()),
                crate::common::COMMAND_TIMEOUT,
            )
        })
    };
    let (a, b) = (
        update(east.conninfo(), "by east"),
        update(west.conninfo(), "by west"),
    );
    for out in [a.join().unwrap(), b.join().unwrap()] {
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("UPDATE 1"),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn apply_from_nothing_makes_two_nodes_replicate_both_ways_and_a_stopped_node_catches_up() {
    use crate::common::pgdr;
    // Two hosts with PostgreSQL as installed: no replication setting of pgdr's.
    let east = Postgres::start_on("127.0.0.1", "");
    let west = Postgres::start_on("127.0.0.2", "");
    for pg in [&east, &west] {
        pg.psql("CREATE TABLE orders (id bigserial PRIMARY KEY, note text)");
        pg.psql("CREATE TABLE audit (at timestamptz, what text)");
    }
    east.psql("INSERT INTO orders (note) SELECT 'seed ' || g FROM generate_series(1, 3) g");
    let dir = tempfile::tempdir().unwrap();
    let file = mesh_plan(dir.path(), &east, &west);
    let file = file.as_str();

    // First apply: the settings, which need a restart of each node.
    let first = pgdr(None, &["apply", file, "--auto-approve"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    for pg in [&east, &west] {
        let auto = std::fs::read_to_string(pg.data_dir().join("postgresql.auto.conf")).unwrap();
        for line in [
            "wal_level = 'logical'",
            "track_commit_timestamp = 'on'",
            "shared_preload_libraries = 'pglogical'",
        ] {
            assert!(auto.contains(line), "{line} not in\n{auto}");
        }
    }
    assert!(
        first.stdout.contains("restart") && first.stdout.contains("postgres.node.west"),
        "{}",
        first.stdout
    );
    // Sequences need no restart: each node already hands out its own remainder.
    for (pg, remainder) in [(&east, "1"), (&west, "0")] {
        assert_eq!(
            pg.psql("SELECT increment_by || ' ' || start_value % 2 FROM pg_sequences"),
            format!("2 {remainder}")
        );
    }
    let waiting = crate::common::plan_json(None, file);
    assert!(
        addresses(&waiting, "notes").contains(&"replication.node.west".to_string()),
        "{waiting:#}"
    );
    east.restart();
    west.restart();

    // Second apply: pglogical on both, the conflict rule, tables, sequences, both subscriptions.
    let plan = crate::common::plan_json(None, file);
    let mut planned = addresses(&plan, "changes");
    planned.sort();
    assert_eq!(
        planned,
        [
            "postgres.node.west.setting.pglogical.conflict_resolution",
            "postgres.primary.setting.pglogical.conflict_resolution",
            "replication.node.east",
            "replication.node.east.apply_workers",
            "replication.node.east.extension",
            "replication.node.east.tables",
            "replication.node.west",
            "replication.node.west.apply_workers",
            "replication.node.west.extension",
            "replication.node.west.tables",
            "replication.subscription.east_from_west",
            "replication.subscription.west_from_east",
        ],
        "{plan:#}"
    );
    let second = pgdr(None, &["apply", file, "--auto-approve"]);
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);
    wait_replicating(&east);
    wait_replicating(&west);
    for pg in [&east, &west] {
        assert_eq!(
            pg.psql("SHOW pglogical.conflict_resolution"),
            "last_update_wins"
        );
        // pglogical stores forward_origins '{}' as NULL (`{all}` otherwise).
        assert_eq!(
            pg.psql(
                "SELECT coalesce(sub_forward_origins::text, 'none') FROM pglogical.subscription"
            ),
            "none"
        );
    }

    // pglogical's sender names the subscription it serves: plan reads lag by it.
    assert_eq!(
        east.psql("SELECT string_agg(application_name, ',') FROM pg_stat_replication"),
        "west_from_east"
    );
    // The seed's rows were copied; a row written on each node is on both.
    east.psql("INSERT INTO orders (note) VALUES ('from east')");
    west.psql("INSERT INTO orders (note) VALUES ('from west')");
    let rows = "SELECT string_agg(note, ',' ORDER BY note) FROM orders";
    let want = "from east,from west,seed 1,seed 2,seed 3";
    assert_eq!(east.wait_for(rows, want), want);
    assert_eq!(west.wait_for(rows, want), want);
    // Disjoint sequences: east hands out odd ids, west even ones, above the seed's.
    let id_of = |pg: &Postgres, note: &str| -> i64 {
        pg.psql(&format!("SELECT id FROM orders WHERE note = '{note}'"))
            .parse()
            .unwrap()
    };
    let (e, w) = (id_of(&east, "from east"), id_of(&west, "from west"));
    assert!(
        e > 3 && w > 3 && e % 2 == 1 && w % 2 == 0,
        "east {e}, west {w}"
    );

    // Concurrent conflicting updates of one row converge under last_update_wins.
    concurrent_updates(&east, &west, 1);
    let one = "SELECT note FROM orders WHERE id = 1";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (x, y) = (east.psql(one), west.psql(one));
        if x == y && x != "seed 1" {
            assert!(x == "by east" || x == "by west", "{x}");
            break;
        }
        let conflicts = |pg: &Postgres| -> String {
            let log = pg.server_log();
            let lines = log
                .lines()
                .filter(|l| l.contains("CONFLICT") || l.contains("conflict"));
            lines.collect::<Vec<_>>().join("\n")
        };
        assert!(
            std::time::Instant::now() < deadline,
            "not converged: east {x}, west {y}\neast:\n{}\nwest:\n{}",
            conflicts(&east),
            conflicts(&west)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // The mesh is whole: plan has no change, and only the keyless table to report.
    let clean = crate::common::plan_json(None, file);
    assert!(addresses(&clean, "changes").is_empty(), "{clean:#}");
    assert_eq!(
        replication_problems(&clean),
        ["replication.table.public.audit: public.audit has no primary key or replica identity: its updates and deletes cannot replicate"]
    );
    // status shows both nodes serving and each receiving the other's writes.
    let status = pgdr(None, &["status", file]);
    for line in [
        "node east        -: serving; from west replicating",
        "node west        us-west-2: serving; from east replicating",
    ] {
        assert!(
            status.stdout.contains(line),
            "{line} not in\n{}",
            status.stdout
        );
    }
    // A third apply writes nothing on either node.
    let before = (east.fingerprint(), west.fingerprint());
    let third = pgdr(None, &["apply", file, "--auto-approve"]);
    assert_eq!(third.code, 0, "{}\n{}", third.stdout, third.stderr);
    assert_eq!((east.fingerprint(), west.fingerprint()), before);

    // West stopped: east keeps taking writes, plan says which node is lost.
    west.pg_ctl("-m fast stop");
    east.psql("INSERT INTO orders (note) SELECT 'while west was down ' || g FROM generate_series(1, 50) g");
    let lost = crate::common::plan_json(None, file);
    let problems = replication_problems(&lost);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("replication.node.west: node west could not be read")),
        "{problems:#?}"
    );
    // status says which node serves and which is lost (exit 2), as do the metrics.
    let status = pgdr(None, &["status", file]);
    assert_eq!(status.code, 2, "{}\n{}", status.stdout, status.stderr);
    assert!(
        status
            .stdout
            .contains("BEYOND PLAN      node west is lost; east keeps taking writes"),
        "{}",
        status.stdout
    );
    let json = pgdr(None, &["status", file, "--format", "json"]).json();
    let nodes = &json["clusters"][0]["nodes"];
    assert_eq!(nodes[0]["name"], "east");
    assert_eq!(nodes[0]["serving"], true);
    assert_eq!(nodes[1]["name"], "west");
    assert_eq!(nodes[1]["serving"], false);
    assert!(nodes[1]["error"].is_string(), "{nodes:#}");
    let metrics = pgdr(None, &["status", file, "--format", "openmetrics"]).stdout;
    for sample in [
        "pgdr_node_up{cluster=\"shop\",node=\"east\"} 1",
        "pgdr_node_up{cluster=\"shop\",node=\"west\"} 0",
    ] {
        assert!(metrics.contains(sample), "{sample} not in\n{metrics}");
    }
    // Started again, it catches up.
    west.pg_ctl("start");
    let count = "SELECT count(*) FROM orders";
    assert_eq!(
        west.wait_for_up_to(count, "55", std::time::Duration::from_secs(60)),
        "55"
    );
    wait_replicating(&west);

    // DDL on one node only: plan names the table and column.
    west.psql("ALTER TABLE orders ADD COLUMN region text");
    let drifted = replication_problems(&crate::common::plan_json(None, file));
    assert!(
        drifted.contains(&"replication.table.public.orders: public.orders.region column on west (text) but not on east (DDL does not replicate: run it on every node)".to_string()),
        "{drifted:#?}"
    );

    east.psql("ALTER TABLE orders ADD COLUMN region text");

    // A new table on both nodes: its sequence would collide and its rows
    // would not replicate; plan says both, apply fixes both.
    // On east only: not replicated yet (its rows would stop west's
    // replication from east), named as drift.
    east.psql("CREATE TABLE refunds (id serial PRIMARY KEY, amount int)");
    let half = crate::common::plan_json(None, file);
    assert!(addresses(&half, "changes").is_empty(), "{half:#}");
    assert!(
        replication_problems(&half).contains(&"replication.table.public.refunds: public.refunds is on east but not on west (DDL does not replicate: run it on every node)".to_string()),
        "{half:#}"
    );
    west.psql("CREATE TABLE refunds (id serial PRIMARY KEY, amount int)");
    let grown = crate::common::plan_json(None, file);
    let mut planned = addresses(&grown, "changes");
    planned.sort();
    assert_eq!(
        planned,
        [
            "replication.node.east.sequence.public.refunds_id_seq",
            "replication.node.east.tables",
            "replication.node.west.sequence.public.refunds_id_seq",
            "replication.node.west.tables",
        ],
        "{grown:#}"
    );

    // Another conflict rule on the running mesh: the apply workers restart to read it.
    let sender =
        "SELECT backend_start FROM pg_stat_replication WHERE application_name = 'west_from_east'";
    let started = east.psql(sender);
    let text = std::fs::read_to_string(file).unwrap();
    let text = text.replace(
        "  node_name: east\n",
        "  node_name: east\n  conflict_resolution: first_update_wins\n",
    );
    std::fs::write(file, text).unwrap();
    let changed = pgdr(None, &["apply", file, "--auto-approve"]);
    assert_eq!(changed.code, 0, "{}\n{}", changed.stdout, changed.stderr);
    assert!(
        changed
            .stdout
            .contains("replication.node.west.apply_workers"),
        "{}",
        changed.stdout
    );
    for pg in [&east, &west] {
        assert_eq!(
            pg.psql("SHOW pglogical.conflict_resolution"),
            "first_update_wins"
        );
        wait_replicating(pg);
    }
    assert_ne!(
        east.psql(sender),
        started,
        "west's apply worker did not reconnect"
    );
    east.psql("INSERT INTO refunds (amount) VALUES (1)");
    west.psql("INSERT INTO refunds (amount) VALUES (2)");
    let ids = "SELECT string_agg(id || ':' || amount, ',' ORDER BY amount) FROM refunds";
    let both = east.wait_for(ids, "1:1,2:2");
    assert_eq!(both, "1:1,2:2");
    assert_eq!(west.wait_for(ids, &both), both);
}

/// The latency records at `name`, as the aws CLI lists them: `id region value`.
fn latency_records(moto: &crate::common::Moto, name: &str) -> Vec<String> {
    let sets = moto
        .aws(&[
            "route53",
            "list-resource-record-sets",
            "--hosted-zone-id",
            &moto.zone_id("shop.internal."),
        ])
        .unwrap();
    let mut out: Vec<String> = sets["ResourceRecordSets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Name"] == name)
        .map(|s| {
            format!(
                "{} {} {} {}",
                s["SetIdentifier"].as_str().unwrap_or("-"),
                s["Region"].as_str().unwrap_or("-"),
                s["Type"].as_str().unwrap(),
                s["ResourceRecords"][0]["Value"].as_str().unwrap()
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_endpoint_sends_clients_to_the_nearest_node_and_drops_a_lost_one_until_it_answers() {
    use crate::common::{assert_second_apply_writes_nothing, pgdr, Moto};
    let east = Postgres::start_on("127.0.0.1", "");
    let west = Postgres::start_on("127.0.0.2", "");
    let moto = Moto::start();
    moto.create_zone("shop.internal.");
    // The name held a simple record before: routing it by latency replaces it.
    let simple = r#"{"Changes":[{"Action":"CREATE","ResourceRecordSet":{"Name":"db.shop.internal.","Type":"A","TTL":60,"ResourceRecords":[{"Value":"127.0.0.1"}]}}]}"#;
    moto.aws(&[
        "route53",
        "change-resource-record-sets",
        "--hosted-zone-id",
        &moto.zone_id("shop.internal."),
        "--change-batch",
        simple,
    ])
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "version: 1\ncluster: shop-dns\ntier: saas\nobjectives: {{ rpo: 5m, rto: 30m }}\naws: {{ region: us-east-1 }}\nprimary:\n  postgres: \"{}\"\nendpoint: {{ hosted_zone: shop.internal., record: db.shop.internal., ttl: 10s, routing: latency }}\nactive_active:\n  node_name: east\n  peers:\n    - {{ name: west, postgres: \"{}\", region: us-west-2 }}\n",
        east.conninfo(),
        west.conninfo()
    );
    let file = crate::common::write_plan(dir.path(), "shop.yaml", &text);
    let file = file.to_str().unwrap();
    // Deleting the simple record is destructive: refused without the flag.
    let refused = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert_eq!(
        latency_records(&moto, "db.shop.internal."),
        ["- - A 127.0.0.1"]
    );
    let apply = pgdr(
        Some(&moto),
        &["apply", file, "--auto-approve", "--allow-destructive"],
    );
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    let both = ["east us-east-1 A 127.0.0.1", "west us-west-2 A 127.0.0.2"];
    assert_eq!(latency_records(&moto, "db.shop.internal."), both);
    assert_second_apply_writes_nothing(&moto, file);

    // West lost: its record goes, east keeps serving its clients and west's.
    west.pg_ctl("-m fast stop");
    let lost = crate::common::plan_json(Some(&moto), file);
    let changes: Vec<String> = lost["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["action"].as_str().unwrap(),
                c["address"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        changes.contains(&"delete route53.db.shop.internal..west".to_string()),
        "{lost:#}"
    );
    let apply = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    assert_eq!(
        latency_records(&moto, "db.shop.internal."),
        ["east us-east-1 A 127.0.0.1"]
    );
    // Back: its record again.
    west.pg_ctl("start");
    let apply = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    assert_eq!(latency_records(&moto, "db.shop.internal."), both);
}
