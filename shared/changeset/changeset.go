// Package changeset is the state of one change set: every component a root change may redeploy,
// and how far each has got. It decides, component by component, what to deploy next:
//
//   - The potential set is everything downstream of the roots (computed once, by resolve).
//   - A component is ready when every upstream inside the set is settled (applied, skipped,
//     failed or blocked). Waves are therefore respected without a global barrier: a component
//     starts as soon as its own upstreams are done.
//   - When ready, a component is blocked if an upstream failed or was blocked; deployed
//     (scheduled) if it is a root, an upstream's apply changed a runtime key it consumes, or an
//     upstream whose edge says "redeploy on any apply" was applied (the cause then says so:
//     trigger on-any-apply, keys []); otherwise skipped: "no consumed key changed". Skips and blocks settle it at once, which
//     may make its dependents ready in turn.
//
// Each component is deployed at most once per change set. Decisions are recorded in the change
// set together with an Announced flag (a transactional outbox): the stage that made them
// publishes them and then marks them announced, so a crash in between re-announces instead of
// losing them, and a redelivered event never decides twice.
package changeset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sort"
	"time"

	"github.com/usekarma/karma/shared/governance"
	"github.com/usekarma/karma/shared/message"
)

// Node states.
const (
	Pending   = "pending"
	Scheduled = "scheduled" // deployment.scheduled emitted; plan/apply under way
	Planned   = "planned"   // plan saved, waiting for approval
	Applied   = "applied"
	Failed    = "failed"
	Skipped   = "skipped"
	Blocked   = "blocked"
)

// Skip reasons.
const (
	ReasonNoConsumedKey  = "no-consumed-key-changed"
	ReasonUpstreamFailed = "upstream-failed"
	ReasonDestroyHeld    = "destroy-held"
	ReasonSuperseded     = "superseded"    // a later change set deploys it instead, by explicit choice
	ReasonRejected       = "rejected"      // a person rejected the change set (RejectedBy, RejectReason)
	ReasonExpired        = "expired"       // not approved before its environment's approval expiry (ExpiredAt)
	ReasonPolicyDenied   = "policy-denied" // a policy of the change's commit denies it (the detail gives the reasons)
)

// Upstream is an edge inside the set: this node depends on Component and consumes Consumes.
type Upstream struct {
	Component string   `json:"component"`
	Consumes  []string `json:"consumes"`
	// OnAnyApply: the node is redeployed after every apply of Component, whatever changed.
	OnAnyApply bool `json:"on_any_apply,omitempty"`
}

// Node is one component of the set.
type Node struct {
	Component  string          `json:"component"`
	Wave       int             `json:"wave"`
	Upstreams  []Upstream      `json:"upstreams,omitempty"`
	Dependents []string        `json:"dependents,omitempty"`
	Root       bool            `json:"root,omitempty"`
	Destroy    bool            `json:"destroy,omitempty"`
	Config     json.RawMessage `json:"config,omitempty"` // resolved config to deploy
	ConfigHash string          `json:"config_hash,omitempty"`
	// Commit is the commit whose Terraform module the node deploys when it is not the change
	// set's: the root of a rollback deploys the module of the commit it returns to.
	Commit string `json:"commit,omitempty"`
	// GitConfigHash is set on the root of a rollback: the hash of the config Git's head gave the
	// component when the rollback was resolved — what it rolls back from in Git. While the head
	// still gives that config, the rollback stands and the drift check does not take the
	// rolled-back /config for drift (shared/drift).
	GitConfigHash string          `json:"git_config_hash,omitempty"`
	State         string          `json:"state"`
	DeploymentID  string          `json:"deployment_id"`
	Causes        []message.Cause `json:"causes,omitempty"`
	ChangedKeys   []string        `json:"changed_keys,omitempty"`
	Reason        string          `json:"reason,omitempty"`
	Detail        string          `json:"detail,omitempty"`
	Announced     bool            `json:"announced,omitempty"`
	// Plan is kept while waiting for approval, with the id of the message that carried it (the
	// approval's cause).
	Plan          *message.DeploymentPlanned `json:"plan,omitempty"`
	PlanMessageID string                     `json:"plan_message_id,omitempty"`
	// Outcome is recorded by the apply stage before it announces deployment.applied, so that a
	// redelivery re-announces instead of applying twice.
	Outcome *Outcome `json:"outcome,omitempty"`
}

