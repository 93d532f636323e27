package pipeline

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/usekarma/karma/shared/queue"
)

// keepHidden keeps the deliveries of stage hidden while their handler runs: every third of the
// runner's visibility timeout it hides them for another whole timeout. A handler may take far
// longer than the timeout — a Terraform apply that creates a database runs for 20 minutes and
// more, against a 10-minute default — and a delivery that came back meanwhile would be handed
// to another worker, which would run it a second time. A process that dies stops renewing, so
// its deliveries still come back one timeout later. stop ends the renewals and returns once the
// last one has finished, so that settling the deliveries (delete, retry delay) comes after it.
func (r *Runner) keepHidden(ctx context.Context, stage string, ds ...queue.Delivery) (stop func()) {
	vis := r.visibility()
	// A timer, not a goroutine: most handlers end long before the first renewal is due, and then
	// nothing was started for them.
	var (
		mu      sync.Mutex
		stopped bool
		running sync.WaitGroup
		timer   *time.Timer
	)
	renew := func() {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		running.Add(1)
		mu.Unlock()
		defer running.Done()
		for _, d := range ds {
			err := r.Queue.ChangeVisibility(ctx, stage, d.ReceiptHandle, vis)
			switch {
			case errors.Is(err, queue.ErrStaleReceipt):
				r.log().Warn("a delivery came back to the queue while its handler ran (its visibility timeout passed before it was renewed): another worker may handle it too",
					"stage", stage, "message_id", d.MessageID)
			case err != nil && ctx.Err() == nil:
				r.log().Warn("renewing a delivery's visibility timeout failed; trying again", "stage", stage, "message_id", d.MessageID, "error", err)
			}
		}
		mu.Lock()
		if !stopped {
			timer.Reset(vis / 3)
		}
		mu.Unlock()
	}
	mu.Lock()
	timer = time.AfterFunc(vis/3, renew)
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		timer.Stop()
		mu.Unlock()
		running.Wait()
	}
}
