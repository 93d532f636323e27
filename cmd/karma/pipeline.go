package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/usekarma/karma/shared/app"
	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/queue"
)

// stack is the pipeline's stores as the commands use them, on whatever backend the configuration
// names (shared/app). eq is the embedded queue when the queue is embedded (nil on AWS: then the
// stages run in the Lambda functions, or in karma serve as SQS pollers).
type stack struct {
	s          *session
	eq         *embedded.Queue
	transport  queue.Queue // what the runtime sends and receives through (the queue, or a test wrapper)
	changeSets changeset.Store
	lineage    lineage.Store
	audit      audit.Log
	seen       pipeline.Seen
	records    pipeline.Records // each commit's change (the idempotency store records it)
	settings   model.Settings
	runner     *pipeline.Runner
	notices    io.Writer // where runUntilIdle says what it released and waits for (nil: nowhere)
}

// stackOptions tune the runtime.
type stackOptions struct {
	parallelism int
	observe     func(stage string, in message.Envelope, out []message.Envelope, action pipeline.Action, err error)
	log         *slog.Logger
	// serve runs the stages in this process whatever the queue: on SQS, as pollers (karma
	// serve). Commands run them only on the embedded queue.
	serve bool
}

// openStack opens a session and its stack; the caller closes the session.
func (g *globals) openStack(ctx context.Context) (*session, *stack, error) {
	s, err := g.open(ctx)
	if err != nil {
		return nil, nil, err
	}
	st, err := s.stack(ctx, stackOptions{})
	if err != nil {
		s.close()
		return nil, nil, err
	}
	return s, st, nil
}

func (s *session) stack(ctx context.Context, _ stackOptions) (*stack, error) {
	a := s.app
	st := &stack{s: s}
	var err error
	if st.settings.Prefix, err = a.Prefix(); err != nil {
		return nil, err
	}
	if st.transport, err = a.Queue(ctx); err != nil {
		return nil, err
	}
	if st.eq, err = a.EmbeddedQueue(ctx); err != nil {
		return nil, err
	}
	if st.changeSets, err = a.ChangeSets(ctx); err != nil {
		return nil, err
	}
	if st.lineage, err = a.Lineage(ctx); err != nil {
		return nil, err
	}
	if st.audit, err = a.Audit(ctx); err != nil {
		return nil, err
	}
	if st.seen, err = a.Seen(ctx); err != nil {
		return nil, err
	}
	rec, ok := st.seen.(pipeline.Records)
	if !ok {
		return nil, fmt.Errorf("the idempotency store (%T) cannot record which change each commit started", st.seen)
	}
	st.records = rec
	return st, nil
}

// workers wires every stage; terraform is looked up only here, so read-only commands run without it.
func (st *stack) workers(ctx context.Context, opts stackOptions) error {
	if st.eq == nil && !opts.serve {
		return nil // on AWS the stages are the Lambda functions (or karma serve's SQS pollers)
	}
	r, err := st.s.app.Runner(ctx, app.RunOptions{Parallelism: opts.parallelism, Log: opts.log, Observe: opts.observe})
	if err != nil {
		return err
	}
	st.runner = r
	return nil
}

// publish sends root messages into the pipeline (the queue, or the event bus on AWS).
func (st *stack) publish(ctx context.Context, msgs ...message.Envelope) error {
	return st.s.app.Publish(ctx, msgs...)
}

// approve approves change sets as by (changeset.ApproveSeenAt, the one implementation the API
// shares), each for exactly the plans shown of it (showPlans: change set id → component → plan
// hash), publishes the deployment.approved messages releasing their held plans, and audits each
// decision (decide.go).
func (st *stack) approve(ctx context.Context, w io.Writer, ids []string, shown map[string]map[string]string, by string) error {
	for _, id := range ids {
		if err := st.approveOne(ctx, w, id, by, shown[id]); err != nil {
			return err
		}
	}
	return nil
}

// showPlans prints the plans each change set of ids holds for review, as the change-set store
// holds them now (on every backend: on AWS the functions made them), and returns what it showed:
// for each change set, its held plans' component → plan hash. An approval binds to exactly these.
func (st *stack) showPlans(ctx context.Context, w io.Writer, ids []string) (map[string]map[string]string, error) {
	shown := make(map[string]map[string]string, len(ids))
	for _, id := range ids {
		cs, err := st.changeSets.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		printPlans(w, cs)
		shown[id] = heldPlans(cs)
	}
	return shown, nil
}

// heldPlans are a change set's plans held for review: component → plan hash.
func heldPlans(cs *changeset.ChangeSet) map[string]string {
	held := map[string]string{}
	for id, n := range cs.Nodes {
		if n.State == changeset.Planned && n.Plan != nil {
			held[id] = n.Plan.PlanHash
		}
	}
	return held
}

func splitID(id string) (string, string, string) {
	parts := strings.SplitN(id, "/", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	return parts[0], parts[1], parts[2]
}
