// Package ssmevent decodes the Amazon EventBridge events that AWS Systems Manager Parameter
// Store emits when a parameter is created, updated, deleted or labelled ("Parameter Store
// Change", source aws.ssm), and classifies parameter names against Karma's layout. It decodes
// only: the ingest function's Lambda adapter (shared/lambda.ParameterEvents) makes the event a
// parameter.changed trigger, and the ingest stage (workers/ingest) reads the parameter and makes
// change.detected.
//
// # Inputs
//
// Decode accepts the body of one delivery in any of the shapes it arrives in:
//
//   - the EventBridge event itself (a Lambda target, or an SQS target without an input
//     transformer: the SQS message body is then the whole event as JSON text);
//   - that event as a JSON string (the body quoted once more by an intermediary);
//   - an SNS notification ({"Type":"Notification","Message":"<event>"}) when the rule targets
//     an SNS topic that fans out to SQS without raw message delivery.
//
// An SQS -> Lambda batch ({"Records":[...]}) is several deliveries: DecodeSQS decodes each
// record's body and reports a result per message id, for partial batch failures.
//
// # Results
//
//   - A "Parameter Store Change" event from aws.ssm: Event with Ignored == nil.
//   - Any other well-formed EventBridge event (e.g. "Parameter Store Policy Action", an EC2
//     state change routed to the same queue by a broad rule, a change event whose source is not
//     aws.ssm): Event with Ignored set, not an error. Acknowledge it.
//   - Anything else (not JSON, not an event, no id, detail-type or source, a change event
//     without detail.name or detail.operation, an unreadable time): an error whose Permanent()
//     is true, so the pipeline dead-letters it at once instead of retrying it.
//
// Field names are the vendor's exactly: version, id, detail-type, source, account, time, region,
// resources, detail{operation, name, type, description}, replay-name.
//
// # Dedup key
//
// Event.ID is the EventBridge event id, the same on every delivery of the event (EventBridge and
// SQS deliver at least once). An archive replay sends events again with replay-name set
// (Event.ReplayName); treat a replayed event as a fresh one only if that is what the replay is for.
// Events never carry the parameter's value or version: read the parameter (with decryption for
// SecureString) and key the work on "<name>@<version>" as workers/ingest does. AWS delivers these
// events best-effort, so a periodic reconcile must back them up.
//
// # Names
//
// Name is detail.name exactly as sent. Parameters in a hierarchy are named with a leading '/'
// ("/karma/dev/app/web/config"); a top-level parameter has none (the AWS sample's
// "MyExampleParameter"), and is kept as given: no slash is added or removed, because Parameter
// Store treats "a" and "/a" as different parameters. Classify matches names against
// "<prefix>/<type>/<nickname>/config|runtime" and "<prefix>/environment" by plain string
// prefix, exactly as the ingest stage (workers/ingest) does.
package ssmevent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Vendor constants of the events this package decodes.
const (
	SourceSSM              = "aws.ssm"
	DetailTypeChange       = "Parameter Store Change"
	DetailTypePolicyAction = "Parameter Store Policy Action"
)

// Operations of a Parameter Store Change event (Operation passes any other value through).
const (
	OpCreate                = "Create"
	OpUpdate                = "Update"
	OpDelete                = "Delete"
	OpLabelParameterVersion = "LabelParameterVersion"
)

// envelope is the EventBridge event, with the vendor's field names.
type envelope struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
	ReplayName string          `json:"replay-name,omitempty"`
}

// detail is the detail of a Parameter Store Change event.
type detail struct {
	Operation   string `json:"operation"`
	Name        string `json:"name"`
	Type        string `json:"type"`
	Description string `json:"description"`
}

// Event is a decoded EventBridge event; the parameter fields are set for Parameter Store Change
// events only.
type Event struct {
	ID         string    // EventBridge event id: the dedup key
	Time       time.Time // when the change happened (UTC; zero if the event has no time)
	Account    string
	Region     string
	Source     string   // aws.ssm
	DetailType string   // Parameter Store Change
	Resources  []string // the parameter's ARN
	ReplayName string   // set when the event comes from an archive replay

	Operation   string // Create, Update, Delete, LabelParameterVersion
	Name        string // detail.name as sent: "/a/b" for hierarchical parameters, "a" for others
	ParamType   string // String, StringList, SecureString
	Description string // the parameter's description

	// Ignored is set for events that are not Parameter Store Changes: acknowledge them.
	Ignored *Ignored
}

// Ignored says why a well-formed event does not concern Karma.
type Ignored struct {
	DetailType, Source string
	Reason             string
}

// Error is a delivery that can never be decoded. It is permanent: retrying cannot help.
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return "ssmevent: " + e.Reason + ": " + e.Err.Error()
	}
	return "ssmevent: " + e.Reason
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent marks the error for pipeline.Classify (dead-letter at once).
func (e *Error) Permanent() bool { return true }

func malformed(err error, format string, a ...any) *Error {
	return &Error{Reason: fmt.Sprintf(format, a...), Err: err}
}

// maxNesting bounds the unwrapping of quoted events and SNS notifications.
const maxNesting = 3

// Decode decodes one delivery (see the package comment for the shapes accepted).
func Decode(body []byte) (Event, error) {
	return decode(body, 0)
}

