package sqs

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/cenkalti/backoff/v4"

	"github.com/usekarma/karma/shared/queue"
)

// Send sends msgs with SendMessageBatch, 10 (and at most 256 KiB) per call.
func (q *Queue) Send(ctx context.Context, name string, msgs ...queue.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	qi, err := q.resolve(ctx, name)
	if err != nil {
		return err
	}
	entries := make([]types.SendMessageBatchRequestEntry, len(msgs))
	for i, m := range msgs {
		if len(m.Body) == 0 {
			return fmt.Errorf("sqs send %s: message %d has an empty body", name, i)
		}
		e := types.SendMessageBatchRequestEntry{MessageBody: aws.String(string(m.Body))}
		if qi.fifo {
			if m.GroupID == "" {
				return fmt.Errorf("sqs send %s: message %d has no GroupID (FIFO queue)", name, i)
			}
			e.MessageGroupId = aws.String(m.GroupID)
			if m.DedupID != "" {
				e.MessageDeduplicationId = aws.String(m.DedupID)
			}
		}
		entries[i] = e
	}
	for len(entries) > 0 {
		n, size := 0, 0
		for n < len(entries) && n < MaxBatch {
			s := len(aws.ToString(entries[n].MessageBody))
			if n > 0 && size+s > MaxBatchBytes {
				break
			}
			n, size = n+1, size+s
		}
		if err := q.sendBatch(ctx, name, qi, entries[:n]); err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}

// sendBatch sends one batch, retrying the entries that failed through no fault of the sender.
func (q *Queue) sendBatch(ctx context.Context, name string, qi *queueInfo, batch []types.SendMessageBatchRequestEntry) error {
	pending := make([]types.SendMessageBatchRequestEntry, len(batch))
	for i, e := range batch {
		e.Id = aws.String(strconv.Itoa(i))
		pending[i] = e
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 50 * time.Millisecond
	b.MaxElapsedTime = q.opts.SendRetry
	return backoff.Retry(func() error {
		out, err := q.client.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: aws.String(qi.url), Entries: pending})
		if err != nil {
			err = wrap("send", name, err)
			if isMarkedTransient(err) {
				return err
			}
			return backoff.Permanent(err)
		}
		if len(out.Failed) == 0 {
			return nil
		}
		byID := map[string]types.SendMessageBatchRequestEntry{}
		for _, e := range pending {
			byID[aws.ToString(e.Id)] = e
		}
		var retry []types.SendMessageBatchRequestEntry
		var problems []string
		permanent := false
		for _, f := range out.Failed {
			problems = append(problems, fmt.Sprintf("%s: %s", aws.ToString(f.Code), aws.ToString(f.Message)))
			if f.SenderFault {
				permanent = true
			} else if e, ok := byID[aws.ToString(f.Id)]; ok {
				retry = append(retry, e)
			}
		}
		err = fmt.Errorf("sqs send %s: %d of %d messages failed: %s", name, len(out.Failed), len(pending), strings.Join(problems, "; "))
		if permanent {
			return backoff.Permanent(err)
		}
		pending = retry
		return transient(err)
	}, backoff.WithContext(b, ctx))
}
