package api

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/message"
)

// vpcChange is prod/vpc/core's environment file with another retention.
func vpcChange(days int) map[string]any {
	return map[string]any{"cidr": "10.20.0.0/16", "az_count": 3, "single_nat_gateway": nil, "flow_logs": map[string]any{"retention_days": days},
		"tags": map[string]any{"Environment": "prod", "CostCenter": "cc-4100"}}
}

func request(component string, change map[string]any) map[string]any {
	return map[string]any{"component": component, "proposed_change": change, "requested_by": "Ada Lovelace <ada@example.com>"}
}

// A change request, from the proposal to the audit log: committed to the deploy branch,
// resolved and planned, held until approved, approved, applied; its lineage and its records.
func TestRequestApproveDeploy(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.call("POST", "/request-change", "writer", request("prod/vpc/core", vpcChange(30))).want(http.StatusCreated)
	var created ChangeCreated
	r.decode(&created)
	if r.Header.Get("Location") != "/changes/"+url.PathEscape(created.ChangeID) || created.Branch != "main" || len(created.Commit) != 40 {
		t.Fatalf("created %+v, Location %s", created, r.Header.Get("Location"))
	}
	if len(created.Impact.Affected) < 2 || created.Impact.Seeds[0] != "prod/vpc/core" {
		t.Errorf("impact %+v", created.Impact)
	}
	// The commit is on the remote's deploy branch, authored by the requester, committed by the caller.
	log := gittest.Git(t, h.origin.Bare, "log", "-1", "--format=%H|%an <%ae>|%cn|%B", "main")
	if !strings.HasPrefix(log, created.Commit+"|Ada Lovelace <ada@example.com>|") || !strings.Contains(log, "Karma-Change: ") {
		t.Errorf("the deploy branch's head: %s", log)
	}
	if got := gittest.Git(t, h.origin.Bare, "show", "main:iac/prod/vpc/core/config.json"); !strings.Contains(got, `"retention_days": 30`) {
		t.Errorf("committed file:\n%s", got)
	}

	// Before resolve has made its change set, a second request for the component conflicts.
	p := h.call("POST", "/request-change", "writer", request("prod/vpc/core", vpcChange(60))).want(http.StatusConflict).problem()
	if p.Type != ProblemBase+TypePendingChange || !strings.Contains(p.Detail, created.ChangeID) {
		t.Errorf("second request while the first is queued: %+v", p)
	}

	h.runUntilIdle()
	var detail ChangeDetail
	h.call("GET", "/changes/"+url.PathEscape(created.ChangeID), "reader", nil).want(http.StatusOK).decode(&detail)
	if detail.State != StateAwaiting || detail.Commit != created.Commit || detail.Actor != (message.Actor{Kind: "api", Name: "writer"}) {
		t.Fatalf("the change after resolve and plan: %+v", detail.ChangeSummary)
	}
	if len(detail.Plans) != 1 || !detail.Plans[0].Held || detail.Plans[0].Component != "prod/vpc/core" || len(detail.Plans[0].Resources) != 1 ||
		detail.Plans[0].Resources[0].Address != "terraform_data.noop" {
		t.Fatalf("plans %+v", detail.Plans)
	}
	// Still pending (awaiting approval): a conflict.
	h.call("POST", "/request-change", "writer", request("prod/vpc/core", vpcChange(60))).want(http.StatusConflict)

	var list ChangeList
	h.call("GET", "/changes?env=prod&state=awaiting-approval", "reader", nil).want(http.StatusOK).decode(&list)
	if len(list.Changes) != 1 || list.Changes[0].ID != created.ChangeID {
		t.Errorf("awaiting approval: %+v", list.Changes)
	}

	var dec Decision
	h.call("POST", "/changes/"+url.PathEscape(created.ChangeID)+"/approve", "approver", nil).want(http.StatusOK).decode(&dec)
	if !dec.Change.Approved || dec.Change.ApprovedBy != "approver" || dec.Released != 1 {
		t.Errorf("approval %+v", dec)
	}
	h.runUntilIdle()
	h.call("GET", "/changes/"+url.PathEscape(created.ChangeID), "reader", nil).want(http.StatusOK).decode(&detail)
	if detail.State != StateDone || detail.Counts[changeset.Applied] != 1 {
		t.Fatalf("after approval: %+v", detail.ChangeSummary)
	}
	if len(detail.Plans) != 1 || detail.Plans[0].Held || len(detail.Plans[0].Resources) != 1 {
		t.Errorf("the applied plan, from the audit log: %+v", detail.Plans)
	}
	// Approving again is not an error, and releases nothing more.
	h.call("POST", "/changes/"+url.PathEscape(created.ChangeID)+"/approve", "approver", nil).want(http.StatusOK).decode(&dec)
	if dec.Released != 0 || dec.Change.ApprovedBy != "approver" {
		t.Errorf("second approval %+v", dec)
	}

	// The deployment, its lineage back to the request's commit.
	depID := detail.Deployments[0].DeploymentID
	var d DeploymentDetail
	h.call("GET", "/deployments/"+depID, "reader", nil).want(http.StatusOK).decode(&d)
	if d.Status != lineage.StatusApplied || d.Change == nil || d.Change.Commit != created.Commit {
		t.Errorf("deployment %+v", d)
	}
	var step lineage.Step
	h.call("GET", "/deployments/"+depID+"/lineage", "reader", nil).want(http.StatusOK).decode(&step)
	if len(step.Causes) != 1 || step.Causes[0].Change == nil || step.Causes[0].Change.ID != created.ChangeID {
		t.Errorf("lineage %+v", step)
	}
	h.call("GET", "/deployments/dep-0000000000000000", "reader", nil).want(http.StatusNotFound).problem()
	h.call("GET", "/deployments/dep-0000000000000000/lineage", "reader", nil).want(http.StatusNotFound).problem()
	var comp ComponentView
	h.call("GET", "/components/prod/vpc/core", "reader", nil).want(http.StatusOK).decode(&comp)
	if len(comp.Deployments) != 1 || comp.Deployments[0].ID != depID || comp.Runtime == nil {
		t.Errorf("the component's deployments %+v, runtime %+v", comp.Deployments, comp.Runtime)
	}

	// The audit log: the request and the approval by their callers, next to the messages.
	records := logAll(t, h, "correlation="+url.QueryEscape(created.ChangeID), 3)
	types := map[string]string{}
	for _, rec := range records {
		types[rec.Type] = rec.Actor
	}
	if types[EntryRequested] != "writer" || types[EntryApproved] != "approver" || types[message.TypeChangeDetected] != "writer" ||
		types[message.TypeDeploymentApplied] == "" {
		t.Errorf("audit of the change: %v", types)
	}
}

