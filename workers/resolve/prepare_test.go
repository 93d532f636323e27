package resolve_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/pipeline"
)

// countingGraphs counts the builds and head reads of a folder repository.
type countingGraphs struct {
	wt.RepoGraphs
	builds, heads *atomic.Int32
	fetchErr      error
}

func (g countingGraphs) Build(ctx context.Context, env, commit string, overrides map[string][]byte) (*model.Result, error) {
	g.builds.Add(1)
	return g.RepoGraphs.Build(ctx, env, commit, overrides)
}

func (g countingGraphs) Head(ctx context.Context) (string, error) {
	g.heads.Add(1)
	return g.RepoGraphs.Head(ctx)
}

func (g countingGraphs) Fetch(context.Context, string) error { return g.fetchErr }

// What Prepare reads and builds outside the transaction, Handle uses instead of reading and
// building it again, and what Handle publishes is the same as without Prepare.
func TestPrepareReadsTheHeadAndBuildsOnce(t *testing.T) {
	vpc := message.ComponentRef{Type: "vpc", Nickname: "core"}
	in := runtimeDetected(t, 40, "prod", vpc, []string{"vpc_id"})

	plain := newStage(t, wt.ExamplesDir, nil)
	want := plain.handle(t, in)

	s := newStage(t, wt.ExamplesDir, nil)
	g := countingGraphs{RepoGraphs: wt.RepoGraphs{Root: wt.ExamplesDir}, builds: new(atomic.Int32), heads: new(atomic.Int32)}
	s.w.Graphs, s.w.Commits = g, g
	pr, err := s.w.Prepare(context.Background(), in)
	if err != nil || pr == nil {
		t.Fatalf("Prepare = %v, %v", pr, err)
	}
	if g.heads.Load() != 1 || g.builds.Load() != 1 {
		t.Fatalf("Prepare read the head %d times and built %d times, want 1 and 1", g.heads.Load(), g.builds.Load())
	}
	out, err := s.w.Handle(pipeline.WithPrepared(context.Background(), pr), in)
	if err != nil {
		t.Fatal(err)
	}
	if g.heads.Load() != 1 || g.builds.Load() != 1 {
		t.Errorf("Handle read the head or built again: %d head reads, %d builds in all", g.heads.Load(), g.builds.Load())
	}
	if len(out) != len(want) {
		t.Fatalf("%d outputs with Prepare, %d without", len(out), len(want))
	}
	for i := range out {
		if out[i].Type != want[i].Type || !reflect.DeepEqual(out[i].Payload, want[i].Payload) {
			t.Errorf("output %d differs with Prepare:\n%s %s\nwithout:\n%s %s", i, out[i].Type, out[i].Payload, want[i].Type, want[i].Payload)
		}
	}
}

// A commit that cannot be fetched fails Prepare with the commit named (the message is retried,
// then dead-lettered, without the transaction ever waiting for the remote).
func TestPrepareFailsOnACommitItCannotFetch(t *testing.T) {
	s := newStage(t, wt.ExamplesDir, nil)
	g := countingGraphs{RepoGraphs: wt.RepoGraphs{Root: wt.ExamplesDir}, builds: new(atomic.Int32), heads: new(atomic.Int32),
		fetchErr: errors.New("commit not found after fetching every branch")}
	s.w.Graphs, s.w.Commits = g, g
	_, err := s.w.Prepare(context.Background(), commitDetected(t, 41, sha1, []string{"iac/prod/vpc/core/config.json"}))
	if err == nil || !strings.Contains(err.Error(), sha1) || pipeline.Classify(err) != pipeline.Retry {
		t.Errorf("Prepare = %v (%v), want a retry naming %s", err, pipeline.Classify(err), sha1)
	}
	if g.builds.Load() != 0 {
		t.Errorf("%d builds after a failed fetch", g.builds.Load())
	}
}
