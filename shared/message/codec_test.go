package message_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usekarma/karma/shared/message"
)

// validEnvelope is a well-formed change.detected v2 as a generic JSON object, for mutating.
func validEnvelope() map[string]any {
	return map[string]any{
		"id":              "019cebab-87be-76cd-9c22-2d20c23174d0",
		"type":            "change.detected",
		"version":         2,
		"occurred_at":     "2026-03-14T09:26:53.118Z",
		"correlation_id":  "019cebab-87be-76cd-9c22-2d20c23174d0",
		"actor":           map[string]any{"kind": "git", "name": "Ada Lovelace <ada@example.com>"},
		"env":             "prod",
		"idempotency_key": "git:9f3c2a71e4b05d8c6a1f7e2b3d4c5a6978e1f0ab",
		"payload": map[string]any{
			"change_set_id": "019cebab-87be-76cd-9c22-2d20c23174d0",
			"source":        "git",
			"components":    []any{map[string]any{"type": "vpc", "nickname": "core"}},
			"commit":        map[string]any{"sha": "9f3c2a71e4b05d8c6a1f7e2b3d4c5a6978e1f0ab", "author": "Ada Lovelace <ada@example.com>"},
			"auto_approve":  false,
		},
	}
}

func mutated(t testing.TB, f func(m map[string]any)) []byte {
	t.Helper()
	m := validEnvelope()
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// parseAndDecode is what a consumer does: Parse the envelope, then Decode the payload into the
// newest Go type of its message type.
func parseAndDecode(b []byte) (message.Envelope, any, error) {
	e, err := message.Parse(b)
	if err != nil {
		return e, nil, err
	}
	mk := newest[e.Type]
	if mk == nil {
		return e, nil, errors.New("test: no Go type for " + e.Type)
	}
	out := mk()
	return e, out, message.Decode(e, out)
}

type malformedCase struct {
	name   string
	in     []byte
	reason string // a substring of the MalformedError's reason
}

// malformedCases are messages a consumer must dead-letter, each with the reason it must give.
func malformedCases(t testing.TB) []malformedCase {
	payload := func(m map[string]any) map[string]any { return m["payload"].(map[string]any) }
	return []malformedCase{
		{"not JSON", []byte(`{"id": "019cebab-`), "not valid JSON"},
		{"not an object", []byte(`["change.detected"]`), "not valid JSON"},
		{"empty input", []byte(``), "not valid JSON"},
		{"JSON null", []byte(`null`), "no id"},
		{"empty object", []byte(`{}`), "no id"},
		{"missing id", mutated(t, func(m map[string]any) { delete(m, "id") }), "no id"},
		{"missing type", mutated(t, func(m map[string]any) { delete(m, "type") }), "no type"},
		{"missing correlation_id", mutated(t, func(m map[string]any) { delete(m, "correlation_id") }), "no correlation_id"},
		{"missing occurred_at", mutated(t, func(m map[string]any) { delete(m, "occurred_at") }), "no occurred_at"},
		{"occurred_at not a time", mutated(t, func(m map[string]any) { m["occurred_at"] = "yesterday" }), "not valid JSON"},
		{"missing payload", mutated(t, func(m map[string]any) { delete(m, "payload") }), "no payload"},
		{"null payload", mutated(t, func(m map[string]any) { m["payload"] = nil }), "no payload"},
		{"unknown type", mutated(t, func(m map[string]any) { m["type"] = "change.exploded" }), `unknown message type "change.exploded"`},
		{"unknown version", mutated(t, func(m map[string]any) { m["version"] = 5 }), "unsupported version 5 of change.detected"},
		{"missing version", mutated(t, func(m map[string]any) { delete(m, "version") }), "unsupported version 0 of change.detected"},
		{"version not a number", mutated(t, func(m map[string]any) { m["version"] = "2" }), "not valid JSON"},
		{"payload with an unknown field", mutated(t, func(m map[string]any) { payload(m)["colour"] = "blue" }), `unknown field "colour"`},
		{"payload field of the wrong type", mutated(t, func(m map[string]any) { payload(m)["components"] = "prod/vpc/core" }), "change.detected v2 payload: json: cannot unmarshal string"},
		{"payload not an object", mutated(t, func(m map[string]any) { m["payload"] = []any{1, 2} }), "change.detected v2 payload: json: cannot unmarshal array"},
		{"payload a string", mutated(t, func(m map[string]any) { m["payload"] = "{}" }), "change.detected v2 payload: json: cannot unmarshal string"},
		{"v1 payload with an unknown field", mutated(t, func(m map[string]any) {
			m["version"] = 1
			m["payload"] = map[string]any{"source": "git", "component": map[string]any{"type": "vpc", "nickname": "core"}, "change_set_id": "x"}
		}), `change.detected v1 payload: json: unknown field "change_set_id"`},
		{"v1 payload of the wrong shape", mutated(t, func(m map[string]any) {
			m["version"] = 1
			m["payload"] = map[string]any{"source": "git", "component": "prod/vpc/core"}
		}), "change.detected v1 payload: json: cannot unmarshal string"},
		{"a v4 rollback sent as v3", mutated(t, func(m map[string]any) {
			m["version"] = 3
			payload(m)["source"] = "rollback"
			payload(m)["rollback"] = map[string]any{"deployment_id": "dep-0123456789abcdef"}
		}), `change.detected v3 payload: json: unknown field "rollback"`},
		{"v2 payload sent as v1", mutated(t, func(m map[string]any) { m["version"] = 1 }), `change.detected v1 payload: json: unknown field`},
		{"deployment payload with a nested unknown field", mutated(t, func(m map[string]any) {
			m["type"], m["version"] = "deployment.planned", 1
			m["payload"] = map[string]any{"change_set_id": "c", "deployment_id": "d", "component": "prod/vpc/core",
				"plan": map[string]any{"add": 1, "remove": 2}}
		}), `deployment.planned v1 payload: json: unknown field "remove"`},
		{"v1 plan carrying v2 resources", mutated(t, func(m map[string]any) {
			m["type"], m["version"] = "deployment.planned", 1
			m["payload"] = map[string]any{"change_set_id": "c", "deployment_id": "d", "component": "prod/vpc/core", "resources": []any{}}
		}), `deployment.planned v1 payload: json: unknown field "resources"`},
		{"resource change with an unknown field", mutated(t, func(m map[string]any) {
			m["type"], m["version"] = "deployment.planned", 2
			m["payload"] = map[string]any{"change_set_id": "c", "deployment_id": "d", "component": "prod/vpc/core",
				"resources": []any{map[string]any{"address": "a.b", "actions": []any{"create"}, "sensitive": true}}}
		}), `deployment.planned v2 payload: json: unknown field "sensitive"`},
	}
}

func TestMalformed(t *testing.T) {
	for _, c := range malformedCases(t) {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := parseAndDecode(c.in)
			if err == nil {
				t.Fatalf("accepted %s", c.in)
			}
			if !errors.Is(err, message.ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			var me *message.MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("error %v is not a *MalformedError", err)
			}
			if !strings.Contains(me.Reason, c.reason) {
				t.Errorf("reason %q does not mention %q", me.Reason, c.reason)
			}
			if !me.Permanent() {
				t.Error("a malformed message must be permanent (dead-lettered, not retried)")
			}
			if !strings.HasPrefix(err.Error(), "message: malformed: ") {
				t.Errorf("error text %q", err.Error())
			}
		})
	}
}