// logAll pages through GET /log?query with pages of size limit.
func logAll(t *testing.T, h *harness, query string, limit int) []audit.Record {
	t.Helper()
	var out []audit.Record
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("more than 100 pages")
		}
		u := "/log?" + query + "&limit=" + strconv.Itoa(limit)
		if cursor != "" {
			u += "&cursor=" + cursor
		}
		r := h.call("GET", u, "reader", nil).want(http.StatusOK)
		var page LogPage
		r.decode(&page)
		for _, rec := range page.Records {
			out = append(out, rec.Record)
		}
		if page.NextCursor == "" {
			if r.Header.Get("Link") != "" {
				t.Error("a Link header on the last page")
			}
			return out
		}
		if len(page.Records) != limit || !strings.Contains(r.Header.Get("Link"), `rel="next"`) {
			t.Errorf("page of %d records with a next cursor, Link %q", len(page.Records), r.Header.Get("Link"))
		}
		cursor = page.NextCursor
	}
}

// Two changes of one component: the second waits behind the first; rejecting the first skips
// it, naming who and why, and starts the second; a rejected change is not approved.
func TestRejectReleasesWhatWaited(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	var first ChangeCreated
	h.call("POST", "/request-change", "writer", request("prod/vpc/core", vpcChange(30))).want(http.StatusCreated).decode(&first)
	h.runUntilIdle()
	// A push (not the API) changes the component again: queued behind the first.
	gittest.Git(t, h.origin.Work, "pull", "-q", "origin", "main")
	sha := h.origin.Commit(t, "vpc: 60 days", map[string]string{"iac/prod/vpc/core/config.json": `{"cidr": "10.20.0.0/16", "flow_logs": {"retention_days": 60}}`})
	pushed := h.push(sha, "iac/prod/vpc/core/config.json")
	h.runUntilIdle()
	cs, err := h.changeSets.Get(ctx, pushed)
	if err != nil || !slices.Equal(cs.QueuedBehind, []string{first.ChangeID}) {
		t.Fatalf("the pushed change: queued behind %v (%v), want the first", cs.QueuedBehind, err)
	}

	id := url.PathEscape(first.ChangeID)
	for _, c := range []struct {
		body   any
		status int
		ptrs   []string
	}{
		{map[string]any{}, http.StatusUnprocessableEntity, []string{"/reason"}},
		{map[string]any{"reason": "x", "why": "y"}, http.StatusUnprocessableEntity, []string{"/why"}},
		{`{"reason": `, http.StatusBadRequest, nil},
	} {
		p := h.call("POST", "/changes/"+id+"/reject", "approver", c.body).want(c.status).problem()
		if !slices.Equal(p.pointers(), c.ptrs) {
			t.Errorf("reject with %v: pointers %v, want %v", c.body, p.pointers(), c.ptrs)
		}
	}
	var dec Decision
	h.call("POST", "/changes/"+id+"/reject", "approver", map[string]any{"reason": "wrong account"}).want(http.StatusOK).decode(&dec)
	if dec.Change.State != StateRejected || dec.Change.RejectedBy != "approver" {
		t.Errorf("rejection %+v", dec.Change)
	}
	p := h.call("POST", "/changes/"+id+"/approve", "approver", nil).want(http.StatusConflict).problem()
	if !strings.Contains(p.Detail, "rejected by approver") {
		t.Errorf("approving a rejected change: %s", p.Detail)
	}
	h.call("POST", "/changes/"+id+"/reject", "admin", map[string]any{"reason": "me too"}).want(http.StatusConflict).problem()
	h.runUntilIdle()

	var detail ChangeDetail
	h.call("GET", "/changes/"+id, "reader", nil).want(http.StatusOK).decode(&detail)
	for _, d := range detail.Deployments {
		if d.State != changeset.Skipped || d.Reason != changeset.ReasonRejected || d.Detail != "rejected by approver: wrong account" {
			t.Errorf("%s: %s %s %q", d.Component, d.State, d.Reason, d.Detail)
		}
	}
	h.call("GET", "/changes/"+url.PathEscape(pushed), "reader", nil).want(http.StatusOK).decode(&detail)
	if detail.State != StateAwaiting || len(detail.Plans) != 1 || !detail.Plans[0].Held {
		t.Errorf("the pushed change after the rejection: %s, plans %+v", detail.State, detail.Plans)
	}
	// Approved, it cannot be rejected.
	h.call("POST", "/changes/"+url.PathEscape(pushed)+"/approve", "admin", nil).want(http.StatusOK)
	h.call("POST", "/changes/"+url.PathEscape(pushed)+"/reject", "admin", map[string]any{"reason": "late"}).want(http.StatusConflict).problem()

	h.call("POST", "/changes/nope/approve", "approver", nil).want(http.StatusNotFound).problem()
	// Approve takes no body: fields the caller may believe count are refused, not ignored.
	if p := h.call("POST", "/changes/nope/approve", "approver", map[string]any{"reason": "looks fine"}).want(http.StatusUnprocessableEntity).problem(); !slices.Equal(p.pointers(), []string{"/reason"}) {
		t.Errorf("approve with a body: %+v", p)
	}
	h.call("POST", "/changes/nope/approve", "approver", "garbage", "Content-Type", "text/plain").want(http.StatusUnsupportedMediaType)
	h.call("POST", "/changes/nope/approve", "approver", "{}").want(http.StatusNotFound) // an empty object is no body
	h.call("POST", "/deployments/nope/rollback", "writer", map[string]any{"to": "dep-1"}).want(http.StatusUnprocessableEntity)
	h.call("POST", "/changes/nope/reject", "approver", map[string]any{"reason": "x"}).want(http.StatusNotFound).problem()
	h.call("GET", "/changes/nope", "reader", nil).want(http.StatusNotFound).problem()
}

