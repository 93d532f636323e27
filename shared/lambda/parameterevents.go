package lambda

import (
	"fmt"
	"strings"

	"github.com/usekarma/karma/shared/eventbridge"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/ssmevent"
	"github.com/usekarma/karma/shared/trigger"
)

// ParameterEvents is the unwrap of the ingest function, whose queue two rules feed: Karma's bus
// (git.pushed and parameter.changed envelopes, as every stage's queue) and the default bus's
// "Parameter Store Change" events of aws.ssm. It returns the Karma envelope a record carries:
//
//   - a Parameter Store Change — the EventBridge event as the SQS body, possibly quoted again or
//     inside an SNS notification (ssmevent.Decode unwraps SQS -> SNS -> EventBridge) — becomes
//     its parameter.changed trigger (trigger.ParameterChanged): the parameter, the operation,
//     the event's id (which keys it: every delivery of the event is one trigger) and time, in
//     environment env (the account's, KARMA_ENV), auto-approved when auto. A name without a
//     leading '/' gets one when prefix has one (as the ingest function always did), so that it
//     is compared with Karma's layout. The ingest stage then decides, as for any trigger;
//   - an event of Karma's bus, or a bare envelope: eventbridge.Unwrap;
//   - any other well-formed event (a parameter policy action, another source a broad rule
//     routes here): nil, nil — nothing for the stage, the record is acknowledged;
//   - a body that is no event and no envelope: a permanent error (dead-lettered).
func ParameterEvents(env, prefix string, auto bool) func([]byte) ([]byte, error) {
	return func(body []byte) ([]byte, error) {
		ev, err := ssmevent.Decode(body)
		switch {
		case err != nil, ev.Source == eventbridge.Source:
			return eventbridge.Unwrap(body)
		case ev.Ignored != nil:
			return nil, nil
		}
		name := ev.Name
		if !strings.HasPrefix(name, "/") && strings.HasPrefix(prefix, "/") {
			name = "/" + name
		}
		e, err := trigger.ParameterChanged(trigger.ParameterChange{Env: env, Name: name, Operation: ev.Operation, EventID: ev.ID,
			AutoApprove: auto, OccurredAt: ev.Time})
		if err != nil {
			return nil, permanent(fmt.Errorf("parameter store event %s: %w", ev.ID, err))
		}
		b, err := message.Encode(e)
		if err != nil {
			return nil, permanent(fmt.Errorf("parameter store event %s: %w", ev.ID, err))
		}
		return b, nil
	}
}

// permanentError marks an unwrap failure for pipeline.Classify: dead-lettered at once.
type permanentError struct{ error }

func (e permanentError) Permanent() bool { return true }
func (e permanentError) Unwrap() error   { return e.error }

func permanent(err error) error { return permanentError{err} }
