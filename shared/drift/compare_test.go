package drift

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
)

const head = "9f3c2a71e4b05d8c6a1f7e2b3d4c5a6978e1f0ab"

// component is a resolved component as model.Build makes it: canonical config and its hash.
func component(env, typ, nick, config string) *model.Component {
	v, err := decodeJSON([]byte(config))
	if err != nil {
		panic(err)
	}
	body, hash := model.Canonical(v)
	return &model.Component{Env: env, Type: typ, Nickname: nick, Resolved: body, Hash: hash,
		Files: []string{"iac/" + env + "/" + typ + "/" + nick + "/config.json"}}
}

// karmaWrote is a parameter as Karma publishes it: the value with its provenance.
func karmaWrote(name, value, what string, version int64) params.Parameter {
	return params.Parameter{Name: name, Value: value, Version: version, Description: params.Provenance(what, value), LastModifiedUser: "karma"}
}

func vpc() *model.Component {
	return component("prod", "vpc", "core", `{"cidr":"10.0.0.0/16","az_count":2}`)
}

func only(t *testing.T, c Compared) Finding {
	t.Helper()
	if len(c.Findings) != 1 {
		t.Fatalf("%d findings, want 1: %+v", len(c.Findings), c.Findings)
	}
	return c.Findings[0]
}

func TestConfigComparison(t *testing.T) {
	t.Parallel()
	c := vpc()
	name := "/iac/vpc/core/config"
	runtime := karmaWrote("/iac/vpc/core/runtime", `{"vpc_id":"vpc-1"}`, "deployment=dep-1 change=c", 1)
	tests := []struct {
		name       string
		config     *params.Parameter
		wantReason string // "" = no drift
		wantDetail string
	}{
		{"published by Karma", &params.Parameter{Name: name, Value: string(c.Resolved), Version: 1}, "", ""},
		{"same config, other key order and spacing", &params.Parameter{Name: name, Value: "{ \"az_count\": 2,\n \"cidr\": \"10.0.0.0/16\" }", Version: 2}, "", ""},
		{"missing", nil, message.DriftMissing, "/iac/vpc/core/config is missing: Git defines prod/vpc/core in iac/prod/vpc/core/config.json at 9f3c2a71e4b0"},
		{"a value changed", &params.Parameter{Name: name, Value: `{"cidr":"10.0.0.0/16","az_count":3}`, Version: 3, LastModifiedUser: "arn:ops"},
			message.DriftDiffers, "/iac/vpc/core/config version 3 (by arn:ops) is not the resolved config of iac/prod/vpc/core/config.json at 9f3c2a71e4b0: az_count differs"},
		{"keys added and removed", &params.Parameter{Name: name, Value: `{"cidr":"10.0.0.0/16","tags":{}}`, Version: 4},
			message.DriftDiffers, "az_count, tags differ"},
		{"not JSON", &params.Parameter{Name: name, Value: `cidr=10.0.0.0/16`, Version: 5}, message.DriftDiffers, "is not JSON"},
		{"not an object", &params.Parameter{Name: name, Value: `[1]`, Version: 6}, message.DriftDiffers, "(the whole value) differs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ps := []params.Parameter{runtime}
			if tt.config != nil {
				ps = append(ps, *tt.config)
			}
			got := CompareParameters(Inputs{Env: "prod", Prefix: "/iac", Commit: head, Components: []*model.Component{c}, Params: ps, State: State{}})
			if got.Compared != 1 {
				t.Errorf("compared %d components, want 1", got.Compared)
			}
			if tt.wantReason == "" {
				if len(got.Findings) != 0 {
					t.Fatalf("no drift expected, got %+v", got.Findings)
				}
				return
			}
			f := only(t, got)
			if f.Kind != message.DriftConfig || f.Reason != tt.wantReason || !strings.Contains(f.Detail, tt.wantDetail) {
				t.Errorf("finding %s/%s %q; want config/%s containing %q", f.Kind, f.Reason, f.Detail, tt.wantReason, tt.wantDetail)
			}
			if f.Expected != c.Hash || f.Commit != head || f.Component != "prod/vpc/core" || f.Env != "prod" || !strings.HasPrefix(f.DriftID, "drift-") {
				t.Errorf("finding %+v", f)
			}
			if tt.config != nil && (f.Parameter == nil || f.Parameter.Version != tt.config.Version || f.Found == "" || f.Found == c.Hash) {
				t.Errorf("found %q, parameter %+v", f.Found, f.Parameter)
			}
		})
	}
}

