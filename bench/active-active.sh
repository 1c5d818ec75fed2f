#!/usr/bin/env bash
# Benchmark: an active-active mesh of two nodes (127.0.0.1 "east",
# 127.0.0.2 "west") set up by `pgdr apply` (pglogical, last_update_wins),
# side by side with what the multi-region tier used before: a physical
# streaming standby (what Patroni runs) of the same primary, on 127.0.0.3.
#  1. Join: the time from the apply that makes the subscriptions until west
#     holds east's pgbench rows and both directions replicate.
#  2. Lag under load: `pgbench -c C` on both nodes at once for LOAD seconds
#     (the same rows updated on both: conflicts, resolved by last update),
#     sampled every second on each sender: seconds (replay_lag) and bytes
#     (the slot's confirmed position) each way; then whether the nodes hold
#     the same pgbench_accounts (md5 of every row). The standby: the same
#     load on the primary alone, its replay lag sampled alike.
#  3. Outage: west (then the standby) stopped for OUTAGE seconds while
#     pgbench writes on east; the time from its start until it has
#     everything east wrote, and how much that was.
# Prints figures; asserts nothing.
#
#   bench/active-active.sh [SCALE=10] [LOAD=60] [OUTAGE=60] [CLIENTS=2]
#
# Uses the release build (PGDR_BIN overrides); PGDR_BENCH_KEEP=1 keeps the
# work folder. Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

SCALE=${1:-10}
LOAD=${2:-60}
OUTAGE=${3:-60}
CLIENTS=${4:-2}
ensure_deps test
if [ -z "${PGDR_BIN:-}" ]; then
  pgdr_log "building pgdr (release)"
  cargo build --quiet --release --bin pgdr
  PGDR_BIN="${CARGO_TARGET_DIR:-target}/release/pgdr"
