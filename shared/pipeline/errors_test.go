package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

// retryAfterErr is an error that says when to come back, like *pipeline.InProgress.
type retryAfterErr struct{ d time.Duration }

func (e retryAfterErr) Error() string             { return fmt.Sprintf("busy, retry after %v", e.d) }
func (e retryAfterErr) RetryAfter() time.Duration { return e.d }

// localPermanent marks itself permanent without importing pipeline (as message.MalformedError does).
type localPermanent struct{ permanent bool }

func (e localPermanent) Error() string   { return "local" }
func (e localPermanent) Permanent() bool { return e.permanent }

func TestClassify(t *testing.T) {
	t.Parallel()
	plain := errors.New("connection reset by peer")
	tests := []struct {
		name string
		err  error
		want pipeline.Action
	}{
		{"nil", nil, pipeline.Ack},
		{"ErrDuplicate", pipeline.ErrDuplicate, pipeline.Duplicate},
		{"ErrDuplicate wrapped", fmt.Errorf("resolve already handled request:1: %w", pipeline.ErrDuplicate), pipeline.Duplicate},
		{"ErrDuplicate wrapped twice", fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", pipeline.ErrDuplicate)), pipeline.Duplicate},
		{"Permanent", pipeline.Permanent(plain), pipeline.DeadLetter},
		{"Permanent wrapped", fmt.Errorf("plan: %w", pipeline.Permanent(plain)), pipeline.DeadLetter},
		{"MalformedError", &message.MalformedError{Reason: "unknown message type \"x\""}, pipeline.DeadLetter},
		{"MalformedError wrapped", fmt.Errorf("decode: %w", &message.MalformedError{Reason: "bad"}), pipeline.DeadLetter},
		{"Parse error", func() error { _, err := message.Parse([]byte("{")); return err }(), pipeline.DeadLetter},
		{"Permanent() false", localPermanent{false}, pipeline.Retry},
		{"Permanent() true, no pipeline import", localPermanent{true}, pipeline.DeadLetter},
		{"Transient", pipeline.Transient(plain), pipeline.Retry},
		{"Transient wrapped", fmt.Errorf("lineage: %w", pipeline.Transient(plain)), pipeline.Retry},
		{"plain error", plain, pipeline.Retry},
		{"context.Canceled", context.Canceled, pipeline.Retry},
		{"context.Canceled wrapped", fmt.Errorf("receive: %w", context.Canceled), pipeline.Retry},
		{"context.DeadlineExceeded", context.DeadlineExceeded, pipeline.Retry},
		{"RetryAfter", retryAfterErr{time.Second}, pipeline.Retry},
		{"InProgress", &pipeline.InProgress{Key: "plan|deployment.recorded:dep-1"}, pipeline.Retry},
		{"duplicate wins over permanent", pipeline.Permanent(fmt.Errorf("x: %w", pipeline.ErrDuplicate)), pipeline.Duplicate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := pipeline.Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestActionString(t *testing.T) {
	t.Parallel()
	for a, want := range map[pipeline.Action]string{pipeline.Ack: "ack", pipeline.Retry: "retry", pipeline.DeadLetter: "dead-letter", pipeline.Duplicate: "duplicate"} {
		if a.String() != want {
			t.Errorf("%d.String() = %q, want %q", a, a.String(), want)
		}
	}
}

func TestIsTransient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"Transient", pipeline.Transient(errors.New("x")), true},
		{"Transient wrapped", fmt.Errorf("a: %w", pipeline.Transient(errors.New("x"))), true},
		{"deadline exceeded", context.DeadlineExceeded, true},
		{"plain", errors.New("x"), false},
		{"canceled", context.Canceled, false},
		{"permanent", pipeline.Permanent(errors.New("x")), false},
	}
	for _, tt := range tests {
		if got := pipeline.IsTransient(tt.err); got != tt.want {
			t.Errorf("%s: IsTransient = %v, want %v", tt.name, got, tt.want)
		}
	}
	if pipeline.Permanent(nil) != nil || pipeline.Transient(nil) != nil {
		t.Error("Permanent(nil) and Transient(nil) must be nil")
	}
	inner := errors.New("inner")
	if !errors.Is(pipeline.Permanent(inner), inner) || !errors.Is(pipeline.Transient(inner), inner) {
		t.Error("Permanent and Transient must unwrap to their cause")
	}
	if pipeline.Permanent(inner).Error() != "inner" || pipeline.Transient(inner).Error() != "inner" {
		t.Error("Permanent and Transient must keep the message")
	}
}
