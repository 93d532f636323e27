package api

import (
	"context"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/drift"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
)

// What the API reads and writes, each as small as its handlers need. The embedded stores and
// the AWS adapters satisfy them; cmd/ wires them.

// Graphs gives the current graph of an environment ("" = every environment): the deploy
// branch's head (HeadGraphs), or a snapshot the service keeps fresh. The same *model.Result
// for the same graph lets the API reuse what it encoded from it.
type Graphs interface {
	Current(ctx context.Context, env string) (*model.Result, error)
}

// ChangeSets are the change sets: read, and updated by approvals and rejections.
type ChangeSets interface {
	Get(ctx context.Context, id string) (*changeset.ChangeSet, error)
	List(ctx context.Context) ([]*changeset.ChangeSet, error) // newest first
	Update(ctx context.Context, id string, fn func(*changeset.ChangeSet) error) (*changeset.ChangeSet, error)
}

// Lineage answers why a deployment happened.
type Lineage interface {
	Change(ctx context.Context, id string) (lineage.Change, error)
	Deployment(ctx context.Context, id string) (lineage.Deployment, error)
	Deployments(ctx context.Context, component string) ([]lineage.Deployment, error) // newest first
}

// AuditLog is queried by GET /log and written with every write the API accepts (and every
// request it refuses for want of credentials).
type AuditLog interface {
	Query(ctx context.Context, q audit.Query) ([]audit.Record, error)
	Append(ctx context.Context, recs ...audit.Record) (int, error)
	audit.AppendOrder // GET /log's pages (audit.Page)
}

// ParamReader reads an environment's parameter store (a component's runtime).
type ParamReader interface {
	Get(ctx context.Context, name string) (params.Parameter, error)
}

// Publisher sends the messages a write produces into the pipeline.
type Publisher interface {
	Publish(ctx context.Context, msgs ...message.Envelope) error
}

// DriftCheck runs the drift check as a read (drift.ReadOnly): it compares and marks what was
// recorded before, publishing nothing.
type DriftCheck interface {
	Check(ctx context.Context, o drift.Options) (*drift.Report, error)
}

// Proposals validates proposed changes at the deploy branch's head (configrepo.Source).
type Proposals interface {
	Head(ctx context.Context) (string, error)
	CheckProposal(ctx context.Context, base, env, typ, nick string, data []byte) (*configrepo.Checked, error)
	Predict(ctx context.Context, c *configrepo.Checked) (*configrepo.Prediction, error)
}

// ProposalWriter turns a proposal into a commit (configrepo.Writer).
type ProposalWriter interface {
	Commit(ctx context.Context, p configrepo.Proposal) (string, error)
	BranchOf(id string) string
}

var (
	_ ChangeSets     = changeset.Store(nil)
	_ Lineage        = lineage.Store(nil)
	_ AuditLog       = audit.Log(nil)
	_ ParamReader    = params.Store(nil)
	_ Proposals      = (*configrepo.Source)(nil)
	_ ProposalWriter = (*configrepo.Writer)(nil)
	_ DriftCheck     = drift.ReadOnly{}
)
