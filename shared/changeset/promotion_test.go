package changeset

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)

func promoting(soak time.Duration) *ChangeSet {
	cs := diamond()
	cs.ID, cs.CorrelationID, cs.Env = "root/dev", "root", "dev"
	cs.Promotion = &Promotion{Next: "qa", Then: []string{"prod"}, Soak: soak}
	cs.Start()
	return cs
}

func TestSuccessMakesThePromotionDueAfterTheSoak(t *testing.T) {
	t.Parallel()
	cs := promoting(10 * time.Minute)
	cs.SettlePromotion(t0)
	if !cs.Promotion.DueAt.IsZero() || cs.PromotionDue(t0.Add(time.Hour)) {
		t.Fatal("due before the change set is done")
	}
	cs.MarkApplied("vpc", []string{"vpc_id"})
	cs.MarkApplied("cluster", []string{})
	if !cs.Succeeded() || cs.Stopped() != "" {
		t.Fatalf("succeeded %v, stopped %q", cs.Succeeded(), cs.Stopped())
	}
	cs.SettlePromotion(t0)
	cs.SettlePromotion(t0.Add(time.Minute)) // decided once
	if due := t0.Add(10 * time.Minute); !cs.Promotion.DueAt.Equal(due) || !cs.Promotion.Soaked {
		t.Fatalf("due %v soaked %v, want %v", cs.Promotion.DueAt, cs.Promotion.Soaked, due)
	}
	if cs.PromotionDue(t0.Add(10*time.Minute-time.Millisecond)) || !cs.PromotionDue(t0.Add(10*time.Minute)) {
		t.Error("due exactly when the soak ends")
	}
	if cs.NextChangeSetID() != "root/qa" {
		t.Errorf("next change set %q", cs.NextChangeSetID())
	}
	cs.MarkPromoted(t0.Add(11 * time.Minute))
	if cs.PromotionDue(t0.Add(time.Hour)) {
		t.Error("due again once promoted")
	}
}

func TestNothingAppliedIsNothingToSoak(t *testing.T) {
	t.Parallel()
	cs := &ChangeSet{ID: "root/dev", Nodes: map[string]*Node{}, Promotion: &Promotion{Next: "prod", Soak: time.Hour}}
	cs.SettlePromotion(t0)
	if !cs.PromotionDue(t0) || cs.Promotion.Soaked {
		t.Errorf("an empty change set promotes at once: %+v", cs.Promotion)
	}
}

func TestWhatStopsAPromotion(t *testing.T) {
	t.Parallel()
	failed := promoting(0)
	failed.MarkFailed("vpc", "apply: quota exceeded\nmore")
	superseded := diamond() // queued, nothing started
	superseded.Promotion = &Promotion{Next: "prod"}
	if err := superseded.Supersede("later", "superseded by later"); err != nil {
		t.Fatal(err)
	}
	rejected := promoting(0)
	rejected.Rejected = "dependency cycle: a -> b -> a\n…"
	for name, c := range map[string]struct {
		cs   *ChangeSet
		want string
	}{
		"failed":     {failed, "vpc failed (" + failed.Nodes["vpc"].DeploymentID + "): apply: quota exceeded"},
		"superseded": {superseded, "superseded by later"},
		"rejected":   {rejected, "rejected: dependency cycle: a -> b -> a"},
	} {
		if got := c.cs.Stopped(); !strings.HasPrefix(got, c.want) || c.cs.Succeeded() {
			t.Errorf("%s: stopped %q (want %q), succeeded %v", name, got, c.want, c.cs.Succeeded())
		}
		c.cs.SettlePromotion(t0)
		if !c.cs.Promotion.DueAt.IsZero() {
			t.Errorf("%s: promotion due", name)
		}
	}
}

func TestSkipSoak(t *testing.T) {
	t.Parallel()
	cs := promoting(time.Hour)
	if err := cs.SkipSoak("grace", "urgent", t0); !errors.Is(err, ErrNoSoak) {
		t.Errorf("skip before success: %v", err)
	}
	cs.MarkApplied("vpc", []string{})
	cs.SettlePromotion(t0)
	for _, nobody := range []string{"", " "} { // who ended the soak is on the record: nobody may not
		if err := cs.SkipSoak(nobody, "verified by hand", t0.Add(time.Minute)); err == nil || cs.Promotion.SoakSkipped != nil {
			t.Errorf("a soak ended by %q: %v, skipped %+v", nobody, err, cs.Promotion.SoakSkipped)
		}
	}
	if err := cs.SkipSoak("grace", " \n", t0.Add(time.Minute)); err == nil || cs.Promotion.SoakSkipped != nil { // why is on the record
		t.Errorf("a soak ended without a reason: %v, skipped %+v", err, cs.Promotion.SoakSkipped)
	}
	if err := cs.SkipSoak("grace", "verified by hand", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if !cs.PromotionDue(t0.Add(time.Minute)) || cs.Promotion.SoakSkipped.By != "grace" {
		t.Errorf("skipped soak: %+v", cs.Promotion)
	}
	if err := cs.SkipSoak("ada", "again", t0.Add(2*time.Minute)); !errors.Is(err, ErrNoSoak) {
		t.Errorf("a second skip: %v", err)
	}
	late := promoting(time.Minute)
	late.MarkApplied("vpc", []string{})
	late.SettlePromotion(t0)
	if err := late.SkipSoak("grace", "x", t0.Add(time.Hour)); !errors.Is(err, ErrNoSoak) {
		t.Errorf("skipping a soak that is over: %v", err)
	}
}

func TestModuleCommit(t *testing.T) {
	t.Parallel()
	cs := &ChangeSet{Commit: "head", Nodes: map[string]*Node{"a": {Commit: "old"}, "b": {}}}
	if cs.ModuleCommit("a") != "old" || cs.ModuleCommit("b") != "head" || cs.ModuleCommit("missing") != "head" {
		t.Error("a node's own commit wins over the change set's")
	}
}
