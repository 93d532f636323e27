package lambda

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"
)

// DeadlineReserve is the part of a function's time its work leaves unused, a tenth of what is
// left when the invocation arrives, at most MaxDeadlineReserve: past it an SQS batch starts no
// record, and the record being handled has its context cancelled (Terraform is interrupted), so
// that it can return and the batch's response reach Lambda before the function's deadline; an
// API Gateway request is answered (AnswerBeforeDeadline). A function still running at its
// deadline is stopped: Lambda retries its whole batch (the records that had succeeded would run
// again), and API Gateway answers a bare 5xx naming nothing.
func DeadlineReserve(left time.Duration) time.Duration {
	return min(left/10, MaxDeadlineReserve)
}

// MaxDeadlineReserve bounds DeadlineReserve.
const MaxDeadlineReserve = 30 * time.Second

// BeforeDeadline is ctx ending DeadlineReserve before its deadline (ctx itself, cancellable,
// when it has none): the context of an invocation's work.
func BeforeDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, deadline.Add(-DeadlineReserve(time.Until(deadline))))
}

// AnswerBeforeDeadline is do's answer, do running within BeforeDeadline(ctx): a synchronous
// invocation (an API Gateway request) whose work outlasts it is answered by the function rather
// than stopped by Lambda, which the caller would see as API Gateway's bare 5xx. do's context
// ends DeadlineReserve before the function's deadline, and do should then answer at once,
// saying it was cut off (the context's Err is set); should do still not have answered halfway
// through the reserve (work that does not heed its context), late's answer is returned instead
// and do is left to run while the function lives — late must not touch what do writes. A panic
// of do is raised again in the caller, as if do had run there. Without a deadline on ctx, do
// runs in the caller with ctx.
func AnswerBeforeDeadline[T any](ctx context.Context, do func(context.Context) T, late func() T) T {
	deadline, ok := ctx.Deadline()
	if !ok {
		return do(ctx)
	}
	reserve := DeadlineReserve(time.Until(deadline))
	work, cancel := context.WithDeadline(ctx, deadline.Add(-reserve))
	defer cancel()
	type answer struct {
		v        T
		panicked bool
		p        any
	}
	done := make(chan answer, 1) // do's goroutine never blocks on it, answered or not
	go func() {
		defer func() {
			if p := recover(); p != nil {
				slog.Error("lambda: the handler panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				done <- answer{panicked: true, p: p}
			}
		}()
		done <- answer{v: do(work)}
	}()
	answerBy := time.NewTimer(time.Until(deadline.Add(-reserve / 2)))
	defer answerBy.Stop()
	select {
	case a := <-done:
		if a.panicked {
			panic(a.p)
		}
		return a.v
	case <-answerBy.C:
		return late()
	}
}

// Expired reports whether work's time is up: ended, or at its deadline — a context derived from
// it (a write's, detached from the caller but ending when work does) may end first, and a
// handler answering then was cut off all the same.
func Expired(work context.Context) bool {
	d, ok := work.Deadline()
	return work.Err() != nil || ok && !time.Now().Before(d)
}
