package trigger

import (
	"time"

	"github.com/usekarma/karma/shared/message"
)

// ParameterChange is a parameter written, deleted or labelled by someone: a Parameter Store
// Change event (the Lambda adapter), `karma params put`, or a version the reconcile job found
// that no event brought.
type ParameterChange struct {
	Env       string // the environment whose parameter store holds it
	Name      string
	Operation string // Create, Update, Delete, LabelParameterVersion
	// Version is the version written when the writer knows it; EventID the EventBridge event's
	// id otherwise. One of them is required: it keys the trigger.
	Version int64
	EventID string
	// WrittenAt is the time Version was written (its LastModified), when the writer knows it:
	// it keys the trigger with the version, since a parameter deleted and created again starts
	// again at version 1 (message.ParameterChangedKey).
	WrittenAt time.Time
	// Actor is who handed the fact over: the CLI user, the reconcile job; for an event nobody
	// says (ingest reads the version's LastModifiedUser for the change).
	Actor       message.Actor
	AutoApprove bool
	OccurredAt  time.Time // when it happened (zero: now)
}

// UnknownModifier is the actor of what Parameter Store does not attribute: an event names
// nobody, and a version without LastModifiedUser neither.
const UnknownModifier = "unknown (Parameter Store does not say)"

// ParameterChanged validates a parameter change and makes its parameter.changed trigger, whose
// change.detected (if ingest finds it is one) will have a fresh change id.
func ParameterChanged(pc ParameterChange) (message.Envelope, error) {
	switch {
	case pc.Name == "":
		return message.Envelope{}, invalid("parameter change: no parameter name")
	case !envRe.MatchString(pc.Env):
		return message.Envelope{}, invalid("parameter change of %s: environment %q: want a name without '/' or spaces", pc.Name, pc.Env)
	case pc.Operation == "":
		return message.Envelope{}, invalid("parameter change of %s: no operation", pc.Name)
	case pc.Version < 0:
		return message.Envelope{}, invalid("parameter change of %s: version %d: want 1 or more", pc.Name, pc.Version)
	case pc.Version == 0 && pc.EventID == "":
		return message.Envelope{}, invalid("parameter change of %s: neither the version written nor the event that says so", pc.Name)
	case pc.Version == 0 && !pc.WrittenAt.IsZero():
		return message.Envelope{}, invalid("parameter change of %s: a time of writing (%s) but no version written", pc.Name, pc.WrittenAt.UTC().Format(time.RFC3339Nano))
	}
	actor := pc.Actor
	if actor.Kind == "" || actor.Name == "" {
		actor = message.Actor{Kind: "iam", Name: UnknownModifier}
	}
	p := message.ParameterChanged{Name: pc.Name, Operation: pc.Operation, Version: pc.Version, EventID: pc.EventID, AutoApprove: pc.AutoApprove}
	if !pc.WrittenAt.IsZero() {
		p.WrittenAt = pc.WrittenAt.UTC()
	}
	return newTrigger(message.TypeParameterChanged, pc.Env, actor, message.ParameterChangedKey(p), p, "", pc.OccurredAt)
}
