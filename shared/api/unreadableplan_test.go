package api

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/message"
)

// A deployment.planned record of a change that cannot be read is not skipped in silence: GET
// /changes/{id} names it under unreadable_records (its plan may be missing from plans), and the
// readable plans are still there. A change without one has no unreadable_records.
func TestChangeNamesAnUnreadablePlanRecord(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.pipeline()
	body := request("prod/vpc/core", vpcChange(30))
	body["auto_approve"] = true
	var created ChangeCreated
	h.call("POST", "/request-change", "admin", body).want(http.StatusCreated).decode(&created)
	h.runUntilIdle()

	var detail ChangeDetail
	h.call("GET", "/changes/"+url.PathEscape(created.ChangeID), "reader", nil).want(http.StatusOK).decode(&detail)
	if len(detail.Plans) == 0 || len(detail.UnreadableRecords) != 0 {
		t.Fatalf("the change: plans %+v, unreadable %+v; want its plans and nothing unreadable", detail.Plans, detail.UnreadableRecords)
	}
	plan := detail.Plans[0]
	recs, err := h.audit.Query(t.Context(), audit.Query{DeploymentID: plan.DeploymentID})
	if err != nil || len(recs) == 0 {
		t.Fatalf("the plan's audit records: %d (%v)", len(recs), err)
	}
	bad := recs[0]
	bad.MessageID, bad.Type, bad.Chain = "msg-unreadable-plan", message.TypeDeploymentPlanned, plan.Component
	bad.OccurredAt = bad.OccurredAt.Add(time.Second)
	bad.Body = []byte(`{"id":"msg-unreadable-plan","type":"deployment.planned","payload":"not a plan"}`)
	bad.Seq, bad.PrevHash, bad.Hash = 0, "", ""
	if _, err := h.audit.Append(t.Context(), bad); err != nil {
		t.Fatal(err)
	}
	appended, err := h.audit.Query(t.Context(), audit.Query{DeploymentID: plan.DeploymentID})
	if err != nil {
		t.Fatal(err)
	}
	var seq int64
	for _, r := range appended {
		if r.MessageID == bad.MessageID {
			seq = r.Seq
		}
	}

	detail = ChangeDetail{}
	h.call("GET", "/changes/"+url.PathEscape(created.ChangeID), "reader", nil).want(http.StatusOK).decode(&detail)
	if len(detail.Plans) == 0 {
		t.Errorf("the readable plans are gone: %+v", detail.Plans)
	}
	if len(detail.UnreadableRecords) != 1 {
		t.Fatalf("unreadable_records %+v; want the one record", detail.UnreadableRecords)
	}
	u := detail.UnreadableRecords[0]
	if u.MessageID != bad.MessageID || u.Chain != plan.Component || u.Seq != seq || seq == 0 || u.DeploymentID != plan.DeploymentID ||
		u.Type != message.TypeDeploymentPlanned || strings.TrimSpace(u.Error) == "" {
		t.Errorf("unreadable record %+v; want %s %s#%d of %s, with why", u, bad.MessageID, plan.Component, seq, plan.DeploymentID)
	}
}
