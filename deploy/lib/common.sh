# shellcheck shell=bash
# deploy/lib/common.sh: shell helpers shared by deploy/dev/up, tests/run and tests/bench/run.
#
# Source it; it only defines functions and a few LATCH_* / PG_* variables. It changes no shell
# options and is safe under `set -euo pipefail`. Helpers print their own noise only on failure,
# write progress to stderr and results (paths, ports, conninfo strings) to stdout.
#
# PostgreSQL clusters are private: initdb'd into a directory, listening only on a unix socket in
# that directory, local auth "trust". initdb and postgres refuse to run as root, so as root they
# run as the `postgres` user (runuser); otherwise as the calling user.

LATCH_ROOT=${LATCH_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

# The newest installed server binaries, unless PG_BIN is given.
if [[ -z ${PG_BIN:-} ]]; then
  PG_BIN=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null |
    sort -V | tail -n 1 | xargs -r dirname)
  : "${PG_BIN:=$(dirname "$(command -v initdb 2>/dev/null || echo /usr/lib/postgresql/15/bin/initdb)")}"
fi

latch_say() { printf '%s\n' "$*" >&2; }
latch_die() { printf 'error: %s\n' "$*" >&2; return 1; }

# latch_quiet LOG CMD...: run CMD with its output in LOG; show (and keep) LOG only if CMD fails.
latch_quiet() {
  local log=$1 rc=0
  shift
  "$@" >"$log" 2>&1 || rc=$?
  if ((rc != 0)); then
    latch_say "--- failed (exit $rc): $*"
    cat "$log" >&2
    latch_say "--- end of output (kept in $log)"
  else
    rm -f "$log"
  fi
  return "$rc"
}