func TestOrphansAndBusyAndOnly(t *testing.T) {
	t.Parallel()
	c := vpc()
	other := component("prod", "s3-bucket", "assets", `{"name":"a"}`)
	ps := []params.Parameter{
		karmaWrote("/iac/vpc/core/config", string(c.Resolved), "commit=x", 1),
		karmaWrote("/iac/vpc/old/config", `{"cidr":"10.1.0.0/16"}`, "commit=x", 2),
		{Name: "/iac/environment", Value: "prod", Version: 1},
		{Name: "/iac/lambda/fn-a/runtime", Value: `{"arn":"x"}`, Version: 1}, // a sub-runtime: nobody's /config
	}
	in := Inputs{Env: "prod", Prefix: "/iac", Commit: head, Components: []*model.Component{c, other}, Params: ps,
		State: State{Busy: map[string]string{"prod/s3-bucket/assets": "cs-1"}, Last: map[string]Deployment{}}}
	got := CompareParameters(in)
	if got.Compared != 1 || len(got.Busy) != 1 || got.Busy[0] != (Busy{Component: "prod/s3-bucket/assets", ChangeSetID: "cs-1"}) {
		t.Errorf("compared %d, busy %+v: want vpc/core compared and s3-bucket/assets skipped (a change set deploys it)", got.Compared, got.Busy)
	}
	f := only(t, got)
	if f.Component != "prod/vpc/old" || f.Reason != message.DriftOrphan || f.Parameter.Name != "/iac/vpc/old/config" ||
		!strings.Contains(f.Detail, "Git does not define prod/vpc/old") {
		t.Errorf("orphan finding %+v", f)
	}
	in.Only = "prod/vpc/core"
	if got := CompareParameters(in); len(got.Findings) != 0 || got.Compared != 1 {
		t.Errorf("only prod/vpc/core: %+v", got)
	}
	in.Only = "prod/vpc/old"
	if got := CompareParameters(in); len(got.Findings) != 1 || got.Compared != 0 {
		t.Errorf("only the orphan: %+v", got)
	}
}

