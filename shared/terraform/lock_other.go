//go:build !unix

package terraform

import (
	"context"
	"path/filepath"
	"sync"
)

// Without flock, Roots are locked within this process only.
var rootLocks sync.Map // absolute root -> chan struct{} (a one-slot semaphore)

func lockRoot(ctx context.Context, root string) (unlock func(), err error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	v, _ := rootLocks.LoadOrStore(abs, make(chan struct{}, 1))
	sem := v.(chan struct{})
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
