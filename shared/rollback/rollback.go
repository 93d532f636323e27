// Package rollback decides whether an applied deployment's config can be deployed again, and
// says precisely why not. The CLI (karma rollback) asks before queueing anything; resolve asks
// again when it builds the rollback's change set (the repository may have moved meanwhile) and
// rejects the change set with the same reasons.
//
// A rollback deploys again exactly what a past deployment deployed — the config it applied
// (Outcome.Config, whose hash is the node's ConfigHash) with the Terraform module of the commit
// it used — as the root of a new change set built at the deploy branch's head: its dependents,
// redeployed when a runtime key they consume changes, deploy their own current config.
//
// "Can no longer be applied" means, at the head commit:
//
//   - the component is no longer defined (its config.json was removed): rolling back would
//     re-create what the repository deleted;
//   - a component its config references (its upstreams in the graph of the target's commit) is
//     no longer defined: its ${…} values and its order would have nothing to read;
//   - the config does not validate against the type's schema at head (today's contract of the
//     module's inputs).
//
// Prepare, before queueing, also refuses a rollback that would take from the component's runtime
// a key a dependent's ${…} reads at head (Unpublished).
//
// Refused before any of that: an unknown deployment (ErrUnknown), one that never applied
// (failed, skipped, still pending), a destroy, and the deployment the component runs now.
package rollback

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
)

// ErrUnknown: no change set has the deployment.
var ErrUnknown = errors.New("rollback: unknown deployment")

// RefusedError says why a deployment cannot be rolled back to: every reason found.
type RefusedError struct {
	Deployment string
	Component  string
	Reasons    []string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("cannot roll back %s to %s: %s", e.Component, e.Deployment, strings.Join(e.Reasons, "; "))
}

// Permanent: asking again changes nothing (pipeline.Classify).
func (e *RefusedError) Permanent() bool { return true }

// Target is the applied deployment a rollback returns to.
type Target struct {
	ChangeSet *changeset.ChangeSet
	Node      *changeset.Node
}

// Commit is the commit whose Terraform module the deployment used.
func (t Target) Commit() string { return t.ChangeSet.ModuleCommit(t.Node.Component) }

// Config is the config the deployment applied.
func (t Target) Config() json.RawMessage {
	if t.Node.Outcome != nil && len(t.Node.Outcome.Config) > 0 {
		return t.Node.Outcome.Config
	}
	return t.Node.Config
}

// Message is the rollback's description in change.detected, replacing replaces.
func (t Target) Message(replaces string) *message.Rollback {
	return &message.Rollback{DeploymentID: t.Node.DeploymentID, ChangeSetID: t.ChangeSet.ID, Commit: t.Commit(),
		ConfigHash: t.Node.ConfigHash, Replaces: replaces}
}

// Find returns the deployment id among the change sets and the component's deployment it would
// replace (Current), refusing what cannot be returned to whatever the repository says: a
// deployment that never applied, a destroy, the deployment the component runs now.
func Find(all []*changeset.ChangeSet, id string) (Target, string, error) {
	for _, cs := range all {
		t, err := In(cs, id)
		if errors.Is(err, ErrUnknown) {
			continue
		}
		if err != nil {
			return t, "", err
		}
		current := Current(all, t.Node.Component)
		if current == id {
			return t, "", &RefusedError{Deployment: id, Component: t.Node.Component,
				Reasons: []string{"it is the deployment the component runs now (applied last): there is nothing to roll back from"}}
		}
		return t, current, nil
	}
	return Target{}, "", fmt.Errorf("%w %s: no change set has it (karma lineage <type>/<nickname> lists a component's deployments)", ErrUnknown, id)
}

// In finds deployment id in cs.
func In(cs *changeset.ChangeSet, id string) (Target, error) {
	for comp, n := range cs.Nodes {
		if n.DeploymentID != id {
			continue
		}
		refuse := func(format string, a ...any) (Target, error) {
			return Target{}, &RefusedError{Deployment: id, Component: comp, Reasons: []string{fmt.Sprintf(format, a...)}}
		}
		switch {
		case n.Destroy:
			return refuse("it destroyed the component: there is no config to deploy again")
		case n.State != changeset.Applied || n.Outcome == nil:
			return refuse("it never applied (it is %s): only an applied deployment's config is known to work", describe(n))
		}
		return Target{ChangeSet: cs, Node: n}, nil
	}
	return Target{}, fmt.Errorf("%w %s in change set %s", ErrUnknown, id, cs.ID)
}

