package sqs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/usekarma/karma/shared/queue"
)

// EnsureQueues creates each named queue (Prefix+name) with its dead-letter queue, and points
// the queue's RedrivePolicy at it with maxReceives (0 = queue.DefaultMaxReceives). Existing
// queues are kept (their RedrivePolicy and retention are set). Every queue keeps its messages
// 14 days, SQS's maximum, not its default of 4: a message nobody receives (its stage stopped)
// is deleted when its retention ends, without passing through the DLQ. The Terraform
// equivalent, per queue:
//
//	DLQ:   name = Prefix+name+"-dlq" (".fifo" last), message_retention_seconds = 1209600,
//	       fifo_queue and content_based_deduplication = true for FIFO queues
//	queue: name = Prefix+name, redrive_policy = {deadLetterTargetArn = DLQ arn,
//	       maxReceiveCount = maxReceives}, message_retention_seconds = 1209600,
//	       visibility_timeout_seconds >= the Lambda function's
//	       timeout, fifo_queue and content_based_deduplication = true for FIFO queues
//
// plus, for queues fed by EventBridge, a queue policy allowing events.amazonaws.com to
// sqs:SendMessage with aws:SourceArn = the rule's ARN.
func (q *Queue) EnsureQueues(ctx context.Context, names []string, maxReceives int) error {
	for _, name := range names {
		if _, err := q.ensure(ctx, name, maxReceives); err != nil {
			return err
		}
	}
	return nil
}

func (q *Queue) ensure(ctx context.Context, name string, maxReceives int) (*queueInfo, error) {
	if maxReceives <= 0 {
		maxReceives = queue.DefaultMaxReceives
	}
	full := q.QueueName(name)
	dlqName := DeadLetterQueueName(full)
	if len(dlqName) > maxNameLength {
		return nil, fmt.Errorf("sqs: queue name %q is too long for SQS with its DLQ %q (%d characters at most)", full, dlqName, maxNameLength)
	}
	fifo := isFIFO(full)
	// attrs returns the attributes to create a queue with: settings plus, for FIFO, FifoQueue,
	// which SQS takes only at creation (SetQueueAttributes refuses it), and
	// ContentBasedDeduplication. It copies settings, which are what SetQueueAttributes gets.
	attrs := func(settings map[string]string) map[string]string {
		out := make(map[string]string, len(settings)+2)
		for k, v := range settings {
			out[k] = v
		}
		if fifo {
			out[string(types.QueueAttributeNameFifoQueue)] = "true"
			out[string(types.QueueAttributeNameContentBasedDeduplication)] = "true"
		}
		return out
	}
	dlqSettings := map[string]string{string(types.QueueAttributeNameMessageRetentionPeriod): retention}
	dlqURL, err := q.create(ctx, dlqName, attrs(dlqSettings))
	if err != nil {
		return nil, err
	}
	// A DLQ that existed with other attributes was only looked up: keep its messages 14 days too.
	if _, err := q.client.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{QueueUrl: aws.String(dlqURL), Attributes: dlqSettings}); err != nil {
		return nil, wrap("set retention", dlqName, err)
	}
	out, err := q.client.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{
		QueueUrl: aws.String(dlqURL), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		return nil, wrap("get queue arn", dlqName, err)
	}
	policy, _ := json.Marshal(map[string]any{
		"deadLetterTargetArn": out.Attributes[string(types.QueueAttributeNameQueueArn)],
		"maxReceiveCount":     maxReceives,
	})
	settings := map[string]string{
		string(types.QueueAttributeNameRedrivePolicy):          string(policy),
		string(types.QueueAttributeNameMessageRetentionPeriod): retention,
	}
	url, err := q.create(ctx, full, attrs(settings))
	if err != nil {
		return nil, err
	}
	// A queue that existed with other attributes was only looked up: set its redrive policy
	// and retention.
	if _, err := q.client.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{QueueUrl: aws.String(url), Attributes: settings}); err != nil {
		return nil, wrap("set redrive policy", full, err)
	}
	q.mu.Lock()
	delete(q.queues, full) // its DLQ may have changed
	q.mu.Unlock()
	return q.remember(full, url), nil
}

// create creates a queue, or finds it when it exists with other attributes.
func (q *Queue) create(ctx context.Context, full string, attrs map[string]string) (string, error) {
	out, err := q.client.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(full), Attributes: attrs})
	if err == nil {
		return aws.ToString(out.QueueUrl), nil
	}
	var exists *types.QueueNameExists
	if !errors.As(err, &exists) {
		return "", wrap("create queue", full, err)
	}
	got, err := q.client.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(full)})
	if err != nil {
		return "", wrap("get queue url", full, err)
	}
	return aws.ToString(got.QueueUrl), nil
}
