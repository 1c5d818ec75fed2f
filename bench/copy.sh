#!/usr/bin/env bash
# Benchmark: a copy of the archive in a second region (archive.copies), side
# by side with pgBackRest's second repository, in one run against moto on
# loopback (serving both us-east-1 and us-west-2), every tool through the same
# TLS terminator (stunnel4).
#  1. Archive cost: the same N real WAL segments (made by pgbench) pushed one
#     call per segment by `pgdr wal-push` to home only, `pgdr wal-push --copy`
#     to home and the copy, pgBackRest `archive-push` (zst) with one repo, and
#     with two repos (repo2 a bucket in us-west-2; pgBackRest pushes to every
#     repo). Seconds per segment, and what the second place costs each tool.
#  2. Copy lag under load: PostgreSQL archiving through `pgdr wal-push --copy`
#     while `pgbench -c 4` writes; `pgdr status --format json` sampled every
#     second: max and mean of the copy's wal_behind and seconds_behind.
#  3. RTO: after `pgdr copy`, `pgdr drill` from home and a region-loss drill
#     `pgdr drill --from-copy west`, twice each (home, copy, copy, home): the
#     rto_seconds each reports, and the ratio of the means.
# Prints figures; asserts nothing.
#
#   bench/copy.sh [SEGMENTS=20] [PGBENCH_SECONDS=60]
#
# Uses the release build (PGDR_BIN overrides); PGDR_BENCH_KEEP=1 keeps the work folder. Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/peer.sh

N=${1:-20}
LOAD_S=${2:-60}
HOME_BUCKET=bench-copy
WEST_BUCKET=bench-copy-west
bench_start copy "$HOME_BUCKET"
PGBENCH_PID=
trap '[ -n "$PGBENCH_PID" ] && kill "$PGBENCH_PID" 2>/dev/null; bench_cleanup' EXIT
aws s3api create-bucket --bucket "$WEST_BUCKET" --region us-west-2 \
  --create-bucket-configuration LocationConstraint=us-west-2 >/dev/null
export PGDR_LOCK_DIR="$WORK/locks" PGDR_SCRATCH_DIR="$WORK/drills"

# archive_mode on with an empty archive_command: PostgreSQL keeps every
# segment and marks it .ready (phase 1 copies them out; phase 2 archives).
cat >"$WORK/pg.conf" <<EOC
archive_mode = on
archive_command = ''
max_wal_size = 8GB
wal_keep_size = 8GB
EOC
start_pg "$WORK/pg" "$PGPORT" "$WORK/pg.conf"
PGDATA="$WORK/pg/data"
ready_count() { pg_run find "$PGDATA/pg_wal/archive_status" -name '????????????????????????.ready' | wc -l; }
drain() { while [ "$(ready_count)" -gt 0 ]; do sleep 0.5; done; }
archived() { psql_pg "SELECT archived_count FROM pg_stat_archiver"; }
failed() { psql_pg "SELECT failed_count FROM pg_stat_archiver"; }
pgbench_() { pgbench -h 127.0.0.1 -p "$PGPORT" -U postgres "$@"; }
# wal_count BUCKET PREFIX: WAL objects the aws CLI lists under PREFIX/wal/.
wal_count() { aws s3api list-objects-v2 --bucket "$1" --prefix "$2/wal/" --query 'length(Contents || `[]`)' --output text; }

# ---------------------------------------------------------------- 1. archive cost
collect_segments "$N" "$N"

# pgBackRest with one repo, and with two: the same repo1 (a path of its own)
# plus repo2, a bucket in us-west-2 behind the same terminator.
write_pgbackrest_conf "$WORK/pgbr1" "$HOME_BUCKET" "$TLSPORT" "$PGDATA" "$PGPORT" "$WORK/pg" zst
write_pgbackrest_conf "$WORK/pgbr2" "$HOME_BUCKET" "$TLSPORT" "$PGDATA" "$PGPORT" "$WORK/pg" zst
conf2=$WORK/pgbr2/pgbackrest.conf
sed -i 's|^repo1-path=.*|repo1-path=/pgbackrest-two|' "$conf2"
grep '^repo1-' "$conf2" | sed -e 's/^repo1-/repo2-/' \
  -e "s|^repo2-s3-bucket=.*|repo2-s3-bucket=$WEST_BUCKET|" \
  -e 's|^repo2-s3-region=.*|repo2-s3-region=us-west-2|' >"$WORK/pgbr2/repo2"
