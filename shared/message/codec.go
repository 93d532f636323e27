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
	TypeChangeDetected:      {1, 2, 3, 4},
	TypeChangeResolved:      {1, 2},
	TypeDeploymentScheduled: {1},
	TypeDeploymentSkipped:   {1},
	TypeDeploymentRecorded:  {1},
	TypeDeploymentPlanned:   {1, 2},
	TypeDeploymentApproved:  {1, 2},
	TypeDeploymentApplied:   {1},
	TypeDeploymentFailed:    {1},
	TypeChangeSuperseded:    {1},
	TypeChangeRejected:      {1},
	TypeDriftDetected:       {1},
	TypeChangeExpired:       {1},
	TypeGitPushed:           {1},
	TypeParameterChanged:    {1},
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
	if e.Version != Latest[e.Type] {
		up, ok := upcasters[upcaster{e.Type, e.Version}]
		if !ok {
			return malformed("unsupported version %d of %s", e.Version, e.Type)
		}
		var err error
		if payload, err = up(e); err != nil {
			return err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return malformed("%s v%d payload: %v", e.Type, e.Version, err)
	}
	return nil
}

type upcaster struct {
	typ     string
	version int
}

// upcasters turn an older version's payload into the newest version's.
var upcasters = map[upcaster]func(Envelope) (json.RawMessage, error){
	{TypeChangeDetected, 1}:     upcastChangeDetectedV1,
	{TypeChangeDetected, 2}:     upcastChangeDetectedV2,
	{TypeChangeDetected, 3}:     upcastChangeDetectedV3,
	{TypeChangeResolved, 1}:     upcastChangeResolvedV1,
	{TypeDeploymentPlanned, 1}:  upcastDeploymentPlannedV1,
	{TypeDeploymentApproved, 1}: upcastDeploymentApprovedV1,
}

func decodeStrict(e Envelope, out any) error {
	dec := json.NewDecoder(bytes.NewReader(e.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return malformed("%s v%d payload: %v", e.Type, e.Version, err)
	}
	return nil
}

func upcastChangeDetectedV1(e Envelope) (json.RawMessage, error) {
	var v1 ChangeDetectedV1
	if err := decodeStrict(e, &v1); err != nil {
		return nil, err
	}
	v4 := ChangeDetected{ChangeSetID: e.CorrelationID, Source: v1.Source, Components: []ComponentRef{v1.Component},
		Commit: commitV2(v1.Commit), Parameter: parameterWrite(v1.Parameter), ChangedKeys: v1.ChangedKeys, AutoApprove: v1.AutoApprove}
	return json.Marshal(v4)
}

func upcastChangeDetectedV2(e Envelope) (json.RawMessage, error) {
	var v2 ChangeDetectedV2
	if err := decodeStrict(e, &v2); err != nil {
		return nil, err
	}
	v4 := ChangeDetected{ChangeSetID: v2.ChangeSetID, Source: v2.Source, Components: v2.Components, Files: v2.Files,
		Commit: commitV2(v2.Commit), Parameter: parameterWrite(v2.Parameter), ChangedKeys: v2.ChangedKeys, Removed: v2.Removed, AutoApprove: v2.AutoApprove}
	if v2.Request != nil {
		v4.Request = &ChangeRequest{ID: v2.Request.ID, Configs: v2.Request.Configs}
	}
	return json.Marshal(v4)
}

// upcastChangeDetectedV3 copies every field: v4 only added rollback and promotion.
func upcastChangeDetectedV3(e Envelope) (json.RawMessage, error) {
	var v3 ChangeDetectedV3
	if err := decodeStrict(e, &v3); err != nil {
		return nil, err
	}
	return json.Marshal(ChangeDetected{ChangeSetID: v3.ChangeSetID, Source: v3.Source, Components: v3.Components, Files: v3.Files,
		Truncated: v3.Truncated, Commit: commitV3(v3.Commit), Parameter: parameterWrite(v3.Parameter), ChangedKeys: v3.ChangedKeys, Request: v3.Request,
		Removed: v3.Removed, AutoApprove: v3.AutoApprove})
}

func commitV3(c *CommitV3) *Commit {
	if c == nil {
		return nil
	}
	return &Commit{SHA: c.SHA, Author: c.Author, Message: c.Message, Branch: c.Branch, Repo: c.Repo, Before: c.Before}
}

func commitV2(c *CommitV2) *Commit {
	if c == nil {
		return nil
	}
	return &Commit{SHA: c.SHA, Author: c.Author, Message: c.Message, Branch: c.Branch, Repo: c.Repo}
}

func upcastChangeResolvedV1(e Envelope) (json.RawMessage, error) {
	var v1 ChangeResolvedV1
	if err := decodeStrict(e, &v1); err != nil {
		return nil, err
	}
	return json.Marshal(ChangeResolved{ChangeSetID: v1.ChangeSetID, Source: v1.Source, RootCauses: v1.RootCauses, Roots: v1.Roots,
		Affected: v1.Affected, Waves: v1.Waves, Rejected: v1.Rejected})
}

// plannedFromV1 is a v1 plan as v2: it listed no resources, so the (empty) list is marked
// truncated; the counts are complete.
func plannedFromV1(v1 DeploymentPlannedV1) DeploymentPlanned {
	return DeploymentPlanned{DeploymentScheduled: v1.DeploymentScheduled, Plan: v1.Plan, PlanFile: v1.PlanFile, PlanHash: v1.PlanHash,
		Resources: []ResourceChange{}, ResourcesTruncated: true}
}

func upcastDeploymentPlannedV1(e Envelope) (json.RawMessage, error) {
	var v1 DeploymentPlannedV1
	if err := decodeStrict(e, &v1); err != nil {
		return nil, err
	}
	return json.Marshal(plannedFromV1(v1))
}

func upcastDeploymentApprovedV1(e Envelope) (json.RawMessage, error) {
	var v1 DeploymentApprovedV1
	if err := decodeStrict(e, &v1); err != nil {
		return nil, err
	}
	return json.Marshal(DeploymentApproved{DeploymentPlanned: plannedFromV1(v1.DeploymentPlannedV1), ApprovedBy: v1.ApprovedBy})
}

// Encode returns the wire form of an envelope.
func Encode(e Envelope) ([]byte, error) { return json.Marshal(e) }
