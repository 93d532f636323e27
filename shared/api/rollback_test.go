package api

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/message"
)

// deployPush pushes files as a commit, runs it, approves it through the API and runs it to the
// end; it returns the commit and prod/vpc/core's deployment.
func (h *harness) deployPush(message string, files map[string]string) (string, string) {
	h.t.Helper()
	gittest.Git(h.t, h.origin.Work, "pull", "-q", "origin", "main")
	sha := h.origin.Commit(h.t, message, files)
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	id := h.push(sha, paths...)
	h.runUntilIdle()
	h.call("POST", "/changes/"+url.PathEscape(id)+"/approve", "approver", nil).want(http.StatusOK)
	h.runUntilIdle()
	cs, err := h.changeSets.Get(h.t.Context(), id)
	if err != nil || cs.Nodes["prod/vpc/core"].State != changeset.Applied {
		h.t.Fatalf("the push of %q: %+v, %v", message, cs, err)
	}
	return sha, cs.Nodes["prod/vpc/core"].DeploymentID
}

// A rollback through the API: checked, queued (201, Location), never auto-approved, approved,
// deployed with the first commit's config; its lineage says what it rolled back from and to.
func TestRollbackThroughTheAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const vpc = "iac/prod/vpc/core/config.json"
	first, firstDep := h.deployPush("vpc: two AZs", map[string]string{vpc: `{"cidr": "10.20.0.0/16", "az_count": 2}`})
	second, secondDep := h.deployPush("vpc: five AZs", map[string]string{vpc: `{"cidr": "10.20.0.0/16", "az_count": 5}`})

	h.call("POST", "/deployments/dep-0000000000000000/rollback", "writer", nil).want(http.StatusNotFound).problem()
	p := h.call("POST", "/deployments/"+secondDep+"/rollback", "writer", nil).want(http.StatusConflict).problem()
	if !strings.Contains(p.Detail, "it is the deployment the component runs now") || !strings.Contains(p.Detail, "nothing was queued") {
		t.Errorf("rolling back to what runs now: %s", p.Detail)
	}
	r := h.call("POST", "/deployments/"+firstDep+"/rollback", "writer", nil).want(http.StatusCreated)
	var created RollbackCreated
	r.decode(&created)
	if r.Header.Get("Location") != "/changes/"+url.PathEscape(created.ChangeID) || created.Deployment != firstDep || created.Replaces != secondDep ||
		created.Commit != first || created.Head != second || created.Component != "prod/vpc/core" || len(created.Affected) < 2 {
		t.Fatalf("created %+v", created)
	}
	p = h.call("POST", "/deployments/"+firstDep+"/rollback", "writer", nil).want(http.StatusConflict).problem()
	if p.Type != ProblemBase+TypePendingChange || !strings.Contains(p.Detail, created.ChangeID) {
		t.Errorf("a second rollback before the first is resolved: %+v", p)
	}

	h.runUntilIdle()
	id := url.PathEscape(created.ChangeID)
	var detail ChangeDetail
	h.call("GET", "/changes/"+id, "reader", nil).want(http.StatusOK).decode(&detail)
	if detail.State != StateAwaiting || len(detail.Plans) != 1 || !detail.Plans[0].Held || detail.Source != message.SourceRollback {
		t.Fatalf("the rollback before approval: %s (%s), plans %+v", detail.State, detail.Source, detail.Plans)
	}
	h.call("POST", "/changes/"+id+"/approve", "approver", nil).want(http.StatusOK)
	h.runUntilIdle()
	cs, err := h.changeSets.Get(t.Context(), created.ChangeID)
	if err != nil {
		t.Fatal(err)
	}
	n := cs.Nodes["prod/vpc/core"]
	if n.State != changeset.Applied || !strings.Contains(string(n.Outcome.Config), `"az_count":2`) || n.Commit != first {
		t.Fatalf("the rollback deployed %s (commit %.12s), state %s", n.Outcome.Config, n.Commit, n.State)
	}
	var step lineage.Step
	h.call("GET", "/deployments/"+n.DeploymentID+"/lineage", "reader", nil).want(http.StatusOK).decode(&step)
	if c := step.Causes; len(c) != 1 || c[0].Cause.Kind != message.CauseRollback || c[0].Upstream == nil || c[0].Upstream.Deployment.ID != firstDep ||
		c[0].Replaces == nil || c[0].Replaces.ID != secondDep {
		t.Errorf("the rollback's lineage: %+v", step.Causes)
	}
	records := logAll(t, h, "correlation="+url.QueryEscape(created.ChangeID), 50)
	found := false
	for _, rec := range records {
		found = found || (rec.Type == EntryRollback && rec.Actor == "writer")
	}
	if !found {
		t.Error("the rollback is not audited with its caller")
	}
}
