// Package graphwrite is the stage that writes to the graph store: the graph delta of the
// environment a change touches, and the lineage — change -> deployment -> component, each
// deployment caused_by the upstream deployment, commit, parameter version, request or drift
// event, and the drift events themselves (drift -> component).
//
// Input:  change.resolved, deployment.scheduled, deployment.skipped, deployment.applied,
//
//	deployment.failed, drift.detected.
//
// Output: deployment.recorded (for each scheduled deployment, once its lineage is written).
//
// Idempotency: every write is an upsert keyed by change set, deployment or drift id. Order: the
// graph of a change's commit is not written over the graph of a later commit (writeGraph).
package graphwrite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/pipeline"
)

// Graphs builds an environment's graph at a commit of the config repository, and says whether
// a commit is an ancestor of another (configrepo.Source).
type Graphs interface {
	Build(ctx context.Context, env, commit string, overrides map[string][]byte) (*model.Result, error)
	IsAncestor(ctx context.Context, a, b string) (bool, error)
}

// Worker is the graph-write stage.
type Worker struct {
	Graphs  Graphs
	Store   graph.Store
	Lineage lineage.Store
	// Lock, when set, serialises the graph writes of one environment across workers and
	// processes (writeGraph): set it for a store whose commit check and write are not one
	// transaction (Neptune). Nil for the embedded store, whose check and write are one.
	Lock Locker
	// LockWait is how long a write waits for another worker's write of the same environment
	// before its message is put back (pipeline.InProgress); zero is DefaultLockWait.
	LockWait time.Duration
}

// Handle dispatches on the message type.
func (w *Worker) Handle(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
	switch in.Type {
	case message.TypeChangeResolved:
		return nil, w.resolved(ctx, in)
	case message.TypeDeploymentScheduled:
		return w.scheduled(ctx, in)
	case message.TypeDeploymentSkipped:
		var p message.DeploymentSkipped
		if err := message.Decode(in, &p); err != nil {
			return nil, err
		}
		status := lineage.StatusSkipped
		if p.Reason == "upstream-failed" {
			status = lineage.StatusBlocked
		}
		d := lineage.Deployment{ID: skipID(p), ChangeSetID: p.ChangeSetID, Env: in.Env, Component: p.Component,
			Status: status, Detail: p.Reason + ": " + p.Detail, At: in.OccurredAt, Actor: in.Actor, CausedBy: []message.Cause{}}
		if err := w.Lineage.RecordDeployment(ctx, d); err != nil {
			return nil, pipeline.Transient(err)
		}
		if p.Reason == changeset.ReasonRejected || p.Reason == changeset.ReasonExpired || p.Reason == changeset.ReasonSuperseded {
			return nil, w.settleScheduled(ctx, d)
		}
		return nil, nil
	case message.TypeDeploymentApplied:
		var p message.DeploymentApplied
		if err := message.Decode(in, &p); err != nil {
			return nil, err
		}
		return nil, transient(w.Lineage.SetOutcome(ctx, p.DeploymentID, lineage.StatusApplied, appliedDetail(p), p.ChangedKeys, in.OccurredAt))
	case message.TypeDeploymentFailed:
		var p message.DeploymentFailed
		if err := message.Decode(in, &p); err != nil {
			return nil, err
		}
		return nil, transient(w.Lineage.SetOutcome(ctx, p.DeploymentID, lineage.StatusFailed, p.Stage+": "+p.Error, nil, in.OccurredAt))
	case message.TypeDriftDetected:
		return nil, w.drift(ctx, in)
	}
	return nil, pipeline.Permanent(fmt.Errorf("graph-write: unexpected message type %s", in.Type))
}

// appliedDetail is the lineage detail of applied deployment p: "runtime version N" when its
// outputs changed (N is the version it published), "runtime unchanged: version N" when none did:
// the parameter store writes nothing for an identical value, so N is then the version an earlier
// deployment (or write) published, not one this deployment made.
func appliedDetail(p message.DeploymentApplied) string {
	if len(p.ChangedKeys) == 0 {
		return fmt.Sprintf("runtime unchanged: version %d", p.RuntimeVersion)
	}
	return fmt.Sprintf("runtime version %d", p.RuntimeVersion)
}

// settleScheduled gives the outcome of skip (a rejection, an expiry, a supersession: the only
// skips that may settle a deployment already scheduled, a plan held for review) to the
// deployment of the same component and change set still recorded as scheduled, which will now
// never run: its record says so rather than staying scheduled for ever.
func (w *Worker) settleScheduled(ctx context.Context, skip lineage.Deployment) error {
	ds, err := w.Lineage.Deployments(ctx, skip.Component)
	if err != nil {
		return pipeline.Transient(err)
	}
	for _, d := range ds {
		if d.ChangeSetID == skip.ChangeSetID && d.ID != skip.ID && d.Status == lineage.StatusScheduled {
			if err := w.Lineage.SetOutcome(ctx, d.ID, skip.Status, skip.Detail, nil, skip.At); err != nil {
				return pipeline.Transient(err)
			}
		}
	}
	return nil
}

