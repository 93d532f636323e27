package pipeline_test

import (
	"context"
	"errors"
	"testing"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

func TestCorrelation(t *testing.T) {
	t.Parallel()
	in := detected(t, "cr-corr")
	other := message.Actor{Kind: "karma", Name: "karma"}
	h := pipeline.Chain(func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		bare := scheduled(t, in, "prod/vpc/core") // own correlation id, no actor, no env, no cause
		set := scheduled(t, in, "prod/ecs-cluster/core")
		set.CausationID, set.Actor, set.Env = "0198a3b4-0000-7000-8000-000000000001", other, "dev"
		return []message.Envelope{bare, set}, nil
	}, pipeline.Correlation())
	out, err := h(context.Background(), in)
	if err != nil || len(out) != 2 {
		t.Fatalf("out = %v, err = %v", out, err)
	}
	tests := []struct {
		name           string
		got            message.Envelope
		causation, env string
		actor          message.Actor
	}{
		{"unset fields come from the input", out[0], in.ID, in.Env, in.Actor},
		{"set fields are kept", out[1], "0198a3b4-0000-7000-8000-000000000001", "dev", other},
	}
	for _, tt := range tests {
		if tt.got.CorrelationID != in.CorrelationID {
			t.Errorf("%s: correlation_id = %s, want the input's %s", tt.name, tt.got.CorrelationID, in.CorrelationID)
		}
		if tt.got.CausationID != tt.causation {
			t.Errorf("%s: causation_id = %s, want %s", tt.name, tt.got.CausationID, tt.causation)
		}
		if tt.got.Actor != tt.actor {
			t.Errorf("%s: actor = %+v, want %+v", tt.name, tt.got.Actor, tt.actor)
		}
		if tt.got.Env != tt.env {
			t.Errorf("%s: env = %q, want %q", tt.name, tt.got.Env, tt.env)
		}
		validate(t, tt.got)
	}

	// A handler continuing another story keeps that story's correlation.
	h = pipeline.Correlation()(func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		o := scheduled(t, in, "prod/vpc/core")
		o.CorrelationID = "0198a3b4-0000-7000-8000-0000000000c0"
		return []message.Envelope{o}, nil
	})
	if out, _ = h(context.Background(), in); len(out) != 1 || out[0].CorrelationID != "0198a3b4-0000-7000-8000-0000000000c0" {
		t.Errorf("a correlation set by the handler was replaced: %+v", out)
	}

	// Outputs returned with an error are corrected too (they are not published, but logged).
	h = pipeline.Correlation()(func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		return []message.Envelope{scheduled(t, in, "prod/vpc/core")}, errors.New("x")
	})
	out, _ = h(context.Background(), in)
	if len(out) != 1 || out[0].CorrelationID != in.CorrelationID {
		t.Errorf("outputs with an error: %+v", out)
	}
}
