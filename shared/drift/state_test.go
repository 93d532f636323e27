package drift

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
)

func TestStateOfChangeSets(t *testing.T) {
	t.Parallel()
	applied := func(dep string) *changeset.Node {
		return &changeset.Node{DeploymentID: dep, State: changeset.Applied, Config: json.RawMessage(`{"v":"` + dep + `"}`),
			Outcome: &changeset.Outcome{RuntimeHash: "h-" + dep, Runtime: json.RawMessage(`{}`)}}
	}
	sets := []*changeset.ChangeSet{ // newest first, as changeset.Store.List gives them
		{ID: "cs-3", Env: "prod", Commit: "c3", CreatedAt: time.Unix(3, 0), Nodes: map[string]*changeset.Node{
			"prod/vpc/core": {DeploymentID: "dep-3a", State: changeset.Planned}, // waiting for approval
			"prod/app/api":  applied("dep-3b"),
		}},
		{ID: "cs-rejected", Env: "prod", Commit: "c4", RejectedBy: "grace", RejectReason: "not this week", Nodes: map[string]*changeset.Node{
			"prod/db/main": {DeploymentID: "dep-4a", State: changeset.Planned}, // rejected, not yet skipped by resolve
		}},
		{ID: "cs-invalid", Env: "prod", Commit: "c5", Rejected: "schema error", Nodes: map[string]*changeset.Node{
			"prod/app/api": {State: changeset.Pending},
		}},
		{ID: "cs-expired", Env: "prod", Commit: "c6", ExpiredAt: time.Unix(5, 0), Nodes: map[string]*changeset.Node{
			"prod/app/api": {State: changeset.Planned},
		}},
		{ID: "cs-2", Env: "prod", Commit: "c2", Nodes: map[string]*changeset.Node{
			"prod/vpc/core": applied("dep-2a"),
			"prod/old/gone": {DeploymentID: "dep-2c", State: changeset.Skipped, Destroy: true},
		}},
		{ID: "cs-1", Env: "prod", Commit: "c1", Nodes: map[string]*changeset.Node{
			"prod/vpc/core": applied("dep-1a"),
			"prod/db/main":  applied("dep-1b"),
		}},
		{ID: "cs-dev", Env: "dev", Commit: "c0", Nodes: map[string]*changeset.Node{"dev/vpc/core": {State: changeset.Pending}}},
	}
	st := StateOf(sets, "prod")
	want := map[string]Deployment{
		"prod/vpc/core": {ID: "dep-2a", ChangeSetID: "cs-2", Commit: "c2"},
		"prod/app/api":  {ID: "dep-3b", ChangeSetID: "cs-3", Commit: "c3"},
		"prod/db/main":  {ID: "dep-1b", ChangeSetID: "cs-1", Commit: "c1"},
	}
	if len(st.Last) != len(want) {
		t.Errorf("last deployments %+v, want %d", st.Last, len(want))
	}
	for id, w := range want {
		got := st.Last[id]
		if got.ID != w.ID || got.ChangeSetID != w.ChangeSetID || got.Commit != w.Commit || got.RuntimeHash != "h-"+w.ID || string(got.Config) != `{"v":"`+w.ID+`"}` {
			t.Errorf("%s: last %+v, want %+v", id, got, w)
		}
	}
	if len(st.Busy) != 1 || st.Busy["prod/vpc/core"] != "cs-3" {
		t.Errorf("busy %v, want prod/vpc/core (cs-3 waits for its approval); rejected, invalid and expired change sets deploy nothing more; dev's change set is another environment", st.Busy)
	}
}

// A rollback's root deploys the module of the commit it returns to, not its change set's (the
// head when the rollback was resolved): the infrastructure comparison refreshes the workspace
// with the module the deployment applied, else it compares the state with another module.
func TestStateOfARollbackNamesItsModuleCommit(t *testing.T) {
	t.Parallel()
	sets := []*changeset.ChangeSet{
		{ID: "cs-rollback", Env: "prod", Commit: "c-head", Rollback: &message.Rollback{DeploymentID: "dep-first"}, Nodes: map[string]*changeset.Node{
			"prod/vpc/core": {DeploymentID: "dep-r", State: changeset.Applied, Root: true, Commit: "c-first", Config: json.RawMessage(`{"cidr":"10.0.0.0/16"}`),
				GitConfigHash: "git-hash", Outcome: &changeset.Outcome{RuntimeHash: "h", Runtime: json.RawMessage(`{}`)}},
			"prod/app/api": {DeploymentID: "dep-a", State: changeset.Applied, Config: json.RawMessage(`{}`),
				Outcome: &changeset.Outcome{RuntimeHash: "h", Runtime: json.RawMessage(`{}`)}},
		}},
	}
	st := StateOf(sets, "prod")
	if got := st.Last["prod/vpc/core"].Commit; got != "c-first" {
		t.Errorf("the rolled-back component's last deployment names commit %q, want the module's c-first", got)
	}
	if got := st.Last["prod/app/api"].Commit; got != "c-head" {
		t.Errorf("a dependent's last deployment names commit %q, want its change set's c-head", got)
	}
	if d := st.Last["prod/vpc/core"]; d.RolledBackTo != "dep-first" || d.GitConfigHash != "git-hash" {
		t.Errorf("the rollback's root: rolled back to %q, Git's config hash %q; want dep-first, git-hash", d.RolledBackTo, d.GitConfigHash)
	}
	if d := st.Last["prod/app/api"]; d.RolledBackTo != "" || d.GitConfigHash != "" {
		t.Errorf("a dependent of the rollback: %+v, want no rollback of its own", d)
	}
}
