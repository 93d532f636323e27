package message

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"
)

// Wire names of the message types, and the newest version of each (what producers write).
const (
	TypeChangeDetected      = "change.detected"
	TypeChangeResolved      = "change.resolved"
	TypeDeploymentScheduled = "deployment.scheduled"
	TypeDeploymentSkipped   = "deployment.skipped"
	TypeDeploymentRecorded  = "deployment.recorded"
	TypeDeploymentPlanned   = "deployment.planned"
	TypeDeploymentApproved  = "deployment.approved"
	TypeDeploymentApplied   = "deployment.applied"
	TypeDeploymentFailed    = "deployment.failed"
	TypeChangeSuperseded    = "change.superseded"
	TypeChangeRejected      = "change.rejected"
	TypeDriftDetected       = "drift.detected"
	TypeChangeExpired       = "change.expired"
	// Triggers: the ingest stage's input (triggers.go).
	TypeGitPushed        = "git.pushed"
	TypeParameterChanged = "parameter.changed"
)

// Latest is the version producers write for each type.
var Latest = map[string]int{
	TypeChangeDetected:      4,
	TypeChangeResolved:      2,
	TypeDeploymentScheduled: 1,
	TypeDeploymentSkipped:   1,
	TypeDeploymentRecorded:  1,
	TypeDeploymentPlanned:   2,
	TypeDeploymentApproved:  2,
	TypeDeploymentApplied:   1,
	TypeDeploymentFailed:    1,
	TypeChangeSuperseded:    1,
	TypeChangeRejected:      1,
	TypeDriftDetected:       1,
	TypeChangeExpired:       1,
	TypeGitPushed:           1,
	TypeParameterChanged:    1,
}

// Sources of a change.
const (
	SourceGit       = "git"       // a config change found in a Git commit (push or local commit)
	SourceParameter = "parameter" // a /config parameter written outside Karma
	SourceRuntime   = "runtime"   // a /runtime parameter changed (by a deployment or anyone)
	SourceRequest   = "request"   // a change request (CLI propose-change, POST /request-change)
	SourceRollback  = "rollback"  // a deployment's config deployed again (karma rollback), since v4
	SourceDrift     = "drift"     // a corrective change set: Git's intent deployed again after drift, since v4
)

// Cause kinds: what a deployment was caused by.
const (
	CauseCommit     = "commit"     // id = commit sha
	CauseParameter  = "parameter"  // id = "<name>@<version>"
	CauseRequest    = "request"    // id = change request id
	CauseDeployment = "deployment" // id = upstream deployment id
	CauseRetry      = "retry"      // id = the failed deployment this one runs again (karma retry)
	CauseRollback   = "rollback"   // id = the deployment whose config this one deploys again (karma rollback)
	CausePromotion  = "promotion"  // id = the change set of the previous environment whose success promoted the change
	CauseDrift      = "drift"      // id = the drift event a corrective change set puts right
)

// ComponentRef names a component in the message's env.
type ComponentRef struct {
	Type     string `json:"type"`
	Nickname string `json:"nickname"`
}

// ID is "<env>/<type>/<nickname>".
func (c ComponentRef) ID(env string) string { return env + "/" + c.Type + "/" + c.Nickname }

// Cause is one reason a deployment happens.
type Cause struct {
	Kind string `json:"kind"` // Cause*
	ID   string `json:"id"`
	// Keys are the changed runtime keys that reached the dependent (kind deployment).
	Keys []string `json:"keys,omitzero"` // [] = none changed; absent = not applicable
	// Trigger is TriggerOnAnyApply on a kind deployment cause when the dependent's reference
	// redeploys it after every apply of the upstream and no key it consumes changed (Keys is
	// then []); "" when a consumed key changed. Added to version 1: optional.
	Trigger string `json:"trigger,omitempty"`
}

// TriggerOnAnyApply: the reference says "redeploy": "on-any-apply" (karma.depends_on).
const TriggerOnAnyApply = "on-any-apply"