fi
WORK=$(mktemp -d /tmp/pgdr-bench-active-active.XXXXXX)
chmod 755 "$WORK"
LOADS=()
cleanup() {
  for pid in "${LOADS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for n in east west standby; do stop_pg "$WORK/$n"; done
  if [ -n "${PGDR_BENCH_KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
export PGDR_LOCK_DIR="$WORK/locks"
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# Two hosts: each listens on its own loopback address and trusts the others.
EAST_PORT=$(free_port)
WEST_PORT=$(free_port)
STANDBY_PORT=$(free_port)
for n in east:127.0.0.1 west:127.0.0.2; do
  mkdir -p "$WORK/${n%%:*}"
  echo "${n#*:}" >"$WORK/${n%%:*}/listen"
  printf 'host all all 127.0.0.0/8 trust\nhost replication all 127.0.0.0/8 trust\n' >"$WORK/${n%%:*}/hba"
done
printf 'max_wal_size = 2GB\n' >"$WORK/pg.conf"
start_pg "$WORK/east" "$EAST_PORT" "$WORK/pg.conf"
start_pg "$WORK/west" "$WEST_PORT" "$WORK/pg.conf"
q() { psql -h "$1" -p "$2" -U postgres -d postgres -XAtc "$3"; }
east() { q 127.0.0.1 "$EAST_PORT" "$1"; }
west() { q 127.0.0.2 "$WEST_PORT" "$1"; }

pgdr_log "pgbench -i -s $SCALE on east; the same tables and keys, empty, on west"
pgbench -h 127.0.0.1 -p "$EAST_PORT" -U postgres -i -s "$SCALE" -q postgres 2>&1 | tail -1 >&2
pgbench -h 127.0.0.2 -p "$WEST_PORT" -U postgres -i -I dtp -s "$SCALE" -q postgres >/dev/null 2>&1
cat >"$WORK/mesh.yaml" <<YAML
version: 1
cluster: bench
tier: saas
objectives: { rpo: 5m, rto: 30m }
primary:
  postgres: "host=127.0.0.1 port=$EAST_PORT user=postgres dbname=postgres sslmode=disable"
active_active:
  node_name: east
  peers:
    - { name: west, postgres: "host=127.0.0.2 port=$WEST_PORT user=postgres dbname=postgres sslmode=disable", region: us-west-2 }
YAML

# ---------------------------------------------------------------- 1. join
"$PGDR_BIN" apply "$WORK/mesh.yaml" --auto-approve >"$WORK/apply1.out"
pg_ctl_in "$WORK/east" "$EAST_PORT" -m fast restart
pg_ctl_in "$WORK/west" "$WEST_PORT" -m fast restart
t=$(now)
"$PGDR_BIN" apply "$WORK/mesh.yaml" --auto-approve >"$WORK/apply2.out"
APPLY_S=$(since "$t")
replicating() { [ "$(east "SELECT count(*) FROM pglogical.show_subscription_status() WHERE status = 'replicating'")$(west "SELECT count(*) FROM pglogical.show_subscription_status() WHERE status = 'replicating'")" = 11 ]; }
until replicating; do sleep 0.2; done
JOIN_S=$(since "$t")
ROWS=$(west "SELECT count(*) FROM pgbench_accounts")

# ---------------------------------------------------------------- 2. lag under load
# sample HOST PORT SLOT_TYPE: the sender's replay lag in seconds (pglogical's
# senders report none: "-") and the bytes its receiver has not confirmed (a
# logical slot's confirmed_flush_lsn; a standby's replay_lsn).
sample() {
  q "$1" "$2" "SELECT coalesce(extract(epoch FROM r.replay_lag)::numeric(10,3)::text, '-') || ' ' ||
                      pg_wal_lsn_diff(pg_current_wal_lsn(),
                                      coalesce(s.confirmed_flush_lsn, r.replay_lsn))::bigint
                 FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid
                WHERE s.slot_type = '$3' LIMIT 1"
}
# load_and_sample NAME SECONDS SLOT_TYPE HOST:PORT...: pgbench on each
# HOST:PORT at once; every second each one's sender sampled into $WORK/NAME-<port>.
load_and_sample() {
  local name=$1 secs=$2 slot=$3 end hp
  shift 3
  LOADS=()
  for hp in "$@"; do
    pgbench -h "${hp%%:*}" -p "${hp#*:}" -U postgres -c "$CLIENTS" -j "$CLIENTS" -T "$secs" -n postgres >"$WORK/$name-${hp#*:}.pgbench" 2>&1 &
    LOADS+=($!)
  done
  end=$(awk -v a="$(now)" -v s="$secs" 'BEGIN { printf "%.3f", a + s }')
  while awk -v e="$end" -v n="$(now)" 'BEGIN { exit !(n < e) }'; do
    for hp in "$@"; do sample "${hp%%:*}" "${hp#*:}" "$slot" >>"$WORK/$name-${hp#*:}.lag" || true; done
    sleep 1
  done
  wait "${LOADS[@]}" || true
  LOADS=()
}
# stats FILE: the samples' unconfirmed bytes (max, mean) and, where the
# sender reports it, the replay lag in seconds (max, mean).
stats() {
  awk '$2 != "" { n++; b += $2; if ($2 > mb) mb = $2
                  if ($1 != "-") { t++; s += $1; if ($1 > ms) ms = $1 } }
       END { printf "unconfirmed max %.2f MB, mean %.2f MB", mb / 1048576, (n ? b / n / 1048576 : 0)
             if (t) printf "; replay lag max %.3fs, mean %.3fs", ms, s / t
             else printf "; no replay lag reported"
             printf " (%d samples)", n }' "$1"
}
tps() { sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$1" | head -1; }

pgdr_log "pgbench -c $CLIENTS on both nodes for ${LOAD}s"
load_and_sample mesh "$LOAD" logical "127.0.0.1:$EAST_PORT" "127.0.0.2:$WEST_PORT"
# Converged: both nodes hold the same accounts once the last writes arrived.
until [ "$(east "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) <= 0 FROM pg_replication_slots")" = t ] &&
  [ "$(west "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) <= 0 FROM pg_replication_slots")" = t ]; do sleep 0.5; done