// Current is the component's deployment applied last, "" when none: what a rollback rolls back
// from. It is the one of the latest change set (CreatedAt; of equal times, the first in all,
// which changeset.Store.List lists newest first) that applied the component — as the drift
// check's last applied deployment (drift.StateOf). Change sets that share a component deploy it
// in the order they were created (resolve queues the later behind the earlier), so the latest
// applied it last. Not the highest runtime version it published: versions start again at 1 when
// the /runtime parameter is deleted, and a deployment from before that would be taken for what
// runs now (and an apply that changes no output publishes no new version).
func Current(all []*changeset.ChangeSet, component string) string {
	var last *changeset.ChangeSet
	id := ""
	for _, cs := range all {
		n := cs.Nodes[component]
		if n == nil || n.State != changeset.Applied || n.Outcome == nil {
			continue
		}
		if last == nil || cs.CreatedAt.After(last.CreatedAt) {
			last, id = cs, n.DeploymentID
		}
	}
	return id
}

// Check reports why t can no longer be applied at the head commit (head is the environment's
// graph there, at the graph at t's commit), or nil.
func Check(t Target, head, at *model.Result, headCommit string) error {
	comp := t.Node.Component
	refused := &RefusedError{Deployment: t.Node.DeploymentID, Component: comp}
	if _, ok := head.Graph.Index(comp); !ok {
		refused.Reasons = append(refused.Reasons, fmt.Sprintf("%s is no longer defined at the head commit %.12s (its config.json was removed): rolling back would re-create it", comp, headCommit))
		return refused
	}
	if v, ok := at.Graph.Index(comp); ok {
		for _, ei := range at.Graph.Dependencies(v) {
			up := at.Graph.Components[at.Graph.Edges[ei].To].ID
			if _, still := head.Graph.Index(up); !still {
				refused.Reasons = append(refused.Reasons, fmt.Sprintf("its config (commit %.12s) references %s, which is no longer defined at the head commit %.12s", t.Commit(), up, headCommit))
			}
		}
	}
	typ := strings.SplitN(comp, "/", 3)[1]
	if errs := head.Repo.ValidateConfig(typ, t.Config()).Errors(); len(errs) > 0 {
		var probs []string
		for _, d := range errs {
			probs = append(probs, d.String())
		}
		refused.Reasons = append(refused.Reasons, fmt.Sprintf("its config no longer validates against the schema of %s at the head commit %.12s: %s", typ, headCommit, strings.Join(probs, "; ")))
	}
	if len(refused.Reasons) > 0 {
		return refused
	}
	return nil
}

// Unpublished lists, for the refusal of a rollback to t, the dependents at the head whose ${…}
// references read a key that the component's runtime has now (current: the runtime its
// deployment applied last published) and t never published: rolled back, the runtime loses the
// key, those dependents are redeployed (a key they consume changed) and their references read
// nothing — they fail, after the root applied. Keys the runtime lacks now too are not the
// rollback's doing. Nothing is judged without both runtimes (a component Karma did not deploy
// last, a deployment recorded before runtimes were kept).
func Unpublished(t Target, current json.RawMessage, head *model.Result, headCommit string) []string {
	v, ok := head.Graph.Index(t.Node.Component)
	if !ok || t.Node.Outcome == nil {
		return nil
	}
	var was, now map[string]json.RawMessage
	if json.Unmarshal(t.Node.Outcome.Runtime, &was) != nil || json.Unmarshal(current, &now) != nil || was == nil || now == nil {
		return nil
	}
	var out []string
	for _, ei := range head.Graph.Dependents(v) {
		e := head.Graph.Edges[ei]
		var missing []string
		for _, src := range e.Sources {
			if src.Kind != model.RefInterpolation || src.Runtime != "" {
				// only a ${…} of the runtime t published reads a key that must be there (a
				// rule's consumed keys say what redeploys the dependent, not what it reads)
				continue
			}
			for _, k := range src.Keys {
				_, had := was[k]
				_, has := now[k]
				if has && !had && !slices.Contains(missing, k) {
					missing = append(missing, k)
				}
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			dep := head.Graph.Components[e.From].ID
			out = append(out, fmt.Sprintf("%s reads %s of its runtime at the head commit %.12s, which %s did not publish: "+
				"rolled back, the runtime loses it and %s could not be deployed", dep, strings.Join(missing, ", "), headCommit, t.Node.DeploymentID, dep))
		}
	}
	slices.Sort(out)
	return out
}

func describe(n *changeset.Node) string {
	if n.Reason != "" {
		return n.State + ", " + n.Reason
	}
	if n.State == changeset.Failed {
		line, _, _ := strings.Cut(n.Detail, "\n")
		return "failed: " + line
	}
	return n.State
}

// Pending lists the change sets of env that are not done and share a component with affected
// (the rollback's root and its dependents). A rollback would be queued behind them and run after
// them — its plan shown only once they finished, its old config deployed over whatever they
// deploy — so karma rollback refuses while there are any: finish them (or supersede them) first.
func Pending(all []*changeset.ChangeSet, env string, affected []string) []*changeset.ChangeSet {
	var out []*changeset.ChangeSet
	for _, cs := range all {
		if cs.Env != env || cs.Done() || cs.Rejected != "" {
			continue
		}
		for _, id := range affected {
			if _, ok := cs.Nodes[id]; ok {
				out = append(out, cs)
				break
			}
		}
	}
	return out
}
