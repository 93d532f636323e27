package ingest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/workers/ingest"
)

const (
	sha1 = "512423cb3a4857a38f472862b51e4ab1a1730f06"
	sha2 = "d5e0ba2d9b813fa5d15023d7aa615534cda694ac"
)

// checkRoot checks what every change.detected ingest makes has in common: a root whose id is
// its correlation id and its change set id.
func checkRoot(t *testing.T, e message.Envelope) message.ChangeDetected {
	t.Helper()
	if e.Type != message.TypeChangeDetected || e.Version != message.Latest[message.TypeChangeDetected] {
		t.Errorf("type %s v%d, want change.detected v%d", e.Type, e.Version, message.Latest[message.TypeChangeDetected])
	}
	if e.CorrelationID != e.ID || e.CausationID != "" {
		t.Errorf("correlation %q, causation %q: a root correlates to itself (%s) and has no cause", e.CorrelationID, e.CausationID, e.ID)
	}
	p := wt.PayloadOf[message.ChangeDetected](t, e)
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
		req    ingest.Request
		wantID string // request id; "" = the message id
	}{
		{"two components", ingest.Request{ID: "cr-7", Env: "prod", Actor: ada, AutoApprove: true, Configs: map[string][]byte{
			"vpc/core":         []byte("{\n  \"cidr\": \"10.1.0.0/16\",\n  \"az_count\": 3\n}"),
			"ecs-cluster/core": []byte(`{"service_discovery_vpc_id": "${vpc/core.runtime.vpc_id}"}`),
		}}, "cr-7"},
		{"request id defaults to the message id", ingest.Request{Env: "dev", Actor: ada, Configs: map[string][]byte{
			"s3-bucket/assets": []byte(`{"versioning": true}`),
		}}, ""},
	}
	// Karma's description kept by Parameter Store while someone else overwrote the value: a change.
	if msgs, err := ingest.FromParameter(ingest.ParameterChange{Prefix: "/iac", Name: "/iac/vpc/core/config", Version: 6,
		Description: params.Provenance("commit="+sha1+" file=x", `{"a":1}`), Value: []byte(`{"a":2}`)}); err != nil || len(msgs) != 1 {
		t.Errorf("a stale Karma description over someone else's value must count as a change: %v %v", msgs, err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := ingest.FromRequest(tt.req)
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
			wt.CheckGolden(t, "request_"+goldenName(tt.name), []message.Envelope{e}, map[string]string{e.ID: "root-id"})
		})
	}
}

