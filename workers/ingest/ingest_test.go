package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/message/messagetest"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/trigger"
	"github.com/usekarma/karma/workers/ingest"
)

const (
	sha1 = "512423cb3a4857a38f472862b51e4ab1a1730f06"
	sha2 = "d5e0ba2d9b813fa5d15023d7aa615534cda694ac"
)

// checkChange checks what every change.detected ingest makes has in common: the change its
// trigger names — its id, correlation id and change set id are the trigger's correlation id —
// caused by the trigger.
func checkChange(t *testing.T, in message.Envelope, out []message.Envelope) message.ChangeDetected {
	t.Helper()
	if len(out) != 1 {
		t.Fatalf("got %d messages, want 1", len(out))
	}
	e := out[0]
	if e.Type != message.TypeChangeDetected || e.Version != message.Latest[message.TypeChangeDetected] {
		t.Errorf("type %s v%d, want change.detected v%d", e.Type, e.Version, message.Latest[message.TypeChangeDetected])
	}
	if e.ID != in.CorrelationID || e.CorrelationID != in.CorrelationID || e.CausationID != in.ID {
		t.Errorf("id %s correlation %s causation %s: want the trigger's change %s, caused by the trigger %s", e.ID, e.CorrelationID, e.CausationID, in.CorrelationID, in.ID)
	}
	p := wt.PayloadOf[message.ChangeDetected](t, e)
	if p.ChangeSetID != e.ID {
		t.Errorf("change_set_id %q, want the message id %q", p.ChangeSetID, e.ID)
	}
	wt.ValidateAll(t, out)
	return p
}

func TestPush(t *testing.T) {
	t.Parallel()
	author := "Ada Lovelace <ada@example.com>"
	tests := []struct {
		name       string
		push       trigger.Push
		modulesDir string
		wantFiles  []string
		wantRemove []message.ComponentRef
	}{
		{
			name: "base layer, module, account, removed config; the rest ignored",
			push: trigger.Push{SHA: sha1, Author: author, Message: "Raise the prod VPC size\n\nAnd drop the old zone.", Branch: "main",
				Repo: "https://github.com/usekarma/karma-examples-config", AutoApprove: true, Files: []trigger.FileChange{
					{Path: "iac/_base/vpc/core/config.json"},
					{Path: "components/vpc/main.tf"},
					{Path: "iac/prod/route53-zone/main/config.json", Removed: true},
					{Path: "iac/_base/s3-bucket/assets/config.json", Removed: true}, // a base layer is no component
					{Path: "./iac/dev/ecs-service/api/config.json"},
					{Path: "account_environments/prod.json"},
					{Path: "README.md"},
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
			push:       trigger.Push{SHA: sha2, Author: author, Message: "prod vpc", Files: []trigger.FileChange{{Path: "iac/prod/vpc/core/config.json"}}},
			modulesDir: "components",
			wantFiles:  []string{"iac/prod/vpc/core/config.json"},
		},
	}
	w := &ingest.Worker{Prefix: "/iac"} // a push reads no parameter
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in, err := trigger.GitPushed(tt.push, tt.modulesDir, "")
			if err != nil {
				t.Fatal(err)
			}
			out, err := w.Handle(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			p := checkChange(t, in, out)
			e := out[0]
			if e.Env != "" {
				t.Errorf("env %q: a commit concerns every env its files touch", e.Env)
			}
			if e.IdempotencyKey != "git:"+tt.push.SHA || e.Actor != (message.Actor{Kind: "git", Name: tt.push.Author}) {
				t.Errorf("key %q actor %+v", e.IdempotencyKey, e.Actor)
			}
			if !slices.Equal(p.Files, tt.wantFiles) || !slices.Equal(p.Removed, tt.wantRemove) {
				t.Errorf("files %q removed %v\nwant %q %v", p.Files, p.Removed, tt.wantFiles, tt.wantRemove)
			}
			if p.Components == nil || len(p.Components) != 0 || p.AutoApprove != tt.push.AutoApprove {
				t.Errorf("components %v auto %v, want [] for git", p.Components, p.AutoApprove)
			}
			if p.Commit == nil || p.Commit.SHA != tt.push.SHA || bytes.ContainsRune([]byte(p.Commit.Message), '\n') {
				t.Errorf("commit %+v: want the sha and the message's first line", p.Commit)
			}
			wt.CheckGolden(t, "commit_"+goldenName(tt.name), out, map[string]string{e.ID: "root-id", in.ID: "trigger"})
		})
	}
}

