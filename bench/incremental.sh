#!/usr/bin/env bash
# Benchmark: incremental backups and the restores they feed, on a pgbench
# database (scale 270 by default, about 4 GB), into S3 (moto on loopback
# behind the same TLS terminator for every tool), side by side in one run
# with pgBackRest:
#
#  1. a full: `pgdr backup --type full --jobs 2` and pgBackRest
#     `--type=full --repo1-bundle --process-max=2`;
#  2. four rounds of pgbench updates, as many transactions as 0.5%, 1%, 2%
#     and 8% of pgbench_accounts' pages (each updates one random row, so
#     about that share of its pages changes), each followed by
#     `pgdr backup --type incr` and pgBackRest `--type=incr`: seconds and
#     bytes stored. Debian's pgBackRest is 2.45, whose incremental is
#     file-level (block incremental came in 2.46): a changed 1 GB segment is
#     stored whole;
#  3. the restore of the whole chain (full + 4 incrementals): pgdr, pgBackRest,
#     and pgdr's restore of the full alone (the same database size), each
#     twice in turn (the faster run counts: these swing with the page cache);
#  4. a delta restore over the restored folder with 1% of its files damaged
#     (every 100th file of base/, a byte flipped): pgdr and pgBackRest
#     `--delta`, beside pgdr's full restore.
#
# pg_verifybackup checks pgdr's chain restore and its delta restore. Prints
# figures; asserts nothing. Targets: an incremental stores <= 0.25x what
# pgBackRest 2.45 stores and takes <= 0.5x its time; the chain restore is
# >= 1.0x pgBackRest's speed; the delta restore takes <= 0.2x a full restore.
#
#   bench/incremental.sh [SCALE=270]
#
# Uses the release build (PGDR_BIN overrides); PGDR_BENCH_KEEP=1 keeps the
# work folder. Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/peer.sh

SCALE=${1:-270}
bench_start incremental bench-incr
bench_pgbench_cluster "$SCALE" bench-incr

json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
# The newest pgBackRest backup's bytes stored in the repository.
pgbr_stored() {
  pg_run pgbackrest --config="$PGBR_CONF" --stanza=demo info --output=json \
    | python3 -c 'import json,sys; b=json.load(sys.stdin)[0]["backup"][-1]["info"]; print(b["repository"]["delta"])'
}
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
target() {
  mkdir -p "$WORK/$1"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$WORK/$1"
  echo "$WORK/$1/data"
}
wait_archived() {
  psql_pg "SELECT pg_switch_wal()" >/dev/null
  while [ "$(pg_run find "$PGDATA/pg_wal/archive_status" -name '*.ready' | wc -l)" -gt 0 ]; do sleep 0.5; done
}

pgdr_log "full backups"
measure PGDR_FULL 'pgdr/' "$PGDR" backup "$WORK/bench.yaml" --format json --type full --jobs 2
FULL_ID=$(json_field "$WORK/PGDR_FULL.out" id)
PGDR_FULL_STORED=$(json_field "$WORK/PGDR_FULL.out" stored_bytes)
measure PGBR_FULL 'pgbackrest' "${AS_PG[@]}" pgbackrest --config="$PGBR_CONF" --stanza=demo --type=full --repo1-bundle --process-max=2 backup
PGBR_FULL_STORED=$(pgbr_stored)

PAGES=$(psql_pg "SELECT relpages FROM pg_class WHERE relname = 'pgbench_accounts'")
ROWS=()
for PCT in 0.5 1 2 8; do
  TX=$(awk -v p="$PAGES" -v c="$PCT" 'BEGIN { printf "%d", p * c / 100 / 2 }')
  pgdr_log "pgbench: 2 clients x $TX transactions ($PCT% of $PAGES pages)"
  pgbench -h 127.0.0.1 -p "$PGPORT" -U postgres -n -c 2 -j 2 -t "$TX" postgres >"$WORK/pgbench-$PCT.log" 2>&1
  wait_archived
  measure PGDR_I 'pgdr/' "$PGDR" backup "$WORK/bench.yaml" --format json --type incr --jobs 2
  measure PGBR_I 'pgbackrest' "${AS_PG[@]}" pgbackrest --config="$PGBR_CONF" --stanza=demo --type=incr --repo1-bundle --process-max=2 backup
  ROWS+=("$PCT $PGDR_I_S $(json_field "$WORK/PGDR_I.out" stored_bytes) $PGDR_I_REQ $PGDR_I_RSS_MB $PGBR_I_S $(pgbr_stored) $PGBR_I_REQ $PGBR_I_RSS_MB")
