package sqs

// Dead-lettering one delivery: Kill (a receipt received through this Queue) and DeadLetter (a
// message received elsewhere, e.g. by Lambda), both copying it to the DLQ with the karma-*
// attributes.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/usekarma/karma/shared/queue"
)

// Kill moves a delivery received through this Queue to its DLQ at once, with reason.
func (q *Queue) Kill(ctx context.Context, name, receipt, reason string) error {
	d, err := q.receipts.check(name, receipt)
	if err != nil {
		return fmt.Errorf("sqs kill %s: %w", name, err)
	}
	if d == nil {
		return fmt.Errorf("sqs kill %s: receipt %.20s... was not received through this Queue (SQS cannot read a message by receipt; use DeadLetter with the body)", name, receipt)
	}
	qi, err := q.resolve(ctx, name)
	if err != nil {
		return err
	}
	dl, err := q.deadLetterQueue(ctx, q.QueueName(name), qi)
	if err != nil {
		return err
	}
	// Validates the receipt, and keeps the message hidden while it is copied.
	if _, err := q.client.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(qi.url), ReceiptHandle: aws.String(receipt), VisibilityTimeout: 60}); err != nil && !isNotInflight(err) {
		return wrap("kill", name, err)
	}
	letter := queue.DeadLetter{MessageID: d.messageID, Queue: name, Body: d.body, Reason: reason,
		ReceiveCount: d.receiveCount, DeadAt: time.Now().UTC()}
	if err := q.sendDead(ctx, dl, letter, d.groupID); err != nil {
		return err
	}
	if _, err := q.client.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(qi.url), ReceiptHandle: aws.String(receipt)}); err != nil {
		return wrap("kill (delete the original)", name, err)
	}
	q.receipts.use(receipt)
	return nil
}

// DeadLetter sends a message received from the queue whose ARN is sourceARN (e.g. by Lambda's
// event source mapping) to that queue's DLQ, with letter's reason, queue, message id and receive
// count as attributes. groupID is the message's group on FIFO queues. The caller deletes the
// original (Lambda does so when the record is reported as handled).
func (q *Queue) DeadLetter(ctx context.Context, sourceARN string, letter queue.DeadLetter, groupID string) error {
	a, err := arn.Parse(sourceARN)
	if err != nil || a.Service != "sqs" {
		return fmt.Errorf("sqs dead letter: %q is not an SQS queue ARN", sourceARN)
	}
	qi, err := q.lookup(ctx, a.Resource, a.AccountID)
	if err != nil {
		return wrap("get queue url", a.Resource, err)
	}
	dl, err := q.deadLetterQueue(ctx, a.Resource, qi)
	if err != nil {
		return err
	}
	if letter.Queue == "" {
		letter.Queue = strings.TrimPrefix(a.Resource, q.opts.Prefix)
	}
	if letter.DeadAt.IsZero() {
		letter.DeadAt = time.Now().UTC()
	}
	return q.sendDead(ctx, dl, letter, groupID)
}

func (q *Queue) sendDead(ctx context.Context, dl *dlqInfo, l queue.DeadLetter, groupID string) error {
	str := func(s string) types.MessageAttributeValue {
		return types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(s)}
	}
	attrs := map[string]types.MessageAttributeValue{
		attrQueue:     str(l.Queue),
		attrMessageID: str(l.MessageID),
		attrReceives:  {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(l.ReceiveCount))},
		attrDeadAt:    str(l.DeadAt.UTC().Format(time.RFC3339Nano)),
	}
	if reason := fitReason(l.Reason, MaxMessageBytes-len(l.Body)-attributesSize(attrs)-len(attrReason)-len("String")); reason != "" {
		attrs[attrReason] = str(reason) // (SQS refuses empty attribute values)
	}
	in := &awssqs.SendMessageInput{QueueUrl: aws.String(dl.url), MessageBody: aws.String(string(l.Body)), MessageAttributes: attrs}
	if dl.fifo {
		if groupID == "" {
			groupID = "dead"
		}
		in.MessageGroupId = aws.String(groupID)
		in.MessageDeduplicationId = aws.String(fmt.Sprintf("dead-%s-%d", l.MessageID, l.DeadAt.UnixNano()))
	}
	if _, err := q.client.SendMessage(ctx, in); err != nil {
		return wrap("send to dead-letter queue of", l.Queue, err)
	}
	return nil
}

// MaxReceives is the maxReceiveCount of the RedrivePolicy of the queue whose ARN is sourceARN:
// the receives after which SQS moves a message to its DLQ (0 when the policy does not say).
func (q *Queue) MaxReceives(ctx context.Context, sourceARN string) (int, error) {
	a, err := arn.Parse(sourceARN)
	if err != nil || a.Service != "sqs" {
		return 0, fmt.Errorf("sqs max receives: %q is not an SQS queue ARN", sourceARN)
	}
	qi, err := q.lookup(ctx, a.Resource, a.AccountID)
	if err != nil {
		return 0, wrap("get queue url", a.Resource, err)
	}
	dl, err := q.deadLetterQueue(ctx, a.Resource, qi)
	if err != nil {
		return 0, err
	}
	return dl.maxReceives, nil
}

// MaxMessageBytes is the largest message a queue takes by default (its MaximumMessageSize, and
// what terraform/ leaves the dead-letter queues at): the body and the attributes — each one's
// name, data type and value — counted together.
const MaxMessageBytes = 256 * 1024

// attributesSize is attrs' size as SQS counts it towards MaxMessageBytes.
func attributesSize(attrs map[string]types.MessageAttributeValue) int {
	n := 0
	for k, v := range attrs {
		n += len(k) + len(aws.ToString(v.DataType)) + len(aws.ToString(v.StringValue)) + len(v.BinaryValue)
	}
	return n
}

// reasonCut ends a reason cut short by fitReason.
const reasonCut = " [cut: the dead letter is at SQS's message size limit]"

// fitReason is reason cut (at a character) to room bytes, saying so; "" when not even the
// mark fits. A dead letter's reason is an attribute: with the original body, as long as the
// queue allowed, a long reason (a stage's error listing every problem of a large message) made
// the dead letter too large for the queue, and the message could not be dead-lettered at all.
func fitReason(reason string, room int) string {
	if len(reason) <= room {
		return reason
	}
	keep := room - len(reasonCut)
	if keep <= 0 {
		return ""
	}
	for keep > 0 && !utf8.RuneStart(reason[keep]) {
		keep--
	}
	return reason[:keep] + reasonCut
}
