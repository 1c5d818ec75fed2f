#!/usr/bin/env bash
# Benchmark: archiving WAL into S3 (moto on loopback), side by side in one run.
# The same N real WAL segments (made by pgbench) are pushed one call per
# segment by: the seed playbook's `aws s3 cp`, `pgdr wal-push`, and
# pgBackRest's `archive-push` (zst); then each tool re-pushes what is already
# archived; then PostgreSQL itself archives a burst of waiting segments
# through pgdr (its parallel push), with zstd and then without compression,
# while moto's and the machine's CPU use show what the limit is. Every tool
# goes through the same TLS terminator (stunnel4) in front of moto, as all of
# them would pay for TLS against S3. Prints seconds and ratios; asserts nothing.
# Targets: pgdr per segment >= 20x faster than aws s3 cp and >= 2x faster
# than pgBackRest; the burst limited by the emulator, not by pgdr.
#
#   bench/wal-push.sh [SEGMENTS=20]
#
# Uses the release build (PGDR_BIN overrides); PGDR_BENCH_KEEP=1 keeps the work folder. Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/peer.sh

N=${1:-20}
bench_start wal bench-wal

# archive_mode on with an empty archive_command: PostgreSQL keeps every
# segment and marks it .ready, waiting for a command (the burst below).
cat >"$WORK/pg.conf" <<EOC
archive_mode = on
archive_command = ''
max_wal_size = 8GB
wal_keep_size = 8GB
EOC
start_pg "$WORK/pg" "$PGPORT" "$WORK/pg.conf"
PGDATA="$WORK/pg/data"
psql_pg() { psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -Atc "$1"; }
ready_count() { pg_run find "$PGDATA/pg_wal/archive_status" -name '????????????????????????.ready' | wc -l; }

collect_segments $((N * 2)) "$N"

write_pgbackrest_conf "$WORK/pgbackrest" bench-wal "$TLSPORT" "$PGDATA" "$PGPORT" "$WORK/pg" zst
pgbr() { pg_run pgbackrest --config="$WORK/pgbackrest/pgbackrest.conf" --stanza=demo "$@"; }
pgbr stanza-create >/dev/null

pgdr_log "pushing $N segments one call each: aws s3 cp"
t=$(now)
for s in $SEGS; do aws s3 cp --quiet "$WORK/segs/$s" "s3://bench-wal/awscli/wal/$s"; done
AWS_S=$(elapsed "$t")

pgdr_log "pushing $N segments one call each: pgdr wal-push"
t=$(now)
for s in $SEGS; do "$PGDR" wal-push s3://bench-wal/pgdr/ "$WORK/segs/$s"; done
PGDR_S=$(elapsed "$t")

pgdr_log "pushing $N segments one call each: pgbackrest archive-push (zst)"
t=$(now)
for s in $SEGS; do pgbr archive-push "$WORK/segs/$s"; done
PGBR_S=$(elapsed "$t")

pgdr_log "re-pushing the same segments (already archived)"
t=$(now)
for s in $SEGS; do "$PGDR" wal-push s3://bench-wal/pgdr/ "$WORK/segs/$s"; done
PGDR_AGAIN_S=$(elapsed "$t")
t=$(now)
for s in $SEGS; do pgbr archive-push "$WORK/segs/$s"; done
PGBR_AGAIN_S=$(elapsed "$t")

# Independent check: every segment is in the bucket, and decompresses to the original.
stored=$(aws s3api list-objects-v2 --bucket bench-wal --prefix pgdr/wal/ --query 'length(Contents)' --output text)
[ "$stored" = "$N" ] || { echo "expected $N pgdr objects, the aws CLI lists $stored" >&2; exit 1; }
first=$(echo "$SEGS" | head -1)
aws s3 cp --quiet "s3://bench-wal/pgdr/wal/$first.zst" "$WORK/check.zst"
zstd -q -d -c "$WORK/check.zst" | cmp - "$WORK/segs/$first"
PGDR_STORED=$(aws s3api list-objects-v2 --bucket bench-wal --prefix pgdr/wal/ --query 'sum(Contents[].Size)' --output text)

