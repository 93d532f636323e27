package resolve

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/usekarma/karma/shared/message"
)

// Fetcher is an optional interface of Commits: it makes sure a commit is in the local
// repository, fetching it from the remote if need be.
type Fetcher interface {
	Fetch(ctx context.Context, sha string) error
}

// Prepare does, before Handle and outside the state file's transaction (pipeline.Stage.Prepare),
// what handling in will need from the Git remote: it fetches the change's commit (and, for a
// truncated push, the commit before it); for a change that names no commit it reads the deploy
// branch's head, which Handle then builds from — remembered per message, so that a handling
// tried again builds from the same head. Nothing else is read or written.
func (w *Worker) Prepare(ctx context.Context, in message.Envelope) error {
	if in.Type != message.TypeChangeDetected {
		return nil
	}
	var p message.ChangeDetected
	if err := message.Decode(in, &p); err != nil {
		return err
	}
	if p.Commit == nil {
		head, err := w.Commits.Head(ctx)
		if err != nil {
			return fmt.Errorf("resolve: the deploy branch's head: %w", err)
		}
		w.heads.remember(in.ID, head)
		return nil
	}
	f, ok := w.Commits.(Fetcher)
	if !ok {
		return nil
	}
	shas := []string{p.Commit.SHA}
	if p.Truncated && fullSHA.MatchString(p.Commit.Before) && strings.Trim(p.Commit.Before, "0") != "" {
		shas = append(shas, p.Commit.Before)
	}
	for _, sha := range shas {
		if err := f.Fetch(ctx, sha); err != nil {
			return fmt.Errorf("resolve: fetching commit %s: %w", sha, err)
		}
	}
	return nil
}

// fullSHA is a full commit id (a push's before may be the all-zero id of a new branch).
var fullSHA = regexp.MustCompile(`^[0-9a-f]{40}$`)

// preparedHeads are the deploy branch heads Prepare read, by message id (the latest
// maxPreparedHeads).
type preparedHeads struct {
	mu    sync.Mutex
	m     map[string]string
	order []string
}

const maxPreparedHeads = 1024

func (h *preparedHeads) remember(id, sha string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]string{}
	}
	if _, ok := h.m[id]; !ok {
		h.order = append(h.order, id)
	}
	h.m[id] = sha
	if len(h.order) > maxPreparedHeads {
		delete(h.m, h.order[0])
		h.order = h.order[1:]
	}
}

func (h *preparedHeads) of(id string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	sha, ok := h.m[id]
	return sha, ok
}