// Outcome of a successful apply. It is recorded before the runtime is published (RuntimeVersion
// 0 until then), so that a retry publishes the same document and reports the same changed keys.
type Outcome struct {
	RuntimeVersion int64           `json:"runtime_version"`
	ChangedKeys    []string        `json:"changed_keys"`
	RuntimeHash    string          `json:"runtime_hash"`
	Runtime        json.RawMessage `json:"runtime,omitempty"`
	// RuntimeDiff is how the changed keys changed (model.RuntimeDiff: values redacted): the
	// policies of the dependents scheduled for them see the keys each consumes (policy input
	// runtime_diff). Absent from outcomes recorded before it was kept.
	RuntimeDiff []message.KeyChange `json:"runtime_diff,omitempty"`
	Config      json.RawMessage     `json:"config,omitempty"`
	// Plan is the plan applied when it is not the one the deployment was planned with: a stale
	// plan made again and applied at once (auto-approved, workers/apply/stale.go). It is announced
	// in a deployment.planned — message PlanMessageID, the same on every announcement — before the
	// deployment.applied, which it causes.
	Plan          *message.DeploymentPlanned `json:"plan,omitempty"`
	PlanMessageID string                     `json:"plan_message_id,omitempty"`
}

// Settled reports whether the node will change no more.
func (n *Node) Settled() bool {
	switch n.State {
	case Applied, Failed, Skipped, Blocked:
		return true
	}
	return false
}

// ChangeSet is one root change in one environment.
type ChangeSet struct {
	ID            string           `json:"id"`
	Env           string           `json:"env"`
	CorrelationID string           `json:"correlation_id"`
	Source        string           `json:"source"`
	RootCauses    []message.Cause  `json:"root_causes"`
	Actor         message.Actor    `json:"actor"`
	AutoApprove   bool             `json:"auto_approve"`
	Approved      bool             `json:"approved"`
	ApprovedBy    string           `json:"approved_by,omitempty"`
	CreatedAt     time.Time        `json:"created_at"`
	Waves         [][]string       `json:"waves"`
	Nodes         map[string]*Node `json:"nodes"`
	Rejected      string           `json:"rejected,omitempty"`
	// Commit is the commit whose tree every node's config and Terraform module come from.
	Commit string `json:"commit,omitempty"`
	// QueuedBehind lists the earlier change sets of the environment, not done, that this one
	// waits for directly: for each component it shares with unfinished change sets, the latest
	// of them (each of those waits for the ones before it). Nothing here is decided until they
	// are done (see Ordering).
	QueuedBehind []string `json:"queued_behind,omitempty"`
	// Started: the first decisions were made (Start ran).
	Started bool `json:"started,omitempty"`
	// StartedBy names the change set whose end started this one (Release of a single change
	// set that was the last it waited behind): the one whose finishing event announces the
	// decisions it made then (resolve's release).
	StartedBy string `json:"started_by,omitempty"`
	// SupersededBy names the change set that explicitly replaced what was left of this one.
	SupersededBy string `json:"superseded_by,omitempty"`
	// RejectedBy and RejectReason record a person's decision not to deploy the change set
	// (change.rejected); Rejected, by contrast, is resolve's: the change is invalid.
	RejectedBy   string `json:"rejected_by,omitempty"`
	RejectReason string `json:"reject_reason,omitempty"`
	// Rollback is set on a rollback's change set: the deployment whose config its root deploys
	// again.
	Rollback *message.Rollback `json:"rollback,omitempty"`
	// PromotedFrom is the change set of the previous environment whose success promoted the
	// change into this one (promotion.go).
	PromotedFrom string `json:"promoted_from,omitempty"`
	// Promotion is where the change goes after this change set, and when (promotion.go).
	Promotion *Promotion `json:"promotion,omitempty"`
	// Held is set on a promotion resolve did not build: why, and what it waits for (promotion.go).
	Held *Hold `json:"held,omitempty"`
	// HeldBefore is, on a promotion tried again after a hold, the change set of the try held
	// before it.
	HeldBefore string `json:"held_before,omitempty"`
	// Governance (govern.go): the rules of the environment at Commit, the commit's author, the
	// approvals so far, when approval expires, and why a request for auto-approve was refused.
	Rules  *governance.Rules `json:"rules,omitempty"` // nil: one approval by anyone
	Author string            `json:"author,omitempty"`
	// Pusher and PushAuthors: who pushed the commit and the authors of every commit of its push
	// (a push webhook's); none of them may approve in a protected environment.
	Pusher      string   `json:"pusher,omitempty"`
	PushAuthors []string `json:"push_authors,omitempty"`
	// CoveredWriters: who wrote the earlier parameter versions the change also carries, their
	// events coalesced into this one (change.detected's covers); none of them may approve in a
	// protected environment either.
	CoveredWriters []string `json:"covered_writers,omitempty"`
	// RuntimeChange is, for a change of source runtime, the component whose runtime changed and
	// how its keys changed (change.detected's runtime_diff, values redacted): the policies of
	// the dependents it redeploys see it (policy input runtime_diff).
	RuntimeChange      *RuntimeChange `json:"runtime_change,omitempty"`
	Approvals          []Approver     `json:"approvals,omitempty"`
	ExpiresAt          time.Time      `json:"expires_at,omitzero"`
	ExpiredAt          time.Time      `json:"expired_at,omitzero"`
	AutoApproveRefused string         `json:"auto_approve_refused,omitempty"`
}

