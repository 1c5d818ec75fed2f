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
