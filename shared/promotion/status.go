package promotion

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/changeset"
)

// States of a step of a promotion: one environment.
const (
	StateWaiting    = "waiting"     // not started: the previous environment is not through yet
	StateStarting   = "starting"    // promoted into it; its change set is not resolved yet
	StateQueued     = "queued"      // its change set waits behind earlier ones of the environment
	StateApproval   = "approval"    // its plans wait for an approval
	StateDeploying  = "deploying"   // being planned and applied
	StateSoaking    = "soaking"     // applied; soaking until Until
	StateDue        = "due"         // applied and soaked: the next environment starts at the next check
	StateApplied    = "applied"     // applied, and promoted onwards (or the last environment)
	StateHeld       = "held"        // not built: what the environment was deployed at since holds changes not through the ones before; tried again when they move
	StateStopped    = "stopped"     // failed, rejected or superseded: the promotion stops here
	StateNotReached = "not reached" // the promotion stopped before it
)

// Step is where the change stands in one environment.
type Step struct {
	Env         string    `json:"env"`
	ChangeSetID string    `json:"change_set_id"` // its change set (to be, when not started)
	State       string    `json:"state"`         // State*
	Detail      string    `json:"detail,omitempty"`
	Until       time.Time `json:"until,omitzero"` // the end of a soak
}

// Report is where a change stands in its promotion.
type Report struct {
	Change string `json:"change"` // the change's root id
	Commit string `json:"commit"`
	Steps  []Step `json:"steps"`
	// At is the step the change is at: the last one started (what karma promote moves).
	At int `json:"at"`
	// Stopped says where and why the promotion stopped ("" while it goes on).
	Stopped string `json:"stopped,omitempty"`
}

// Current is the step the change is at.
func (r Report) Current() Step { return r.Steps[r.At] }

// Complete reports whether the change went through every environment.
func (r Report) Complete() bool {
	return r.At == len(r.Steps)-1 && r.Steps[r.At].State == StateApplied
}

var (
	// ErrUnknown: no change set has the id.
	ErrUnknown = errors.New("promotion: unknown change")
	// ErrNotPromoted: the change concerns at most one environment of the promotion order.
	ErrNotPromoted = errors.New("promotion: not a promoted change")
)

// Status reports where change id (its root id, or one of its change sets' ids) stands.
func Status(all []*changeset.ChangeSet, id string, now time.Time) (Report, error) {
	byID := map[string]*changeset.ChangeSet{}
	root := ""
	for _, cs := range all {
		byID[cs.ID] = cs
		if cs.ID == id || cs.CorrelationID == id {
			root = cs.CorrelationID
		}
	}
	if root == "" {
		return Report{}, fmt.Errorf("%w %s: no change set has this id (karma apply lists the changes it runs)", ErrUnknown, id)
	}
	var start *changeset.ChangeSet
	for _, cs := range all {
		// its first environment's first try (a try after a hold there names the held one)
		if cs.CorrelationID == root && cs.PromotedFrom == "" && cs.HeldBefore == "" && (cs.Promotion != nil || cs.Held != nil) {
			start = cs
		}
	}
	if start != nil {
		start = latest(byID, start) // held there, and tried again since: the latest try
	}
	if start == nil || start.Promotion == nil {
		return Report{}, fmt.Errorf("%w: change %s concerns at most one environment of the promotion order (karma.json \"promotion\"), so it deploys without one", ErrNotPromoted, root)
	}
	r := Report{Change: root, Commit: start.Commit}
	if r.Commit == "" && start.Promotion.Commit != nil {
		r.Commit = start.Promotion.Commit.SHA // held: built at no tree yet
	}
	cur := start
	for {
		r.Steps = append(r.Steps, step(cur, now))
		r.At = len(r.Steps) - 1
		if cur.Promotion == nil {
			break
		}
		next := LastTry(byID, cur)
		if next == nil {
			r.Steps = append(r.Steps, notStarted(cur)...)
			if !cur.Promotion.PromotedAt.IsZero() {
				r.At++ // promoted: the next environment is where it is now
			}
			break
		}
		cur = next
	}
	if s := r.Steps[r.At]; s.State == StateStopped {
		r.Stopped = "in " + s.Env + ": " + s.Detail
	}
	return r, nil
}

// step is where the change stands in cs's environment.
func step(cs *changeset.ChangeSet, now time.Time) Step {
	s := Step{Env: cs.Env, ChangeSetID: cs.ID}
	p := cs.Promotion
	switch {
	case cs.Held != nil && cs.RejectedBy == "":
		s.State, s.Detail = StateHeld, cs.Held.Reason+" (tried again once the environments it waits for move: karma plan, apply, promote, or serve's timer)"
	case cs.Stopped() != "":
		s.State, s.Detail = StateStopped, cs.Stopped()
	case len(cs.QueuedBehind) > 0:
		s.State, s.Detail = StateQueued, "behind "+strings.Join(cs.QueuedBehind, ", ")
	case !cs.Done() && len(cs.PlannedAwaitingApproval()) > 0:
		s.State, s.Detail = StateApproval, "plans of "+strings.Join(cs.PlannedAwaitingApproval(), ", ")+" wait for an approval"
	case !cs.Done() || (p != nil && p.DueAt.IsZero()):
		s.State = StateDeploying
	case p == nil:
		s.State = StateApplied
	case !p.PromotedAt.IsZero():
		s.State, s.Detail = StateApplied, "promoted to "+p.Next+skipped(p)
	case cs.PromotionDue(now):
		s.State, s.Detail = StateDue, "the next environment starts at the next check (karma plan, apply, promote, or serve's timer)"
	default:
		s.State, s.Until, s.Detail = StateSoaking, p.DueAt, fmt.Sprintf("soak of %s", p.Soak)
	}
	return s
}

func skipped(p *changeset.Promotion) string {
	switch {
	case p.SoakSkipped != nil:
		return fmt.Sprintf(" (soak of %s ended early by %s: %s)", p.Soak, p.SoakSkipped.By, p.SoakSkipped.Reason)
	case p.Soaked:
		return fmt.Sprintf(" after a soak of %s", p.Soak)
	}
	return ""
}

// notStarted are the steps after cs that have no change set yet.
func notStarted(cs *changeset.ChangeSet) []Step {
	p := cs.Promotion
	envs := append([]string{p.Next}, p.Then...)
	var out []Step
	for i, env := range envs {
		s := Step{Env: env, ChangeSetID: cs.CorrelationID + "/" + env, State: StateWaiting}
		switch {
		case cs.Stopped() != "":
			s.State, s.Detail = StateNotReached, "the promotion stopped in "+cs.Env
		case i == 0 && !p.PromotedAt.IsZero():
			s.State, s.Detail = StateStarting, "promoted from "+cs.ID+"; its change set is not resolved yet (karma plan runs it)"
		case i == 0:
			s.Detail = "for " + cs.Env
		default:
			s.Detail = "for " + envs[i-1]
		}
		out = append(out, s)
	}
	return out
}