// RuntimeChange is how an upstream's runtime changed, in a change of source runtime.
type RuntimeChange struct {
	Upstream string              `json:"upstream"` // <env>/<type>/<nickname>
	Diff     []message.KeyChange `json:"diff"`
}

// ModuleCommit is the commit whose Terraform module component deploys: its node's own commit
// (a rollback's root), else the change set's.
func (cs *ChangeSet) ModuleCommit(component string) string {
	if n := cs.Nodes[component]; n != nil && n.Commit != "" {
		return n.Commit
	}
	return cs.Commit
}

// DeploymentID is deterministic: the same change set and component always give the same id, so
// re-deriving a decision after a crash names the same deployment.
func DeploymentID(changeSetID, component string) string {
	sum := sha256.Sum256([]byte(changeSetID + "|" + component))
	return "dep-" + hex.EncodeToString(sum[:8])
}

// Done reports whether every node is settled.
func (cs *ChangeSet) Done() bool {
	for _, n := range cs.Nodes {
		if !n.Settled() {
			return false
		}
	}
	return true
}

// Failed lists the failed components, sorted.
func (cs *ChangeSet) FailedComponents() []string {
	var out []string
	for id, n := range cs.Nodes {
		if n.State == Failed {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// Start decides for every node that is ready at the outset (the roots with no upstream in the
// set), unless the change set is queued behind another. It runs once.
func (cs *ChangeSet) Start() {
	if cs.Started || len(cs.QueuedBehind) > 0 {
		return
	}
	cs.Started = true
	for _, id := range cs.order() {
		cs.evaluate(id)
	}
}

// MarkApplied records a successful apply and the runtime keys it changed, then decides whatever
// became ready. Applying an already settled node changes nothing.
func (cs *ChangeSet) MarkApplied(component string, changedKeys []string) error {
	n, ok := cs.Nodes[component]
	if !ok {
		return errors.New("changeset: " + component + " is not in change set " + cs.ID)
	}
	if n.Settled() {
		return nil
	}
	n.State, n.ChangedKeys, n.Plan = Applied, changedKeys, nil
	// Record every trigger before deciding anything: deciding one dependent may cascade (a skip
	// settles it) into another dependent of this node, which must see its own trigger by then.
	for _, d := range n.Dependents {
		dn := cs.Nodes[d]
		for _, up := range dn.Upstreams {
			if up.Component != component {
				continue
			}
			switch {
			case consumesAny(up.Consumes, changedKeys):
				dn.Causes = append(dn.Causes, message.Cause{Kind: message.CauseDeployment, ID: n.DeploymentID, Keys: intersect(up.Consumes, changedKeys)})
			case up.OnAnyApply:
				dn.Causes = append(dn.Causes, message.Cause{Kind: message.CauseDeployment, ID: n.DeploymentID, Keys: []string{}, Trigger: message.TriggerOnAnyApply})
			}
		}
	}
	for _, d := range n.Dependents {
		cs.evaluate(d)
	}
	return nil
}

// MarkFailed records a failed plan or apply; everything below it is blocked.
func (cs *ChangeSet) MarkFailed(component, detail string) error {
	n, ok := cs.Nodes[component]
	if !ok {
		return errors.New("changeset: " + component + " is not in change set " + cs.ID)
	}
	if n.Settled() {
		return nil
	}
	n.State, n.Detail, n.Plan = Failed, detail, nil
	for _, d := range n.Dependents {
		cs.evaluate(d)
	}
	return nil
}

// evaluate decides a pending node whose upstreams are all settled.
func (cs *ChangeSet) evaluate(id string) {
	n := cs.Nodes[id]
	if n.State != Pending {
		return
	}
	var failedUp string
	for _, up := range n.Upstreams {
		un := cs.Nodes[up.Component]
		if !un.Settled() {
			return
		}
		if un.State == Failed || un.State == Blocked {
			failedUp = up.Component
		}
	}
	n.Announced = false
	switch {
	case failedUp != "":
		n.State, n.Reason, n.Detail = Blocked, ReasonUpstreamFailed, failedUp+" did not deploy"
	case n.Destroy:
		n.State, n.Reason, n.Detail = Skipped, ReasonDestroyHeld, "config.json removed: destroy is held until a policy allows it"
	case n.Root || len(n.Causes) > 0:
		n.State = Scheduled
		return
	default:
		n.State, n.Reason, n.Detail = Skipped, ReasonNoConsumedKey, "no runtime key it consumes changed upstream"
	}
	for _, d := range n.Dependents {
		cs.evaluate(d)
	}
}

// Unannounced returns the nodes whose decision has not been published yet, in wave order.
func (cs *ChangeSet) Unannounced() []*Node {
	var out []*Node
	for _, id := range cs.order() {
		n := cs.Nodes[id]
		if !n.Announced && (n.State == Scheduled || n.State == Skipped || n.State == Blocked) {
			out = append(out, n)
		}
	}
	return out
}

func (cs *ChangeSet) order() []string {
	var out []string
	for _, w := range cs.Waves {
		out = append(out, w...)
	}
	return out
}

func consumesAny(consumes, changed []string) bool {
	for _, c := range consumes {
		if c == "*" && len(changed) > 0 {
			return true
		}
		for _, k := range changed {
			if k == c {
				return true
			}
		}
	}
	return false
}

func intersect(consumes, changed []string) []string {
	for _, c := range consumes {
		if c == "*" {
			return changed
		}
	}
	var out []string
	for _, k := range changed {
		for _, c := range consumes {
			if k == c {
				out = append(out, k)
			}
		}
	}
	return out
}

// ErrNotFound is returned (wrapped) for an unknown change set.
var ErrNotFound = errors.New("changeset: not found")

// Store keeps change sets. Update runs fn on the current state inside one transaction (or a
// conditional write) and stores the result unless fn fails.
type Store interface {
	Create(ctx context.Context, cs *ChangeSet) (created bool, err error)
	Get(ctx context.Context, id string) (*ChangeSet, error)
	Update(ctx context.Context, id string, fn func(*ChangeSet) error) (*ChangeSet, error)
	List(ctx context.Context) ([]*ChangeSet, error)
}

// PlanSpent reports whether the plans made for deployment of component in change set id can no
// longer be applied, as the apply stage decides it (it applies only a node still waiting, of the
// same deployment): the node is another deployment now (run again), or it is settled — applied,
// failed (its plan refused by the policies, say), skipped (the change set rejected, expired or
// superseded), blocked. A change set or node that cannot be read is not known to be spent.
func PlanSpent(ctx context.Context, store Store, id, component, deployment string) bool {
	cs, err := store.Get(ctx, id)
	if err != nil || cs == nil {
		return false
	}
	n := cs.Nodes[component]
	return n != nil && (n.DeploymentID != deployment || n.Settled())
}
