package drift

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/message/messagetest"
)

type records struct {
	mu sync.Mutex
	m  map[string]string
}

func (r *records) RecordFirst(_ context.Context, key, value string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.m[key]; ok {
		return v, nil
	}
	r.m[key] = value
	return value, nil
}

func (r *records) Recorded(_ context.Context, key string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[key], nil
}

type publisher struct {
	sent []message.Envelope
	err  error
}

func (p *publisher) Publish(_ context.Context, msgs ...message.Envelope) error {
	if p.err != nil {
		return p.err
	}
	p.sent = append(p.sent, msgs...)
	return nil
}

func findings() []Finding {
	mk := func(id, comp, kind, reason string) Finding {
		return Finding{Env: "prod", DriftDetected: message.DriftDetected{DriftID: id, Component: comp, Kind: kind, Reason: reason,
			Detail: kind + " " + reason, Commit: head}}
	}
	return []Finding{
		mk("drift-0000000000000001", "prod/vpc/core", message.DriftConfig, message.DriftDiffers),
		mk("drift-0000000000000002", "prod/vpc/core", message.DriftRuntime, message.DriftDiffers),
		mk("drift-0000000000000003", "prod/vpc/old", message.DriftConfig, message.DriftOrphan),
	}
}

func TestRecorderCorrectsOnceWhenDriftIsNotAllowed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	recs, pub := &records{m: map[string]string{}}, &publisher{}
	r := &Recorder{Records: recs, Publisher: pub, Actor: message.Actor{Kind: "cli", Name: "grace"}}
	rep := &Report{Commit: head, Envs: []EnvReport{{Env: "prod", Findings: findings()}}}
	if err := r.Record(ctx, rep); err != nil {
		t.Fatal(err)
	}
	messagetest.ValidateAll(t, pub.sent)
	if len(pub.sent) != 4 {
		t.Fatalf("published %d messages, want 3 drift.detected and 1 change.detected", len(pub.sent))
	}
	corr := pub.sent[3]
	var cd message.ChangeDetected
	if err := message.Decode(corr, &cd); err != nil {
		t.Fatal(err)
	}
	if corr.Type != message.TypeChangeDetected || cd.Source != message.SourceDrift || cd.ChangeSetID != corr.ID || corr.Env != "prod" ||
		len(cd.Components) != 1 || cd.Components[0] != (message.ComponentRef{Type: "vpc", Nickname: "core"}) ||
		len(cd.Removed) != 1 || cd.Removed[0].Nickname != "old" || len(cd.Drift) != 3 || cd.AutoApprove {
		t.Errorf("corrective change %+v (%s)", cd, corr.Type)
	}
	if rep.Envs[0].Corrective != corr.ID {
		t.Errorf("report's corrective change %q, want %s", rep.Envs[0].Corrective, corr.ID)
	}
	for i, m := range pub.sent[:3] {
		var d message.DriftDetected
		if err := message.Decode(m, &d); err != nil {
			t.Fatal(err)
		}
		if d.Action != message.DriftCorrect || d.ChangeSetID != corr.ID || m.IdempotencyKey != "drift.detected:"+d.DriftID || m.CorrelationID != m.ID {
			t.Errorf("drift event %d: %+v key %s", i, d, m.IdempotencyKey)
		}
	}

	// The same drifts seen again: one event each, already recorded; nothing published.
	again := &Report{Commit: head, Envs: []EnvReport{{Env: "prod", Findings: findings()}}}
	if err := r.Record(ctx, again); err != nil {
		t.Fatal(err)
	}
	if len(pub.sent) != 4 || again.Envs[0].Corrective != "" {
		t.Errorf("a second run published %d more messages, corrective %q", len(pub.sent)-4, again.Envs[0].Corrective)
	}
	for _, f := range again.Envs[0].Findings {
		if f.Recorded == nil || f.Recorded.ChangeSetID != corr.ID || f.Action != message.DriftCorrect || f.ChangeSetID != corr.ID {
			t.Errorf("%s seen again: %+v", f.DriftID, f)
		}
	}
}

