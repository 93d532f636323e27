// Package drift finds where what is published or deployed no longer matches Karma's intent, and
// turns it into events. Three comparisons per component of an environment, each against the
// deploy branch's head (configrepo: Build(env, head)):
//
//   - config: Git's resolved config vs <prefix>/<type>/<nickname>/config, compared canonically
//     (key order and spacing do not count; numbers are compared as written, as Karma hashes
//     them). Drift: the value differs, the parameter is missing, or a /config remains for a
//     component Git no longer defines (orphan).
//   - runtime: <prefix>/<type>/<nickname>/runtime vs what Karma's last deployment published.
//     The signal is Karma's provenance (params.Provenance: "karma: … sha256=<hash of the value>"
//     in the parameter's description): a value whose description is not Karma's provenance for
//     exactly that value was written by someone else. It travels with the parameter in the same
//     paged read, so no per-component lookup is needed; the change sets (one listing) only say
//     whether Karma deployed the component at all, so that a missing runtime of a deployed
//     component is drift and the runtime of a component Karma never deployed is not judged.
//   - infrastructure (opt-in per environment, account_environments' drift_refresh: it calls the
//     cloud): a refresh-only Terraform plan of each deployed component's workspace, with the
//     config and modules of its last applied deployment. Drift: resources changed outside
//     Terraform, or module outputs the refresh changes.
//
// Cost: one GetByPath of the prefix per environment (params.GetByPathDescribed: on SSM two paged
// reads, GetParametersByPath and DescribeParameters), one listing of the change sets, the build
// of the head (cached by configrepo), and — only where opted in — one terraform run per deployed
// component. Components a change set is deploying (a node not settled in an unfinished change
// set) are not compared: their parameters are about to change.
//
// The comparisons (compare.go, infra.go) are pure functions of what was read (check.go reads).
// Each finding has a deterministic id (finding.go): the same drift seen again — same parameter
// version and hashes, same state serial and changes, same last deployment — has the same id, so
// Recorder (record.go) publishes it once: a drift.detected per finding, and, when the
// environment's allow_drift is false, one corrective change.detected (source drift) per run
// whose root causes are the new drift events, built by resolve from the deploy branch's head and
// approved like any other change set.
package drift
