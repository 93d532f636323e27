package sqs

// Settling a delivery by its receipt handle: Delete acknowledges it, ChangeVisibility hides or
// releases it. Receipts this Queue saw superseded or used up fail without asking SQS (receipts.go).

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/usekarma/karma/shared/queue"
)

// Delete acknowledges a delivery.
func (q *Queue) Delete(ctx context.Context, name, receipt string) error {
	if _, err := q.receipts.check(name, receipt); err != nil {
		return fmt.Errorf("sqs delete %s: %w", name, err)
	}
	qi, err := q.resolve(ctx, name)
	if err != nil {
		return err
	}
	if _, err := q.client.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(qi.url), ReceiptHandle: aws.String(receipt)}); err != nil {
		return wrap("delete", name, err)
	}
	q.receipts.use(receipt)
	return nil
}

// ChangeVisibility hides a delivery for visibility (rounded up to seconds) from now; 0
// releases it.
func (q *Queue) ChangeVisibility(ctx context.Context, name, receipt string, visibility time.Duration) error {
	if visibility < 0 || visibility > MaxVisibility {
		return fmt.Errorf("sqs change visibility %s: %v not in 0..%v", name, visibility, MaxVisibility)
	}
	if _, err := q.receipts.check(name, receipt); err != nil {
		return fmt.Errorf("sqs change visibility %s: %w", name, err)
	}
	qi, err := q.resolve(ctx, name)
	if err != nil {
		return err
	}
	vis := seconds(visibility)
	_, err = q.client.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(qi.url), ReceiptHandle: aws.String(receipt), VisibilityTimeout: vis})
	switch {
	case err != nil && isNotInflight(err) && vis == 0:
		// Its visibility ran out: it is visible already.
	case err != nil && isNotInflight(err):
		return fmt.Errorf("sqs change visibility %s: the message is visible again and may be received by anyone: %w: %w",
			name, queue.ErrStaleReceipt, err)
	case err != nil:
		return wrap("change visibility", name, err)
	}
	q.receipts.extend(receipt, time.Now().Add(time.Duration(vis)*time.Second))
	return nil
}