done
wait_archived

# Each restore starts with no dirty pages waiting (the kernel's writeback
# of the previous one would otherwise be charged to the next).
settle() { sync; sleep 2; }

pgdr_log "restores of the chain (full + 4 incrementals) and of the full alone, twice each in turn"
# Restore times here swing by half with the page cache's state (the
# kernel's writeback of 4 GB): each is run twice, in turn, and the faster
# run counts.
min_of() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b ? a : b) }'; }
for ROUND in 1 2; do
  PGDR_DIR=$(target "pgdr$ROUND")
  settle
  measure PGDR_R$ROUND 'pgdr/' "$PGDR" restore "$WORK/bench.yaml" --to "$PGDR_DIR" --latest
  PGBR_DIR=$(target "pgbr$ROUND")
  settle
  measure PGBR_R$ROUND 'pgbackrest' "${AS_PG[@]}" pgbackrest --config="$PGBR_CONF" --stanza=demo --pg1-path="$PGBR_DIR" restore
  FULL_DIR=$(target "full$ROUND")
  settle
  measure PGDR_RF$ROUND 'pgdr/' "$PGDR" restore "$WORK/bench.yaml" --to "$FULL_DIR" --backup "$FULL_ID" --latest
  # Only the first round's chain restores stay (the delta restores use them).
  if [ "$ROUND" = 1 ]; then
    VERIFY_CHAIN=$("$(pg_bindir)/pg_verifybackup" --no-parse-wal "$PGDR_DIR" 2>&1 | tail -1)
    rm -rf "$WORK/full1"
  else
    rm -rf "$WORK/pgdr2" "$WORK/pgbr2" "$WORK/full2"
  fi
done
PGDR_R_S=$(min_of "$PGDR_R1_S" "$PGDR_R2_S") PGDR_R_REQ=$PGDR_R1_REQ PGDR_R_RSS_MB=$PGDR_R1_RSS_MB
PGBR_R_S=$(min_of "$PGBR_R1_S" "$PGBR_R2_S") PGBR_R_REQ=$PGBR_R1_REQ PGBR_R_RSS_MB=$PGBR_R1_RSS_MB
PGDR_RF_S=$(min_of "$PGDR_RF1_S" "$PGDR_RF2_S") PGDR_RF_REQ=$PGDR_RF1_REQ PGDR_RF_RSS_MB=$PGDR_RF1_RSS_MB
PGDR_DIR="$WORK/pgdr1/data" PGBR_DIR="$WORK/pgbr1/data"

pgdr_log "damaging 1% of the files of both restored folders"
damage() {
  local n=0
  while read -r f; do
    n=$((n + 1))
    [ $((n % 100)) -eq 0 ] || continue
    printf '\xff' | dd of="$f" bs=1 seek=0 conv=notrunc status=none
    DAMAGED=$((DAMAGED + 1))
  done < <(find "$1/base" -type f | sort)
}
DAMAGED=0
damage "$PGDR_DIR"
FILES=$(find "$PGDR_DIR/base" -type f | wc -l)
PGDR_DAMAGED=$DAMAGED
damage "$PGBR_DIR"
DAMAGED=$PGDR_DAMAGED
settle
measure PGDR_D 'pgdr/' "$PGDR" restore "$WORK/bench.yaml" --to "$PGDR_DIR" --latest --delta
VERIFY_DELTA=$("$(pg_bindir)/pg_verifybackup" --no-parse-wal "$PGDR_DIR" 2>&1 | tail -1)
settle
measure PGBR_D 'pgbackrest' "${AS_PG[@]}" pgbackrest --config="$PGBR_CONF" --stanza=demo --pg1-path="$PGBR_DIR" --delta restore

# What the emulator takes to answer the one ListObjectVersions every pgdr
# restore makes (the WAL from the newest backup on, for gaps and rewritten
# objects): moto scans every key of the bucket in Python; S3 answers it in
# tens of milliseconds.
NEWEST_WAL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["start_wal"])' "$WORK/PGDR_I.out")
T=$(now)
aws s3api list-object-versions --bucket bench-incr --prefix pgdr/wal/ --key-marker "pgdr/wal/${NEWEST_WAL:0:16}" >/dev/null
LISTING_S=$(elapsed "$T")

