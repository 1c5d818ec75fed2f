#!/usr/bin/env bash
# Benchmark: automatic failover, pgdr (`pgdr watch` + `pgdr watch --guard`)
# side by side with Patroni 3 + etcd (../shared/peers/patroni/), at the same
# detection budget (pgdr `failover.after` = Patroni `ttl`), at 30 s and 10 s.
# Patroni runs its defaults at 30 s (loop_wait 10, retry_timeout 10) and the
# tuned settings at 10 s (loop_wait 2, retry_timeout 3); pgdr runs its
# defaults (check_every 2s). A fresh pair (and etcd) for every run.
#
#   - host death, RUNS times each: SIGKILL of the primary's postmaster and of
#     its agent (pgdr's guard, Patroni itself); seconds from the kill to the
#     first INSERT accepted on the other node (polled every 0.1 s), and for
#     pgdr to the endpoint in sync (the end of the journal's move-endpoint
#     step, which waits for Route53's INSYNC). Patroni moves no DNS.
#   - partition, PARTITION_RUNS times each: the primary and its agent in a
#     network namespace of their own (another host), a writer beside them
#     inserting every 0.1 s; the link cut. Counted: writes the isolated old
#     primary acknowledged after the cut (asynchronous standby: lost) and for
#     how long, and writes it acknowledged after the new primary accepted
#     its first (split brain).
#
# Prints figures and the pgdr/Patroni ratios (medians); asserts nothing.
# Targets: pgdr (to the endpoint in sync) <= 0.9x Patroni's first write at each
# budget; lost-write window <= 0.5x Patroni's; 0 split-brain writes.
#
#   bench/auto-failover.sh [RUNS=5] [PARTITION_RUNS=3]
#
# Needs root (network namespaces, servers run as `postgres`); installs
# Patroni and etcd (Debian packages) when missing. PGDR_BIN overrides the
# release build; PGDR_BENCH_BUDGETS="30 10" the budgets; PGDR_BENCH_KEEP=1
# keeps the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

