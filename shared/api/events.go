package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/usekarma/karma/shared/message"
)

// GET /events?change= — the pipeline's progress as server-sent events (text/event-stream): one
// event per message the pipeline handled (a change detected and resolved; each deployment
// scheduled, skipped, planned, approved, applied or failed; a change rejected or superseded),
// named by the message type, its data a JSON Event. The stream starts with the events that
// happened after Last-Event-ID (a reconnecting client) when the server still has them, and a
// comment every HeartbeatEvery keeps proxies from closing an idle stream. change keeps only the
// events of one change set (its id, or its root's: a Git change's events before resolve carry
// the root id).
//
// Where the events come from is the process running the pipeline: karma serve feeds Events
// from its runner (Observe, for every message the audit stage acknowledges). A server without
// Events (the API as a Lambda function) answers 404.

// Event is one step of the pipeline, as streamed.
type Event struct {
	ID            int64     `json:"id"`   // increasing within a server's life
	Type          string    `json:"type"` // the message type, e.g. deployment.applied
	MessageID     string    `json:"message_id"`
	CorrelationID string    `json:"correlation_id"` // GET /log?correlation= lists its audit records
	ChangeID      string    `json:"change_id,omitempty"`
	Env           string    `json:"env,omitempty"`
	Component     string    `json:"component,omitempty"`
	DeploymentID  string    `json:"deployment_id,omitempty"`
	Wave          *int      `json:"wave,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	ChangedKeys   []string  `json:"changed_keys,omitempty"`
	Actor         string    `json:"actor,omitempty"`
	At            time.Time `json:"at"`
}

// HeartbeatEvery is how often an idle stream gets a comment line.
var HeartbeatEvery = 15 * time.Second

// Events fans pipeline events out to the streams open on GET /events; it keeps the latest Keep
// events for clients that reconnect. A stream that cannot keep up (its buffer of 256 events
// full) is closed, and the client reconnects with Last-Event-ID. Safe for concurrent use.
type Events struct {
	Keep int // default 1024

	mu     sync.Mutex
	next   int64
	recent []Event
	subs   map[chan Event]struct{}
}

// Observe publishes the events of messages the pipeline handled; messages that say nothing of
// progress (deployment.recorded) are left out.
func (e *Events) Observe(msgs ...message.Envelope) {
	for _, m := range msgs {
		if ev, ok := eventOf(m); ok {
			e.publish(ev)
		}
	}
}

func (e *Events) publish(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.next++
	ev.ID = e.next
	keep := e.Keep
	if keep <= 0 {
		keep = 1024
	}
	e.recent = append(e.recent, ev)
	if len(e.recent) > keep {
		e.recent = e.recent[len(e.recent)-keep:]
	}
	for ch := range e.subs {
		select {
		case ch <- ev:
		default: // too slow: closed, the client reconnects with Last-Event-ID
			delete(e.subs, ch)
			close(ch)
		}
	}
}

// subscribe returns the kept events after id, and a channel of the events to come. An id this
// server never gave (the stream of a server since restarted, whose ids start again at 1) is
// not a position in this stream: every kept event is replayed, instead of those it numbered
// below the old id being skipped.
func (e *Events) subscribe(after int64) ([]Event, chan Event, func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if after > e.next {
		after = 0
	}
	var replay []Event
	for _, ev := range e.recent {
		if ev.ID > after {
			replay = append(replay, ev)
		}
	}
	ch := make(chan Event, 256)
	if e.subs == nil {
		e.subs = map[chan Event]struct{}{}
	}
	e.subs[ch] = struct{}{}
	return replay, ch, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if _, ok := e.subs[ch]; ok {
			delete(e.subs, ch)
			close(ch)
		}
	}
}

// progress is what the payloads of the streamed types share.
type progress struct {
	ChangeSetID  string          `json:"change_set_id"`
	DeploymentID string          `json:"deployment_id"`
	Component    json.RawMessage `json:"component"`
	Wave         *int            `json:"wave"`
	Reason       string          `json:"reason"`
	ChangedKeys  []string        `json:"changed_keys"`
}

var streamed = map[string]bool{
	message.TypeChangeDetected: true, message.TypeChangeResolved: true, message.TypeDeploymentScheduled: true,
	message.TypeDeploymentSkipped: true, message.TypeDeploymentPlanned: true, message.TypeDeploymentApproved: true,
	message.TypeDeploymentApplied: true, message.TypeDeploymentFailed: true, message.TypeChangeSuperseded: true,
	message.TypeChangeRejected: true,
}

func eventOf(m message.Envelope) (Event, bool) {
	if !streamed[m.Type] {
		return Event{}, false
	}
	var p progress
	_ = json.Unmarshal(m.Payload, &p) // what does not decode is left out of the event
	ev := Event{Type: m.Type, MessageID: m.ID, CorrelationID: m.CorrelationID, ChangeID: p.ChangeSetID, Env: m.Env,
		DeploymentID: p.DeploymentID, Wave: p.Wave, Reason: p.Reason, ChangedKeys: p.ChangedKeys, Actor: m.Actor.Name, At: m.OccurredAt}
	var id string
	if json.Unmarshal(p.Component, &id) == nil {
		ev.Component = id
	}
	return ev, true
}

func (s *server) getEvents(w http.ResponseWriter, r *http.Request, _ Caller) error {
	if s.cfg.Events == nil {
		return notFound("this server runs no pipeline, so it streams no events: GET /changes/{id} says where a change is")
	}
	q := &query{r: r}
	change := q.str("change")
	var after int64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return badRequest("Last-Event-ID %q: want the id of an event of this stream", v)
		}
		after = n
	}
	if err := q.err(); err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout
	replay, ch, cancel := s.cfg.Events.subscribe(after)
	defer cancel()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(ev Event) error {
		if change != "" && ev.ChangeID != change && ev.CorrelationID != change {
			return nil
		}
		b, _ := json.Marshal(ev)
		_, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.ID, ev.Type, b)
		return err
	}
	if _, err := fmt.Fprint(w, ": karma events\nretry: 2000\n\n"); err != nil {
		return nil
	}
	for _, ev := range replay {
		if send(ev) != nil {
			return nil
		}
	}
	if rc.Flush() != nil {
		return nil
	}
	beat := time.NewTicker(HeartbeatEvery)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case ev, ok := <-ch:
			if !ok {
				return nil // too slow: the client reconnects
			}
			if send(ev) != nil {
				return nil
			}
		case <-beat.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return nil
			}
		}
		if rc.Flush() != nil {
			return nil
		}
	}
}
