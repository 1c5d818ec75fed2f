#!/usr/bin/env bash
# Benchmark: role changes on the sandbox shape (a primary on 127.0.0.1, a
# streaming standby on 127.0.0.2, moto for Route53), RUNS times each:
#   - `pgdr switchover --to` (alternating direction, --write-plan); pgbench writes
#     to the first primary until the first fence ends its sessions;
#   - `pgdr failover` after `pg_ctl stop -m immediate` of the primary (a fresh
#     pair each run);
#   - side by side, the by-hand runbook pgdr replaces, scripted with the same
#     tools an operator uses (psql fence, wait for replay, pg_ctl promote, aws
#     route53 change + get-change until INSYNC), no checks between steps.
# Wall time from the command's start until the endpoint is INSYNC, and each
# pgdr step's time from its journal. Prints figures; asserts nothing.
# Target: pgdr ≤ 5 s end to end for both.
#
#   bench/failover.sh [RUNS=5]
#
# Uses the release build (PGDR_BIN overrides); PGDR_BENCH_KEEP=1 keeps the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/peer.sh

RUNS=${1:-5}
ensure_deps
if [ -z "${PGDR_BIN:-}" ]; then
  pgdr_log "building pgdr (release)"
  cargo build --quiet --release --bin pgdr
  PGDR_BIN="${CARGO_TARGET_DIR:-target}/release/pgdr"