// A trigger delivered twice — or handled again after a crash — is the same change: same id,
// same idempotency key, so resolve does it once.
func TestPushTwiceIsOneChange(t *testing.T) {
	t.Parallel()
	in, err := trigger.GitPushed(trigger.Push{SHA: sha1, Author: "ada", Files: []trigger.FileChange{{Path: "iac/prod/vpc/core/config.json"}}}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	w := &ingest.Worker{}
	a, err1 := w.Handle(context.Background(), in)
	b, err2 := w.Handle(context.Background(), in)
	if err1 != nil || err2 != nil || len(a) != 1 || len(b) != 1 || a[0].ID != b[0].ID || a[0].IdempotencyKey != b[0].IdempotencyKey {
		t.Errorf("twice: %v %v / %v %v", a, err1, b, err2)
	}
}

func TestPushPermanent(t *testing.T) {
	t.Parallel()
	good := func() message.GitPushed {
		return message.GitPushed{Commit: message.Commit{SHA: sha1, Author: "ada"}, Files: []string{"iac/prod/vpc/core/config.json"}}
	}
	tests := map[string]func(*message.GitPushed, *message.Envelope){
		"abbreviated sha":       func(p *message.GitPushed, _ *message.Envelope) { p.Commit.SHA = "512423c" },
		"no author":             func(p *message.GitPushed, _ *message.Envelope) { p.Commit.Author = " " },
		"before not a sha":      func(p *message.GitPushed, _ *message.Envelope) { p.Commit.Before = "HEAD" },
		"nothing listed":        func(p *message.GitPushed, _ *message.Envelope) { p.Files = nil },
		"file outside the repo": func(p *message.GitPushed, _ *message.Envelope) { p.Files = []string{"../etc/passwd"} },
		"absolute file":         func(p *message.GitPushed, _ *message.Envelope) { p.Files = []string{"/iac/x.json"} },
		"removed not a ref":     func(p *message.GitPushed, _ *message.Envelope) { p.Removed = []message.ComponentRef{{Type: "VPC"}} },
		"correlates to itself":  func(_ *message.GitPushed, e *message.Envelope) { e.CorrelationID = e.ID },
		"correlation no uuid":   func(_ *message.GitPushed, e *message.Envelope) { e.CorrelationID = "change-1" },
	}
	for name, edit := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := good()
			e, err := message.New(message.TypeGitPushed, "", message.Actor{Kind: "git", Name: "ada"}, "git.pushed:x", p)
			if err != nil {
				t.Fatal(err)
			}
			e.CorrelationID = trigger.NewChangeID()
			edit(&p, &e)
			if e.Payload, err = json.Marshal(p); err != nil {
				t.Fatal(err)
			}
			out, err := (&ingest.Worker{}).Handle(context.Background(), e)
			if pipeline.Classify(err) != pipeline.DeadLetter || out != nil {
				t.Errorf("%v %v: want a permanent error", out, err)
			}
		})
	}
	other, _ := message.New(message.TypeChangeDetected, "prod", message.Actor{Kind: "cli", Name: "ada"}, "k", message.ChangeDetected{})
	if _, err := (&ingest.Worker{}).Handle(context.Background(), other); pipeline.Classify(err) != pipeline.DeadLetter || !strings.Contains(err.Error(), "not a trigger") {
		t.Errorf("a change.detected: %v, want it refused as no trigger", err)
	}
}

// stores is a ParameterReader over embedded stores, one per environment.
type stores map[string]*embedded.ParamStore

func (s stores) History(ctx context.Context, env, name string) ([]params.Parameter, error) {
	st, ok := s[env]
	if !ok {
		return nil, errors.New("no store for " + env)
	}
	return st.History(ctx, name)
}

