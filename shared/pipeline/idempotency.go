package pipeline

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/usekarma/karma/shared/message"
)

// Seen records which idempotency keys a stage has completed, and which are being worked on.
type Seen interface {
	// Done reports whether key was marked.
	Done(ctx context.Context, key string) (bool, error)
	// Claim takes key for lease unless a live claim holds it (false). A claim whose lease ran
	// out — its holder died — can be taken again.
	Claim(ctx context.Context, key string, lease time.Duration) (bool, error)
	// Release drops a claim without marking (the handler failed; a retry may claim again): the
	// claim this Seen took, never one another worker took over once this one's ran out
	// (ClaimTokens).
	Release(ctx context.Context, key string) error
	// Mark records key as done (and drops its claim).
	Mark(ctx context.Context, key string) error
}

// ClaimTokens is what a Seen store remembers of the claims it took: each one's token, written
// with the claim, so that Release and Renew of a key act only on the claim this Seen took, not
// on one another worker took over after this one's ran out (its renewals failed or came late
// while its handler still worked). Released or marked, a claim is forgotten. A Seen is shared
// by the workers of one process: it remembers of a key the token of the latest claim it took.
type ClaimTokens struct {
	mu sync.Mutex
	m  map[string]string
}

// NewClaimToken returns a new claim's token.
func NewClaimToken() string { return rand.Text() }

// Keep remembers token as that of the claim of key just taken.
func (c *ClaimTokens) Keep(key, token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]string{}
	}
	c.m[key] = token
}

// Of returns the token of key's claim, "" when none is remembered.
func (c *ClaimTokens) Of(key string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

// Forget forgets key's claim, if its token is still token (not one taken since).
func (c *ClaimTokens) Forget(key, token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[key] == token {
		delete(c.m, key)
	}
}

// Records remembers the first value recorded under a key: which change a Git commit started, so
// that every delivery of the commit (a redelivery under a new delivery id, a retry after a
// failure) is answered with, and published as, that one change. The Seen stores implement it.
type Records interface {
	// RecordFirst stores value under key unless a value is stored there, and returns the stored
	// value (value itself when this call stored it). Of concurrent calls exactly one wins.
	RecordFirst(ctx context.Context, key, value string) (string, error)
	// Recorded returns the value stored under key, "" when none.
	Recorded(ctx context.Context, key string) (string, error)
}

// InProgress is returned when another worker holds the message's idempotency key: the runtime
// puts the message back for a moment; by then the other worker has finished (Duplicate) or died
// (its claim expires with the message's visibility timeout).
type InProgress struct{ Key string }

func (e *InProgress) Error() string {
	return "pipeline: " + e.Key + " is being handled by another worker"
}
func (e *InProgress) RetryAfter() time.Duration { return time.Second }

// Idempotency does the work of each idempotency key once per stage, even when duplicates of a
// message arrive at the same time on several workers or processes:
//   - a key already marked done is a Duplicate;
//   - otherwise the key is claimed for lease (the message's visibility timeout); a duplicate
//     arriving meanwhile is put back briefly (InProgress) and then finds the key done; a key
//     found done once claimed (its holder marked it between the lookup and the claim) is a
//     Duplicate too;
//   - the key is marked done only after the runtime has published the handler's outputs
//     (AfterPublish), so a crash between handling and publishing re-runs the handler instead of
//     losing its outputs; outputs carry deterministic keys, so the repeat is deduplicated
//     downstream.
func Idempotency(seen Seen, stage string, lease time.Duration) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
			key := stage + "|" + in.IdempotencyKey
			if in.IdempotencyKey == "" {
				key = stage + "|id:" + in.ID
			}
			done, err := seen.Done(ctx, key)
			if err != nil {
				return nil, Transient(fmt.Errorf("idempotency lookup: %w", err))
			}
			if done {
				return nil, fmt.Errorf("%s already handled %s: %w", stage, key, ErrDuplicate)
			}
			claimed, err := seen.Claim(ctx, key, lease)
			if err != nil {
				return nil, Transient(fmt.Errorf("idempotency claim: %w", err))
			}
			if !claimed {
				return nil, &InProgress{Key: key}
			}
			// The claim may have been free because its holder had just marked the key done
			// (Mark drops the claim) between the lookup above and the claim: look again, now
			// that the key is ours, so the work is not done a second time.
			if done, err := seen.Done(ctx, key); err != nil || done {
				_ = seen.Release(context.WithoutCancel(ctx), key)
				if err != nil {
					return nil, Transient(fmt.Errorf("idempotency lookup: %w", err))
				}
				return nil, fmt.Errorf("%s already handled %s: %w", stage, key, ErrDuplicate)
			}
			stop := keepClaimed(context.WithoutCancel(ctx), seen, key, lease, func(msg string, args ...any) {
				slog.Warn(msg, append(args, "stage", stage)...)
			})
			// A panicking handler (recovered by the Lambda adapter, which fails its record) stops
			// renewing the claim and drops it too: renewed on, the claim would hold the key for
			// as long as the process lives, and every redelivery would be put back, InProgress.
			finished := false
			defer func() {
				if !finished {
					stop()
					_ = seen.Release(context.WithoutCancel(ctx), key)
				}
			}()
			out, err := next(ctx, in)
			finished = true
			stop()
			if err != nil {
				_ = seen.Release(context.WithoutCancel(ctx), key)
				return out, err
			}
			AfterPublish(ctx, func(ctx context.Context) error { return seen.Mark(ctx, key) })
			// Outputs not published (or the mark failed): the message is retried, and its
			// redelivery must be able to claim the key rather than find it held by this attempt.
			onAbandon(ctx, func(ctx context.Context) { _ = seen.Release(context.WithoutCancel(ctx), key) })
			return out, err
		}
	}
}
