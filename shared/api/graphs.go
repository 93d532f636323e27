package api

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/usekarma/karma/shared/model"
)

// ErrUnknownEnvironment is returned (wrapped) by Graphs for an environment the repository does
// not have; the API answers 404.
var ErrUnknownEnvironment = errors.New("api: no such environment")

// Repository is what HeadGraphs reads: the config repository at commits (configrepo.Source).
type Repository interface {
	Head(ctx context.Context) (string, error)
	Build(ctx context.Context, env, commit string, overrides map[string][]byte) (*model.Result, error)
	Environments(ctx context.Context, commit string) ([]string, error)
}

// HeadGraphs is Graphs at the deploy branch's head: each request builds (or finds in the
// repository's cache of builds, one per commit and environment) the graph of the head's tree,
// with the runtimes the parameter stores hold now (one listing per environment).
// Asking a cache clone for its head fetches the branch: put a Snapshot in front of it.
type HeadGraphs struct {
	Repo Repository

	mu       sync.Mutex
	envsHead string
	envs     []string
}

// Current implements Graphs.
func (h *HeadGraphs) Current(ctx context.Context, env string) (*model.Result, error) {
	head, err := h.Repo.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("the deploy branch's head: %w", err)
	}
	if env != "" {
		envs, err := h.environments(ctx, head)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(envs, env) {
			return nil, fmt.Errorf("%w: %q (the repository at %.12s has %s)", ErrUnknownEnvironment, env, head, strings.Join(envs, ", "))
		}
	}
	if cur, ok := h.Repo.(currentBuilder); ok {
		return cur.Current(ctx, env, head) // with the runtimes published since the build
	}
	return h.Repo.Build(ctx, env, head, nil)
}

// currentBuilder is a Repository whose kept builds can be given the parameter stores' current
// runtimes (configrepo.Source.Current): a build is kept per commit, and deployments since have
// published runtimes it does not know.
type currentBuilder interface {
	Current(ctx context.Context, env, commit string) (*model.Result, error)
}

// environments of head, remembered for the last head asked.
func (h *HeadGraphs) environments(ctx context.Context, head string) ([]string, error) {
	h.mu.Lock()
	if h.envsHead == head {
		defer h.mu.Unlock()
		return h.envs, nil
	}
	h.mu.Unlock()
	envs, err := h.Repo.Environments(ctx, head)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.envsHead, h.envs = head, envs
	h.mu.Unlock()
	return envs, nil
}

// Snapshot is Graphs kept in memory: it answers from the graphs it built, and rebuilds one from
// Source when it is older than MaxAge or after Invalidate (a push arrived, a deployment moved a
// runtime). One request builds at a time per environment: the first build of an environment is
// awaited by the requests that arrive meanwhile; during the rebuild of a graph grown old they
// get the previous graph (stale while revalidating), so that rebuild never queues readers. After
// Invalidate they wait for a graph built since: the previous one is known to be out of date, and
// answered as current it was shown as such (a second client reading GET /graph on a deployment's
// event got the graph from before the deployment while the first one's request rebuilt it).
type Snapshot struct {
	Source Graphs
	MaxAge time.Duration // default DefaultSnapshotAge
	Now    func() time.Time

	mu      sync.Mutex
	entries map[string]*snapshotEntry
}

// DefaultSnapshotAge is how long Snapshot serves a graph before rebuilding it.
const DefaultSnapshotAge = 10 * time.Second

type snapshotEntry struct {
	res      *model.Result
	built    time.Time
	stale    bool
	gen      uint64        // Invalidate calls so far: a build that began before the last one is stale
	building chan struct{} // closed when the build under way ends; nil when none is
}

// Current implements Graphs.
func (s *Snapshot) Current(ctx context.Context, env string) (*model.Result, error) {
	for {
		s.mu.Lock()
		if s.entries == nil {
			s.entries = map[string]*snapshotEntry{}
		}
		e := s.entries[env]
		if e == nil {
			e = &snapshotEntry{}
			s.entries[env] = e
		}
		switch {
		case e.res != nil && !e.stale && (e.building != nil || s.now().Sub(e.built) < s.maxAge()):
			s.mu.Unlock()
			return e.res, nil
		case e.building != nil: // the first build, or one after Invalidate, is under way: wait for it
			wait := e.building
			s.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		e.building = make(chan struct{})
		gen := e.gen
		s.mu.Unlock()
		return s.build(ctx, env, e, gen)
	}
}

// build builds env's graph; invalidated while it ran (it may have read the head before the push
// that invalidated it), what it built is served but rebuilt at the next request.
func (s *Snapshot) build(ctx context.Context, env string, e *snapshotEntry, gen uint64) (*model.Result, error) {
	res, err := s.Source.Current(ctx, env)
	s.mu.Lock()
	defer s.mu.Unlock()
	close(e.building)
	e.building = nil
	if err != nil {
		if e.res == nil && s.entries[env] == e {
			// Nothing to keep: an environment never built (one the repository does not have, a
			// name sent by anyone with the read scope) leaves no entry, or each would stay forever.
			delete(s.entries, env)
		}
		return nil, err // the next request tries again
	}
	e.res, e.built, e.stale = res, s.now(), e.gen != gen
	return res, nil
}

func (s *Snapshot) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Snapshot) maxAge() time.Duration {
	if s.MaxAge <= 0 {
		return DefaultSnapshotAge
	}
	return s.MaxAge
}

// Invalidate makes the next request of every environment rebuild its graph.
func (s *Snapshot) Invalidate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries {
		e.stale = true
		e.gen++
	}
}
