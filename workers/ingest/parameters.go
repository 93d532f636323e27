package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/ssmevent"
)

// ParameterEvents turns "Parameter Store Change" events (and, as a safety net, a periodic
// comparison of the store with what was ingested) into change.detected. Events say neither the
// value, the version nor who made the change: the handler reads the parameter's history, so
// duplicate and out-of-order events resolve to the same current version and its idempotency key
// ("parameter:<name>@<version>" / "runtime:<name>@<version>") makes them one change.
//
// Who changed it: the version's LastModifiedUser as Parameter Store records it (an IAM ARN in
// AWS; the --as value locally), else "unknown". Values Karma wrote (description "karma: …") are
// consequences of a deployment already under way, and are ignored.
type ParameterEvents struct {
	Env       string       // the environment of this account
	Prefix    string       // e.g. /iac
	Store     params.Store // this account's parameter store (must be a params.Historian)
	Publisher pipeline.Publisher
	// Ingested reports whether a root's idempotency key was already handled (the resolve
	// stage's Seen store, key "resolve|<idempotency key>"), for Reconcile.
	Ingested    func(ctx context.Context, idempotencyKey string) (bool, error)
	AutoApprove bool
}

// Handle processes one delivery body (an EventBridge event, possibly inside SQS or SNS). It
// returns the messages it published. Malformed bodies are permanent errors (dead-letter).
func (pe *ParameterEvents) Handle(ctx context.Context, body []byte) ([]message.Envelope, error) {
	ev, err := ssmevent.Decode(body)
	if err != nil {
		return nil, err
	}
	if ev.Ignored != nil {
		return nil, nil
	}
	if ev.Operation != "Create" && ev.Operation != "Update" {
		return nil, nil // Delete and labels deploy nothing; they stay in the audit of the account
	}
	name := ev.Name
	if !strings.HasPrefix(name, "/") && strings.HasPrefix(pe.Prefix, "/") {
		name = "/" + name
	}
	if t := ssmevent.Classify(name, pe.Prefix); t.Kind != ssmevent.Config && t.Kind != ssmevent.Runtime {
		return nil, nil
	}
	return pe.ingestCurrent(ctx, name)
}

// ingestCurrent reads the parameter's current version and the one before it and publishes the
// change, unless Karma wrote it.
func (pe *ParameterEvents) ingestCurrent(ctx context.Context, name string) ([]message.Envelope, error) {
	h, ok := pe.Store.(params.Historian)
	if !ok {
		return nil, pipeline.Permanent(errors.New("ingest: the parameter store keeps no history"))
	}
	versions, err := h.History(ctx, name)
	if errors.Is(err, params.ErrNotFound) {
		return nil, nil // deleted since the event was sent
	}
	if err != nil {
		return nil, pipeline.Transient(fmt.Errorf("reading %s: %w", name, err))
	}
	if len(versions) == 0 {
		return nil, nil
	}
	cur := versions[len(versions)-1]
	var prev []byte
	if len(versions) > 1 {
		prev = []byte(versions[len(versions)-2].Value)
	}
	if cur.Type == params.TypeSecureString {
		prev = nil // never compare or copy secret values; every key counts as changed
	}
	msgs, err := FromParameter(ParameterChange{Env: pe.Env, Prefix: pe.Prefix, Name: name, Version: cur.Version, Operation: "Update",
		ModifiedBy: cur.LastModifiedUser, Description: cur.Description, Value: []byte(cur.Value), Previous: prev, AutoApprove: pe.AutoApprove})
	if err != nil || len(msgs) == 0 {
		return nil, err
	}
	if err := pe.Publisher.Publish(ctx, msgs...); err != nil {
		return nil, pipeline.Transient(err)
	}
	return msgs, nil
}

// Reconcile catches what events missed: every /config and /runtime parameter under the prefix
// whose current version was not written by Karma and was not ingested yet is ingested now.
// Returns the messages published.
func (pe *ParameterEvents) Reconcile(ctx context.Context) ([]message.Envelope, error) {
	ps, err := pe.Store.GetByPath(ctx, pe.Prefix)
	if err != nil {
		return nil, pipeline.Transient(err)
	}
	var out []message.Envelope
	for _, p := range ps {
		t := ssmevent.Classify(p.Name, pe.Prefix)
		if t.Kind != ssmevent.Config && t.Kind != ssmevent.Runtime {
			continue
		}
		source := message.SourceParameter
		if t.Kind == ssmevent.Runtime {
			source = message.SourceRuntime
		}
		key := fmt.Sprintf("%s:%s@%d", source, p.Name, p.Version)
		if done, err := pe.Ingested(ctx, key); err != nil || done {
			if err != nil {
				return out, pipeline.Transient(err)
			}
			continue
		}
		msgs, err := pe.ingestCurrent(ctx, p.Name)
		if err != nil {
			return out, err
		}
		out = append(out, msgs...)
	}
	return out, nil
}