// skipID names a skipped component's lineage record like the deployment it would have been.
func skipID(p message.DeploymentSkipped) string { return "skip-" + p.ChangeSetID + "/" + p.Component }

// resolved records the change in the lineage, then writes the graph of its commit. The record
// comes first: a commit whose graph cannot be built (a force-push removed it before this stage
// fetched it) still leaves its change in the lineage, and the message is dead-lettered saying so.
func (w *Worker) resolved(ctx context.Context, in message.Envelope) error {
	var p message.ChangeResolved
	if err := message.Decode(in, &p); err != nil {
		return err
	}
	c := lineage.Change{ID: p.ChangeSetID, Env: in.Env, CorrelationID: in.CorrelationID, Source: p.Source, RootCauses: p.RootCauses,
		Actor: in.Actor, At: in.OccurredAt, Affected: p.Affected, Rejected: p.Rejected, Commit: p.Commit, QueuedBehind: p.QueuedBehind}
	if err := w.Lineage.RecordChange(ctx, c); err != nil {
		return pipeline.Transient(err)
	}
	if p.Rejected != "" || p.Commit == "" || w.Graphs == nil || w.Store == nil {
		return nil
	}
	pr, _ := pipeline.Prepared(ctx).(*prepared) // what Prepare found for this message
	if pr == nil {
		pr = &prepared{}
		pr.res, pr.err = w.build(ctx, in.Env, p.Commit)
	}
	if err := pr.err; err != nil {
		err = fmt.Errorf("graph-write: the graph of %s at commit %s: %w", in.Env, p.Commit, err)
		if gone := (*gitrepo.CommitNotFoundError)(nil); errors.As(err, &gone) {
			return pipeline.Permanent(err) // it never will be built
		}
		return pipeline.Transient(err)
	}
	if len(pr.res.Diagnostics.Errors()) > 0 {
		return nil
	}
	return w.writeGraph(ctx, in.Env, p.Commit, pr)
}

// build is env's graph at commit. An environment the commit no longer has — its last component
// removed, the change's held destroys — has the empty graph: it is written (the environment's
// components are gone from Git), not retried until dead-lettered.
func (w *Worker) build(ctx context.Context, env, commit string) (*model.Result, error) {
	res, err := w.Graphs.Build(ctx, env, commit, nil)
	if gone := (*model.UnknownEnvironmentError)(nil); errors.As(err, &gone) {
		return &model.Result{Repo: &model.Repo{}, Graph: graph.NewBuilder(0).Graph()}, nil
	}
	return res, err
}

// prepared is what Prepare found for a change.resolved: the graph of its commit, or why it
// could not be built; and, when ordered, the commit of the stored graph then and whether the
// change's commit is older than it (Handle asks Git again only if the store moved since).
type prepared struct {
	res     *model.Result
	err     error
	ordered bool
	stored  string
	older   bool
}

// writeGraph writes env's graph at commit, unless the store holds the graph of a later commit
// already: a change resolved before it and delivered after it (a retry, a queue's reordering)
// does not put an older tree back. A commit that is neither (a force-push) is written. With a
// Lock, the check and the write hold the environment's lock (lock.go): two changes' writes never
// interleave their elements, nor check against a commit the other is replacing.
func (w *Worker) writeGraph(ctx context.Context, env, commit string, pr *prepared) error {
	if cw, ok := w.Store.(checkedWriter); ok && w.Lock == nil {
		_, err := cw.WriteAtUnless(ctx, pr.res.Graph, env, commit, func(stored string) (bool, error) {
			if pr.ordered && pr.stored == stored {
				return pr.older, nil
			}
			older, err := w.older(ctx, commit, stored)
			if err != nil {
				return false, fmt.Errorf("is %s older than %s, whose graph %s holds: %w", commit, stored, env, err)
			}
			return older, nil
		})
		if err != nil {
			return pipeline.Transient(fmt.Errorf("graph-write: graph delta: %w", err))
		}
		return nil
	}
	if w.Lock != nil {
		locked, unlock, err := w.lockEnv(ctx, env)
		if err != nil {
			return err
		}
		defer unlock()
		ctx = locked
	}
	stored, err := w.Store.Commit(ctx, env)
	if err != nil {
		return pipeline.Transient(fmt.Errorf("graph-write: the commit of %s's stored graph: %w", env, err))
	}
	older := pr.older
	if !pr.ordered || pr.stored != stored {
		if older, err = w.older(ctx, commit, stored); err != nil {
			return pipeline.Transient(fmt.Errorf("graph-write: is %s older than %s, whose graph %s holds: %w", commit, stored, env, err))
		}
	}
	if older {
		return nil
	}
	if _, err := w.Store.WriteAt(ctx, pr.res.Graph, env, commit); err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errLockLost) {
			err = cause
		}
		return pipeline.Transient(fmt.Errorf("graph-write: graph delta: %w", err))
	}
	return nil
}