RUNS=${1:-5}
PARTITION_RUNS=${2:-3}
BUDGETS=${PGDR_BENCH_BUDGETS:-30 10}
[ "$(id -u)" -eq 0 ] || { echo "bench/auto-failover.sh makes network namespaces: run it as root" >&2; exit 1; }
ensure_deps
pkgs=()
command -v patroni >/dev/null || pkgs+=(patroni)
command -v etcd >/dev/null || pkgs+=(etcd-server)
command -v ip >/dev/null || pkgs+=(iproute2)
if [ ${#pkgs[@]} -gt 0 ]; then
  pgdr_log "installing ${pkgs[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
if [ -z "${PGDR_BIN:-}" ]; then
  pgdr_log "building pgdr (release)"
  cargo build --quiet --release --bin pgdr
  PGDR_BIN="${CARGO_TARGET_DIR:-target}/release/pgdr"
fi
WORK=$(mktemp -d /tmp/pgdr-bench-auto.XXXXXX)
chmod 755 "$WORK"
install -m 755 "$PGDR_BIN" "$WORK/pgdr"
PGDR=$WORK/pgdr
BIN=$(pg_bindir)
BUCKET=pgdr-bench-auto
MOTO_PID=
NS=
cleanup() {
  teardown
  [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null || true
  if [ -n "${PGDR_BENCH_KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# What one run started, stopped by teardown.
KILL_PIDS=()
DATA_DIRS=()
teardown() {
  local pid d
  for pid in "${KILL_PIDS[@]}"; do
    pkill -9 -P "$pid" 2>/dev/null || true
    kill -9 "$pid" 2>/dev/null || true
  done
  for d in "${DATA_DIRS[@]}"; do
    # A killed postmaster leaves its pid file: pg_ctl fails then, which is fine.
    if [ -f "$d/postmaster.pid" ]; then
      runuser -u postgres -- "$BIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
    fi
  done
  if [ -n "$NS" ]; then
    ip netns del "$NS" 2>/dev/null || true
    ip link del "$HOST_IF" 2>/dev/null || true
  fi
  KILL_PIDS=() DATA_DIRS=() NS=
  sleep 0.5
}

now() { date +%s.%N; }
elapsed() {
  python3 -c "import sys; print('never' if 'never' in sys.argv else f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"
}
postmaster_pid() { head -1 "$1/postmaster.pid"; }

# try_write HOST PORT [NETNS]: one INSERT, true when it was acknowledged.
try_write() {
  local ns=()
  [ -n "${3:-}" ] && ns=(ip netns exec "$3")
  PGCONNECT_TIMEOUT=2 "${ns[@]}" psql -h "$1" -p "$2" -U postgres -d postgres -XAtqc \
    "INSERT INTO w (id) VALUES (-1)" >/dev/null 2>&1
}

# first_write HOST PORT: polls an INSERT every 0.1 s (up to 120 s); prints when
# the attempt that succeeded began.
first_write() {
  local began
  for _ in $(seq 1 1200); do
    began=$(now)
    if try_write "$1" "$2"; then echo "$began"; return 0; fi
    sleep 0.1
  done
  echo "never" && return 1
}

# A network namespace for the isolated primary (a new one each call: a
# deleted one's interfaces go away in the background): NS, HOST_IF,
# HOST_ADDR, NS_ADDR.
NS_SEQ=0
make_ns() {
  NS_SEQ=$((NS_SEQ + 1))
  while ip link show "pbh$NS_SEQ" >/dev/null 2>&1; do NS_SEQ=$((NS_SEQ + 1)); done
  local n=$NS_SEQ
  NS="pgdr-bench-$n"
  HOST_IF="pbh$n"
  HOST_ADDR="10.230.$n.1"
  NS_ADDR="10.230.$n.2"
  ip netns add "$NS"
  ip link add "$HOST_IF" type veth peer name "pbn$n"
  ip link set "pbn$n" netns "$NS"
  ip addr add "$HOST_ADDR/24" dev "$HOST_IF"
  ip link set "$HOST_IF" up
  ip netns exec "$NS" ip addr add "$NS_ADDR/24" dev "pbn$n"
  ip netns exec "$NS" ip link set "pbn$n" up
  ip netns exec "$NS" ip link set lo up
}

# writer NETNS HOST PORT FILE STOPFILE: inserts 1, 2, … every 0.1 s from
# inside NETNS; appends "id time" for each acknowledged one.
writer() {
  local i=0 began
  while [ ! -e "$5" ]; do
    i=$((i + 1))
    began=$(now)
    if PGCONNECT_TIMEOUT=2 ip netns exec "$1" psql -h "$2" -p "$3" -U postgres -d postgres -XAtqc \
      "INSERT INTO w (id) VALUES ($i)" >/dev/null 2>&1; then
      echo "$i $(now)" >>"$4"
    fi
    python3 -c "import time,sys; time.sleep(max(0, 0.1 - (time.time() - float(sys.argv[1]))))" "$began"
  done
}

# partition_counts ACKED CUT FIRST NEW_IDS: "window after_cut lost split".
partition_counts() {
  python3 - "$@" <<'EOF'
import sys
acked = [(int(i), float(t)) for i, t in (l.split() for l in open(sys.argv[1]) if l.strip())]
cut, first = float(sys.argv[2]), float(sys.argv[3])
on_new = {int(l) for l in open(sys.argv[4]) if l.strip()}
after = [(i, t) for i, t in acked if t > cut]
window = max((t - cut for _, t in after), default=0.0)
lost = sum(1 for i, _ in acked if i not in on_new)
split = sum(1 for _, t in acked if t >= first)
print(f"{window:.1f} {len(after)} {lost} {split}")
EOF
}

# ---------------------------------------------------------------- pgdr
# pgdr_pair NAME BUDGET [NETNS]: a primary (in NETNS when given) and a
# standby on 127.0.0.2, the plan file NAME/plan.yaml with `failover`, applied.
# Sets D, P, S, PHOST.
pgdr_pair() {
  D="$WORK/$1"
  mkdir -p "$D"
  chmod 755 "$D"
  P=$(free_port)
  S=$(free_port)
  PHOST=127.0.0.1
  printf 'wal_log_hints = on\n' >"$D/extra.conf"
  mkdir -p "$D/pg"
  if [ -n "${3:-}" ]; then
    PHOST=$NS_ADDR
    echo "$NS_ADDR" >"$D/pg/listen"
    printf 'host all all %s/32 trust\nhost replication all %s/32 trust\nhost all all %s/32 trust\n' \
      "$HOST_ADDR" "$HOST_ADDR" "$NS_ADDR" >"$D/pg/hba"
  fi
  PGDR_NETNS=${3:-} start_pg "$D/pg" "$P" "$D/extra.conf"
  DATA_DIRS+=("$D/pg/data")
  start_standby "$P" "$D/sb" "$S" bench_b 127.0.0.2 "$PHOST"
  DATA_DIRS+=("$D/sb/data")
  psql -h "$PHOST" -p "$P" -U postgres -XAtqc "CREATE TABLE w (id bigint, at timestamptz DEFAULT now())" postgres
  cat >"$D/plan.yaml" <<EOF
version: 1
cluster: $1
tier: saas
objectives: { rpo: 5m, rto: 30m }
aws: { region: us-east-1 }
primary:
  postgres: "host=$PHOST port=$P user=postgres dbname=postgres sslmode=disable"
archive:
  bucket: $BUCKET
  prefix: $1/
  archiver: external
standbys:
  - name: bench-b
    postgres: "host=127.0.0.2 port=$S user=postgres dbname=postgres sslmode=disable"
    slot: bench_b
endpoint:
  hosted_zone: bench.internal.
  record: $1.bench.internal.
  ttl: 30s
failover:
  automatic: true
  after: ${2}s
  guard: true
EOF
  "$PGDR" apply "$D/plan.yaml" --auto-approve >/dev/null
}

# pgdr_agents NAME [NETNS]: the guard (in NETNS, reaching moto over the link)
# and a watcher; waits until both hold their leases and the cluster is healthy.
pgdr_agents() {
  local ns=() endpoint=$AWS_ENDPOINT_URL
  if [ -n "${2:-}" ]; then
    ns=(ip netns exec "$2")
    endpoint="http://$HOST_ADDR:$MOTOPORT"
  fi
  AWS_ENDPOINT_URL=$endpoint "${ns[@]}" "$PGDR" watch --guard "$D/plan.yaml" 2>"$D/guard.log" &
  GUARD_PID=$!
  KILL_PIDS+=("$GUARD_PID")
  "$PGDR" watch "$D/plan.yaml" 2>"$D/watch.log" &
  KILL_PIDS+=($!)
  for _ in $(seq 1 300); do
    if aws s3 cp "s3://$BUCKET/$1/leases/$1.json" - 2>/dev/null |
      python3 -c 'import json,sys; l=json.load(sys.stdin); sys.exit(0 if l.get("guard") and l.get("watcher") else 1)' &&
      grep -q healthy "$D/watch.log"; then
      return 0
    fi
    sleep 0.1
  done
  echo "pgdr's agents did not start; see $D" >&2
  return 1
}

# endpoint_insync NAME: when the endpoint was in sync on the new primary (Unix
# seconds): the end of the journal's move-endpoint step, which waits for
# INSYNC — read from the bucket once the journal is there (polling the aws
# CLI would add its own second to every figure).
endpoint_insync() {
  local key
  for _ in $(seq 1 600); do
    key=$(aws s3api list-objects-v2 --bucket "$BUCKET" --prefix "$1/failovers/" --query 'Contents[-1].Key' --output text 2>/dev/null)
    if [ -n "$key" ] && [ "$key" != None ]; then
      aws s3 cp "s3://$BUCKET/$key" - | python3 -c '
import json, sys
steps = {s["step"]: s for s in json.load(sys.stdin)["steps"]}
s = steps.get("move-endpoint")
print((s["started_unix_ms"] + s["duration_ms"]) / 1000 if s and s["outcome"] == "done" else "never")'
      return 0
    fi
    sleep 0.2
  done
  echo never
}

pgdr_host_death() {
  local name="pgdr-death-$1-$2" killed written moved
  pgdr_pair "$name" "$1"
  pgdr_agents "$name"
  sleep 3
  kill -9 "$GUARD_PID"
  kill -9 "$(postmaster_pid "$D/pg/data")"
  killed=$(now)
  written=$(first_write 127.0.0.2 "$S") || true
  moved=$(endpoint_insync "$name")
  printf '%-8s %6ss %4s %10s %10s\n' pgdr "$1" "$2" "$(elapsed "$killed" "$written")" "$(elapsed "$killed" "$moved")"
  echo "pgdr $1 death $(elapsed "$killed" "$written") $(elapsed "$killed" "$moved")" >>"$WORK/figures"
  teardown
}

pgdr_partition() {
  local name="pgdr-part-$1-$2" cut first
  make_ns
  pgdr_pair "$name" "$1" "$NS"
  pgdr_agents "$name" "$NS"
  writer "$NS" "$NS_ADDR" "$P" "$D/acked" "$D/stop" &
  local writing=$!
  sleep 3
  ip link set "$HOST_IF" down
  cut=$(now)
  first=$(first_write 127.0.0.2 "$S") || true
  sleep 3
  touch "$D/stop"
  wait "$writing" || true
  psql -h 127.0.0.2 -p "$S" -U postgres -XAtqc "SELECT id FROM w WHERE id > 0" postgres >"$D/on_new"
  read -r window after lost split < <(partition_counts "$D/acked" "$cut" "$first" "$D/on_new")
  printf '%-8s %6ss %4s %10s %10s %8s %8s %8s\n' pgdr "$1" "$2" "$(elapsed "$cut" "$first")" "$window" "$after" "$lost" "$split"
  echo "pgdr $1 partition $(elapsed "$cut" "$first") $window $after $lost $split" >>"$WORK/figures"
  teardown
}

# ---------------------------------------------------------------- Patroni
# patroni_cluster NAME BUDGET [NETNS]: etcd, n1 (in NETNS when given) and n2
# on 127.0.0.2, as ../shared/peers/patroni/README.md runs them. Sets D,
# N1HOST, P1, P2, N1PID (runuser's), and waits until n2 streams.
patroni_cluster() {
  local ttl=$2 loop retry etcd_host=127.0.0.1 e1 e2 i
  case $ttl in
    30) loop=10 retry=10 ;;
    10) loop=2 retry=3 ;;
    *) echo "Patroni settings are known for budgets 30 and 10" >&2; return 1 ;;
  esac
  D="$WORK/$1"
  mkdir -p "$D"
  chown postgres: "$D"
  e1=$(free_port)
  e2=$(free_port)
  P1=$(free_port)
  P2=$(free_port)
  N1HOST=127.0.0.1
  local clients="http://127.0.0.1:$e1"
  if [ -n "${3:-}" ]; then
    # n1 in its namespace reaches etcd over the link.
    N1HOST=$NS_ADDR
    etcd_host=$HOST_ADDR
    clients="$clients,http://$HOST_ADDR:$e1"
  fi
  etcd --name e1 --data-dir "$D/etcd" \
    --listen-client-urls "$clients" --advertise-client-urls "http://127.0.0.1:$e1" \
    --listen-peer-urls "http://127.0.0.1:$e2" --initial-advertise-peer-urls "http://127.0.0.1:$e2" \
    --initial-cluster "e1=http://127.0.0.1:$e2" >"$D/etcd.log" 2>&1 &
  KILL_PIDS+=($!)
  for i in 1 2; do
    local host=127.0.0.$i port=$P1 hosts=127.0.0.1:$e1 api
    api=$(free_port)
    [ "$i" = 2 ] && port=$P2
    [ "$i" = 1 ] && host=$N1HOST && hosts=$etcd_host:$e1
    cat >"$D/n$i.yml" <<EOF
scope: $1
name: n$i
restapi: {listen: '$host:$api', connect_address: '$host:$api'}
etcd3: {hosts: '$hosts', use_proxies: true}  # no discovery: n1 reaches etcd at another address
bootstrap:
  dcs:
    ttl: $ttl
    loop_wait: $loop
    retry_timeout: $retry
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      parameters: {wal_level: replica, hot_standby: "on", wal_log_hints: "on"}
  initdb: [{encoding: UTF8}, data-checksums]
  pg_hba:
    - local all all trust
    - host replication all 127.0.0.1/8 trust
    - host all all 127.0.0.1/8 trust
    - host replication all 10.230.0.0/16 trust
    - host all all 10.230.0.0/16 trust
postgresql:
  listen: '$host:$port'
  connect_address: '$host:$port'
  data_dir: $D/n$i
  bin_dir: $BIN
  pgpass: $D/pgpass$i
  authentication:
    superuser: {username: postgres, password: x}
    replication: {username: replicator, password: x}
  parameters: {unix_socket_directories: '$D'}
EOF
  done
  chown postgres: "$D"/n?.yml
  local ns=()
  [ -n "${3:-}" ] && ns=(ip netns exec "$3")
  "${ns[@]}" runuser -u postgres -- patroni "$D/n1.yml" >"$D/n1.log" 2>&1 &
  N1PID=$!
  KILL_PIDS+=("$N1PID")
  DATA_DIRS+=("$D/n1" "$D/n2")
  for _ in $(seq 1 600); do
    psql -h "$N1HOST" -p "$P1" -U postgres -XAtqc "SELECT NOT pg_is_in_recovery()" postgres 2>/dev/null | grep -q t && break
    sleep 0.1
  done
  psql -h "$N1HOST" -p "$P1" -U postgres -XAtqc "CREATE TABLE w (id bigint, at timestamptz DEFAULT now())" postgres
  runuser -u postgres -- patroni "$D/n2.yml" >"$D/n2.log" 2>&1 &
  KILL_PIDS+=($!)
  for _ in $(seq 1 1200); do
    [ "$(psql -h "$N1HOST" -p "$P1" -U postgres -XAtqc "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'" postgres 2>/dev/null)" = 1 ] &&
      [ "$(psql -h 127.0.0.2 -p "$P2" -U postgres -XAtqc "SELECT count(*) FROM pg_class WHERE relname = 'w'" postgres 2>/dev/null)" = 1 ] && return 0
    sleep 0.1
  done
  echo "Patroni's n2 never streamed; see $D" >&2
  return 1
}

patroni_host_death() {
  local name="patroni-death-$1-$2" killed written
  patroni_cluster "$name" "$1"
  sleep 3
  # Host death: Patroni itself (runuser's child) and the postmaster.
  pkill -9 -P "$N1PID"
  kill -9 "$(postmaster_pid "$D/n1")"
  killed=$(now)
  written=$(first_write 127.0.0.2 "$P2") || true
  printf '%-8s %6ss %4s %10s %10s\n' Patroni "$1" "$2" "$(elapsed "$killed" "$written")" "-"
  echo "patroni $1 death $(elapsed "$killed" "$written")" >>"$WORK/figures"
  teardown
}

patroni_partition() {
  local name="patroni-part-$1-$2" cut first
  make_ns
  patroni_cluster "$name" "$1" "$NS"
  writer "$NS" "$NS_ADDR" "$P1" "$D/acked" "$D/stop" &
  local writing=$!
  sleep 3
  ip link set "$HOST_IF" down
  cut=$(now)
  first=$(first_write 127.0.0.2 "$P2") || true
  sleep 3
  touch "$D/stop"
  wait "$writing" || true
  psql -h 127.0.0.2 -p "$P2" -U postgres -XAtqc "SELECT id FROM w WHERE id > 0" postgres >"$D/on_new"
  read -r window after lost split < <(partition_counts "$D/acked" "$cut" "$first" "$D/on_new")
  printf '%-8s %6ss %4s %10s %10s %8s %8s %8s\n' Patroni "$1" "$2" "$(elapsed "$cut" "$first")" "$window" "$after" "$lost" "$split"
  echo "patroni $1 partition $(elapsed "$cut" "$first") $window $after $lost $split" >>"$WORK/figures"
  teardown
}

# ---------------------------------------------------------------- runs
MOTOPORT=$(free_port)
# On every address: the guard in its namespace reaches it over the link.
python3 scripts/moto_server.py -H 0.0.0.0 -p "$MOTOPORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
use_moto_env "$MOTOPORT"
for _ in $(seq 1 100); do aws s3 ls >/dev/null 2>&1 && break; sleep 0.1; done
aws route53 create-hosted-zone --name bench.internal. --caller-reference bench >/dev/null
export PGDR_LOCK_DIR="$WORK/locks"

pgdr_log "host death: $RUNS runs per tool and budget ($BUDGETS s)"
printf '%-8s %7s %4s %10s %10s\n' tool budget run "write (s)" "dns (s)"
for budget in $BUDGETS; do
  for run in $(seq 1 "$RUNS"); do
    pgdr_host_death "$budget" "$run"
    patroni_host_death "$budget" "$run"
  done
done

pgdr_log "partition: $PARTITION_RUNS runs per tool and budget; a writer beside the old primary every 0.1 s"
printf '%-8s %7s %4s %10s %10s %8s %8s %8s\n' tool budget run "write (s)" "acked (s)" "acked" lost split
for budget in $BUDGETS; do
  for run in $(seq 1 "$PARTITION_RUNS"); do
    pgdr_partition "$budget" "$run"
    patroni_partition "$budget" "$run"
  done
done

python3 - "$WORK/figures" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
def med(tool, budget, case, col):
    xs = [float(r[col]) for r in rows if r[0] == tool and r[1] == budget and r[2] == case and r[col] != "never"]
    return statistics.median(xs) if xs else float("nan")
print("\nmedians and ratios (pgdr / Patroni)")
for budget in sorted({r[1] for r in rows}, key=int, reverse=True):
    pw, pd, tw = med("pgdr", budget, "death", 3), med("pgdr", budget, "death", 4), med("patroni", budget, "death", 3)
    print(f"  {budget}s host death: pgdr first write {pw:.1f}s, endpoint {pd:.1f}s; Patroni first write {tw:.1f}s; "
          f"ratio (pgdr with DNS / Patroni) {pd / tw:.2f} (target <= 0.9)")
    pa, ta = med("pgdr", budget, "partition", 4), med("patroni", budget, "partition", 4)
    pl, tl = med("pgdr", budget, "partition", 5), med("patroni", budget, "partition", 5)
    ps = max((int(r[7]) for r in rows if r[0] == "pgdr" and r[1] == budget and r[2] == "partition"), default=0)
    ts = max((int(r[7]) for r in rows if r[0] == "patroni" and r[1] == budget and r[2] == "partition"), default=0)
    print(f"  {budget}s partition: the old primary acknowledged writes for {pa:.1f}s ({pl:.0f}) under pgdr, "
          f"{ta:.1f}s ({tl:.0f}) under Patroni; ratio {pa / ta:.2f} (target <= 0.5); "
          f"split-brain writes: pgdr {ps}, Patroni {ts}")
EOF