func TestDecodeWrongVersionWithoutUpcaster(t *testing.T) {
	// Parse would have refused it; Decode must not half-read a version it has no upcaster for.
	e := message.Envelope{Type: message.TypeDeploymentApplied, Version: 2, Payload: json.RawMessage(`{}`)}
	err := message.Decode(e, new(message.DeploymentApplied))
	if !errors.Is(err, message.ErrMalformed) {
		t.Fatalf("Decode of deployment.applied v2 = %v, want ErrMalformed", err)
	}
}

func TestNew(t *testing.T) {
	actor := message.Actor{Kind: "git", Name: "Ada Lovelace <ada@example.com>"}
	p := message.ChangeDetected{ChangeSetID: "will be the id", Source: message.SourceGit,
		Files: []string{"iac/prod/vpc/core/config.json"}, Commit: &message.Commit{SHA: "9f3c2a71e4b05d8c6a1f7e2b3d4c5a6978e1f0ab", Author: "Ada"}}
	before := time.Now()
	e, err := message.New(message.TypeChangeDetected, "prod", actor, "git:9f3c2a71e4b05d8c6a1f7e2b3d4c5a6978e1f0ab", p)
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	mustV7(t, "id", e.ID)
	if e.CorrelationID != e.ID {
		t.Errorf("root correlation_id = %q, want its own id %q", e.CorrelationID, e.ID)
	}
	if e.CausationID != "" {
		t.Errorf("root causation_id = %q, want none", e.CausationID)
	}
	if e.Type != message.TypeChangeDetected || e.Version != message.Latest[message.TypeChangeDetected] {
		t.Errorf("type/version = %s v%d, want the newest", e.Type, e.Version)
	}
	if e.Env != "prod" || e.Actor != actor || e.IdempotencyKey != "git:9f3c2a71e4b05d8c6a1f7e2b3d4c5a6978e1f0ab" {
		t.Errorf("env/actor/key not kept: %+v", e)
	}
	if e.OccurredAt.Location() != time.UTC {
		t.Errorf("occurred_at %v is not UTC", e.OccurredAt)
	}
	if e.OccurredAt.Before(before.Truncate(time.Millisecond)) || e.OccurredAt.After(after) {
		t.Errorf("occurred_at %v not between %v and %v", e.OccurredAt, before, after)
	}

	b, err := message.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	back, out, err := parseAndDecode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !back.OccurredAt.Equal(e.OccurredAt) || back.ID != e.ID || back.CorrelationID != e.CorrelationID {
		t.Errorf("envelope changed on the wire: %+v -> %+v", e, back)
	}
	if !reflect.DeepEqual(*out.(*message.ChangeDetected), p) {
		t.Errorf("payload changed on the wire: %+v -> %+v", p, out)
	}

	if _, err := message.New("change.exploded", "prod", actor, "k", p); err == nil {
		t.Error("New accepted an unknown type")
	}
	if _, err := message.New(message.TypeChangeDetected, "prod", actor, "k", map[string]any{"f": func() {}}); err == nil {
		t.Error("New accepted a payload that cannot be encoded")
	}
}

