package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/terraform"
	auditw "github.com/usekarma/karma/workers/audit"
)

// staleOnce is terraform.Noop whose first apply finds its plan stale (terraform.ErrPlanChanged,
// as after a run outside Karma); the plans made after that are other plans (another hash, one
// more change), whose hashes it remembers by workspace.
type staleOnce struct {
	terraform.Noop
	mu      sync.Mutex
	stale   bool
	planned map[string]string // workspace: hash of its last plan
}

func planAgainHash(h string) string {
	sum := sha256.Sum256([]byte("planned again " + h))
	return hex.EncodeToString(sum[:])
}

func (r *staleOnce) Plan(ctx context.Context, ws terraform.Workspace) (terraform.PlanResult, error) {
	res, err := r.Noop.Plan(ctx, ws)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stale {
		res.PlanHash, res.Summary.Change = planAgainHash(res.PlanHash), res.Summary.Change+1
	}
	if r.planned == nil {
		r.planned = map[string]string{}
	}
	r.planned[ws.ID()] = res.PlanHash
	return res, err
}

func (r *staleOnce) Apply(ctx context.Context, ws terraform.Workspace, p terraform.PlanResult) (terraform.Outputs, error) {
	r.mu.Lock()
	first := !r.stale
	r.stale = true
	r.mu.Unlock()
	noop, err := r.Noop.Plan(ctx, ws)
	if first || err != nil || p.PlanHash != planAgainHash(noop.PlanHash) {
		return nil, &terraform.Error{Op: terraform.OpVerify, Component: ws.ID(), Err: terraform.ErrPlanChanged}
	}
	return r.Noop.Apply(ctx, ws, noop)
}

// An auto-approved change whose plan went stale is planned again and applied: the change's plans
// and its audit log name the plan applied (its hash, its changes), not the stale one.
func TestChangeShowsThePlanAppliedAfterAStalePlan(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tf := &staleOnce{}
	h.tf = tf
	h.pipeline()
	body := request("prod/vpc/core", vpcChange(30))
	body["auto_approve"] = true
	var created ChangeCreated
	h.call("POST", "/request-change", "admin", body).want(http.StatusCreated).decode(&created)
	h.runUntilIdle()

	var detail ChangeDetail
	h.call("GET", "/changes/"+url.PathEscape(created.ChangeID), "reader", nil).want(http.StatusOK).decode(&detail)
	if detail.State != StateDone {
		t.Fatalf("the change: %+v", detail.ChangeSummary)
	}
	tf.mu.Lock()
	applied := tf.planned["prod/vpc/core"]
	tf.mu.Unlock()
	var plan *Plan
	for i := range detail.Plans {
		if detail.Plans[i].Component == "prod/vpc/core" {
			plan = &detail.Plans[i]
		}
	}
	if plan == nil || plan.PlanHash != applied || plan.Plan.Change != 1 {
		t.Fatalf("plans %+v: want prod/vpc/core's plan made again, %s (1 change)", detail.Plans, applied)
	}

	// In the audit log, the deployment.applied is caused by the plan applied.
	recs, err := h.audit.Query(t.Context(), audit.Query{DeploymentID: plan.DeploymentID})
	if err != nil {
		t.Fatal(err)
	}
	plans := map[string]string{} // message id: plan hash
	var cause string
	for _, rec := range recs {
		e, err := message.Parse(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		switch e.Type {
		case message.TypeDeploymentPlanned:
			var p message.DeploymentPlanned
			if err := message.Decode(e, &p); err != nil {
				t.Fatal(err)
			}
			plans[e.ID] = p.PlanHash
		case message.TypeDeploymentApplied:
			cause = e.CausationID
		}
	}
	if plans[cause] != applied || len(plans) != 2 {
		t.Errorf("deployment.applied caused by %s (plan %q) among plans %v: want the plan applied, %s", cause, plans[cause], plans, applied)
	}

	// The plan stage's deployment.planned recorded in the same millisecond as the plan made
	// again, but after it (the audit stage lagging behind): the plan applied is still shown.
	var first, again message.Envelope
	for _, rec := range recs {
		e, _ := message.Parse(rec.Body)
		switch {
		case e.Type != message.TypeDeploymentPlanned:
		case e.IdempotencyKey == message.TypeDeploymentPlanned+":"+plan.DeploymentID:
			first = e
		default:
			again = e
		}
	}
	late := again.MustDerive(first.Type, first.IdempotencyKey, first.Payload)
	late.Payload, late.OccurredAt, late.CausationID = first.Payload, again.OccurredAt, first.CausationID
	if _, err := (&auditw.Worker{Log: h.audit}).Handle(t.Context(), late); err != nil {
		t.Fatal(err)
	}
	h.call("GET", "/changes/"+url.PathEscape(created.ChangeID), "reader", nil).want(http.StatusOK).decode(&detail)
	for _, p := range detail.Plans {
		if p.Component == "prod/vpc/core" && p.PlanHash != applied {
			t.Errorf("with the plan stage's plan recorded last: plan %s shown, want the plan applied, %s", p.PlanHash, applied)
		}
	}
}
