package sqs_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/usekarma/karma/shared/queue"
	"github.com/usekarma/karma/shared/sqs"
)

// Depth and Counts read SQS's counts (moto's are exact): waiting, in flight, delayed, and the
// dead-letter queue's; Depth is everything the queue holds, as the embedded queue's.
func TestDepthAndCounts(t *testing.T) {
	t.Parallel()
	q := newQueue(t, sqs.Options{})
	ctx := t.Context()
	if err := q.EnsureQueues(ctx, []string{"plan"}, maxReceives); err != nil {
		t.Fatal(err)
	}
	check := func(when string, want queue.Counts) {
		t.Helper()
		got, err := q.Counts(ctx, "plan")
		if err != nil || got != want {
			t.Errorf("%s: counts %+v, %v; want %+v", when, got, err, want)
		}
		if d, err := q.Depth(ctx, "plan"); err != nil || d != want.Held() {
			t.Errorf("%s: depth %d, %v; want %d", when, d, err, want.Held())
		}
	}
	check("empty", queue.Counts{})
	if err := q.Send(ctx, "plan", queue.Message{Body: []byte("1")}, queue.Message{Body: []byte("2")}, queue.Message{Body: []byte("3")}); err != nil {
		t.Fatal(err)
	}
	url, err := q.Client().GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(q.QueueName("plan"))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Client().SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: url.QueueUrl, MessageBody: aws.String("later"), DelaySeconds: 600}); err != nil {
		t.Fatal(err)
	}
	check("three sent, one delayed", queue.Counts{Waiting: 3, Delayed: 1})
	ds, err := q.Receive(ctx, "plan", 2, time.Minute, 0)
	if err != nil || len(ds) != 2 {
		t.Fatalf("receive: %d, %v", len(ds), err)
	}
	check("two received", queue.Counts{Waiting: 1, InFlight: 2, Delayed: 1})
	if err := q.Kill(ctx, "plan", ds[0].ReceiptHandle, "poison"); err != nil {
		t.Fatal(err)
	}
	if err := q.Delete(ctx, "plan", ds[1].ReceiptHandle); err != nil {
		t.Fatal(err)
	}
	check("one dead-lettered, one deleted", queue.Counts{Waiting: 1, Delayed: 1, Dead: 1})

	if _, err := q.Depth(ctx, "missing"); err == nil {
		t.Error("depth of a queue that does not exist: no error")
	}
	if _, err := q.Counts(ctx, "missing"); err == nil {
		t.Error("counts of a queue that does not exist: no error")
	}
}