// ChangeResolved (change.resolved v2): the impact of a change set — everything that may be
// redeployed, in waves — computed once at the start. v1 had no Commit or QueuedBehind.
type ChangeResolved struct {
	ChangeSetID string     `json:"change_set_id"`
	Source      string     `json:"source"`      // as in change.detected
	RootCauses  []Cause    `json:"root_causes"` // the commit, parameter version or request
	Roots       []string   `json:"roots"`       // component ids deployed because they changed
	Affected    []string   `json:"affected"`
	Waves       [][]string `json:"waves"`
	// Commit is the commit whose tree every deployment of the change set uses (config and
	// Terraform modules), "" when it was rejected before one was known.
	Commit string `json:"commit"`
	// QueuedBehind lists the earlier change sets of the environment this one waits for: for
	// each component it shares with unfinished change sets, the latest of them (which waits for
	// the ones before it). This one starts when they are done (or superseded).
	QueuedBehind []string `json:"queued_behind,omitempty"`
	// Rejected says why nothing is deployed (invalid repository, cycle with its path).
	Rejected string `json:"rejected,omitempty"`
	// Held says why a promotion is not built yet (nothing scheduled, Commit ""): it is tried
	// again as a change set of its own once the environments it waits for moved.
	Held string `json:"held,omitempty"`
	// Approval is what the change set needs before it is applied, by the rules of its
	// environment at Commit (karma.json "environments"); absent when the environment has none.
	// Added to version 2: optional.
	Approval *ApprovalRules `json:"approval,omitempty"`
}

// ApprovalRules are the approval rules a change set was created under.
type ApprovalRules struct {
	Protected bool `json:"protected,omitempty"`
	// Required is how many distinct people must approve (0 when the change set is approved at
	// once: auto-approve where the environment allows it or always approves).
	Required int `json:"required"`
	// ExpiresAt: not approved by then, the change set expires (change.expired).
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Author is the change's commit's author, who may not approve it in a protected environment.
	Author string `json:"author,omitempty"`
	// AutoApproveRefused says why a request for auto-approve was downgraded to review.
	AutoApproveRefused string `json:"auto_approve_refused,omitempty"`
}

// ChangeResolvedV1 is the first version of change.resolved.
type ChangeResolvedV1 struct {
	ChangeSetID string     `json:"change_set_id"`
	Source      string     `json:"source"`
	RootCauses  []Cause    `json:"root_causes"`
	Roots       []string   `json:"roots"`
	Affected    []string   `json:"affected"`
	Waves       [][]string `json:"waves"`
	Rejected    string     `json:"rejected,omitempty"`
}

// DeploymentScheduled (deployment.scheduled v1): resolve decided to deploy a component.
type DeploymentScheduled struct {
	ChangeSetID  string  `json:"change_set_id"`
	DeploymentID string  `json:"deployment_id"`
	Component    string  `json:"component"` // id
	Wave         int     `json:"wave"`
	CausedBy     []Cause `json:"caused_by"`
	ConfigHash   string  `json:"config_hash"`
	Destroy      bool    `json:"destroy,omitempty"`
}

// DeploymentSkipped (deployment.skipped v1): a component in the impact was not redeployed, and why.
type DeploymentSkipped struct {
	ChangeSetID string `json:"change_set_id"`
	Component   string `json:"component"`
	Reason      string `json:"reason"` // changeset.Reason*: "no-consumed-key-changed", "upstream-failed", "destroy-held", "superseded", "rejected"
	Detail      string `json:"detail"`
}

// DeploymentRecorded (deployment.recorded v1): lineage written; plan may start.
type DeploymentRecorded struct {
	DeploymentScheduled
}

// PlanSummary counts resource changes of a plan.
type PlanSummary struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Destroy int `json:"destroy"`
	NoOp    int `json:"no_op"`
}

// DeploymentPlanned (deployment.planned v2): a saved plan, ready for review, with its
// per-resource changes. v1 had no Resources; it is upcast with an empty list marked truncated.
type DeploymentPlanned struct {
	DeploymentScheduled
	Plan     PlanSummary `json:"plan"`
	PlanFile string      `json:"plan_file"`
	PlanHash string      `json:"plan_hash"` // sha256 of the saved plan: apply applies exactly this
	// Resources are the managed resources the plan changes (no-ops and data sources left out),
	// in Terraform's order, at most MaxPlanResources of them.
	Resources []ResourceChange `json:"resources"`
	// ResourcesTruncated: Resources does not list every change (more than MaxPlanResources, or a
	// v1 plan, which carried none). Plan's counts are always complete.
	ResourcesTruncated bool `json:"resources_truncated,omitempty"`
}

