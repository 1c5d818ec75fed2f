#!/usr/bin/env bash
# Benchmark: a full base backup of a pgbench database (scale 50 by default)
# into S3 (moto on loopback, behind the same TLS terminator for every tool),
# side by side in one run: `pgdr backup` file-level with two jobs and as
# pg_basebackup's stream, pgBackRest's full backup with `--repo1-bundle`
# (its fastest mode on an object store, zst) and `--process-max=2` (the same
# process count), and `pg_basebackup` to local disk as the floor. For each: wall time, MB/s of the
# database, compression ratio, S3 requests (moto's request log, the tool's own
# prefix, including archiving the backup's WAL) and peak RSS (GNU time).
# Prints figures; asserts nothing. Target: pgdr no slower than pgBackRest.
#
#   bench/backup.sh [SCALE=50]
#
# Uses the release build (PGDR_BIN overrides); PGDR_BENCH_KEEP=1 keeps the work folder. Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/peer.sh

SCALE=${1:-50}
bench_start backup bench-backup

bench_pgbench_cluster "$SCALE" bench-backup

pgdr_log "pg_basebackup to local disk (the floor)"
mkdir -p "$WORK/local"
[ "$(id -u)" -eq 0 ] && chown postgres: "$WORK/local"
measure FLOOR '^$' "${AS_PG[@]}" "$(pg_bindir)/pg_basebackup" -h 127.0.0.1 -p "$PGPORT" -U postgres \
  -D "$WORK/local/b" -Ft -X none --checkpoint=fast --manifest-checksums=SHA256
FLOOR_BYTES=$(du -cb "$WORK/local/b" | tail -1 | cut -f1)

pgdr_log "pgdr backup --method files --jobs 2"
measure PGDR 'pgdr/' "$PGDR" backup "$WORK/bench.yaml" --format json --method files --jobs 2
read -r PGDR_READ PGDR_STORED < <(python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); print(b["size_bytes"], b["stored_bytes"])' "$WORK/PGDR.out")

pgdr_log "pgdr backup --method stream"
measure PGDRS 'pgdr/' "$PGDR" backup "$WORK/bench.yaml" --format json --method stream
read -r PGDRS_READ PGDRS_STORED < <(python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); print(b["size_bytes"], b["stored_bytes"])' "$WORK/PGDRS.out")

pgdr_log "pgbackrest --type=full --repo1-bundle --process-max=2 backup (zst)"
measure PGBR 'pgbackrest' "${AS_PG[@]}" pgbackrest --config="$PGBR_CONF" --stanza=demo --type=full --repo1-bundle --process-max=2 backup
read -r PGBR_READ PGBR_STORED < <(pg_run pgbackrest --config="$PGBR_CONF" --stanza=demo info --output=json \
  | python3 -c 'import json,sys; b=json.load(sys.stdin)[0]["backup"][-1]["info"]; print(b["size"], b["repository"]["size"])')

# Independent check of pgdr's backup: the aws CLI lists its objects.
PGDR_OBJECTS=$(aws s3api list-objects-v2 --bucket bench-backup --prefix pgdr/base/ --query 'length(Contents)' --output text)
PGBR_OBJECTS=$(aws s3api list-objects-v2 --bucket bench-backup --prefix pgbackrest/backup/ --query 'length(Contents)' --output text)

mb() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / 1048576 / s }'; }
echo
echo "Base backup of pgbench scale $SCALE (database $(mb "$DB_BYTES") MB), moto via TLS (stunnel4)"
printf '%-40s %8s %8s %9s %9s %9s %8s %8s\n' tool seconds "MB/s" "read MB" "stored MB" ratio requests "RSS MB"
printf '%-40s %8s %8s %9s %9s %9s %8s %8s\n' "pg_basebackup -Ft to local disk" "$FLOOR_S" "$(rate "$DB_BYTES" "$FLOOR_S")" "$(mb "$FLOOR_BYTES")" "$(mb "$FLOOR_BYTES")" "1.0" "0" "$FLOOR_RSS_MB"
printf '%-40s %8s %8s %9s %9s %9s %8s %8s\n' "pgbackrest full bundle process-max=2" "$PGBR_S" "$(rate "$DB_BYTES" "$PGBR_S")" "$(mb "$PGBR_READ")" "$(mb "$PGBR_STORED")" "$(ratio "$PGBR_READ" "$PGBR_STORED")" "$PGBR_REQ" "$PGBR_RSS_MB"
printf '%-40s %8s %8s %9s %9s %9s %8s %8s\n' "pgdr backup files --jobs 2 (zstd)" "$PGDR_S" "$(rate "$DB_BYTES" "$PGDR_S")" "$(mb "$PGDR_READ")" "$(mb "$PGDR_STORED")" "$(ratio "$PGDR_READ" "$PGDR_STORED")" "$PGDR_REQ" "$PGDR_RSS_MB"
printf '%-40s %8s %8s %9s %9s %9s %8s %8s\n' "pgdr backup stream (zstd)" "$PGDRS_S" "$(rate "$DB_BYTES" "$PGDRS_S")" "$(mb "$PGDRS_READ")" "$(mb "$PGDRS_STORED")" "$(ratio "$PGDRS_READ" "$PGDRS_STORED")" "$PGDRS_REQ" "$PGDRS_RSS_MB"
echo
echo "pgdr files vs pgBackRest (2 processes each): $(ratio "$PGBR_S" "$PGDR_S")x the speed (target >= 1.0); pgdr stream: $(ratio "$PGBR_S" "$PGDRS_S")x; files vs the local floor: $(ratio "$FLOOR_S" "$PGDR_S")x"
echo "objects in the bucket (aws CLI): pgdr $PGDR_OBJECTS under pgdr/base/ (both backups), pgBackRest $PGBR_OBJECTS under pgbackrest/backup/"
echo "requests: moto's request log lines naming the tool's prefix during its run (pgdr/ or pgbackrest), archiving of the backup's WAL included"
