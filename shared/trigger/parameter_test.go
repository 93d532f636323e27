package trigger_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/trigger"
)

func TestParameterChanged(t *testing.T) {
	t.Parallel()
	cli := message.Actor{Kind: "cli", Name: "dave"}
	e, err := trigger.ParameterChanged(trigger.ParameterChange{Env: "prod", Name: "/iac/vpc/core/runtime", Operation: "Update", Version: 4, Actor: cli, AutoApprove: true})
	if err != nil {
		t.Fatal(err)
	}
	p := checkTrigger[message.ParameterChanged](t, e, message.TypeParameterChanged)
	if e.Env != "prod" || e.Actor != cli || e.IdempotencyKey != "parameter.changed:/iac/vpc/core/runtime@4" || p.Version != 4 || !p.AutoApprove {
		t.Errorf("envelope %+v payload %+v", e, p)
	}
	// The time the version was written keys it too: a parameter deleted and created again
	// starts again at version 1.
	at := time.Date(2026, 12, 5, 10, 4, 1, 123456789, time.FixedZone("CET", 3600))
	wt, err := trigger.ParameterChanged(trigger.ParameterChange{Env: "prod", Name: "/iac/vpc/core/runtime", Operation: "Update", Version: 4, WrittenAt: at, Actor: cli})
	if err != nil {
		t.Fatal(err)
	}
	if p := checkTrigger[message.ParameterChanged](t, wt, message.TypeParameterChanged); wt.IdempotencyKey != "parameter.changed:/iac/vpc/core/runtime@4@2026-12-05T09:04:01.123Z" || !p.WrittenAt.Equal(at) {
		t.Errorf("written at %s: key %q, payload %+v", at, wt.IdempotencyKey, p)
	}
	// An event says no version: keyed by the event, and nobody is named.
	ev, err := trigger.ParameterChanged(trigger.ParameterChange{Env: "prod", Name: "/iac/vpc/core/config", Operation: "Create", EventID: "ev-1"})
	if err != nil {
		t.Fatal(err)
	}
	checkTrigger[message.ParameterChanged](t, ev, message.TypeParameterChanged)
	if ev.IdempotencyKey != "parameter.changed:/iac/vpc/core/config@event:ev-1" || ev.Actor != (message.Actor{Kind: "iam", Name: trigger.UnknownModifier}) {
		t.Errorf("event: key %q actor %+v", ev.IdempotencyKey, ev.Actor)
	}
	for name, pc := range map[string]trigger.ParameterChange{
		"no name":              {Env: "prod", Operation: "Update", Version: 1},
		"no environment":       {Name: "/iac/vpc/core/config", Operation: "Update", Version: 1},
		"environment a path":   {Env: "prod/eu", Name: "/iac/vpc/core/config", Operation: "Update", Version: 1},
		"no operation":         {Env: "prod", Name: "/iac/vpc/core/config", Version: 1},
		"negative version":     {Env: "prod", Name: "/iac/vpc/core/config", Operation: "Update", Version: -1},
		"no version, no event": {Env: "prod", Name: "/iac/vpc/core/config", Operation: "Update"},
		"a time, no version":   {Env: "prod", Name: "/iac/vpc/core/config", Operation: "Update", EventID: "ev-1", WrittenAt: time.Unix(1, 0)},
	} {
		if _, err := trigger.ParameterChanged(pc); !errors.Is(err, trigger.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

// The reconcile job publishes the trigger of each component parameter's current version that
// Karma did not write and that was not ingested yet — once.
func TestReconciler(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := embedded.Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err := embedded.NewParamStore(db, "prod")
	if err != nil {
		t.Fatal(err)
	}
	seen, err := embedded.NewSeen(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	put := func(name, value, user, desc string) {
		t.Helper()
		if _, err := st.Put(ctx, params.PutInput{Name: name, Value: value, User: user, Description: desc}); err != nil {
			t.Fatal(err)
		}
	}
	put("/iac/vpc/core/config", `{"cidr":"10.0.0.0/16"}`, "karma:ci", params.Provenance("commit=abc file=x", `{"cidr":"10.0.0.0/16"}`))
	put("/iac/vpc/core/config", `{"cidr":"10.1.0.0/16"}`, "arn:aws:iam::1:user/eve", "")
	put("/iac/vpc/core/runtime", `{"vpc_id":"v"}`, "karma:ci", params.Provenance("deployment=dep-1", `{"vpc_id":"v"}`))
	put("/iac/zone/main/runtime", `{"zone_id":"Z"}`, "eve", "")
	put("/iac/unrelated", `x`, "eve", "")
	put("/iac/environment", `prod`, "eve", "")
	put("/iac/zone/old/runtime", `{"zone_id":"Y"}`, "eve", "")
	zone, err := st.Get(ctx, "/iac/zone/main/runtime")
	if err != nil {
		t.Fatal(err)
	}
	// Resolved already: its key names the time the version was written (message.ParameterVersionKey)...
	if err := seen.Mark(ctx, "resolve|runtime:/iac/zone/main/runtime@1@"+zone.LastModified.UTC().Format("2006-01-02T15:04:05.000Z07:00")); err != nil {
		t.Fatal(err)
	}
	// ... or, resolved before that rule, does not.
	if err := seen.Mark(ctx, "resolve|runtime:/iac/zone/old/runtime@1"); err != nil {
		t.Fatal(err)
	}
	cfg, err := st.Get(ctx, "/iac/vpc/core/config")
	if err != nil {
		t.Fatal(err)
	}
	pub := &publisher{}
	rc := trigger.Reconciler{Env: "prod", Prefix: "/iac", Store: st, Seen: seen, Publisher: pub}
	msgs, err := rc.Run(ctx)
	if err != nil || len(msgs) != 1 || len(pub.msgs) != 1 ||
		msgs[0].IdempotencyKey != "parameter.changed:/iac/vpc/core/config@2@"+cfg.LastModified.UTC().Format("2006-01-02T15:04:05.000Z07:00") {
		t.Fatalf("reconcile: %v %v", msgs, err)
	}
	p := checkTrigger[message.ParameterChanged](t, msgs[0], message.TypeParameterChanged)
	if p.Version != 2 || !p.WrittenAt.Equal(cfg.LastModified) || msgs[0].Env != "prod" {
		t.Errorf("trigger %+v", p)
	}
	// Published once: not again on the next run, though ingest has not handled it yet (or
	// dead-lettered it).
	if again, err := rc.Run(ctx); err != nil || len(again) != 0 {
		t.Errorf("a version published already was published again: %v %v", again, err)
	}
	// Nor, ingested, by another job.
	rc.Seen = seenStore(t)
	if err := rc.Seen.Mark(ctx, pipeline.StageIngest+"|"+msgs[0].IdempotencyKey); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"resolve|runtime:/iac/zone/main/runtime@1@" + zone.LastModified.UTC().Format("2006-01-02T15:04:05.000Z07:00"), "resolve|runtime:/iac/zone/old/runtime@1"} {
		if err := rc.Seen.Mark(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if again, err := rc.Run(ctx); err != nil || len(again) != 0 {
		t.Errorf("an ingested version was published again: %v %v", again, err)
	}
	// A trigger of the same version made before the time was in its key, ingested before the
	// upgrade, counts too.
	put("/iac/zone/main/config", `{}`, "eve", "")
	if err := rc.Seen.Mark(ctx, pipeline.StageIngest+"|parameter.changed:/iac/zone/main/config@1"); err != nil {
		t.Fatal(err)
	}
	if again, err := rc.Run(ctx); err != nil || len(again) != 0 {
		t.Errorf("a version ingested before the upgrade was published again: %v %v", again, err)
	}
	pub.fail = errors.New("bus down")
	put("/iac/vpc/core/config", `{"cidr":"10.2.0.0/16"}`, "eve", "")
	if _, err := rc.Run(ctx); pipeline.Classify(err) != pipeline.Retry {
		t.Errorf("a failed publish: %v, want it retried", err)
	}
	pub.fail = nil
	if again, err := rc.Run(ctx); err != nil || len(again) != 1 || again[0].IdempotencyKey == msgs[0].IdempotencyKey {
		t.Errorf("after a failed publish, the next run: %v %v; want version 3 published", again, err)
	}
}
