package pipeline

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/usekarma/karma/shared/message"
)

// RetryTransient retries transient errors in-process with exponential backoff (cenkalti/backoff) for at
// most maxElapsed; other errors return at once for Classify to sort.
func RetryTransient(maxElapsed time.Duration) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
			b := backoff.NewExponentialBackOff()
			b.InitialInterval = 20 * time.Millisecond
			b.MaxElapsedTime = maxElapsed
			var out []message.Envelope
			err := backoff.Retry(func() error {
				var err error
				out, err = next(ctx, in)
				if err != nil && !IsTransient(err) {
					return backoff.Permanent(err)
				}
				return err
			}, backoff.WithContext(b, ctx))
			return out, err
		}
	}
}