// A lineage that reaches one deployment along two paths (a diamond) answers it once, the second
// cause marked repeated, as openapi.json says (the harness checks every answer against it).
func TestLineageOfADiamondNamesTheSharedDeploymentOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	actor := message.Actor{Kind: "git", Name: "Ada <ada@example.com>"}
	if err := h.lineage.RecordChange(ctx, lineage.Change{ID: "cs-d", Env: "prod", CorrelationID: "cs-d", Source: message.SourceGit,
		RootCauses: []message.Cause{{Kind: message.CauseCommit, ID: "abc"}}, Actor: actor, At: at, Affected: []string{}}); err != nil {
		t.Fatal(err)
	}
	dep := func(id, comp string, wave int, causes ...message.Cause) {
		t.Helper()
		if err := h.lineage.RecordDeployment(ctx, lineage.Deployment{ID: id, ChangeSetID: "cs-d", Env: "prod", Component: comp, Wave: wave,
			CausedBy: causes, Status: lineage.StatusApplied, At: at, Actor: actor}); err != nil {
			t.Fatal(err)
		}
	}
	dep("dep-a000000000000001", "prod/vpc/core", 0, message.Cause{Kind: message.CauseCommit, ID: "abc"})
	fromA := message.Cause{Kind: message.CauseDeployment, ID: "dep-a000000000000001", Keys: []string{"vpc_id"}}
	dep("dep-b000000000000001", "prod/ecs-cluster/core", 1, fromA)
	dep("dep-c000000000000001", "prod/lambda/handlers", 1, fromA)
	dep("dep-d000000000000001", "prod/ecs-service/api", 2,
		message.Cause{Kind: message.CauseDeployment, ID: "dep-b000000000000001", Keys: []string{"cluster_arn"}},
		message.Cause{Kind: message.CauseDeployment, ID: "dep-c000000000000001", Keys: []string{"role_arn"}})
	var step lineage.Step
	h.call("GET", "/deployments/dep-d000000000000001/lineage", "reader", nil).want(http.StatusOK).decode(&step)
	if len(step.Causes) != 2 || step.Causes[0].Upstream == nil || step.Causes[1].Upstream == nil {
		t.Fatalf("lineage %+v", step)
	}
	first, second := step.Causes[0].Upstream.Causes, step.Causes[1].Upstream.Causes
	if len(first) != 1 || first[0].Upstream == nil || len(second) != 1 || !second[0].Repeated || second[0].Upstream != nil {
		t.Errorf("vpc/core's deployment: followed under the first path %+v, repeated under the second %+v", first, second)
	}
}
