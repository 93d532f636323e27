package pipeline_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

// A hook that fails leaves the message for redelivery, like a failed publish.
func TestAfterPublishHookFailureRetries(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	q := newQueue(t, db)
	var ran atomic.Int32
	st := pipeline.Stage{Name: "hooks", Handler: func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		pipeline.AfterPublish(ctx, func(context.Context) error { ran.Add(1); return errors.New("mark failed") })
		pipeline.AfterPublish(ctx, func(context.Context) error { ran.Add(100); return nil })
		return nil, nil
	}}
	r := &pipeline.Runner{Queue: q, Stages: []pipeline.Stage{st}, Log: quietLog}
	send(t, q, st.Name, detected(t, "cr-hook"))
	if got := r.Process(context.Background(), st, receiveOne(t, q, st.Name, time.Minute)); got != pipeline.Retry {
		t.Errorf("action = %v, want retry", got)
	}
	if ran.Load() != 1 {
		t.Errorf("hooks ran %d, want the first only (1)", ran.Load())
	}
	// Outside a runtime, AfterPublish is a no-op.
	pipeline.AfterPublish(context.Background(), func(context.Context) error { t.Error("ran outside a runtime"); return nil })
}
