#!/usr/bin/env bash
# make test: every test, with the real local servers the adapters are proven against
# (Gremlin Server, DynamoDB Local, moto). Starts them if they are not running, exports their
# endpoints (KARMA_TEST_*), runs go test, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
started=0
if [ -z "${KARMA_TEST_GREMLIN:-}${KARMA_TEST_DYNAMODB:-}${KARMA_TEST_MOTO_ENDPOINT:-}" ]; then
  exports=$(scripts/peers.sh start)
  eval "$exports"
  started=1
  trap 'scripts/peers.sh stop' EXIT
fi
echo "peers: gremlin=${KARMA_TEST_GREMLIN:-none} dynamodb=${KARMA_TEST_DYNAMODB:-none} moto=${KARMA_TEST_MOTO_ENDPOINT:-none}"
go test -count=1 "$@" ./...
