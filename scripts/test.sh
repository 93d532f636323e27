#!/usr/bin/env bash
# make test: every test, with the real local servers the adapters are proven against
# (Gremlin Server, DynamoDB Local, moto). Starts them if they are not running, exports their
# endpoints (KARMA_TEST_*), runs go test, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

# terraform/: `terraform fmt -check` and `terraform validate`, with the AWS provider from a local
# filesystem mirror (KARMA_TF_PLUGIN_MIRROR if set, else /opt/tf-plugins or Terraform's implied
# local mirror directories); the registry is never asked. Init runs in a scratch copy with a temporary
# TF_DATA_DIR and CLI config, so nothing is written into the checkout. Without terraform or a
# mirror this step says why and is skipped; the rest of the tests run. (go test ./terraform
# proves validate bites, on a copy with a misspelt argument, and checks the routing.)
terraform_check() (
  if ! command -v terraform >/dev/null 2>&1; then
    echo "terraform check: skipped: no terraform on the PATH"
    return 0
  fi
  start=$(date +%s%N)
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  unset TF_CLI_CONFIG_FILE TF_PLUGIN_CACHE_DIR TF_DATA_DIR
  export TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE="$tmp/cli.tfrc"
  : >"$TF_CLI_CONFIG_FILE"
  terraform fmt -check -recursive -diff terraform || { echo "terraform check: terraform fmt -check failed (run terraform fmt -recursive terraform)"; return 1; }
  platform=$(terraform version -json | sed -n 's/.*"platform": *"\([^"]*\)".*/\1/p')
  mirror=""
  mirrors=(/opt/tf-plugins "${HOME:-}/.terraform.d/plugins" "${HOME:-}/.local/share/terraform/plugins"
    /usr/local/share/terraform/plugins /usr/share/terraform/plugins)
  if [ -n "${KARMA_TF_PLUGIN_MIRROR:-}" ]; then mirrors=("$KARMA_TF_PLUGIN_MIRROR"); fi
  for d in "${mirrors[@]}"; do
    if compgen -G "$d/registry.terraform.io/hashicorp/aws/*/$platform" >/dev/null; then
      mirror=$d
      break
    fi
  done
  if [ -z "$mirror" ]; then
    echo "terraform check: fmt ok; validate skipped: no filesystem mirror of registry.terraform.io/hashicorp/aws for $platform in ${mirrors[*]} (set KARMA_TF_PLUGIN_MIRROR)"
    return 0
  fi
  printf 'provider_installation {\n  filesystem_mirror {\n    path = "%s"\n  }\n}\n' "$mirror" >"$TF_CLI_CONFIG_FILE"
  export TF_DATA_DIR="$tmp/data"
  mkdir "$tmp/module"
  cp terraform/*.tf "$tmp/module/"
  if ! out=$(terraform -chdir="$tmp/module" init -backend=false -input=false -no-color 2>&1); then
    echo "$out"
    echo "terraform check: terraform init failed (provider from $mirror)"
    return 1
  fi
  if ! out=$(terraform -chdir="$tmp/module" validate -no-color 2>&1); then
    echo "$out"
    echo "terraform check: terraform validate failed"
    return 1
  fi
  version=$(ls -d "$tmp"/data/providers/registry.terraform.io/hashicorp/aws/*/ | xargs -n1 basename | head -1)
  echo "terraform check: fmt and validate ok (hashicorp/aws $version from $mirror) in $(( ($(date +%s%N) - start) / 1000000 )) ms"
)
terraform_check

# The web page's browser tests (cmd/karma/web_test.go) drive Debian's Chromium: installed here when
# missing and running as root (as CI does, on a fresh machine); otherwise those tests say so and skip.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the web page's browser tests"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ||
    echo "chromium: not installed: the browser tests will be skipped"
fi

started=0
if [ -z "${KARMA_TEST_GREMLIN:-}${KARMA_TEST_DYNAMODB:-}${KARMA_TEST_MOTO_ENDPOINT:-}" ]; then
  exports=$(scripts/peers.sh start)
  eval "$exports"
  started=1
  trap 'scripts/peers.sh stop' EXIT
fi
echo "peers: gremlin=${KARMA_TEST_GREMLIN:-none} dynamodb=${KARMA_TEST_DYNAMODB:-none} moto=${KARMA_TEST_MOTO_ENDPOINT:-none}"
# The packages whose adapters are proven against moto run after the rest, not beside the
# CPU-heavy ones: moto is one Python process, and starved of CPU on a 2-core machine it answered
# late enough for the SDK to retry requests it had already carried out (a PutParameter twice,
# a receive whose messages then stayed hidden), which failed those tests now and then.
against_moto=(./shared/sqs ./shared/params/ssm ./shared/lambda ./shared/eventbridge ./cmd/lambda)
rest=()
while IFS= read -r dir; do
  skip=0
  for m in "${against_moto[@]}"; do [ "$dir" = "$m" ] && skip=1; done
  [ "$skip" = 1 ] || rest+=("$dir")
done < <(go list -f '{{.Dir}}' ./... | sed "s|^$PWD|.|")
status=0
# cmd/karma takes 4-6 minutes on a quiet 2-core machine, and passed 10 (go test's default limit
# a package) on a loaded one: a limit of its own, still under make test's 20 minutes in all.
go test -count=1 -timeout 15m "$@" "${rest[@]}" || status=$?
go test -count=1 -timeout 15m "$@" "${against_moto[@]}" || status=$?
exit "$status"