sed -i "/^\[demo\]/e cat $WORK/pgbr2/repo2; echo" "$conf2"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$WORK/pgbr2"
pgbr1() { pg_run pgbackrest --config="$WORK/pgbr1/pgbackrest.conf" --stanza=demo "$@"; }
pgbr2() { pg_run pgbackrest --config="$conf2" --stanza=demo "$@"; }
pgbr1 stanza-create >/dev/null
pgbr2 stanza-create >/dev/null

COPY_ARG="us-west-2=s3://$WEST_BUCKET/pgdr-copy/"
pgdr_log "pushing $N segments one call each: pgdr wal-push (home only)"
t=$(now)
for s in $SEGS; do "$PGDR" wal-push "s3://$HOME_BUCKET/pgdr-home/" "$WORK/segs/$s"; done
PGDR1_S=$(elapsed "$t")

pgdr_log "pushing $N segments one call each: pgdr wal-push --copy (home + copy)"
t=$(now)
for s in $SEGS; do "$PGDR" wal-push "s3://$HOME_BUCKET/pgdr-copy/" "$WORK/segs/$s" --copy "$COPY_ARG" 2>>"$WORK/push-copy.err"; done
PGDR2_S=$(elapsed "$t")

pgdr_log "pushing $N segments one call each: pgbackrest archive-push (zst), one repo"
t=$(now)
for s in $SEGS; do pgbr1 archive-push "$WORK/segs/$s"; done
PGBR1_S=$(elapsed "$t")

pgdr_log "pushing $N segments one call each: pgbackrest archive-push (zst), two repos"
t=$(now)
for s in $SEGS; do pgbr2 archive-push "$WORK/segs/$s"; done
PGBR2_S=$(elapsed "$t")

# Independent check by the aws CLI: every place holds every segment.
PGDR_HOME_N=$(wal_count "$HOME_BUCKET" pgdr-copy)
PGDR_WEST_N=$(wal_count "$WEST_BUCKET" pgdr-copy)
PGBR_REPO1_N=$(aws s3api list-objects-v2 --bucket "$HOME_BUCKET" --prefix pgbackrest-two/archive/demo/ --query 'length(Contents[?ends_with(Key, `.zst`)] || `[]`)' --output text)
PGBR_REPO2_N=$(aws s3api list-objects-v2 --bucket "$WEST_BUCKET" --prefix pgbackrest-two/archive/demo/ --query 'length(Contents[?ends_with(Key, `.zst`)] || `[]`)' --output text)

# ---------------------------------------------------------------- 2. copy lag under load
PLAN=$WORK/bench.yaml
cat >"$PLAN" <<YAML
version: 1
cluster: bench
tier: saas
objectives: { rpo: 5m, rto: 30m }
aws: { region: us-east-1 }
primary:
  postgres: "host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres sslmode=disable"
archive:
  bucket: $HOME_BUCKET
  prefix: lag/
  pgdr_path: $PGDR
  base_backups: { every: 1d, keep: 7 }
  copies:
    - { name: west, bucket: $WEST_BUCKET, region: us-west-2 }
drill:
  every: 7d
  checks:
    - name: accounts-present
      sql: "select count(*) = 500000 from pgbench_accounts"
YAML
pgdr_log "PostgreSQL archives through pgdr wal-push --copy; the $(ready_count) segments still waiting first"
psql_pg "ALTER SYSTEM SET archive_command = '$PGDR wal-push s3://$HOME_BUCKET/lag/ %p --copy us-west-2=s3://$WEST_BUCKET/lag/'" >/dev/null
psql_pg "SELECT pg_reload_conf()" >/dev/null
drain
pgdr_log "pgdr backup (not timed)"
"$PGDR" backup "$PLAN" >"$WORK/backup.out"
drain

