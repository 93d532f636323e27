// Package audit is the stage that lands every message of every stage in the audit log. It reads
// only the envelope and a few well-known payload fields (component, deployment_id), so it records
// every type and version, including ones newer than it knows.
//
// Input: every message. Output: none. Idempotency: the log ignores a message id it already has.
package audit

import (
	"context"
	"encoding/json"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

// Worker is the audit stage.
type Worker struct{ Log audit.Log }

// Handle appends one record.
func (w *Worker) Handle(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
	rec, err := Record(in)
	if err != nil {
		return nil, err
	}
	if _, err := w.Log.Append(ctx, rec); err != nil {
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
	recs := make([]audit.Record, 0, len(ins))
	for i, in := range ins {
		rec, err := Record(in)
		if err != nil {
			errs[i] = err
			continue
		}
		recs = append(recs, rec)
	}
	if len(recs) > 0 {
		if _, err := w.Log.Append(ctx, recs...); err != nil {
			for i := range errs {
				if errs[i] == nil {
					errs[i] = pipeline.Transient(err)
				}
			}
		}
	}
	return make([][]message.Envelope, len(ins)), errs
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
		CausationID: in.CausationID, ActorKind: in.Actor.Kind, Actor: in.Actor.Name, OccurredAt: in.OccurredAt, Body: body}, nil
}
