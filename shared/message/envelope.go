// Package message is Karma's wire contract: the envelope every stage sends and receives, and the
// payload of every message type and version. Wire names are explicit constants, never derived
// from Go type names. Producers write the newest version of a type; consumers decode every
// supported version and upcast older ones to the newest (see codec.go). Each type and version has
// a JSON Schema and a golden example under schemas/.
package message

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Envelope wraps every message. Fields are documented in docs/messages.md.
type Envelope struct {
	ID      string `json:"id"`      // UUIDv7, unique per message
	Type    string `json:"type"`    // e.g. "change.detected"
	Version int    `json:"version"` // payload version, e.g. 1
	// OccurredAt is when the fact happened (RFC 3339, UTC).
	OccurredAt time.Time `json:"occurred_at"`
	// CorrelationID names the root cause: one push, one parameter version, one change request.
	// Every message descended from it carries the same value.
	CorrelationID string `json:"correlation_id"`
	// CausationID is the id of the message that caused this one ("" for a root).
	CausationID string `json:"causation_id,omitempty"`
	// Actor is who caused the root: a git author, an IAM principal, a CLI user.
	Actor Actor `json:"actor"`
	// Env is the environment the message concerns.
	Env string `json:"env"`
	// IdempotencyKey is the same for every delivery, retry or re-derivation of the same fact;
	// consumers use it to do the work once.
	IdempotencyKey string          `json:"idempotency_key"`
	Payload        json.RawMessage `json:"payload"`
}

// Actor is who (or what) caused a change.
type Actor struct {
	Kind string `json:"kind"` // "git", "iam", "cli", "api" (a bearer token of the HTTP API), "karma" (a deployment's own consequence)
	Name string `json:"name"` // e.g. "Ada <ada@example.com>", an ARN, a login
}

// New builds a root message (no cause): a fresh correlation id unless one is given.
func New(typ string, env string, actor Actor, idem string, payload any) (Envelope, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return Envelope{}, err
	}
	v, ok := Latest[typ]
	if !ok {
		return Envelope{}, fmt.Errorf("message: unknown type %q", typ)
	}
	b, err := json.Marshal(payload)
	if err != nil {
		return Envelope{}, fmt.Errorf("message: %s payload: %w", typ, err)
	}
	return Envelope{ID: id.String(), Type: typ, Version: v, OccurredAt: time.Now().UTC().Truncate(time.Millisecond),
		CorrelationID: id.String(), Actor: actor, Env: env, IdempotencyKey: idem, Payload: b}, nil
}

// Derive builds a message caused by e: same correlation, actor and env, causation = e.ID.
func (e Envelope) Derive(typ string, idem string, payload any) (Envelope, error) {
	out, err := New(typ, e.Env, e.Actor, idem, payload)
	if err != nil {
		return out, err
	}
	out.CorrelationID = e.CorrelationID
	out.CausationID = e.ID
	return out, nil
}

// MustDerive is Derive for payloads that cannot fail to encode (the package's own types).
func (e Envelope) MustDerive(typ string, idem string, payload any) Envelope {
	out, err := e.Derive(typ, idem, payload)
	if err != nil {
		panic(err)
	}
	return out
}
