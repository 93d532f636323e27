package api

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
)

// protectedProd: prod needs two approvals; Ada (the requests' author) is also the token "second".
func protectedProd(files map[string]string) {
	files["karma.json"] = `{"prefix": "/iac", "modules_dir": "components",
  "environments": {"prod": {"protected": true, "approvals": 2, "approval_expiry": "72h"}},
  "identities": {"ada": ["Ada Lovelace <ada@example.com>", "second"]}}`
}

// In a protected environment: a request's auto_approve is downgraded to review; the requester
// (admin) and the commit's author (Ada, the token "second") are refused with 403 and the
// reason, audited; two distinct eligible approvals release the plan, one approver counting
// once however often they approve.
func TestProtectedEnvironmentApprovals(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, protectedProd)
	body := request("prod/vpc/core", vpcChange(30))
	body["auto_approve"] = true
	var created ChangeCreated
	h.call("POST", "/request-change", "admin", body).want(http.StatusCreated).decode(&created)
	h.runUntilIdle()
	id := url.PathEscape(created.ChangeID)
	var detail ChangeDetail
	h.call("GET", "/changes/"+id, "reader", nil).want(http.StatusOK).decode(&detail)
	if detail.State != StateAwaiting || detail.AutoApprove || !detail.Protected || detail.ApprovalsRequired != 2 || detail.ExpiresAt == nil ||
		detail.Author != "Ada Lovelace <ada@example.com>" || !strings.Contains(detail.AutoApproveRefused, "environment prod is protected") {
		t.Fatalf("the change in a protected environment: %+v", detail.ChangeSummary)
	}

	for who, want := range map[string]string{
		"admin":  "admin may not approve change set " + created.ChangeID + ": admin requested it",
		"second": "second may not approve change set " + created.ChangeID + ": Ada Lovelace <ada@example.com> wrote its commit",
	} {
		p := h.call("POST", "/changes/"+id+"/approve", who, nil).want(http.StatusForbidden).problem()
		if p.Type != ProblemBase+TypeSeparation || !strings.HasPrefix(p.Detail, want) {
			t.Errorf("%s approving: %+v", who, p)
		}
	}
	var dec Decision
	for range 2 { // the same approver twice counts once
		h.call("POST", "/changes/"+id+"/approve", "approver", nil).want(http.StatusOK).decode(&dec)
		if dec.Change.Approved || dec.Pending != 1 || dec.Released != 0 || len(dec.Change.Approvals) != 1 || dec.Change.State != StateAwaiting {
			t.Fatalf("one approval of two: %+v", dec)
		}
	}
	h.call("POST", "/changes/"+id+"/approve", "third", nil).want(http.StatusOK).decode(&dec)
	if !dec.Change.Approved || dec.Pending != 0 || dec.Released != 1 || dec.Change.ApprovedBy != "approver, third" {
		t.Fatalf("the second approval: %+v", dec)
	}
	h.runUntilIdle()
	h.call("GET", "/changes/"+id, "reader", nil).want(http.StatusOK).decode(&detail)
	if detail.State != StateDone || detail.Counts[changeset.Applied] != 1 {
		t.Errorf("after two approvals: %+v", detail.ChangeSummary)
	}

	logAll(t, h, "correlation="+url.QueryEscape(created.ChangeID), 50) // served, and conforming to openapi.json
	records, err := h.audit.Query(t.Context(), audit.Query{Correlation: created.ChangeID})
	if err != nil {
		t.Fatal(err)
	}
	refused, approvals := map[string]string{}, 0
	for _, rec := range records {
		switch rec.Type {
		case EntryApprovalRefused:
			refused[rec.Actor] = string(rec.Body)
		case EntryApproved:
			approvals++
		case message.TypeDeploymentApproved:
			if !strings.Contains(string(rec.Body), `"approved_by":"approver, third"`) {
				t.Errorf("deployment.approved: %s", rec.Body)
			}
		}
	}
	if len(refused) != 2 || !strings.Contains(refused["admin"], `"role":"requester"`) || !strings.Contains(refused["second"], `"role":"author"`) || approvals != 3 {
		t.Errorf("audit: refused %v, %d approvals recorded", refused, approvals)
	}
}
