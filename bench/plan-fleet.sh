#!/usr/bin/env bash
# Benchmark: how long `pgdr plan` takes for one cluster and for a fleet of N
# clusters (default 50) against the local sandbox (one PostgreSQL, one moto).
# Prints both medians and their ratio. Target: the fleet costs at most 3x one
# cluster, because clusters, and the reads within each, run concurrently.
#
#   bench/plan-fleet.sh [CLUSTERS] [RUNS]
#
# Uses the release build (PGDR_BIN overrides). Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

CLUSTERS=${1:-50}
RUNS=${2:-5}
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
  stop_pg "$WORK/pg"
  [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

PGPORT=$(free_port)
MOTOPORT=$(free_port)
start_pg "$WORK/pg" "$PGPORT"
# One server stands in for every cluster's primary: room for all their sessions and slots.
printf 'max_connections = 300\nmax_replication_slots = 200\n' | pg_run tee -a "$WORK/pg/data/postgresql.conf" >/dev/null
pg_run "$(pg_bindir)/pg_ctl" -D "$WORK/pg/data" -w -m fast restart \
  -o "-p $PGPORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c fsync=off" >/dev/null
start_moto "$MOTOPORT" "$WORK/moto.log"
use_moto_env "$MOTOPORT"
export PGDR_LOCK_DIR="$WORK/locks"

mkdir -p "$WORK/fleet" "$WORK/one"
for i in $(seq -w 1 "$CLUSTERS"); do
  cat >"$WORK/fleet/c$i.yaml" <<YAML
version: 1
cluster: bench-$i
tier: saas
objectives: { rpo: 5m, rto: 30m }
aws: { region: us-east-1 }
primary:
  postgres: "host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres sslmode=disable"
settings:
  wal_level: replica
  archive_timeout: 60s
  max_wal_senders: 10
  wal_keep_size: 1GB
archive:
  bucket: pgdr-bench-$i
  prefix: bench-$i/
  versioning: true
  object_lock: { mode: governance, days: 7 }
  encryption: { sse: AES256 }
  block_public_access: true
  wal_retention: 14d
standbys:
  - name: bench-$i-b
    postgres: "host=127.0.0.1 port=1 user=postgres"
YAML
done
cp "$WORK/fleet/c$(printf "%0${#CLUSTERS}d" 1).yaml" "$WORK/one/"

pgdr_log "applying the fleet once, so every plan reads a fully configured bucket"
"$PGDR_BIN" apply "$WORK/fleet" --auto-approve >/dev/null

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
