#!/usr/bin/env bash
# A gateway cluster on one machine, for people without Kubernetes: PostgreSQL and Redis
# from Debian's packages in a state directory, and N gateway nodes sharing them (keys,
# budgets and spend through PostgreSQL; rate limits through Redis), exactly as the nodes
# of an EKS or ECS deployment share Aurora and ElastiCache.
#
#   scripts/local-stack.sh up [options]    start everything; returns once every node is ready
#   scripts/local-stack.sh status [--dir DIR]
#   scripts/local-stack.sh down [--dir DIR]  stop everything and remove DIR
#
# Options of `up`:
#   --nodes N        gateway nodes (default 3)
#   --port P         first node's port (default 4000; nodes listen on P, P+1, ...;
#                    0 = any free ports, see DIR/stack.env)
#   --config FILE    LiteLLM config for every node (default: one written into DIR that
#                    serves mock-gpt and mock-embed from a mock provider the script starts)
#   --master-key K   master key (default: $LITELLM_MASTER_KEY, else sk-local-stack)
#   --no-redis       no Redis: each node limits on its own
#   --dir DIR        state directory (default ${TMPDIR:-/tmp}/llm-gateway-stack)
#   --bin DIR        directory with gateway/llm-gateway and mock-provider/mock-provider
#                    (default build/release/apps, built with scripts/build.sh if missing)
#
# Everything listens on 127.0.0.1. DIR/stack.env holds DATABASE_URL, REDIS_HOST/PORT,
# LITELLM_MASTER_KEY and NODE_URLS; DIR/node-<i>.log each node's log. PostgreSQL and
# Redis come from Debian (scripts/install-deps.sh installs them). Not for production:
# PostgreSQL runs with trust authentication and fsync off.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

die() {
  echo "local-stack: $*" >&2
  exit 1
}

cmd=${1:-}
[[ -n $cmd ]] || die "usage: $0 up|status|down [options] (see the header of this script)"
shift

nodes=3
port=4000
config=""
master_key=${LITELLM_MASTER_KEY:-sk-local-stack}
use_redis=1
dir="${TMPDIR:-/tmp}/llm-gateway-stack"
bin="$root/build/release/apps"
bin_given=0
while (($#)); do
  case $1 in
    --nodes) nodes=${2:?--nodes needs a number}; shift 2 ;;
    --port) port=${2:?--port needs a number}; shift 2 ;;
    --config) config=${2:?--config needs a file}; shift 2 ;;
    --master-key) master_key=${2:?--master-key needs a value}; shift 2 ;;
    --no-redis) use_redis=0; shift ;;
    --dir) dir=${2:?--dir needs a directory}; shift 2 ;;
    --bin) bin=${2:?--bin needs a directory}; bin_given=1; shift 2 ;;
    *) die "unknown option '$1'" ;;
  esac
done
[[ $nodes =~ ^[0-9]+$ ]] && ((nodes >= 1 && nodes <= 32)) || die "--nodes must be 1 to 32, got '$nodes'"
[[ $port =~ ^[0-9]+$ ]] && ((port <= 65535 - nodes)) || die "--port must be a port number, got '$port'"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null ||
    echo $((20000 + RANDOM % 40000))
}

# Waits until the process in pid file $1 writes port file $2; prints the port.
wait_port_file() {
  local pidf=$1 portf=$2 what=$3 log=$4
  for _ in $(seq 1 300); do
    if [[ -s $portf ]]; then
      cat "$portf"
      return 0
    fi
    kill -0 "$(cat "$pidf")" 2>/dev/null || {
      tail -n 20 "$log" >&2 || true
      die "$what exited during start (log: $log)"
    }
    sleep 0.1
  done
  die "$what did not start within 30 s (log: $log)"
}