echo
echo "Incremental backups of pgbench scale $SCALE (database $(mb "$DB_BYTES") MB, pgbench_accounts $PAGES pages), moto via TLS (stunnel4)"
printf '%-34s %8s %10s %8s %7s\n' "full backup" seconds "stored MB" requests "RSS MB"
printf '%-34s %8s %10s %8s %7s\n' "pgdr files --jobs 2" "$PGDR_FULL_S" "$(mb "$PGDR_FULL_STORED")" "$PGDR_FULL_REQ" "$PGDR_FULL_RSS_MB"
printf '%-34s %8s %10s %8s %7s\n' "pgbackrest bundle process-max=2" "$PGBR_FULL_S" "$(mb "$PGBR_FULL_STORED")" "$PGBR_FULL_REQ" "$PGBR_FULL_RSS_MB"
echo
echo "incremental after pgbench updates (pgBackRest 2.45: file-level incremental)"
printf '%-7s | %8s %10s %8s %7s | %8s %10s %8s %7s | %7s %7s\n' "pages" "pgdr s" "stored MB" requests "RSS MB" "pgbr s" "stored MB" requests "RSS MB" "time x" "bytes x"
for row in "${ROWS[@]}"; do
  read -r pct ds db dq dr bs bb bq br <<<"$row"
  printf '%-7s | %8s %10s %8s %7s | %8s %10s %8s %7s | %7s %7s\n' "$pct%" "$ds" "$(mb "$db")" "$dq" "$dr" "$bs" "$(mb "$bb")" "$bq" "$br" \
    "$(awk -v a="$ds" -v b="$bs" 'BEGIN { printf "%.2f", a / b }')" "$(awk -v a="$db" -v b="$bb" 'BEGIN { printf "%.3f", a / b }')"
done
echo "(time x, bytes x: pgdr / pgBackRest; targets <= 0.5 and <= 0.25)"
echo
printf '%-46s %8s %8s %7s %16s\n' restore seconds requests "RSS MB" "runs (s)"
printf '%-46s %8s %8s %7s %16s\n' "pgdr restore of the chain (full + 4 incr)" "$PGDR_R_S" "$PGDR_R_REQ" "$PGDR_R_RSS_MB" "$PGDR_R1_S, $PGDR_R2_S"
printf '%-46s %8s %8s %7s %16s\n' "pgbackrest restore of the newest incr" "$PGBR_R_S" "$PGBR_R_REQ" "$PGBR_R_RSS_MB" "$PGBR_R1_S, $PGBR_R2_S"
printf '%-46s %8s %8s %7s %16s\n' "pgdr restore of the full alone" "$PGDR_RF_S" "$PGDR_RF_REQ" "$PGDR_RF_RSS_MB" "$PGDR_RF1_S, $PGDR_RF2_S"
printf '%-46s %8s %8s %7s\n' "pgdr restore --delta ($DAMAGED of $FILES files damaged)" "$PGDR_D_S" "$PGDR_D_REQ" "$PGDR_D_RSS_MB"
printf '%-46s %8s %8s %7s\n' "pgbackrest restore --delta (same damage)" "$PGBR_D_S" "$PGBR_D_REQ" "$PGBR_D_RSS_MB"
echo
echo "chain restore vs pgBackRest: $(ratio "$PGBR_R_S" "$PGDR_R_S")x the speed (target >= 1.0); vs pgdr's full alone: $(ratio "$PGDR_RF_S" "$PGDR_R_S")x"
echo "delta restore / pgdr's chain restore: $(awk -v a="$PGDR_D_S" -v b="$PGDR_R_S" 'BEGIN { printf "%.2f", a / b }') (target <= 0.2); pgBackRest's delta / its restore: $(awk -v a="$PGBR_D_S" -v b="$PGBR_R_S" 'BEGIN { printf "%.2f", a / b }')"
echo "the emulator's answer to the WAL version listing every pgdr restore makes: ${LISTING_S}s (aws CLI, same request); delta restore without it / chain restore without it: $(awk -v a="$PGDR_D_S" -v b="$PGDR_R_S" -v l="$LISTING_S" 'BEGIN { printf "%.2f", (a - l) / (b - l) }')"
echo "pg_verifybackup, chain restore: $VERIFY_CHAIN"
echo "pg_verifybackup, delta restore: $VERIFY_DELTA"
echo "pgdr's delta: $(grep '^Delta:' "$WORK/PGDR_D.out" || true)"
