package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/usekarma/karma/shared/changeset"
)

// POST /changes/{id}/approve — the caller approves the change set (changeset.Approve: the
// implementation `karma apply` uses). When its environment needs several approvals, the
// caller's is recorded and the answer says how many are pending; with the last one needed, the
// plans held for review are released (deployment.approved) and later waves apply as they are
// planned. Approving an approved change set again is not an error: it answers the same and
// re-releases what the first approval could not (a failed publish), which the apply stage does
// once. In a protected environment the change's requester and its commit's author are refused
// (403 separation-of-duties, naming who and why), audited as api.approval_refused; an expired
// change set is 409.
//
// POST /changes/{id}/reject {"reason": "..."} — the caller rejects a change set waiting for
// approval: the decision is recorded at once (it can no longer be approved), and
// change.rejected asks resolve to skip what is left of it, naming who and why; the change sets
// queued behind it then start. 409 when it is approved, done, invalid, superseded or rejected
// by someone else; the same caller rejecting again re-announces the rejection.

// Decision is the answer of POST /changes/{id}/approve and /reject.
type Decision struct {
	Change ChangeSummary `json:"change"`
	// Released is how many held plans this approval released (0 when none was planned yet:
	// they apply as they are planned, or when more approvals are needed).
	Released int `json:"released"`
	// Pending is how many more distinct approvals the change set needs (0: approved).
	Pending int `json:"pending"`
}

func (s *server) approve(w http.ResponseWriter, r *http.Request, c Caller) error {
	var body ApproveRequest
	if err := optionalBody(r, s.cfg.MaxBody, &body); err != nil {
		return err
	}
	if _, err := s.changeSet(r); err != nil {
		return err
	}
	ctx := r.Context()
	a, err := s.approveChangeSet(r, c, r.PathValue("id"), body.Plans)
	if err != nil {
		return err
	}
	cs := a.ChangeSet
	if err := s.cfg.Publisher.Publish(ctx, a.Messages...); err != nil {
		return unavailable("change set %s is approved, but releasing its %d held plan(s) failed (%v): approve again to release them", cs.ID, len(a.Messages), err)
	}
	if err := s.record(ctx, r, EntryApproved, c, cs.Env, cs.CorrelationID, a.Detail()); err != nil {
		return unavailable("change set %s: the approval is recorded, but %v: approve again (it is idempotent) to record it", cs.ID, err)
	}
	return writeJSON(w, http.StatusOK, Decision{Change: summarize(cs), Released: len(a.Messages), Pending: a.Pending})
}

// ApproveRequest is POST /changes/{id}/approve's body, which may be absent: Plans, when given,
// maps each component whose plan the approver read to its plan_hash, and the approval is refused
// (409) unless every plan held is one of them (changeset.ApproveSeenAt) — the web page sends the
// plans it shows, so that a plan made again meanwhile is not approved unread.
type ApproveRequest struct {
	Plans map[string]string `json:"plans"`
}

// approveChangeSet records c's approval of change set id (changeset.ApproveAt): the approval, or
// the problem to answer — an approver separation of duties excludes is refused and audited
// (403), a change set that cannot be approved is 409.
func (s *server) approveChangeSet(r *http.Request, c Caller, id string, seen map[string]string) (changeset.Approval, error) {
	a, err := changeset.ApproveSeenAt(r.Context(), s.cfg.ChangeSets, id, c.Name, s.cfg.Now().UTC(), seen)
	var ineligible *changeset.IneligibleError
	switch {
	case errors.As(err, &ineligible):
		return a, s.refuseApprover(r, c, ineligible)
	case errors.Is(err, changeset.ErrCannotApprove), errors.Is(err, changeset.ErrPlansChanged):
		return a, conflict("%v", err)
	}
	return a, err
}

// refuseApprover answers 403 to an approver whom separation of duties excludes, and audits it
// in the change's chain.
func (s *server) refuseApprover(r *http.Request, c Caller, e *changeset.IneligibleError) error {
	cs, err := s.cfg.ChangeSets.Get(r.Context(), e.ChangeSet) // the path may name the change, not the change set (promote)
	if err != nil {
		return err
	}
	detail := map[string]any{"change_set_id": cs.ID, "reason": e.Error(), "role": e.Role, "name": e.Name}
	if err := s.record(r.Context(), r, EntryApprovalRefused, c, cs.Env, cs.CorrelationID, detail); err != nil {
		return unavailable("approval refused (%v), but %v", e, err)
	}
	return problem(http.StatusForbidden, TypeSeparation, "%v", e)
}

// RejectRequest is the body of POST /changes/{id}/reject.
type RejectRequest struct {
	Reason string `json:"reason"`
}

func (s *server) reject(w http.ResponseWriter, r *http.Request, c Caller) error {
	var in RejectRequest
	if err := decodeBody(r, s.cfg.MaxBody, &in); err != nil {
		return err
	}
	if strings.TrimSpace(in.Reason) == "" {
		return invalid("a rejection says why", FieldError{Pointer: "/reason", Detail: "required: why the change is not deployed, for the record"})
	}
	if _, err := s.changeSet(r); err != nil {
		return err
	}
	ctx := r.Context()
	cs, m, err := changeset.RejectChange(ctx, s.cfg.ChangeSets, r.PathValue("id"), c.Actor(), in.Reason)
	switch {
	case errors.Is(err, changeset.ErrCannotReject):
		return conflict("%v", err)
	case err != nil:
		return err
	}
	if err := s.cfg.Publisher.Publish(ctx, m); err != nil {
		return unavailable("change set %s is rejected (it can no longer be approved), but asking the pipeline to skip what is left failed (%v): reject again", cs.ID, err)
	}
	detail := map[string]any{"change_set_id": cs.ID, "reason": cs.RejectReason}
	if err := s.record(ctx, r, EntryRejected, c, cs.Env, cs.CorrelationID, detail); err != nil {
		return unavailable("change set %s is rejected, but %v: reject again to record it", cs.ID, err)
	}
	return writeJSON(w, http.StatusOK, Decision{Change: summarize(cs)})
}

// unavailable is a 503 whose detail says what happened and how to finish it.
func unavailable(detail string, a ...any) *Problem {
	p := problem(http.StatusServiceUnavailable, TypeUnavailable, detail, a...)
	p.RetryAfter = 1
	return p
}
