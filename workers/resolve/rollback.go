package resolve

import (
	"context"
	"errors"
	"fmt"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/rollback"
)

// Rollbacks (shared/rollback): the change set is built at the deploy branch's head like any
// change naming its components, then its root deploys the target deployment's config with the
// Terraform module of the target's commit; the dependents follow as usual, each with its own
// config at head, when a runtime key they consume changes. A rollback that can no longer be
// applied at head is rejected with every reason (the same check karma rollback makes first).

// rollbackTarget finds the deployment p rolls back to and checks it against the head (res, at
// cs.Commit). What cannot be rolled back to rejects cs (cs.Rejected); errors are for retrying.
func (w *Worker) rollbackTarget(ctx context.Context, cs *changeset.ChangeSet, res *model.Result, p message.ChangeDetected, env string) (rollback.Target, error) {
	r := p.Rollback
	cs.Rollback = r
	reject := func(format string, a ...any) (rollback.Target, error) {
		cs.Rejected = fmt.Sprintf(format, a...)
		return rollback.Target{}, nil
	}
	if len(p.Components) != 1 {
		return reject("a rollback names one component, this one %d", len(p.Components))
	}
	from, err := w.ChangeSets.Get(ctx, r.ChangeSetID)
	if errors.Is(err, changeset.ErrNotFound) {
		return reject("cannot roll back to %s: its change set %s is unknown", r.DeploymentID, r.ChangeSetID)
	}
	if err != nil {
		return rollback.Target{}, pipeline.Transient(err)
	}
	target, err := rollback.In(from, r.DeploymentID)
	var refused *rollback.RefusedError
	switch {
	case errors.As(err, &refused) || errors.Is(err, rollback.ErrUnknown):
		return reject("%v", err)
	case err != nil:
		return rollback.Target{}, err
	case target.Node.Component != p.Components[0].ID(env):
		return reject("cannot roll back %s to %s: that deployment is of %s", p.Components[0].ID(env), r.DeploymentID, target.Node.Component)
	case target.Node.ConfigHash != r.ConfigHash || target.Commit() != r.Commit:
		return reject("cannot roll back to %s: it deployed config %.12s of commit %.12s, the rollback asks for config %.12s of commit %.12s",
			r.DeploymentID, target.Node.ConfigHash, target.Commit(), r.ConfigHash, r.Commit)
	}
	at, err := w.Graphs.Build(ctx, env, target.Commit(), nil)
	if err != nil {
		return rollback.Target{}, pipeline.Permanent(fmt.Errorf("resolve: loading %s at commit %s (rolled back to): %w", env, target.Commit(), err))
	}
	if err := rollback.Check(target, res, at, cs.Commit); err != nil {
		return reject("%v", err)
	}
	return target, nil
}

// rollbackRoot makes the rollback's root deploy exactly what the target deployed: its config
// and its commit's module. Its causes are the change set's root cause: rollback of the target.
// It keeps the hash of the config Git's head gives the component (GitConfigHash): the drift
// check knows by it whether the rollback still stands.
func rollbackRoot(cs *changeset.ChangeSet, t rollback.Target) {
	n := cs.Nodes[t.Node.Component]
	n.GitConfigHash = n.ConfigHash
	n.Config, n.ConfigHash, n.Commit = t.Config(), t.Node.ConfigHash, t.Commit()
}