// checkedWriter is a graph.Store that reads the commit of an environment's stored graph and writes
// its graph in one transaction (embedded.GraphStore): writeGraph's check and write with one
// statement fewer, and without Lock.
type checkedWriter interface {
	WriteAtUnless(ctx context.Context, g *graph.Graph, env, commit string, skip func(stored string) (bool, error)) (graph.WriteStats, error)
}

// commitKnower is a graph.Store that remembers the commit of an environment's stored graph as it
// last saw it (embedded.GraphStore): Prepare's guess, which writeGraph checks.
type commitKnower interface {
	KnownCommit(env string) (string, bool)
}

// storedCommit is the commit of env's stored graph, as the store remembers it when it does.
func (w *Worker) storedCommit(ctx context.Context, env string) (string, error) {
	if k, ok := w.Store.(commitKnower); ok {
		if c, ok := k.KnownCommit(env); ok {
			return c, nil
		}
	}
	return w.Store.Commit(ctx, env)
}

// older reports whether commit is an ancestor of stored, the commit of the stored graph. The
// usual case first, found after a short walk: stored is an ancestor of commit. A stored commit
// the repository no longer has (a force-push removed it) is not later than any.
func (w *Worker) older(ctx context.Context, commit, stored string) (bool, error) {
	if stored == "" || stored == commit {
		return false, nil
	}
	gone := func(err error) bool {
		var nf *gitrepo.CommitNotFoundError
		return errors.As(err, &nf) && nf.SHA == stored
	}
	later, err := w.Graphs.IsAncestor(ctx, stored, commit)
	if gone(err) || err == nil && later {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	older, err := w.Graphs.IsAncestor(ctx, commit, stored)
	if gone(err) {
		return false, nil
	}
	return older, err
}

func (w *Worker) scheduled(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
	var p message.DeploymentScheduled
	if err := message.Decode(in, &p); err != nil {
		return nil, err
	}
	d := lineage.Deployment{ID: p.DeploymentID, ChangeSetID: p.ChangeSetID, Env: in.Env, Component: p.Component, Wave: p.Wave,
		CausedBy: p.CausedBy, Status: lineage.StatusScheduled, At: in.OccurredAt, Actor: in.Actor}
	if err := w.Lineage.RecordDeployment(ctx, d); err != nil {
		return nil, pipeline.Transient(err)
	}
	out := in.MustDerive(message.TypeDeploymentRecorded, "deployment.recorded:"+p.DeploymentID, message.DeploymentRecorded{DeploymentScheduled: p})
	return []message.Envelope{out}, nil
}

// drift records a drift event in the lineage.
func (w *Worker) drift(ctx context.Context, in message.Envelope) error {
	var p message.DriftDetected
	if err := message.Decode(in, &p); err != nil {
		return err
	}
	d := lineage.Drift{ID: p.DriftID, Env: in.Env, Component: p.Component, Kind: p.Kind, Reason: p.Reason, Detail: p.Detail,
		Commit: p.Commit, Action: p.Action, ChangeSetID: p.ChangeSetID, At: in.OccurredAt, Actor: in.Actor}
	if p.Parameter != nil {
		d.Parameter = fmt.Sprintf("%s@%d", p.Parameter.Name, p.Parameter.Version)
	}
	return transient(w.Lineage.RecordDrift(ctx, d))
}

func transient(err error) error {
	if err == nil {
		return nil
	}
	return pipeline.Transient(err)
}

// Prepare builds, before Handle and outside the state file's transaction
// (pipeline.Stage.Prepare), the graph of a resolved change's commit and how its commit is
// ordered with the stored graph's: the build reads the commit from Git (fetching it if need be),
// and Handle, inside the transaction, writes what Prepare built, or records the change and fails
// as the build did. Nothing is written here.
func (w *Worker) Prepare(ctx context.Context, in message.Envelope) (any, error) {
	if in.Type != message.TypeChangeResolved || w.Graphs == nil || w.Store == nil {
		return nil, nil
	}
	var p message.ChangeResolved
	if err := message.Decode(in, &p); err != nil {
		return nil, err
	}
	if p.Rejected != "" || p.Commit == "" {
		return nil, nil
	}
	pr := &prepared{}
	if pr.res, pr.err = w.build(ctx, in.Env, p.Commit); pr.err != nil {
		return pr, nil
	}
	// The order of the commits, read from Git here rather than inside the transaction; Handle
	// checks the stored commit again. A store that remembers it spares the statement.
	if stored, err := w.storedCommit(ctx, in.Env); err == nil {
		if older, err := w.older(ctx, p.Commit, stored); err == nil {
			pr.ordered, pr.stored, pr.older = true, stored, older
		}
	}
	return pr, nil
}
