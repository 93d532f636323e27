// Package lineage is the causal record auditors ask "why is this deployed like this, and who
// caused it?": change sets with their root cause (a commit, a parameter version, a change
// request, a drift event), deployments with what caused each (the root, or the upstream
// deployments whose changed runtime keys reached it), outcomes, and the drift events the drift
// check found (drift -drifted-> component). In graph terms: change -triggered-> deployment
// -deploys-> component, deployment -caused_by-> deployment | commit | parameter | request.
// Implementations: embedded (SQLite tables) and Neptune (vertices and edges).
package lineage

import (
	"context"
	"errors"
	"time"

	"github.com/usekarma/karma/shared/message"
)

// Deployment statuses.
const (
	StatusScheduled = "scheduled"
	StatusApplied   = "applied"
	StatusFailed    = "failed"
	StatusSkipped   = "skipped"
	StatusBlocked   = "blocked"
)

// Change is a change set with its root cause.
type Change struct {
	ID            string          `json:"id"` // change set id
	Env           string          `json:"env"`
	CorrelationID string          `json:"correlation_id"`
	Source        string          `json:"source"`
	RootCauses    []message.Cause `json:"root_causes"`
	Actor         message.Actor   `json:"actor"`
	At            time.Time       `json:"at"`
	Affected      []string        `json:"affected"`
	Rejected      string          `json:"rejected,omitempty"`
	// Commit is the commit whose tree every deployment of the change set used.
	Commit string `json:"commit,omitempty"`
	// QueuedBehind lists the earlier change sets it was queued behind when resolved: per shared
	// component the latest unfinished one (which waited for the ones before it).
	QueuedBehind []string `json:"queued_behind,omitempty"`
}

// Deployment is one component deployed (or skipped) in a change set.
type Deployment struct {
	ID          string          `json:"id"`
	ChangeSetID string          `json:"change_set_id"`
	Env         string          `json:"env"`
	Component   string          `json:"component"`
	Wave        int             `json:"wave"`
	CausedBy    []message.Cause `json:"caused_by"`
	Status      string          `json:"status"`
	Detail      string          `json:"detail,omitempty"`
	ChangedKeys []string        `json:"changed_keys,omitempty"`
	At          time.Time       `json:"at"`
	Actor       message.Actor   `json:"actor"`
}

// Drift is one drift event (drift.detected): what Parameter Store or the infrastructure held,
// for one component, that did not match Karma's intent, and what was done about it.
type Drift struct {
	ID        string `json:"id"` // drift-<16 hex>
	Env       string `json:"env"`
	Component string `json:"component"`
	Kind      string `json:"kind"`   // message.Drift*: config, runtime, infrastructure
	Reason    string `json:"reason"` // differs, missing, orphan, refreshed
	Detail    string `json:"detail"`
	Commit    string `json:"commit"` // the deploy branch's head it was compared with
	// Parameter is the version found, "<name>@<version>" (config, runtime).
	Parameter string `json:"parameter,omitempty"`
	Action    string `json:"action"` // report or correct
	// ChangeSetID is the corrective change set (action correct): its root cause is this drift.
	ChangeSetID string        `json:"change_set_id,omitempty"`
	At          time.Time     `json:"at"`
	Actor       message.Actor `json:"actor"`
}

// ErrNotFound is returned (wrapped) for unknown ids.
var ErrNotFound = errors.New("lineage: not found")

// Store records and answers lineage. Writes are idempotent upserts.
type Store interface {
	RecordChange(ctx context.Context, c Change) error
	RecordDeployment(ctx context.Context, d Deployment) error
	SetOutcome(ctx context.Context, deploymentID, status, detail string, changedKeys []string, at time.Time) error

	Change(ctx context.Context, id string) (Change, error)
	Deployment(ctx context.Context, id string) (Deployment, error)
	// Deployments of a component, newest first.
	Deployments(ctx context.Context, component string) ([]Deployment, error)
	// CausedBy lists deployments one of whose causes is (kind, id).
	CausedBy(ctx context.Context, kind, id string) ([]Deployment, error)
	// ChangesByRoot lists change sets whose root cause is (kind, id).
	ChangesByRoot(ctx context.Context, kind, id string) ([]Change, error)

	// RecordDrift upserts a drift event by id.
	RecordDrift(ctx context.Context, d Drift) error
	// Drift returns one drift event.
	Drift(ctx context.Context, id string) (Drift, error)
	// Drifts lists a component's drift events, newest first.
	Drifts(ctx context.Context, component string) ([]Drift, error)
}
