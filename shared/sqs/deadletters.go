package sqs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/usekarma/karma/shared/queue"
)

// ListDead returns the dead letters of queue name, oldest first.
func (q *Queue) ListDead(ctx context.Context, name string) ([]queue.DeadLetter, error) {
	var out []queue.DeadLetter
	err := q.scanDead(ctx, name, func(batch []deadMessage) (release []deadMessage, err error) {
		for _, m := range batch {
			if m.mine {
				out = append(out, m.letter)
			}
		}
		return batch, nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b queue.DeadLetter) int { return a.DeadAt.Compare(b.DeadAt) })
	if out == nil {
		out = []queue.DeadLetter{}
	}
	return out, nil
}

// Redrive moves every dead letter of queue name back to it; returns how many moved.
func (q *Queue) Redrive(ctx context.Context, name string) (int, error) {
	qi, err := q.resolve(ctx, name)
	if err != nil {
		return 0, err
	}
	n := 0
	err = q.scanDead(ctx, name, func(batch []deadMessage) ([]deadMessage, error) {
		slices.SortStableFunc(batch, func(a, b deadMessage) int { return a.letter.DeadAt.Compare(b.letter.DeadAt) })
		var keep []deadMessage
		for i, m := range batch {
			if !m.mine {
				keep = append(keep, m)
				continue
			}
			in := &awssqs.SendMessageInput{QueueUrl: aws.String(qi.url), MessageBody: aws.String(string(m.letter.Body))}
			if qi.fifo {
				group := m.groupID
				if group == "" {
					group = "redriven"
				}
				in.MessageGroupId = aws.String(group)
				in.MessageDeduplicationId = aws.String("redrive-" + m.dlqMessageID)
			}
			if _, err := q.client.SendMessage(ctx, in); err != nil {
				return append(keep, batch[i:]...), wrap("redrive to", name, err)
			}
			if _, err := q.client.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(m.dlqURL), ReceiptHandle: aws.String(m.receipt)}); err != nil {
				return append(keep, batch[i+1:]...), wrap("redrive (delete from the dead-letter queue) of", name, err)
			}
			n++
		}
		return keep, nil
	})
	return n, err
}

// deadMessage is one message received from a DLQ.
type deadMessage struct {
	letter       queue.DeadLetter
	mine         bool // a letter of the queue asked for
	groupID      string
	dlqMessageID string
	dlqURL       string
	receipt      string
}

// scanDead receives the whole DLQ of queue name in batches, hiding what it received, and hands
// each batch to fn; the messages fn returns (and, on an error, all of the batch that fn did not
// return) are released again at the end.
func (q *Queue) scanDead(ctx context.Context, name string, fn func([]deadMessage) ([]deadMessage, error)) (err error) {
	qi, err := q.resolve(ctx, name)
	if err != nil {
		return err
	}
	full := q.QueueName(name)
	dl, err := q.deadLetterQueue(ctx, full, qi)
	if err != nil {
		return err
	}
	var held []deadMessage
	defer func() {
		if rerr := q.release(context.WithoutCancel(ctx), name, dl, held); err == nil {
			err = rerr
		}
	}()
	for {
		out, err := q.client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(dl.url),
			MaxNumberOfMessages:         MaxBatch,
			VisibilityTimeout:           seconds(q.opts.ListVisibility),
			WaitTimeSeconds:             min(seconds(q.opts.ListWait), seconds(MaxWait)),
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
			MessageAttributeNames:       []string{"All"},
		})
		if err != nil {
			return wrap("list dead letters of", name, err)
		}
		if len(out.Messages) == 0 {
			return nil
		}
		batch := make([]deadMessage, len(out.Messages))
		for i, m := range out.Messages {
			batch[i] = q.deadMessage(name, full, dl, m)
		}
		keep, err := fn(batch)
		held = append(held, keep...)
		if err != nil {
			return err
		}
	}
}

func (q *Queue) deadMessage(name, full string, dl *dlqInfo, m types.Message) deadMessage {
	attr := func(k string) (string, bool) {
		v, ok := m.MessageAttributes[k]
		return aws.ToString(v.StringValue), ok && v.StringValue != nil
	}
	d := deadMessage{mine: true, groupID: m.Attributes[attrGroupID], dlqMessageID: aws.ToString(m.MessageId),
		dlqURL: dl.url, receipt: aws.ToString(m.ReceiptHandle)}
	l := queue.DeadLetter{MessageID: d.dlqMessageID, Queue: name, Body: []byte(aws.ToString(m.Body)),
		Reason: fmt.Sprintf("max receives (%d) exceeded", dl.maxReceives), DeadAt: millis(m.Attributes[attrSentAt])}
	l.ReceiveCount, _ = strconv.Atoi(m.Attributes[attrReceiveCnt])
	if src, ok := attr(attrQueue); ok {
		d.mine = src == name
		if v, ok := attr(attrMessageID); ok {
			l.MessageID = v
		}
		l.Reason, _ = attr(attrReason)
		if v, ok := attr(attrReceives); ok {
			l.ReceiveCount, _ = strconv.Atoi(v)
		}
		if v, ok := attr(attrDeadAt); ok {
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				l.DeadAt = t
			}
		}
	} else if src := m.Attributes[attrSourceARN]; src != "" {
		a, err := arn.Parse(src)
		d.mine = err == nil && a.Resource == full
	}
	d.letter = l
	return d
}

// release makes held DLQ messages visible again.
func (q *Queue) release(ctx context.Context, name string, dl *dlqInfo, held []deadMessage) error {
	var errs []error
	for chunk := range slices.Chunk(held, MaxBatch) {
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(chunk))
		for i, m := range chunk {
			entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(m.receipt)}
		}
		out, err := q.client.ChangeMessageVisibilityBatch(ctx, &awssqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(dl.url), Entries: entries})
		if err != nil {
			errs = append(errs, wrap("release dead letters of", name, err))
		} else if len(out.Failed) > 0 {
			errs = append(errs, fmt.Errorf("sqs release dead letters of %s: %d failed (%s); they come back after %v",
				name, len(out.Failed), aws.ToString(out.Failed[0].Code), q.opts.ListVisibility))
		}
	}
	return errors.Join(errs...)
}
