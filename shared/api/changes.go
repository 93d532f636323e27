package api

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
)

// GET /changes?env=&state=&limit=&cursor= — change sets, newest first, a page at a time (the
// cursor is the id of the last change set of the previous page); GET /changes/{id} — one change
// set: its deployments with their state and why, and its plans with their per-resource changes
// (held plans from the change set, the others from the audit log's deployment.planned), values
// under secret-named keys redacted (redactPlan) as GET /log redacts them. Change
// set ids of Git changes end in /<env>: escape the slash in the path (%2F).

// Change states, derived from the change set.
const (
	StateInvalid    = "invalid"           // resolve refused it (invalid repository, cycle): nothing deployed
	StateHeld       = "held"              // a change resolve held (nothing built: a promotion, or a hotfix whose tree carries a change not through the environments before): tried again as another change set
	StateRejected   = "rejected"          // a person rejected it
	StateExpired    = "expired"           // not approved within its environment's approval expiry
	StateSuperseded = "superseded"        // a later change set deploys what was left
	StateQueued     = "queued"            // waiting behind earlier change sets of the same components
	StateAwaiting   = "awaiting-approval" // plans stop for review until approved (or rejected)
	StateInProgress = "in-progress"       // approved, deploying
	StateDone       = "done"              // every deployment settled, none failed
	StateFailed     = "failed"            // settled, some failed
)

var changeStates = []string{StateInvalid, StateHeld, StateRejected, StateExpired, StateSuperseded, StateQueued, StateAwaiting, StateInProgress, StateDone, StateFailed}

// stateOf says where a change set is.
func stateOf(cs *changeset.ChangeSet) string {
	switch {
	case cs.Rejected != "":
		return StateInvalid
	case cs.RejectedBy != "":
		return StateRejected
	case cs.Held != nil:
		return StateHeld // nodeless, so done: it is not
	case !cs.ExpiredAt.IsZero():
		return StateExpired
	case cs.SupersededBy != "":
		return StateSuperseded
	case cs.Done() && len(cs.FailedComponents()) > 0:
		return StateFailed
	case cs.Done():
		return StateDone
	case len(cs.QueuedBehind) > 0:
		return StateQueued
	case !cs.Approved:
		return StateAwaiting
	}
	return StateInProgress
}

// ChangeSummary is a change set as GET /changes lists it.
type ChangeSummary struct {
	ID           string          `json:"id"`
	Env          string          `json:"env"`
	State        string          `json:"state"`
	Source       string          `json:"source"`
	Actor        message.Actor   `json:"actor"`
	CreatedAt    time.Time       `json:"created_at"`
	Commit       string          `json:"commit,omitempty"`
	RootCauses   []message.Cause `json:"root_causes"`
	Roots        []string        `json:"roots"`
	AutoApprove  bool            `json:"auto_approve"`
	Approved     bool            `json:"approved"`
	ApprovedBy   string          `json:"approved_by,omitempty"`
	RejectedBy   string          `json:"rejected_by,omitempty"`
	RejectReason string          `json:"reject_reason,omitempty"`
	Invalid      string          `json:"invalid,omitempty"`         // why resolve refused it
	Held         string          `json:"held,omitempty"`            // why resolve held the change (a promotion, or a hotfix)
	HeldRetried  string          `json:"held_retried_as,omitempty"` // the change set of its next try
	SupersededBy string          `json:"superseded_by,omitempty"`
	QueuedBehind []string        `json:"queued_behind,omitempty"`
	Counts       map[string]int  `json:"counts"` // deployments per state
	// Governance: the rules of the change's environment at its commit, and its approvals so far.
	Protected          bool                 `json:"protected,omitempty"`
	ApprovalsRequired  int                  `json:"approvals_required"`
	Approvals          []changeset.Approver `json:"approvals,omitempty"`
	Author             string               `json:"author,omitempty"` // the commit's author
	ExpiresAt          *time.Time           `json:"expires_at,omitempty"`
	ExpiredAt          *time.Time           `json:"expired_at,omitempty"`
	AutoApproveRefused string               `json:"auto_approve_refused,omitempty"`
}

// Summarize is a change set as GET /changes shows it (the CLI's `karma changes` too).
func Summarize(cs *changeset.ChangeSet) ChangeSummary { return summarize(cs) }

