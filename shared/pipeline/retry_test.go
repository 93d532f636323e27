package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

func TestRetryTransient(t *testing.T) {
	t.Parallel()
	boom := errors.New("throttled")
	tests := []struct {
		name      string
		failures  int   // errors before success (-1: always)
		err       error // what a failure returns
		wantCalls int   // -1: more than one
		wantErr   error
	}{
		{"success at once", 0, nil, 1, nil},
		{"transient twice then success", 2, pipeline.Transient(boom), 3, nil},
		{"deadline exceeded is transient", 1, context.DeadlineExceeded, 2, nil},
		{"plain error is not retried", -1, boom, 1, boom},
		{"permanent error is not retried", -1, pipeline.Permanent(boom), 1, boom},
		{"malformed is not retried", -1, &message.MalformedError{Reason: "x"}, 1, message.ErrMalformed},
		{"duplicate is not retried", -1, fmt.Errorf("x: %w", pipeline.ErrDuplicate), 1, pipeline.ErrDuplicate},
		{"in progress is not retried in-process", -1, &pipeline.InProgress{Key: "k"}, 1, nil},
		{"transient forever stops", -1, pipeline.Transient(boom), -1, boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			want := detected(t, "cr-retry")
			h := pipeline.Chain(func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
				n := int(calls.Add(1))
				if tt.failures < 0 || n <= tt.failures {
					return nil, tt.err
				}
				return []message.Envelope{in}, nil
			}, pipeline.RetryTransient(300*time.Millisecond))
			start := time.Now()
			out, err := h(context.Background(), want)
			elapsed := time.Since(start)
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.failures >= 0 && err != nil {
				t.Errorf("err = %v, want success", err)
			}
			if tt.failures >= 0 && (len(out) != 1 || out[0].ID != want.ID) {
				t.Errorf("outputs = %v, want the handler's", out)
			}
			if tt.failures < 0 && pipeline.Classify(err) != pipeline.Classify(tt.err) {
				t.Errorf("the returned error classifies as %v, the handler's as %v", pipeline.Classify(err), pipeline.Classify(tt.err))
			}
			switch got := int(calls.Load()); {
			case tt.wantCalls == -1:
				if got < 2 {
					t.Errorf("calls = %d, want several", got)
				}
				// backoff stops before a wait would cross maxElapsed.
				if elapsed < 100*time.Millisecond || elapsed > 300*time.Millisecond+time.Second {
					t.Errorf("gave up after %v, want within about maxElapsed (300ms)", elapsed)
				}
				if !pipeline.IsTransient(err) {
					t.Errorf("the last error %v must stay transient (Retry for the queue)", err)
				}
			case got != tt.wantCalls:
				t.Errorf("calls = %d, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestRetryTransientStopsOnCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	h := pipeline.RetryTransient(time.Minute)(func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		if calls.Add(1) == 2 {
			cancel()
		}
		return nil, pipeline.Transient(errors.New("throttled"))
	})
	start := time.Now()
	_, err := h(ctx, message.Envelope{})
	if err == nil {
		t.Fatal("want an error")
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("kept retrying %v after cancel", time.Since(start))
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("calls = %d, want 2 (none after cancel)", n)
	}
	if pipeline.Classify(err) != pipeline.Retry {
		t.Errorf("Classify(%v) = %v, want retry", err, pipeline.Classify(err))
	}
}