func TestDerive(t *testing.T) {
	actor := message.Actor{Kind: "iam", Name: "arn:aws:iam::123456789012:user/linus"}
	root, err := message.New(message.TypeChangeDetected, "prod", actor, "parameter:/iac/vpc/core/config@12", message.ChangeDetected{})
	if err != nil {
		t.Fatal(err)
	}
	resolved, err := root.Derive(message.TypeChangeResolved, "resolved:"+root.ID, message.ChangeResolved{ChangeSetID: root.ID})
	if err != nil {
		t.Fatal(err)
	}
	sched := resolved.MustDerive(message.TypeDeploymentScheduled, "deployment.scheduled:d1", message.DeploymentScheduled{DeploymentID: "d1"})

	for _, c := range []struct {
		name          string
		e, cause      message.Envelope
		wantType      string
		wantIdem      string
		wantCausation string
	}{
		{"resolved", resolved, root, message.TypeChangeResolved, "resolved:" + root.ID, root.ID},
		{"scheduled", sched, resolved, message.TypeDeploymentScheduled, "deployment.scheduled:d1", resolved.ID},
	} {
		mustV7(t, c.name+" id", c.e.ID)
		if c.e.ID == c.cause.ID || c.e.ID == root.ID {
			t.Errorf("%s: id %s reused", c.name, c.e.ID)
		}
		if c.e.CorrelationID != root.ID {
			t.Errorf("%s: correlation_id = %q, want the root's id %q", c.name, c.e.CorrelationID, root.ID)
		}
		if c.e.CausationID != c.wantCausation {
			t.Errorf("%s: causation_id = %q, want %q", c.name, c.e.CausationID, c.wantCausation)
		}
		if c.e.Type != c.wantType || c.e.Version != message.Latest[c.wantType] || c.e.IdempotencyKey != c.wantIdem {
			t.Errorf("%s: %s v%d key %q", c.name, c.e.Type, c.e.Version, c.e.IdempotencyKey)
		}
		if c.e.Env != root.Env || c.e.Actor != root.Actor {
			t.Errorf("%s: env/actor not propagated: %q %+v", c.name, c.e.Env, c.e.Actor)
		}
		if c.e.OccurredAt.Before(c.cause.OccurredAt) {
			t.Errorf("%s: occurred before its cause", c.name)
		}
	}

	if _, err := root.Derive("change.exploded", "k", nil); err == nil {
		t.Error("Derive accepted an unknown type")
	}
	defer func() {
		if recover() == nil {
			t.Error("MustDerive of an unknown type did not panic")
		}
	}()
	root.MustDerive("change.exploded", "k", nil)
}

// TestIDsAreTimeOrdered: UUIDv7 ids sort in creation order, which the audit log and the dead-letter
// listing rely on for a stable order.
func TestIDsAreTimeOrdered(t *testing.T) {
	prev := ""
	for i := 0; i < 1000; i++ {
		e, err := message.New(message.TypeDeploymentFailed, "dev", message.Actor{Kind: "cli", Name: "t"}, "k", message.DeploymentFailed{})
		if err != nil {
			t.Fatal(err)
		}
		if e.ID <= prev {
			t.Fatalf("id %s after %s", e.ID, prev)
		}
		prev = e.ID
	}
}

