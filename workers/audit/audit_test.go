package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	wt "github.com/usekarma/karma/workers/internal/workertest"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	auditw "github.com/usekarma/karma/workers/audit"
)

const sha1 = "512423cb3a4857a38f472862b51e4ab1a1730f06"

var gitActor = message.Actor{Kind: "git", Name: "Ada Lovelace <ada@example.com>"}

// story is one change on prod/vpc/core with fixed ids and times: every message the pipeline
// sends to the audit queue for it, in order.
func story(t *testing.T) []message.Envelope {
	t.Helper()
	p := message.ChangeDetected{ChangeSetID: wt.FixedID(1), Source: message.SourceGit, Components: []message.ComponentRef{},
		Files: []string{"iac/prod/vpc/core/config.json"}, Commit: &message.Commit{SHA: sha1, Author: gitActor.Name}}
	root := wt.FixedRoot(t, 1, message.TypeChangeDetected, "", gitActor, "git:"+sha1, p)
	csID := root.ID + "/prod"
	vpc := changeset.DeploymentID(csID, "prod/vpc/core")
	sched := message.DeploymentScheduled{ChangeSetID: csID, DeploymentID: vpc, Component: "prod/vpc/core",
		CausedBy: []message.Cause{{Kind: message.CauseCommit, ID: sha1}}, ConfigHash: strings.Repeat("c8", 32)}
	derive := func(n int, typ, idem string, payload any) message.Envelope {
		e := wt.FixedDerive(t, root, n, typ, idem, payload)
		e.Env = "prod"
		return e
	}
	msgs := []message.Envelope{
		root,
		derive(2, message.TypeChangeResolved, "resolved:"+csID, message.ChangeResolved{ChangeSetID: csID, Source: message.SourceGit,
			RootCauses: []message.Cause{{Kind: message.CauseCommit, ID: sha1}}, Roots: []string{"prod/vpc/core"},
			Affected: []string{"prod/vpc/core", "prod/ecs-cluster/core"}, Waves: [][]string{{"prod/vpc/core"}, {"prod/ecs-cluster/core"}}}),
		derive(3, message.TypeDeploymentScheduled, "deployment.scheduled:"+vpc, sched),
		derive(4, message.TypeDeploymentRecorded, "deployment.recorded:"+vpc, message.DeploymentRecorded{DeploymentScheduled: sched}),
		derive(5, message.TypeDeploymentPlanned, "deployment.planned:"+vpc, message.DeploymentPlanned{DeploymentScheduled: sched,
			Plan: message.PlanSummary{Add: 1}, PlanFile: "noop:prod/vpc/core@0123456789abcdef", PlanHash: strings.Repeat("9f", 32)}),
		derive(6, message.TypeDeploymentApplied, "deployment.applied:"+vpc, message.DeploymentApplied{ChangeSetID: csID, DeploymentID: vpc,
			Component: "prod/vpc/core", RuntimeVersion: 1, ChangedKeys: []string{"flow_log_group"}, RuntimeHash: strings.Repeat("ab", 32)}),
		derive(7, message.TypeDeploymentSkipped, "deployment.skipped:"+csID+"/prod/ecs-cluster/core", message.DeploymentSkipped{ChangeSetID: csID,
			Component: "prod/ecs-cluster/core", Reason: changeset.ReasonNoConsumedKey, Detail: "no runtime key it consumes changed upstream"}),
	}
	for i := 1; i < len(msgs); i++ {
		msgs[i].CausationID = msgs[i-1].ID
	}
	wt.ValidateAll(t, msgs)
	return msgs
}