func newStores(t *testing.T, envs ...string) stores {
	t.Helper()
	db, err := embedded.Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := stores{}
	for _, env := range envs {
		if s[env], err = embedded.NewParamStore(db, env); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func put(t *testing.T, st params.Store, in params.PutInput) int64 {
	t.Helper()
	r, err := st.Put(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return r.Version
}

func changed(t *testing.T, env, name, op string, version int64) message.Envelope {
	t.Helper()
	e, err := trigger.ParameterChanged(trigger.ParameterChange{Env: env, Name: name, Operation: op, Version: version, EventID: "ev-1"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestParameter(t *testing.T) {
	t.Parallel()
	arn := "arn:aws:iam::123456789012:user/ada"
	prev := `{"vpc_id":"vpc-1","private_subnet_ids":["subnet-a","subnet-b"],"flow_log_group":"/vpc/core","retired":1,"count":2}`
	tests := []struct {
		name        string
		env, param  string
		before      []string // earlier versions' values
		value, user string
		op          string
		byEvent     bool // the trigger names no version: the current one counts
		wantSource  string
		wantKeysRaw string // how changed_keys appears on the wire ("" = absent)
	}{
		{name: "config written outside karma", env: "prod", param: "/iac/vpc/core/config", before: []string{`{"cidr":"10.0.0.0/16"}`},
			value: `{"cidr":"10.1.0.0/16"}`, user: arn, op: "Update", wantSource: message.SourceParameter},
		{name: "runtime with changed keys", env: "prod", param: "/iac/vpc/core/runtime", before: []string{prev}, user: arn, op: "Update",
			value:      `{"count":2.0,"flow_log_group":"/vpc/core","private_subnet_ids":["subnet-a", "subnet-b"],"vpc_id":"vpc-2","added":true}`,
			wantSource: message.SourceRuntime, wantKeysRaw: `["added","retired","vpc_id"]`},
		{name: "runtime where nothing changed", env: "prod", param: "/iac/vpc/core/runtime", before: []string{prev}, user: arn, op: "Update", byEvent: true,
			value:      " {\"retired\": 1, \"count\": 2, \"vpc_id\": \"vpc-1\", \"flow_log_group\": \"/vpc/core\", \"private_subnet_ids\": [\"subnet-a\",\"subnet-b\"]}",
			wantSource: message.SourceRuntime, wantKeysRaw: `[]`},
		{name: "runtime created", env: "dev", param: "/iac/s3-bucket/assets/runtime", op: "Create", value: `{"bucket_name":"b","bucket_arn":"arn:aws:s3:::b"}`,
			wantSource: message.SourceRuntime, wantKeysRaw: `["bucket_arn","bucket_name"]`},
		{name: "runtime that was a bare string", env: "dev", param: "/iac/vpc/core/runtime", before: []string{"x", `vpc-0abc`}, op: "Update",
			value: `{"vpc_id":"vpc-0abc"}`, wantSource: message.SourceRuntime, wantKeysRaw: `["vpc_id"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStores(t, tt.env)
			for _, v := range tt.before {
				put(t, s[tt.env], params.PutInput{Name: tt.param, Value: v, User: "someone"})
			}
			version := put(t, s[tt.env], params.PutInput{Name: tt.param, Value: tt.value, User: tt.user})
			want := version
			if tt.byEvent {
				version = 0
			}
			in := changed(t, tt.env, tt.param, tt.op, version)
			out, err := (&ingest.Worker{Parameters: s, Prefix: "/iac"}).Handle(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			p := checkChange(t, in, out)
			e := out[0]
			if p.Source != tt.wantSource || e.Env != tt.env {
				t.Errorf("source %q env %q, want %q %q", p.Source, e.Env, tt.wantSource, tt.env)
			}
			hist, err := s[tt.env].History(context.Background(), tt.param)
			if err != nil {
				t.Fatal(err)
			}
			at := hist[len(hist)-1].LastModified.UTC().Format("2006-01-02T15:04:05.000Z07:00")
			if k := tt.wantSource + ":" + tt.param + "@" + itoa(want) + "@" + at; e.IdempotencyKey != k {
				t.Errorf("key %q, want %q", e.IdempotencyKey, k)
			}
			// The change names the write too: resolve deploys that version only if it was
			// written then (the parameter may be deleted and created again in between).
			if p.Parameter == nil || p.Parameter.Name != tt.param || p.Parameter.Version != want || p.Parameter.ModifiedBy != tt.user ||
				!p.Parameter.WrittenAt.Equal(hist[len(hist)-1].LastModified) {
				t.Errorf("parameter %+v, want version %d written at %s", p.Parameter, want, hist[len(hist)-1].LastModified)
			}
			wantActor := message.Actor{Kind: "iam", Name: tt.user}
			if wantActor.Name == "" {
				wantActor.Name = trigger.UnknownModifier
			}
			if e.Actor != wantActor {
				t.Errorf("actor %+v, want %+v", e.Actor, wantActor)
			}
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(e.Payload, &raw); err != nil {
				t.Fatal(err)
			}
			if got := string(raw["changed_keys"]); got != tt.wantKeysRaw {
				t.Errorf("changed_keys on the wire = %s, want %s", orAbsent(got), orAbsent(tt.wantKeysRaw))
			}
			// The time as the key has it, and as the payload has it (both: the same time).
			writtenAt := hist[len(hist)-1].LastModified.UTC().Format(time.RFC3339Nano)
			wt.CheckGolden(t, "parameter_"+goldenName(tt.name), out, map[string]string{e.ID: "root-id", in.ID: "trigger", at: "modified-at", writtenAt: "modified-at"})
		})
	}
}

func orAbsent(s string) string {
	if s == "" {
		return "(absent)"
	}
	return s
}

// A version of an earlier event (named by the trigger) is decided against the one before it,
// not against what was written since.
func TestParameterVersionNamed(t *testing.T) {
	t.Parallel()
	s := newStores(t, "prod")
	put(t, s["prod"], params.PutInput{Name: "/iac/vpc/core/runtime", Value: `{"a":1,"b":1}`})
	v2 := put(t, s["prod"], params.PutInput{Name: "/iac/vpc/core/runtime", Value: `{"a":2,"b":1}`, User: "ada"})
	put(t, s["prod"], params.PutInput{Name: "/iac/vpc/core/runtime", Value: `{"a":2,"b":3}`, User: "bob"})
	in := changed(t, "prod", "/iac/vpc/core/runtime", "Update", v2)
	out, err := (&ingest.Worker{Parameters: s, Prefix: "/iac"}).Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	p := checkChange(t, in, out)
	if strings.Join(p.ChangedKeys, ",") != "a" || p.Parameter.Version != v2 || p.Parameter.ModifiedBy != "ada" {
		t.Errorf("version 2: %+v keys %v", p.Parameter, p.ChangedKeys)
	}
	// A version the history does not hold yet is a read that does not see the write yet: retried.
	if _, err := (&ingest.Worker{Parameters: s, Prefix: "/iac"}).Handle(context.Background(), changed(t, "prod", "/iac/vpc/core/runtime", "Update", 9)); pipeline.Classify(err) != pipeline.Retry {
		t.Errorf("a version not there yet: %v, want a retry", err)
	}
}

func TestParameterIgnored(t *testing.T) {
	t.Parallel()
	s := newStores(t, "prod")
	value := `{"vpc_id":"vpc-2"}`
	karma := put(t, s["prod"], params.PutInput{Name: "/iac/vpc/core/runtime", Value: value,
		Description: params.Provenance("deployment=dep-9380611eaf9e90af change=019cebab-87be-76cd-9c22-2d20c23174d0", value)})
	cfg := put(t, s["prod"], params.PutInput{Name: "/iac/vpc/core/config", Value: `{}`, Description: params.Provenance("commit="+sha1+" file=x", `{}`)})
	for name, in := range map[string]message.Envelope{
		"environment binding":          changed(t, "prod", "/iac/environment", "Update", 1),
		"component path without kind":  changed(t, "prod", "/iac/vpc/core", "Update", 1),
		"other leaf":                   changed(t, "prod", "/iac/vpc/core/outputs", "Update", 1),
		"too deep":                     changed(t, "prod", "/iac/vpc/core/x/config", "Update", 1),
		"outside the prefix":           changed(t, "prod", "/other/vpc/core/config", "Update", 1),
		"prefix as a name prefix only": changed(t, "prod", "/iacx/vpc/core/config", "Update", 1),
		"delete":                       changed(t, "prod", "/iac/vpc/core/config", "Delete", 0),
		"label":                        changed(t, "prod", "/iac/vpc/core/config", "LabelParameterVersion", 1),
		"runtime karma wrote":          changed(t, "prod", "/iac/vpc/core/runtime", "Update", karma),
		"config karma wrote":           changed(t, "prod", "/iac/vpc/core/config", "Update", cfg),
		"deleted since":                changed(t, "prod", "/iac/zone/main/config", "Create", 1),
	} {
		out, err := (&ingest.Worker{Parameters: s, Prefix: "/iac"}).Handle(context.Background(), in)
		if err != nil || out != nil {
			t.Errorf("%s: %v %v; want nothing", name, out, err)
		}
	}
	// Karma's description kept while someone else overwrote the value: a change.
	put(t, s["prod"], params.PutInput{Name: "/iac/vpc/core/config", Value: `{"a":2}`, Description: params.Provenance("commit="+sha1+" file=x", `{}`)})
	if out, err := (&ingest.Worker{Parameters: s, Prefix: "/iac"}).Handle(context.Background(), changed(t, "prod", "/iac/vpc/core/config", "Update", 0)); err != nil || len(out) != 1 {
		t.Errorf("a stale Karma description over someone else's value must count as a change: %v %v", out, err)
	}
	// Then that value reverted by hand to the one Karma wrote, Karma's description still carried
	// over: a change too (its consumers hold the overwritten value), not Karma's own write.
	reverted := put(t, s["prod"], params.PutInput{Name: "/iac/vpc/core/config", Value: `{}`, Description: params.Provenance("commit="+sha1+" file=x", `{}`)})
	if out, err := (&ingest.Worker{Parameters: s, Prefix: "/iac"}).Handle(context.Background(), changed(t, "prod", "/iac/vpc/core/config", "Update", reverted)); err != nil || len(out) != 1 {
		t.Errorf("a value reverted by hand to Karma's must count as a change: %v %v", out, err)
	}
}

func TestParameterPermanent(t *testing.T) {
	t.Parallel()
	s := newStores(t, "prod")
	put(t, s["prod"], params.PutInput{Name: "/iac/vpc/core/runtime", Value: "vpc-123"})
	put(t, s["prod"], params.PutInput{Name: "/iac/VPC/core/config", Value: "{}"})
	w := &ingest.Worker{Parameters: s, Prefix: "/iac"}
	for name, in := range map[string]message.Envelope{
		"runtime not JSON": changed(t, "prod", "/iac/vpc/core/runtime", "Update", 1),
		"upper-case type":  changed(t, "prod", "/iac/VPC/core/config", "Update", 1),
		"no environment given": func() message.Envelope {
			e := changed(t, "prod", "/iac/vpc/core/runtime", "Update", 1)
			e.Env = ""
			return e
		}(),
	} {
		if out, err := w.Handle(context.Background(), in); pipeline.Classify(err) != pipeline.DeadLetter || out != nil {
			t.Errorf("%s: %v %v, want a permanent error", name, out, err)
		}
	}
	// The store cannot be read: retried.
	broken := &ingest.Worker{Parameters: stores{}, Prefix: "/iac"}
	if _, err := broken.Handle(context.Background(), changed(t, "prod", "/iac/vpc/core/runtime", "Update", 1)); pipeline.Classify(err) != pipeline.Retry {
		t.Errorf("an unreadable store: %v, want a retry", err)
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
		{"a large integer changed by one", `{"id":12345678901234567}`, `{"id":12345678901234568}`, []string{"id"}, false},
		{"same object, other key order", `{"a":{"x":1,"y":2}}`, `{"a":{"y":2,"x":1}}`, []string{}, false},
		{"changed", `{"a":1,"b":2}`, `{"a":1,"b":3}`, []string{"b"}, false},
		{"added and removed", `{"a":1,"gone":2}`, `{"a":1,"new":2}`, []string{"gone", "new"}, false},
		{"array order matters", `{"a":[1,2]}`, `{"a":[2,1]}`, []string{"a"}, false},
		{"previous not an object", `"bare"`, `{"a":1}`, []string{"a"}, false},
		{"empty to empty", `{}`, `{}`, []string{}, false},
		{"current not JSON", `{}`, `nope`, nil, true},
		{"current an array", `{}`, `[1]`, nil, true},
		{"an empty key", `{}`, `{"":1}`, nil, true},
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

// collected is a Publisher that keeps what it is given.
type collected struct{ msgs []message.Envelope }

func (c *collected) Publish(_ context.Context, msgs ...message.Envelope) error {
	c.msgs = append(c.msgs, msgs...)
	return nil
}

// Events name no version: handled after v2 and v3 were both written, v2's event resolves to v3.
// v3 is compared with the last version whose change is known (v1, ingested), not with v2: the
// key v2 changed is not lost.
func TestEventsNamingNoVersionKeepEveryChangedKey(t *testing.T) {
	t.Parallel()
	ps, seen := paramStoreAndRecords(t)
	const name = "/iac/vpc/core/runtime"
	for _, records := range []bool{true, false} {
		w := &ingest.Worker{Parameters: stores{"prod": ps}, Prefix: "/iac"}
		if records {
			w.Records = seen
		}
		v1 := put(t, ps, params.PutInput{Name: name, Value: fmt.Sprintf(`{"a":1,"b":1,"run":%t}`, records)})
		handleOne(t, w, changed(t, "prod", name, "Update", v1))
		put(t, ps, params.PutInput{Name: name, Value: fmt.Sprintf(`{"a":2,"b":1,"run":%t}`, records)})
		put(t, ps, params.PutInput{Name: name, Value: fmt.Sprintf(`{"a":2,"b":2,"run":%t}`, records)})
		_, p := handleOne(t, w, changed(t, "prod", name, "Update", 0))
		want := "a,b"
		if !records {
			want = "b" // without the records: what v2 changed is lost
		}
		if got := strings.Join(p.ChangedKeys, ","); got != want {
			t.Errorf("records %v: changed keys %s, want %s", records, got, want)
		}
	}
}

// TestACoalescedRuntimeChangeNamesEveryWriter: a change decided from an event naming no version
// carries the keys of earlier versions written by others; it names each of them (version,
// writer, keys it changed) besides the newest, so the lineage does not credit the newest writer
// with every key. Without the ingested records the change carries only the newest version's
// keys and names no other.
func TestACoalescedRuntimeChangeNamesEveryWriter(t *testing.T) {
	t.Parallel()
	ps, seen := paramStoreAndRecords(t)
	const name = "/iac/vpc/core/runtime"
	w := &ingest.Worker{Parameters: stores{"prod": ps}, Prefix: "/iac", Records: seen}
	handle := func(in message.Envelope) (message.Envelope, message.ChangeDetected) { return handleOne(t, w, in) }
	v1 := put(t, ps, params.PutInput{Name: name, Value: `{"a":1,"b":1,"c":1}`, User: "arn:aws:iam::1:user/ann"})
	if _, p := handle(changed(t, "prod", name, "Update", v1)); p.Covers != nil {
		t.Fatalf("v1 covers %+v, want none", p.Covers)
	}
	put(t, ps, params.PutInput{Name: name, Value: `{"a":2,"b":1,"c":1}`, User: "arn:aws:iam::1:user/bob"})
	put(t, ps, params.PutInput{Name: name, Value: `{"a":2,"b":1,"c":1} `, User: "arn:aws:iam::1:user/cy"})
	put(t, ps, params.PutInput{Name: name, Value: `{"a":2,"b":2,"c":1}`, User: "arn:aws:iam::1:user/dee"})
	e, p := handle(changed(t, "prod", name, "Update", 0))
	if got := strings.Join(p.ChangedKeys, ","); got != "a,b" {
		t.Errorf("changed keys %s, want a,b", got)
	}
	if p.Parameter.Version != 4 || p.Parameter.ModifiedBy != "arn:aws:iam::1:user/dee" || e.Actor.Name != "arn:aws:iam::1:user/dee" {
		t.Errorf("parameter %+v, actor %+v: want version 4 by dee", p.Parameter, e.Actor)
	}
	want := []message.CoveredVersion{
		{Version: 2, ModifiedBy: "arn:aws:iam::1:user/bob", ChangedKeys: []string{"a"}},
		{Version: 3, ModifiedBy: "arn:aws:iam::1:user/cy", ChangedKeys: []string{}}, // the same value again: no key
	}
	if !reflect.DeepEqual(p.Covers, want) {
		t.Errorf("covers %+v, want %+v", p.Covers, want)
	}

	// The next version, its event naming it, is compared with the one before: nothing covered.
	v5 := put(t, ps, params.PutInput{Name: name, Value: `{"a":2,"b":2,"c":2}`, User: "arn:aws:iam::1:user/eve"})
	if _, p := handle(changed(t, "prod", name, "Update", v5)); p.Covers != nil || strings.Join(p.ChangedKeys, ",") != "c" {
		t.Errorf("v5: covers %+v, keys %v; want none and c", p.Covers, p.ChangedKeys)
	}
}

// paramStoreAndRecords is prod's embedded parameter store and the idempotency records, on one
// SQLite file.
func paramStoreAndRecords(t *testing.T) (*embedded.ParamStore, *embedded.Seen) {
	t.Helper()
	db, err := embedded.Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ps, err := embedded.NewParamStore(db, "prod")
	if err != nil {
		t.Fatal(err)
	}
	seen, err := embedded.NewSeen(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return ps, seen
}

// handleOne runs w's stage on in, which must publish one change.detected valid against its
// schema; it returns it and its payload.
func handleOne(t *testing.T, w *ingest.Worker, in message.Envelope) (message.Envelope, message.ChangeDetected) {
	t.Helper()
	pub := &collected{}
	res := pipeline.Handle(context.Background(), pipeline.Stage{Name: pipeline.StageIngest, Handler: w.Handle}, pub, mustMarshal(t, in))
	if res.Action != pipeline.Ack || len(pub.msgs) != 1 {
		t.Fatalf("%s: action %v (%v), %d published", in.IdempotencyKey, res.Action, res.Err, len(pub.msgs))
	}
	messagetest.Validate(t, pub.msgs[0])
	var p message.ChangeDetected
	if err := message.Decode(pub.msgs[0], &p); err != nil {
		t.Fatal(err)
	}
	return pub.msgs[0], p
}

func mustMarshal(t *testing.T, e message.Envelope) []byte {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A parameter deleted and created again starts again at version 1 (Parameter Store's rule, and
// the embedded store's). Its change must not be keyed like the change of the version 1 before
// the deletion, which is done: every stage would take it for a duplicate and drop it.
func TestAParameterCreatedAgainIsANewChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStores(t, "prod")
	const name = "/iac/vpc/core/runtime"
	keyOf := func(eventID string) string {
		t.Helper()
		in, err := trigger.ParameterChanged(trigger.ParameterChange{Env: "prod", Name: name, Operation: "Create", EventID: eventID})
		if err != nil {
			t.Fatal(err)
		}
		out, err := (&ingest.Worker{Parameters: s, Prefix: "/iac"}).Handle(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		checkChange(t, in, out)
		return out[0].IdempotencyKey
	}
	if v := put(t, s["prod"], params.PutInput{Name: name, Value: `{"vpc_id":"vpc-1"}`, User: "ada"}); v != 1 {
		t.Fatalf("version %d, want 1", v)
	}
	first := keyOf("ev-1")
	if err := s["prod"].Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond) // (the versions' times differ)
	if v := put(t, s["prod"], params.PutInput{Name: name, Value: `{"vpc_id":"vpc-2"}`, User: "bob"}); v != 1 {
		t.Fatalf("created again: version %d, want 1", v)
	}
	if again := keyOf("ev-2"); again == first {
		t.Errorf("the change of the parameter created again has the key of the first one's version 1, %q: it would be dropped as a duplicate", first)
	}
}

// A trigger naming its version by number and time of writing (`karma params put`, reconcile)
// is about that version only: once the parameter was deleted and created again, a version of
// that number is another one, with a trigger of its own. Its change is not made under the old
// trigger's name (which would credit the new value to the old write), and a number the new
// history has not reached is not waited for until the trigger is dead-lettered.
func TestATriggerOfAVersionDeletedSinceIsNoChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStores(t, "prod")
	const name = "/iac/vpc/core/config"
	put(t, s["prod"], params.PutInput{Name: name, Value: `{"a":1}`, User: "erin"})
	now, err := s["prod"].Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	w := &ingest.Worker{Parameters: s, Prefix: "/iac"}
	named := func(v int64, at time.Time) message.Envelope {
		t.Helper()
		e, err := trigger.ParameterChanged(trigger.ParameterChange{Env: "prod", Name: name, Operation: "Update", Version: v, WrittenAt: at})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// The version as it is: its change, keyed by its time.
	in := named(1, now.LastModified)
	out, err := w.Handle(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if p := checkChange(t, in, out); p.Parameter.Version != 1 || p.Parameter.ModifiedBy != "erin" ||
		out[0].IdempotencyKey != message.ParameterVersionKey(message.SourceParameter, name, 1, now.LastModified) {
		t.Errorf("change %+v keyed %q", p.Parameter, out[0].IdempotencyKey)
	}
	before := now.LastModified.Add(-time.Hour) // written before the parameter was deleted
	for what, in := range map[string]message.Envelope{
		"version 1 before the deletion": named(1, before),
		"version 3 before the deletion": named(3, before),
	} {
		if out, err := w.Handle(ctx, in); err != nil || out != nil {
			t.Errorf("%s: %v %v; want nothing", what, out, err)
		}
	}
	// A version written after the newest the history holds: not there yet, retried.
	for what, in := range map[string]message.Envelope{
		"version 2 written since":            named(2, now.LastModified.Add(time.Hour)),
		"version 2, time of writing unknown": named(2, time.Time{}),
	} {
		if _, err := w.Handle(ctx, in); pipeline.Classify(err) != pipeline.Retry {
			t.Errorf("%s: %v, want a retry", what, err)
		}
	}
	// A history that says no time cannot tell a version from the one of its number before a
	// deletion: the number decides, the change is not dropped.
	untimed := &history{{Name: name, Value: `{"a":1}`, Version: 1, LastModifiedUser: "erin"}}
	in = named(1, now.LastModified)
	if out, err := (&ingest.Worker{Parameters: untimed, Prefix: "/iac"}).Handle(ctx, in); err != nil || len(out) != 1 {
		t.Errorf("a version of a history without times: %v %v, want its change", out, err)
	}
}

// history is a parameter reader whose versions, and the times they were written, the test sets.
type history []params.Parameter

func (h *history) History(_ context.Context, _, name string) ([]params.Parameter, error) {
	var out []params.Parameter
	for _, v := range *h {
		if v.Name == name {
			out = append(out, v)
		}
	}
	if out == nil {
		return nil, params.ErrNotFound
	}
	return out, nil
}

// A runtime deleted and created again starts again at version 1. An event naming no version is
// compared with the latest earlier version known to be ingested — of this life of the parameter,
// not the version of that number before the deletion: taken for ingested, that one would hide
// the keys changed since the last version whose change is known (here Karma's own write).
func TestABaseIsOfTheParameterCreatedAgain(t *testing.T) {
	t.Parallel()
	_, seen := paramStoreAndRecords(t)
	const name = "/iac/vpc/core/runtime"
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	version := func(v int64, at time.Duration, value, who, desc string) params.Parameter {
		return params.Parameter{Name: name, Value: value, Type: params.TypeString, Version: v, LastModified: t0.Add(at), LastModifiedUser: who, Description: desc}
	}
	h := &history{
		version(1, 0, `{"a":1,"b":1}`, "ann", ""),
		version(2, time.Minute, `{"a":2,"b":1}`, "ann", ""),
	}
	w := &ingest.Worker{Parameters: h, Prefix: "/iac", Records: seen}
	handleOne(t, w, changed(t, "prod", name, "Update", 2)) // version 2 ingested
	karma := `{"a":1,"b":1}`
	*h = history{ // deleted; published again by Karma, then written twice by others
		version(1, time.Hour, karma, "karma:ci", params.Provenance("deployment=dep-9380611eaf9e90af", karma)),
		version(2, time.Hour+time.Minute, `{"a":3,"b":1}`, "bob", ""),
		version(3, time.Hour+2*time.Minute, `{"a":3,"b":3}`, "cy", ""),
	}
	_, p := handleOne(t, w, changed(t, "prod", name, "Update", 0))
	if got := strings.Join(p.ChangedKeys, ","); got != "a,b" || p.Parameter.Version != 3 {
		t.Errorf("version %d, changed keys %s; want version 3, a,b (against Karma's version 1: bob's a is not lost)", p.Parameter.Version, got)
	}
	if want := []message.CoveredVersion{{Version: 2, ModifiedBy: "bob", ChangedKeys: []string{"a"}}}; !reflect.DeepEqual(p.Covers, want) {
		t.Errorf("covers %+v, want %+v", p.Covers, want)
	}

	// A version ingested before the time was in the record's key still counts as ingested.
	const zone = "/iac/zone/main/runtime"
	*h = history{
		{Name: zone, Value: `{"a":1,"b":1}`, Version: 1, LastModified: t0},
		{Name: zone, Value: `{"a":2,"b":1}`, Version: 2, LastModified: t0.Add(time.Minute), LastModifiedUser: "dee"},
		{Name: zone, Value: `{"a":2,"b":2}`, Version: 3, LastModified: t0.Add(2 * time.Minute), LastModifiedUser: "eve"},
	}
	if _, err := seen.RecordFirst(context.Background(), "ingested:prod:"+zone+"@1", "019cebab-87be-76cd-9c22-2d20c23174d0"); err != nil {
		t.Fatal(err)
	}
	if _, p := handleOne(t, w, changed(t, "prod", zone, "Update", 0)); strings.Join(p.ChangedKeys, ",") != "a,b" || len(p.Covers) != 1 {
		t.Errorf("against a version ingested before the upgrade: changed keys %v, covers %+v; want a,b and version 2", p.ChangedKeys, p.Covers)
	}
}

// TestACoalescedConfigChangeNamesEveryWriter: a /config change decided from an event naming no
// version deploys the current value, which carries what earlier versions written by others
// changed (mallory's cidr under alice's tags). It names them as a runtime change does — each
// version, its writer and the keys it changed — instead of crediting the newest writer with the
// whole value; before, mallory's write was in no record, and neither the policies nor separation
// of duties knew of her. A version whose change resolve made (from before ingest recorded
// /config versions) is known too: it is not named again.
func TestACoalescedConfigChangeNamesEveryWriter(t *testing.T) {
	t.Parallel()
	ps, seen := paramStoreAndRecords(t)
	const name = "/iac/vpc/core/config"
	w := &ingest.Worker{Parameters: stores{"prod": ps}, Prefix: "/iac", Records: seen, Seen: seen}
	handle := func(in message.Envelope) (message.Envelope, message.ChangeDetected) { return handleOne(t, w, in) }
	v1 := put(t, ps, params.PutInput{Name: name, Value: `{"cidr":"10.20.0.0/16","az_count":3}`, User: "arn:aws:iam::1:user/ann"})
	if _, p := handle(changed(t, "prod", name, "Update", v1)); p.Covers != nil {
		t.Fatalf("v1 covers %+v, want none", p.Covers)
	}
	put(t, ps, params.PutInput{Name: name, Value: `{"cidr":"10.99.0.0/16","az_count":3}`, User: "arn:aws:iam::1:user/mallory"})
	put(t, ps, params.PutInput{Name: name, Value: `{"cidr":"10.99.0.0/16","az_count":4}`, User: "arn:aws:iam::1:user/alice"})
	e, p := handle(changed(t, "prod", name, "Update", 0))
	if p.Parameter.Version != 3 || e.Actor.Name != "arn:aws:iam::1:user/alice" {
		t.Errorf("parameter %+v, actor %+v: want version 3 by alice", p.Parameter, e.Actor)
	}
	want := []message.CoveredVersion{{Version: 2, ModifiedBy: "arn:aws:iam::1:user/mallory", ChangedKeys: []string{"cidr"}}}
	if !reflect.DeepEqual(p.Covers, want) {
		t.Errorf("covers %+v, want %+v", p.Covers, want)
	}

	// v4's change was made by resolve (its key marked) with no record of ingest's: known.
	put(t, ps, params.PutInput{Name: name, Value: `{"cidr":"10.99.0.0/16","az_count":5}`, User: "arn:aws:iam::1:user/bob"})
	v4, err := ps.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if err := seen.Mark(context.Background(), pipeline.StageResolve+"|"+message.ParameterVersionKey(message.SourceParameter, name, v4.Version, v4.LastModified)); err != nil {
		t.Fatal(err)
	}
	put(t, ps, params.PutInput{Name: name, Value: `{"cidr":"10.99.0.0/16","az_count":6}`, User: "arn:aws:iam::1:user/cy"})
	if _, p := handle(changed(t, "prod", name, "Update", 0)); p.Parameter.Version != 5 || p.Covers != nil {
		t.Errorf("v5: %+v covers %+v; want v5 covering none", p.Parameter, p.Covers)
	}
}

// A SecureString runtime's values are recorded nowhere: its change gives the policies its keys,
// without a value.
func TestARuntimeChangeRecordsNoSecureStringValue(t *testing.T) {
	t.Parallel()
	const name = "/iac/vpc/core/runtime"
	s := newStores(t, "prod")
	put(t, s["prod"], params.PutInput{Name: name, Value: `{"vpc_id":"hunter1","n":1}`, Type: params.TypeSecureString})
	v := put(t, s["prod"], params.PutInput{Name: name, Value: `{"vpc_id":"hunter2","n":1}`, Type: params.TypeSecureString})
	out, err := (&ingest.Worker{Parameters: s, Prefix: "/iac"}).Handle(context.Background(), changed(t, "prod", name, "Update", v))
	if err != nil || len(out) != 1 {
		t.Fatalf("%d messages, %v", len(out), err)
	}
	if strings.Contains(string(out[0].Payload), "hunter") {
		t.Errorf("the change records a SecureString's value: %s", out[0].Payload)
	}
	var p message.ChangeDetected
	if err := message.Decode(out[0], &p); err != nil {
		t.Fatal(err)
	}
	if want := []message.KeyChange{{Key: "n", Op: "change"}, {Key: "vpc_id", Op: "change"}}; !reflect.DeepEqual(p.RuntimeDiff, want) {
		t.Errorf("runtime_diff of a SecureString: %+v, want %+v", p.RuntimeDiff, want)
	}
}