fi
WORK=$(mktemp -d /tmp/pgdr-bench-failover.XXXXXX)
chmod 755 "$WORK"
MOTO_PID=
cleanup() {
  for d in "$WORK"/pair*/pg "$WORK"/pair*/sb; do stop_pg "$d"; done
  [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null || true
  if [ -n "${PGDR_BENCH_KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
PGDR=$PGDR_BIN
MOTOPORT=$(free_port)
start_moto "$MOTOPORT" "$WORK/moto.log"
use_moto_env "$MOTOPORT"
export PGDR_LOCK_DIR="$WORK/locks"
aws route53 create-hosted-zone --name bench.internal. --caller-reference bench >/dev/null
ZONE=$(aws route53 list-hosted-zones-by-name --dns-name bench.internal. --query 'HostedZones[0].Id' --output text)

# pair N: a primary (wal_log_hints, so the old primary can be rewound) and a
# standby on 127.0.0.2, pgbench data, the plan file pair N/plan.yaml, applied.
pair() {
  local d="$WORK/pair$1" p s
  mkdir -p "$d"
  chmod 755 "$d"
  p=$(free_port)
  s=$(free_port)
  printf 'wal_log_hints = on\n' >"$d/extra.conf"
  start_pg "$d/pg" "$p" "$d/extra.conf"
  start_standby "$p" "$d/sb" "$s" bench_b 127.0.0.2
  pgbench -h 127.0.0.1 -p "$p" -U postgres -i -s 1 -q postgres >/dev/null 2>&1
  cat >"$d/plan.yaml" <<EOF
version: 1
cluster: bench$1
tier: saas
objectives: { rpo: 5m, rto: 30m }
aws: { region: us-east-1 }
primary:
  postgres: "host=127.0.0.1 port=$p user=postgres dbname=postgres sslmode=disable"
standbys:
  - name: bench-b
    postgres: "host=127.0.0.2 port=$s user=postgres dbname=postgres sslmode=disable"
    slot: bench_b
endpoint:
  hosted_zone: bench.internal.
  record: primary$1.bench.internal.
  ttl: 30s
EOF
  "$PGDR" apply "$d/plan.yaml" --auto-approve >/dev/null
  echo "$p $s"
}

# Prints one row: the wall time and each step's seconds from the newest journal in DIR.
row() {
  local label=$1 wall=$2 dir=$3
  python3 - "$label" "$wall" "$dir" <<'EOF'
import json, os, sys
label, wall, folder = sys.argv[1], float(sys.argv[2]), sys.argv[3]
newest = sorted(os.listdir(folder))[-1]
steps = json.load(open(os.path.join(folder, newest)))["steps"]
cells = " ".join(f"{s['duration_ms'] / 1000:>7.2f}" for s in steps)
print(f"{label:<16} {wall:>6.2f}  {cells}")
EOF
}

header() {
  printf '%-16s %6s  %7s %7s %7s %7s %7s %7s %7s\n' "$1" wall check fence replay promote repoint rejoin dns
}

pgdr_log "switchover: $RUNS runs on one pair, alternating (pgbench writes until the first fence)"
read -r P S < <(pair 0)
pgbench -h 127.0.0.1 -p "$P" -U postgres -c 2 -T 600 postgres >/dev/null 2>&1 &
PGBENCH_PID=$!
sleep 1
declare -a SW=()
echo
header switchover
for i in $(seq 1 "$RUNS"); do
  t=$(now)
  "$PGDR" switchover "$WORK/pair0/plan.yaml" --to bench-b --auto-approve --write-plan >"$WORK/sw$i.out" 2>&1 \
    || { cat "$WORK/sw$i.out" >&2; exit 1; }
  w=$(elapsed "$t")
  SW+=("$w")
  row "run $i" "$w" "$WORK/pair0/failovers"
  sleep 1
done
kill "$PGBENCH_PID" 2>/dev/null || true

pgdr_log "failover: $RUNS runs, each on a fresh pair with the primary stopped -m immediate"
declare -a FO=()
echo
header failover
for i in $(seq 1 "$RUNS"); do
  read -r P S < <(pair "f$i")
  psql -h 127.0.0.1 -p "$P" -U postgres -Atqc "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 1, 1, now())"
  sleep 0.3
  pg_ctl_in "$WORK/pairf$i/pg" "$P" -m immediate stop
  t=$(now)
  "$PGDR" failover "$WORK/pairf$i/plan.yaml" --auto-approve >"$WORK/fo$i.out" 2>&1 \
    || { cat "$WORK/fo$i.out" >&2; exit 1; }
  w=$(elapsed "$t")
  FO+=("$w")
  row "run $i" "$w" "$WORK/pairf$i/failovers"
  stop_pg "$WORK/pairf$i/sb"
done

pgdr_log "the by-hand runbook, scripted: $RUNS runs, each on a fresh pair"
declare -a RB=()
for i in $(seq 1 "$RUNS"); do
  read -r P S < <(pair "r$i")
  t=$(now)
  psql -h 127.0.0.1 -p "$P" -U postgres -Atqc "ALTER SYSTEM SET default_transaction_read_only = on" -c "SELECT pg_reload_conf()" \
    -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()" >/dev/null
  target=$(psql -h 127.0.0.1 -p "$P" -U postgres -Atqc "SELECT pg_current_wal_flush_lsn()")
  until [ "$(psql -h 127.0.0.2 -p "$S" -U postgres -Atqc "SELECT pg_last_wal_replay_lsn() >= '$target'")" = t ]; do sleep 0.1; done
  pg_run "$(pg_bindir)/pg_ctl" -D "$WORK/pairr$i/sb/data" -w promote >/dev/null
  change=$(aws route53 change-resource-record-sets --hosted-zone-id "$ZONE" --change-batch \
    "{\"Changes\":[{\"Action\":\"UPSERT\",\"ResourceRecordSet\":{\"Name\":\"primaryr$i.bench.internal.\",\"Type\":\"A\",\"TTL\":30,\"ResourceRecords\":[{\"Value\":\"127.0.0.2\"}]}}]}" \
    --query ChangeInfo.Id --output text)
  until [ "$(aws route53 get-change --id "$change" --query ChangeInfo.Status --output text)" = INSYNC ]; do sleep 1; done
  RB+=("$(elapsed "$t")")
  stop_pg "$WORK/pairr$i/pg"
  stop_pg "$WORK/pairr$i/sb"
done

median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo
printf '%-34s %8s %8s %8s\n' "wall time to endpoint INSYNC (s)" median min max
for name in SW FO RB; do
  declare -n arr=$name
  label=$(case $name in SW) echo "pgdr switchover (checked, rejoin)" ;; FO) echo "pgdr failover (primary killed)" ;; RB) echo "runbook by hand, scripted" ;; esac)
  printf '%-34s %8s %8s %8s\n' "$label" "$(median "${arr[@]}")" \
    "$(printf '%s\n' "${arr[@]}" | sort -n | head -1)" "$(printf '%s\n' "${arr[@]}" | sort -n | tail -1)"
done
echo
echo "pgdr/runbook (median): switchover $(ratio "$(median "${SW[@]}")" "$(median "${RB[@]}")")x, failover $(ratio "$(median "${FO[@]}")" "$(median "${RB[@]}")")x. Target: pgdr <= 5 s end to end."
