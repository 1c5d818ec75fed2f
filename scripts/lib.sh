# Shared shell helpers for scripts/sandbox, scripts/test and bench/: install what
# a fresh Debian machine lacks, and start throw-away PostgreSQL and moto servers on
# loopback. Sourced, not run.

# The repository root, and the project-local virtual environment the Python test
# tools (moto, the aws CLI) live in, installed from scripts/requirements-tools.txt.
# PGDR_TOOLS_DIR may move it outside the clone (a CI cache); it is rebuilt when
# the requirements file changes.
PGDR_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGDR_TOOLS_DIR=${PGDR_TOOLS_DIR:-$PGDR_REPO/.tools}
PGDR_VENV=$PGDR_TOOLS_DIR/venv

pgdr_log() { printf '==> %s\n' "$*" >&2; }

# Runs a command as root (directly, or through sudo when we are not root).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

pg_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  return 1
}

# Installs what is missing: the PostgreSQL server and client tools from Debian's
# packages (apt-get), and the Python test tools into the project-local venv
# (never pip --user or --break-system-packages into the user's own Python).
# `ensure_deps test` adds what only the test suite uses: the validators from
# the npm registry (scripts/npm-tools), with Debian's npm to fetch them.
ensure_deps() {
  local for_tests=${1:-}
  local apt_pkgs=()
  pg_bindir >/dev/null || apt_pkgs+=(postgresql)
  command -v openssl >/dev/null || apt_pkgs+=(openssl)
  command -v psql >/dev/null || apt_pkgs+=(postgresql-client)
  # Tests check the digest pgdr keeps with archived WAL with an independent tool.
  command -v xxhsum >/dev/null || apt_pkgs+=(xxhash)
  # The venv is made by Debian's own python3, which needs python3-venv for it.
  [ -x /usr/bin/python3 ] || apt_pkgs+=(python3)
  /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || apt_pkgs+=(python3-venv)
  if [ "$for_tests" = test ]; then
    command -v npm >/dev/null || apt_pkgs+=(npm)
    # The partition tests put a primary on a host of its own (ip netns).
    command -v ip >/dev/null || apt_pkgs+=(iproute2)
    # promtool checks pgdr's metrics and its alert rules.
    command -v promtool >/dev/null || apt_pkgs+=(prometheus)
    # The package test: lintian judges the .deb, systemd-analyze its units,
    # man reads its pages, dpkg-shlibdeps (dpkg-dev) finds its dependencies.
    command -v lintian >/dev/null || apt_pkgs+=(lintian)
    command -v systemd-analyze >/dev/null || apt_pkgs+=(systemd)
    command -v man >/dev/null || apt_pkgs+=(man-db)
    command -v dpkg-shlibdeps >/dev/null || apt_pkgs+=(dpkg-dev)
    # cron's own parser judges the crontab example (examples/cron).
    command -v crontab >/dev/null || apt_pkgs+=(cron)
    # Active-active nodes replicate through pglogical (issue 31).
    local bindir
    bindir=$(pg_bindir 2>/dev/null || true)
    if [ -n "$bindir" ] && [ ! -f "$(dirname "$bindir")/lib/pglogical.so" ]; then
      apt_pkgs+=("postgresql-$(basename "$(dirname "$bindir")")-pglogical")
    fi
  fi
  if [ ${#apt_pkgs[@]} -gt 0 ]; then
    pgdr_log "installing ${apt_pkgs[*]} (apt-get)"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${apt_pkgs[@]}" >/dev/null
  fi
  ensure_tools_venv
  if [ "$for_tests" = test ]; then
    ensure_npm_tools
    ensure_cargo_deb
  fi
  pg_bindir >/dev/null || { echo "PostgreSQL server binaries are still missing after install" >&2; return 1; }
}

# The Python test tools, pinned, in $PGDR_VENV; its bin/ goes first on PATH so
# `python3`, `moto_server` and `aws` are the venv's from here on.
ensure_tools_venv() {
  local req=$PGDR_REPO/scripts/requirements-tools.txt stamp=$PGDR_VENV/.requirements
  if ! cmp -s "$req" "$stamp" 2>/dev/null || [ ! -x "$PGDR_VENV/bin/moto_server" ]; then
    pgdr_log "installing the test tools (moto, aws CLI) into $PGDR_VENV from scripts/requirements-tools.txt"
    rm -rf "$PGDR_VENV"
    mkdir -p "$PGDR_TOOLS_DIR"
    /usr/bin/python3 -m venv "$PGDR_VENV"
    "$PGDR_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    cp "$req" "$stamp"
  fi
  export PATH="$PGDR_VENV/bin:$PATH"
  hash -r
  command -v moto_server >/dev/null || { echo "moto_server is missing from $PGDR_VENV after install" >&2; return 1; }
}

# cargo-deb (crates.io), pinned, built into $PGDR_TOOLS_DIR/cargo: the Debian
# package's builder (scripts/package). Its bin/ goes on PATH.
CARGO_DEB_VERSION=3.8.0
ensure_cargo_deb() {
  local root=$PGDR_TOOLS_DIR/cargo
  if [ "$("$root/bin/cargo-deb" --version 2>/dev/null | awk '{print $2}')" != "$CARGO_DEB_VERSION" ]; then
    pgdr_log "installing cargo-deb $CARGO_DEB_VERSION into $root (cargo install)"
    # Its own target folder: never the project's, whose artifacts it would evict.
    CARGO_TARGET_DIR="$PGDR_TOOLS_DIR/cargo-build" cargo install --quiet --locked \
      --version "$CARGO_DEB_VERSION" --root "$root" cargo-deb
    rm -rf "$PGDR_TOOLS_DIR/cargo-build"
  fi
  export PATH="$root/bin:$PATH"
}

# The validators from the npm registry (Microsoft's SARIF multitool), pinned by
# scripts/npm-tools/package-lock.json, installed with `npm ci` into
# $PGDR_TOOLS_DIR/npm: nothing global. `--ignore-scripts` skips the package's one
# install script (a chmod), done here instead.
ensure_npm_tools() {
  local src=$PGDR_REPO/scripts/npm-tools dir=$PGDR_TOOLS_DIR/npm
  local bin=$dir/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool
  if ! cmp -s "$src/package-lock.json" "$dir/package-lock.json" 2>/dev/null || [ ! -f "$bin" ]; then
    pgdr_log "installing the SARIF multitool into $dir from scripts/npm-tools"
    rm -rf "$dir"
    mkdir -p "$dir"
    cp "$src/package.json" "$src/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  fi
  chmod u+x "$bin"
  # A self-contained .NET program: without this it needs libicu, which a fresh
  # Debian may lack; the validator needs no culture data.
  export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
  export PGDR_SARIF_MULTITOOL=$bin
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# PostgreSQL refuses to run as root: run its tools as `postgres` then.
# pg_run CMD...: CMD as the server's user (postgres when run as root); inside the
# network namespace PGDR_NETNS when that is set (a test's other host).
pg_run() {
  local ns=()
  [ -n "${PGDR_NETNS:-}" ] && ns=(ip netns exec "$PGDR_NETNS")
  if [ "$(id -u)" -eq 0 ]; then "${ns[@]}" runuser -u postgres -- "$@"; else "${ns[@]}" "$@"; fi
}

# start_pg DIR PORT [CONF]: a fresh cluster in DIR on 127.0.0.1:PORT (or DIR/listen's
# address), trust auth on loopback; the lines of the file CONF, if given, are added to postgresql.conf first.
# PGDR_INITDB_OPTS adds initdb options (e.g. --data-checksums).
start_pg() {
  local dir=$1 port=$2 conf=${3:-} bin
  bin=$(pg_bindir)
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  # shellcheck disable=SC2086 # PGDR_INITDB_OPTS holds several words on purpose
  pg_run "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync ${PGDR_INITDB_OPTS:-} >/dev/null
  [ -n "$conf" ] && pg_run tee -a "$dir/data/postgresql.conf" <"$conf" >/dev/null
  # DIR/hba, if present, adds pg_hba.conf lines (clients on another host's network).
  [ -f "$dir/hba" ] && pg_run tee -a "$dir/data/pg_hba.conf" <"$dir/hba" >/dev/null
  pg_ctl_in "$dir" "$port" start
}

# pg_ctl_in DIR PORT ACTION...: pg_ctl on the cluster in DIR, with the options every
# cluster here runs with (loopback only, socket in DIR, no fsync). It listens on
# 127.0.0.1, or on the address in DIR/listen (127.0.0.2 … stand in for other hosts).
pg_ctl_in() {
  local dir=$1 port=$2 addr=127.0.0.1
  shift 2
  [ -f "$dir/listen" ] && addr=$(cat "$dir/listen")
  pg_run "$(pg_bindir)/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=$addr -c fsync=off" "$@" >/dev/null
}

stop_pg() {
  local dir=$1
  # A server killed with SIGKILL leaves its pid file: pg_ctl then fails, which is fine.
  if [ -f "$dir/data/postmaster.pid" ]; then
    pg_run "$(pg_bindir)/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
  fi
}

# start_moto PORT LOG [RECORDING]: moto_server on 127.0.0.1:PORT, waits until it
# answers; with RECORDING, moto's recorder writes every request there
# (scripts/moto_requests.py counts them).
start_moto() {
  local port=$1 log=$2 recording=${3:-} record=()
  [ -z "$recording" ] || record=(MOTO_ENABLE_RECORDING=true "MOTO_RECORDER_FILEPATH=$recording")
  env "${record[@]}" python3 "$(dirname "${BASH_SOURCE[0]}")/moto_server.py" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  MOTO_PID=$!
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1 && return 0
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "moto_server did not start; see $log" >&2
  return 1
}

# Credentials for the emulator only; real AWS keys never go here.
use_moto_env() {
  export AWS_ENDPOINT_URL="http://127.0.0.1:$1"
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
  unset AWS_PROFILE AWS_SESSION_TOKEN
}

# start_standby PRIMARY_PORT DIR PORT SLOT [ADDR [PRIMARY_ADDR]]: a streaming standby of
# the cluster on PRIMARY_ADDR:PRIMARY_PORT (default 127.0.0.1), made with pg_basebackup -R
# (which also creates SLOT on the primary), listening on ADDR (default 127.0.0.1).
start_standby() {
  local pport=$1 dir=$2 port=$3 slot=$4 addr=${5:-127.0.0.1} paddr=${6:-127.0.0.1} bin
  bin=$(pg_bindir)
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  echo "$addr" >"$dir/listen"
  pg_run "$bin/pg_basebackup" -h "$paddr" -p "$pport" -U postgres -D "$dir/data" -R -X stream -C -S "$slot" >/dev/null
  pg_ctl_in "$dir" "$port" start
}