ACCOUNTS="SELECT md5(string_agg(aid || ':' || abalance, ',' ORDER BY aid)) FROM pgbench_accounts"
if [ "$(east "$ACCOUNTS")" = "$(west "$ACCOUNTS")" ]; then SAME=yes; else SAME=NO; fi
CONFLICTS=$({ pg_run grep -c 'CONFLICT' "$WORK/east/server.log" "$WORK/west/server.log" || true; } | awk -F: '{ s += $2 } END { print s + 0 }')
STATUS=$("$PGDR_BIN" status "$WORK/mesh.yaml" --format json | python3 -c '
import json, sys
for n in json.load(sys.stdin)["clusters"][0]["nodes"]:
    for r in n["receives"]:
        print("{} from {}: {}, {} bytes unconfirmed".format(n["name"], r["from"], r["status"], r["lag_bytes"]))')

# ---------------------------------------------------------------- 3. outage
# outage DIR PORT SLOT_TYPE: stops the server in DIR, pgbench
# on east for OUTAGE s, starts it; seconds until east's slot for it confirms
# what east had written when it started, and how many bytes that was.
outage() {
  local dir=$1 port=$2 slot=$3 target t
  pg_ctl_in "$dir" "$port" -m fast stop
  pgbench -h 127.0.0.1 -p "$EAST_PORT" -U postgres -c "$CLIENTS" -j "$CLIENTS" -T "$OUTAGE" -n postgres >/dev/null 2>&1
  target=$(east "SELECT pg_current_wal_lsn()")
  OUT_MB=$(east "SELECT (pg_wal_lsn_diff('$target', min(confirmed_flush_lsn)) / 1048576)::numeric(10,1) FROM pg_replication_slots WHERE slot_type = '$slot'")
  [ "$slot" = physical ] && OUT_MB=$(east "SELECT (pg_wal_lsn_diff('$target', min(restart_lsn)) / 1048576)::numeric(10,1) FROM pg_replication_slots WHERE slot_type = 'physical'")
  t=$(now)
  pg_ctl_in "$dir" "$port" start
  if [ "$slot" = physical ]; then
    until [ "$(q 127.0.0.3 "$port" "SELECT pg_last_wal_replay_lsn() >= '$target'")" = t ]; do sleep 0.2; done
  else
    until [ "$(east "SELECT bool_and(confirmed_flush_lsn >= '$target') FROM pg_replication_slots WHERE slot_type = 'logical'")" = t ]; do sleep 0.2; done
  fi
  OUT_S=$(since "$t")
}
pgdr_log "west stopped for ${OUTAGE}s while east takes writes"
outage "$WORK/west" "$WEST_PORT" logical
MESH_OUT_S=$OUT_S MESH_OUT_MB=$OUT_MB

# ---------------------------------------------------------------- the standby
pgdr_log "a physical standby of east on 127.0.0.3: the same load on east alone, the same outage"
# West stopped, so east decodes nothing for it meanwhile: east serves the standby alone.
pg_ctl_in "$WORK/west" "$WEST_PORT" -m fast stop
east "CHECKPOINT" >/dev/null # pg_basebackup's own checkpoint is spread: minutes after a load
start_standby "$EAST_PORT" "$WORK/standby" "$STANDBY_PORT" bench_standby 127.0.0.3 127.0.0.1
load_and_sample standby "$LOAD" physical "127.0.0.1:$EAST_PORT"
outage "$WORK/standby" "$STANDBY_PORT" physical
SB_OUT_S=$OUT_S SB_OUT_MB=$OUT_MB

cat <<EOF

active-active (pglogical via pgdr, 2 nodes) vs a physical standby, pgbench scale $SCALE, -c $CLIENTS per loaded node

join: apply ${APPLY_S}s; both directions replicating and $ROWS accounts on west after ${JOIN_S}s

lag under ${LOAD}s of load
  mesh, pgbench on both nodes ($(tps "$WORK/mesh-$EAST_PORT.pgbench") + $(tps "$WORK/mesh-$WEST_PORT.pgbench") tps):
    west receiving east: $(stats "$WORK/mesh-$EAST_PORT.lag")
    east receiving west: $(stats "$WORK/mesh-$WEST_PORT.lag")
    conflicts resolved (server logs): $CONFLICTS; accounts identical on both nodes afterwards: $SAME
    pgdr status afterwards:
$(echo "$STATUS" | sed 's/^/      /')
  standby, pgbench on the primary ($(tps "$WORK/standby-$EAST_PORT.pgbench") tps):
    standby receiving primary: $(stats "$WORK/standby-$EAST_PORT.lag")

catch-up after ${OUTAGE}s down while east took writes
  mesh node west: ${MESH_OUT_S}s for ${MESH_OUT_MB} MB
  standby:        ${SB_OUT_S}s for ${SB_OUT_MB} MB
EOF