stop_pidfile() {
  local f=$1 pid
  [[ -f $f ]] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

down() {
  [[ -d $dir ]] || { echo "local-stack: nothing at $dir"; return 0; }
  [[ -f $dir/stack.env || -d $dir/pg ]] || die "$dir is not a local stack directory"
  local f
  for f in "$dir"/node-*.pid; do [[ -e $f ]] && stop_pidfile "$f"; done
  stop_pidfile "$dir/mock.pid"
  stop_pidfile "$dir/redis.pid"
  if [[ -d $dir/pg ]]; then "$root/scripts/pg-temp.sh" stop "$dir/pg"; fi
  rm -rf "$dir"
  echo "local-stack: stopped, removed $dir"
}

status() {
  [[ -f $dir/stack.env ]] || die "no stack at $dir (start one with: $0 up)"
  # shellcheck disable=SC1091
  source "$dir/stack.env"
  local i=0 url rc=0
  for url in $NODE_URLS; do
    i=$((i + 1))
    local p=${url##*:}
    if "$GATEWAY_BIN" healthcheck --port "$p" --path /health/readiness --timeout 3 2>/dev/null; then
      echo "node $i  $url  ready"
    else
      echo "node $i  $url  NOT READY (log: $dir/node-$i.log)"
      rc=1
    fi
  done
  return $rc
}

up() {
  if [[ -e $dir ]]; then
    [[ -z $(ls -A "$dir") ]] || die "$dir exists: stop that stack first ($0 down --dir $dir) or pick another --dir"
  fi
  if [[ -d $bin ]]; then bin=$(cd "$bin" && pwd); fi
  local gw="$bin/gateway/llm-gateway" mock="$bin/mock-provider/mock-provider"
  if [[ ! -x $gw || (-z $config && ! -x $mock) ]]; then
    ((bin_given)) && die "no llm-gateway/mock-provider under $bin"
    echo "local-stack: building the gateway (scripts/build.sh release)"
    "$root/scripts/build.sh" release llm-gateway mock-provider
  fi
  command -v redis-server >/dev/null || ((use_redis == 0)) ||
    die "redis-server is missing: run scripts/install-deps.sh (or pass --no-redis)"
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null ||
    die "PostgreSQL is missing: run scripts/install-deps.sh"
  if [[ -n $config ]]; then
    [[ -f $config ]] || die "--config $config: no such file"
    config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
  fi

  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  # Anything started below is stopped again if a later step fails.
  trap 'rc=$?; if ((rc != 0)); then echo "local-stack: start failed; stopping what was started" >&2; down >/dev/null 2>&1 || true; fi' EXIT

  echo "local-stack: PostgreSQL"
  local db_url
  db_url=$("$root/scripts/pg-temp.sh" start "$dir/pg")

  local redis_port=""
  if ((use_redis)); then
    echo "local-stack: Redis"
    mkdir -p "$dir/redis"
    local ok=0
    for _ in 1 2 3 4 5; do
      redis_port=$(free_port)
      setsid redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$dir/redis" --logfile "$dir/redis/redis.log" --daemonize no </dev/null >/dev/null 2>&1 &
      echo $! >"$dir/redis.pid"
      for _ in $(seq 1 50); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$redis_port" && printf 'PING\r\n' >&3 && read -r -t 1 line <&3 &&
          [[ $line == +PONG* ]]) 2>/dev/null; then
          ok=1
          break
        fi
        kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null || break
        sleep 0.1
      done
      ((ok)) && break
      stop_pidfile "$dir/redis.pid"
    done
    ((ok)) || die "redis-server did not start (log: $dir/redis/redis.log)"
  fi

  if [[ -z $config ]]; then
    echo "local-stack: mock provider"
    setsid "$mock" --host 127.0.0.1 --port 0 --port-file "$dir/mock.port" </dev/null >"$dir/mock.log" 2>&1 &
    echo $! >"$dir/mock.pid"
    local mock_port
    mock_port=$(wait_port_file "$dir/mock.pid" "$dir/mock.port" "the mock provider" "$dir/mock.log")
    config="$dir/config.yaml"
    cat >"$config" <<EOF
# Written by scripts/local-stack.sh: two deployments of mock-gpt and one of mock-embed on
# the mock provider at 127.0.0.1:$mock_port. Keys, budgets and spend live in PostgreSQL
# (DATABASE_URL), rate limits in Redis (REDIS_HOST/REDIS_PORT), both shared by every node.
model_list:
  - model_name: mock-gpt
    litellm_params: {model: openai/mock-gpt, api_base: "http://127.0.0.1:$mock_port/v1", rpm: 600000}
    model_info: {id: mock-gpt-a, input_cost_per_token: 0.00000015, output_cost_per_token: 0.0000006}
  - model_name: mock-gpt
    litellm_params: {model: openai/mock-gpt, api_base: "http://127.0.0.1:$mock_port/v1", rpm: 600000}
    model_info: {id: mock-gpt-b, input_cost_per_token: 0.00000015, output_cost_per_token: 0.0000006}
  - model_name: mock-embed
    litellm_params: {model: openai/mock-embed, api_base: "http://127.0.0.1:$mock_port/v1"}
    model_info: {mode: embedding, input_cost_per_token: 0.00000002, output_cost_per_token: 0}
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
  database_url: os.environ/DATABASE_URL
EOF
  fi

  # Migrations once, before the nodes start (each node would also apply them).
  DATABASE_URL=$db_url "$gw" migrate --config "$config" >"$dir/migrate.log" 2>&1 ||
    { cat "$dir/migrate.log" >&2; die "migrate failed"; }

  local urls="" i p
  for ((i = 1; i <= nodes; i++)); do
    p=$((port == 0 ? 0 : port + i - 1))
    echo "local-stack: node $i"
    (
      export DATABASE_URL=$db_url LITELLM_MASTER_KEY=$master_key
      if ((use_redis)); then export REDIS_HOST=127.0.0.1 REDIS_PORT=$redis_port; fi
      # Each node its own cwd, so no node picks up another's ./.env; its own spool.
      mkdir -p "$dir/node-$i"
      cd "$dir/node-$i"
      TMPDIR="$dir/node-$i" exec setsid "$gw" --config "$config" --host 127.0.0.1 --port "$p" \
        --port-file "$dir/node-$i.port" </dev/null >"$dir/node-$i.log" 2>&1
    ) &
    echo $! >"$dir/node-$i.pid"
  done
  for ((i = 1; i <= nodes; i++)); do
    p=$(wait_port_file "$dir/node-$i.pid" "$dir/node-$i.port" "node $i" "$dir/node-$i.log")
    for _ in $(seq 1 100); do
      "$gw" healthcheck --port "$p" --path /health/readiness --timeout 2 2>/dev/null && break
      sleep 0.1
    done
    "$gw" healthcheck --port "$p" --path /health/readiness --timeout 2 || die "node $i is not ready (log: $dir/node-$i.log)"
    urls+="${urls:+ }http://127.0.0.1:$p"
  done
  trap - EXIT

  {
    echo "# scripts/local-stack.sh up, $(date -u +%FT%TZ)"
    printf 'DATABASE_URL=%q\n' "$db_url"
    if ((use_redis)); then
      echo "REDIS_HOST=127.0.0.1"
      echo "REDIS_PORT=$redis_port"
    fi
    printf 'LITELLM_MASTER_KEY=%q\n' "$master_key"
    printf 'CONFIG=%q\n' "$config"
    printf 'GATEWAY_BIN=%q\n' "$gw"
    printf 'NODE_URLS=%q\n' "$urls"
  } >"$dir/stack.env"

  echo
  echo "local-stack: $nodes node(s) ready, sharing PostgreSQL${redis_port:+ and Redis}:"
  i=0
  for u in $urls; do
    i=$((i + 1))
    echo "  node $i  $u   (log $dir/node-$i.log)"
  done
  echo "  PostgreSQL  $db_url"
  [[ -n $redis_port ]] && echo "  Redis       redis://127.0.0.1:$redis_port"
  echo "  master key  $master_key      settings: $dir/stack.env"
  echo "Try: curl ${urls%% *}/v1/chat/completions -H 'authorization: Bearer $master_key' \\"
  echo "       -H 'content-type: application/json' -d '{\"model\":\"mock-gpt\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'"
  echo "Stop: $0 down${dir:+ --dir $dir}"
}

case $cmd in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "unknown command '$cmd' (up, status, down)" ;;
esac
