#!/usr/bin/env bash
# Benchmark: how long `pgdr plan` takes for one cluster and for a fleet of N
# clusters (default 50) against the local sandbox (one PostgreSQL primary with a
# streaming standby, one moto), every resource kind included: settings, slots,
# standbys, S3 archive, RDS primary/parameter group/replica, Route53, EC2.
# Prints both medians and their ratio, pgdr's CPU time per cluster, the fleet's
# wall time against its floor (the CPU time the single-threaded emulator
# spent), and the AWS requests one plan makes by service for fleets of 10, 50
# and 200 clusters (SIZES), counted by the emulator's own request recorder, so
# how they grow with the fleet is visible.
#
#   bench/plan-fleet.sh [CLUSTERS] [RUNS]      SIZES="10 50 200" by default
#
# Uses the release build (PGDR_BIN overrides, e.g. an older build to compare;
# PGDR_APPLY_BIN sets the build that applies the fleet before it is measured).
# Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

CLUSTERS=${1:-50}
RUNS=${2:-5}
SIZES=${SIZES:-10 50 200}
# The largest fleet is made (and applied) once; smaller ones are its first N clusters.
MAX=$(printf '%s\n' $SIZES "$CLUSTERS" | sort -n | tail -1)
WIDTH=${#MAX}
ensure_deps
if [ -z "${PGDR_BIN:-}" ]; then
  pgdr_log "building pgdr (release)"
  cargo build --quiet --release --bin pgdr
  PGDR_BIN="${CARGO_TARGET_DIR:-target}/release/pgdr"
fi

WORK=$(mktemp -d /tmp/pgdr-bench.XXXXXX)
chmod 755 "$WORK"
MOTO_PID=
cleanup() {
  stop_pg "$WORK/standby"
  stop_pg "$WORK/pg"
  [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

PGPORT=$(free_port)
MOTOPORT=$(free_port)
# One server stands in for every cluster's primary: room for all their sessions and slots.
printf 'max_connections = 300\nmax_replication_slots = 200\n' >"$WORK/extra.conf"
start_pg "$WORK/pg" "$PGPORT" "$WORK/extra.conf"
start_moto "$MOTOPORT" "$WORK/moto.log" "$WORK/recording"
use_moto_env "$MOTOPORT"
export PGDR_LOCK_DIR="$WORK/locks"

mkdir -p "$WORK/all" "$WORK/fleet" "$WORK/one"
STANDBYPORT=$(free_port)
start_standby "$PGPORT" "$WORK/standby" "$STANDBYPORT" bench_b
aws route53 create-hosted-zone --name bench.internal. --caller-reference bench >/dev/null
# Every resource kind pgdr reconciles. Odd clusters: a self-managed primary and
# standby (one shared pair of servers stands in for all of them). Even clusters:
# an RDS primary with a parameter group and a read replica.
for i in $(seq -f "%0${WIDTH}g" 1 "$MAX"); do
  if [ $((10#$i % 2)) -eq 0 ]; then
    aws rds create-db-instance --endpoint-url "$AWS_ENDPOINT_URL" --db-instance-identifier "bench-$i" --engine postgres --engine-version 15.4 \
      --db-instance-class db.t3.micro --allocated-storage 20 --master-username bench \
      --master-user-password "bench-only-$i" >/dev/null
    primary="  rds: { instance: bench-$i, backup_retention_days: 7, deletion_protection: true, parameter_group: bench-$i-pg15 }"
    standby="  - name: bench-$i-replica
    rds: { instance: bench-$i-replica }"
  else
    primary="  postgres: \"host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres sslmode=disable\""
    standby="  - name: bench-b
    postgres: \"host=127.0.0.1 port=$STANDBYPORT user=postgres dbname=postgres sslmode=disable\"
    slot: bench_b
    max_lag: 30s"
  fi
  cat >"$WORK/all/c$i.yaml" <<YAML
version: 1
cluster: bench-$i
tier: saas
objectives: { rpo: 5m, rto: 30m }
aws: { region: us-east-1 }
primary:
$primary
settings:
  archive_timeout: "60"
  max_wal_senders: "10"
archive:
  bucket: pgdr-bench-$i
  prefix: bench-$i/
  versioning: true
  object_lock: { mode: governance, days: 7 }
  encryption: { sse: AES256 }
  block_public_access: true
  wal_retention: 14d
standbys:
$standby
endpoint:
  hosted_zone: bench.internal.
  record: primary-$i.bench.internal.
  ttl: 30s
replication_network:
  security_group: bench-$i-replication
  allow_cidrs: [10.1.0.0/16]
YAML
done
# first_n N DIR: a fleet of the first N clusters.
first_n() {
  mkdir -p "$2"
  ls "$WORK/all"/*.yaml | sort | head -n "$1" | xargs -I{} cp {} "$2/"
}
first_n "$CLUSTERS" "$WORK/fleet"
first_n 1 "$WORK/one"

pgdr_log "applying the $MAX clusters once, so every plan reads fully configured buckets"
# PGDR_APPLY_BIN (default PGDR_BIN) applies: an older build can then be
# measured planning a fleet it could not apply itself.
"${PGDR_APPLY_BIN:-$PGDR_BIN}" apply "$WORK/all" --auto-approve >"$WORK/apply.log" || { tail -20 "$WORK/apply.log"; exit 1; }
# The measured build's own plan of every cluster: its summary, and its error
# when it could not read some (an older build, unbounded, did).
"$PGDR_BIN" plan "$WORK/all" 2>"$WORK/plan-all.err" | tail -1 || true
grep "^error:" "$WORK/plan-all.err" >&2 || true

# measure LABEL CMD...: runs CMD $RUNS times; prints the median wall time and
# pgdr's own CPU time (ms), and the CPU the emulator spent serving it.
measure() {
  local label=$1; shift
  local before after
  before=$(awk '{print $14 + $15}' "/proc/$MOTO_PID/stat")
  python3 - "$RUNS" "$@" <<'PY' >"$WORK/$label.times"
import resource, subprocess, sys, time
runs, cmd = int(sys.argv[1]), sys.argv[2:]
walls, cpus = [], []
for _ in range(runs):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    walls.append((time.perf_counter() - t0) * 1000)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpus.append((r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) * 1000)
walls.sort(); cpus.sort()
print(f"{walls[len(walls)//2]:.0f} {cpus[len(cpus)//2]:.0f}")
PY
  after=$(awk '{print $14 + $15}' "/proc/$MOTO_PID/stat")
  read -r wall cpu <"$WORK/$label.times"
  moto_ms=$(( (after - before) * 1000 / $(getconf CLK_TCK) / RUNS ))
  echo "$wall $cpu $moto_ms"
}

read -r one one_cpu one_moto < <(measure one "$PGDR_BIN" plan "$WORK/one")
read -r fleet fleet_cpu fleet_moto < <(measure fleet "$PGDR_BIN" plan "$WORK/fleet")
# The same clusters planned one process at a time, to show what concurrency saves.
start=$(date +%s%N)
for f in "$WORK"/fleet/*.yaml; do "$PGDR_BIN" plan "$f" >/dev/null 2>&1 || true; done
serial=$(( ($(date +%s%N) - start) / 1000000 ))
ratio=$(python3 -c "print(f'{$fleet / max($one, 1):.2f}')")
echo "pgdr plan, median of $RUNS runs against the local sandbox:"
printf '  %-22s %6s ms wall   (pgdr CPU %4s ms, emulator CPU %4s ms)\n' "1 cluster:" "$one" "$one_cpu" "$one_moto"
printf '  %-22s %6s ms wall   (pgdr CPU %4s ms, emulator CPU %4s ms)\n' "$CLUSTERS clusters (fleet):" "$fleet" "$fleet_cpu" "$fleet_moto"
printf '  %-22s %6s ms wall\n' "$CLUSTERS one at a time:" "$serial"
echo "  ratio fleet/one:       ${ratio}x   (target: at most 3x)"
echo "  Where the emulator's CPU time approaches the fleet's wall time, the single-threaded"
echo "  emulator (not pgdr) is what bounds the fleet on this machine."

# AWS requests of one plan, by service, for each fleet size, as the emulator
# recorded them (scripts/moto_requests.py: the count the tests use too).
echo
echo "AWS requests of one \`pgdr plan\`, by fleet size (the emulator's recorder):"
printf '  %8s %7s %7s %7s %7s %7s %12s\n' clusters ec2 rds route53 s3 total "per cluster"
for size in $SIZES; do
  first_n "$size" "$WORK/size-$size"
  mark=$(wc -l <"$WORK/recording")
  "$PGDR_BIN" plan "$WORK/size-$size" >/dev/null 2>&1 || true
  python3 scripts/moto_requests.py "$WORK/recording" "$mark" >"$WORK/requests-$size.json"
  python3 - "$size" "$WORK/requests-$size.json" <<'PY'
import json, sys
size = int(sys.argv[1])
s = json.load(open(sys.argv[2]))["services"]
total = sum(s.values())
row = [s.get(k, 0) for k in ("ec2", "rds", "route53", "s3")]
print(f"  {size:8d} {row[0]:7d} {row[1]:7d} {row[2]:7d} {row[3]:7d} {total:7d} {total / size:12.2f}")
PY
done
echo
echo "Per cluster, for a fleet of $CLUSTERS (one plan):"
python3 - "$CLUSTERS" "$fleet" "$fleet_cpu" "$fleet_moto" <<'PY'
import sys
clusters, wall, cpu, moto = (int(x) for x in sys.argv[1:])
print(f"  pgdr CPU: {cpu / clusters:.1f} ms per cluster ({cpu} ms for the fleet)")
print(f"  fleet wall / emulator-CPU floor: {wall / max(moto, 1):.2f}x "
      f"({wall} ms wall, the emulator busy {moto} ms: 1.00x would mean pgdr only ever waits on it)")
PY
