package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/promotion"
)

// GET /changes/{id}/promotion — where a change stands on its way through the promotion order
// (karma.json "promotion"): each environment with its state, the one it is at, where and why it
// stopped; as `karma promote status --json`. {id} is the change's root id or any of its change
// sets'. 404 for an unknown change, or one that concerns at most one environment of the order.
//
// POST /changes/{id}/promote {"reason": "..."} — moves the change through the gate it is at, as
// `karma promote` does: a soak ends early only with a reason (recorded with the caller, in the
// change set and in the next environment's change.detected); a promotion that is due starts; an
// approval gate approves the held plans (changeset.Approve, as POST /changes/{id}/approve: an
// approver separation of duties excludes is refused with 403 and audited; an approval of several
// needed is recorded as api.change_approved and answered with pending, the gate not passed). 409
// when there is nothing to move (deploying, queued, complete) or the promotion stopped (the
// detail says where and why), or when the soak to end is over, or was ended by someone else,
// since the status was read. The answer is where the change stands afterwards.

// PromoteRequest is the body of POST /changes/{id}/promote (optional).
type PromoteRequest struct {
	Reason string `json:"reason,omitempty"`
}

// PromoteReply is the answer of POST /changes/{id}/promote.
type PromoteReply struct {
	Moved string `json:"moved"` // the gate: soak, due or approval
	// Pending is, at an approval gate that needs several people, how many more distinct
	// approvals it needs: the caller's approval is recorded, the gate is not passed yet.
	Pending int              `json:"pending,omitempty"`
	Status  promotion.Report `json:"status"`
}

func (s *server) getPromotion(w http.ResponseWriter, r *http.Request, _ Caller) error {
	rep, err := s.promotionStatus(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

func (s *server) promotionStatus(r *http.Request) (promotion.Report, error) {
	all, err := s.cfg.ChangeSets.List(r.Context())
	if err != nil {
		return promotion.Report{}, err
	}
	rep, err := promotion.Status(all, r.PathValue("id"), s.cfg.Now())
	if errors.Is(err, promotion.ErrUnknown) || errors.Is(err, promotion.ErrNotPromoted) {
		return rep, notFound("%v", err)
	}
	return rep, err
}

func (s *server) promote(w http.ResponseWriter, r *http.Request, c Caller) error {
	var in PromoteRequest
	if r.ContentLength != 0 {
		if err := decodeBody(r, s.cfg.MaxBody, &in); err != nil {
			return err
		}
	}
	rep, err := s.promotionStatus(r)
	if err != nil {
		return err
	}
	cur := rep.Current()
	if in.Reason != "" && cur.State != promotion.StateSoaking {
		return invalid("the change is not soaking: a reason ends a soak", FieldError{Pointer: "/reason", Detail: "in " + cur.Env + " the change is " + cur.State + ": leave the reason out"})
	}
	if cur.State == promotion.StateApproval {
		return s.approveGate(w, r, c, rep.Change, cur)
	}
	moved, err := s.passGate(r, c, cur, in.Reason)
	if err != nil {
		return err
	}
	detail := map[string]any{"change_set_id": cur.ChangeSetID, "gate": moved, "reason": in.Reason}
	if err := s.record(r.Context(), r, EntryPromoted, c, cur.Env, rep.Change, detail); err != nil {
		return unavailable("the change passed its %s gate, but %v", moved, err)
	}
	if rep, err = s.promotionStatus(r); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, PromoteReply{Moved: moved, Status: rep})
}

// approveGate approves the change set held at an approval gate, as POST /changes/{id}/approve
// does: an approver whom separation of duties excludes is refused (403) and audited as
// api.approval_refused; an approval that counts toward several needed is recorded as
// api.change_approved — the gate is not passed, and the answer says how many more are needed;
// the last one needed releases the held plans and is recorded as the gate passed.
func (s *server) approveGate(w http.ResponseWriter, r *http.Request, c Caller, change string, cur promotion.Step) error {
	ctx := r.Context()
	a, err := s.approveChangeSet(r, c, cur.ChangeSetID, nil)
	if err != nil {
		return err
	}
	if err := s.cfg.Publisher.Publish(ctx, a.Messages...); err != nil {
		return unavailable("change set %s is approved, but releasing its held plans failed (%v): POST /changes/{id}/approve releases them", cur.ChangeSetID, err)
	}
	detail := a.Detail()
	typ, what := EntryApproved, "the approval is recorded"
	if a.Pending == 0 {
		detail["gate"] = "approval"
		typ, what = EntryPromoted, "the change passed its approval gate"
	}
	if err := s.record(ctx, r, typ, c, cur.Env, change, detail); err != nil {
		return unavailable("%s, but %v", what, err)
	}
	rep, err := s.promotionStatus(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, PromoteReply{Moved: "approval", Pending: a.Pending, Status: rep})
}

// passGate moves the change through the gate of step cur (a soak, or a promotion due), and
// says which.
func (s *server) passGate(r *http.Request, c Caller, cur promotion.Step, reason string) (string, error) {
	ctx := r.Context()
	switch cur.State {
	case promotion.StateSoaking:
		if strings.TrimSpace(reason) == "" {
			return "", invalid("the change soaks in "+cur.Env+" until "+cur.Until.Format("2006-01-02T15:04:05Z07:00")+": ending the soak early needs a reason",
				FieldError{Pointer: "/reason", Detail: "required: why the soak ends now, for the record"})
		}
		now := s.cfg.Now()
		_, err := s.cfg.ChangeSets.Update(ctx, cur.ChangeSetID, func(cs *changeset.ChangeSet) error { return cs.SkipSoak(c.Name, reason, now) })
		if errors.Is(err, changeset.ErrNoSoak) { // over, or ended by someone else, since the status was read
			return "", conflict("%v: nothing recorded; GET /changes/{id}/promotion says where the change stands (a promotion due starts with POST /changes/{id}/promote, without a reason)", err)
		}
		if err != nil {
			return "", err
		}
		return "soak", s.startPromotion(r, cur.ChangeSetID)
	case promotion.StateDue:
		return "due", s.startPromotion(r, cur.ChangeSetID)
	case promotion.StateStopped:
		return "", conflict("the promotion stopped in %s: %s", cur.Env, cur.Detail)
	case promotion.StateApplied:
		return "", conflict("the promotion is complete: nothing to move")
	}
	return "", conflict("nothing to move: in %s the change is %s; it goes on by itself", cur.Env, cur.State)
}

// startPromotion publishes the next environment's change of change set id, now due.
func (s *server) startPromotion(r *http.Request, id string) error {
	_, err := promotion.StartChangeSet(r.Context(), s.cfg.ChangeSets, s.cfg.Publisher.Publish, id, s.cfg.Now())
	if err != nil {
		return unavailable("starting the next environment of %s failed (%v): it starts at the next check, or promote again", id, err)
	}
	return nil
}
