package resolve_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

// A /config parameter's value is deployed as the component's config: one that is no config (not
// one JSON object, a member named twice) or that its type's schema refuses rejects the change
// set, naming the parameter, its version and the problem; nothing is scheduled. (Before, it was
// scheduled past the schema, and recorded with the hash of what encoding/json made of it: the
// first of two documents, the last of two values, a string.)
func TestParameterConfigIsValidated(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value, want string
	}{
		{"refused by the schema", `{"cidr":"ten"}`, "/iac/vpc/core/config@12: error [schema] at /cidr"},
		{"a member twice", `{"cidr":"10.77.0.0/16","cidr":"10.0.0.0/8"}`, "/iac/vpc/core/config@12:1:24: error [invalid-json] at /cidr"},
		{"two documents", `{"cidr":"10.77.0.0/16"} {"cidr":"10.0.0.0/8"}`, "/iac/vpc/core/config@12:1:25: error [invalid-json]"},
		{"not an object", `"10.77.0.0/16"`, "/iac/vpc/core/config@12:1:1: error [not-an-object]"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStage(t, wt.ExamplesDir, configs{"prod/vpc/core": tt.value})
			p := message.ChangeDetected{ChangeSetID: wt.FixedID(140 + i), Source: message.SourceParameter, Components: []message.ComponentRef{{Type: "vpc", Nickname: "core"}},
				Parameter: &message.ParameterWrite{Name: "/iac/vpc/core/config", Version: 12}}
			in := wt.FixedRoot(t, 140+i, message.TypeChangeDetected, "prod", iamActor, "parameter:/iac/vpc/core/config@12", p)
			out := s.handle(t, in)
			if len(out) != 1 || out[0].Type != message.TypeChangeResolved {
				t.Fatalf("got %v, want only change.resolved", types(out))
			}
			r := wt.PayloadOf[message.ChangeResolved](t, out[0])
			if !strings.HasPrefix(r.Rejected, tt.want) {
				t.Errorf("rejected %q, want it to start with %q", r.Rejected, tt.want)
			}
			if len(r.Roots) != 0 || len(r.Affected) != 0 || len(r.Waves) != 0 {
				t.Errorf("a rejected change set deploys nothing: roots %v affected %v waves %v", r.Roots, r.Affected, r.Waves)
			}
			cs, err := s.cs.Get(context.Background(), in.ID)
			if err != nil || cs.Rejected != r.Rejected || len(cs.Nodes) != 0 {
				t.Errorf("stored change set %+v, %v", cs, err)
			}
		})
	}
}

// A change of source parameter deploys the root's /config at the version it names, so it must
// name exactly that: a /config version of its one component. One naming no version (the current
// value deployed under no parameter's name), another parameter (the root's value at another
// parameter's version number), or several components is refused for good, naming the problem —
// never deployed under a lineage naming something else.
func TestAParameterChangeNamesItsComponentsConfig(t *testing.T) {
	t.Parallel()
	vpc, ecs := message.ComponentRef{Type: "vpc", Nickname: "core"}, message.ComponentRef{Type: "ecs-cluster", Nickname: "core"}
	tests := []struct {
		name       string
		components []message.ComponentRef
		parameter  *message.ParameterWrite
		want       string
	}{
		{"no parameter version", []message.ComponentRef{vpc}, nil, "names no parameter version"},
		{"version 0", []message.ComponentRef{vpc}, &message.ParameterWrite{Name: "/iac/vpc/core/config"}, "names version 0 of /iac/vpc/core/config: want 1 or more"},
		{"another component's config", []message.ComponentRef{vpc}, &message.ParameterWrite{Name: "/iac/ecs-cluster/core/config", Version: 3},
			"names /iac/ecs-cluster/core/config, which is not the /config of prod/vpc/core"},
		{"its runtime", []message.ComponentRef{vpc}, &message.ParameterWrite{Name: "/iac/vpc/core/runtime", Version: 3},
			"names /iac/vpc/core/runtime, which is not the /config of prod/vpc/core"},
		{"two components", []message.ComponentRef{vpc, ecs}, &message.ParameterWrite{Name: "/iac/vpc/core/config", Version: 3},
			"of /iac/vpc/core/config names 2 components"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStage(t, wt.ExamplesDir, configs{"prod/vpc/core": `{"cidr":"10.77.0.0/16"}`, "prod/ecs-cluster/core": `{}`})
			p := message.ChangeDetected{ChangeSetID: wt.FixedID(150 + i), Source: message.SourceParameter, Components: tt.components, Parameter: tt.parameter}
			in := wt.FixedRoot(t, 150+i, message.TypeChangeDetected, "prod", iamActor, "parameter:/iac/vpc/core/config@3", p)
			out, action, err := wt.Process(t, s.q, s.w.Handle, in)
			if action != pipeline.DeadLetter || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("%d messages, action %v, err %v; want it dead-lettered: %q", len(out), action, err, tt.want)
			}
			if cs, err := s.cs.Get(context.Background(), in.ID); !errors.Is(err, changeset.ErrNotFound) {
				t.Errorf("a change set was made: %+v (%v)", cs, err)
			}
		})
	}
}
