# pgBackRest as the benchmark peer, against the same moto as pgdr (the recipe
# of ../shared/peers/pgbackrest/README.md): pgBackRest 2.45 speaks only HTTPS
# to S3 and moto's own TLS breaks on uploads, so stunnel4 terminates TLS in
# front of moto's plain HTTP port. Also shared timing helpers. Sourced by
# bench/wal-push.sh and bench/backup.sh after scripts/lib.sh; not run.

# Installs pgBackRest, stunnel4, GNU time (peak RSS) and the zstd CLI (an
# independent decompressor) when missing (Debian packages).
ensure_peer_deps() {
  local pkgs=()
  command -v pgbackrest >/dev/null || pkgs+=(pgbackrest)
  command -v stunnel4 >/dev/null || pkgs+=(stunnel4)
  [ -x /usr/bin/time ] || pkgs+=(time)
  command -v zstd >/dev/null || pkgs+=(zstd)
  if [ ${#pkgs[@]} -gt 0 ]; then
    pgdr_log "installing ${pkgs[*]} (apt-get)"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${pkgs[@]}" >/dev/null
  fi
}

# start_stunnel DIR TLS_PORT MOTO_PORT: TLS on TLS_PORT in front of moto;
# DIR/ca.pem is the CA to trust (SSL_CERT_FILE, AWS_CA_BUNDLE).
start_stunnel() {
  local dir=$1 tls=$2 moto=$3
  mkdir -p "$dir"
  # A throw-away CA and a server certificate it signs, with the IP in
  # subjectAltName: pgdr (rustls refuses a self-signed end certificate) and the
  # aws CLI verify it through SSL_CERT_FILE / AWS_CA_BUNDLE, so every tool pays
  # for TLS as it would against S3.
  openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj /CN=bench-ca \
    -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
    -keyout "$dir/key.pem" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$dir/ext.cnf"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
    -CAcreateserial -days 3 -extfile "$dir/ext.cnf" -out "$dir/cert.pem" 2>/dev/null
  cat "$dir/cert.pem" "$dir/key.pem" >"$dir/stunnel.pem"
  chmod 600 "$dir/stunnel.pem"
  cat >"$dir/stunnel.conf" <<EOC
foreground = yes
pid =
[s3tls]
accept = 127.0.0.1:$tls
connect = 127.0.0.1:$moto
cert = $dir/stunnel.pem
EOC
  chmod 644 "$dir/ca.pem"
  stunnel4 "$dir/stunnel.conf" >"$dir/stunnel.log" 2>&1 &
  STUNNEL_PID=$!
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$tls") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "stunnel4 did not start; see $dir/stunnel.log" >&2
  return 1
}

# write_pgbackrest_conf DIR BUCKET TLS_PORT PGDATA PGPORT SOCKETDIR COMPRESS:
# DIR/pgbackrest.conf for stanza `demo`, its log/lock/spool folders owned by
# the user PostgreSQL runs as. The emulator's keys are not secrets.
write_pgbackrest_conf() {
  local dir=$1 bucket=$2 tls=$3 pgdata=$4 pgport=$5 socket=$6 compress=$7
  mkdir -p "$dir/log" "$dir/lock" "$dir/spool"
  cat >"$dir/pgbackrest.conf" <<EOC
[global]
repo1-type=s3
repo1-path=/pgbackrest
repo1-s3-bucket=$bucket
repo1-s3-endpoint=127.0.0.1
repo1-storage-port=$tls
repo1-s3-region=us-east-1
repo1-s3-key=testing
repo1-s3-key-secret=testing
repo1-s3-uri-style=path
repo1-storage-verify-tls=n
compress-type=$compress
log-path=$dir/log
lock-path=$dir/lock
spool-path=$dir/spool
log-level-console=warn
start-fast=y

[demo]
pg1-path=$pgdata
pg1-port=$pgport
pg1-socket-path=$socket
pg1-user=postgres
EOC
  [ "$(id -u)" -eq 0 ] && chown -R postgres: "$dir"
  return 0
}

now() { date +%s.%N; }
# elapsed START: seconds since START, 2 decimals.
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# ratio A B: A / B, 1 decimal.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "n/a" }'; }

# requests_since LOG LINE: HTTP requests moto logged after line LINE of LOG.
requests_since() { tail -n +"$(($2 + 1))" "$1" | grep -c '" [0-9][0-9][0-9] ' || true; }
log_lines() { wc -l <"$1"; }

# cpu_ticks PID: user + system CPU time of a process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# machine_ticks: "busy total" clock ticks of all CPUs together since boot.
machine_ticks() { awk '/^cpu / { busy = $2 + $3 + $4 + $7 + $8; print busy, busy + $5 + $6 }' /proc/stat; }

# machine_busy "BUSY TOTAL" (from machine_ticks): percent of all CPUs busy since then.
machine_busy() {
  awk -v a="$1" -v b="$(machine_ticks)" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.0f", 100 * (y[1] - x[1]) / (y[2] - x[2]) }'
}

# bench_start NAME BUCKET: what every benchmark starts with. Installs what is
# missing, builds pgdr (release; PGDR_BIN overrides), makes the work folder
# WORK (kept with PGDR_BENCH_KEEP=1), starts moto with stunnel4 in front and
# creates BUCKET, then points every client at TLS. Sets WORK, PGPORT, TLSPORT,
# MOTO_PID, STUNNEL_PID and PGDR (pgdr copied where the postgres user can run
# it). Everything it starts is stopped on exit.
bench_start() {
  local name=$1 bucket=$2 motoport
  ensure_deps
  ensure_peer_deps
  if [ -z "${PGDR_BIN:-}" ]; then
    pgdr_log "building pgdr (release)"
    cargo build --quiet --release --bin pgdr
    PGDR_BIN="${CARGO_TARGET_DIR:-target}/release/pgdr"
  fi
  WORK=$(mktemp -d "/tmp/pgdr-bench-$name.XXXXXX")
  chmod 755 "$WORK"
  MOTO_PID= STUNNEL_PID=
  trap bench_cleanup EXIT
  motoport=$(free_port)
  TLSPORT=$(free_port)
  PGPORT=$(free_port)
  start_moto "$motoport" "$WORK/moto.log"
  start_stunnel "$WORK/tls" "$TLSPORT" "$motoport"
  use_moto_env "$motoport"
  aws s3api create-bucket --bucket "$bucket" >/dev/null
  # From here on every client (and the PostgreSQL server's archive_command) talks TLS.
  export AWS_ENDPOINT_URL="https://127.0.0.1:$TLSPORT"
  export SSL_CERT_FILE="$WORK/tls/ca.pem" AWS_CA_BUNDLE="$WORK/tls/ca.pem"
  mkdir -p "$WORK/bin"
  install -m 755 "$PGDR_BIN" "$WORK/bin/pgdr"
  PGDR="$WORK/bin/pgdr"
}

bench_cleanup() {
  stop_pg "$WORK/pg"
  [ -n "$STUNNEL_PID" ] && kill "$STUNNEL_PID" 2>/dev/null || true
  [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null || true
  # PGDR_BENCH_KEEP=1 keeps the logs (the server's holds every archive_command's).
  if [ -n "${PGDR_BENCH_KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}

# measure NAME MARK COMMAND...: runs COMMAND under GNU time; sets <NAME>_S,
# <NAME>_RSS_MB and <NAME>_REQ (moto requests naming MARK during the run).
measure() {
  local name=$1 mark=$2 line t
  shift 2
  line=$(log_lines "$WORK/moto.log")
  t=$(now)
  /usr/bin/time -f '%M' -o "$WORK/$name.rss" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" \
    || { cat "$WORK/$name.err" >&2; exit 1; }
  printf -v "${name}_S" '%s' "$(elapsed "$t")"
  printf -v "${name}_RSS_MB" '%s' "$(awk '{ printf "%.0f", $1 / 1024 }' "$WORK/$name.rss")"
  printf -v "${name}_REQ" '%s' "$(tail -n +"$((line + 1))" "$WORK/moto.log" | grep '" [0-9][0-9][0-9] ' | grep -c "$mark" || true)"
}

psql_pg() { psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -Atc "$1"; }

# bench_pgbench_cluster SCALE BUCKET: a PostgreSQL server on PGPORT whose WAL
# PostgreSQL hands to both pgdr (s3://BUCKET/pgdr/) and pgBackRest (stanza
# demo, s3://BUCKET/pgbackrest), with a pgbench database of SCALE, archived;
# and the plan file $WORK/bench.yaml for pgdr. Sets PGDATA, PGBR_CONF,
# DB_BYTES and AS_PG (run as the server's user: a prefix GNU time can run).
bench_pgbench_cluster() {
  local scale=$1 bucket=$2
  export PGDR_LOCK_DIR="$WORK/locks" PGDR_SCRATCH_DIR="$WORK/drills"
  AS_PG=()
  [ "$(id -u)" -eq 0 ] && AS_PG=(runuser -u postgres --)
  cat >"$WORK/pg.conf" <<EOC
archive_mode = on
archive_command = ''
max_wal_size = 4GB
EOC
  start_pg "$WORK/pg" "$PGPORT" "$WORK/pg.conf"
  PGDATA="$WORK/pg/data"
  write_pgbackrest_conf "$WORK/pgbackrest" "$bucket" "$TLSPORT" "$PGDATA" "$PGPORT" "$WORK/pg" zst
  PGBR_CONF="$WORK/pgbackrest/pgbackrest.conf"
  pg_run pgbackrest --config="$PGBR_CONF" --stanza=demo stanza-create >/dev/null
  # Both tools need the backup's WAL archived: PostgreSQL hands each segment to both.
  psql_pg "ALTER SYSTEM SET archive_command = '$PGDR wal-push s3://$bucket/pgdr/ %p && pgbackrest --config=$PGBR_CONF --stanza=demo archive-push %p'" >/dev/null
  psql_pg "SELECT pg_reload_conf()" >/dev/null

  pgdr_log "pgbench -i -s $scale"
  pgbench -h 127.0.0.1 -p "$PGPORT" -U postgres -i -s "$scale" -q postgres 2>&1 | tail -1 >&2
  psql_pg "CHECKPOINT; SELECT pg_switch_wal()" >/dev/null
  pgdr_log "waiting for the archiver to catch up"
  while [ "$(pg_run find "$PGDATA/pg_wal/archive_status" -name '*.ready' | wc -l)" -gt 0 ]; do sleep 0.5; done
  DB_BYTES=$(psql_pg "SELECT pg_database_size('postgres')")
  [ "$(psql_pg "SELECT failed_count FROM pg_stat_archiver")" = 0 ] || { echo "archiving failed; see $WORK/pg/server.log" >&2; exit 1; }

  cat >"$WORK/bench.yaml" <<YAML
version: 1
cluster: bench
tier: saas
objectives: { rpo: 5m, rto: 30m }
aws: { region: us-east-1 }
primary:
  postgres: "host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres sslmode=disable"
archive:
  bucket: $bucket
  prefix: pgdr/
  pgdr_path: $PGDR
  base_backups: { every: 1d, keep: 7 }
drill:
  every: 7d
  checks:
    - name: accounts-present
      sql: "select count(*) = $((scale * 100000)) from pgbench_accounts"
YAML
}

# collect_segments MAKE TAKE: pgbench until the server (archive_command empty,
# so every finished segment waits as .ready) has MAKE segments waiting, then
# copies the TAKE oldest out of pg_wal into $WORK/segs. Sets SEGS (their
# names) and BYTES. Needs PGDATA and PGPORT.
collect_segments() {
  local make=$1 take=$2 ready name
  pgdr_log "generating at least $make WAL segments with pgbench"
  while [ "$(pg_run find "$PGDATA/pg_wal/archive_status" -name '????????????????????????.ready' | wc -l)" -lt "$make" ]; do
    pgbench -h 127.0.0.1 -p "$PGPORT" -U postgres -i -s 5 -q postgres >/dev/null 2>&1
    psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -Atc "SELECT pg_switch_wal()" >/dev/null
  done
  mkdir -p "$WORK/segs"
  for ready in $(pg_run find "$PGDATA/pg_wal/archive_status" -name '????????????????????????.ready' | sort | head -n "$take"); do
    name=$(basename "$ready" .ready)
    pg_run cat "$PGDATA/pg_wal/$name" >"$WORK/segs/$name"
  done
  chmod -R a+rX "$WORK/segs"
  SEGS=$(ls "$WORK/segs")
  BYTES=$(du -cb "$WORK/segs"/* | tail -1 | cut -f1)
}