func TestRecorderOnlyReportsWhenDriftIsAllowed(t *testing.T) {
	t.Parallel()
	recs, pub := &records{m: map[string]string{}}, &publisher{}
	r := &Recorder{Records: recs, Publisher: pub, Actor: message.Actor{Kind: "karma", Name: "drift check"}}
	rep := &Report{Commit: head, Envs: []EnvReport{{Env: "prod", AllowDrift: true, Findings: findings()[:1]}}}
	if err := r.Record(context.Background(), rep); err != nil {
		t.Fatal(err)
	}
	messagetest.ValidateAll(t, pub.sent)
	if len(pub.sent) != 1 || pub.sent[0].Type != message.TypeDriftDetected {
		t.Fatalf("published %+v, want one drift.detected", pub.sent)
	}
	if f := rep.Envs[0].Findings[0]; f.Action != message.DriftReport || f.ChangeSetID != "" || rep.Envs[0].Corrective != "" {
		t.Errorf("finding %+v, corrective %q", f, rep.Envs[0].Corrective)
	}
}

func TestRecorderDoesNotClaimWhatItCouldNotPublish(t *testing.T) {
	t.Parallel()
	recs, pub := &records{m: map[string]string{}}, &publisher{err: errors.New("queue unavailable")}
	r := &Recorder{Records: recs, Publisher: pub}
	rep := &Report{Commit: head, Envs: []EnvReport{{Env: "prod", Findings: findings()}}}
	if err := r.Record(context.Background(), rep); err == nil {
		t.Fatal("a failed publish was not reported")
	}
	for k := range recs.m {
		if strings.HasPrefix(k, "drift|") {
			t.Errorf("drift recorded though never published: %s", k)
		}
	}
}

// A run that published its drifts and corrective change but could not record them is followed
// by one that publishes them again (the pipeline keeps the first, by their keys): it names the
// corrective change the first run made, not one of its own that was never made.
func TestARepublishedCorrectionNamesTheChangeMadeFirst(t *testing.T) {
	t.Parallel()
	recs, pub := &failingDriftRecords{records: records{m: map[string]string{}}}, &publisher{}
	r := &Recorder{Records: recs, Publisher: pub, Actor: message.Actor{Kind: "karma", Name: "drift check"}}
	recs.fail = true
	if err := r.Record(context.Background(), &Report{Commit: head, Envs: []EnvReport{{Env: "prod", Findings: findings()}}}); err == nil {
		t.Fatal("a failed record was not reported")
	}
	first := pub.sent[len(pub.sent)-1]
	if first.Type != message.TypeChangeDetected {
		t.Fatalf("last published %s, want the corrective change.detected", first.Type)
	}
	recs.fail = false
	rep := &Report{Commit: head, Envs: []EnvReport{{Env: "prod", Findings: findings()}}}
	if err := r.Record(context.Background(), rep); err != nil {
		t.Fatal(err)
	}
	again := pub.sent[len(pub.sent)-1]
	var p message.ChangeDetected
	if err := message.Decode(again, &p); err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID || again.CorrelationID != first.ID || p.ChangeSetID != first.ID || again.IdempotencyKey != first.IdempotencyKey {
		t.Errorf("published again as %s (change set %s, key %s), want the first run's %s (key %s)", again.ID, p.ChangeSetID, again.IdempotencyKey, first.ID, first.IdempotencyKey)
	}
	messagetest.Validate(t, again)
	if rep.Envs[0].Corrective != first.ID {
		t.Errorf("report names corrective %s, want %s", rep.Envs[0].Corrective, first.ID)
	}
	for _, f := range rep.Envs[0].Findings {
		if f.ChangeSetID != first.ID {
			t.Errorf("%s recorded with change set %s, want %s", f.DriftID, f.ChangeSetID, first.ID)
		}
	}
}

// failingDriftRecords refuses the drift records (drift|…) while fail is set.
type failingDriftRecords struct {
	records
	fail bool
}

