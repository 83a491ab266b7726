#!/usr/bin/env bash
# Installer of the llm-gateway dev-container feature.
#
# The devcontainer CLI runs it as root while it builds the image, with the feature's
# options as upper-case environment variables ("true"/"false"):
#   ENABLEPRESIDIO (default false)  ENABLEREDIS (default true)
#   ENABLELANGFUSE (default true)   STARTWITHDEFAULTS (default false)
#
# It installs LLM Gateway into a prefix (default /opt/llm_gateway):
#   bin/llm-gateway           the gateway
#   configs/                  the starter configs (share/configs/ keeps pristine copies)
#   .env                      the environment (written once, never overwritten), .env.example
#   start_llm_gateway.sh      starts PostgreSQL (+ Redis), migrates, runs the gateway
#   external/                 docker compose files for Presidio / Langfuse when enabled
#   README.md, feature-options.env
#
# Where the binary comes from, first match wins:
#   $LLM_GATEWAY_BINARY                      a prebuilt binary
#   <this directory>/bin/llm-gateway         a release artifact shipped with the feature
#   a source tree built with scripts/install-deps.sh --run + scripts/build.sh release llm-gateway:
#     $LLM_GATEWAY_SOURCE, else the repository this feature sits in (deploy/devcontainer-feature)
# The starter configs: $LLM_GATEWAY_CONFIGS, <this directory>/configs, <source tree>/configs.
#
# Other environment: LLM_GATEWAY_PREFIX (install elsewhere), LLM_GATEWAY_SKIP_PACKAGES=1
# (never call apt-get), GW_CMAKE_ARGS (passed to cmake when building, e.g. "-DGW_MARCH=" for
# a baseline-CPU build), _REMOTE_USER (set by the devcontainer CLI: the prefix is given to
# that user so start_llm_gateway.sh runs without root).
# Idempotent: running it again upgrades the binary and untouched starter configs, keeps .env.
set -euo pipefail

FEATURE_VERSION=0.1.0
feature_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PREFIX=${LLM_GATEWAY_PREFIX:-/opt/llm_gateway}

log() { echo "llm-gateway feature: $*"; }
warn() { echo "llm-gateway feature: warning: $*" >&2; }
die() {
  echo "llm-gateway feature: error: $*" >&2
  exit 1
}

# An option's value as true/false (the CLI passes "true"/"false"; be lenient with case).
bool_option() {
  local name=$1 value=$2 default=$3
  [[ -n $value ]] || value=$default
  case "${value,,}" in
    true | 1 | yes | on) echo true ;;
    false | 0 | no | off) echo false ;;
    *) die "option $name: expected true or false, got '$value'" ;;
  esac
}
ENABLE_PRESIDIO=$(bool_option enablePresidio "${ENABLEPRESIDIO:-}" false)
ENABLE_REDIS=$(bool_option enableRedis "${ENABLEREDIS:-}" true)
ENABLE_LANGFUSE=$(bool_option enableLangfuse "${ENABLELANGFUSE:-}" true)
START_WITH_DEFAULTS=$(bool_option startWithDefaults "${STARTWITHDEFAULTS:-}" false)
log "installing into $PREFIX (enablePresidio=$ENABLE_PRESIDIO enableRedis=$ENABLE_REDIS" \
  "enableLangfuse=$ENABLE_LANGFUSE startWithDefaults=$START_WITH_DEFAULTS)"

# The defaults startWithDefaults writes (the seed feature's: master key sk-password is in
# every .env; the virtual key and the Langfuse user/project/keys only with the option).
DEFAULT_VIRTUAL_KEY=sk-TE5BPNfSh4IOCNpW3I5EDQ
LANGFUSE_DEFAULT_PUBLIC_KEY=pk-lf-llm-gateway-devcontainer
LANGFUSE_DEFAULT_SECRET_KEY=sk-lf-llm-gateway-devcontainer
LANGFUSE_DEFAULT_USER=admin@dep.com
LANGFUSE_DEFAULT_PASSWORD=password

# ---------------------------------------------------------------------------------------
# Where things come from.

