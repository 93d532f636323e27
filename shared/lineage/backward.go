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
// deployment a retry runs again), Change for a root cause.
type CauseStep struct {
	Cause    message.Cause `json:"cause"`
	Upstream *Step         `json:"upstream,omitempty"`
	Change   *Change       `json:"change,omitempty"`
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
}

func backward(ctx context.Context, l Reader, d Deployment, depth int) (*Step, error) {
	s := &Step{Deployment: d, Causes: []CauseStep{}}
	for _, c := range d.CausedBy {
		cs := CauseStep{Cause: c}
		if (c.Kind == message.CauseDeployment || c.Kind == message.CauseRetry) && depth < MaxDepth {
			up, err := l.Deployment(ctx, c.ID)
			if err != nil {
				return nil, err
			}
			if cs.Upstream, err = backward(ctx, l, up, depth+1); err != nil {
				return nil, err
			}
		} else if ch, err := l.Change(ctx, d.ChangeSetID); err == nil {
			cs.Change = &ch
		}
		s.Causes = append(s.Causes, cs)
	}
	return s, nil
}