func (f *failingDriftRecords) RecordFirst(ctx context.Context, key, value string) (string, error) {
	if f.fail && strings.HasPrefix(key, "drift|") {
		return "", errors.New("records unavailable")
	}
	return f.records.RecordFirst(ctx, key, value)
}

func TestMarkRecordedPublishesNothing(t *testing.T) {
	t.Parallel()
	recs, pub := &records{m: map[string]string{}}, &publisher{}
	first := &Report{Envs: []EnvReport{{Env: "prod", Findings: findings()[:1]}}}
	if err := (&Recorder{Records: recs, Publisher: pub}).Record(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	sent := len(pub.sent)
	rep := &Report{Envs: []EnvReport{{Env: "prod", Findings: findings()}}}
	if err := MarkRecorded(context.Background(), recs, rep); err != nil {
		t.Fatal(err)
	}
	fs := rep.Envs[0].Findings
	if fs[0].Recorded == nil || fs[0].ChangeSetID == "" || fs[1].Recorded != nil || fs[2].Recorded != nil || len(pub.sent) != sent || driftRecords(recs) != 1 {
		t.Errorf("marked %+v; published %d more", fs, len(pub.sent)-sent)
	}
}

// driftRecords counts the drift records (drift|…) among recs.
func driftRecords(recs *records) int {
	n := 0
	for k := range recs.m {
		if strings.HasPrefix(k, "drift|") {
			n++
		}
	}
	return n
}

// A drift of a component whose rollback stands is reported, not corrected: the corrective change
// set deploys the head's config, which would undo the rollback. The others are corrected.
func TestRecorderDoesNotCorrectOverAStandingRollback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	recs, pub := &records{m: map[string]string{}}, &publisher{}
	r := &Recorder{Records: recs, Publisher: pub, Actor: message.Actor{Kind: "cli", Name: "grace"}}
	fs := findings()
	fs[1].Rollback = &RolledBack{Component: "prod/vpc/core", DeploymentID: "dep-r", ChangeSetID: "cs-r", RolledBackTo: "dep-first"}
	fs[0].Component, fs[0].DriftID = "prod/app/web", "drift-0000000000000004"
	rep := &Report{Commit: head, Envs: []EnvReport{{Env: "prod", Findings: fs}}}
	if err := r.Record(ctx, rep); err != nil {
		t.Fatal(err)
	}
	messagetest.ValidateAll(t, pub.sent)
	var cd message.ChangeDetected
	if len(pub.sent) != 4 || message.Decode(pub.sent[3], &cd) != nil {
		t.Fatalf("published %d messages, want 3 drift.detected and 1 change.detected", len(pub.sent))
	}
	if len(cd.Components) != 1 || cd.Components[0] != (message.ComponentRef{Type: "app", Nickname: "web"}) || len(cd.Drift) != 2 {
		t.Errorf("corrective change: components %+v, drifts %v; want app/web and the orphan only, not vpc/core", cd.Components, cd.Drift)
	}
	held := rep.Envs[0].Findings[1]
	if held.Action != message.DriftReport || held.ChangeSetID != "" || !strings.Contains(held.Detail, "dep-r") || !strings.Contains(held.Detail, "karma rollback dep-first") {
		t.Errorf("the drift under the rollback: action %s, change set %q, detail %q", held.Action, held.ChangeSetID, held.Detail)
	}

	// Alone, it queues no corrective change at all.
	pub = &publisher{}
	r = &Recorder{Records: &records{m: map[string]string{}}, Publisher: pub, Actor: message.Actor{Kind: "cli", Name: "grace"}}
	rep = &Report{Commit: head, Envs: []EnvReport{{Env: "prod", Findings: fs[1:2]}}}
	if err := r.Record(ctx, rep); err != nil {
		t.Fatal(err)
	}
	if len(pub.sent) != 1 || pub.sent[0].Type != message.TypeDriftDetected || rep.Envs[0].Corrective != "" {
		t.Errorf("published %d (corrective %q), want the drift.detected alone", len(pub.sent), rep.Envs[0].Corrective)
	}
}
