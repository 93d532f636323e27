package graphwrite_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/workers/graphwrite"
)

// gatedStore is a graph store whose first WriteAt waits for open, and which counts the
// WriteAts running at once (a store whose check and write are not one transaction, Neptune).
type gatedStore struct {
	graph.Store
	entered chan struct{} // closed when the first WriteAt has started
	open    chan struct{} // the first WriteAt goes on once closed
	first   sync.Once
	running atomic.Int32
	most    atomic.Int32
	writes  atomic.Int32
	opened  sync.Once
}

func (g *gatedStore) WriteAt(ctx context.Context, gr *graph.Graph, env, commit string) (graph.WriteStats, error) {
	n := g.running.Add(1)
	defer g.running.Add(-1)
	for m := g.most.Load(); n > m && !g.most.CompareAndSwap(m, n); m = g.most.Load() {
	}
	g.writes.Add(1)
	wait := false
	g.first.Do(func() { wait = true; close(g.entered) })
	if wait {
		select {
		case <-g.open:
		case <-ctx.Done():
			return graph.WriteStats{}, ctx.Err()
		}
	}
	return g.Store.WriteAt(ctx, gr, env, commit)
}

// gated returns a gatedStore over st whose first write is let go at the test's end at the latest.
func gated(t *testing.T, st graph.Store) *gatedStore {
	g := &gatedStore{Store: st, entered: make(chan struct{}), open: make(chan struct{})}
	t.Cleanup(g.letGo)
	return g
}

func (g *gatedStore) letGo() { g.opened.Do(func() { close(g.open) }) }

func newSeen(t *testing.T) *embedded.Seen {
	t.Helper()
	s, err := embedded.NewSeen(context.Background(), wt.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Two changes of one environment resolved at once (two pushes, two Lambda invocations) must not
// write its graph at the same time: on Neptune the writes would interleave their elements and
// the commit recorded last could be the older one. The second waits for the first's lock and
// is put back (InProgress) when it does not get it in time; other environments do not wait.
func TestGraphWritesOfOneEnvironmentTakeTurns(t *testing.T) {
	ctx := context.Background()
	s := newStage(t)
	seen := newSeen(t)
	store := gated(t, s.graph)
	s.w.Store, s.w.Lock, s.w.LockWait = store, seen, 200*time.Millisecond

	first := newStory(t, 1).resolved(t, 2, "")
	second := newStory(t, 11).resolved(t, 12, "")
	dev := newStory(t, 21).resolved(t, 22, "")
	dev.Env = "dev"

	done := make(chan error, 1)
	go func() { _, err := s.w.Handle(ctx, first); done <- err }()
	<-store.entered

	_, err := s.w.Handle(ctx, second)
	var ip *pipeline.InProgress
	if !errors.As(err, &ip) || !strings.Contains(ip.Key, "prod") {
		t.Fatalf("a second write of prod while the first runs: err = %v, want InProgress on prod's lock", err)
	}
	if _, err := s.w.Handle(ctx, dev); err != nil {
		t.Fatalf("dev's write waited for prod's lock: %v", err)
	}
	store.letGo()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Handle(ctx, second); err != nil {
		t.Fatalf("the second write once the first ended: %v (lock not given back?)", err)
	}
	if got := store.most.Load(); got > 2 { // prod's first and dev's
		t.Errorf("%d graph writes ran at once", got)
	}
	if got := store.writes.Load(); got != 3 {
		t.Errorf("%d graph writes, want 3 (prod twice, dev once)", got)
	}
}

// A write waiting for the lock gets it as soon as the holder gives it back, within LockWait.
func TestGraphWriteWaitsForTheLock(t *testing.T) {
	ctx := context.Background()
	s := newStage(t)
	seen := newSeen(t)
	store := gated(t, s.graph)
	s.w.Store, s.w.Lock, s.w.LockWait = store, seen, time.Minute

	done := make(chan error, 1)
	go func() { _, err := s.w.Handle(ctx, newStory(t, 1).resolved(t, 2, "")); done <- err }()
	<-store.entered
	second := make(chan error, 1)
	go func() { _, err := s.w.Handle(ctx, newStory(t, 11).resolved(t, 12, "")); second <- err }()
	time.Sleep(100 * time.Millisecond)
	if got := store.writes.Load(); got != 1 {
		t.Fatalf("%d writes while the first holds the lock, want 1", got)
	}
	store.letGo()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatalf("the waiting write: %v", err)
	}
	if got := store.most.Load(); got != 1 {
		t.Errorf("%d graph writes ran at once, want 1", got)
	}
}

// lostLease renews nothing: every lease runs out.
type lostLease struct {
	*embedded.Seen
	released atomic.Int32
}

func (l *lostLease) Renew(context.Context, string, time.Duration) (bool, error) { return false, nil }
func (l *lostLease) Release(ctx context.Context, key string) error {
	l.released.Add(1)
	return l.Seen.Release(ctx, key)
}

// A write whose lease could not be renewed (another worker may hold the lock now) stops, says
// why, is retried, and does not give back a lock that is no longer its own.
func TestGraphWriteStopsWhenItsLockIsLost(t *testing.T) {
	defer graphwrite.SetLockLease(150 * time.Millisecond)()
	ctx := context.Background()
	s := newStage(t)
	lock := &lostLease{Seen: newSeen(t)}
	store := gated(t, s.graph)
	s.w.Store, s.w.Lock = store, lock

	_, err := s.w.Handle(ctx, newStory(t, 1).resolved(t, 2, ""))
	if err == nil || !strings.Contains(err.Error(), "lock ran out") || !pipeline.IsTransient(err) {
		t.Fatalf("err = %v, want a transient error saying the lock ran out", err)
	}
	if n := lock.released.Load(); n != 0 {
		t.Errorf("a lost lock was given back %d time(s)", n)
	}
	if c, _ := s.graph.Commit(ctx, "prod"); c != "" {
		t.Errorf("the stopped write recorded commit %q", c)
	}
}
