package rollback

import (
	"context"
	"fmt"
	"strings"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
)

// Repository reads the config repository at commits (configrepo.Source).
type Repository interface {
	Head(ctx context.Context) (string, error)
	Build(ctx context.Context, env, commit string, overrides map[string][]byte) (*model.Result, error)
}

// Plan is a rollback that may be queued: checked against the deploy branch's head.
type Plan struct {
	Target   Target
	Replaces string   // the component's deployment applied last: what it rolls back from
	Head     string   // the head commit it was checked against
	Affected []string // the component and its dependents at head, in waves
}

// Message is the rollback as change.detected carries it.
func (p Plan) Message() *message.Rollback { return p.Target.Message(p.Replaces) }

// Prepare checks that deployment id can be rolled back to now, before anything is queued (karma
// rollback, POST /deployments/{id}/rollback): Find, then Check at the head, then that no change
// set of the environment that is not done shares a component with the rollback (it would be
// queued behind it, and deploy its old config over what that one deploys). Refusals are
// *RefusedError, an unknown deployment ErrUnknown; other errors are the repository's.
func Prepare(ctx context.Context, repo Repository, all []*changeset.ChangeSet, id string) (Plan, error) {
	target, replaces, err := Find(all, id)
	if err != nil {
		return Plan{}, err
	}
	env, comp := target.ChangeSet.Env, target.Node.Component
	head, err := repo.Head(ctx)
	if err != nil {
		return Plan{}, fmt.Errorf("the deploy branch's head: %w", err)
	}
	headRes, err := repo.Build(ctx, env, head, nil)
	if err != nil {
		return Plan{}, fmt.Errorf("loading %s at the head commit %.12s: %w", env, head, err)
	}
	refuse := func(reason string) (Plan, error) {
		return Plan{}, &RefusedError{Deployment: id, Component: comp, Reasons: []string{reason}}
	}
	if errs := headRes.Diagnostics.Errors(); len(errs) > 0 {
		return refuse(fmt.Sprintf("%s is invalid at the head commit %.12s, which its dependents are built from: %s", env, head, firstDiagnostics(errs, 5)))
	}
	at, err := repo.Build(ctx, env, target.Commit(), nil)
	if err != nil {
		return Plan{}, fmt.Errorf("loading %s at commit %.12s (of %s): %w", env, target.Commit(), id, err)
	}
	if err := Check(target, headRes, at, head); err != nil {
		return Plan{}, err
	}
	if lost := Unpublished(target, runtimeOf(all, replaces), headRes, head); len(lost) > 0 {
		return Plan{}, &RefusedError{Deployment: id, Component: comp, Reasons: lost}
	}
	affected, err := downstream(headRes.Graph, comp)
	if err != nil {
		return Plan{}, err
	}
	if pending := Pending(all, env, affected); len(pending) > 0 {
		return refuse(pendingReason(pending))
	}
	return Plan{Target: target, Replaces: replaces, Head: head, Affected: affected}, nil
}

// runtimeOf is the runtime deployment id published (nil when unknown).
func runtimeOf(all []*changeset.ChangeSet, id string) []byte {
	if id == "" {
		return nil
	}
	for _, cs := range all {
		for _, n := range cs.Nodes {
			if n.DeploymentID == id && n.Outcome != nil {
				return n.Outcome.Runtime
			}
		}
	}
	return nil
}

// downstream lists comp and everything below it, wave by wave.
func downstream(g *graph.Graph, comp string) ([]string, error) {
	v, _ := g.Index(comp)
	imp, err := g.Downstream([]int32{v}, graph.ImpactOptions{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, wave := range imp.Waves {
		out = append(out, g.IDs(wave)...)
	}
	return out, nil
}

// pendingReason names the unfinished change sets a rollback would be queued behind.
func pendingReason(pending []*changeset.ChangeSet) string {
	var names []string
	for _, cs := range pending {
		names = append(names, fmt.Sprintf("%s (commit %.12s)", cs.ID, cs.Commit))
	}
	return fmt.Sprintf("change sets of %s that are not done deploy some of the same components: %s. A rollback would wait behind them and then "+
		"deploy its old config over what they deploy: finish them first (approve or reject them), or supersede them, then roll back",
		pending[0].Env, strings.Join(names, "; "))
}

// firstDiagnostics lists the first n diagnostics on one line.
func firstDiagnostics(ds model.Diagnostics, n int) string {
	var out []string
	for i, d := range ds {
		if i == n {
			out = append(out, fmt.Sprintf("… and %d more", len(ds)-n))
			break
		}
		out = append(out, d.String())
	}
	return strings.Join(out, "; ")
}
