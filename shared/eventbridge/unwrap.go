package eventbridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Event is the envelope EventBridge delivers to its targets (field names as AWS writes them).
type Event struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"` // unique per event; the same on a redelivery
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       time.Time       `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
	ReplayName string          `json:"replay-name,omitempty"` // set on events replayed from an archive
}

// ParseEvent decodes an EventBridge event.
func ParseEvent(body []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(body, &e); err != nil {
		return Event{}, fmt.Errorf("eventbridge: not an event: %w", err)
	}
	if e.Source == "" || e.DetailType == "" || len(e.Detail) == 0 {
		return Event{}, errors.New("eventbridge: not an event: source, detail-type or detail missing")
	}
	return e, nil
}

// isEvent reports whether a JSON object has the keys only an EventBridge event has.
func isEvent(body []byte) bool {
	var keys map[string]json.RawMessage
	if json.Unmarshal(body, &keys) != nil {
		return false
	}
	_, dt := keys["detail-type"]
	_, d := keys["detail"]
	_, s := keys["source"]
	return dt && d && s
}

// Unwrap returns the Karma envelope an SQS message body carries: the detail of an EventBridge
// event from source "karma" (what an EventBridge rule delivers), or the body itself when it is
// not an EventBridge event (a raw envelope, as QueuePublisher sends; message.Parse checks it).
// A body that is not a JSON object, or an event of another source, is a permanent error (the
// message is dead-lettered).
func Unwrap(body []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, permanent(errors.New("eventbridge: unwrap: the message body is not a JSON object"))
	}
	if !isEvent(trimmed) {
		return body, nil
	}
	e, err := ParseEvent(trimmed)
	if err != nil {
		return nil, permanent(fmt.Errorf("eventbridge: unwrap: %w", err))
	}
	if e.Source != Source {
		return nil, permanent(fmt.Errorf("eventbridge: unwrap: event %s is from source %q (%s), not %q: a rule routes foreign events to this queue",
			e.ID, e.Source, e.DetailType, Source))
	}
	detail := bytes.TrimSpace(e.Detail)
	if len(detail) == 0 || detail[0] != '{' {
		return nil, permanent(fmt.Errorf("eventbridge: unwrap: event %s: detail is not a JSON object", e.ID))
	}
	return detail, nil
}
