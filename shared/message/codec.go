package message

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrMalformed marks a message that can never be processed: not JSON, missing envelope fields,
// unknown type or version, payload not matching its type. Such messages go to the dead-letter
// queue with this reason; they are never retried and never dropped silently.
var ErrMalformed = errors.New("message: malformed")

// MalformedError says why a message is malformed.
type MalformedError struct{ Reason string }

func (e *MalformedError) Error() string { return "message: malformed: " + e.Reason }
func (e *MalformedError) Unwrap() error { return ErrMalformed }

// Permanent marks the error as not worth retrying (see shared/pipeline's classifier).
func (e *MalformedError) Permanent() bool { return true }

func malformed(format string, a ...any) error {
	return &MalformedError{Reason: fmt.Sprintf(format, a...)}
}

// Parse decodes an envelope from the wire and checks its required fields.
func Parse(b []byte) (Envelope, error) {
	var e Envelope
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&e); err != nil {
		return e, malformed("envelope is not valid JSON: %v", err)
	}
	if dec.More() {
		return e, malformed("unexpected data after the envelope")
	}
	switch {
	case e.ID == "":
		return e, malformed("envelope has no id")
	case e.Type == "":
		return e, malformed("envelope %s has no type", e.ID)
	case e.CorrelationID == "":
		return e, malformed("envelope %s has no correlation_id", e.ID)
	case e.OccurredAt.IsZero():
		return e, malformed("envelope %s has no occurred_at", e.ID)
	case len(e.Payload) == 0 || bytes.Equal(e.Payload, []byte("null")):
		return e, malformed("envelope %s has no payload", e.ID)
	}
	if _, ok := Latest[e.Type]; !ok {
		return e, malformed("unknown message type %q", e.Type)
	}
	if !supported(e.Type, e.Version) {
		return e, malformed("unsupported version %d of %s (supported: %v)", e.Version, e.Type, Supported[e.Type])
	}
	return e, nil
}

// Supported lists every version consumers decode, per type.
var Supported = map[string][]int{
	TypeChangeDetected:      {1, 2},
	TypeChangeResolved:      {1},
	TypeDeploymentScheduled: {1},
	TypeDeploymentSkipped:   {1},
	TypeDeploymentRecorded:  {1},
	TypeDeploymentPlanned:   {1},
	TypeDeploymentApproved:  {1},
	TypeDeploymentApplied:   {1},
	TypeDeploymentFailed:    {1},
}

func supported(typ string, v int) bool {
	for _, s := range Supported[typ] {
		if s == v {
			return true
		}
	}
	return false
}

// Decode reads e's payload into out, which must be the Go type of the newest version of e.Type
// (a pointer). Older versions are upcast first. Unknown fields are rejected so that a producer
// writing a newer version than we know is caught, not half-read.
func Decode(e Envelope, out any) error {
	payload := e.Payload
	if e.Type == TypeChangeDetected && e.Version == 1 {
		up, err := upcastChangeDetectedV1(e)
		if err != nil {
			return err
		}
		payload = up
	} else if e.Version != Latest[e.Type] {
		return malformed("unsupported version %d of %s", e.Version, e.Type)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return malformed("%s v%d payload: %v", e.Type, e.Version, err)
	}
	return nil
}

func upcastChangeDetectedV1(e Envelope) (json.RawMessage, error) {
	var v1 ChangeDetectedV1
	dec := json.NewDecoder(bytes.NewReader(e.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v1); err != nil {
		return nil, malformed("change.detected v1 payload: %v", err)
	}
	v2 := ChangeDetected{ChangeSetID: e.CorrelationID, Source: v1.Source, Components: []ComponentRef{v1.Component},
		Commit: v1.Commit, Parameter: v1.Parameter, ChangedKeys: v1.ChangedKeys, AutoApprove: v1.AutoApprove}
	return json.Marshal(v2)
}

// Encode returns the wire form of an envelope.
func Encode(e Envelope) ([]byte, error) { return json.Marshal(e) }
