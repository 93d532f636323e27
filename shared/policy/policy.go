// Package policy evaluates the rules a config repository writes in Rego (policies/*.rego, or
// karma.json policies_dir) on every change, with the Open Policy Agent Go library: before
// planning, in resolve (a component scheduled to deploy), and before applying, in the apply
// stage (with the plan). Policies are read from the change's own commit, never a working tree,
// and compiled once per commit (Engine keeps the compiled policies of recent commits).
//
// A policy is a Rego v1 module in package karma that may define two sets of strings, each
// string a reason for people:
//
//	package karma
//
//	deny contains msg if { ... }              # the change may not deploy this component
//	require_approval contains msg if { ... }  # it may, once people approved the change
//
// The query is data.karma: every module of the folder contributes to one decision. Denials win
// over approvals; no policy at all allows everything. The input is Input (documented field by
// field below and in docs/policy.md). Karma's own rule, whatever the policies say: a plan that
// destroys resources always needs an approval (Plan.Destroys, applied by the apply stage).
package policy

import (
	"context"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
)

// Stages at which policies are evaluated (Input.Stage).
const (
	StageResolve = "resolve" // before planning: the component is about to be scheduled
	StageApply   = "apply"   // before applying: the plan is known
)

// Input is what a policy sees, as input.
type Input struct {
	// Stage is StageResolve or StageApply.
	Stage string `json:"stage"`
	// Change is the change set the component deploys in.
	Change Change `json:"change"`
	// Component is what is deployed.
	Component Component `json:"component"`
	// Config is the resolved config to deploy (references unsubstituted, as committed).
	Config map[string]any `json:"config"`
	// Diff lists the top-level config keys that differ from the config deployed now (the config
	// of the component's deployment applied last, changeset.LastApplied), sorted; every key is
	// "add" for a first deployment.
	Diff []KeyChange `json:"diff"`
	// RuntimeDiff lists, for a component redeployed because runtime keys it consumes changed,
	// how they changed, sorted by upstream and key, in Diff's shape with the upstream named:
	// every key of a runtime written outside Karma (a change of source runtime, the component a
	// root of it), or the keys it consumes that its upstream's apply in the change set changed.
	// Values with their secrets replaced, none for a SecureString. Empty otherwise.
	RuntimeDiff []RuntimeKeyChange `json:"runtime_diff"`
	// Plan is the plan to apply (StageApply only).
	Plan *Plan `json:"plan,omitempty"`
}

// Change is the change set as a policy sees it.
type Change struct {
	ID     string `json:"id"`
	Env    string `json:"env"`
	Source string `json:"source"` // git, request, parameter, runtime, rollback, drift
	Commit string `json:"commit"`
	Actor  Actor  `json:"actor"`  // who requested the change (pusher, API caller, CLI user)
	Author string `json:"author"` // the commit's author ("" for parameter changes)
	// Pusher is who pushed the commit and PushAuthors the authors of every commit of its push
	// (the push webhook's; for a commit `karma ingest commit` handed over, no pusher and the
	// authors of every commit it brings that was never handed over; "" and empty otherwise): a
	// push deploys each of its commits, not only the last one, whose author is Author.
	Pusher      string   `json:"pusher"`
	PushAuthors []string `json:"push_authors"`
	// CoveredWriters are who wrote the earlier parameter versions a change made in Parameter
	// Store also carries (events naming no version, coalesced into the newest, whose writer is
	// Actor); empty otherwise.
	CoveredWriters []string `json:"covered_writers"`
	AutoApprove    bool     `json:"auto_approve"`
	Protected      bool     `json:"protected"`
	// Approved: people (or auto-approve) approved the change set; ApprovedBy names them.
	Approved   bool   `json:"approved"`
	ApprovedBy string `json:"approved_by"`
}

// Actor is who caused the change: kind git, iam, cli, api or karma, and a name.
type Actor struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// Component is the component deployed.
type Component struct {
	ID       string `json:"id"` // <env>/<type>/<nickname>
	Env      string `json:"env"`
	Type     string `json:"type"`
	Nickname string `json:"nickname"`
	Root     bool   `json:"root"`    // it changed itself (not redeployed for an upstream)
	Destroy  bool   `json:"destroy"` // its config.json was removed
}

// KeyChange is one top-level config key that changes.
type KeyChange struct {
	Key    string `json:"key"`
	Op     string `json:"op"` // add, change, remove
	Before any    `json:"before,omitempty"`
	After  any    `json:"after,omitempty"`
}

// RuntimeKeyChange is one top-level key of an upstream's runtime that changed.
type RuntimeKeyChange struct {
	Upstream string `json:"upstream"` // the component whose runtime it is
	KeyChange
}

// Plan is a plan's summary and the resources it changes.
type Plan struct {
	Add       int        `json:"add"`
	Change    int        `json:"change"`
	Destroy   int        `json:"destroy"`
	Resources []Resource `json:"resources"`
}

// Resource is one resource a plan changes, with Terraform's actions.
type Resource struct {
	Address string   `json:"address"`
	Actions []string `json:"actions"`
}

// Destroys reports whether the plan destroys (or replaces) a resource.
func (p *Plan) Destroys() bool { return p != nil && p.Destroy > 0 }

// Decision is the outcome of the policies for one input.
type Decision struct {
	Deny            []string `json:"deny,omitempty"`             // sorted reasons; any = denied
	RequireApproval []string `json:"require_approval,omitempty"` // sorted reasons
}

// Denied reports whether a policy denies the change.
func (d Decision) Denied() bool { return len(d.Deny) > 0 }

// NeedsApproval reports whether a policy requires people to approve the change.
func (d Decision) NeedsApproval() bool { return len(d.RequireApproval) > 0 }

// DenyReason is the denial for people: "denied by policy: <reason>; <reason>".
func (d Decision) DenyReason() string { return "denied by policy: " + strings.Join(d.Deny, "; ") }

// ApprovalReason is the approval requirement for people.
func (d Decision) ApprovalReason() string {
	return "policy requires an approval: " + strings.Join(d.RequireApproval, "; ")
}

// Evaluator decides a change with the policies of a commit. Engine is the implementation; a nil
// Evaluator in a stage means no policies.
type Evaluator interface {
	Evaluate(ctx context.Context, commit string, in Input) (Decision, error)
}

// DiffFrom is Diff from a deployed config as stored (nil: none deployed; a document that is not
// a JSON object has no key, so every key is added).
func DiffFrom(deployed json.RawMessage, after map[string]any) []KeyChange {
	var before map[string]any
	if len(deployed) > 0 {
		_ = json.Unmarshal(deployed, &before)
	}
	return Diff(before, after)
}

// Diff compares the top-level keys of two configs (before may be nil: a first deployment).
func Diff(before, after map[string]any) []KeyChange {
	var out []KeyChange
	for k, a := range after {
		b, ok := before[k]
		switch {
		case !ok:
			out = append(out, KeyChange{Key: k, Op: "add", After: a})
		case !reflect.DeepEqual(b, a):
			out = append(out, KeyChange{Key: k, Op: "change", Before: b, After: a})
		}
	}
	for k, b := range before {
		if _, ok := after[k]; !ok {
			out = append(out, KeyChange{Key: k, Op: "remove", Before: b})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	if out == nil {
		out = []KeyChange{}
	}
	return out
}