func decode(body []byte, depth int) (Event, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return Event{}, malformed(nil, "empty body")
	}
	if depth > maxNesting {
		return Event{}, malformed(nil, "event nested more than %d times", maxNesting)
	}
	if body[0] == '"' {
		var s string
		if err := json.Unmarshal(body, &s); err != nil {
			return Event{}, malformed(err, "body is not JSON")
		}
		return decode([]byte(s), depth+1)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		if err == nil {
			err = errors.New("null")
		}
		return Event{}, malformed(err, "body is not a JSON object")
	}
	if _, ok := top["Records"]; ok {
		return Event{}, malformed(nil, "body is a batch of records: decode it with DecodeSQS")
	}
	if msg, ok := top["Message"]; ok && isString(top["Type"], "Notification") {
		var s string
		if err := json.Unmarshal(msg, &s); err != nil {
			return Event{}, malformed(err, "SNS notification: Message is not a string")
		}
		return decode([]byte(s), depth+1)
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Event{}, malformed(err, "not an EventBridge event")
	}
	if env.ID == "" || env.DetailType == "" || env.Source == "" {
		return Event{}, malformed(nil, "not an EventBridge event: id, detail-type and source are required")
	}
	ev := Event{ID: env.ID, Account: env.Account, Region: env.Region, Source: env.Source, DetailType: env.DetailType,
		Resources: env.Resources, ReplayName: env.ReplayName}
	if env.Time != "" {
		t, err := time.Parse(time.RFC3339, env.Time)
		if err != nil {
			return Event{}, malformed(err, "event %s: time %q", env.ID, env.Time)
		}
		ev.Time = t.UTC()
	}
	switch {
	case env.DetailType != DetailTypeChange:
		reason := "not a Parameter Store Change"
		if env.DetailType == DetailTypePolicyAction {
			reason = "a parameter policy action changes no value"
		}
		ev.Ignored = &Ignored{DetailType: env.DetailType, Source: env.Source, Reason: reason}
		return ev, nil
	case env.Source != SourceSSM:
		ev.Ignored = &Ignored{DetailType: env.DetailType, Source: env.Source, Reason: "Parameter Store Change from a source other than " + SourceSSM}
		return ev, nil
	}
	var d detail
	if len(env.Detail) == 0 || bytes.Equal(env.Detail, []byte("null")) {
		return Event{}, malformed(nil, "event %s: no detail", env.ID)
	}
	if err := json.Unmarshal(env.Detail, &d); err != nil {
		return Event{}, malformed(err, "event %s: detail", env.ID)
	}
	if d.Name == "" || d.Operation == "" {
		return Event{}, malformed(nil, "event %s: detail.name and detail.operation are required", env.ID)
	}
	ev.Operation, ev.Name, ev.ParamType, ev.Description = d.Operation, d.Name, d.Type, d.Description
	return ev, nil
}

func isString(raw json.RawMessage, want string) bool {
	var s string
	return json.Unmarshal(raw, &s) == nil && s == want
}

// Record is the result of one SQS message of a batch.
type Record struct {
	MessageID string
	Event     Event
	Err       error // permanent: report the message as a batch item failure or dead-letter it
}

// DecodeSQS decodes an SQS -> Lambda batch ({"Records":[{"messageId", "body", ...}]}), one
// Record per message in order. The error is for a batch that is itself malformed; the records'
// own failures are in Record.Err. The md5OfBody of a record is not checked (SQS checked it).
func DecodeSQS(batch []byte) ([]Record, error) {
	var b struct {
		Records *[]struct {
			MessageID   string `json:"messageId"`
			Body        string `json:"body"`
			EventSource string `json:"eventSource"`
		} `json:"Records"`
	}
	if err := json.Unmarshal(batch, &b); err != nil {
		return nil, malformed(err, "SQS batch")
	}
	if b.Records == nil {
		return nil, malformed(nil, "SQS batch: no Records")
	}
	out := make([]Record, 0, len(*b.Records))
	for i, r := range *b.Records {
		rec := Record{MessageID: r.MessageID}
		switch {
		case r.EventSource != "" && r.EventSource != "aws:sqs":
			rec.Err = malformed(nil, "record %d: eventSource %q is not aws:sqs", i, r.EventSource)
		default:
			ev, err := Decode([]byte(r.Body))
			if err != nil {
				err = malformed(err, "record %d (message %s)", i, r.MessageID)
			}
			rec.Event, rec.Err = ev, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// Kind is what a parameter is to Karma.
type Kind string

// Kinds of parameter.
const (
	Config      Kind = "config"      // <prefix>/<type>/<nickname>/config
	Runtime     Kind = "runtime"     // <prefix>/<type>/<nickname>/runtime
	Environment Kind = "environment" // <prefix>/environment
	Other       Kind = "other"       // anything else: not Karma's
)

// Target is a classified parameter name.
type Target struct {
	Kind           Kind
	Type, Nickname string // for Config and Runtime
}

// Classify places a parameter name in Karma's layout under prefix (e.g. "/karma/dev"; a
// trailing '/' is ignored). The name must start with prefix + "/" exactly, as
// the ingest stage (workers/ingest) requires: no leading slash is added to or removed from either.
func Classify(name, prefix string) Target {
	rest, ok := strings.CutPrefix(name, strings.TrimSuffix(prefix, "/")+"/")
	if !ok {
		return Target{Kind: Other}
	}
	if rest == "environment" {
		return Target{Kind: Environment}
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return Target{Kind: Other}
	}
	switch parts[2] {
	case "config":
		return Target{Kind: Config, Type: parts[0], Nickname: parts[1]}
	case "runtime":
		return Target{Kind: Runtime, Type: parts[0], Nickname: parts[1]}
	}
	return Target{Kind: Other}
}