pgdr_log "pgbench -c 4 -T $LOAD_S, pgdr status sampled every second"
ARCHIVED0=$(archived) FAILED0=$(failed)
mkdir -p "$WORK/status"
pgbench_ -n -c 4 -j 2 -T "$LOAD_S" postgres >"$WORK/pgbench.out" 2>&1 &
PGBENCH_PID=$!
i=0
while kill -0 "$PGBENCH_PID" 2>/dev/null; do
  t=$(now)
  i=$((i + 1))
  "$PGDR" status "$PLAN" --format json >"$WORK/status/$i.json" 2>>"$WORK/status.err" || true
  echo "$(elapsed "$t")" >"$WORK/status/$i.took"
  # The next sample a second after this one started.
  sleep "$(awk -v a="$t" -v b="$(now)" 'BEGIN { d = 1 - (b - a); print (d > 0 ? d : 0) }')"
done
wait "$PGBENCH_PID" || { cat "$WORK/pgbench.out" >&2; exit 1; }
PGBENCH_PID=
TPS=$(awk '/^tps/ { printf "%.0f", $3; exit }' "$WORK/pgbench.out")
LOAD_ARCHIVED=$(($(archived) - ARCHIVED0))
LOAD_FAILED=$(($(failed) - FAILED0))
read -r SAMPLES WAL_MAX WAL_MEAN SEC_MAX SEC_MEAN BEHIND_SAMPLES ERRORS STATUS_MEAN < <(python3 - "$WORK/status" <<'PY'
import json, os, sys
d = sys.argv[1]
wal, sec, took, errors = [], [], [], 0
for f in sorted(os.listdir(d)):
    p = os.path.join(d, f)
    if f.endswith(".took"):
        took.append(float(open(p).read()))
        continue
    try:
        copy = json.load(open(p))["clusters"][0]["copies"][0]
    except (ValueError, KeyError, IndexError):
        errors += 1
        continue
    if copy.get("error") or copy.get("wal_behind") is None:
        errors += 1
        continue
    wal.append(copy["wal_behind"])
    sec.append(copy["seconds_behind"])
mean = lambda xs: sum(xs) / len(xs) if xs else 0
print(len(wal), max(wal, default=0), "%.2f" % mean(wal), max(sec, default=0), "%.2f" % mean(sec),
      sum(1 for w in wal if w > 0), errors, "%.2f" % mean(took))
PY
)
# Everything written by then archived; the copy's share counted by the aws CLI.
psql_pg "SELECT pg_switch_wal()" >/dev/null
drain
LAG_HOME_N=$(wal_count "$HOME_BUCKET" lag)
LAG_WEST_N=$(wal_count "$WEST_BUCKET" lag)
LEFT_TO_COPY=$(grep -c 'stored at home but not in the copy' "$WORK/pg/server.log" || true)

# ---------------------------------------------------------------- 3. RTO, home vs the copy
pgdr_log "pgdr copy (catches the copy up: the backup, and any WAL wal-push missed)"
t=$(now)
"$PGDR" copy "$PLAN" >"$WORK/copy.out" 2>"$WORK/copy.err" || { cat "$WORK/copy.out" "$WORK/copy.err" >&2; exit 1; }
COPY_S=$(elapsed "$t")
COPY_LINE=$(grep '^copy west' "$WORK/copy.out" | sed 's/ (s3:[^)]*)//')

# drill NAME [ARGS]: pgdr drill --format json; sets <NAME>_OK, _RTO, _RESTORE,
# _RECOVERY (as reported), _WAL_MB (replayed) and _WALL (measured from outside).
drill() {
  local name=$1 t
  shift
  pgdr_log "pgdr drill${*:+ $*}"
  t=$(now)
  "$PGDR" drill "$PLAN" "$@" --format json >"$WORK/$name.json" 2>"$WORK/$name.err" || true
  printf -v "${name}_WALL" '%s' "$(elapsed "$t")"
  [ -s "$WORK/$name.json" ] || { cat "$WORK/$name.err" >&2; exit 1; }
  read -r "${name}_OK" "${name}_RTO" "${name}_RESTORE" "${name}_RECOVERY" "${name}_WAL_MB" < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["ok"], round(r["rto_seconds"] or 0, 2), round(r["restore_seconds"], 2), round(r["recovery_seconds"], 2), round(r["replayed_wal_bytes"] / 1048576))' "$WORK/$name.json")
}
# Twice each, in the order home, copy, copy, home: neither gets the warm or
# the cold turn only (one drill against another is noisy on a busy machine).
drill HOME1
drill WEST1 --from-copy west
drill WEST2 --from-copy west
drill HOME2

