package api

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/promotion"
)

// A change through dev (an hour's soak) and prod (an approval gate), moved gate by gate through
// the API: dev's approval, the soak ended with a reason, prod's approval; then nothing is left.
func TestPromoteThroughTheAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	gittest.Git(t, h.origin.Work, "pull", "-q", "origin", "main")
	sha := h.origin.Commit(t, "vpc: SSM endpoints, dev first", map[string]string{
		"karma.json":                     `{"prefix": "/iac", "modules_dir": "components", "promotion": [{"env": "dev", "soak": "1h"}, {"env": "prod", "approval": true}]}`,
		"iac/_base/vpc/core/config.json": `{"cidr": "10.0.0.0/16", "az_count": 2, "enable_ssm_endpoints": true}`,
	})
	change := strings.TrimSuffix(h.push(sha, "karma.json", "iac/_base/vpc/core/config.json"), "/prod")
	h.runUntilIdle()
	id := url.PathEscape(change)
	status := func(want ...string) promotion.Report {
		t.Helper()
		var r promotion.Report
		h.call("GET", "/changes/"+id+"/promotion", "reader", nil).want(http.StatusOK).decode(&r)
		var got []string
		for _, s := range r.Steps {
			got = append(got, s.Env+":"+s.State)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("promotion %v, want %v (%+v)", got, want, r)
		}
		return r
	}
	promote := func(body any, moved string) {
		t.Helper()
		var reply PromoteReply
		h.call("POST", "/changes/"+id+"/promote", "approver", body).want(http.StatusOK).decode(&reply)
		if reply.Moved != moved {
			t.Fatalf("moved %q, want %q", reply.Moved, moved)
		}
		h.runUntilIdle()
	}
	status("dev:approval", "prod:waiting")
	p := h.call("POST", "/changes/"+id+"/promote", "approver", map[string]any{"reason": "x"}).want(http.StatusUnprocessableEntity).problem()
	if !slices.Equal(p.pointers(), []string{"/reason"}) {
		t.Errorf("a reason where nothing soaks: %+v", p)
	}
	promote(nil, "approval")
	soaking := status("dev:soaking", "prod:waiting")
	if soaking.Steps[0].Until.IsZero() {
		t.Error("the soak's end is not said")
	}
	p = h.call("POST", "/changes/"+id+"/promote", "approver", map[string]any{}).want(http.StatusUnprocessableEntity).problem()
	if !slices.Equal(p.pointers(), []string{"/reason"}) || !strings.Contains(p.Detail, "soaks in dev until") {
		t.Errorf("ending a soak without a reason: %+v", p)
	}
	promote(map[string]any{"reason": "verified in dev by hand"}, "soak")
	status("dev:applied", "prod:approval")
	prod, err := h.changeSets.Get(t.Context(), change+"/prod")
	if err != nil || prod.PromotedFrom != change+"/dev" || prod.AutoApprove {
		t.Fatalf("prod: %+v, %v", prod, err)
	}
	promote(nil, "approval")
	final := status("dev:applied", "prod:applied")
	if !final.Complete() {
		t.Errorf("not complete: %+v", final)
	}
	p = h.call("POST", "/changes/"+id+"/promote", "approver", nil).want(http.StatusConflict).problem()
	if !strings.Contains(p.Detail, "complete") {
		t.Errorf("promoting a complete change: %s", p.Detail)
	}

	// prod's deployment says where it was promoted from; the soak's early end is recorded.
	prod, _ = h.changeSets.Get(t.Context(), change+"/prod")
	n := prod.Nodes["prod/vpc/core"]
	var step lineage.Step
	h.call("GET", "/deployments/"+n.DeploymentID+"/lineage", "reader", nil).want(http.StatusOK).decode(&step)
	kinds := map[string]string{}
	for _, c := range step.Causes {
		kinds[c.Cause.Kind] = c.Cause.ID
		if c.Cause.Kind == message.CausePromotion && (c.Change == nil || c.Change.Env != "dev") {
			t.Errorf("the promotion cause does not lead to dev's change set: %+v", c)
		}
	}
	if kinds[message.CauseCommit] != sha || kinds[message.CausePromotion] != change+"/dev" || n.State != changeset.Applied {
		t.Errorf("prod/vpc/core %s, caused by %v", n.State, kinds)
	}
	dev, _ := h.changeSets.Get(t.Context(), change+"/dev")
	if s := dev.Promotion.SoakSkipped; s == nil || s.By != "approver" || s.Reason != "verified in dev by hand" {
		t.Errorf("the soak's early end: %+v", s)
	}
	promoted := 0
	for _, rec := range logAll(t, h, "correlation="+url.QueryEscape(change), 50) {
		if rec.Type == EntryPromoted && rec.Actor == "approver" {
			promoted++
		}
	}
	if promoted != 3 {
		t.Errorf("%d promotions audited, want 3 (two approvals, one soak)", promoted)
	}

	h.call("GET", "/changes/nope/promotion", "reader", nil).want(http.StatusNotFound).problem()
	h.call("POST", "/changes/nope/promote", "approver", nil).want(http.StatusNotFound).problem()
}