func TestRuntimeComparison(t *testing.T) {
	t.Parallel()
	c := vpc()
	cfg := karmaWrote("/iac/vpc/core/config", string(c.Resolved), "deployment=dep-1 change=c", 1)
	published := `{"private_subnet_ids":["s-1"],"vpc_id":"vpc-1"}`
	_, hash := model.Canonical(map[string]any{"private_subnet_ids": []any{"s-1"}, "vpc_id": "vpc-1"})
	last := Deployment{ID: "dep-1", ChangeSetID: "cs-1", Commit: head, RuntimeHash: hash, Runtime: json.RawMessage(published)}
	name := "/iac/vpc/core/runtime"
	tests := []struct {
		name       string
		runtime    *params.Parameter
		config     *params.Parameter
		last       *Deployment
		wantReason string
		wantDetail string
		wantExpect string
	}{
		{"Karma's write", ptr(karmaWrote(name, published, "deployment=dep-1 change=c", 1)), &cfg, &last, "", "", ""},
		{"overwritten without a description (embedded store)", &params.Parameter{Name: name, Value: `{"private_subnet_ids":["s-9"],"vpc_id":"vpc-1"}`, Version: 2, LastModifiedUser: "ops"},
			&cfg, &last, message.DriftDiffers, "/iac/vpc/core/runtime version 2 (by ops) is not what Karma published (dep-1): private_subnet_ids differs", hash[:16]},
		{"overwritten, Karma's description kept (SSM)", &params.Parameter{Name: name, Value: `{"vpc_id":"vpc-2"}`, Version: 2,
			Description: params.Provenance("deployment=dep-0 change=c0", published)}, &cfg, nil, message.DriftDiffers, "is not what Karma published (dep-0)", params.ValueHash(published)},
		{"missing after a deployment", nil, &cfg, &last, message.DriftMissing, "/iac/vpc/core/runtime is missing, though Karma deployed prod/vpc/core (dep-1)", hash[:16]},
		{"missing, the deployment known from the config's provenance", nil, &cfg, nil, message.DriftMissing, "(dep-1)", ""},
		{"missing, never deployed by Karma", nil, ptr(karmaWrote("/iac/vpc/core/config", string(c.Resolved), "commit=x file=y", 1)), nil, "", "", ""},
		{"someone else's runtime, never deployed by Karma", &params.Parameter{Name: name, Value: `{"placeholder":true}`, Version: 1}, nil, nil, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var ps []params.Parameter
			for _, p := range []*params.Parameter{tt.runtime, tt.config} {
				if p != nil {
					ps = append(ps, *p)
				}
			}
			st := State{Last: map[string]Deployment{}}
			if tt.last != nil {
				st.Last["prod/vpc/core"] = *tt.last
			}
			in := Inputs{Env: "prod", Prefix: "/iac", Commit: head, Components: []*model.Component{c}, Params: ps, State: st}
			var rt []Finding
			for _, f := range CompareParameters(in).Findings {
				if f.Kind == message.DriftRuntime {
					rt = append(rt, f)
				}
			}
			if tt.wantReason == "" {
				if len(rt) != 0 {
					t.Fatalf("no runtime drift expected, got %+v", rt)
				}
				return
			}
			if len(rt) != 1 {
				t.Fatalf("%d runtime findings, want 1", len(rt))
			}
			f := rt[0]
			if f.Reason != tt.wantReason || !strings.Contains(f.Detail, tt.wantDetail) || f.Expected != tt.wantExpect {
				t.Errorf("finding %s %q expected %q; want %s containing %q, expected %q", f.Reason, f.Detail, f.Expected, tt.wantReason, tt.wantDetail, tt.wantExpect)
			}
			if tt.runtime != nil && f.Found != params.ValueHash(tt.runtime.Value) {
				t.Errorf("found %q, want the value's provenance hash", f.Found)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// The same drift seen again has the same id; another version, another value or a deployment in
// between make it another drift.
func TestDriftIDs(t *testing.T) {
	t.Parallel()
	c := vpc()
	id := func(version int64, value string, last string) string {
		st := State{Last: map[string]Deployment{}}
		if last != "" {
			st.Last["prod/vpc/core"] = Deployment{ID: last, RuntimeHash: strings.Repeat("a", 64)}
		}
		ps := []params.Parameter{{Name: "/iac/vpc/core/config", Value: value, Version: version},
			karmaWrote("/iac/vpc/core/runtime", "{}", "deployment=dep", 1)}
		return only(t, CompareParameters(Inputs{Env: "prod", Prefix: "/iac", Commit: head, Components: []*model.Component{c}, Params: ps, State: st})).DriftID
	}
	first := id(3, `{"a":1}`, "dep-1")
	if again := id(3, `{"a":1}`, "dep-1"); again != first {
		t.Errorf("the same drift seen twice: %s then %s", first, again)
	}
	for name, other := range map[string]string{
		"another version":          id(4, `{"a":1}`, "dep-1"),
		"another value":            id(3, `{"a":2}`, "dep-1"),
		"after another deployment": id(3, `{"a":1}`, "dep-2"),
	} {
		if other == first {
			t.Errorf("%s: same id %s", name, other)
		}
	}
}

// A rollback stands while the head still gives the component the config Git gave it when it
// was rolled back: its /config, holding the rolled-back config, is not drift (and so is not
// corrected back to Git). A commit to the component since, a /config changed after the
// rollback, or a rollback recorded before the hash was kept are compared with Git as usual.
func TestAStandingRollbackIsNotDrift(t *testing.T) {
	t.Parallel()
	c := vpc()
	old := component("prod", "vpc", "core", `{"cidr":"10.0.0.0/16","az_count":1}`)
	name := "/iac/vpc/core/config"
	runtime := karmaWrote("/iac/vpc/core/runtime", `{"vpc_id":"vpc-1"}`, "deployment=dep-r change=c", 3)
	rolledBack := Deployment{ID: "dep-r", ChangeSetID: "cs-r", Config: old.Resolved, ConfigHash: old.Hash, RuntimeHash: "h", Runtime: json.RawMessage(`{"vpc_id":"vpc-1"}`),
		RolledBackTo: "dep-first", GitConfigHash: c.Hash}
	tests := []struct {
		name   string
		last   func(d Deployment) Deployment
		config string
		stands bool
	}{
		{"the rollback stands", func(d Deployment) Deployment { return d }, string(old.Resolved), true},
		{"same config, other key order", func(d Deployment) Deployment { return d }, `{ "az_count": 1, "cidr": "10.0.0.0/16" }`, true},
		{"committed to since", func(d Deployment) Deployment { d.GitConfigHash = old.Hash; return d }, string(old.Resolved), false},
		{"/config changed after the rollback", func(d Deployment) Deployment { return d }, `{"cidr":"10.0.0.0/16","az_count":5}`, false},
		{"a rollback from before the hash was kept", func(d Deployment) Deployment { d.GitConfigHash = ""; return d }, string(old.Resolved), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ps := []params.Parameter{runtime, {Name: name, Value: tt.config, Version: 4, LastModifiedUser: "karma"}}
			st := State{Last: map[string]Deployment{"prod/vpc/core": tt.last(rolledBack)}}
			got := CompareParameters(Inputs{Env: "prod", Prefix: "/iac", Commit: head, Components: []*model.Component{c}, Params: ps, State: st})
			if !tt.stands {
				if f := only(t, got); f.Kind != message.DriftConfig || f.Reason != message.DriftDiffers || len(got.RolledBack) != 0 {
					t.Errorf("finding %+v, rolled back %+v: want config drift and no standing rollback", f, got.RolledBack)
				}
				return
			}
			want := []RolledBack{{Component: "prod/vpc/core", DeploymentID: "dep-r", ChangeSetID: "cs-r", RolledBackTo: "dep-first"}}
			if len(got.Findings) != 0 || !reflect.DeepEqual(got.RolledBack, want) || got.Compared != 1 {
				t.Errorf("findings %+v, rolled back %+v, compared %d; want no drift, %+v, 1", got.Findings, got.RolledBack, got.Compared, want)
			}
		})
	}
}

// The /runtime of a component whose rollback stands is still compared (someone may have written
// it), and its drift says the rollback stands: correcting it would deploy the head's config over
// the rollback (Recorder does not).
func TestDriftUnderAStandingRollbackNamesIt(t *testing.T) {
	t.Parallel()
	c := vpc()
	old := component("prod", "vpc", "core", `{"cidr":"10.0.0.0/16","az_count":1}`)
	rolledBack := Deployment{ID: "dep-r", ChangeSetID: "cs-r", Config: old.Resolved, ConfigHash: old.Hash, RuntimeHash: "h", Runtime: json.RawMessage(`{"vpc_id":"vpc-1"}`),
		RolledBackTo: "dep-first", GitConfigHash: c.Hash}
	ps := []params.Parameter{{Name: "/iac/vpc/core/runtime", Value: `{"vpc_id":"vpc-9"}`, Version: 4, LastModifiedUser: "mallory"},
		{Name: "/iac/vpc/core/config", Value: string(old.Resolved), Version: 4, LastModifiedUser: "karma"}}
	got := CompareParameters(Inputs{Env: "prod", Prefix: "/iac", Commit: head, Components: []*model.Component{c}, Params: ps,
		State: State{Last: map[string]Deployment{"prod/vpc/core": rolledBack}}})
	f := only(t, got)
	want := &RolledBack{Component: "prod/vpc/core", DeploymentID: "dep-r", ChangeSetID: "cs-r", RolledBackTo: "dep-first"}
	if f.Kind != message.DriftRuntime || !reflect.DeepEqual(f.Rollback, want) {
		t.Errorf("finding %+v (rollback %+v): want runtime drift naming the standing rollback %+v", f, f.Rollback, want)
	}
}
