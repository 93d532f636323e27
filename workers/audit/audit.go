// Package audit is the stage that lands every message of every stage in the audit log. It reads
// only the envelope and a few well-known payload fields (component, deployment_id), so it records
// every type and version, including ones newer than it knows.
//
// Input: every message. Output: none. Idempotency: the log ignores a message id it already has.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

// Worker is the audit stage.
type Worker struct{ Log audit.Log }

// sealedAppender is a log that appends records sealed beforehand (the embedded one): under its
// write lock it then hashes only what depends on each chain's head.
type sealedAppender interface {
	AppendSealed(ctx context.Context, recs ...audit.Sealed) (int, error)
}

// Prepare builds and seals the message's record (pipeline.Stage.Prepare): run before the
// transaction that appends it, so that encoding the record holds no write lock.
func (w *Worker) Prepare(_ context.Context, in message.Envelope) (any, error) {
	return seal(in)
}

// Handle appends one record.
func (w *Worker) Handle(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
	s, ok := pipeline.Prepared(ctx).(audit.Sealed)
	if !ok {
		var err error
		if s, err = seal(in); err != nil {
			return nil, err
		}
	}
	if err := w.append(ctx, []audit.Sealed{s}); err != nil {
		return nil, pipeline.Transient(err)
	}
	return nil, nil
}

// HandleBatch appends the records of several messages in one Append (one transaction on the
// embedded log): the stage's pipeline.BatchHandler. A message whose record cannot be built, and
// every message when the append fails, get an error; the runtime then hands them to Handle one
// by one.
func (w *Worker) HandleBatch(ctx context.Context, ins []message.Envelope) ([][]message.Envelope, []error) {
	errs := make([]error, len(ins))
	prepared := pipeline.PreparedBatch(ctx)
	recs := make([]audit.Sealed, 0, len(ins))
	for i, in := range ins {
		s, ok := audit.Sealed{}, false
		if len(prepared) == len(ins) {
			s, ok = prepared[i].(audit.Sealed)
		}
		if !ok {
			var err error
			if s, err = seal(in); err != nil {
				errs[i] = err
				continue
			}
		}
		recs = append(recs, s)
	}
	if len(recs) > 0 {
		if err := w.append(ctx, recs); err != nil {
			for i := range errs {
				if errs[i] == nil {
					errs[i] = pipeline.Transient(err)
				}
			}
		}
	}
	return make([][]message.Envelope, len(ins)), errs
}

// append appends recs in one call: sealed where the log takes them so, else as records.
func (w *Worker) append(ctx context.Context, recs []audit.Sealed) error {
	if sa, ok := w.Log.(sealedAppender); ok {
		_, err := sa.AppendSealed(ctx, recs...)
		return err
	}
	plain := make([]audit.Record, len(recs))
	for i, s := range recs {
		plain[i] = s.Record()
	}
	_, err := w.Log.Append(ctx, plain...)
	return err
}

// seal is the message's record, sealed (audit.Seal); an error is the message's, permanent.
func seal(in message.Envelope) (audit.Sealed, error) {
	rec, err := Record(in)
	if err != nil {
		return audit.Sealed{}, err
	}
	s, err := audit.Seal(rec)
	if err != nil {
		return audit.Sealed{}, pipeline.Permanent(err)
	}
	return s, nil
}

// Record builds the audit record of a message: chained per component when the message concerns
// one, else per change ("change/<correlation id>").
func Record(in message.Envelope) (audit.Record, error) {
	var fields struct {
		Component    string `json:"component"`
		DeploymentID string `json:"deployment_id"`
	}
	_ = json.Unmarshal(in.Payload, &fields) // absent fields stay empty
	body, err := message.Encode(in)
	if err != nil {
		return audit.Record{}, pipeline.Permanent(err)
	}
	chain := "change/" + in.CorrelationID
	if fields.Component != "" {
		chain = fields.Component
	}
	return audit.Record{MessageID: in.ID, Type: in.Type, Version: in.Version, Env: in.Env, Chain: chain,
		Component: fields.Component, DeploymentID: fields.DeploymentID, CorrelationID: in.CorrelationID,
		CausationID: in.CausationID, ActorKind: in.Actor.Kind, Actor: indexedActor(in.Actor.Name), OccurredAt: in.OccurredAt, Body: body}, nil
}

// MaxActor bounds the record's actor, a field the logs index: the DynamoDB log's by-actor index
// takes a key of at most 2,048 bytes, and refuses a longer record as invalid, permanently — so a
// Git author of 3 KB (anyone can write one in a commit) would have kept every message of its
// change out of the log. A longer actor is recorded cut to MaxActor bytes, saying so; the whole
// actor is in the record's body (the envelope), which the chain hash covers.
const MaxActor = 1024

// indexedActor is name cut to MaxActor bytes (on a character boundary) with a note of its length.
func indexedActor(name string) string {
	if len(name) <= MaxActor {
		return name
	}
	note := fmt.Sprintf("… (cut: %d bytes; the whole actor is in the body)", len(name))
	cut := MaxActor - len(note)
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return strings.ToValidUTF8(name[:cut], "") + note
}
