// Package pipeline runs Karma's stages. A stage is a pure Handler: it receives one message and
// returns the messages it produces, knowing nothing of queues, Lambda or processes. The runtime
// (Runner) delivers, publishes what a handler returns to the queues its Routes name (and always
// to the audit queue), and acknowledges. Middleware wraps handlers: retries of transient errors,
// idempotency, logging, correlation propagation.
//
// Delivery contract: at least once. A handler's outputs are published before its input is
// acknowledged, so a crash in between re-delivers the input and the handler runs again; its
// outputs carry deterministic idempotency keys, so every consumer does each piece of work once.
// Every error is sorted by Classify into retry (the message comes back after its visibility
// timeout and is dead-lettered after MaxReceives), dead-letter (at once, with the reason) or
// duplicate (acknowledged, nothing published).
package pipeline

import (
	"context"

	"github.com/usekarma/karma/shared/message"
)

// Handler is one stage: a message in, the messages it causes out.
type Handler func(ctx context.Context, in message.Envelope) ([]message.Envelope, error)

// Middleware decorates a Handler.
type Middleware func(Handler) Handler

// Chain applies middleware so that the first listed is the outermost.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// Stage names, which are also queue names.
const (
	StageIngest     = "ingest"
	StageResolve    = "resolve"
	StageGraphWrite = "graph-write"
	StagePlan       = "plan"
	StageApply      = "apply"
	StageAudit      = "audit"
)

// Routes says which stages consume each message type. Every message also goes to StageAudit.
var Routes = map[string][]string{
	message.TypeGitPushed:           {StageIngest},
	message.TypeParameterChanged:    {StageIngest},
	message.TypeChangeDetected:      {StageResolve},
	message.TypeChangeResolved:      {StageGraphWrite},
	message.TypeDeploymentScheduled: {StageGraphWrite},
	message.TypeDeploymentSkipped:   {StageGraphWrite},
	message.TypeDeploymentRecorded:  {StagePlan},
	message.TypeDeploymentPlanned:   {StageApply},
	message.TypeDeploymentApproved:  {StageApply},
	message.TypeDeploymentApplied:   {StageResolve, StageGraphWrite},
	message.TypeDeploymentFailed:    {StageResolve, StageGraphWrite},
	message.TypeChangeSuperseded:    {StageResolve},
	message.TypeChangeRejected:      {StageResolve},
	message.TypeDriftDetected:       {StageGraphWrite},
	message.TypeChangeExpired:       {StageResolve},
}

// Destinations returns the queues a message goes to.
func Destinations(typ string) []string {
	return append(append([]string{}, Routes[typ]...), StageAudit)
}
