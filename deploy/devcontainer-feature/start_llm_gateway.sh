#!/usr/bin/env bash
# Starts LLM Gateway as installed by the llm-gateway dev-container feature (this script
# lives in the prefix, default /opt/llm_gateway). See --help.
set -euo pipefail

PREFIX=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
BIN=$PREFIX/bin/llm-gateway
ENV_FILE=$PREFIX/.env
OPTIONS_FILE=$PREFIX/feature-options.env
PGDATA_DIR=$PREFIX/data/postgres
REDIS_DIR=$PREFIX/data/redis
RUN_DIR=$PREFIX/data/run
LOG_DIR=$PREFIX/logs

usage() {
  cat <<EOF
Usage: $(basename "$0") [--config FILE] [--port N] [--host ADDR] [GATEWAY OPTIONS...]
       $(basename "$0") --stop-services
       $(basename "$0") --help

Starts LLM Gateway from $PREFIX:
  1. reads $ENV_FILE (variables already set in the environment win);
  2. starts PostgreSQL when DATABASE_URL names this machine (localhost, 127.0.0.1, ::1) and
     nothing answers there yet: a cluster in $PGDATA_DIR (made on first start, with the
     URL's user and password), on the URL's port, and creates the URL's database;
  3. starts Redis (redis-server) the same way when the feature's enableRedis option is on and
     REDIS_HOST is local, on REDIS_PORT, with REDIS_PASSWORD;
  4. waits until they answer, runs 'llm-gateway migrate', then replaces itself with
     llm-gateway --config FILE --env-file $ENV_FILE --port \${LLM_GATEWAY_PORT:-4000}.

Options:
  --config, -c FILE  gateway config (LiteLLM's config.yaml format). A relative FILE is looked
                     up in the current directory, then in $PREFIX, then in
                     $PREFIX/configs. Without --config the gateway serves its embedded
                     default: models mock-gpt and mock-embed from a built-in mock provider.
  --port N           port to serve on (default: \$LLM_GATEWAY_PORT, else 4000)
  --host ADDR        address to listen on (default: \$LLM_GATEWAY_HOST, else 0.0.0.0)
  --stop-services    stop the PostgreSQL and Redis this script started, and exit
  --help             this text
Other options (e.g. --detailed_debug, --num_workers N) are passed to llm-gateway.
PostgreSQL refuses to run as root: as root it runs as the 'postgres' user (or the owner of
$PGDATA_DIR). Logs: $LOG_DIR. SIGTERM/Ctrl-C stops the gateway (after draining
in-flight requests); PostgreSQL and Redis keep running until --stop-services.
EOF
}

log() { echo "start_llm_gateway: $*" >&2; }
die() {
  echo "start_llm_gateway: error: $*" >&2
  exit 1
}

config="" port="" host="" action=start
passthrough=()
while (($# > 0)); do
  case $1 in
    -h | --help)
      usage
      exit 0
      ;;
    -c | --config | --port | --host)
      [[ $# -ge 2 && -n $2 ]] || {
        echo "start_llm_gateway: error: $1 needs a value (see --help)" >&2
        exit 2
      }
      case $1 in
        -c | --config) config=$2 ;;
        --port) port=$2 ;;
        --host) host=$2 ;;
      esac
      shift 2
      ;;
    --config=*) config=${1#*=} && shift ;;
    --port=*) port=${1#*=} && shift ;;
    --host=*) host=${1#*=} && shift ;;
    --stop-services) action=stop && shift ;;
    --)
      shift
      passthrough+=("$@")
      break
      ;;
    *) passthrough+=("$1") && shift ;;
  esac
done

# ---------------------------------------------------------------------------------------
# Settings: the environment first, then .env (the gateway reads it with the same rule).