func summarize(cs *changeset.ChangeSet) ChangeSummary {
	v := ChangeSummary{ID: cs.ID, Env: cs.Env, State: stateOf(cs), Source: cs.Source, Actor: cs.Actor, CreatedAt: cs.CreatedAt, Commit: cs.Commit,
		RootCauses: cs.RootCauses, Roots: []string{}, AutoApprove: cs.AutoApprove, Approved: cs.Approved, ApprovedBy: cs.ApprovedBy,
		RejectedBy: cs.RejectedBy, RejectReason: cs.RejectReason, Invalid: cs.Rejected, SupersededBy: cs.SupersededBy,
		QueuedBehind: cs.QueuedBehind, Counts: map[string]int{},
		ApprovalsRequired: cs.Required(), Approvals: cs.Approvals, Author: cs.Author, AutoApproveRefused: cs.AutoApproveRefused,
		ExpiresAt: timeOrNil(cs.ExpiresAt), ExpiredAt: timeOrNil(cs.ExpiredAt)}
	if cs.Held != nil {
		v.Held, v.HeldRetried = cs.Held.Reason, cs.Held.RetriedAs
	}
	v.Protected = cs.Rules != nil && cs.Rules.Protected
	for _, wave := range cs.Waves {
		for _, id := range wave {
			if n := cs.Nodes[id]; n != nil {
				v.Counts[n.State]++
				if n.Root {
					v.Roots = append(v.Roots, id)
				}
			}
		}
	}
	return v
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// ChangeList is a page of GET /changes.
type ChangeList struct {
	Changes    []ChangeSummary `json:"changes"`
	NextCursor string          `json:"next_cursor,omitempty"`
}

func (s *server) listChanges(w http.ResponseWriter, r *http.Request, _ Caller) error {
	q := &query{r: r}
	env, state, cursor := q.str("env"), q.str("state"), q.str("cursor")
	limit := q.int("limit", 50, 1, 500)
	if state != "" && !slices.Contains(changeStates, state) {
		q.fail("state", "want one of "+strings.Join(changeStates, ", "))
	}
	if err := q.err(); err != nil {
		return err
	}
	all, err := s.cfg.ChangeSets.List(r.Context())
	if err != nil {
		return err
	}
	out := ChangeList{Changes: []ChangeSummary{}}
	started := cursor == ""
	for _, cs := range all {
		if !started {
			started = cs.ID == cursor
			continue
		}
		if (env != "" && cs.Env != env) || (state != "" && stateOf(cs) != state) {
			continue
		}
		if len(out.Changes) == limit {
			out.NextCursor = out.Changes[limit-1].ID
			break
		}
		out.Changes = append(out.Changes, summarize(cs))
	}
	if !started {
		p := badRequest("cursor %q is no change set: start again without a cursor", cursor)
		p.Errors = []FieldError{{Pointer: "/query/cursor", Detail: "unknown cursor"}}
		return p
	}
	return writeJSON(w, http.StatusOK, out)
}

// ChangeDetail is the answer of GET /changes/{id}.
type ChangeDetail struct {
	ChangeSummary
	Waves       [][]string         `json:"waves"`
	Deployments []ChangeDeployment `json:"deployments"`
	Plans       []Plan             `json:"plans"`
	// UnreadableRecords are the change's deployment.planned audit records that could not be
	// read: a plan may be missing from Plans, and the answer says so rather than hide them.
	UnreadableRecords []UnreadableRecord `json:"unreadable_records,omitempty"`
}

// UnreadableRecord names an audit record that could not be read, and why.
type UnreadableRecord struct {
	MessageID    string `json:"message_id"`
	Type         string `json:"type"`
	Chain        string `json:"chain"`
	Seq          int64  `json:"seq"`
	DeploymentID string `json:"deployment_id,omitempty"`
	Error        string `json:"error"`
}

// ChangeDeployment is one component of a change set: its deployment, state and why.
type ChangeDeployment struct {
	Component    string          `json:"component"`
	DeploymentID string          `json:"deployment_id"`
	Wave         int             `json:"wave"`
	State        string          `json:"state"`
	Root         bool            `json:"root,omitempty"`
	Destroy      bool            `json:"destroy,omitempty"`
	Reason       string          `json:"reason,omitempty"`
	Detail       string          `json:"detail,omitempty"`
	Causes       []message.Cause `json:"causes,omitempty"`
	ChangedKeys  []string        `json:"changed_keys,omitempty"`
}

// Plan is a deployment's saved plan: Held while it waits for approval.
type Plan struct {
	message.DeploymentPlanned
	Held bool `json:"held"`
}

func (s *server) getChange(w http.ResponseWriter, r *http.Request, _ Caller) error {
	cs, err := s.changeSet(r)
	if err != nil {
		return err
	}
	v := ChangeDetail{ChangeSummary: summarize(cs), Waves: cs.Waves, Deployments: []ChangeDeployment{}}
	for _, wave := range cs.Waves {
		for _, id := range wave {
			n := cs.Nodes[id]
			v.Deployments = append(v.Deployments, ChangeDeployment{Component: id, DeploymentID: n.DeploymentID, Wave: n.Wave, State: n.State, Root: n.Root,
				Destroy: n.Destroy, Reason: n.Reason, Detail: n.Detail, Causes: n.Causes, ChangedKeys: n.ChangedKeys})
		}
	}
	if v.Plans, v.UnreadableRecords, err = s.plans(r, cs); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// changeSet is the change set the path names; 404 when there is none.
func (s *server) changeSet(r *http.Request) (*changeset.ChangeSet, error) {
	id := r.PathValue("id")
	cs, err := s.cfg.ChangeSets.Get(r.Context(), id)
	if errors.Is(err, changeset.ErrNotFound) {
		return nil, notFound("no change set %q: GET /changes lists them (a change set id ending in /<env> has its slash escaped as %%2F in the path)", id)
	}
	return cs, err
}

// plans of cs, in wave order: those held for review from the change set, the others as the
// audit log recorded their deployment.planned — the last plan of each deployment: a plan made
// again by the apply stage (a stale plan; keyed by its hash) replaces the plan stage's, whatever
// the order the audit stage recorded them in, as it replaced it in the deployment.
//
// A deployment.planned record of the change that cannot be read (its body no envelope, its
// payload no plan) is not skipped: it is returned in unreadable, named, since the plan it holds
// may be missing from the answer. Records of the change's other change sets (other environments,
// the same correlation) are told apart by their deployment id, or else their environment.
func (s *server) plans(r *http.Request, cs *changeset.ChangeSet) (out []Plan, unreadable []UnreadableRecord, err error) {
	recorded := map[string]message.DeploymentPlanned{}
	again := map[string]bool{} // deployment id: a plan made again is recorded
	recs, err := s.cfg.Audit.Query(r.Context(), audit.Query{Correlation: cs.CorrelationID})
	if err != nil {
		return nil, nil, err
	}
	ours := map[string]bool{} // deployment ids of cs
	for _, n := range cs.Nodes {
		ours[n.DeploymentID] = true
	}
	for _, rec := range recs {
		if rec.Type != message.TypeDeploymentPlanned {
			continue
		}
		var p message.DeploymentPlanned
		e, err := message.Parse(rec.Body)
		if err == nil {
			err = message.Decode(e, &p)
		}
		if err != nil {
			if ours[rec.DeploymentID] || (rec.DeploymentID == "" && (rec.Env == "" || rec.Env == cs.Env)) {
				unreadable = append(unreadable, UnreadableRecord{MessageID: rec.MessageID, Type: rec.Type, Chain: rec.Chain, Seq: rec.Seq,
					DeploymentID: rec.DeploymentID, Error: err.Error()})
			}
			continue
		}
		if p.ChangeSetID != cs.ID {
			continue
		}
		first := e.IdempotencyKey == message.TypeDeploymentPlanned+":"+p.DeploymentID // the plan stage's
		if first && again[p.DeploymentID] {
			continue
		}
		recorded[p.DeploymentID], again[p.DeploymentID] = p, again[p.DeploymentID] || !first
	}
	out = []Plan{}
	for _, wave := range cs.Waves {
		for _, id := range wave {
			n := cs.Nodes[id]
			switch p, ok := recorded[n.DeploymentID]; {
			case n.Plan != nil:
				out = append(out, Plan{DeploymentPlanned: redactPlan(*n.Plan), Held: n.State == changeset.Planned})
			case ok:
				out = append(out, Plan{DeploymentPlanned: redactPlan(p)})
			}
		}
	}
	return out, unreadable, nil
}

// redactPlan is p as GET /changes/{id} shows it: its resources' values with secret-named values
// replaced as GET /log shows them (redactDeep), besides those Terraform marked sensitive — a
// module variable such as a database's master_password is not, and the plan stage records the
// plan as Terraform shows it. p's resources are copied: the change set's plan is not touched.
func redactPlan(p message.DeploymentPlanned) message.DeploymentPlanned {
	if p.Resources == nil {
		return p
	}
	rs := make([]message.ResourceChange, len(p.Resources))
	for i, rc := range p.Resources {
		rc.Before, _ = redactDeep(rc.Before)
		rc.After, _ = redactDeep(rc.After)
		rs[i] = rc
	}
	p.Resources = rs
	return p
}
