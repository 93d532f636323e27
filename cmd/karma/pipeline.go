package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/queue"
	"github.com/usekarma/karma/shared/terraform"
	"github.com/usekarma/karma/workers/apply"
	auditw "github.com/usekarma/karma/workers/audit"
	"github.com/usekarma/karma/workers/graphwrite"
	"github.com/usekarma/karma/workers/plan"
	"github.com/usekarma/karma/workers/resolve"
)

// stack is the pipeline on the embedded default: every store in the one state file.
type stack struct {
	s          *session
	queue      *embedded.Queue
	transport  queue.Queue // what the runtime sends and receives through (queue, or a test wrapper)
	changeSets *embedded.ChangeSets
	lineage    *embedded.Lineage
	audit      *embedded.AuditLog
	seen       *embedded.Seen
	settings   model.Settings
	runner     *pipeline.Runner
	notices    io.Writer // where runUntilIdle says what it released and waits for (nil: nowhere)
}

// stackOptions tune the runtime.
type stackOptions struct {
	terraform   terraform.Runner // nil = the real terraform (FindTerraform)
	parallelism int
	observe     func(stage string, in message.Envelope, out []message.Envelope, action pipeline.Action, err error)
	log         *slog.Logger
}

// openStack opens a session and its embedded stack; the caller closes the session.
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

func (s *session) stack(ctx context.Context, opts stackOptions) (*stack, error) {
	db, err := s.embeddedDB()
	if err != nil {
		return nil, err
	}
	// The runtime's stages, workers and commits use the file from many goroutines at once. Keep
	// their connections open between uses (database/sql keeps 2 idle by default): opening one
	// costs three files, a fresh page cache and the DSN's pragmas.
	db.SQL.SetMaxIdleConns(32)
	st := &stack{s: s}
	if st.settings, err = model.LoadSettings(s.g.repo, model.Settings{Prefix: s.g.prefix}); err != nil {
		return nil, err
	}
	if st.queue, err = embedded.NewQueue(ctx, db, embedded.QueueOptions{}); err != nil {
		return nil, err
	}
	st.transport = st.queue
	if s.g.testTransport != nil {
		st.transport = s.g.testTransport(st.queue)
	}
	if st.changeSets, err = embedded.NewChangeSets(ctx, db); err != nil {
		return nil, err
	}
	if st.lineage, err = embedded.NewLineage(ctx, db); err != nil {
		return nil, err
	}
	if st.audit, err = embedded.NewAuditLog(ctx, db); err != nil {
		return nil, err
	}
	if st.seen, err = embedded.NewSeen(ctx, db); err != nil {
		return nil, err
	}
	return st, nil
}

