package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/usekarma/karma/shared/app"
)

// runUntilIdle runs every stage until no queue holds a message and nothing is being handled.
// Idle is seen three times in a row (30 ms), so that a message between two states (acknowledged
// on one queue, not yet visible on the next, on a transport that publishes apart from the
// acknowledgement) is not missed; the queues are counted only while nothing is in flight. What
// dead processes held is released first, and every second while busy; what the pipeline waits
// for is said on st.notices (see leaseWatch).
//
// On AWS (the queue is SQS) the stages run in the Lambda functions, not here: runUntilIdle
// returns at once, and the commands report the change sets' state as the stores hold it.
func (st *stack) runUntilIdle(ctx context.Context, timeout time.Duration) error {
	if st.eq == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	watch := st.leaseWatch(st.notices)
	if err := watch.release(ctx); err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { st.runner.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	busySince := time.Time{}
	for quiet := 0; quiet < 3; {
		select {
		case <-ctx.Done():
			return fmt.Errorf("pipeline still busy after %s: %w", timeout, ctx.Err())
		case <-tick.C:
		}
		busy, err := st.busy(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("pipeline still busy after %s: %w", timeout, ctx.Err())
			}
			return err
		}
		if !busy {
			quiet, busySince = quiet+1, time.Time{}
			continue
		}
		quiet = 0
		if busySince.IsZero() {
			busySince = time.Now()
		} else if time.Since(busySince) >= time.Second {
			busySince = time.Now()
			if err := watch.release(ctx); err != nil {
				return err
			}
			if err := watch.report(ctx, st.runner.InFlight() == 0); err != nil {
				return err
			}
		}
	}
	return nil
}

// busy reports whether a message is being handled or waits in a queue.
func (st *stack) busy(ctx context.Context) (bool, error) {
	if st.runner.InFlight() > 0 {
		return true, nil
	}
	return st.queued(ctx)
}

// queued reports whether a message waits in a queue of the pipeline's stages.
func (st *stack) queued(ctx context.Context) (bool, error) {
	if st.eq == nil {
		return false, errNotEmbedded
	}
	for _, name := range stageNames {
		n, err := st.eq.Depth(ctx, name)
		if err != nil || n > 0 {
			return n > 0, err
		}
	}
	return false, nil
}

// stageNames are the queues of the pipeline's stages, ingest first (shared/app).
var stageNames = app.StageNames

// errNotEmbedded: the pipeline's stages run elsewhere (AWS: the Lambda functions) and this
// process cannot wait for them to finish.
var errNotEmbedded = errors.New("the queue is on AWS: the stages run in the Lambda functions (or karma serve), not in this command; " +
	"follow the change with 'karma audit log --correlation <change-id>'")
