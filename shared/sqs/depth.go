package sqs

import (
	"context"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/usekarma/karma/shared/queue"
)

// Queue depth from SQS's own counts (GetQueueAttributes): what /metrics reports on AWS
// (shared/api). SQS's counts are approximate (eventually consistent, about a minute behind at
// most, per its documentation); reading them costs two requests per queue (the queue's, then its
// dead-letter queue's), plus, once per Queue, the URL lookups and the redrive policy.

// depthAttributes are the counts asked for, of the queue and of its DLQ.
var depthAttributes = []types.QueueAttributeName{
	types.QueueAttributeNameApproximateNumberOfMessages,
	types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
	types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
}

// Depth is how many messages queue name holds: waiting, in flight and delayed
// (ApproximateNumberOfMessages, ...NotVisible, ...Delayed), as the embedded queue's Depth counts
// every message it holds.
func (q *Queue) Depth(ctx context.Context, name string) (int, error) {
	qi, err := q.resolve(ctx, name)
	if err != nil {
		return 0, err
	}
	c, err := q.counts(ctx, q.QueueName(name), qi.url)
	return c.Held(), err
}

// Counts are queue name's counts by state, and the number of messages in its dead-letter queue
// (the one its RedrivePolicy names: all of that queue's messages, waiting, in flight or delayed,
// so a dead-letter queue shared by several queues counts for each of them; EnsureQueues and
// terraform/ give each queue its own).
func (q *Queue) Counts(ctx context.Context, name string) (queue.Counts, error) {
	qi, err := q.resolve(ctx, name)
	if err != nil {
		return queue.Counts{}, err
	}
	full := q.QueueName(name)
	c, err := q.counts(ctx, full, qi.url)
	if err != nil {
		return queue.Counts{}, err
	}
	dl, err := q.deadLetterQueue(ctx, full, qi)
	if err != nil {
		return queue.Counts{}, err
	}
	dead, err := q.counts(ctx, full+" (dead-letter queue)", dl.url)
	if err != nil {
		return queue.Counts{}, err
	}
	c.Dead = dead.Held()
	return c, nil
}

func (q *Queue) counts(ctx context.Context, full, url string) (queue.Counts, error) {
	out, err := q.client.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: depthAttributes})
	if err != nil {
		return queue.Counts{}, wrap("get queue attributes", full, err)
	}
	n := func(a types.QueueAttributeName) int {
		v, _ := strconv.Atoi(out.Attributes[string(a)])
		return v
	}
	return queue.Counts{Waiting: n(types.QueueAttributeNameApproximateNumberOfMessages),
		InFlight: n(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible),
		Delayed:  n(types.QueueAttributeNameApproximateNumberOfMessagesDelayed)}, nil
}