# burst PREFIX [WAL-PUSH OPTIONS]: PostgreSQL archives every waiting segment
# through pgdr into PREFIX; sets BURST_LINE and BURST_CPU_LINE to print.
burst() {
  local prefix=$1 count before t seconds moto_before tunnel_before machine_before hz moto tunnel machine failed stored
  shift
  count=$(ready_count)
  pgdr_log "PostgreSQL archives a burst of $count waiting segments through pgdr wal-push $*"
  before=$(psql_pg "SELECT archived_count FROM pg_stat_archiver")
  failed=$(psql_pg "SELECT failed_count FROM pg_stat_archiver")
  moto_before=$(cpu_ticks "$MOTO_PID")
  tunnel_before=$(cpu_ticks "$STUNNEL_PID")
  machine_before=$(machine_ticks)
  t=$(now)
  psql_pg "ALTER SYSTEM SET archive_command = '$PGDR wal-push s3://bench-wal/$prefix/ %p $*'" >/dev/null
  psql_pg "SELECT pg_reload_conf()" >/dev/null
  while [ "$(psql_pg "SELECT archived_count - $before FROM pg_stat_archiver")" -lt "$count" ]; do
    sleep 0.2
  done
  seconds=$(elapsed "$t")
  machine=$(machine_busy "$machine_before")
  hz=$(getconf CLK_TCK)
  moto=$(awk -v a="$moto_before" -v b="$(cpu_ticks "$MOTO_PID")" -v hz="$hz" -v s="$seconds" 'BEGIN { printf "%.0f", 100 * (b - a) / hz / s }')
  tunnel=$(awk -v a="$tunnel_before" -v b="$(cpu_ticks "$STUNNEL_PID")" -v hz="$hz" -v s="$seconds" 'BEGIN { printf "%.0f", 100 * (b - a) / hz / s }')
  failed=$(($(psql_pg "SELECT failed_count FROM pg_stat_archiver") - failed))
  stored=$(aws s3api list-objects-v2 --bucket bench-wal --prefix "$prefix/wal/" --query 'length(Contents)' --output text)
  BURST_LINE="$count waiting segments in ${seconds}s ($(ratio "$count" "$seconds") segments/s; $failed failures; $stored objects listed)"
  BURST_CPU_LINE="moto ${moto}% of one core, stunnel ${tunnel}%, all $(nproc) CPUs ${machine}% busy"
}

burst burst
ZSTD_LINE=$BURST_LINE ZSTD_CPU_LINE=$BURST_CPU_LINE
# The same again without compression: what is left is moving the bytes, so
# this shows whether pgdr's own pipeline or the emulator is the limit.
psql_pg "ALTER SYSTEM SET archive_command = ''" >/dev/null
psql_pg "SELECT pg_reload_conf()" >/dev/null
pgdr_log "generating $N more WAL segments for an uncompressed burst"
while [ "$(ready_count)" -lt "$N" ]; do
  pgbench -h 127.0.0.1 -p "$PGPORT" -U postgres -i -s 5 -q postgres >/dev/null 2>&1
  psql_pg "SELECT pg_switch_wal()" >/dev/null
done
burst burst-plain --compression none
PLAIN_LINE=$BURST_LINE PLAIN_CPU_LINE=$BURST_CPU_LINE

MB=$(awk -v b="$BYTES" 'BEGIN { printf "%.0f", b / 1048576 }')
echo
echo "WAL push: $N segments ($MB MB) from pgbench, moto via TLS (stunnel4), one call per segment"
printf '%-42s %9s %12s\n' "tool" "seconds" "per segment"
row() { printf '%-42s %9s %11ss\n' "$1" "$2" "$(awk -v s="$2" -v n="$N" 'BEGIN { printf "%.3f", s / n }')"; }
row "aws s3 cp (the seed playbook)" "$AWS_S"
row "pgbackrest archive-push (zst)" "$PGBR_S"
row "pgdr wal-push (zst)" "$PGDR_S"
row "pgbackrest re-push, already archived" "$PGBR_AGAIN_S"
row "pgdr re-push, already archived" "$PGDR_AGAIN_S"
echo
echo "pgdr vs aws s3 cp:   $(ratio "$AWS_S" "$PGDR_S")x faster (target >= 20x)"
echo "pgdr vs pgBackRest:  $(ratio "$PGBR_S" "$PGDR_S")x faster (target >= 2x)"
echo "pgdr stored $(awk -v b="$PGDR_STORED" 'BEGIN { printf "%.1f", b / 1048576 }') MB for $MB MB ($(ratio "$BYTES" "$PGDR_STORED")x); the aws CLI lists all $N; one downloaded and decompressed with the zstd CLI is byte for byte the segment"
echo
echo "Burst, PostgreSQL archiving through pgdr (zstd): $ZSTD_LINE"
echo "  $ZSTD_CPU_LINE"
echo "Burst, the same without compression: $PLAIN_LINE"
echo "  $PLAIN_CPU_LINE"
echo "  (moto is single-threaded Python: near 100% of one core means the emulator is the limit;"
echo "   all CPUs near 100% with moto well below means the limit is CPU for compression)"
