package sqs_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/queue"
	"github.com/usekarma/karma/shared/sqs"
)

// The service runtime (pipeline.Runner long-polling SQS) drains on shutdown: cancelling its
// context (what SIGTERM does) lets the handler in flight finish, its outputs are published and
// its message deleted, and only then does Run return.
func TestRunnerDrainsOnCancel(t *testing.T) {
	t.Parallel()
	q := newQueue(t, sqs.Options{CreateMissing: true})
	ctx := t.Context()
	const stage = "work"
	in, err := message.New(message.TypeDeploymentApplied, "dev", message.Actor{Kind: "cli", Name: "test"}, "drain-1",
		message.DeploymentApplied{})
	if err != nil {
		t.Fatal(err)
	}
	body, err := message.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Send(ctx, stage, queue.Message{Body: body}); err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	var handlerErr error
	handler := func(hctx context.Context, in message.Envelope) ([]message.Envelope, error) {
		close(started)
		<-release
		handlerErr = hctx.Err() // the handler's context survives the shutdown
		return []message.Envelope{in.MustDerive(message.TypeDeploymentApplied, "drain-out", message.DeploymentApplied{})}, nil
	}
	var mu sync.Mutex
	var actions []pipeline.Action
	r := &pipeline.Runner{Queue: q, Visibility: 30 * time.Second,
		Stages: []pipeline.Stage{{Name: stage, Handler: handler}},
		Observe: func(_ string, _ message.Envelope, _ []message.Envelope, a pipeline.Action, _ error) {
			mu.Lock()
			actions = append(actions, a)
			mu.Unlock()
		}}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { r.Run(runCtx); close(done) }()

	select {
	case <-started:
	case <-time.After(15 * time.Second):
		stop()
		t.Fatal("the handler never started")
	}
	stop() // SIGTERM
	select {
	case <-done:
		t.Fatal("Run returned while a handler was in flight")
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the handler finished")
	}
	if handlerErr != nil {
		t.Errorf("the handler's context was cancelled: %v", handlerErr)
	}
	mu.Lock()
	if len(actions) != 1 || actions[0] != pipeline.Ack {
		t.Errorf("actions = %v, want [ack]", actions)
	}
	mu.Unlock()
	// Deleted: neither visible nor in flight.
	if vis, hidden := depth(t, q, stage); vis != 0 || hidden != 0 {
		t.Errorf("queue %s after drain: %d visible, %d in flight; want the message deleted", stage, vis, hidden)
	}
	// Published before the delete: the output reached its queues (here audit).
	d := receiveOne(t, q, pipeline.StageAudit, 30*time.Second)
	out, err := message.Parse(d.Body)
	if err != nil || out.IdempotencyKey != "drain-out" || out.CausationID != in.ID {
		t.Errorf("audit got %+v, %v; want the handler's output", out, err)
	}
}

func depth(t *testing.T, q *sqs.Queue, name string) (visible, inFlight int) {
	t.Helper()
	out, err := q.Client().GetQueueAttributes(t.Context(), &awssqs.GetQueueAttributesInput{
		QueueUrl: aws.String(queueURL(t, q, name)),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible},
	})
	if err != nil {
		t.Fatalf("GetQueueAttributes(%s): %v", name, err)
	}
	visible, _ = strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
	inFlight, _ = strconv.Atoi(out.Attributes["ApproximateNumberOfMessagesNotVisible"])
	return visible, inFlight
}
