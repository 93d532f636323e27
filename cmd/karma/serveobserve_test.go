package main

import (
	"context"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/api"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/pipeline"
)

// buildCounter is a Graphs building a new graph at each call.
type buildCounter struct{ builds int }

func (b *buildCounter) Current(context.Context, string) (*model.Result, error) {
	b.builds++
	return &model.Result{}, nil
}

// The API's graph is built again once a deployment applied or failed is recorded, before its
// event is streamed: the web page reads GET /graph on that event, and was answered the graph
// built before the deployment (its runtime missing) when graph-write had not acknowledged the
// same message yet, the kept graph being up to 10 s old.
func TestServeGraphFollowsTheDeploymentsStreamed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := &buildCounter{}
	snap := &api.Snapshot{Source: src, MaxAge: time.Hour}
	observe := serveObserver(snap, &api.Events{})
	read := func() *model.Result {
		t.Helper()
		res, err := snap.Current(ctx, "prod")
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	before := read()
	observe(pipeline.StageAudit, message.Envelope{Type: message.TypeDeploymentPlanned}, nil, pipeline.Ack, nil)
	if read() != before {
		t.Errorf("the graph built again after a deployment.planned: no runtime moved")
	}
	for _, typ := range []string{message.TypeDeploymentApplied, message.TypeDeploymentFailed} {
		observe(pipeline.StageAudit, message.Envelope{Type: typ}, nil, pipeline.Retry, nil)
		if read() != before {
			t.Errorf("the graph built again after a %s the audit stage did not record", typ)
		}
		observe(pipeline.StageAudit, message.Envelope{Type: typ}, nil, pipeline.Ack, nil)
		if after := read(); after == before {
			t.Errorf("after a %s was recorded (and streamed), GET /graph answers the graph built before it", typ)
		} else {
			before = after
		}
	}
	observe(pipeline.StageGraphWrite, message.Envelope{Type: message.TypeChangeResolved}, nil, pipeline.Ack, nil)
	if read() == before {
		t.Errorf("the graph not built again after a graph-write")
	}
	if src.builds != 4 {
		t.Errorf("%d builds, want 4", src.builds)
	}
}
