package sqs

// Names to URLs: a queue's URL is looked up once (GetQueueUrl) and cached, and its dead-letter
// queue is read from its RedrivePolicy.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// resolve returns queue name's URL, creating it first if allowed.
func (q *Queue) resolve(ctx context.Context, name string) (*queueInfo, error) {
	if name == "" {
		return nil, errors.New("sqs: empty queue name")
	}
	qi, err := q.lookup(ctx, q.QueueName(name), "")
	if err != nil && isNotFound(err) && q.opts.CreateMissing {
		return q.ensure(ctx, name, q.opts.MaxReceives)
	}
	if err != nil {
		return nil, wrap("get queue url", q.QueueName(name), err)
	}
	return qi, nil
}

// lookup finds the URL of the queue with SQS name full (owned by account, "" = the caller's).
func (q *Queue) lookup(ctx context.Context, full, account string) (*queueInfo, error) {
	q.mu.Lock()
	qi := q.queues[full]
	q.mu.Unlock()
	if qi != nil {
		return qi, nil
	}
	in := &awssqs.GetQueueUrlInput{QueueName: aws.String(full)}
	if account != "" {
		in.QueueOwnerAWSAccountId = aws.String(account)
	}
	out, err := q.client.GetQueueUrl(ctx, in)
	if err != nil {
		return nil, err
	}
	return q.remember(full, aws.ToString(out.QueueUrl)), nil
}

func (q *Queue) remember(full, url string) *queueInfo {
	q.mu.Lock()
	defer q.mu.Unlock()
	if qi := q.queues[full]; qi != nil && qi.url == url {
		return qi
	}
	qi := &queueInfo{url: url, fifo: isFIFO(full)}
	q.queues[full] = qi
	return qi
}

// deadLetterQueue returns the DLQ of the queue with SQS name full, from its RedrivePolicy.
func (q *Queue) deadLetterQueue(ctx context.Context, full string, qi *queueInfo) (*dlqInfo, error) {
	q.mu.Lock()
	dl := qi.dlq
	q.mu.Unlock()
	if dl != nil {
		return dl, nil
	}
	out, err := q.client.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{
		QueueUrl: aws.String(qi.url), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameRedrivePolicy}})
	if err != nil {
		return nil, wrap("get redrive policy", full, err)
	}
	raw := out.Attributes[string(types.QueueAttributeNameRedrivePolicy)]
	if raw == "" {
		return nil, fmt.Errorf("sqs: queue %s has no dead-letter queue (no RedrivePolicy)", full)
	}
	var policy struct {
		Target string `json:"deadLetterTargetArn"`
		Max    any    `json:"maxReceiveCount"` // a number, or a string holding one
	}
	if err := json.Unmarshal([]byte(raw), &policy); err != nil {
		return nil, fmt.Errorf("sqs: queue %s: RedrivePolicy %q: %w", full, raw, err)
	}
	target, err := arn.Parse(policy.Target)
	if err != nil {
		return nil, fmt.Errorf("sqs: queue %s: RedrivePolicy target %q: %w", full, policy.Target, err)
	}
	dq, err := q.lookup(ctx, target.Resource, target.AccountID)
	if err != nil {
		return nil, wrap("get queue url", target.Resource, err)
	}
	max, _ := strconv.Atoi(strings.TrimSpace(fmt.Sprint(policy.Max)))
	dl = &dlqInfo{url: dq.url, fifo: dq.fifo, maxReceives: max}
	q.mu.Lock()
	qi.dlq = dl
	q.mu.Unlock()
	return dl, nil
}
