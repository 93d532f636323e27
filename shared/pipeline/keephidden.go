package pipeline

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/usekarma/karma/shared/queue"
)

// Renewer is implemented by the Seen stores that can extend a claim (both can): Renew moves the
// expiry of key's live claim to lease from now, and reports false when no live claim of this
// Seen's holds the key (it ran out, or was released or marked, or another worker took it over). A worker renews the claims it holds while its
// handler runs (keepClaimed), so that a copy of the message arriving after the first lease —
// an approval announced again while a 40-minute apply runs — finds the key still in progress.
type Renewer interface {
	Renew(ctx context.Context, key string, lease time.Duration) (bool, error)
}

// Every calls fn every interval until stop, which returns once a call in progress has ended. It
// arms a timer rather than starting a goroutine: most handlers end long before the first call
// is due, and then nothing was started for them.
func Every(interval time.Duration, fn func()) (stop func()) {
	var (
		mu      sync.Mutex
		stopped bool
		running sync.WaitGroup
		timer   *time.Timer
	)
	tick := func() {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		running.Add(1)
		mu.Unlock()
		defer running.Done()
		fn()
		mu.Lock()
		if !stopped {
			timer.Reset(interval)
		}
		mu.Unlock()
	}
	mu.Lock()
	timer = time.AfterFunc(interval, tick)
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		timer.Stop()
		mu.Unlock()
		running.Wait()
	}
}

// keepHidden keeps the deliveries of stage hidden while their handler runs: every third of the
// runner's visibility timeout it hides them for another whole timeout. A handler may take far
// longer than the timeout — a Terraform apply that creates a database runs for 20 minutes and
// more, against a 10-minute default — and a delivery that came back meanwhile would be handed
// to another worker, which would run it a second time. A process that dies stops renewing, so
// its deliveries still come back one timeout later. With seen, the idempotency claims of keys
// are renewed at the same moments (keepClaimed). stop ends the renewals and returns once the
// last one has finished, so that settling the deliveries (delete, retry delay) comes after it.
func (r *Runner) keepHidden(ctx context.Context, st Stage, ds []queue.Delivery, keys []string) (stop func()) {
	vis := r.visibility()
	lease := st.lease(vis)
	renewer, _ := st.Seen.(Renewer)
	if renewer == nil {
		keys = nil
	}
	return Every(min(vis, lease)/3, func() {
		for _, d := range ds {
			err := r.Queue.ChangeVisibility(ctx, st.Name, d.ReceiptHandle, vis)
			switch {
			case errors.Is(err, queue.ErrStaleReceipt):
				r.log().Warn("a delivery came back to the queue while its handler ran (its visibility timeout passed before it was renewed): another worker may handle it too",
					"stage", st.Name, "message_id", d.MessageID)
			case err != nil && ctx.Err() == nil:
				r.log().Warn("renewing a delivery's visibility timeout failed; trying again", "stage", st.Name, "message_id", d.MessageID, "error", err)
			}
		}
		for _, k := range keys {
			renewClaim(ctx, renewer, k, lease, func(msg string, args ...any) { r.log().Warn(msg, append(args, "stage", st.Name)...) })
		}
	})
}

// keepClaimed renews key's claim in seen (when it is a Renewer) every third of lease until stop.
func keepClaimed(ctx context.Context, seen Seen, key string, lease time.Duration, warn func(string, ...any)) (stop func()) {
	renewer, ok := seen.(Renewer)
	if !ok {
		return func() {}
	}
	return Every(lease/3, func() { renewClaim(ctx, renewer, key, lease, warn) })
}

func renewClaim(ctx context.Context, renewer Renewer, key string, lease time.Duration, warn func(string, ...any)) {
	live, err := renewer.Renew(ctx, key, lease)
	switch {
	case err != nil && ctx.Err() == nil:
		warn("renewing an idempotency claim failed; trying again", "key", key, "error", err)
	case err == nil && !live:
		warn("an idempotency claim ran out while its handler ran: a copy of the message may be handled too", "key", key)
	}
}
