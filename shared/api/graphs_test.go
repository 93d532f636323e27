package api

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/model"
)

// countingGraphs builds a new *model.Result per call, or fails while fail is set.
type countingGraphs struct {
	mu     sync.Mutex
	builds int
	fail   error
	gate   chan struct{} // when set, a build waits for it
}

func (c *countingGraphs) Current(context.Context, string) (*model.Result, error) {
	if c.gate != nil {
		<-c.gate
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return nil, c.fail
	}
	c.builds++
	return &model.Result{}, nil
}

func TestSnapshotServesFromMemoryAndRebuildsWhenOld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC)
	src := &countingGraphs{}
	s := &Snapshot{Source: src, MaxAge: time.Minute, Now: func() time.Time { return now }}
	first, err := s.Current(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := s.Current(ctx, "prod"); again != first || src.builds != 1 {
		t.Fatalf("a second request built again (%d builds)", src.builds)
	}
	if other, _ := s.Current(ctx, "dev"); other == first || src.builds != 2 {
		t.Fatal("environments share a graph")
	}
	now = now.Add(time.Minute)
	if later, _ := s.Current(ctx, "prod"); later == first || src.builds != 3 {
		t.Fatal("an old graph was not rebuilt")
	}
	s.Invalidate()
	if fresh, _ := s.Current(ctx, "prod"); src.builds != 4 || fresh == nil {
		t.Fatal("Invalidate did not rebuild")
	}
	// A failed rebuild is said; the next request tries again.
	s.Invalidate()
	src.fail = errors.New("fetch failed")
	if _, err := s.Current(ctx, "prod"); err == nil {
		t.Fatal("a failed build was not reported")
	}
	src.fail = nil
	if _, err := s.Current(ctx, "prod"); err != nil || src.builds != 5 {
		t.Fatalf("after a failure: %v, %d builds", err, src.builds)
	}
}

// Requests arriving during the first build wait for it rather than building too.
func TestSnapshotBuildsOnceForConcurrentRequests(t *testing.T) {
	t.Parallel()
	src := &countingGraphs{gate: make(chan struct{})}
	s := &Snapshot{Source: src}
	var wg sync.WaitGroup
	results := make([]*model.Result, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _ = s.Current(context.Background(), "prod")
		}()
	}
	close(src.gate)
	wg.Wait()
	for i, r := range results {
		if r == nil || r != results[0] {
			t.Fatalf("request %d got %p, request 0 %p", i, r, results[0])
		}
	}
	if src.builds != 1 {
		t.Errorf("%d builds for %d concurrent requests", src.builds, len(results))
	}
}

// An Invalidate that arrives while a build is under way (the build may have read the head
// before the push) is not lost when that build ends: the next request builds again.
func TestSnapshotInvalidatedDuringABuildRebuilds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := &countingGraphs{gate: make(chan struct{}, 1)}
	s := &Snapshot{Source: src, MaxAge: time.Hour}
	src.gate <- struct{}{}
	if _, err := s.Current(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	s.Invalidate() // a push
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Current(ctx, "prod") // rebuilds, held at the gate
	}()
	for building := false; !building; {
		time.Sleep(time.Millisecond)
		s.mu.Lock()
		building = s.entries["prod"].building != nil
		s.mu.Unlock()
	}
	s.Invalidate() // another push, written while the rebuild runs
	src.gate <- struct{}{}
	<-done
	src.gate <- struct{}{}
	if _, err := s.Current(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.builds != 3 {
		t.Errorf("%d builds, want 3: the invalidation during the second build was lost", src.builds)
	}
}

// An environment whose graph cannot be built (GET /graph?env=<a name the repository does not
// have>) leaves nothing behind: every such name kept an entry for the life of the server, a
// memory any caller with the read scope could grow without bound.
func TestSnapshotKeepsNothingOfAnEnvironmentNeverBuilt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := &countingGraphs{fail: ErrUnknownEnvironment}
	s := &Snapshot{Source: src}
	for i := range 1000 {
		if _, err := s.Current(ctx, "nope-"+strconv.Itoa(i)); !errors.Is(err, ErrUnknownEnvironment) {
			t.Fatalf("unknown environment: %v", err)
		}
	}
	s.mu.Lock()
	n := len(s.entries)
	s.mu.Unlock()
	if n != 0 {
		t.Errorf("%d entries kept for environments never built, want none", n)
	}
	src.fail = nil
	if res, err := s.Current(ctx, "prod"); err != nil || res == nil || src.builds != 1 {
		t.Errorf("then prod: %v, %v, %d builds", res, err, src.builds)
	}
}

// After Invalidate, a request arriving while another rebuilds the graph waits for that build:
// it was answered the graph known to be out of date (a second browser tab reading GET /graph on
// a deployment's event got the graph from before it, shown as current).
func TestSnapshotInvalidatedServesNoGraphFromBefore(t *testing.T) {
	t.Parallel()
	src := &countingGraphs{gate: make(chan struct{}, 1)}
	s := &Snapshot{Source: src, MaxAge: time.Hour}
	src.gate <- struct{}{}
	before, err := s.Current(context.Background(), "prod")
	if err != nil {
		t.Fatal(err)
	}
	s.Invalidate() // a deployment recorded
	first := make(chan *model.Result)
	go func() {
		res, _ := s.Current(context.Background(), "prod") // rebuilds, held at the gate
		first <- res
	}()
	for building := false; !building; {
		time.Sleep(time.Millisecond)
		s.mu.Lock()
		building = s.entries["prod"].building != nil
		s.mu.Unlock()
	}
	// A second request, unwilling to wait (its context done): it waits for the build all the
	// same, so it gets no graph rather than the one from before.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if res, err := s.Current(done, "prod"); res == before || err == nil {
		t.Errorf("a request during the rebuild after Invalidate got the graph from before it (%v)", err)
	}
	src.gate <- struct{}{}
	rebuilt := <-first
	if rebuilt == nil || rebuilt == before {
		t.Fatal("the rebuild after Invalidate answered the graph from before it")
	}
	if res, err := s.Current(context.Background(), "prod"); res != rebuilt || err != nil {
		t.Errorf("after the rebuild: %p, %v; want the rebuilt graph", res, err)
	}
}

// A graph grown old (MaxAge) is not known to be out of date: requests arriving while it is
// rebuilt get it meanwhile, without waiting.
func TestSnapshotServesAnOldGraphWhileRebuildingIt(t *testing.T) {
	t.Parallel()
	src := &countingGraphs{gate: make(chan struct{}, 1)}
	later := false
	s := &Snapshot{Source: src, MaxAge: time.Hour, Now: func() time.Time {
		if later {
			return time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
		}
		return time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	}}
	src.gate <- struct{}{}
	old, err := s.Current(context.Background(), "prod")
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	later = true
	s.mu.Unlock()
	rebuilt := make(chan *model.Result)
	go func() {
		res, _ := s.Current(context.Background(), "prod") // rebuilds, held at the gate
		rebuilt <- res
	}()
	for building := false; !building; {
		time.Sleep(time.Millisecond)
		s.mu.Lock()
		building = s.entries["prod"].building != nil
		s.mu.Unlock()
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if res, err := s.Current(done, "prod"); res != old || err != nil {
		t.Errorf("during the rebuild of an old graph: %p, %v; want the old graph", res, err)
	}
	src.gate <- struct{}{}
	if res := <-rebuilt; res == nil || res == old {
		t.Error("the old graph was not rebuilt")
	}
}
