package api

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

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
// repository's cache of builds, one per commit and environment) the graph of the head's tree.
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
	return h.Repo.Build(ctx, env, head, nil)
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