func mustV7(t *testing.T, what, s string) {
	t.Helper()
	u, err := uuid.Parse(s)
	if err != nil {
		t.Fatalf("%s %q: %v", what, s, err)
	}
	if u.Version() != 7 || u.Variant() != uuid.RFC4122 {
		t.Errorf("%s %s: version %d variant %v, want a UUIDv7", what, s, u.Version(), u.Variant())
	}
	if u.String() != s {
		t.Errorf("%s %q is not in canonical (lower-case) form", what, s)
	}
}

// FuzzParse: Parse never panics; whatever it accepts re-encodes and parses back to the same
// envelope; Decode of an accepted envelope never panics and fails only with ErrMalformed.
// `go test` runs the seed corpus (the goldens and the malformed cases); explore with
// `go test -run '^$' -fuzz FuzzParse ./shared/message/`.
func FuzzParse(f *testing.F) {
	goldens, _ := filepath.Glob(filepath.Join(schemaDir, "golden", "*.json"))
	for _, g := range goldens {
		b, err := os.ReadFile(g)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, c := range malformedCases(f) {
		f.Add(c.in)
	}
	for _, s := range []string{``, `null`, `{}`, `[]`, `{"id":`, `"x"`, `0`,
		`{"id":"a","type":"change.detected","version":2,"occurred_at":"2026-03-14T09:26:53Z","correlation_id":"c","payload":{}}`,
		`{"id":"a","type":"change.detected","version":1,"occurred_at":"2026-03-14T09:26:53+01:00","correlation_id":"c","payload":{"source":"git","component":{"type":"vpc","nickname":"core"},"auto_approve":true}}`,
		`{"id":"a","type":"deployment.failed","version":1,"occurred_at":"9999-12-31T23:59:59.999999999Z","correlation_id":"c","payload":[]}`,
		`{"id":"a","type":"deployment.applied","version":1,"occurred_at":"2026-03-14T09:26:53Z","correlation_id":"c","payload":{"wave":1e400}}`,
		`{"id":"<&>\u2028","type":"change.resolved","version":1,"occurred_at":"2026-03-14T09:26:53Z","correlation_id":"\ud800","payload":{"roots":["<a>"]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := message.Parse(b)
		if err != nil {
			if !errors.Is(err, message.ErrMalformed) {
				t.Fatalf("Parse error %v is not ErrMalformed", err)
			}
			return
		}
		wire, err := message.Encode(e)
		if err != nil {
			t.Fatalf("accepted envelope does not re-encode: %v\n%q", err, b)
		}
		again, err := message.Parse(wire)
		if err != nil {
			t.Fatalf("re-encoded envelope does not parse: %v\n%s", err, wire)
		}
		if again.ID != e.ID || again.Type != e.Type || again.Version != e.Version ||
			!again.OccurredAt.Equal(e.OccurredAt) || again.CorrelationID != e.CorrelationID ||
			again.CausationID != e.CausationID || again.Actor != e.Actor || again.Env != e.Env ||
			again.IdempotencyKey != e.IdempotencyKey {
			t.Fatalf("round trip changed the envelope:\n%+v\n%+v", e, again)
		}
		if !sameJSON(again.Payload, e.Payload) {
			t.Fatalf("round trip changed the payload: %s -> %s", e.Payload, again.Payload)
		}

		out := newest[e.Type]()
		if err := message.Decode(e, out); err != nil {
			if !errors.Is(err, message.ErrMalformed) {
				t.Fatalf("Decode error %v is not ErrMalformed", err)
			}
			return
		}
		// A decoded payload re-encodes into something the same type decodes again.
		p, err := json.Marshal(out)
		if err != nil {
			t.Fatalf("decoded payload does not re-encode: %v", err)
		}
		up := e
		up.Version, up.Payload = message.Latest[e.Type], p
		if err := message.Decode(up, newest[e.Type]()); err != nil {
			t.Fatalf("re-encoded payload does not decode: %v\n%s", err, p)
		}
	})
}

// sameJSON compares two JSON texts as values (numbers by their text, so that no precision is
// lost and no out-of-range number fails).
func sameJSON(a, b []byte) bool {
	decode := func(b []byte) (any, error) {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v any
		err := d.Decode(&v)
		return v, err
	}
	x, errX := decode(a)
	y, errY := decode(b)
	if errX != nil || errY != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
