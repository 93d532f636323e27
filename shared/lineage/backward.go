package lineage

import (
	"context"
	"errors"

	"github.com/usekarma/karma/shared/message"
)

// Step is a deployment with what caused it, followed back to the root: an upstream deployment's
// own step, or the change set whose root cause (a commit, a parameter version, a request)
// started it. "Why is it deployed like this?"
type Step struct {
	Deployment Deployment  `json:"deployment"`
	Causes     []CauseStep `json:"causes"`
}

// CauseStep is one cause of a deployment: Upstream for a deployment cause (or the failed
// deployment a retry runs again, or the deployment a rollback returns to), Change for a root
// cause (or, for a promotion, the previous environment's change set).
type CauseStep struct {
	Cause    message.Cause `json:"cause"`
	Upstream *Step         `json:"upstream,omitempty"`
	Change   *Change       `json:"change,omitempty"`
	// Replaces is, for a rollback, the component's deployment applied last before it: what it
	// rolled back from.
	Replaces *Deployment `json:"replaces,omitempty"`
	// Truncated says that the cause is a deployment (upstream, retried, rolled back to) that
	// Backward did not follow, MaxDepth deployments from where it started: its own lineage
	// (Backward of Cause.ID) goes on from there.
	Truncated bool `json:"truncated,omitempty"`
	// Repeated says that the cause is a deployment whose lineage this answer gives already, at
	// its first appearance (depth-first, causes in order): a deployment reached along two paths
	// (a diamond: two upstreams that both consume one component's changed keys) is followed
	// once, so that the answer grows with the deployments behind d, not with the paths to them.
	Repeated bool `json:"repeated,omitempty"`
}

// MaxDepth bounds Backward (a chain of deployments is as deep as the graph's waves, plus one per
// retry and rollback behind it). A deployment cause deeper than that is not followed, and is
// marked Truncated.
const MaxDepth = 100

// Backward follows d's causes back to their roots.
func Backward(ctx context.Context, l Reader, d Deployment) (*Step, error) {
	w := walk{l: l, seen: map[string]bool{d.ID: true}}
	return w.backward(ctx, d, 0)
}

// walk is one Backward: the deployments it has followed.
type walk struct {
	l    Reader
	seen map[string]bool
}

// Reader is the part of Store that Backward reads.
type Reader interface {
	Change(ctx context.Context, id string) (Change, error)
	Deployment(ctx context.Context, id string) (Deployment, error)
	Deployments(ctx context.Context, component string) ([]Deployment, error)
}

func (w *walk) backward(ctx context.Context, d Deployment, depth int) (*Step, error) {
	s := &Step{Deployment: d, Causes: []CauseStep{}}
	for _, c := range d.CausedBy {
		cs, err := w.causeStep(ctx, d, c, depth)
		if err != nil {
			return nil, err
		}
		s.Causes = append(s.Causes, cs)
	}
	return s, nil
}

// causeStep follows one cause of d: a deployment (upstream, retried, rolled back to) to its own
// step; a promotion to the previous environment's change set; a root cause to d's change set.
func (w *walk) causeStep(ctx context.Context, d Deployment, c message.Cause, depth int) (CauseStep, error) {
	l := w.l
	cs := CauseStep{Cause: c}
	switch c.Kind {
	case message.CauseDeployment, message.CauseRetry, message.CauseRollback:
		switch {
		case w.seen[c.ID]:
			cs.Repeated = true
		case depth >= MaxDepth:
			cs.Truncated = true
		default:
			w.seen[c.ID] = true
			up, err := l.Deployment(ctx, c.ID)
			if err != nil {
				return cs, err
			}
			if cs.Upstream, err = w.backward(ctx, up, depth+1); err != nil {
				return cs, err
			}
		}
		var err error
		if c.Kind == message.CauseRollback {
			cs.Replaces, err = replaced(ctx, l, d)
		}
		return cs, err
	case message.CausePromotion:
		return cs, change(ctx, l, c.ID, &cs)
	default:
		return cs, change(ctx, l, d.ChangeSetID, &cs)
	}
}

// change sets cs.Change to change set id: none when it is not recorded (yet); a store that
// cannot be read is an error, not a lineage without who caused it.
func change(ctx context.Context, l Reader, id string, cs *CauseStep) error {
	ch, err := l.Change(ctx, id)
	switch {
	case err == nil:
		cs.Change = &ch
	case !errors.Is(err, ErrNotFound):
		return err
	}
	return nil
}

// replaced is the deployment of d's component applied last before d: what a rollback rolled
// back from (nil when none).
func replaced(ctx context.Context, l Reader, d Deployment) (*Deployment, error) {
	ds, err := l.Deployments(ctx, d.Component)
	if err != nil {
		return nil, err
	}
	for _, prev := range ds { // newest first
		if prev.ID != d.ID && prev.Status == StatusApplied && prev.At.Before(d.At) {
			return &prev, nil
		}
	}
	return nil, nil
}
