// Package ingest is the ingest stage: it turns triggers — facts from outside Karma that may start
// a change — into change.detected, the root of a change set. Like every stage it is a pure
// handler fed by its own queue (retries, dead letters and idempotency are the runtime's):
//
//   - git.pushed (a verified push webhook, `karma ingest commit`): the commit's change, source git.
//   - parameter.changed (a Parameter Store Change event, which the Lambda adapter unwraps into
//     one; `karma params put`; the reconcile job): the handler reads the parameter's history
//     (ParameterReader) and answers the change of the version written — source parameter for a
//     <prefix>/<type>/<nickname>/config, runtime (with the changed keys) for a /runtime — or
//     nothing: another parameter, a delete or a label, a value Karma wrote itself (its
//     consequence is already under way), a parameter deleted since.
//
// The change.detected answered has the trigger's correlation_id as its id, correlation id and
// change set id — the change its receiver named (the webhook answered it as change_id) — and the
// trigger as its cause. Its idempotency key names the fact: "git:<sha>",
// "parameter:<name>@<version>", "runtime:<name>@<version>", so the same push or parameter
// version delivered twice, by any route, is one change.
//
// A trigger that can never be ingested (a malformed sha, a runtime that is not a JSON object, a
// trigger that names no change) is a permanent error: the runtime dead-letters it with the
// reason. A parameter store that cannot be read is transient: retried.
package ingest

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
)

// ParameterReader reads a parameter's versions: the one thing the stage asks of the world.
type ParameterReader interface {
	// History returns the versions of parameter name in env's parameter store, oldest first,
	// each with its LastModifiedUser and Description; an error matching params.ErrNotFound
	// when there is no such parameter.
	History(ctx context.Context, env, name string) ([]params.Parameter, error)
}

// Worker is the ingest stage.
type Worker struct {
	Parameters ParameterReader
	// Prefix is the parameter prefix of Karma's layout (e.g. /iac).
	Prefix string
	// Records, when set, remembers which /config and /runtime versions were ingested, so that a
	// change of an event naming no version is compared with the last version whose change is
	// known (base), and names the versions between (covered).
	Records pipeline.Records
	// Seen, when set, is the pipeline's idempotency store: a version whose change resolve made
	// (or whose trigger ingest did) is known too — one handled before Records kept /config
	// versions, the reconcile job's test (trigger.Reconciler).
	Seen pipeline.Seen
}

// Handle turns one trigger into its change.detected (or nothing).
func (w *Worker) Handle(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
	switch in.Type {
	case message.TypeGitPushed:
		return fromPush(in)
	case message.TypeParameterChanged:
		return w.fromParameter(ctx, in)
	}
	return nil, pipeline.Permanent(fmt.Errorf("ingest: %s %s is not a trigger (want %s or %s)", in.Type, in.ID, message.TypeGitPushed, message.TypeParameterChanged))
}

// change builds the change.detected of trigger in: its id, correlation id and change set id are
// the change the trigger names (its correlation id); its cause the trigger.
func change(in message.Envelope, actor message.Actor, env, idem string, p message.ChangeDetected) (message.Envelope, error) {
	if _, err := uuid.Parse(in.CorrelationID); err != nil || in.CorrelationID == in.ID {
		return message.Envelope{}, pipeline.Permanent(fmt.Errorf("ingest: %s %s: correlation_id %q does not name the change it starts (a UUID other than the trigger's id)",
			in.Type, in.ID, in.CorrelationID))
	}
	p.ChangeSetID = in.CorrelationID
	e, err := message.New(message.TypeChangeDetected, env, actor, idem, p)
	if err != nil {
		return e, pipeline.Permanent(err)
	}
	e.ID, e.CorrelationID, e.CausationID = in.CorrelationID, in.CorrelationID, in.ID
	return e, nil
}
