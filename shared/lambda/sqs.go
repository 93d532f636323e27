// Package lambda runs a pipeline stage as an AWS Lambda function fed by SQS (an event source
// mapping with ReportBatchItemFailures). The stage is the same pure handler the in-process
// Runner runs (pipeline.Handle does the parsing, handling, publishing and after-publish hooks);
// this package only turns its results into SQS's partial batch response.
//
// Per record:
//   - unwrap (eventbridge.Unwrap: EventBridge delivers its whole event into the body; the ingest
//     function's ParameterEvents also turns Parameter Store events into triggers); an unwrap
//     error is a poison message, an unwrap to nothing (an event that does not concern the
//     stage) is acknowledged;
//   - Ack and Duplicate: the record succeeded (Lambda deletes it); a duplicate (its idempotency
//     key done: a copy of the message, or the batch delivered again) is logged, with the
//     record's message id, as nothing else records it;
//   - Retry: the record is reported in BatchItemFailures; SQS makes it visible again after the
//     queue's visibility timeout. On its last receive (ApproximateReceiveCount reaching the
//     queue's maxReceiveCount: MaxReceiver) it is dead-lettered instead, with its error as the
//     reason, as the in-process Runner does — SQS's redrive would move it with none. A record
//     put back because another worker holds its key (pipeline.InProgress) is not a failure: it
//     is left to SQS;
//   - DeadLetter: the original body goes to the queue's DLQ at once with the reason
//     (DeadLetterer); the record then succeeded, so a poison message never fails or delays its
//     batch-mates. Should the DLQ send fail, the record is reported failed (retried, and
//     dead-lettered by SQS's redrive policy in the end).
//
// FIFO queues (a record carrying MessageGroupId, or a source ARN ending in ".fifo"): processing
// stops at the first failed record, which is reported together with every later record of the
// batch, unprocessed (AWS's rule for FIFO partial batch responses: order within a group holds).
//
// The batch stops DeadlineReserve (a tenth of the function's time, at most 30 s) before the
// function's deadline: the record then being handled has its context cancelled (Terraform is
// interrupted), it and the records not started are reported failed, and the response reaches
// Lambda — a function still running at its deadline is stopped and its whole batch retried,
// the records that succeeded included. A stage that panics on a record fails that record (its
// panic is the reason it is dead-lettered with on its last receive), not the invocation.
//
// The queue's visibility timeout must be at least the function's timeout (AWS recommends six
// times), and the mapping needs FunctionResponseTypes = ["ReportBatchItemFailures"]: without it,
// any reported failure retries the whole batch.
package lambda

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/queue"
)

// DeadLetterer sends a poison message to the dead-letter queue of the queue it came from
// (sourceARN, the record's eventSourceARN); groupID is its MessageGroupId on FIFO queues.
// letter.Queue is empty: the queue is the one sourceARN names. *sqs.Queue implements it.
type DeadLetterer interface {
	DeadLetter(ctx context.Context, sourceARN string, letter queue.DeadLetter, groupID string) error
}

// Handler is the function signature lambda.Start accepts for SQS event sources.
type Handler = func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error)

// SQSHandler returns the Lambda handler of stage: it handles every record of an SQS batch with
// pipeline.Handle, publishing through pub and dead-lettering through dead, and reports the
// records to retry. unwrap turns a record body into a Karma envelope, or into nothing (nil, nil:
// acknowledged as is); a nil unwrap: the body is an envelope.
// It returns an error only for a batch it cannot look at (never, today): per-record failures
// are BatchItemFailures.
func SQSHandler(stage pipeline.Stage, pub pipeline.Publisher, dead DeadLetterer, unwrap func([]byte) ([]byte, error)) Handler {
	if unwrap == nil {
		unwrap = func(b []byte) ([]byte, error) { return b, nil }
	}
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		log := slog.Default().With("stage", stage.Name)
		fifo := false
		for _, r := range ev.Records {
			fifo = fifo || isFIFO(r)
		}
		resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
		work, cancel := BeforeDeadline(ctx)
		defer cancel()
		for i, rec := range ev.Records {
			if work.Err() != nil {
				// The function's time is nearly out: what is left is reported failed, unstarted,
				// rather than begun and cut off by Lambda, which would fail the whole batch.
				log.Warn("the function's time is running out: the records left are reported failed, for redelivery",
					"message_id", rec.MessageId, "left", len(ev.Records[i:]))
				for _, r := range ev.Records[i:] {
					resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
				}
				break
			}
			if handleRecord(ctx, work, log, stage, pub, dead, unwrap, rec) {
				continue
			}
			if fifo {
				for _, r := range ev.Records[i:] {
					resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
				}
				if len(ev.Records[i+1:]) > 0 {
					log.Warn("FIFO batch stopped at a failed record; the rest is left for redelivery in order",
						"message_id", rec.MessageId, "left", len(ev.Records[i+1:]))
				}
				break
			}
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
		}
		return resp, nil
	}
}

func isFIFO(r events.SQSMessage) bool {
	_, grouped := r.Attributes["MessageGroupId"]
	return grouped || strings.HasSuffix(r.EventSourceARN, ".fifo")
}