# The source tree to build from (empty when there is none).
source_tree() {
  if [[ -n ${LLM_GATEWAY_SOURCE:-} ]]; then
    [[ -f $LLM_GATEWAY_SOURCE/scripts/build.sh && -f $LLM_GATEWAY_SOURCE/CMakeLists.txt ]] ||
      die "LLM_GATEWAY_SOURCE=$LLM_GATEWAY_SOURCE is not an llm-gateway source tree (no scripts/build.sh)"
    (cd "$LLM_GATEWAY_SOURCE" && pwd)
    return
  fi
  local d
  d=$(cd "$feature_dir/../.." 2>/dev/null && pwd) || return 0
  if [[ -f $d/scripts/build.sh && -f $d/CMakeLists.txt && -d $d/apps/gateway ]]; then echo "$d"; fi
}
SOURCE=$(source_tree)

binary_source() {
  if [[ -n ${LLM_GATEWAY_BINARY:-} ]]; then
    [[ -f $LLM_GATEWAY_BINARY && -x $LLM_GATEWAY_BINARY ]] ||
      die "LLM_GATEWAY_BINARY=$LLM_GATEWAY_BINARY is not an executable file"
    echo "$LLM_GATEWAY_BINARY"
  elif [[ -x $feature_dir/bin/llm-gateway ]]; then
    echo "$feature_dir/bin/llm-gateway"
  fi
}
BINARY=$(binary_source)
[[ -n $BINARY || -n $SOURCE ]] ||
  die "no llm-gateway binary: set LLM_GATEWAY_BINARY, ship bin/llm-gateway next to install.sh," \
    "or set LLM_GATEWAY_SOURCE to a source tree to build"

configs_source() {
  if [[ -n ${LLM_GATEWAY_CONFIGS:-} ]]; then
    [[ -d $LLM_GATEWAY_CONFIGS ]] || die "LLM_GATEWAY_CONFIGS=$LLM_GATEWAY_CONFIGS is not a directory"
    echo "$LLM_GATEWAY_CONFIGS"
  elif [[ -d $feature_dir/configs ]]; then
    echo "$feature_dir/configs"
  elif [[ -n $SOURCE && -d $SOURCE/configs ]]; then
    echo "$SOURCE/configs"
  fi
}
CONFIGS=$(configs_source)
[[ -n $CONFIGS ]] || die "no starter configs: set LLM_GATEWAY_CONFIGS, ship configs/ next to install.sh," \
  "or set LLM_GATEWAY_SOURCE"
