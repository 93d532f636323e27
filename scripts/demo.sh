#!/usr/bin/env bash
# make demo: the whole idea on one machine with no cloud. Everything lives in one SQLite file
# under .karma-demo/; Terraform really runs (built-in terraform_data only, no provider download).
set -euo pipefail
cd "$(dirname "$0")/.."
KARMA="$PWD/.cache/bin/karma"
DEMO="$PWD/.karma-demo"

if ! command -v terraform >/dev/null 2>&1 && [ -z "${KARMA_TERRAFORM:-}" ]; then
  echo "make demo needs terraform (>= 1.5) on the PATH: install it from https://developer.hashicorp.com/terraform/install" >&2
  echo "or set KARMA_TERRAFORM to its path." >&2
  exit 1
fi

rm -rf "$DEMO"
mkdir -p "$DEMO"
cp -r examples "$DEMO/repo"
rm -rf "$DEMO/repo/.terraform"
export KARMA_HOME="$DEMO/state" KARMA_REPO="$DEMO/repo"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
commit() { # author email message
  git -C "$DEMO/repo" -c user.name="$1" -c user.email="$2" commit -qam "$3"
}
edit() { # file python-expression-on-d
  python3 - "$DEMO/repo/$1" "$2" <<'PY'
import json, sys
path, expr = sys.argv[1], sys.argv[2]
d = json.load(open(path))
exec(expr)
json.dump(d, open(path, "w"), indent=2)
PY
}

step "The config repository: examples/ (12 components in dev and prod), committed to a local Git repository"
git -C "$DEMO/repo" init -q -b main
git -C "$DEMO/repo" add -A
git -C "$DEMO/repo" -c user.name="Ada Lovelace" -c user.email="ada@example.com" commit -qm "Initial platform config"
"$KARMA" graph build | sed -n '1,5p'

step "Deploy everything: the commit becomes a change; Terraform runs wave by wave"
"$KARMA" ingest commit --auto-approve
"$KARMA" apply --auto-approve

step "Bob adds an availability zone to prod vpc/core: only private_subnet_ids changes"
edit iac/prod/vpc/core/config.json 'd["az_count"] = d.get("az_count", 2) + 1'
commit "Bob Builder" bob@example.com "prod vpc: one more availability zone"
"$KARMA" ingest commit --auto-approve
"$KARMA" apply --auto-approve

step "Carol names the flow log group: an output no dependent consumes, so nobody is redeployed"
edit iac/prod/vpc/core/config.json 'd.setdefault("flow_logs", {})["log_group_name"] = "/aws/vpc/prod-core-flows"'
commit "Carol Shaw" carol@example.com "prod vpc: name the flow log group"
"$KARMA" ingest commit --auto-approve
"$KARMA" apply --auto-approve

step "Someone outside Karma changes a runtime in Parameter Store: the dependents that consume zone_id follow"
RT=$("$KARMA" params get /iac/route53-zone/main/runtime --env prod)
NEW=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["zone_id"]="Z0DELEGATED42"; print(json.dumps(d, separators=(",",":")))' "$RT")
"$KARMA" params put /iac/route53-zone/main/runtime "$NEW" --env prod --as "arn:aws:iam::123456789012:user/dave" --auto-approve
"$KARMA" apply --auto-approve

step "Lineage: why is prod/ecs-service/api deployed like this?"
"$KARMA" lineage prod/ecs-service/api --env prod

step "Lineage forward: everything Bob's commit caused"
"$KARMA" lineage --forward "$(git -C "$DEMO/repo" rev-parse HEAD~1)"

step "Audit log of prod/vpc/core (every message, hash-chained)"
"$KARMA" audit log --component prod/vpc/core
"$KARMA" audit verify
echo
echo "State: $DEMO/state/karma.db — try: KARMA_HOME=$DEMO/state KARMA_REPO=$DEMO/repo $KARMA audit log"