// workers wires every stage; terraform is looked up only here, so read-only commands run without it.
func (st *stack) workers(ctx context.Context, opts stackOptions) error {
	tf := opts.terraform
	if tf == nil {
		tf = st.s.g.testRunner
	}
	if tf == nil {
		path, err := terraform.FindTerraform()
		if err != nil {
			return err
		}
		tf = terraform.NewTFExec(path)
	}
	gs, err := st.s.graphStore()
	if err != nil {
		return err
	}
	db, err := st.s.embeddedDB()
	if err != nil {
		return err
	}
	// The stages' writes queue up in Go for the file, with the queue's (see
	// embedded.DB.SerializeChangeSets), instead of sleeping in SQLite's busy handler.
	gs = db.SerializeGraph(gs)
	changeSets, lin := db.SerializeChangeSets(st.changeSets), db.SerializeLineage(st.lineage)
	paramsFor := func(env string) (params.Store, error) {
		p, err := st.s.params(env)
		if ep, ok := p.(*embedded.ParamStore); ok && err == nil {
			return db.SerializeParams(ep), nil
		}
		return p, err
	}
	source, err := st.s.source()
	if err != nil {
		return err
	}
	ws := terraform.Workspaces{WorkDir: filepath.Join(st.s.g.stateDir, "work"), Modules: source, Prefix: st.settings.Prefix}
	log := opts.log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	par := max(opts.parallelism, 1)
	const visibility = 10 * time.Minute
	// Idempotency is the runtime's (Stage.Seen, same rules as the Idempotency middleware): on the
	// embedded queue a batch's claims take one transaction and each key is marked in the
	// transaction that publishes the outputs and acknowledges the message.
	stage := func(name string, h pipeline.Handler, workers int) pipeline.Stage {
		return pipeline.Stage{Name: name, Workers: workers, Seen: st.seen, Lease: visibility, Handler: pipeline.Chain(h,
			pipeline.Logging(log, name), pipeline.Correlation(), pipeline.RetryTransient(2*time.Second))}
	}
	// The audit stage appends a whole batch at once (one transaction).
	auditor := &auditw.Worker{Log: st.audit}
	audit := stage(pipeline.StageAudit, auditor.Handle, 1)
	audit.Batch = auditor.HandleBatch
	st.runner = &pipeline.Runner{Queue: st.transport, Log: log, Observe: opts.observe, Visibility: visibility, RetryBase: st.s.g.testRetryBase, Stages: []pipeline.Stage{
		stage(pipeline.StageResolve, (&resolve.Worker{Graphs: source, Commits: source, ChangeSets: changeSets, Configs: &paramConfigs{s: st.s, prefix: st.settings.Prefix}}).Handle, 1),
		stage(pipeline.StageGraphWrite, (&graphwrite.Worker{Graphs: source, Store: gs, Lineage: lin}).Handle, 1),
		stage(pipeline.StagePlan, (&plan.Worker{ChangeSets: changeSets, Params: paramsFor, Runner: tf, Workspaces: ws}).Handle, par),
		stage(pipeline.StageApply, (&apply.Worker{ChangeSets: changeSets, Params: paramsFor, Runner: tf, Workspaces: ws}).Handle, par),
		audit,
	}}
	return nil
}

// publish enqueues root messages.
func (st *stack) publish(ctx context.Context, msgs ...message.Envelope) error {
	return pipeline.Publish(ctx, st.transport, msgs...)
}

// approve marks change sets approved and releases the plans held for review.
func (st *stack) approve(ctx context.Context, ids []string, by string) error {
	for _, id := range ids {
		type heldPlan struct {
			plan  *message.DeploymentPlanned
			cause string
		}
		var held []heldPlan
		cs, err := st.changeSets.Update(ctx, id, func(cs *changeset.ChangeSet) error {
			held = nil
			cs.Approved, cs.ApprovedBy = true, by
			for _, n := range cs.Nodes {
				if n.State == changeset.Planned && n.Plan != nil {
					held = append(held, heldPlan{n.Plan, n.PlanMessageID})
					n.State = changeset.Scheduled
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, h := range held {
			p := h.plan
			// The approval continues the change: its actor stays the change's author; who approved
			// is in the payload.
			root, err := message.New(message.TypeDeploymentApproved, cs.Env, cs.Actor,
				apply.ApprovalKey(*p), message.DeploymentApproved{DeploymentPlanned: *p, ApprovedBy: by})
			if err != nil {
				return err
			}
			root.CorrelationID, root.CausationID = cs.CorrelationID, h.cause
			if err := st.publish(ctx, root); err != nil {
				return err
			}
		}
	}
	return nil
}

// paramConfigs reads a component's /config parameter.
type paramConfigs struct {
	s      *session
	prefix string
}

func (p *paramConfigs) Config(ctx context.Context, env, component string) ([]byte, error) {
	st, err := p.s.params(env)
	if err != nil {
		return nil, err
	}
	_, typ, nick := splitID(component)
	v, err := st.Get(ctx, model.ConfigParam(p.prefix, typ, nick))
	if err != nil {
		return nil, err
	}
	return []byte(v.Value), nil
}

func splitID(id string) (string, string, string) {
	parts := strings.SplitN(id, "/", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	return parts[0], parts[1], parts[2]
}