func newLog(t *testing.T) *embedded.AuditLog {
	t.Helper()
	l, err := embedded.NewAuditLog(context.Background(), wt.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRecord(t *testing.T) {
	t.Parallel()
	msgs := story(t)
	corr := msgs[0].ID
	vpcDep := changeset.DeploymentID(corr+"/prod", "prod/vpc/core")
	newer := msgs[5]
	newer.Type, newer.Version = "deployment.verified", 3 // a type and version this build does not know
	newer.Payload = []byte(`{"component":"prod/vpc/core","deployment_id":"` + vpcDep + `","verdict":"ok","nested":{"component":"not this one"}}`)
	v1 := msgs[0]
	v1.Version, v1.Env = 1, "prod"
	v1.Payload = []byte(`{"source":"parameter","component":{"type":"vpc","nickname":"core"},"parameter":{"name":"/iac/vpc/core/config","version":2},"auto_approve":false}`)
	wt.Validate(t, v1)
	tests := []struct {
		name      string
		in        message.Envelope
		chain     string
		component string
		dep       string
	}{
		{"change.detected has no component", msgs[0], "change/" + corr, "", ""},
		{"change.resolved has no component", msgs[1], "change/" + corr, "", ""},
		{"deployment.scheduled", msgs[2], "prod/vpc/core", "prod/vpc/core", vpcDep},
		{"deployment.planned", msgs[4], "prod/vpc/core", "prod/vpc/core", vpcDep},
		{"deployment.applied", msgs[5], "prod/vpc/core", "prod/vpc/core", vpcDep},
		{"deployment.skipped has no deployment id", msgs[6], "prod/ecs-cluster/core", "prod/ecs-cluster/core", ""},
		{"a type newer than this build", newer, "prod/vpc/core", "prod/vpc/core", vpcDep},
		{"change.detected v1 (component is an object)", v1, "change/" + corr, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := auditw.Record(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if r.Chain != tt.chain || r.Component != tt.component || r.DeploymentID != tt.dep {
				t.Errorf("chain %q component %q deployment %q; want %q %q %q", r.Chain, r.Component, r.DeploymentID, tt.chain, tt.component, tt.dep)
			}
			body, _ := message.Encode(tt.in)
			if r.MessageID != tt.in.ID || r.Type != tt.in.Type || r.Version != tt.in.Version || r.Env != tt.in.Env ||
				r.CorrelationID != tt.in.CorrelationID || r.CausationID != tt.in.CausationID || r.ActorKind != tt.in.Actor.Kind ||
				r.Actor != tt.in.Actor.Name || !r.OccurredAt.Equal(tt.in.OccurredAt) || !bytes.Equal(r.Body, body) {
				t.Errorf("record %+v does not carry the envelope %+v", r, tt.in)
			}
			if r.Seq != 0 || r.Hash != "" || r.PrevHash != "" {
				t.Error("Seq and hashes are Append's business")
			}
		})
	}
}

func TestHandleAppendsOnceAndChains(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	log := newLog(t)
	db := wt.NewDB(t)
	q, err := embedded.NewQueue(ctx, db, embedded.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := &auditw.Worker{Log: log}
	msgs := story(t)
	for round := range 2 { // the second round is every message redelivered
		for _, m := range msgs {
			out, action, err := wt.Process(t, q, w.Handle, m)
			if action != pipeline.Ack || err != nil || len(out) != 0 {
				t.Fatalf("round %d %s: action %v, err %v, %d outputs", round, m.Type, action, err, len(out))
			}
		}
	}
	all, err := log.Query(ctx, audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(msgs) {
		t.Fatalf("%d records, want %d (one per message, redeliveries ignored)", len(all), len(msgs))
	}
	chains, err := log.Chains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"change/" + msgs[0].ID, "prod/ecs-cluster/core", "prod/vpc/core"}
	if strings.Join(chains, ",") != strings.Join(want, ",") {
		t.Errorf("chains %v, want %v", chains, want)
	}
	for _, c := range chains {
		if err := log.Verify(ctx, c); err != nil {
			t.Errorf("chain %s: %v", c, err)
		}
	}
	vpc, err := log.Query(ctx, audit.Query{Component: "prod/vpc/core"})
	if err != nil {
		t.Fatal(err)
	}
	if len(vpc) != 4 {
		t.Fatalf("prod/vpc/core has %d records, want 4", len(vpc))
	}
	for i, r := range vpc {
		if r.Seq != int64(i+1) || (i > 0 && r.PrevHash != vpc[i-1].Hash) {
			t.Errorf("record %d: seq %d prev %s", i, r.Seq, r.PrevHash)
		}
	}
	// Everything is deterministic (fixed ids and times): the log itself is a golden file.
	checkRecords(t, "story_records", all)

	// Append itself is idempotent on the message id.
	r, _ := auditw.Record(msgs[2])
	if n, err := log.Append(ctx, r, r); err != nil || n != 0 {
		t.Errorf("Append of a present record: %d new, %v; want 0", n, err)
	}
	fresh := newLog(t)
	if n, err := fresh.Append(ctx, r, r); err != nil || n != 1 {
		t.Errorf("Append of one record twice in a call: %d new, %v; want 1", n, err)
	}
}

// The story's log is the same whichever way its records reach it: sealed by Prepare before the
// handler (the joined stage on the embedded file), sealed by the handler, or as plain records
// to a log that does not take sealed ones (the DynamoDB log).
func TestPreparedAndPlainRecordsChainAlike(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	msgs := story(t)
	prepared, plain := newLog(t), newLog(t)
	for _, m := range msgs {
		p, err := (&auditw.Worker{Log: prepared}).Prepare(ctx, m)
		if err != nil {
			t.Fatalf("%s: Prepare: %v", m.Type, err)
		}
		if _, err := (&auditw.Worker{Log: prepared}).Handle(pipeline.WithPrepared(ctx, p), m); err != nil {
			t.Fatalf("%s: Handle, prepared: %v", m.Type, err)
		}
	}
	_, errs := (&auditw.Worker{Log: struct{ audit.Log }{plain}}).HandleBatch(ctx, msgs) // Append only
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: HandleBatch to a log of plain records: %v", msgs[i].Type, err)
		}
	}
	for name, log := range map[string]*embedded.AuditLog{"prepared": prepared, "plain": plain} {
		all, err := log.Query(ctx, audit.Query{})
		if err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) { checkRecords(t, "story_records", all) })
	}
}

