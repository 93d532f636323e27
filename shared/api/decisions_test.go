package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/usekarma/karma/shared/audit"
)

// failingAudit refuses appends while fail is set.
type failingAudit struct {
	AuditLog
	fail atomic.Bool
}

func (f *failingAudit) Append(ctx context.Context, recs ...audit.Record) (int, error) {
	if f.fail.Load() {
		return 0, errors.New("audit log unavailable")
	}
	return f.AuditLog.Append(ctx, recs...)
}

// An approval whose audit entry failed is stored (it counts) and answered 503; approved again,
// it is not counted a second time, and its entry still names the caller among the approvers, so
// the record shows that the approval counts.
func TestAnApprovalRetriedAfterItsAuditFailedIsRecordedAsCounting(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	log := &failingAudit{AuditLog: h.audit}
	cfg := h.config()
	cfg.Audit = log
	handler, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.handler = handler

	var created ChangeCreated
	h.call("POST", "/request-change", "writer", request("prod/vpc/core", vpcChange(30))).want(http.StatusCreated).decode(&created)
	h.runUntilIdle()
	approve := "/changes/" + url.PathEscape(created.ChangeID) + "/approve"
	log.fail.Store(true)
	h.call("POST", approve, "approver", nil).want(http.StatusServiceUnavailable)
	log.fail.Store(false)
	var dec Decision
	h.call("POST", approve, "approver", nil).want(http.StatusOK).decode(&dec)
	if !dec.Change.Approved {
		t.Fatalf("approved again: %+v", dec)
	}

	recs, err := h.audit.Query(t.Context(), audit.Query{Correlation: created.ChangeID})
	if err != nil {
		t.Fatal(err)
	}
	var entries []entry
	for _, r := range recs {
		if r.Type == EntryApproved {
			var e entry
			if err := json.Unmarshal(r.Body, &e); err != nil {
				t.Fatal(err)
			}
			entries = append(entries, e)
		}
	}
	if len(entries) != 1 {
		t.Fatalf("%d %s entries, want 1 (the first was refused by the audit log)", len(entries), EntryApproved)
	}
	d := entries[0].Detail
	approvers, _ := d["approvers"].([]any)
	if d["counted"] != false || len(approvers) != 1 {
		t.Fatalf("detail %v: want counted false (counted by the first call) and one approver", d)
	}
	if a, _ := approvers[0].(map[string]any); a["by"] != "approver" || a["at"] == "" {
		t.Errorf("approver %v, want the caller with the time of the approval that counted", approvers[0])
	}
}

// An approval that names the plans its approver read (what the web page shows) is refused with
// 409 unless every plan held is one of them: a plan made again while they read the one before is
// not applied on an approval given to the other. Naming the held plan approves it.
func TestAnApprovalNamingOtherPlansIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var created ChangeCreated
	h.call("POST", "/request-change", "writer", request("prod/vpc/core", vpcChange(30))).want(http.StatusCreated).decode(&created)
	h.runUntilIdle()
	path := "/changes/" + url.PathEscape(created.ChangeID)
	var detail ChangeDetail
	h.call("GET", path, "reader", nil).want(http.StatusOK).decode(&detail)
	if len(detail.Plans) != 1 || !detail.Plans[0].Held || detail.Plans[0].PlanHash == "" {
		t.Fatalf("plans %+v", detail.Plans)
	}
	held := detail.Plans[0].PlanHash
	for name, seen := range map[string]map[string]string{
		"another plan":     {"prod/vpc/core": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		"not the held one": {"prod/ecs-cluster/core": held},
		"none":             {},
	} {
		p := h.call("POST", path+"/approve", "approver", ApproveRequest{Plans: seen}).want(http.StatusConflict).problem()
		if want := "prod/vpc/core holds plan " + held[:12]; !strings.Contains(p.Detail, want) {
			t.Errorf("%s: %s, want it to say %q", name, p.Detail, want)
		}
	}
	h.call("GET", path, "reader", nil).want(http.StatusOK).decode(&detail)
	if detail.Approved || len(detail.Approvals) != 0 || detail.State != StateAwaiting {
		t.Fatalf("refused approvals were recorded: %+v", detail.ChangeSummary)
	}
	var dec Decision
	h.call("POST", path+"/approve", "approver", ApproveRequest{Plans: map[string]string{"prod/vpc/core": held}}).want(http.StatusOK).decode(&dec)
	if !dec.Change.Approved || dec.Released != 1 {
		t.Errorf("approval naming the held plan: %+v", dec)
	}
	// Other fields are still refused, not ignored.
	h.call("POST", path+"/approve", "approver", map[string]any{"reason": "lgtm"}).want(http.StatusUnprocessableEntity)
}
