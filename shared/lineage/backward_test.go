package lineage_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/message"
)

// reader is a lineage.Reader over maps; failChange, when set, is the error every Change read
// returns (a store that does not answer).
type reader struct {
	changes     map[string]lineage.Change
	deployments map[string]lineage.Deployment
	failChange  error
}

func (r *reader) Change(_ context.Context, id string) (lineage.Change, error) {
	if r.failChange != nil {
		return lineage.Change{}, r.failChange
	}
	c, ok := r.changes[id]
	if !ok {
		return c, fmt.Errorf("change %s: %w", id, lineage.ErrNotFound)
	}
	return c, nil
}

func (r *reader) Deployment(_ context.Context, id string) (lineage.Deployment, error) {
	d, ok := r.deployments[id]
	if !ok {
		return d, fmt.Errorf("deployment %s: %w", id, lineage.ErrNotFound)
	}
	return d, nil
}

func (r *reader) Deployments(_ context.Context, component string) ([]lineage.Deployment, error) {
	var out []lineage.Deployment
	for _, d := range r.deployments {
		if d.Component == component {
			out = append(out, d)
		}
	}
	return out, nil
}

// A chain of retries deeper than MaxDepth: each deployment is a retry of the one before it, the
// first caused by a commit of change set cs-0. Backward stops at MaxDepth and says so: the cause
// it does not follow is marked Truncated, and is not given a change set that did not cause it
// (the deployment's own change set, as if the retry were a root cause).
func TestBackwardSaysWhereItStops(t *testing.T) {
	at := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	r := &reader{changes: map[string]lineage.Change{}, deployments: map[string]lineage.Deployment{}}
	n := lineage.MaxDepth + 5
	for i := 0; i <= n; i++ {
		d := lineage.Deployment{ID: fmt.Sprintf("dep-%d", i), ChangeSetID: fmt.Sprintf("cs-%d", i), Component: "dev/app/api",
			Status: lineage.StatusFailed, At: at.Add(time.Duration(i) * time.Minute)}
		if i == 0 {
			d.CausedBy = []message.Cause{{Kind: message.CauseCommit, ID: "abc"}}
		} else {
			d.CausedBy = []message.Cause{{Kind: message.CauseRetry, ID: fmt.Sprintf("dep-%d", i-1)}}
		}
		r.deployments[d.ID] = d
		r.changes[d.ChangeSetID] = lineage.Change{ID: d.ChangeSetID, RootCauses: []message.Cause{{Kind: message.CauseCommit, ID: "abc"}}}
	}
	s, err := lineage.Backward(t.Context(), r, r.deployments[fmt.Sprintf("dep-%d", n)])
	if err != nil {
		t.Fatal(err)
	}
	depth := 0
	for {
		if len(s.Causes) != 1 {
			t.Fatalf("%s has %d causes, want 1", s.Deployment.ID, len(s.Causes))
		}
		c := s.Causes[0]
		if c.Upstream == nil {
			if !c.Truncated {
				t.Errorf("the retry of %s, at depth %d, is neither followed nor marked truncated", c.Cause.ID, depth)
			}
			if c.Change != nil {
				t.Errorf("the retry of %s, at depth %d, is given change %s as its root: it did not cause it", c.Cause.ID, depth, c.Change.ID)
			}
			if depth != lineage.MaxDepth {
				t.Errorf("stopped at depth %d, want %d", depth, lineage.MaxDepth)
			}
			break
		}
		if c.Truncated {
			t.Errorf("the retry of %s, followed, is marked truncated", c.Cause.ID)
		}
		s, depth = c.Upstream, depth+1
	}
}

// A change set the store cannot read (not: one it does not have) fails Backward rather than
// leaving the root cause without who caused it.
func TestBackwardDoesNotHideAStoreError(t *testing.T) {
	d := lineage.Deployment{ID: "dep-1", ChangeSetID: "cs-1", Component: "dev/app/api", Status: lineage.StatusApplied,
		CausedBy: []message.Cause{{Kind: message.CauseCommit, ID: "abc"}, {Kind: message.CausePromotion, ID: "cs-0"}}}
	broken := errors.New("throttled")
	r := &reader{deployments: map[string]lineage.Deployment{d.ID: d}, failChange: broken}
	if _, err := lineage.Backward(t.Context(), r, d); !errors.Is(err, broken) {
		t.Errorf("Backward with a store that does not answer: %v, want %v", err, broken)
	}
	// A change set not recorded (yet) is not an error: the cause is shown without it.
	r.failChange = nil
	s, err := lineage.Backward(t.Context(), r, d)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range s.Causes {
		if c.Change != nil {
			t.Errorf("cause %s: change %s, want none (not recorded)", c.Cause.Kind, c.Change.ID)
		}
	}
}
