package lineage

import (
	"context"

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
}

// MaxDepth bounds Backward (a chain of deployments is as deep as the graph's waves).
const MaxDepth = 100

// Backward follows d's causes back to their roots.
func Backward(ctx context.Context, l Reader, d Deployment) (*Step, error) {
	return backward(ctx, l, d, 0)
}

// Reader is the part of Store that Backward reads.
type Reader interface {
	Change(ctx context.Context, id string) (Change, error)
	Deployment(ctx context.Context, id string) (Deployment, error)
	Deployments(ctx context.Context, component string) ([]Deployment, error)
}

func backward(ctx context.Context, l Reader, d Deployment, depth int) (*Step, error) {
	s := &Step{Deployment: d, Causes: []CauseStep{}}
	for _, c := range d.CausedBy {
		cs, err := causeStep(ctx, l, d, c, depth)
		if err != nil {
			return nil, err
		}
		s.Causes = append(s.Causes, cs)
	}
	return s, nil
}

// causeStep follows one cause of d: a deployment (upstream, retried, rolled back to) to its own
// step; a promotion to the previous environment's change set; a root cause to d's change set.
func causeStep(ctx context.Context, l Reader, d Deployment, c message.Cause, depth int) (CauseStep, error) {
	cs := CauseStep{Cause: c}
	switch {
	case (c.Kind == message.CauseDeployment || c.Kind == message.CauseRetry || c.Kind == message.CauseRollback) && depth < MaxDepth:
		up, err := l.Deployment(ctx, c.ID)
		if err != nil {
			return cs, err
		}
		if cs.Upstream, err = backward(ctx, l, up, depth+1); err != nil {
			return cs, err
		}
		if c.Kind == message.CauseRollback {
			cs.Replaces, err = replaced(ctx, l, d)
		}
		return cs, err
	case c.Kind == message.CausePromotion:
		if ch, err := l.Change(ctx, c.ID); err == nil {
			cs.Change = &ch
		}
	default:
		if ch, err := l.Change(ctx, d.ChangeSetID); err == nil {
			cs.Change = &ch
		}
	}
	return cs, nil
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
