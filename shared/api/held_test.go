package api

import (
	"testing"

	"github.com/usekarma/karma/shared/changeset"
)

// A held promotion has no deployments, so its change set is done by its nodes: it was listed
// "done", as if the change had been deployed there. It is "held", with why and its next try.
func TestHeldPromotionIsNotDone(t *testing.T) {
	cs := &changeset.ChangeSet{ID: "019ceba9-1111-7aaa-8bbb-0123456789ab/prod", Env: "prod", Nodes: map[string]*changeset.Node{},
		Held: &changeset.Hold{Reason: "promotion held: …", Attempt: 1, RetriedAs: "019ceba9-1111-7aaa-8bbb-0123456789ab/prod@2"}}
	v := Summarize(cs)
	if v.State != StateHeld || v.Held != cs.Held.Reason || v.HeldRetried != cs.Held.RetriedAs {
		t.Errorf("summary %+v: want state held, its reason and next try", v)
	}
	cs.RejectedBy, cs.RejectReason = "grace", "not promoting this one" // its tries stopped by a person
	if v := Summarize(cs); v.State != StateRejected {
		t.Errorf("a rejected held promotion: state %s, want %s", v.State, StateRejected)
	}
}