declare -A DOTENV=()
trim() {
  local s=$1
  s=${s#"${s%%[![:space:]]*}"}
  s=${s%"${s##*[![:space:]]}"}
  printf '%s' "$s"
}
# KEY=VALUE lines, 'export ' allowed, "double" or 'single' quoted values, # comments.
load_dotenv() {
  local file=$1 line key raw value
  [[ -r $file ]] || return 0
  while IFS= read -r line || [[ -n $line ]]; do
    line=$(trim "$line")
    [[ -z $line || $line == \#* ]] && continue
    [[ $line == "export "* ]] && line=$(trim "${line#export }")
    [[ $line == *=* ]] || continue
    key=$(trim "${line%%=*}")
    raw=$(trim "${line#*=}")
    if [[ $raw == \"* ]]; then
      raw=${raw#\"}
      value=${raw%%\"*}
    elif [[ $raw == \'* ]]; then
      raw=${raw#\'}
      value=${raw%%\'*}
    else
      value=$(trim "${raw%% #*}")
    fi
    DOTENV[$key]=$value
  done <"$file"
}
setting() {
  local key=$1 default=${2:-}
  if [[ -n ${!key+x} ]]; then
    printf '%s' "${!key}"
  elif [[ -n ${DOTENV[$key]+x} ]]; then
    printf '%s' "${DOTENV[$key]}"
  else
    printf '%s' "$default"
  fi
}
is_local_host() {
  case $1 in
    localhost | 127.* | ::1 | "[::1]") return 0 ;;
    *) return 1 ;;
  esac
}
url_decode() {
  local s=${1//+/ }
  printf '%b' "${s//%/\\x}"
}
# Waits up to $1 seconds for the command to succeed.
wait_for() {
  local seconds=$1
  shift
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

load_dotenv "$ENV_FILE"
declare -A FEATURE=()
if [[ -r $OPTIONS_FILE ]]; then
  while IFS='=' read -r k v; do
    [[ $k =~ ^[A-Z_]+$ ]] && FEATURE[$k]=$v
  done <"$OPTIONS_FILE"
fi

# ---------------------------------------------------------------------------------------
# PostgreSQL.

# The same search as the repository's scripts/pg-temp.sh: this script is installed on its
# own into /opt/llm_gateway, without the repository, so it cannot source that one.
pg_bin_dir() {
  if [[ -n ${PG_BIN:-} ]]; then
    echo "$PG_BIN"
    return
  fi
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
    if [[ -x $d/initdb && -x $d/pg_ctl ]]; then
      echo "$d"
      return
    fi
  done
  if command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then dirname "$(command -v pg_ctl)"; fi
}

# The user the cluster runs as (PostgreSQL refuses root).
pg_owner() {
  if [[ $(id -u) -ne 0 ]]; then
    id -un
  elif [[ -d $PGDATA_DIR && $(stat -c %u "$PGDATA_DIR") -ne 0 ]]; then
    stat -c %U "$PGDATA_DIR"
  else
    id -u postgres >/dev/null 2>&1 || die "running as root, but there is no 'postgres' user to run PostgreSQL (install postgresql)"
    echo postgres
  fi
}
as_owner() {
  if [[ $(id -u) -eq 0 && $PG_OWNER != root ]]; then
    (cd / && runuser -u "$PG_OWNER" -- "$@")
  else
    "$@"
  fi
}

# postgresql://user:password@host:port/database?params (the parts start_llm_gateway needs).
parse_database_url() {
  local re='^postgres(ql)?://(([^@/]*)@)?(\[[^]/]*\]|[^:/?]*)(:([0-9]*))?(/([^?]*))?(\?(.*))?$'
  [[ $1 =~ $re ]] || return 1
  local userinfo=${BASH_REMATCH[3]}
  DB_HOST=${BASH_REMATCH[4]}
  DB_HOST=${DB_HOST#[}
  DB_HOST=${DB_HOST%]}
  DB_PORT=${BASH_REMATCH[6]:-5432}
  DB_NAME=$(url_decode "${BASH_REMATCH[8]}")
  DB_QUERY=${BASH_REMATCH[10]}
  DB_USERINFO=$userinfo
  DB_USER=$(url_decode "${userinfo%%:*}")
  DB_PASSWORD=""
  if [[ $userinfo == *:* ]]; then DB_PASSWORD=$(url_decode "${userinfo#*:}"); fi
  [[ -n $DB_USER ]] || DB_USER=postgres
  [[ -n $DB_NAME ]] || DB_NAME=$DB_USER
  return 0
}

pg_ready() { "$PG_BIN_DIR/pg_isready" -q -t 2 -h "$DB_HOST" -p "$DB_PORT"; }

start_postgres() {
  PG_BIN_DIR=$(pg_bin_dir)
  [[ -n $PG_BIN_DIR ]] || die "DATABASE_URL names a local PostgreSQL ($DB_HOST:$DB_PORT), but no PostgreSQL server" \
    "is installed (apt-get install postgresql, or point DATABASE_URL at another server)"
  if pg_ready; then
    log "PostgreSQL already answers on $DB_HOST:$DB_PORT"
    return
  fi
  PG_OWNER=$(pg_owner)
  [[ -d $PREFIX/data && -w $PREFIX/data ]] || mkdir -p "$PREFIX/data" 2>/dev/null ||
    die "cannot write to $PREFIX/data: run as root, or as the user the feature installed for"
  [[ -w $PREFIX/data ]] || die "cannot write to $PREFIX/data: run as root, or as the user the feature installed for"
  if [[ $(id -u) -ne 0 && -d $PGDATA_DIR && ! -O $PGDATA_DIR ]]; then
    die "$PGDATA_DIR belongs to $(stat -c %U "$PGDATA_DIR"): run this script as that user or as root"
  fi
  mkdir -p "$RUN_DIR/postgresql" "$LOG_DIR"
  touch "$LOG_DIR/postgresql.log"
  if [[ $(id -u) -eq 0 ]]; then
    chown "$PG_OWNER:" "$RUN_DIR/postgresql" "$LOG_DIR/postgresql.log"
    # The cluster's user must reach the prefix (temp dirs are mode 700).
    local p=$PREFIX
    while [[ $p != / ]]; do
      runuser -u "$PG_OWNER" -- test -x "$p" 2>/dev/null || chmod o+x "$p"
      p=$(dirname "$p")
    done
  fi
  if [[ ! -s $PGDATA_DIR/PG_VERSION ]]; then
    mkdir -p "$PGDATA_DIR"
    [[ -z $(ls -A "$PGDATA_DIR") ]] || die "$PGDATA_DIR is not empty but holds no PostgreSQL cluster"
    if [[ $(id -u) -eq 0 ]]; then chown "$PG_OWNER:" "$PGDATA_DIR"; fi
    chmod 700 "$PGDATA_DIR"
    local auth=(--auth=trust) pwfile=$RUN_DIR/postgresql/initdb-password
    if [[ -n $DB_PASSWORD ]]; then
      (umask 077 && printf '%s\n' "$DB_PASSWORD" >"$pwfile")
      if [[ $(id -u) -eq 0 ]]; then chown "$PG_OWNER:" "$pwfile"; fi
      auth=(--auth-local=trust --auth-host=scram-sha-256 "--pwfile=$pwfile")
    fi
    log "creating a PostgreSQL cluster in $PGDATA_DIR (superuser $DB_USER)"
    if ! as_owner "$PG_BIN_DIR/initdb" -D "$PGDATA_DIR" -U "$DB_USER" "${auth[@]}" --encoding=UTF8 --no-locale \
      --no-sync >"$LOG_DIR/initdb.log" 2>&1; then
      rm -f "$pwfile"
      cat "$LOG_DIR/initdb.log" >&2
      die "initdb failed"
    fi
    rm -f "$pwfile"
  fi
  local cluster_version bin_version
  cluster_version=$(cat "$PGDATA_DIR/PG_VERSION")
  bin_version=$("$PG_BIN_DIR/pg_ctl" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)*.*/\1/')
  [[ $cluster_version == "$bin_version" ]] ||
    die "$PGDATA_DIR is a PostgreSQL $cluster_version cluster but the server is $bin_version (set PG_BIN)"
  if as_owner "$PG_BIN_DIR/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
    die "the cluster in $PGDATA_DIR is running but does not answer on $DB_HOST:$DB_PORT (port changed?):" \
      "run $0 --stop-services, then start again"
  fi
  local listen=$DB_HOST
  [[ $listen == localhost ]] || [[ $listen == ::1 ]] || [[ $listen == 127.* ]] || listen=localhost
  log "starting PostgreSQL on $DB_HOST:$DB_PORT (log: $LOG_DIR/postgresql.log)"
  as_owner "$PG_BIN_DIR/pg_ctl" -D "$PGDATA_DIR" -l "$LOG_DIR/postgresql.log" -w -t 60 \
    -o "-p $DB_PORT -c listen_addresses='$listen' -c unix_socket_directories='$RUN_DIR/postgresql'" \
    start >/dev/null || {
    tail -n 20 "$LOG_DIR/postgresql.log" >&2 || true
    die "PostgreSQL did not start"
  }
  wait_for 30 pg_ready || die "PostgreSQL does not answer on $DB_HOST:$DB_PORT (see $LOG_DIR/postgresql.log)"
}

# The URL's database, created when missing (on any local server).
ensure_database() {
  local psql=$PG_BIN_DIR/psql
  [[ -x $psql ]] || psql=$(command -v psql || true)
  if [[ -z $psql ]]; then
    log "warning: no psql: cannot check that database $DB_NAME exists"
    return
  fi
  local at="" maint
  if [[ -n $DB_USERINFO ]]; then at="$DB_USERINFO@"; fi
  local h=$DB_HOST
  if [[ $h == *:* ]]; then h="[$h]"; fi
  maint="postgresql://$at$h:$DB_PORT/postgres"
  if [[ -n $DB_QUERY ]]; then maint+="?$DB_QUERY"; fi
  local lit=${DB_NAME//\'/\'\'} ident=${DB_NAME//\"/\"\"} exists
  if ! exists=$(PGCONNECT_TIMEOUT=10 "$psql" "$maint" -XtAc "SELECT 1 FROM pg_database WHERE datname = '$lit'" 2>&1); then
    log "warning: cannot check that database $DB_NAME exists: $exists"
    return
  fi
  if [[ $exists != 1 ]]; then
    log "creating database $DB_NAME"
    PGCONNECT_TIMEOUT=10 "$psql" "$maint" -XqAc "CREATE DATABASE \"$ident\"" >/dev/null ||
      die "cannot create database $DB_NAME"
  fi
}

stop_postgres() {
  [[ -f $PGDATA_DIR/postmaster.pid ]] || return 0
  PG_BIN_DIR=$(pg_bin_dir)
  [[ -n $PG_BIN_DIR ]] || die "no PostgreSQL server binaries to stop $PGDATA_DIR with"
  PG_OWNER=$(pg_owner)
  if as_owner "$PG_BIN_DIR/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
    log "stopping PostgreSQL ($PGDATA_DIR)"
    as_owner "$PG_BIN_DIR/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null
  fi
}

# ---------------------------------------------------------------------------------------
# Redis.

redis_ready() {
  if command -v redis-cli >/dev/null; then
    [[ $(REDISCLI_AUTH=$REDIS_PASS redis-cli -h "$REDIS_H" -p "$REDIS_P" ping 2>/dev/null) == PONG ]]
  else
    (exec 3<>"/dev/tcp/$REDIS_H/$REDIS_P") 2>/dev/null
  fi
}

start_redis() {
  if redis_ready; then
    log "Redis already answers on $REDIS_H:$REDIS_P"
    return
  fi
  command -v redis-server >/dev/null || die "REDIS_HOST is local and enableRedis is on, but redis-server is not" \
    "installed (apt-get install redis-server, or empty REDIS_HOST in $ENV_FILE)"
  mkdir -p "$REDIS_DIR" "$RUN_DIR" "$LOG_DIR" || die "cannot write to $PREFIX/data"
  local bind=$REDIS_H
  [[ $REDIS_H == localhost ]] && bind="127.0.0.1 -::1"
  log "starting Redis on $REDIS_H:$REDIS_P (log: $LOG_DIR/redis.log)"
  # The configuration on stdin: the password stays out of the process list.
  local out
  if ! out=$({
    echo "port $REDIS_P"
    echo "bind $bind"
    echo "daemonize yes"
    echo "pidfile $RUN_DIR/redis.pid"
    echo "logfile $LOG_DIR/redis.log"
    echo "dir $REDIS_DIR"
    if [[ -n $REDIS_PASS ]]; then echo "requirepass \"${REDIS_PASS//\"/\\\"}\""; fi
  } | redis-server - 2>&1); then
    echo "$out" >&2
    die "redis-server did not start (see $LOG_DIR/redis.log)"
  fi
  wait_for 15 redis_ready || die "Redis does not answer on $REDIS_H:$REDIS_P (see $LOG_DIR/redis.log)"
}

# True while the process runs (a zombie that nobody reaped yet does not count).
process_running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

stop_redis() {
  local pidfile=$RUN_DIR/redis.pid pid
  [[ -f $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  if [[ $pid =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == redis-server* ]] && process_running "$pid"; then
    log "stopping Redis (pid $pid)"
    kill -TERM "$pid"
    if ! wait_for 15 eval "! process_running $pid"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

# ---------------------------------------------------------------------------------------

if [[ $action == stop ]]; then
  stop_redis
  stop_postgres
  exit 0
fi

[[ -x $BIN ]] || die "$BIN is missing or not executable (re-run the feature's install.sh)"

# The config.
cfg_args=()
if [[ -n $config ]]; then
  resolved=""
  if [[ $config == /* ]]; then
    [[ -e $config ]] && resolved=$config
  else
    for base in "$PWD" "$PREFIX" "$PREFIX/configs"; do
      if [[ -e $base/$config ]]; then
        resolved=$base/$config
        break
      fi
    done
  fi
  if [[ -z $resolved ]]; then
    {
      echo "start_llm_gateway: error: config file '$config' not found"
      [[ $config == /* ]] || echo "  looked in: $PWD, $PREFIX, $PREFIX/configs"
      echo "  starter configs:"
      ls -1 "$PREFIX/configs" 2>/dev/null | sed 's/^/    configs\//'
    } >&2
    exit 2
  fi
  [[ -f $resolved ]] || die "config '$resolved' is not a file"
  [[ -r $resolved ]] || die "config '$resolved' is not readable"
  cfg_args=(--config "$(readlink -f "$resolved")")
fi
env_args=()
if [[ -f $ENV_FILE ]]; then
  env_args=(--env-file "$ENV_FILE")
else
  log "warning: no $ENV_FILE: using the environment only"
fi

[[ -n $port ]] || port=$(setting LLM_GATEWAY_PORT 4000)
[[ -n $host ]] || host=$(setting LLM_GATEWAY_HOST 0.0.0.0)
[[ $port =~ ^[0-9]+$ ]] || die "invalid port '$port'"

# PostgreSQL.
database_url=$(setting DATABASE_URL)
if [[ -n $database_url ]]; then
  if parse_database_url "$database_url" && is_local_host "$DB_HOST"; then
    start_postgres
    ensure_database
  else
    log "DATABASE_URL is not a local PostgreSQL: not starting one"
  fi
else
  log "no DATABASE_URL: keys made through the admin API live in memory only"
fi

# Redis.
REDIS_H=$(setting REDIS_HOST)
REDIS_P=$(setting REDIS_PORT 6379)
REDIS_PASS=$(setting REDIS_PASSWORD)
if [[ ${FEATURE[ENABLE_REDIS]:-true} != true ]]; then
  :
elif [[ -n $(setting REDIS_URL) ]]; then
  log "REDIS_URL is set: not starting a local Redis"
elif [[ -n $REDIS_H ]] && is_local_host "$REDIS_H"; then
  [[ $REDIS_P =~ ^[0-9]+$ ]] || die "invalid REDIS_PORT '$REDIS_P'"
  start_redis
fi

if [[ -n $database_url ]]; then
  "$BIN" migrate "${cfg_args[@]}" "${env_args[@]}" >&2 || die "llm-gateway migrate failed"
fi

log "LLM Gateway on http://localhost:$port (${cfg_args[1]:-embedded default config: mock-gpt, mock-embed})"
exec "$BIN" "${cfg_args[@]}" "${env_args[@]}" --host "$host" --port "$port" "${passthrough[@]}"