// MaxPlanResources bounds DeploymentPlanned.Resources; MaxPlanValueBytes bounds the JSON of one
// resource's Before or After, and MaxPlanValuesBytes all of them in one plan: a message stays far
// below the queues' 256 KB.
const (
	MaxPlanResources   = 200
	MaxPlanValueBytes  = 2 << 10
	MaxPlanValuesBytes = 16 << 10
)

// ResourceChange is one resource a plan changes, as `terraform show -json` reports it, with
// values Terraform marks sensitive replaced by "(sensitive value)" and values known only after
// apply by "(known after apply)".
type ResourceChange struct {
	Address string `json:"address"` // e.g. module.vpc.aws_subnet.private[0]
	// Actions are Terraform's: ["create"], ["update"], ["delete"], ["delete","create"] or
	// ["create","delete"] (a replacement), ["forget"].
	Actions []string `json:"actions"`
	// Before and After are the resource's values (absent when null, e.g. Before of a create).
	Before any `json:"before,omitempty"`
	After  any `json:"after,omitempty"`
	// ValuesOmitted: Before and After were left out to keep the message small.
	ValuesOmitted bool `json:"values_omitted,omitempty"`
}

// DeploymentPlannedV1 is the first version of deployment.planned: no resources.
type DeploymentPlannedV1 struct {
	DeploymentScheduled
	Plan     PlanSummary `json:"plan"`
	PlanFile string      `json:"plan_file"`
	PlanHash string      `json:"plan_hash"`
}

// DeploymentApproved (deployment.approved v2): a reviewed plan may be applied. It carries the
// plan as approved (deployment.planned v2); v1 carried a v1 plan.
type DeploymentApproved struct {
	DeploymentPlanned
	ApprovedBy string `json:"approved_by"`
}

// DeploymentApprovedV1 is the first version of deployment.approved.
type DeploymentApprovedV1 struct {
	DeploymentPlannedV1
	ApprovedBy string `json:"approved_by"`
}

// DeploymentApplied (deployment.applied v1): applied; runtime published.
type DeploymentApplied struct {
	ChangeSetID    string   `json:"change_set_id"`
	DeploymentID   string   `json:"deployment_id"`
	Component      string   `json:"component"`
	Wave           int      `json:"wave"`
	RuntimeVersion int64    `json:"runtime_version"`
	ChangedKeys    []string `json:"changed_keys"` // runtime keys whose value changed
	RuntimeHash    string   `json:"runtime_hash"`
}

// DeploymentFailed (deployment.failed v1): plan or apply failed; propagation below stops.
type DeploymentFailed struct {
	ChangeSetID  string `json:"change_set_id"`
	DeploymentID string `json:"deployment_id"`
	Component    string `json:"component"`
	Wave         int    `json:"wave"`
	Stage        string `json:"stage"` // "plan" or "apply"
	Error        string `json:"error"`
}

// ChangeSuperseded (change.superseded v1): someone explicitly replaced what is left of a change
// set — its pending deployments and the plans waiting for approval — by a later change set of
// the same environment that deploys the same components. Resolve skips them with reason
// "superseded" (recorded in the lineage) and starts the change sets queued behind it. A
// deployment being planned or applied is never superseded: the message is then refused.
type ChangeSuperseded struct {
	ChangeSetID  string `json:"change_set_id"` // the change set superseded
	SupersededBy string `json:"superseded_by"` // the later change set that deploys instead
	// Commit is the later change set's commit, for the record.
	Commit string `json:"commit,omitempty"`
}

// ChangeRejected (change.rejected v1): a person decided that a change set waiting for approval
// is not deployed. Resolve skips everything of it not yet settled — pending deployments and the
// plans waiting for approval — with reason "rejected" (the detail names who and why), and starts
// the change sets queued behind it. An approved change set is never rejected: the message is
// then refused.
type ChangeRejected struct {
	ChangeSetID string `json:"change_set_id"`
	Reason      string `json:"reason"` // why, in the words of who rejected it
}