per() { awk -v s="$1" -v n="$N" 'BEGIN { printf "%.3f", s / n }'; }
added() { awk -v a="$1" -v b="$2" -v n="$N" 'BEGIN { printf "+%.3fs per segment (%.2fx)", (b - a) / n, (a > 0 ? b / a : 0) }'; }
MB=$(awk -v b="$BYTES" 'BEGIN { printf "%.0f", b / 1048576 }')
echo
echo "1. Archive cost of a copy: $N segments ($MB MB) from pgbench, one call per segment, moto via TLS (stunnel4)"
printf '%-48s %9s %12s\n' "tool" "seconds" "per segment"
row() { printf '%-48s %9s %11ss\n' "$1" "$2" "$(per "$2")"; }
row "pgdr wal-push (zst), home only" "$PGDR1_S"
row "pgdr wal-push --copy, home + us-west-2" "$PGDR2_S"
row "pgbackrest archive-push (zst), one repo" "$PGBR1_S"
row "pgbackrest archive-push (zst), two repos" "$PGBR2_S"
echo
echo "pgdr with a copy vs pgBackRest with two repos: $(ratio "$PGBR2_S" "$PGDR2_S")x faster"
echo "what the copy adds: pgdr $(added "$PGDR1_S" "$PGDR2_S"); pgBackRest $(added "$PGBR1_S" "$PGBR2_S")"
echo "listed by the aws CLI: pgdr home $PGDR_HOME_N, copy $PGDR_WEST_N; pgBackRest repo1 $PGBR_REPO1_N, repo2 $PGBR_REPO2_N (of $N)"
echo
echo "2. Copy lag: pgbench -c 4 -T $LOAD_S ($TPS tps), PostgreSQL archiving through pgdr wal-push --copy"
echo "home archived $LOAD_ARCHIVED segments during the load ($LOAD_FAILED failures); after it, home holds $LAG_HOME_N WAL objects, the copy $LAG_WEST_N; pushes that left a file to pgdr copy: $LEFT_TO_COPY"
echo "pgdr status, $SAMPLES samples ~1 s apart (each took ${STATUS_MEAN}s on average; $ERRORS unreadable):"
echo "  wal_behind:     max $WAL_MAX, mean $WAL_MEAN segments ($BEHIND_SAMPLES samples with any)"
echo "  seconds_behind: max $SEC_MAX, mean $SEC_MEAN s"
echo
echo "3. RTO: pgdr copy in ${COPY_S}s (${COPY_LINE:-no line}); then"
printf '%-44s %5s %7s %9s %8s %8s %7s\n' "drill, in the order run" ok "RTO s" "restore s" "replay s" "WAL MB" "wall s"
# drow LABEL NAME: one drill's row, from what drill NAME set.
drow() {
  local f row=("$1")
  for f in OK RTO RESTORE RECOVERY WAL_MB WALL; do f=${2}_$f; row+=("${!f}"); done
  printf '%-44s %5s %7s %9s %8s %8s %7s\n' "${row[@]}"
}
drow "pgdr drill (home, us-east-1)" HOME1
drow "pgdr drill --from-copy west (us-west-2)" WEST1
drow "pgdr drill --from-copy west (us-west-2)" WEST2
drow "pgdr drill (home, us-east-1)" HOME2
HOME_RTO=$(awk -v a="$HOME1_RTO" -v b="$HOME2_RTO" 'BEGIN { printf "%.2f", (a + b) / 2 }')
WEST_RTO=$(awk -v a="$WEST1_RTO" -v b="$WEST2_RTO" 'BEGIN { printf "%.2f", (a + b) / 2 }')
echo "mean RTO: home ${HOME_RTO}s, region-loss drill from the copy ${WEST_RTO}s; copy / home: $(awk -v a="$WEST_RTO" -v b="$HOME_RTO" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')x"