// failingLog fails every Append.
type failingLog struct{ audit.Log }

func (failingLog) Append(context.Context, ...audit.Record) (int, error) {
	return 0, errors.New("database is locked")
}

func TestHandleErrors(t *testing.T) {
	t.Parallel()
	msgs := story(t)
	_, err := (&auditw.Worker{Log: failingLog{}}).Handle(context.Background(), msgs[0])
	if !pipeline.IsTransient(err) || pipeline.Classify(err) != pipeline.Retry {
		t.Errorf("a failed append: %v, want a transient retry", err)
	}
	bad := msgs[0]
	bad.Payload = []byte(`{not json`)
	if _, err := auditw.Record(bad); pipeline.Classify(err) != pipeline.DeadLetter {
		t.Errorf("an unencodable envelope: %v, want a permanent error", err)
	}
}

// checkRecords compares records with testdata/<name>.golden.json (rewritten with -update).
func checkRecords(t *testing.T, name string, recs []audit.Record) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(recs); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", name+".golden.json")
	if *wt.Update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, buf.Bytes(), want)
	}
}

// An actor longer than an index key may be (DynamoDB's by-actor index: 2,048 bytes, a longer
// record refused permanently) is recorded cut, saying so, on a character boundary: anyone can
// write a 3 KB Git author, and every message of that change would otherwise stay out of the log.
// The body keeps the whole actor; the record still lands and explains itself.
func TestRecordCutsAnActorLongerThanAnIndexKey(t *testing.T) {
	t.Parallel()
	in := story(t)[0]
	long := "Mallory " + strings.Repeat("é", 1500) + " <m@example.com>" // 3,024 bytes
	in.Actor.Name = long
	r, err := auditw.Record(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Actor) > auditw.MaxActor || !utf8.ValidString(r.Actor) || !strings.HasPrefix(r.Actor, "Mallory éé") ||
		!strings.HasSuffix(r.Actor, fmt.Sprintf("… (cut: %d bytes; the whole actor is in the body)", len(long))) {
		t.Errorf("actor of %d bytes recorded as %d bytes: %q", len(long), len(r.Actor), r.Actor)
	}
	var env message.Envelope
	if err := json.Unmarshal(r.Body, &env); err != nil || env.Actor.Name != long {
		t.Errorf("the body does not keep the whole actor: %v", err)
	}
	l := newLog(t)
	if n, err := l.Append(t.Context(), r); err != nil || n != 1 {
		t.Fatalf("Append = %d, %v", n, err)
	}
	if got := auditw.Explain(r).Author; !strings.HasPrefix(got, "Mallory") || !strings.HasSuffix(got, "body) (git)") {
		t.Errorf("Explain's author = %q", got)
	}
	in.Actor.Name = strings.Repeat("a", auditw.MaxActor)
	if r, _ := auditw.Record(in); r.Actor != in.Actor.Name {
		t.Errorf("an actor of %d bytes was cut", auditw.MaxActor)
	}
}