shopt -s nullglob
starter_configs=("$CONFIGS"/*.yaml)
shopt -u nullglob
((${#starter_configs[@]} > 0)) || die "no *.yaml starter configs in $CONFIGS"

# ---------------------------------------------------------------------------------------
# Debian packages: only what is missing, and never with LLM_GATEWAY_SKIP_PACKAGES=1.

# Runtime libraries of the binary (readelf -d NEEDED, mapped with dpkg -S), CA certificates
# for HTTPS upstreams, PostgreSQL (the .env's DATABASE_URL is a local server) and Redis.
packages=(libprometheus-cpp-core1.0 libpqxx-6.4 libhiredis0.14 libcaf-core0.17 libyaml-cpp0.7
  libjemalloc2 zlib1g libssl3 libsimdjson14 libstdc++6 libgcc-s1 ca-certificates postgresql)
if [[ $ENABLE_REDIS == true ]]; then packages+=(redis-server); fi

skip_packages() { [[ ${LLM_GATEWAY_SKIP_PACKAGES:-} =~ ^(1|true|yes)$ ]]; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

install_packages() {
  if skip_packages; then
    log "LLM_GATEWAY_SKIP_PACKAGES set: not installing Debian packages (${packages[*]})"
    return
  fi
  command -v dpkg-query >/dev/null || die "not a Debian-based image (no dpkg-query); set LLM_GATEWAY_SKIP_PACKAGES=1" \
    "and provide: ${packages[*]}"
  if [[ -r /etc/os-release ]]; then
    local id version
    id=$(. /etc/os-release && echo "${ID:-}")
    version=$(. /etc/os-release && echo "${VERSION_ID:-}")
    [[ $id == debian && $version == 12 ]] ||
      warn "built for Debian 12 (bookworm); this image is $id $version: the runtime packages may be named differently"
  fi
  local missing=() p
  for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
  if ((${#missing[@]} == 0)); then
    log "all ${#packages[@]} Debian packages present"
    return
  fi
  [[ $(id -u) -eq 0 ]] || die "need root to install: ${missing[*]}"
  # No default cluster: start_llm_gateway.sh makes its own under the prefix.
  if [[ " ${missing[*]} " == *" postgresql "* ]]; then
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/llm-gateway.conf
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -rf /var/lib/apt/lists/*
}

install_packages

# ---------------------------------------------------------------------------------------
# The binary.

if [[ -z $BINARY ]]; then
  log "building llm-gateway from $SOURCE"
  if ! skip_packages; then "$SOURCE/scripts/install-deps.sh" --run; fi
  (cd "$SOURCE" && scripts/build.sh release llm-gateway)
  BINARY=$SOURCE/build/release/apps/gateway/llm-gateway
  [[ -x $BINARY ]] || die "the build did not produce $BINARY"
fi

mkdir -p "$PREFIX/bin" "$PREFIX/configs" "$PREFIX/share/configs" "$PREFIX/logs" "$PREFIX/data"
tmp="$PREFIX/bin/.llm-gateway.new.$$"
install -m 0755 "$BINARY" "$tmp"
mv -f "$tmp" "$PREFIX/bin/llm-gateway"
if ! version=$("$PREFIX/bin/llm-gateway" --version 2>&1); then
  echo "$version" >&2
  if command -v ldd >/dev/null && ldd "$PREFIX/bin/llm-gateway" 2>/dev/null | grep -q "not found"; then
    ldd "$PREFIX/bin/llm-gateway" | grep "not found" >&2
  fi
  die "$PREFIX/bin/llm-gateway does not run (missing libraries above, or a CPU older than the build" \
    "targets: rebuild with GW_CMAKE_ARGS=-DGW_MARCH=)"
fi
log "installed $version from $BINARY"

# ---------------------------------------------------------------------------------------
# Starter configs, like dpkg conffiles: a config the user has not changed is upgraded,
# a changed one is kept (the new version is in share/configs/).

for src in "${starter_configs[@]}"; do
  name=$(basename "$src")
  dest=$PREFIX/configs/$name
  pristine=$PREFIX/share/configs/$name
  if [[ ! -e $dest ]] || { [[ -e $pristine ]] && cmp -s "$dest" "$pristine"; }; then
    install -m 0644 "$src" "$dest"
  elif ! cmp -s "$dest" "$src"; then
    log "kept your edited configs/$name (the feature's version is share/configs/$name)"
  fi
  install -m 0644 "$src" "$pristine"
done

# ---------------------------------------------------------------------------------------
# .env (rendered from env.template; written only when missing) and .env.example.

render_env() {
  local options="enablePresidio=$ENABLE_PRESIDIO enableRedis=$ENABLE_REDIS"
  options+=" enableLangfuse=$ENABLE_LANGFUSE startWithDefaults=$START_WITH_DEFAULTS"
  local lf_pk="" lf_sk="" lf_comment redis_host redis_comment defaults=""
  if [[ $START_WITH_DEFAULTS == true && $ENABLE_LANGFUSE == true ]]; then
    lf_pk=$LANGFUSE_DEFAULT_PUBLIC_KEY
    lf_sk=$LANGFUSE_DEFAULT_SECRET_KEY
    lf_comment="    # startWithDefaults: the key the Langfuse compose file (external/langfuse) creates"
  else
    lf_comment="                                               # Generated from the Langfuse dashboard"
  fi
  if [[ $ENABLE_REDIS == true ]]; then
    redis_host=localhost
    redis_comment="                                               # Default Redis host (started by start_llm_gateway.sh)"
  else
    redis_host=""
    redis_comment="                                                        # enableRedis=false: empty, the gateway uses no Redis"
  fi
  if [[ $START_WITH_DEFAULTS == true ]]; then
    defaults="# startWithDefaults: a virtual key the gateway creates at start when it does not exist yet."
    defaults+=$'\n'"LLM_GATEWAY_DEFAULT_VIRTUAL_KEY=\"$DEFAULT_VIRTUAL_KEY\""
    defaults+=$'\n'"LLM_GATEWAY_DEFAULT_VIRTUAL_KEY_ALIAS=\"default\""
  fi
  local line
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line//@OPTIONS@/$options}
    line=${line//@LANGFUSE_PUBLIC_KEY@/$lf_pk}
    line=${line//@LANGFUSE_SECRET_KEY@/$lf_sk}
    line=${line//@LANGFUSE_KEY_COMMENT@/$lf_comment}
    line=${line//@REDIS_HOST@/$redis_host}
    line=${line//@REDIS_HOST_COMMENT@/$redis_comment}
    if [[ $line == "@DEFAULT_KEYS@" ]]; then
      if [[ -n $defaults ]]; then printf '%s\n' "$defaults"; fi
      continue
    fi
    printf '%s\n' "$line"
  done <"$feature_dir/env.template"
}

render_env >"$PREFIX/.env.example.new"
chmod 0600 "$PREFIX/.env.example.new"
mv -f "$PREFIX/.env.example.new" "$PREFIX/.env.example"
if [[ ! -e $PREFIX/.env ]]; then
  install -m 0600 "$PREFIX/.env.example" "$PREFIX/.env"
  log "wrote $PREFIX/.env"
elif ! cmp -s "$PREFIX/.env" "$PREFIX/.env.example"; then
  log "kept the existing $PREFIX/.env (a fresh one would be $PREFIX/.env.example)"
fi

cat >"$PREFIX/feature-options.env" <<EOF
# Written by the llm-gateway dev-container feature $FEATURE_VERSION at each install; read by
# start_llm_gateway.sh (ENABLE_REDIS: whether it starts a local Redis).
ENABLE_PRESIDIO=$ENABLE_PRESIDIO
ENABLE_REDIS=$ENABLE_REDIS
ENABLE_LANGFUSE=$ENABLE_LANGFUSE
START_WITH_DEFAULTS=$START_WITH_DEFAULTS
EOF

install -m 0755 "$feature_dir/start_llm_gateway.sh" "$PREFIX/start_llm_gateway.sh"

# ---------------------------------------------------------------------------------------
# Presidio and Langfuse are not Debian packages: compose files to run them as containers.

if [[ $ENABLE_PRESIDIO == true ]]; then
  mkdir -p "$PREFIX/external/presidio"
  install -m 0644 "$feature_dir/external/presidio/docker-compose.yml" "$PREFIX/external/presidio/"
else
  rm -rf "$PREFIX/external/presidio"
fi
if [[ $ENABLE_LANGFUSE == true ]]; then
  mkdir -p "$PREFIX/external/langfuse"
  install -m 0644 "$feature_dir/external/langfuse/docker-compose.yml" \
    "$feature_dir/external/langfuse/gateway-callbacks.yaml" "$PREFIX/external/langfuse/"
  {
    echo "# Read by docker compose for external/langfuse/docker-compose.yml (written by the feature)."
    if [[ $START_WITH_DEFAULTS == true ]]; then
      echo "# startWithDefaults: Langfuse creates this user, organisation, project and API keys at start."
      echo "LANGFUSE_INIT_ORG_ID=llm-gateway"
      echo "LANGFUSE_INIT_ORG_NAME=LLM Gateway"
      echo "LANGFUSE_INIT_PROJECT_ID=llm-gateway"
      echo "LANGFUSE_INIT_PROJECT_NAME=LLM Gateway"
      echo "LANGFUSE_INIT_PROJECT_PUBLIC_KEY=$LANGFUSE_DEFAULT_PUBLIC_KEY"
      echo "LANGFUSE_INIT_PROJECT_SECRET_KEY=$LANGFUSE_DEFAULT_SECRET_KEY"
      echo "LANGFUSE_INIT_USER_EMAIL=$LANGFUSE_DEFAULT_USER"
      echo "LANGFUSE_INIT_USER_NAME=admin"
      echo "LANGFUSE_INIT_USER_PASSWORD=$LANGFUSE_DEFAULT_PASSWORD"
    else
      echo "# No startWithDefaults: sign up in the UI, create a project and API keys, and put them in"
      echo "# $PREFIX/.env (LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY)."
    fi
  } >"$PREFIX/external/langfuse/.env"
else
  rm -rf "$PREFIX/external/langfuse"
fi
rmdir "$PREFIX/external" 2>/dev/null || true

# ---------------------------------------------------------------------------------------
# README in the prefix.

{
  cat <<EOF
# LLM Gateway ($PREFIX)

Installed by the llm-gateway dev-container feature $FEATURE_VERSION: $version.
Options: enablePresidio=$ENABLE_PRESIDIO, enableRedis=$ENABLE_REDIS, enableLangfuse=$ENABLE_LANGFUSE,
startWithDefaults=$START_WITH_DEFAULTS.

    cd $PREFIX
    ./start_llm_gateway.sh                                       # built-in mock models mock-gpt, mock-embed
    ./start_llm_gateway.sh --config configs/model-config-openai.yaml
    ./start_llm_gateway.sh --stop-services                       # stop PostgreSQL/Redis it started

The gateway listens on http://localhost:4000 (LLM_GATEWAY_PORT). Master key: LITELLM_MASTER_KEY in .env
(sk-password).
EOF
  if [[ $START_WITH_DEFAULTS == true ]]; then
    echo "Virtual key (startWithDefaults): $DEFAULT_VIRTUAL_KEY, created at start."
  fi
  cat <<EOF

- bin/llm-gateway: the gateway (llm-gateway --help)
- configs/: starter configs (OpenAI, Azure, Bedrock, local servers, mock provider); share/configs/ has the
  feature's pristine copies
- .env: environment for the start script and the gateway (never overwritten by the feature)
- data/postgres, data/redis: the local PostgreSQL cluster and Redis data, made on first start
- logs/: PostgreSQL and Redis logs
EOF
  if [[ $ENABLE_REDIS == true ]]; then
    echo "- Redis: Debian's redis-server on REDIS_HOST:REDIS_PORT, started by start_llm_gateway.sh. The gateway"
    echo "  uses it for cluster-wide rate limits; response caching (and semantic caching, which needs Redis Stack)"
    echo "  is not implemented yet."
  fi
  if [[ $ENABLE_LANGFUSE == true ]]; then
    echo "- external/langfuse/: Langfuse is not installed in this container. Run it with Docker:"
    echo "  docker compose -f $PREFIX/external/langfuse/docker-compose.yml up -d   (UI on http://localhost:3000)"
    echo "  and enable tracing in your config (external/langfuse/gateway-callbacks.yaml)."
    if [[ $START_WITH_DEFAULTS == true ]]; then
      echo "  startWithDefaults: Langfuse login admin@dep.com / password; the API keys are already in .env."
    fi
  fi
  if [[ $ENABLE_PRESIDIO == true ]]; then
    echo "- external/presidio/: Presidio is not installed in this container. Run it with Docker:"
    echo "  docker compose -f $PREFIX/external/presidio/docker-compose.yml up -d   (analyzer :5001, anonymizer :5002)"
    echo "  The gateway does not mask PII through Presidio yet: PRESIDIO_* in .env are written but unused."
  fi
} >"$PREFIX/README.md"

# ---------------------------------------------------------------------------------------
# Give the prefix to the container's user (not data/: PostgreSQL's cluster keeps its owner).

if [[ $(id -u) -eq 0 && -n ${_REMOTE_USER:-} && ${_REMOTE_USER} != root ]] && id -u "$_REMOTE_USER" >/dev/null 2>&1; then
  find "$PREFIX" -path "$PREFIX/data/*" -prune -o -exec chown "$_REMOTE_USER:" {} +
  log "gave $PREFIX to $_REMOTE_USER"
fi

log "done: cd $PREFIX && ./start_llm_gateway.sh --config configs/<file>"
