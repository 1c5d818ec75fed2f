#!/usr/bin/env bash
# Benchmark: restoring a pgbench database (scale 50 by default) from S3 (moto
# on loopback, behind the same TLS terminator for every tool), side by side in
# one run: `pgdr restore` of pgdr's backup, `pgbackrest restore` of
# pgBackRest's full --repo1-bundle backup (zst) of the same database, and a
# plain local copy of the data directory (without pg_wal's contents, which no
# restore writes) as the floor. For each: wall time,
# MB/s of the database, S3 requests and peak RSS. Then `pgdr drill` of the same
# backup: the RTO it reports beside the wall time measured from outside.
# Prints figures; asserts nothing. Target: pgdr no slower than pgBackRest.
#
#   bench/restore.sh [SCALE=50]
#
# Uses the release build (PGDR_BIN overrides); PGDR_BENCH_KEEP=1 keeps the work folder. Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/peer.sh

SCALE=${1:-50}
bench_start restore bench-restore
bench_pgbench_cluster "$SCALE" bench-restore

pgdr_log "taking both backups (not timed)"
"$PGDR" backup "$WORK/bench.yaml" >/dev/null
pg_run pgbackrest --config="$PGBR_CONF" --stanza=demo --type=full --repo1-bundle backup
psql_pg "SELECT pg_switch_wal()" >/dev/null
while [ "$(pg_run find "$PGDATA/pg_wal/archive_status" -name '*.ready' | wc -l)" -gt 0 ]; do sleep 0.5; done

# Every restore target: a new folder the server's user owns.
target() {
  mkdir -p "$WORK/$1"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$WORK/$1"
  echo "$WORK/$1/data"
}

pgdr_log "local copy of the data directory (the floor)"
FLOOR_DIR=$(target floor)
mkdir -m 700 "$FLOOR_DIR"
sync
measure FLOOR '^$' bash -c 'tar -C "$1" --exclude=./pg_wal/* -cf - . | tar -C "$2" -xf -' copy "$PGDATA" "$FLOOR_DIR"

pgdr_log "pgdr restore"
PGDR_DIR=$(target pgdr)
measure PGDR 'pgdr/' "$PGDR" restore "$WORK/bench.yaml" --to "$PGDR_DIR" --latest

pgdr_log "pgbackrest restore"
PGBR_DIR=$(target pgbr)
measure PGBR 'pgbackrest' "${AS_PG[@]}" pgbackrest --config="$PGBR_CONF" --stanza=demo \
  --pg1-path="$PGBR_DIR" restore

# Independent checks: pg_verifybackup on pgdr's restore, sizes on both.
VERIFY=$("$(pg_bindir)/pg_verifybackup" --no-parse-wal "$PGDR_DIR" 2>&1 | tail -1)
PGDR_BYTES=$(du -sb "$PGDR_DIR" | cut -f1)
PGBR_BYTES=$(du -sb "$PGBR_DIR" | cut -f1)

pgdr_log "pgdr drill (RTO as reported vs wall time from outside)"
T=$(now)
"$PGDR" drill "$WORK/bench.yaml" --format json >"$WORK/drill.json" 2>"$WORK/drill.err" || true
DRILL_WALL=$(elapsed "$T")
read -r DRILL_OK DRILL_RTO DRILL_RESTORE DRILL_RECOVERY < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["ok"], round(r["rto_seconds"] or 0, 2), round(r["restore_seconds"],2), round(r["recovery_seconds"],2))' "$WORK/drill.json")

mb() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / 1048576 / s }'; }
echo
echo "Restore of pgbench scale $SCALE (database $(mb "$DB_BYTES") MB), moto via TLS (stunnel4)"
printf '%-40s %8s %8s %10s %8s %8s\n' tool seconds "MB/s" "on disk MB" requests "RSS MB"
printf '%-40s %8s %8s %10s %8s %8s\n' "local copy of the data dir (floor)" "$FLOOR_S" "$(rate "$DB_BYTES" "$FLOOR_S")" "$(mb "$(du -sb "$FLOOR_DIR" | cut -f1)")" 0 "$FLOOR_RSS_MB"
printf '%-40s %8s %8s %10s %8s %8s\n' "pgbackrest restore (bundle, zst)" "$PGBR_S" "$(rate "$DB_BYTES" "$PGBR_S")" "$(mb "$PGBR_BYTES")" "$PGBR_REQ" "$PGBR_RSS_MB"
printf '%-40s %8s %8s %10s %8s %8s\n' "pgdr restore (zstd)" "$PGDR_S" "$(rate "$DB_BYTES" "$PGDR_S")" "$(mb "$PGDR_BYTES")" "$PGDR_REQ" "$PGDR_RSS_MB"
echo
echo "pgdr vs pgBackRest: $(ratio "$PGBR_S" "$PGDR_S")x the speed (target >= 1.0); vs the local copy: $(ratio "$FLOOR_S" "$PGDR_S")x"
echo "pg_verifybackup on pgdr's restore: $VERIFY"
echo "pgdr drill: ok=$DRILL_OK, reported RTO ${DRILL_RTO}s (restore ${DRILL_RESTORE}s, recovery ${DRILL_RECOVERY}s, then checks incl. pg_amcheck); wall time from outside ${DRILL_WALL}s"
