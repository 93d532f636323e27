package trigger_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/message/messagetest"
	"github.com/usekarma/karma/shared/trigger"
)

// checkRoot checks what every change.detected made here has in common: a root whose id is its
// correlation id and its change set id.
func checkRoot(t *testing.T, e message.Envelope) message.ChangeDetected {
	t.Helper()
	if e.Type != message.TypeChangeDetected || e.Version != message.Latest[message.TypeChangeDetected] {
		t.Errorf("type %s v%d, want change.detected v%d", e.Type, e.Version, message.Latest[message.TypeChangeDetected])
	}
	if e.CorrelationID != e.ID || e.CausationID != "" {
		t.Errorf("correlation %q, causation %q: a root correlates to itself (%s) and has no cause", e.CorrelationID, e.CausationID, e.ID)
	}
	var p message.ChangeDetected
	if err := message.Decode(e, &p); err != nil {
		t.Fatal(err)
	}
	if p.ChangeSetID != e.ID {
		t.Errorf("change_set_id %q, want the message id %q", p.ChangeSetID, e.ID)
	}
	return p
}

func TestFromRequest(t *testing.T) {
	t.Parallel()
	ada := message.Actor{Kind: "cli", Name: "ada"}
	tests := []struct {
		name   string
		req    trigger.Request
		wantID string // request id; "" = the message id
	}{
		{"two components", trigger.Request{ID: "cr-7", Env: "prod", Actor: ada, AutoApprove: true, Configs: map[string][]byte{
			"vpc/core":         []byte("{\n  \"cidr\": \"10.1.0.0/16\",\n  \"az_count\": 3\n}"),
			"ecs-cluster/core": []byte(`{"service_discovery_vpc_id": "${vpc/core.runtime.vpc_id}"}`),
		}}, "cr-7"},
		{"request id defaults to the message id", trigger.Request{Env: "dev", Actor: ada, Configs: map[string][]byte{
			"s3-bucket/assets": []byte(`{"versioning": true}`),
		}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := trigger.FromRequest(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			p := checkRoot(t, e)
			wantID := tt.wantID
			if wantID == "" {
				wantID = e.ID
			}
			if p.Request == nil || p.Request.ID != wantID || e.IdempotencyKey != "request:"+wantID {
				t.Errorf("request %+v, key %q; want id %q", p.Request, e.IdempotencyKey, wantID)
			}
			if e.Env != tt.req.Env || e.Actor != tt.req.Actor || p.AutoApprove != tt.req.AutoApprove {
				t.Errorf("env %q actor %+v auto %v", e.Env, e.Actor, p.AutoApprove)
			}
			for ref, cfg := range tt.req.Configs {
				var c bytes.Buffer
				_ = json.Compact(&c, cfg)
				if p.Request.Configs[ref] != c.String() {
					t.Errorf("config of %s = %q, want it compacted: %q", ref, p.Request.Configs[ref], c.String())
				}
			}
			if !slices.IsSortedFunc(p.Components, func(a, b message.ComponentRef) int {
				return bytes.Compare([]byte(a.Type+"/"+a.Nickname), []byte(b.Type+"/"+b.Nickname))
			}) || len(p.Components) != len(tt.req.Configs) {
				t.Errorf("components %v: want one per config, sorted", p.Components)
			}
			messagetest.CheckGolden(t, "request_"+goldenName(tt.name), []message.Envelope{e}, map[string]string{e.ID: "root-id"})
		})
	}
}

func TestFromRequestOfACommit(t *testing.T) {
	t.Parallel()
	sha := strings.Repeat("a", 40)
	e, err := trigger.FromRequest(trigger.Request{ID: "cr-1", Env: "prod", Actor: message.Actor{Kind: "cli", Name: "ada"},
		Configs: map[string][]byte{"vpc/core": []byte(`{}`)}, Commit: &message.Commit{SHA: sha, Author: "ada"}})
	if err != nil {
		t.Fatal(err)
	}
	p := checkRoot(t, e)
	if e.IdempotencyKey != trigger.CommitKey(sha) || p.Commit == nil || p.Request.Configs != nil {
		t.Errorf("key %q commit %+v configs %v: want the commit's key, the commit and no configs", e.IdempotencyKey, p.Commit, p.Request.Configs)
	}
	messagetest.Validate(t, e)
	if _, err := trigger.FromRequest(trigger.Request{Env: "prod", Configs: map[string][]byte{"vpc/core": []byte(`{}`)},
		Commit: &message.Commit{SHA: sha}}); !errors.Is(err, trigger.ErrInvalid) {
		t.Errorf("a commit without the request id: %v, want ErrInvalid", err)
	}
}

func TestFromRequestInvalid(t *testing.T) {
	t.Parallel()
	ok := []byte(`{"a":1}`)
	tests := []struct {
		name string
		req  trigger.Request
	}{
		{"no environment", trigger.Request{Configs: map[string][]byte{"vpc/core": ok}}},
		{"environment with a slash", trigger.Request{Env: "prod/eu", Configs: map[string][]byte{"vpc/core": ok}}},
		{"no component", trigger.Request{Env: "prod"}},
		{"ref without slash", trigger.Request{Env: "prod", Configs: map[string][]byte{"vpc": ok}}},
		{"ref with two slashes", trigger.Request{Env: "prod", Configs: map[string][]byte{"vpc/core/x": ok}}},
		{"ref without type", trigger.Request{Env: "prod", Configs: map[string][]byte{"/core": ok}}},
		{"ref without nickname", trigger.Request{Env: "prod", Configs: map[string][]byte{"vpc/": ok}}},
		{"upper-case type", trigger.Request{Env: "prod", Configs: map[string][]byte{"VPC/core": ok}}},
		{"config not JSON", trigger.Request{Env: "prod", Configs: map[string][]byte{"vpc/core": []byte(`{"cidr":`)}}},
		{"config an array", trigger.Request{Env: "prod", Configs: map[string][]byte{"vpc/core": []byte(`[1]`)}}},
		{"config null", trigger.Request{Env: "prod", Configs: map[string][]byte{"vpc/core": []byte(`null`)}}},
		{"config a string", trigger.Request{Env: "prod", Configs: map[string][]byte{"vpc/core": []byte(`"x"`)}}},
		{"config not UTF-8", trigger.Request{Env: "prod", Configs: map[string][]byte{"vpc/core": []byte("{\"name\":\"caf\xe9\"}")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := trigger.FromRequest(tt.req); !errors.Is(err, trigger.ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
	_, err := trigger.FromRequest(trigger.Request{Env: "prod", Configs: map[string][]byte{"vpc/core": []byte("{\"name\":\"caf\xe9\"}")}})
	if err == nil || !strings.Contains(err.Error(), "vpc/core") || !strings.Contains(err.Error(), "invalid UTF-8 at byte offset 12") {
		t.Errorf("invalid UTF-8: %v, want the component and the byte offset named", err)
	}
}

// goldenName turns a test name into a file name.
func goldenName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}