// Kinds of drift (drift.detected's kind).
const (
	DriftConfig         = "config"         // Git's resolved config vs <prefix>/<type>/<nickname>/config
	DriftRuntime        = "runtime"        // .../runtime vs what Karma's last deployment published
	DriftInfrastructure = "infrastructure" // the real infrastructure vs the Terraform state
)

// Reasons of a drift (drift.detected's reason).
const (
	DriftDiffers   = "differs"   // the parameter's value is not Karma's (config: not Git's, canonically)
	DriftMissing   = "missing"   // the parameter is absent (config; runtime of a deployed component)
	DriftOrphan    = "orphan"    // a /config of a component Git no longer defines
	DriftRefreshed = "refreshed" // a refresh-only plan found resources or outputs changed
)

// What a drift run did about a drift (drift.detected's action).
const (
	DriftReport  = "report"  // allow_drift: only reported
	DriftCorrect = "correct" // a corrective change set (source drift) was queued
)

// DriftDetected (drift.detected v1): what Parameter Store or the real infrastructure holds no
// longer matches Karma's intent for one component. One message per component and kind; the same
// drift seen again has the same DriftID and idempotency key, and is one event.
type DriftDetected struct {
	// DriftID is "drift-<16 hex>", a function of the component, kind, reason, what was found
	// and expected, and the component's last deployment (so a drift that comes back after it was
	// corrected is a new one).
	DriftID   string `json:"drift_id"`
	Component string `json:"component"` // id
	Kind      string `json:"kind"`      // Drift*: config, runtime, infrastructure
	Reason    string `json:"reason"`    // differs, missing, orphan, refreshed
	Detail    string `json:"detail"`    // for people
	// Commit is the deploy branch's head the check compared with (Git's intent).
	Commit string `json:"commit"`
	// Parameter is the version found (config, runtime); absent when it is missing.
	Parameter *ParameterVersion `json:"parameter,omitempty"`
	// Expected and Found are hashes of Karma's intent and of what was found: the hex SHA-256 of
	// the canonical config (config), the provenance hash of Karma's last published value and of
	// the value found (runtime: params.Provenance's 16 hex digits).
	Expected string `json:"expected,omitempty"`
	Found    string `json:"found,omitempty"`
	// Resources are what a refresh-only plan changed (infrastructure).
	Resources []DriftResource `json:"resources,omitempty"`
	// Outputs are the module outputs (runtime keys) the refresh changed (infrastructure).
	Outputs []string `json:"outputs,omitempty"`
	// State is the Terraform state the refresh read (infrastructure).
	State *StateVersion `json:"state,omitempty"`
	// Action is DriftReport or DriftCorrect.
	Action string `json:"action"`
	// ChangeSetID is the corrective change set (action correct).
	ChangeSetID string `json:"change_set_id,omitempty"`
}

// DriftResource is one resource a refresh-only plan found changed outside Terraform.
type DriftResource struct {
	Address string   `json:"address"` // e.g. module.component.aws_s3_bucket.this
	Actions []string `json:"actions"` // terraform's: update, delete, ...
}

// StateVersion identifies a Terraform state as terraform does: lineage and serial.
type StateVersion struct {
	Serial  int64  `json:"serial"`
	Lineage string `json:"lineage"`
}

// DriftSetKey names a set of drift events for the idempotency key of the corrective change set
// that puts them right ("drift:<key>"): the first 16 hex digits of the SHA-256 of the sorted
// drift ids, comma-separated. The same drifts always give the same key.
func DriftSetKey(driftIDs []string) string {
	ids := slices.Sorted(slices.Values(driftIDs))
	sum := sha256.Sum256([]byte(strings.Join(ids, ",")))
	return hex.EncodeToString(sum[:8])
}

// ChangeExpired (change.expired v1): a change set was not approved before its environment's
// approval expiry. Resolve skips everything of it not yet settled with reason "expired" and
// starts the change sets queued behind it. A change set approved in time is left alone.
type ChangeExpired struct {
	ChangeSetID string    `json:"change_set_id"`
	ExpiresAt   time.Time `json:"expires_at"` // when it expired
}
