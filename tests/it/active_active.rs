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
    assert_eq!(colliding(&[&a, &b]), ["public.orders_id_seq"]);
    // Made disjoint by hand as apply will: odd on east, even on west.
    east.psql("ALTER SEQUENCE orders_id_seq INCREMENT BY 2 START WITH 1 RESTART WITH 1");
    west.psql("ALTER SEQUENCE orders_id_seq INCREMENT BY 2 START WITH 2 RESTART WITH 2");
    let (a, b) = (read(&east, "east"), read(&west, "west"));
    assert!(
        colliding(&[&a, &b]).is_empty(),
        "{:?} {:?}",
        a.sequences,
        b.sequences
    );
}

const PGLOGICAL: &str = "wal_level = logical\nshared_preload_libraries = 'pglogical'\ntrack_commit_timestamp = on\npglogical.conflict_resolution = 'last_update_wins'\nmax_worker_processes = 16\n";

/// Runs `f` with a connection to `pg` as node `name`.
fn with_node<T>(pg: &Postgres, name: &str, f: impl AsyncFnOnce(&tokio_postgres::Client) -> T) -> T {
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
        f(&client).await
    })
}

#[test]
fn two_nodes_set_up_with_pglogical_replicate_both_ways_converge_on_a_conflict_and_plan_sees_drift()
{
    use pgdr::providers::postgres::pglogical;
    let east = Postgres::start_with(PGLOGICAL);
    let west = Postgres::start_with(PGLOGICAL);
    let dsn = |pg: &Postgres| {
        format!(
            "host=127.0.0.1 port={} dbname=postgres user=postgres",
            pg.port
        )
    };
    for (pg, name) in [(&east, "east"), (&west, "west")] {
        pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text)");
        let own = dsn(pg);
        with_node(pg, name, async |c| {
            pglogical::create_extension(c).await.unwrap();
            pglogical::create_node(c, name, &own).await.unwrap();
            pglogical::add_all_tables(c, &["public".to_string()])
                .await
                .unwrap();
        });
    }
    east.psql("INSERT INTO t VALUES (0, 'seed')");
    // The node that joins copies the seed's rows; the seed copies nothing back.
    let (east_dsn, west_dsn) = (dsn(&east), dsn(&west));
    with_node(&west, "west", async |c| {
        pglogical::create_subscription(c, "west_from_east", &east_dsn, true)
            .await
            .unwrap();
        pglogical::wait_synchronized(c, "west_from_east")
            .await
            .unwrap();
    });
    with_node(&east, "east", async |c| {
        pglogical::create_subscription(c, "east_from_west", &west_dsn, false)
            .await
            .unwrap();
        pglogical::wait_synchronized(c, "east_from_west")
            .await
            .unwrap();
    });
    let live = with_node(&east, "east", async |c| pglogical::read(c).await.unwrap());
    assert_eq!(live.node.as_deref(), Some("east"));
    assert_eq!(live.tables, ["public.t"]);
    assert_eq!(live.subscriptions.len(), 1, "{live:?}");
    assert_eq!(live.subscriptions[0].provider_node, "west");
    assert!(live.subscriptions[0].forward_origins.is_empty(), "{live:?}");

    // A row written on each node is on both (psql, on each).
    east.psql("INSERT INTO t VALUES (1, 'from east')");
    west.psql("INSERT INTO t VALUES (2, 'from west')");
    let rows = "SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM t";
    let want = "0:seed,1:from east,2:from west";
    assert_eq!(east.wait_for(rows, want), want);
    assert_eq!(west.wait_for(rows, want), want);

    // One row updated on both nodes at once: last update wins, on both.
    let (e, w) = (east.conninfo(), west.conninfo());
    let update = |info: String, v: &'static str| {
        std::thread::spawn(move || {
            crate::common::run(
                std::process::Command::new("psql")
                    .args([
                        &info,
                        "-XAtc",
                        &format!("UPDATE t SET v = '{v}' WHERE id = 1"),
                    ])
                    .stdin(std::process::Stdio::null()),
                crate::common::COMMAND_TIMEOUT,
            )
        })
    };
    let (a, b) = (update(e, "by east"), update(w, "by west"));
    for out in [a.join().unwrap(), b.join().unwrap()] {
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("UPDATE 1"),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let one = "SELECT v FROM t WHERE id = 1";
    loop {
        let (x, y) = (east.psql(one), west.psql(one));
        if x == y && x != "from east" {
            assert!(x == "by east" || x == "by west", "{x}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not converged: east {x}, west {y}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // `pgdr plan` reads both nodes: the mesh is whole, nothing differs...
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "version: 1\ncluster: east\ntier: saas\nobjectives: {{ rpo: 5m, rto: 30m }}\nprimary:\n  postgres: \"{}\"\nactive_active:\n  peers:\n    - {{ name: west, postgres: \"{}\" }}\n",
        east.conninfo(),
        west.conninfo()
    );
    let file = crate::common::write_plan(dir.path(), "east.yaml", &text);
    let file = file.to_str().unwrap();
    let replication = |plan: &serde_json::Value| -> Vec<String> {
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
    };
    let clean = crate::common::plan_json(None, file);
    assert!(replication(&clean).is_empty(), "{:#?}", replication(&clean));
    // ...until a column is added on one node only: named by table and column.
    west.psql("ALTER TABLE t ADD COLUMN note text");
    let drifted = replication(&crate::common::plan_json(None, file));
    assert_eq!(
        drifted,
        ["replication.table.public.t: public.t.note column on west (text) but not on east (DDL does not replicate: run it on every node)"],
    );
}