// At an approval gate of a protected environment, POST /changes/{id}/promote approves as POST
// /changes/{id}/approve does: the commit's author (the token "second") is refused with 403 and
// audited; the first of two approvals is recorded as an approval, with the gate not passed and
// how many more are needed; the second passes the gate.
func TestPromoteApprovalGateIsGoverned(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	gittest.Git(t, h.origin.Work, "pull", "-q", "origin", "main")
	sha := h.origin.Commit(t, "vpc: SSM endpoints, dev first", map[string]string{
		"karma.json": `{"prefix": "/iac", "modules_dir": "components", "promotion": [{"env": "dev"}, {"env": "prod", "approval": true}],
  "environments": {"prod": {"protected": true, "approvals": 2}}, "identities": {"grace": ["Grace <grace@example.com>", "second"]}}`,
		"iac/_base/vpc/core/config.json": `{"cidr": "10.0.0.0/16", "az_count": 2, "enable_ssm_endpoints": true}`,
	})
	change := strings.TrimSuffix(h.push(sha, "karma.json", "iac/_base/vpc/core/config.json"), "/prod")
	h.runUntilIdle()
	id := url.PathEscape(change)
	promote := func(who string, status int) PromoteReply {
		t.Helper()
		var reply PromoteReply
		r := h.call("POST", "/changes/"+id+"/promote", who, nil)
		if r.StatusCode != status {
			t.Fatalf("%s promoting: status %d, want %d: %s", who, r.StatusCode, status, r.body)
		}
		if status == http.StatusOK {
			r.decode(&reply)
			h.runUntilIdle()
		} else if p := r.problem(); p.Type != ProblemBase+TypeSeparation || !strings.Contains(p.Detail, "second may not approve") || !strings.Contains(p.Detail, "Grace <grace@example.com>") {
			t.Errorf("%s promoting: %+v", who, p)
		}
		return reply
	}
	at := func(want string) {
		t.Helper()
		var r promotion.Report
		h.call("GET", "/changes/"+id+"/promotion", "reader", nil).want(http.StatusOK).decode(&r)
		if got := r.Current().Env + ":" + r.Current().State; got != want {
			t.Fatalf("the promotion is at %s, want %s (%+v)", got, want, r)
		}
	}
	promote("approver", http.StatusOK) // dev's gate
	at("prod:approval")
	promote("second", http.StatusForbidden)
	if reply := promote("approver", http.StatusOK); reply.Moved != "approval" || reply.Pending != 1 {
		t.Errorf("the first of two approvals: %+v, want one more pending", reply)
	}
	at("prod:approval")
	if reply := promote("third", http.StatusOK); reply.Moved != "approval" || reply.Pending != 0 {
		t.Errorf("the second approval: %+v", reply)
	}
	at("prod:applied")

	count := map[string]int{}
	for _, rec := range logAll(t, h, "correlation="+url.QueryEscape(change), 50) {
		count[rec.Type+" "+rec.Actor]++
	}
	if count[EntryApprovalRefused+" second"] != 1 || count[EntryApproved+" approver"] != 1 || count[EntryPromoted+" approver"] != 1 || count[EntryPromoted+" third"] != 1 {
		t.Errorf("audited %v: want second refused, approver's prod approval recorded as an approval (dev's as the gate passed), third's as the gate passed", count)
	}
}

// A soak that ends between the status POST /changes/{id}/promote reads and the end it asks for
// (the clock moved on, or another caller ended it): 409 saying so, not a 500, and nothing of a
// soak ended early recorded.
func TestPromoteASoakThatEndedMeanwhileIsAConflict(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	gittest.Git(t, h.origin.Work, "pull", "-q", "origin", "main")
	sha := h.origin.Commit(t, "vpc: SSM endpoints, dev first", map[string]string{
		"karma.json":                     `{"prefix": "/iac", "modules_dir": "components", "promotion": [{"env": "dev", "soak": "1h"}, {"env": "prod"}]}`,
		"iac/_base/vpc/core/config.json": `{"cidr": "10.0.0.0/16", "az_count": 2, "enable_ssm_endpoints": true}`,
	})
	change := strings.TrimSuffix(h.push(sha, "karma.json", "iac/_base/vpc/core/config.json"), "/prod")
	h.runUntilIdle()
	id := url.PathEscape(change)
	h.call("POST", "/changes/"+id+"/promote", "approver", nil).want(http.StatusOK) // dev's approval
	h.runUntilIdle()

	// The status is read while dev soaks; by the time the soak is to end, it is over.
	var calls atomic.Int32
	cfg := h.config()
	cfg.Now = func() time.Time {
		if calls.Add(1) == 1 {
			return time.Now()
		}
		return time.Now().Add(2 * time.Hour)
	}
	handler, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.handler = handler
	r := h.call("POST", "/changes/"+id+"/promote", "approver", map[string]any{"reason": "verified in dev by hand"})
	if r.StatusCode != http.StatusConflict {
		t.Fatalf("ending a soak over meanwhile: status %d, want %d: %s", r.StatusCode, http.StatusConflict, r.body)
	}
	if p := r.problem(); !strings.Contains(p.Detail, "soak is over") {
		t.Errorf("a soak over meanwhile: %+v", p)
	}
	if dev, _ := h.changeSets.Get(t.Context(), change+"/dev"); dev == nil || dev.Promotion.SoakSkipped != nil {
		t.Errorf("the soak's early end recorded: %+v", dev)
	}
}