func TestFromRequestInvalid(t *testing.T) {
	t.Parallel()
	ok := []byte(`{"a":1}`)
	tests := []struct {
		name string
		req  ingest.Request
	}{
		{"no environment", ingest.Request{Configs: map[string][]byte{"vpc/core": ok}}},
		{"no component", ingest.Request{Env: "prod"}},
		{"ref without slash", ingest.Request{Env: "prod", Configs: map[string][]byte{"vpc": ok}}},
		{"ref with two slashes", ingest.Request{Env: "prod", Configs: map[string][]byte{"vpc/core/x": ok}}},
		{"ref without type", ingest.Request{Env: "prod", Configs: map[string][]byte{"/core": ok}}},
		{"ref without nickname", ingest.Request{Env: "prod", Configs: map[string][]byte{"vpc/": ok}}},
		{"config not JSON", ingest.Request{Env: "prod", Configs: map[string][]byte{"vpc/core": []byte(`{"cidr":`)}}},
		{"config an array", ingest.Request{Env: "prod", Configs: map[string][]byte{"vpc/core": []byte(`[1]`)}}},
		{"config null", ingest.Request{Env: "prod", Configs: map[string][]byte{"vpc/core": []byte(`null`)}}},
		{"config a string", ingest.Request{Env: "prod", Configs: map[string][]byte{"vpc/core": []byte(`"x"`)}}},
		{"config not UTF-8", ingest.Request{Env: "prod", Configs: map[string][]byte{"vpc/core": []byte("{\"name\":\"caf\xe9\"}")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := ingest.FromRequest(tt.req); !errors.Is(err, ingest.ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
	_, err := ingest.FromRequest(ingest.Request{Env: "prod", Configs: map[string][]byte{"vpc/core": []byte("{\"name\":\"caf\xe9\"}")}})
	if err == nil || !strings.Contains(err.Error(), "vpc/core") || !strings.Contains(err.Error(), "invalid UTF-8 at byte offset 12") {
		t.Errorf("invalid UTF-8: %v, want the component and the byte offset named", err)
	}
}

func TestFromCommit(t *testing.T) {
	t.Parallel()
	author := "Ada Lovelace <ada@example.com>"
	tests := []struct {
		name       string
		commit     ingest.Commit
		modulesDir string
		wantFiles  []string // nil: no message
		wantRemove []message.ComponentRef
	}{
		{
			name: "base layer, module, account, removed config; the rest ignored",
			commit: ingest.Commit{SHA: sha1, Author: author, Message: "Raise the prod VPC size\n\nAnd drop the old zone.", Branch: "main",
				Repo: "https://github.com/usekarma/karma-examples-config", AutoApprove: true, Files: []ingest.FileChange{
					{Path: "iac/_base/vpc/core/config.json"},
					{Path: "components/vpc/main.tf"},
					{Path: "iac/prod/route53-zone/main/config.json", Removed: true},
					{Path: "iac/_base/s3-bucket/assets/config.json", Removed: true}, // a base layer is no component
					{Path: "./iac/dev/ecs-service/api/config.json"},
					{Path: "account_environments/prod.json"},
					{Path: "README.md"},
					{Path: "docs/guide.md"},
					{Path: ".github/workflows/ci.yml"},
					{Path: "iac/prod/vpc/core/NOTES.txt"}, // not JSON
					{Path: "components-old/vpc/main.tf"},  // not the modules folder
				}},
			modulesDir: "components/",
			wantFiles: []string{"account_environments/prod.json", "components/vpc/main.tf", "iac/_base/s3-bucket/assets/config.json",
				"iac/_base/vpc/core/config.json", "iac/dev/ecs-service/api/config.json", "iac/prod/route53-zone/main/config.json"},
			wantRemove: []message.ComponentRef{{Type: "route53-zone", Nickname: "main"}},
		},
		{
			name:       "one env file",
			commit:     ingest.Commit{SHA: sha2, Author: author, Message: "prod vpc", Files: []ingest.FileChange{{Path: "iac/prod/vpc/core/config.json"}}},
			modulesDir: "components",
			wantFiles:  []string{"iac/prod/vpc/core/config.json"},
		},
		{
			name:       "only files outside iac",
			commit:     ingest.Commit{SHA: sha1, Author: author, Files: []ingest.FileChange{{Path: "README.md"}, {Path: "scripts/demo.sh"}, {Path: "iac/README.md"}}},
			modulesDir: "components",
		},
		{
			name:   "module files without a modules folder",
			commit: ingest.Commit{SHA: sha1, Author: author, Files: []ingest.FileChange{{Path: "components/vpc/main.tf"}}},
		},
		{
			name:   "no files",
			commit: ingest.Commit{SHA: sha1, Author: author},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			msgs, err := ingest.FromCommit(tt.commit, tt.modulesDir)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantFiles == nil {
				if msgs != nil {
					t.Fatalf("got %d messages, want none", len(msgs))
				}
				return
			}
			if len(msgs) != 1 {
				t.Fatalf("got %d messages, want 1", len(msgs))
			}
			e := msgs[0]
			p := checkRoot(t, e)
			if e.Env != "" {
				t.Errorf("env %q: a commit concerns every env its files touch", e.Env)
			}
			if e.IdempotencyKey != "git:"+tt.commit.SHA || e.Actor != (message.Actor{Kind: "git", Name: tt.commit.Author}) {
				t.Errorf("key %q actor %+v", e.IdempotencyKey, e.Actor)
			}
			if !slices.Equal(p.Files, tt.wantFiles) {
				t.Errorf("files\n got %q\nwant %q", p.Files, tt.wantFiles)
			}
			if !slices.Equal(p.Removed, tt.wantRemove) {
				t.Errorf("removed %v, want %v", p.Removed, tt.wantRemove)
			}
			if p.Components == nil || len(p.Components) != 0 {
				t.Errorf("components %v, want [] for git", p.Components)
			}
			if p.Commit == nil || p.Commit.SHA != tt.commit.SHA || bytes.ContainsRune([]byte(p.Commit.Message), '\n') {
				t.Errorf("commit %+v: want the sha and the message's first line", p.Commit)
			}
			wt.CheckGolden(t, "commit_"+goldenName(tt.name), msgs, map[string]string{e.ID: "root-id"})
		})
	}
}

func TestFromCommitInvalid(t *testing.T) {
	t.Parallel()
	_, err := ingest.FromCommit(ingest.Commit{Files: []ingest.FileChange{{Path: "iac/prod/vpc/core/config.json"}}}, "components")
	if !errors.Is(err, ingest.ErrInvalid) {
		t.Errorf("no sha: err = %v, want ErrInvalid", err)
	}
}

func TestFromParameter(t *testing.T) {
	t.Parallel()
	arn := "arn:aws:iam::123456789012:user/ada"
	prev := []byte(`{"vpc_id":"vpc-1","private_subnet_ids":["subnet-a","subnet-b"],"flow_log_group":"/vpc/core","retired":1,"count":2}`)
	tests := []struct {
		name        string
		pc          ingest.ParameterChange
		wantSource  string
		wantKeys    []string // for runtime; nil = no changed_keys
		wantKeysRaw string   // how changed_keys appears on the wire ("" = absent)
	}{
		{
			name:       "config written outside karma",
			pc:         ingest.ParameterChange{Env: "prod", Prefix: "/iac", Name: "/iac/vpc/core/config", Version: 12, Operation: "Update", ModifiedBy: arn},
			wantSource: message.SourceParameter,
		},
		{
			name: "runtime with changed keys",
			pc: ingest.ParameterChange{Env: "prod", Prefix: "/iac", Name: "/iac/vpc/core/runtime", Version: 8, Operation: "Update", ModifiedBy: arn,
				Previous: prev, Value: []byte(`{"count":2.0,"flow_log_group":"/vpc/core","private_subnet_ids":["subnet-a", "subnet-b"],"vpc_id":"vpc-2","added":true}`)},
			wantSource:  message.SourceRuntime,
			wantKeys:    []string{"added", "retired", "vpc_id"},
			wantKeysRaw: `["added","retired","vpc_id"]`,
		},
		{
			name: "runtime where nothing changed",
			pc: ingest.ParameterChange{Env: "prod", Prefix: "/iac/", Name: "/iac/vpc/core/runtime", Version: 9, Operation: "Update", ModifiedBy: arn,
				Previous: prev, Value: []byte(" {\"retired\": 1, \"count\": 2, \"vpc_id\": \"vpc-1\", \"flow_log_group\": \"/vpc/core\", \"private_subnet_ids\": [\"subnet-a\",\"subnet-b\"]}")},
			wantSource:  message.SourceRuntime,
			wantKeys:    []string{},
			wantKeysRaw: `[]`,
		},
		{
			name:        "runtime created",
			pc:          ingest.ParameterChange{Env: "dev", Prefix: "/iac", Name: "/iac/s3-bucket/assets/runtime", Version: 1, Operation: "Create", Value: []byte(`{"bucket_name":"b","bucket_arn":"arn:aws:s3:::b"}`)},
			wantSource:  message.SourceRuntime,
			wantKeys:    []string{"bucket_arn", "bucket_name"},
			wantKeysRaw: `["bucket_arn","bucket_name"]`,
		},
		{
			name:        "runtime that was a bare string",
			pc:          ingest.ParameterChange{Env: "dev", Prefix: "/iac", Name: "/iac/vpc/core/runtime", Version: 3, Previous: []byte(`vpc-0abc`), Value: []byte(`{"vpc_id":"vpc-0abc"}`)},
			wantSource:  message.SourceRuntime,
			wantKeys:    []string{"vpc_id"},
			wantKeysRaw: `["vpc_id"]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			msgs, err := ingest.FromParameter(tt.pc)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 1 {
				t.Fatalf("got %d messages, want 1", len(msgs))
			}
			e := msgs[0]
			p := checkRoot(t, e)
			if p.Source != tt.wantSource || e.Env != tt.pc.Env {
				t.Errorf("source %q env %q, want %q %q", p.Source, e.Env, tt.wantSource, tt.pc.Env)
			}
			if want := tt.wantSource + ":" + tt.pc.Name + "@" + itoa(tt.pc.Version); e.IdempotencyKey != want {
				t.Errorf("key %q, want %q", e.IdempotencyKey, want)
			}
			if p.Parameter == nil || p.Parameter.Name != tt.pc.Name || p.Parameter.Version != tt.pc.Version || p.Parameter.ModifiedBy != tt.pc.ModifiedBy {
				t.Errorf("parameter %+v", p.Parameter)
			}
			wantActor := message.Actor{Kind: "iam", Name: tt.pc.ModifiedBy}
			if wantActor.Name == "" {
				wantActor.Name = "unknown (Parameter Store does not say)"
			}
			if e.Actor != wantActor {
				t.Errorf("actor %+v, want %+v", e.Actor, wantActor)
			}
			if !slices.Equal(p.ChangedKeys, tt.wantKeys) || (p.ChangedKeys == nil) != (tt.wantKeys == nil) {
				t.Errorf("changed keys %#v, want %#v", p.ChangedKeys, tt.wantKeys)
			}
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(e.Payload, &raw); err != nil {
				t.Fatal(err)
			}
			if got := string(raw["changed_keys"]); got != tt.wantKeysRaw {
				t.Errorf("changed_keys on the wire = %s, want %s", orAbsent(got), orAbsent(tt.wantKeysRaw))
			}
			wt.CheckGolden(t, "parameter_"+goldenName(tt.name), msgs, map[string]string{e.ID: "root-id"})
		})
	}
}

func orAbsent(s string) string {
	if s == "" {
		return "(absent)"
	}
	return s
}

func TestFromParameterIgnored(t *testing.T) {
	t.Parallel()
	value := []byte(`{"vpc_id":"vpc-2"}`)
	tests := []struct {
		name string
		pc   ingest.ParameterChange
	}{
		{"environment binding", ingest.ParameterChange{Prefix: "/iac", Name: "/iac/environment", Version: 1}},
		{"component path without kind", ingest.ParameterChange{Prefix: "/iac", Name: "/iac/vpc/core", Version: 1}},
		{"other leaf", ingest.ParameterChange{Prefix: "/iac", Name: "/iac/vpc/core/outputs", Version: 1}},
		{"too deep", ingest.ParameterChange{Prefix: "/iac", Name: "/iac/vpc/core/x/config", Version: 1}},
		{"outside the prefix", ingest.ParameterChange{Prefix: "/iac", Name: "/other/vpc/core/config", Version: 1}},
		{"prefix as a name prefix only", ingest.ParameterChange{Prefix: "/iac", Name: "/iacx/vpc/core/config", Version: 1}},
		{"delete", ingest.ParameterChange{Prefix: "/iac", Name: "/iac/vpc/core/config", Version: 4, Operation: "Delete"}},
		{"label", ingest.ParameterChange{Prefix: "/iac", Name: "/iac/vpc/core/config", Version: 4, Operation: "LabelParameterVersion"}},
		{"runtime karma wrote", ingest.ParameterChange{Prefix: "/iac", Name: "/iac/vpc/core/runtime", Version: 5, Operation: "Update",
			Description: params.Provenance("deployment=dep-9380611eaf9e90af change=019cebab-87be-76cd-9c22-2d20c23174d0", string(value)), Value: value}},
		{"config karma wrote", ingest.ParameterChange{Prefix: "/iac", Name: "/iac/vpc/core/config", Version: 5,
			Description: params.Provenance("commit="+sha1+" file=iac/prod/vpc/core/config.json", "")}},
		{"karma provenance even with an invalid runtime", ingest.ParameterChange{Prefix: "/iac", Name: "/iac/vpc/core/runtime", Version: 5,
			Description: params.Provenance("deployment=dep-1", "not json"), Value: []byte("not json")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			msgs, err := ingest.FromParameter(tt.pc)
			if err != nil || msgs != nil {
				t.Errorf("got %d messages, %v; want nothing", len(msgs), err)
			}
		})
	}
	// Someone else's description does not hide the change.
	msgs, err := ingest.FromParameter(ingest.ParameterChange{Prefix: "/iac", Name: "/iac/vpc/core/config", Version: 5, Description: "hotfix by ada (karma: later)"})
	if err != nil || len(msgs) != 1 {
		t.Errorf("a non-karma description: %d messages, %v; want 1", len(msgs), err)
	}
}

func TestFromParameterInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		pc   ingest.ParameterChange
	}{
		{"no name", ingest.ParameterChange{Prefix: "/iac", Version: 1}},
		{"version 0", ingest.ParameterChange{Prefix: "/iac", Name: "/iac/vpc/core/config"}},
		{"negative version", ingest.ParameterChange{Prefix: "/iac", Name: "/iac/vpc/core/config", Version: -1}},
		{"runtime not JSON", ingest.ParameterChange{Prefix: "/iac", Name: "/iac/vpc/core/runtime", Version: 2, Value: []byte("vpc-123")}},
		{"runtime an array", ingest.ParameterChange{Prefix: "/iac", Name: "/iac/vpc/core/runtime", Version: 2, Value: []byte(`["a"]`)}},
		{"runtime empty", ingest.ParameterChange{Prefix: "/iac", Name: "/iac/vpc/core/runtime", Version: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := ingest.FromParameter(tt.pc); !errors.Is(err, ingest.ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestChangedKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		prev, cur string
		want      []string
		wantErr   bool
	}{
		{"no previous", "", `{"b":1,"a":2}`, []string{"a", "b"}, false},
		{"same", `{"a":1,"b":[1,2]}`, `{"b":[1,2],"a":1}`, []string{}, false},
		{"same number spelled differently", `{"a":1}`, `{"a":1.0}`, []string{}, false},
		{"same object, other key order", `{"a":{"x":1,"y":2}}`, `{"a":{"y":2,"x":1}}`, []string{}, false},
		{"changed", `{"a":1,"b":2}`, `{"a":1,"b":3}`, []string{"b"}, false},
		{"added and removed", `{"a":1,"gone":2}`, `{"a":1,"new":2}`, []string{"gone", "new"}, false},
		{"array order matters", `{"a":[1,2]}`, `{"a":[2,1]}`, []string{"a"}, false},
		{"previous not an object", `"bare"`, `{"a":1}`, []string{"a"}, false},
		{"empty to empty", `{}`, `{}`, []string{}, false},
		{"current not JSON", `{}`, `nope`, nil, true},
		{"current an array", `{}`, `[1]`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ingest.ChangedKeys([]byte(tt.prev), []byte(tt.cur))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if got == nil || !slices.Equal(got, tt.want) {
				t.Errorf("ChangedKeys = %#v, want %#v (never nil)", got, tt.want)
			}
		})
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

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

// Inputs ingest accepts must give messages that fit the published contract (schemas/): the
// consumers only Parse and Decode, so nothing downstream would notice.
func TestAcceptedInputsGiveSchemaValidMessages(t *testing.T) {
	t.Parallel()
	ada := message.Actor{Kind: "cli", Name: "ada"}
	one := func(e message.Envelope, err error) ([]message.Envelope, error) { return []message.Envelope{e}, err }
	tests := []struct {
		name string
		run  func() ([]message.Envelope, error)
	}{
		{"commit with an abbreviated sha", func() ([]message.Envelope, error) {
			return ingest.FromCommit(ingest.Commit{SHA: "512423c", Author: "ada", Files: []ingest.FileChange{{Path: "iac/prod/vpc/core/config.json"}}}, "")
		}},
		{"commit without author", func() ([]message.Envelope, error) {
			return ingest.FromCommit(ingest.Commit{SHA: sha1, Files: []ingest.FileChange{{Path: "iac/prod/vpc/core/config.json"}}}, "")
		}},
		{"request for an upper-case type", func() ([]message.Envelope, error) {
			return one(ingest.FromRequest(ingest.Request{Env: "prod", Actor: ada, Configs: map[string][]byte{"VPC/core": []byte(`{}`)}}))
		}},
		{"request for an env with a slash", func() ([]message.Envelope, error) {
			return one(ingest.FromRequest(ingest.Request{Env: "prod/eu", Actor: ada, Configs: map[string][]byte{"vpc/core": []byte(`{}`)}}))
		}},
		{"parameter of an upper-case type", func() ([]message.Envelope, error) {
			return ingest.FromParameter(ingest.ParameterChange{Env: "prod", Prefix: "/iac", Name: "/iac/VPC/core/config", Version: 1})
		}},
		{"runtime with an empty key", func() ([]message.Envelope, error) {
			return ingest.FromParameter(ingest.ParameterChange{Env: "prod", Prefix: "/iac", Name: "/iac/vpc/core/runtime", Version: 1, Value: []byte(`{"":1}`)})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs, err := tt.run()
			if errors.Is(err, ingest.ErrInvalid) {
				return // rejected: fine
			}
			if err != nil {
				t.Fatal(err)
			}
			wt.ValidateAll(t, msgs)
		})
	}
}
