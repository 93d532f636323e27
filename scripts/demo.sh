#!/usr/bin/env bash
# make demo: build the example repository's graph, show what a change affects, publish configs to
# the embedded parameter store. Everything lives in one SQLite file under .karma-demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
KARMA=".cache/bin/karma"
STATE=".karma-demo"
rm -rf "$STATE"
export KARMA_HOME="$STATE" KARMA_REPO="examples"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Build and validate the graph of examples/ (12 components, dev and prod)"
$KARMA graph build

step "Publish every resolved config to the embedded Parameter Store"
$KARMA params publish

step "Publishing again writes nothing: unchanged configs get no new version"
$KARMA params publish

step "Blast radius of prod vpc/core, with the reason for each component"
$KARMA impact vpc/core --env prod

step "Only the flow_log_group output changed: who consumes it? (nobody)"
$KARMA impact vpc/core --env prod --keys flow_log_group

step "Only private_subnet_ids changed"
$KARMA impact vpc/core --env prod --keys private_subnet_ids

step "The prod graph as Mermaid (paste into any Mermaid viewer)"
$KARMA graph export --env prod --format mermaid
