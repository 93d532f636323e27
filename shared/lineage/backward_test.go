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

// countingReader counts the deployments read.
type countingReader struct {
	*reader
	reads int
}

func (r *countingReader) Deployment(ctx context.Context, id string) (lineage.Deployment, error) {
	r.reads++
	return r.reader.Deployment(ctx, id)
}

// A layered graph — every component of a layer consumes every component of the layer below,
// and one change redeploys them all — reaches the first layer along 3^layers paths. Backward
// follows each deployment once: one reached again is marked Repeated (its lineage is given at
// its first appearance), so the answer and the reads grow with the deployments, not the paths.
func TestBackwardFollowsEachDeploymentOnce(t *testing.T) {
	const layers, width = 12, 3
	r := &countingReader{reader: &reader{changes: map[string]lineage.Change{"cs": {ID: "cs", Source: message.SourceGit}}, deployments: map[string]lineage.Deployment{}}}
	id := func(l, i int) string { return fmt.Sprintf("dep-%d-%d", l, i) }
	for l := 0; l < layers; l++ {
		for i := 0; i < width; i++ {
			d := lineage.Deployment{ID: id(l, i), ChangeSetID: "cs", Component: fmt.Sprintf("prod/app/l%d-%d", l, i), Status: lineage.StatusApplied}
			if l == 0 {
				d.CausedBy = []message.Cause{{Kind: message.CauseCommit, ID: "abc"}}
			}
			for j := 0; l > 0 && j < width; j++ {
				d.CausedBy = append(d.CausedBy, message.Cause{Kind: message.CauseDeployment, ID: id(l-1, j), Keys: []string{"out"}})
			}
			r.deployments[d.ID] = d
		}
	}
	top := lineage.Deployment{ID: "dep-top", ChangeSetID: "cs", Component: "prod/app/top", Status: lineage.StatusApplied,
		CausedBy: []message.Cause{{Kind: message.CauseDeployment, ID: id(layers-1, 0)}, {Kind: message.CauseDeployment, ID: id(layers-1, 1)}}}
	s, err := lineage.Backward(context.Background(), r, top)
	if err != nil {
		t.Fatal(err)
	}
	if r.reads > layers*width {
		t.Errorf("%d deployment reads for %d deployments", r.reads, layers*width)
	}
	followed, repeated, roots := map[string]int{}, 0, 0
	var walk func(s *lineage.Step)
	walk = func(s *lineage.Step) {
		for _, c := range s.Causes {
			switch {
			case c.Upstream != nil:
				followed[c.Cause.ID]++
				walk(c.Upstream)
			case c.Repeated:
				if followed[c.Cause.ID] == 0 {
					t.Errorf("%s marked repeated before its lineage was given", c.Cause.ID)
				}
				repeated++
			case c.Change != nil:
				roots++
			default:
				t.Errorf("cause %+v neither followed, repeated nor a root", c.Cause)
			}
		}
	}
	walk(s)
	// Every deployment but the last layer's third, which top does not name.
	if len(followed) != layers*width-1 {
		t.Errorf("%d deployments followed, want %d", len(followed), layers*width-1)
	}
	for d, n := range followed {
		if n != 1 {
			t.Errorf("%s followed %d times", d, n)
		}
	}
	// The deployment causes walked: top's 2, and width of each followed deployment above layer 0.
	if walked := 2 + (len(followed)-width)*width; roots != width || repeated != walked-len(followed) {
		t.Errorf("%d roots, %d repeated causes; want %d roots and %d repeated", roots, repeated, width, walked-len(followed))
	}
}
