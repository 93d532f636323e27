// Package lineagetest is the conformance suite every lineage.Store implementation passes
// (embedded SQLite, Neptune over Gremlin).
package lineagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/message"
)

// unique returns a suffix no other subtest or run uses: stores may be shared (one Gremlin graph
// for every test), so every subtest names its own changes, deployments, roots and components.
func unique(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func at(minute int) time.Time { return time.Date(2025, 6, 1, 12, minute, 0, 123456789, time.UTC) }

// same compares by JSON form, which is what every implementation promises to keep.
func same(t *testing.T, what string, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func ids(ds []lineage.Deployment) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

func changeIDs(cs []lineage.Change) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Run checks the lineage.Store contract.
func Run(t *testing.T, newStore func(t *testing.T) lineage.Store) {
	ctx := context.Background()
	actor := message.Actor{Kind: "git", Name: "Ada <ada@example.com>"}

	t.Run("a change and its roots", func(t *testing.T) {
		s, u := newStore(t), unique(t)
		c := lineage.Change{ID: "cs-" + u, Env: "dev", CorrelationID: "corr-" + u, Source: message.SourceGit,
			RootCauses: []message.Cause{{Kind: message.CauseCommit, ID: "sha-" + u}, {Kind: message.CauseRequest, ID: "cr-" + u, Keys: []string{}}},
			Actor:      actor, At: at(1), Affected: []string{"dev/vpc/core", "dev/app/api"},
			Commit: "9f3c2a71e4b05d8c6a1f7e2b3d4c5a6978e1f0ab", QueuedBehind: []string{"cs-earlier-" + u}}
		must(t, s.RecordChange(ctx, c))
		got, err := s.Change(ctx, c.ID)
		must(t, err)
		same(t, "change", got, c)

		c.Rejected = "cycle: dev/app/a -> dev/app/b -> dev/app/a" // an upsert, not a second change
		must(t, s.RecordChange(ctx, c))
		got, err = s.Change(ctx, c.ID)
		must(t, err)
		same(t, "change after upsert", got, c)
		for _, r := range c.RootCauses {
			cs, err := s.ChangesByRoot(ctx, r.Kind, r.ID)
			must(t, err)
			same(t, "changes by root "+r.Kind, cs, []lineage.Change{c})
		}
		cs, err := s.ChangesByRoot(ctx, message.CauseParameter, "sha-"+u) // same id, other kind
		must(t, err)
		if len(cs) != 0 {
			t.Errorf("changes by root of another kind: %v", changeIDs(cs))
		}
	})

	t.Run("changes by root, oldest first", func(t *testing.T) {
		s, u := newStore(t), unique(t)
		root := message.Cause{Kind: message.CauseParameter, ID: "/iac/vpc/core/config@" + u}
		for i, m := range []int{30, 10, 20} { // recorded out of order
			c := lineage.Change{ID: "cs-" + u + "-" + string(rune('a'+i)), Env: "dev", Source: message.SourceParameter,
				RootCauses: []message.Cause{root}, Actor: actor, At: at(m)}
			must(t, s.RecordChange(ctx, c))
		}
		cs, err := s.ChangesByRoot(ctx, root.Kind, root.ID)
		must(t, err)
		same(t, "order", changeIDs(cs), []string{"cs-" + u + "-b", "cs-" + u + "-c", "cs-" + u + "-a"})
	})

	t.Run("deployments with causes", func(t *testing.T) {
		s, u := newStore(t), unique(t)
		sha := "sha-" + u
		c := lineage.Change{ID: "cs-" + u, Env: "prod", Source: message.SourceGit, RootCauses: []message.Cause{{Kind: message.CauseCommit, ID: sha}},
			Actor: actor, At: at(0), Affected: []string{"prod/vpc/core", "prod/app/api", "prod/app/web"}}
		must(t, s.RecordChange(ctx, c))
		vpc := lineage.Deployment{ID: "dep-" + u + "-vpc", ChangeSetID: c.ID, Env: "prod", Component: "prod/vpc/core", Wave: 0,
			CausedBy: []message.Cause{{Kind: message.CauseCommit, ID: sha}}, Status: lineage.StatusScheduled, At: at(1), Actor: actor}
		api := lineage.Deployment{ID: "dep-" + u + "-api", ChangeSetID: c.ID, Env: "prod", Component: "prod/app/api", Wave: 1,
			CausedBy: []message.Cause{{Kind: message.CauseDeployment, ID: vpc.ID, Keys: []string{"vpc_id", "subnet_ids"}}},
			Status:   lineage.StatusScheduled, At: at(2), Actor: message.Actor{Kind: "karma", Name: "karma"}}
		web := lineage.Deployment{ID: "dep-" + u + "-web", ChangeSetID: c.ID, Env: "prod", Component: "prod/app/web", Wave: 1,
			CausedBy: []message.Cause{{Kind: message.CauseDeployment, ID: vpc.ID, Keys: []string{}, Trigger: message.TriggerOnAnyApply}, {Kind: message.CauseRequest, ID: "cr-" + u}},
			Status:   lineage.StatusSkipped, Detail: "no changed key reaches it", At: at(3), Actor: actor}
		for _, d := range []lineage.Deployment{web, api, vpc} {
			must(t, s.RecordDeployment(ctx, d))
		}
		for _, d := range []lineage.Deployment{vpc, api, web} {
			got, err := s.Deployment(ctx, d.ID)
			must(t, err)
			same(t, "deployment "+d.ID, got, d)
		}
		ds, err := s.CausedBy(ctx, message.CauseDeployment, vpc.ID)
		must(t, err)
		same(t, "caused by the vpc deployment", ds, []lineage.Deployment{api, web})
		ds, err = s.CausedBy(ctx, message.CauseCommit, sha)
		must(t, err)
		same(t, "caused by the commit", ids(ds), []string{vpc.ID})
		ds, err = s.CausedBy(ctx, message.CauseRequest, "cr-"+u)
		must(t, err)
		same(t, "caused by the request", ids(ds), []string{web.ID})
		ds, err = s.CausedBy(ctx, message.CauseDeployment, api.ID)
		must(t, err)
		if len(ds) != 0 {
			t.Errorf("caused by a leaf: %v", ids(ds))
		}
		// Recording again (redelivery) changes nothing.
		must(t, s.RecordDeployment(ctx, api))
		ds, err = s.CausedBy(ctx, message.CauseDeployment, vpc.ID)
		must(t, err)
		same(t, "after redelivery", ids(ds), []string{api.ID, web.ID})
	})

	t.Run("set outcome", func(t *testing.T) {
		s, u := newStore(t), unique(t)
		d := lineage.Deployment{ID: "dep-" + u, ChangeSetID: "cs-" + u, Env: "dev", Component: "dev/vpc/core", Wave: 2,
			CausedBy: []message.Cause{{Kind: message.CauseCommit, ID: "sha-" + u}}, Status: lineage.StatusScheduled, At: at(5), Actor: actor}
		must(t, s.RecordDeployment(ctx, d))
		must(t, s.SetOutcome(ctx, d.ID, lineage.StatusApplied, "1 added", []string{"vpc_id"}, at(9)))
		got, err := s.Deployment(ctx, d.ID)
		must(t, err)
		want := d
		want.Status, want.Detail, want.ChangedKeys = lineage.StatusApplied, "1 added", []string{"vpc_id"}
		same(t, "after outcome", got, want)

		must(t, s.SetOutcome(ctx, d.ID, lineage.StatusFailed, "apply failed", nil, at(10)))
		got, err = s.Deployment(ctx, d.ID)
		must(t, err)
		want.Status, want.Detail, want.ChangedKeys = lineage.StatusFailed, "apply failed", nil
		same(t, "after second outcome", got, want)
	})

	t.Run("recording a deployment again keeps its outcome", func(t *testing.T) {
		s, u := newStore(t), unique(t)
		d := lineage.Deployment{ID: "dep-" + u, ChangeSetID: "cs-" + u, Env: "dev", Component: "dev/app/api", Wave: 1,
			CausedBy: []message.Cause{{Kind: message.CauseCommit, ID: "sha-" + u}}, Status: lineage.StatusScheduled, At: at(5), Actor: actor}
		must(t, s.RecordDeployment(ctx, d))
		must(t, s.SetOutcome(ctx, d.ID, lineage.StatusApplied, "2 changed", []string{"url"}, at(6)))
		again := d
		again.Wave = 3 // a late redelivery with other details
		must(t, s.RecordDeployment(ctx, again))
		got, err := s.Deployment(ctx, d.ID)
		must(t, err)
		want := again
		want.Status, want.Detail, want.ChangedKeys = lineage.StatusApplied, "2 changed", []string{"url"}
		same(t, "outcome kept", got, want)

		// A deployment still scheduled takes the status it is recorded with.
		d2 := d
		d2.ID = "dep-" + u + "-2"
		must(t, s.RecordDeployment(ctx, d2))
		d2.Status, d2.Detail = lineage.StatusBlocked, "upstream failed"
		must(t, s.RecordDeployment(ctx, d2))
		got, err = s.Deployment(ctx, d2.ID)
		must(t, err)
		same(t, "scheduled then blocked", got, d2)
	})

	t.Run("deployments of a component, newest first", func(t *testing.T) {
		s, u := newStore(t), unique(t)
		comp, other := "env"+u+"/app/api", "env"+u+"/vpc/core"
		mk := func(id string, minute int, component string) lineage.Deployment {
			return lineage.Deployment{ID: "dep-" + u + "-" + id, ChangeSetID: "cs-" + u + "-" + id, Env: "env" + u, Component: component,
				CausedBy: []message.Cause{{Kind: message.CauseRequest, ID: "cr-" + u}}, Status: lineage.StatusScheduled, At: at(minute), Actor: actor}
		}
		for _, d := range []lineage.Deployment{mk("b", 20, comp), mk("a", 10, comp), mk("d", 30, comp), mk("c", 30, comp), mk("x", 40, other)} {
			must(t, s.RecordDeployment(ctx, d))
		}
		ds, err := s.Deployments(ctx, comp)
		must(t, err)
		p := "dep-" + u + "-"
		same(t, "newest first, ties by id", ids(ds), []string{p + "c", p + "d", p + "b", p + "a"})
		same(t, "full record", ds[2], mk("b", 20, comp))
		ds, err = s.Deployments(ctx, "env"+u+"/app/never")
		must(t, err)
		if len(ds) != 0 {
			t.Errorf("deployments of an unknown component: %v", ids(ds))
		}
	})

	t.Run("unknown ids", func(t *testing.T) {
		s, u := newStore(t), unique(t)
		if _, err := s.Change(ctx, "cs-"+u); !errors.Is(err, lineage.ErrNotFound) {
			t.Errorf("Change: %v, want ErrNotFound", err)
		}
		if _, err := s.Deployment(ctx, "dep-"+u); !errors.Is(err, lineage.ErrNotFound) {
			t.Errorf("Deployment: %v, want ErrNotFound", err)
		}
		if err := s.SetOutcome(ctx, "dep-"+u, lineage.StatusApplied, "", nil, at(1)); !errors.Is(err, lineage.ErrNotFound) {
			t.Errorf("SetOutcome: %v, want ErrNotFound", err)
		}
		if ds, err := s.CausedBy(ctx, message.CauseCommit, "sha-"+u); err != nil || len(ds) != 0 {
			t.Errorf("CausedBy: %v %v", ids(ds), err)
		}
		if cs, err := s.ChangesByRoot(ctx, message.CauseCommit, "sha-"+u); err != nil || len(cs) != 0 {
			t.Errorf("ChangesByRoot: %v %v", changeIDs(cs), err)
		}
	})

	t.Run("what a deployment names before it is recorded is not found", func(t *testing.T) {
		s, u := newStore(t), unique(t)
		up := "dep-" + u + "-upstream"
		d := lineage.Deployment{ID: "dep-" + u, ChangeSetID: "cs-" + u, Env: "dev", Component: "dev/app/api",
			CausedBy: []message.Cause{{Kind: message.CauseDeployment, ID: up, Keys: []string{"vpc_id"}}}, Status: lineage.StatusScheduled, At: at(2), Actor: actor}
		must(t, s.RecordDeployment(ctx, d))
		if _, err := s.Change(ctx, d.ChangeSetID); !errors.Is(err, lineage.ErrNotFound) {
			t.Errorf("change set not recorded yet: %v, want ErrNotFound", err)
		}
		if _, err := s.Deployment(ctx, up); !errors.Is(err, lineage.ErrNotFound) {
			t.Errorf("upstream not recorded yet: %v, want ErrNotFound", err)
		}
		if err := s.SetOutcome(ctx, up, lineage.StatusApplied, "", nil, at(3)); !errors.Is(err, lineage.ErrNotFound) {
			t.Errorf("SetOutcome of the upstream: %v, want ErrNotFound", err)
		}
		ds, err := s.CausedBy(ctx, message.CauseDeployment, up)
		must(t, err)
		same(t, "caused by the upstream", ids(ds), []string{d.ID})
		c := lineage.Change{ID: d.ChangeSetID, Env: "dev", Source: message.SourceRequest, RootCauses: []message.Cause{{Kind: message.CauseRequest, ID: "cr-" + u}},
			Actor: actor, At: at(1), Affected: []string{"dev/app/api"}}
		must(t, s.RecordChange(ctx, c))
		got, err := s.Change(ctx, c.ID)
		must(t, err)
		same(t, "change recorded late", got, c)
		upd := lineage.Deployment{ID: up, ChangeSetID: "cs-" + u, Env: "dev", Component: "dev/vpc/core", Status: lineage.StatusApplied, At: at(0), Actor: actor}
		must(t, s.RecordDeployment(ctx, upd))
		gotUp, err := s.Deployment(ctx, up)
		must(t, err)
		same(t, "upstream recorded late", gotUp, upd)
	})

	t.Run("drift events of a component, newest first, upserted by id", func(t *testing.T) {
		s, u := newStore(t), unique(t)
		comp := "prod/vpc/core-" + u
		karma := message.Actor{Kind: "karma", Name: "drift check"}
		older := lineage.Drift{ID: "drift-" + u + "-1", Env: "prod", Component: comp, Kind: message.DriftRuntime, Reason: message.DriftDiffers,
			Detail: "not Karma's", Commit: "9f3c2a71e4b05d8c6a1f7e2b3d4c5a6978e1f0ab", Parameter: "/iac/vpc/core/runtime@3",
			Action: message.DriftReport, At: at(1), Actor: karma}
		newer := lineage.Drift{ID: "drift-" + u + "-2", Env: "prod", Component: comp, Kind: message.DriftConfig, Reason: message.DriftMissing,
			Detail: "/iac/vpc/core/config is missing", Commit: older.Commit, Action: message.DriftCorrect, ChangeSetID: "cs-" + u, At: at(2), Actor: karma}
		must(t, s.RecordDrift(ctx, older))
		must(t, s.RecordDrift(ctx, newer))
		must(t, s.RecordDrift(ctx, older)) // a redelivery: the same event
		got, err := s.Drifts(ctx, comp)
		must(t, err)
		same(t, "drifts", got, []lineage.Drift{newer, older})
		one, err := s.Drift(ctx, newer.ID)
		must(t, err)
		same(t, "drift", one, newer)
		if _, err := s.Drift(ctx, "drift-"+u+"-none"); !errors.Is(err, lineage.ErrNotFound) {
			t.Errorf("Drift of an unknown id: %v, want ErrNotFound", err)
		}
		if ds, err := s.Drifts(ctx, "prod/vpc/other-"+u); err != nil || len(ds) != 0 {
			t.Errorf("drifts of another component: %v %v", ds, err)
		}
	})
}
