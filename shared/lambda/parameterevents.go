package lambda

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/uuid"

	"github.com/usekarma/karma/shared/eventbridge"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/ssmevent"
	"github.com/usekarma/karma/shared/trigger"
)

// ParameterEvents is the unwrap of the ingest function, whose queue two rules feed: Karma's bus
// (git.pushed and parameter.changed envelopes, as every stage's queue) and the default bus's
// "Parameter Store Change" events of aws.ssm. It returns the Karma envelope a record carries:
//
//   - a Parameter Store Change — the EventBridge event as the SQS body, possibly quoted again or
//     inside an SNS notification (ssmevent.Decode unwraps SQS -> SNS -> EventBridge) — becomes
//     its parameter.changed trigger (ParameterTrigger);
//   - an event of Karma's bus, or a bare envelope: eventbridge.Unwrap;
//   - any other well-formed event (a parameter policy action, another source a broad rule
//     routes here): nil, nil — nothing for the stage, the record is acknowledged;
//   - a body that is no event and no envelope: a permanent error (dead-lettered).
//
// The ingest function does not handle a Parameter Store event's trigger in place:
// PublishParameterEvents publishes it first, so that the trigger its change names as its cause
// is on the bus and in the audit log like every other trigger.
func ParameterEvents(env, prefix string, auto bool) func([]byte) ([]byte, error) {
	return func(body []byte) ([]byte, error) {
		e, isEvent, err := ParameterTrigger(env, prefix, auto, body)
		switch {
		case !isEvent:
			return eventbridge.Unwrap(body)
		case err != nil || e == nil:
			return nil, err
		}
		b, err := message.Encode(*e)
		if err != nil {
			return nil, permanent(fmt.Errorf("parameter store event: %w", err))
		}
		return b, nil
	}
}

// ParameterTrigger reads body as an event of the default bus. isEvent is false when it is not
// one, or is an event of Karma's own bus (an envelope for eventbridge.Unwrap). For a Parameter
// Store Change it returns the parameter.changed trigger (trigger.ParameterChanged): the
// parameter, the operation, the event's id (which keys it: every delivery of the event is one
// trigger) and time, in environment env (the account's, KARMA_ENV), auto-approved when auto. A
// name without a leading '/' gets one when prefix has one (as the ingest function always did),
// so that it is compared with Karma's layout. Any other well-formed event gives nil, true, nil;
// an event that makes no valid trigger, a permanent error.
func ParameterTrigger(env, prefix string, auto bool, body []byte) (_ *message.Envelope, isEvent bool, _ error) {
	ev, err := ssmevent.Decode(body)
	switch {
	case err != nil, ev.Source == eventbridge.Source:
		return nil, false, nil
	case ev.Ignored != nil:
		return nil, true, nil
	}
	name := ev.Name
	if !strings.HasPrefix(name, "/") && strings.HasPrefix(prefix, "/") {
		name = "/" + name
	}
	e, err := trigger.ParameterChanged(trigger.ParameterChange{Env: env, Name: name, Operation: ev.Operation, EventID: ev.ID,
		AutoApprove: auto, OccurredAt: ev.Time})
	if err != nil {
		return nil, true, permanent(fmt.Errorf("parameter store event %s: %w", ev.ID, err))
	}
	// Every delivery of the event is the same trigger, id and change id included: EventBridge and
	// SQS deliver at least once, and a batch the function could not finish comes back whole. The
	// audit log keeps one record per message id, so a copy is not recorded as a second trigger
	// naming a change that never comes (ingest does the event's key once).
	e.ID = eventUUID(ev, "trigger")
	e.CorrelationID = eventUUID(ev, "change")
	return &e, true, nil
}

// eventUUID is the id of what an EventBridge event becomes (role: "trigger", "change"), the same
// on every delivery of the event: a UUID version 7 (as message ids are) whose time is the
// event's and whose other bits are a hash of the event id and the role.
func eventUUID(ev ssmevent.Event, role string) string {
	h := sha256.Sum256([]byte("aws.ssm:" + ev.ID + ":" + role))
	var u uuid.UUID
	ms := uint64(max(ev.Time.UnixMilli(), 0))
	for i := range 6 {
		u[i] = byte(ms >> (8 * (5 - i)))
	}
	copy(u[6:], h[:10])
	u[6] = u[6]&0x0f | 0x70 // version 7
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return u.String()
}

// PublishParameterEvents is the ingest function's handler around next (the ingest stage's
// SQSHandler with ParameterEvents as its unwrap): a record holding a Parameter Store Change
// becomes its parameter.changed trigger, published to Karma's bus through pub — which routes it
// back to this queue, where next handles it as any trigger, and to the audit stage — and the
// record is acknowledged once published (reported failed, so retried, when publishing fails; on
// the last receive its queue allows, dead-lettered through dead with the error as the reason,
// as SQSHandler does, rather than moved by SQS's redrive with none).
// Every other record (Karma's envelopes, events that are nothing for the stage, bodies that are
// no event or make no valid trigger) goes to next, which handles, acknowledges or dead-letters
// it. One more hop than handling the event in place, so that the trigger a change.detected
// names as its cause is recorded like every other: the lineage never points at a message the
// audit log does not hold. The ingest queue is a standard queue: records are independent.
func PublishParameterEvents(env, prefix string, auto bool, pub pipeline.Publisher, dead DeadLetterer, next Handler) Handler {
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		var rest []events.SQSMessage
		var failed []events.SQSBatchItemFailure
		// As SQSHandler's records, the publishing stops DeadlineReserve before the function's
		// deadline: what is left then is reported failed.
		work, cancel := BeforeDeadline(ctx)
		defer cancel()
		for _, r := range ev.Records {
			e, isEvent, err := ParameterTrigger(env, prefix, auto, []byte(r.Body))
			if !isEvent || err != nil || e == nil {
				rest = append(rest, r)
				continue
			}
			if work.Err() != nil {
				slog.WarnContext(ctx, "ingest: the function's time is running out: a parameter store event is reported failed, unpublished",
					"message_id", r.MessageId, "idempotency_key", e.IdempotencyKey)
				failed = append(failed, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
				continue
			}
			if err := pub.Publish(work, *e); err != nil {
				count, _ := strconv.Atoi(r.Attributes["ApproximateReceiveCount"])
				if max := maxReceives(ctx, dead, r.EventSourceARN); max > 0 && count >= max {
					log := slog.Default().With("stage", pipeline.StageIngest, "message_id", r.MessageId)
					if deadLetter(ctx, log, dead, r, pipeline.Result{In: *e, Err: err}, fmt.Sprintf("%s (after %d receives)", err, count)) {
						continue
					}
				}
				slog.WarnContext(ctx, "ingest: publishing a parameter store event's trigger", "message_id", r.MessageId,
					"idempotency_key", e.IdempotencyKey, "receive_count", count, "error", err)
				failed = append(failed, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
			}
		}
		if len(rest) == 0 {
			return events.SQSEventResponse{BatchItemFailures: failed}, nil
		}
		resp, err := next(ctx, events.SQSEvent{Records: rest})
		resp.BatchItemFailures = append(failed, resp.BatchItemFailures...)
		return resp, err
	}
}

// permanentError marks an unwrap failure for pipeline.Classify: dead-lettered at once.
type permanentError struct{ error }

func (e permanentError) Permanent() bool { return true }
func (e permanentError) Unwrap() error   { return e.error }

func permanent(err error) error { return permanentError{err} }
