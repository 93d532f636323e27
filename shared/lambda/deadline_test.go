package lambda_test

import (
	"context"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/lambda"
)

// A panic of the work is raised again in the invocation's goroutine, where the Lambda runtime
// recovers it as the invocation's error: raised in the goroutine AnswerBeforeDeadline runs it in,
// it would have ended the process, the function's other work with it.
func TestAnswerBeforeDeadlineRaisesTheWorksPanicInTheCaller(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	defer func() {
		if p := recover(); p != "boom" {
			t.Errorf("recovered %v, want the work's panic", p)
		}
	}()
	lambda.AnswerBeforeDeadline(ctx, func(context.Context) int { panic("boom") }, func() int { return 0 })
	t.Error("no panic")
}

// Work that heeds its context answers itself, its context ending before the function's
// deadline; without a deadline it runs with the invocation's context.
func TestAnswerBeforeDeadlineCutsTheWorkBeforeTheDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	fnDeadline, _ := ctx.Deadline()
	got := lambda.AnswerBeforeDeadline(ctx, func(work context.Context) string {
		d, _ := work.Deadline()
		if !d.Before(fnDeadline) {
			return "work ends at the function's deadline"
		}
		<-work.Done()
		if !lambda.Expired(work) {
			return "not expired"
		}
		return "cut"
	}, func() string { return "late" })
	if got != "cut" && got != "late" { // (late only on a machine too busy to answer in the reserve)
		t.Errorf("%s, want the work cut before the function's deadline", got)
	}
	if got := lambda.AnswerBeforeDeadline(t.Context(), func(work context.Context) bool { return work == t.Context() }, func() bool { return false }); !got {
		t.Error("without a deadline, the work did not run with the invocation's context")
	}
}
