package sqs

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/usekarma/karma/shared/queue"
)

// Receive long-polls for up to max (1..10) messages.
func (q *Queue) Receive(ctx context.Context, name string, max int, visibility, wait time.Duration) ([]queue.Delivery, error) {
	switch {
	case max < 1 || max > MaxBatch:
		return nil, fmt.Errorf("sqs receive %s: max %d not in 1..%d", name, max, MaxBatch)
	case visibility < 0 || visibility > MaxVisibility:
		return nil, fmt.Errorf("sqs receive %s: visibility %v not in 0..%v", name, visibility, MaxVisibility)
	case wait < 0:
		return nil, fmt.Errorf("sqs receive %s: negative wait %v", name, wait)
	}
	qi, err := q.resolve(ctx, name)
	if err != nil {
		return nil, err
	}
	vis := seconds(visibility)
	out, err := q.client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
		QueueUrl:            aws.String(qi.url),
		MaxNumberOfMessages: int32(max),
		VisibilityTimeout:   vis,
		WaitTimeSeconds:     min(seconds(wait), seconds(MaxWait)),
		// The successor of the deprecated AttributeNames (moto and SQS take both).
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameApproximateReceiveCount,
			types.MessageSystemAttributeNameSentTimestamp,
			types.MessageSystemAttributeNameMessageGroupId,
		},
	})
	if err != nil {
		return nil, wrap("receive", name, err)
	}
	deadline := time.Now().Add(time.Duration(vis) * time.Second)
	ds := make([]queue.Delivery, 0, len(out.Messages))
	at := make(map[string]int, len(out.Messages)) // message id -> index in ds
	for _, m := range out.Messages {
		d := toDelivery(m)
		q.receipts.received(name, d, m.Attributes[attrGroupID], deadline)
		if i, ok := at[d.MessageID]; ok {
			// SQS (and moto) may return one message more than once in a response, each copy with
			// a receipt handle of its own: one delivery, the last handle (the one SQS honours).
			ds[i] = d
			continue
		}
		at[d.MessageID] = len(ds)
		ds = append(ds, d)
	}
	return ds, nil
}

func toDelivery(m types.Message) queue.Delivery {
	count, _ := strconv.Atoi(m.Attributes[attrReceiveCnt])
	return queue.Delivery{
		MessageID:     aws.ToString(m.MessageId),
		Body:          []byte(aws.ToString(m.Body)),
		ReceiptHandle: aws.ToString(m.ReceiptHandle),
		ReceiveCount:  count,
		SentAt:        millis(m.Attributes[attrSentAt]),
	}
}

func millis(s string) time.Time {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
