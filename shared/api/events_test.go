package api

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/message"
)

// deploymentMsg is a pipeline message of type typ for a deployment of change set cs.
func deploymentMsg(t *testing.T, typ, cs, component string, wave int) message.Envelope {
	t.Helper()
	payload, _ := json.Marshal(map[string]any{"change_set_id": cs, "deployment_id": "dep-" + component, "component": component, "wave": wave})
	return message.Envelope{ID: typ + "-" + component, Type: typ, Version: 1, CorrelationID: "root-" + cs, Env: "prod", Payload: payload,
		OccurredAt: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC), Actor: message.Actor{Kind: "git", Name: "Ada"}}
}

// stream opens GET /events on srv and returns a reader of its events (name, data).
func stream(t *testing.T, url, lastID string) (*http.Response, func() (string, Event)) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+tokens["reader"])
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	sc := bufio.NewScanner(resp.Body)
	return resp, func() (string, Event) {
		t.Helper()
		var name string
		var ev Event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev); err != nil {
					t.Fatal(err)
				}
			case line == "" && name != "":
				return name, ev
			}
		}
		t.Fatalf("the stream ended: %v", sc.Err())
		return "", ev
	}
}

// The pipeline's messages reach open streams as events, in order, filtered by change; a
// client reconnecting with Last-Event-ID gets what it missed; deployment.recorded says nothing
// of progress and is left out.
func TestEventsStream(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	cfg := h.config()
	cfg.Events = &Events{}
	handler, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)

	resp, next := stream(t, srv.URL+"/events", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	_, onlyB := stream(t, srv.URL+"/events?change=cs-b", "")
	cfg.Events.Observe(
		deploymentMsg(t, message.TypeDeploymentScheduled, "cs-a", "prod/vpc/core", 0),
		deploymentMsg(t, message.TypeDeploymentRecorded, "cs-a", "prod/vpc/core", 0),
		deploymentMsg(t, message.TypeDeploymentApplied, "cs-a", "prod/vpc/core", 0),
		deploymentMsg(t, message.TypeDeploymentSkipped, "cs-b", "prod/ecs-cluster/core", 1),
	)
	for i, want := range []string{message.TypeDeploymentScheduled, message.TypeDeploymentApplied, message.TypeDeploymentSkipped} {
		name, ev := next()
		if name != want || ev.Type != want || ev.ID != int64(i+1) {
			t.Errorf("event %d: %s %+v, want %s", i, name, ev, want)
		}
		if i == 0 && (ev.ChangeID != "cs-a" || ev.Component != "prod/vpc/core" || ev.DeploymentID != "dep-prod/vpc/core" || ev.Wave == nil || *ev.Wave != 0 ||
			ev.MessageID != "deployment.scheduled-prod/vpc/core" || ev.CorrelationID != "root-cs-a") {
			t.Errorf("event %+v", ev)
		}
	}
	if name, ev := onlyB(); name != message.TypeDeploymentSkipped || ev.ChangeID != "cs-b" {
		t.Errorf("?change=cs-b: %s %+v", name, ev)
	}
	_, resumed := stream(t, srv.URL+"/events", "2")
	if name, ev := resumed(); name != message.TypeDeploymentSkipped || ev.ID != 3 {
		t.Errorf("after Last-Event-ID 2: %s %+v", name, ev)
	}

	// A server that runs no pipeline streams nothing.
	h.call("GET", "/events", "reader", nil).want(http.StatusNotFound).problem()
	h.call("GET", "/events", "reader", nil, "Last-Event-ID", "x").want(http.StatusNotFound)
}

// A stream that does not keep up is closed rather than holding the pipeline back.
func TestEventsSlowStreamClosed(t *testing.T) {
	t.Parallel()
	e := &Events{Keep: 4}
	_, ch, cancel := e.subscribe(0)
	defer cancel()
	for i := 0; i < 300; i++ {
		e.Observe(deploymentMsg(t, message.TypeDeploymentApplied, "cs", "prod/vpc/core", 0))
	}
	n := 0
	for range ch {
		n++
	}
	if n != 256 {
		t.Errorf("a full stream got %d events before it was closed, want its buffer's 256", n)
	}
	replay, _, cancel2 := e.subscribe(0)
	defer cancel2()
	if len(replay) != 4 || replay[3].ID != 300 {
		t.Errorf("kept %d events (last %+v), want the latest 4", len(replay), replay[len(replay)-1])
	}
}

// A client reconnecting with the Last-Event-ID of a server since restarted (its ids start again
// at 1) gets every event the new server kept: those numbered below the old id were skipped, so
// the progress of the changes since the restart never reached it.
func TestEventsResumeAfterARestart(t *testing.T) {
	t.Parallel()
	e := &Events{}
	e.Observe(deploymentMsg(t, message.TypeDeploymentScheduled, "cs", "prod/vpc/core", 0),
		deploymentMsg(t, message.TypeDeploymentApplied, "cs", "prod/vpc/core", 0))
	replay, _, cancel := e.subscribe(812) // an id of the previous server's stream
	defer cancel()
	if len(replay) != 2 || replay[0].ID != 1 || replay[1].ID != 2 {
		t.Errorf("after an id this server never gave: replayed %+v, want its 2 events", replay)
	}
	replay, _, cancel2 := e.subscribe(1)
	defer cancel2()
	if len(replay) != 1 || replay[0].ID != 2 {
		t.Errorf("after Last-Event-ID 1: replayed %+v, want event 2", replay)
	}
}
