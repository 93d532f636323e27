package pipeline_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

func TestChainOrder(t *testing.T) {
	t.Parallel()
	var trace []string
	mw := func(name string) pipeline.Middleware {
		return func(next pipeline.Handler) pipeline.Handler {
			return func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
				trace = append(trace, name+">")
				out, err := next(ctx, in)
				trace = append(trace, "<"+name)
				return out, err
			}
		}
	}
	h := pipeline.Chain(func(context.Context, message.Envelope) ([]message.Envelope, error) {
		trace = append(trace, "handler")
		return nil, nil
	}, mw("a"), mw("b"))
	if _, err := h(context.Background(), message.Envelope{}); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(trace), "[a> b> handler <b <a]"; got != want {
		t.Errorf("trace = %s, want %s (first listed is outermost)", got, want)
	}
}