# latch_build DIR [MESON_ARGS...]: configure DIR with meson when it is not a build directory
# yet, or when MESON_ARGS differ from those it was last set up with by this helper; then build.
# ninja itself reconfigures when a meson.build changed.
latch_build() {
  local dir=$1
  shift
  [[ $dir == /* ]] || dir=$LATCH_ROOT/$dir
  local stamp=$dir/.latch-meson-args want have=''
  want=$(printf '%s\n' "$@")
  [[ -f $stamp ]] && have=$(<"$stamp")
  mkdir -p "$dir"
  if [[ ! -f $dir/build.ninja ]]; then
    local wipe=()
    [[ -f $dir/meson-private/coredata.dat ]] && wipe=(--wipe)
    latch_say "meson setup ${dir#"$LATCH_ROOT"/} $*"
    latch_quiet "$dir/latch-setup.log" meson setup "${wipe[@]}" "$dir" "$LATCH_ROOT" "$@" || return
  elif [[ ! -f $stamp || $want != "$have" ]] && (($# > 0)); then
    latch_say "meson setup --reconfigure ${dir#"$LATCH_ROOT"/} $*"
    latch_quiet "$dir/latch-setup.log" meson setup --reconfigure "$dir" "$LATCH_ROOT" "$@" || return
  fi
  printf '%s' "$want" >"$stamp"
  latch_quiet "$dir/latch-ninja.log" ninja -C "$dir"
}

# latch_bin BUILD_DIR NAME: the path of a built program (BUILD_DIR/cmd/NAME/NAME, or
# BUILD_DIR/cmd/NAME where meson declares it in cmd/meson.build itself).
latch_bin() {
  local dir=$1 name=$2
  [[ $dir == /* ]] || dir=$LATCH_ROOT/$dir
  if [[ -f $dir/cmd/$name/$name || ! -f $dir/cmd/$name ]]; then
    printf '%s\n' "$dir/cmd/$name/$name"
  else
    printf '%s\n' "$dir/cmd/$name"
  fi
}

# --- private PostgreSQL -----------------------------------------------------------------------

# pg_run CMD...: run a PostgreSQL server binary as the cluster's owner.
pg_run() {
  if ((EUID == 0)); then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# pg_home DIR: the directory that really holds the cluster of DIR (data/, server.log and the
# socket). Normally DIR itself; pg_up relocates it to /tmp when the postgres user cannot reach
# DIR or the socket path would be too long, and leaves the symlink DIR/cluster pointing there.
pg_home() {
  local dir=${1%/}
  if [[ -L $dir/cluster ]]; then
    readlink "$dir/cluster"
  else
    (cd "$dir" 2>/dev/null && pwd) || printf '%s\n' "$dir"
  fi
}

# The socket file is HOME/.s.PGSQL.5432, and sun_path holds 107 bytes plus the NUL.
pg__home_usable() {
  local home=$1
  ((${#home} + 15 <= 107)) || return 1
  [[ $home != *[\'\ \\]* ]] || return 1          # it is quoted into pg_ctl -o below
  mkdir -p "$home" || return 1
  if ((EUID == 0)); then
    chown postgres: "$home" && chmod 700 "$home" || return 1
    runuser -u postgres -- test -w "$home" -a -x "$home"
  fi
}

# pg_up DIR: start the cluster of DIR, running initdb first if it has none. Reused across
# calls; a no-op when it is already running. Prints nothing on success.
pg_up() {
  local dir=$1 home
  [[ $dir == /* ]] || dir=$PWD/$dir
  mkdir -p "$dir"
  home=$(pg_home "$dir")
  if ! pg__home_usable "$home"; then
    home=/tmp/latch-pg-$(printf '%s' "$dir" | sha256sum | cut -c1-12)
    pg__home_usable "$home" || latch_die "cannot prepare a PostgreSQL directory ($home)" || return
    ln -sfn "$home" "$dir/cluster"
    latch_say "pg: the postgres user cannot use $dir; the cluster lives in $home"
  fi
  if [[ ! -f $home/data/PG_VERSION ]]; then
    rm -rf "$home/data"
    latch_quiet "$home/initdb.log" pg_run "$PG_BIN/initdb" -D "$home/data" -A trust -U postgres \
      -E UTF8 --locale=C --no-sync --no-instructions || return
  fi
  pg_run "$PG_BIN/pg_ctl" -D "$home/data" status >/dev/null 2>&1 && return 0
  local opts="-k '$home' -c listen_addresses= -c fsync=off -c synchronous_commit=off"
  opts+=" -c full_page_writes=off -c max_connections=200"
  if ! latch_quiet "$home/pg_ctl.log" pg_run "$PG_BIN/pg_ctl" -D "$home/data" -l "$home/server.log" \
    -w -t 60 -o "$opts" start; then
    tail -n 30 "$home/server.log" >&2 2>/dev/null || true
    return 1
  fi
}

# pg_down DIR [MODE]: stop the cluster of DIR if it runs (MODE: fast, or immediate).
pg_down() {
  local home
  home=$(pg_home "$1")
  [[ -f $home/data/postmaster.pid ]] || return 0
  pg_run "$PG_BIN/pg_ctl" -D "$home/data" -m "${2:-fast}" -w -t 60 stop >/dev/null 2>&1 && return 0
  # "not running" (a stale pid file) is fine too
  ! pg_run "$PG_BIN/pg_ctl" -D "$home/data" status >/dev/null 2>&1
}

# pg_conninfo DIR USER DB: the libpq conninfo for USER on DB in the cluster of DIR.
pg_conninfo() {
  printf 'host=%s user=%s dbname=%s\n' "$(pg_home "$1")" "$2" "$3"
}

# pg_psql SOCKDIR DB [PSQL_ARGS...]: psql as the superuser, stopping at the first error.
pg_psql() {
  local sock=$1 db=$2
  shift 2
  psql -X -q -h "$sock" -U postgres -d "$db" -v ON_ERROR_STOP=1 "$@"
}

# latch_roles SOCKDIR: the Latch roles (sql/roles.sql is idempotent and repairs them).
latch_roles() {
  [[ -f $LATCH_ROOT/sql/roles.sql ]] || latch_die "sql/roles.sql is missing" || return
  pg_psql "$1" postgres -f "$LATCH_ROOT/sql/roles.sql" >/dev/null
}

# latch_db_init SOCKDIR DB: roles, then database DB owned by latch_owner if it is missing.
latch_db_init() {
  local sock=$1 db=$2
  [[ $db =~ ^[a-z_][a-z0-9_]*$ ]] || latch_die "bad database name: $db" || return
  latch_roles "$sock" || return
  [[ $(pg_psql "$sock" postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '$db'") == 1 ]] &&
    return 0
  pg_psql "$sock" postgres -c "CREATE DATABASE $db OWNER latch_owner"
}

# --- files and processes ----------------------------------------------------------------------

# tls_cert DIR: DIR/cert.pem + DIR/key.pem, a self-signed EC P-256 certificate for localhost,
# made only when missing or about to expire.
tls_cert() {
  local dir=$1
  mkdir -p "$dir"
  if [[ -f $dir/cert.pem && -f $dir/key.pem ]] &&
    openssl x509 -in "$dir/cert.pem" -noout -checkend 86400 >/dev/null 2>&1; then
    return 0
  fi
  (umask 077 && latch_quiet "$dir/openssl.log" openssl req -x509 -newkey ec \
    -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$dir/key.pem" -out "$dir/cert.pem") || return
  chmod 644 "$dir/cert.pem"
  rm -f "$dir/openssl.log"
}

# gen_master_key FILE: base64 of 32 random bytes, mode 600, made only when missing.
gen_master_key() {
  local file=$1
  [[ -s $file ]] && return 0
  mkdir -p "$(dirname "$file")"
  (umask 077 && openssl rand -base64 32 >"$file.tmp") && mv "$file.tmp" "$file"
}

# free_port: a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
  /usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# wait_http URL TIMEOUT_S [CURL_ARGS...]: wait until URL answers with a non-error status.
wait_http() {
  local url=$1 timeout=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  until curl -fsS -k -o /dev/null --max-time 1 "$@" "$url" 2>/dev/null; do
    ((SECONDS < deadline)) || { latch_say "no answer from $url within ${timeout}s"; return 1; }
    sleep 0.1
  done
}

# latch_config FILE KEY=STRING|KEY:=JSON ...: write a latchd JSON config (httpie-style: `=`
# takes the value as a string, `:=` as a JSON literal, e.g. workers:=2 access_log=off).
latch_config() {
  local file=$1
  shift
  /usr/bin/python3 - "$file" "$@" <<'PY'
import json, sys
conf = {}
for arg in sys.argv[2:]:
    key, sep, val = arg.partition("=")
    if key.endswith(":"):
        conf[key[:-1]] = json.loads(val)
    elif sep:
        conf[key] = val
    else:
        sys.exit(f"latch_config: expected KEY=VALUE or KEY:=JSON, got {arg!r}")
with open(sys.argv[1], "w") as f:
    json.dump(conf, f, indent=2)
    f.write("\n")
PY
}

# latch_gen_password: 20 characters of base64url from 15 random bytes (120 bits); random enough
# that the password policy (length 12, cracklib, character variety) accepts it.
latch_gen_password() {
  head -c 15 /dev/urandom | base64 | tr '+/' '-_'
}

# latch_seed_admin LATCHCTL CONFIG TENANT EMAIL SAVEFILE [URL]: make sure TENANT exists with
# the global admin EMAIL, via `latchctl bootstrap` (idempotent: its exit 3 means the tenant
# already has users, and nothing changes). The password is $LATCH_DEV_ADMIN_PASSWORD when
# set; otherwise the one saved in SAVEFILE by an earlier run, or a new generated one, which is
# saved there (mode 600) once it was used, so later runs can show it again. Prints the
# credentials and a login example against URL (default https://127.0.0.1:8443) on stdout.
# Returns latchctl's failure status on any other outcome (4: the policy refused the password
# given in LATCH_DEV_ADMIN_PASSWORD).
latch_seed_admin() {
  local ctl=$1 config=$2 tenant=$3 email=$4 save=$5 url=${6:-https://127.0.0.1:8443}
  local pw source rc out _
  if [[ -n ${LATCH_DEV_ADMIN_PASSWORD:-} ]]; then
    pw=$LATCH_DEV_ADMIN_PASSWORD source=env
  elif [[ -s $save ]]; then
    pw=$(<"$save") source=saved
  else
    pw=$(latch_gen_password) source=new
  fi
  for _ in 1 2 3 4 5; do
    rc=0
    out=$(printf '%s\n' "$pw" | "$ctl" --config "$config" bootstrap --tenant "$tenant" --email "$email" \
      --global --display-name "${tenant^} (development)" 2>&1) || rc=$?
    # Only a password we made up ourselves may be replaced when the policy refuses it.
    ((rc == 4)) && [[ $source == new ]] && { pw=$(latch_gen_password); continue; }
    break
  done
  case $rc in
    0)
      if [[ $source == new ]]; then
        (umask 077 && mkdir -p "$(dirname "$save")" && printf '%s\n' "$pw" >"$save.tmp") && mv "$save.tmp" "$save"
        chmod 600 "$save"
      elif [[ $source == env ]]; then
        rm -f "$save" # a password saved for an earlier database would now be wrong
      fi
      echo "seeded tenant $tenant with global admin $email"
      ;;
    3)
      echo "tenant $tenant already has its admin $email (not changed)"
      if [[ $source != saved ]]; then
        [[ $source == env ]] && echo "  (LATCH_DEV_ADMIN_PASSWORD does not change an existing admin's password)"
        [[ -s $save ]] && pw=$(<"$save") source=saved
      fi
      if [[ $source != saved ]]; then
        echo "  its password is the one it was seeded with (LATCH_DEV_ADMIN_PASSWORD at the time)"
        return 0
      fi
      ;;
    *)
      printf '%s\n' "$out" >&2
      return "$rc"
      ;;
  esac
  local shown=$pw body
  # Shown only where it is shell- and JSON-safe (generated ones always are).
  [[ $source != env && $pw =~ ^[A-Za-z0-9._~-]+$ ]] || shown='<password>'
  body=$(printf '{"tenant":"%s","email":"%s","password":"%s"}' "$tenant" "$email" "$shown")
  echo "  tenant:   $tenant"
  echo "  email:    $email"
  if [[ $source == env ]]; then
    echo "  password: (from LATCH_DEV_ADMIN_PASSWORD)"
  else
    echo "  password: $pw   (saved in $save)"
  fi
  echo "  log in:   curl --http2 -k $url/v1/auth/login -H 'content-type: application/json' -d '$body'"
}

# latch_kill_pid PID [TIMEOUT_S]: SIGTERM, then SIGKILL after TIMEOUT_S; waits for it when it is
# our child. Returns the exit status when known.
latch_kill_pid() {
  local pid=$1 timeout=${2:-10} i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    # a zombie child counts as gone
    [[ $(ps -o stat= -p "$pid" 2>/dev/null) == Z* ]] && break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && [[ $(ps -o stat= -p "$pid" 2>/dev/null) != Z* ]] &&
    { latch_say "pid $pid ignored SIGTERM for ${timeout}s; killing it"; kill -KILL "$pid" 2>/dev/null; }
  wait "$pid" 2>/dev/null
}