// handleRecord handles one record within work (ctx ending DeadlineReserve earlier); false means
// report it as failed.
func handleRecord(ctx, work context.Context, log *slog.Logger, stage pipeline.Stage, pub pipeline.Publisher, dead DeadLetterer,
	unwrap func([]byte) ([]byte, error), rec events.SQSMessage) bool {
	log = log.With("message_id", rec.MessageId)
	var res pipeline.Result
	body, err := unwrap([]byte(rec.Body))
	if err == nil && body == nil {
		log.Info("nothing for the stage in the record: acknowledged")
		return true
	}
	if err != nil {
		res = pipeline.Result{Action: pipeline.DeadLetter, Err: err}
	} else {
		res = handle(work, log, stage, pub, body)
	}
	switch res.Action {
	case pipeline.Ack:
		return true
	case pipeline.Duplicate:
		// Nothing else says so: the stage's middleware (logs, metrics) runs inside the
		// idempotency check that found the copy.
		log.Info("duplicate: already handled, acknowledged", "type", res.In.Type, "id", res.In.ID,
			"receive_count", rec.Attributes["ApproximateReceiveCount"], "reason", res.Err)
		return true
	case pipeline.DeadLetter:
		reason := "dead-lettered"
		if res.Err != nil {
			reason = res.Err.Error()
		}
		return deadLetter(ctx, log, dead, rec, res, reason)
	default: // Retry
		var ra interface{ RetryAfter() time.Duration }
		if errors.As(res.Err, &ra) {
			return false // another worker holds the message's key (InProgress): not a failure
		}
		count, _ := strconv.Atoi(rec.Attributes["ApproximateReceiveCount"])
		if max := maxReceives(ctx, dead, rec.EventSourceARN); max > 0 && count >= max && res.Err != nil {
			// The last receive SQS allows: the message is dead-lettered here, with its error as the
			// reason, rather than moved by SQS's redrive with none (as Runner.lastChance does).
			return deadLetter(ctx, log, dead, rec, res, fmt.Sprintf("%s (after %d receives)", res.Err, count))
		}
		log.Warn("will retry", "type", res.In.Type, "id", res.In.ID, "receive_count", rec.Attributes["ApproximateReceiveCount"], "error", res.Err)
		return false
	}
}

// handle is pipeline.Handle, with a panic of the stage made the record's failure (retried, and
// dead-lettered with the panic as its reason on its last receive) instead of the invocation's:
// Lambda would retry the whole batch, the records that had succeeded with it.
func handle(ctx context.Context, log *slog.Logger, stage pipeline.Stage, pub pipeline.Publisher, body []byte) (res pipeline.Result) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("the stage panicked: the record is reported failed", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			res = pipeline.Result{Action: pipeline.Retry, Err: fmt.Errorf("stage %s panicked: %v", stage.Name, p)}
		}
	}()
	return pipeline.Handle(ctx, stage, pub, body)
}

// deadLetter sends rec's original body to its queue's DLQ with reason; false (report the record
// failed: retried, and moved by SQS's redrive policy in the end) when that cannot be done.
func deadLetter(ctx context.Context, log *slog.Logger, dead DeadLetterer, rec events.SQSMessage, res pipeline.Result, reason string) bool {
	count, _ := strconv.Atoi(rec.Attributes["ApproximateReceiveCount"])
	// Queue is left to the DeadLetterer: the queue's name is in sourceARN (sqs.Queue strips its prefix).
	letter := queue.DeadLetter{MessageID: rec.MessageId, Body: []byte(rec.Body),
		Reason: reason, ReceiveCount: count, DeadAt: time.Now().UTC()}
	if dead == nil {
		log.Error("poison message and no dead-letter queue: left for retry", "reason", reason)
		return false
	}
	if derr := dead.DeadLetter(context.WithoutCancel(ctx), rec.EventSourceARN, letter, rec.Attributes["MessageGroupId"]); derr != nil {
		log.Error("poison message: sending it to the dead-letter queue failed; left for retry", "reason", reason, "error", derr)
		return false
	}
	log.Error("dead-lettered", "type", res.In.Type, "id", res.In.ID, "reason", reason)
	return true
}

// MaxReceiver is a DeadLetterer that knows how many receives the queue whose ARN is sourceARN
// allows before SQS moves a message to its DLQ (its RedrivePolicy's maxReceiveCount; 0 when
// unknown). *sqs.Queue implements it.
type MaxReceiver interface {
	MaxReceives(ctx context.Context, sourceARN string) (int, error)
}

// maxReceives is the receive limit of the queue sourceARN names: the DeadLetterer's answer when
// it is a MaxReceiver (0, leaving the message to SQS, when it cannot say), else
// queue.DefaultMaxReceives.
func maxReceives(ctx context.Context, dead DeadLetterer, sourceARN string) int {
	if dead == nil {
		return 0
	}
	mr, ok := dead.(MaxReceiver)
	if !ok {
		return queue.DefaultMaxReceives
	}
	n, err := mr.MaxReceives(ctx, sourceARN)
	if err != nil {
		slog.Default().Warn("the queue's receive limit is unknown: a last failure is left to SQS's redrive", "queue", sourceARN, "error", err)
		return 0
	}
	return n
}
