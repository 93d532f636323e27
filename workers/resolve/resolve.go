// Package resolve is the stage that turns a detected change into decisions: it loads the graph,
// computes the affected set and its waves, creates the change set, and — as deployments finish —
// decides which dependents to deploy next (see shared/changeset for the rules).
//
// Input:  change.detected, deployment.applied, deployment.failed, change.superseded,
// change.rejected, change.expired.
// Output: change.resolved (the impact, or a rejection such as a cycle with its path),
//
//	deployment.scheduled, deployment.skipped.
//
// Every change set is built from one commit of the config repository — the pushed commit, the
// commit a change request became, or (for a parameter written outside Karma, and for a
// corrective change set after drift) the deploy branch's head when the change arrives — and
// records it: plan and apply take every config and
// Terraform module from that commit's tree, never from a working tree. Change sets of one
// environment that share a component run in order (see shared/changeset's Ordering).
//
// Idempotency: change sets are created once (by id); decisions go through the change set's
// outbox, so a redelivered message re-announces unpublished decisions and never decides twice.
package resolve

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/governance"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/policy"
)

// Graphs builds the validated graph of one environment at a commit of the config repository
// (with file overrides for a change request upcast from change.detected v2).
type Graphs interface {
	Build(ctx context.Context, env, commit string, overrides map[string][]byte) (*model.Result, error)
	// Environments lists every environment of the repository at a commit.
	Environments(ctx context.Context, commit string) ([]string, error)
	// SettingsAt reads the repository's settings (karma.json) at a commit.
	SettingsAt(ctx context.Context, commit string) (model.Settings, error)
}

// Commits is what resolve asks of the config repository's history.
type Commits interface {
	// Head is the deploy branch's head: the commit a change that names none is built from.
	Head(ctx context.Context) (string, error)
	// Diff lists the files that differ between two commits (a truncated push).
	Diff(ctx context.Context, before, after string) ([]model.ChangedFile, error)
	// IsAncestor reports whether commit a is an ancestor of commit b.
	IsAncestor(ctx context.Context, a, b string) (bool, error)
}

// Authors is a Commits that lists the authors of the commits between two (git log
// before..after): a push whose payload listed only part of its commits names the authors of
// all of them (configrepo.Source).
type Authors interface {
	Authors(ctx context.Context, before, after string) ([]string, error)
}

// FileVersions is a Commits that reads a file as a commit has it (FileAt) and as its first
// parent has it (FileBefore); found is false when it has none. A hold then compares the
// resolved configs of what a change deploys with and without another change's edit of a config
// file, not the file alone (sameConfigs).
type FileVersions interface {
	FileAt(ctx context.Context, commit, path string) (data []byte, found bool, err error)
	FileBefore(ctx context.Context, commit, path string) (data []byte, found bool, err error)
}

// ConfigReader reads a component's /config parameter (a change made in Parameter Store) at
// version (0: the current one), written at writtenAt (params.GetWritten): a version of that
// number written at another time is of the parameter deleted and created again since, and
// refused with an error matching params.ErrRecreated. A zero writtenAt (a change that does not
// say it) leaves the number to decide.
type ConfigReader interface {
	Config(ctx context.Context, env, component string, version int64, writtenAt time.Time) ([]byte, error)
}

// Worker is the resolve stage.
type Worker struct {
	Graphs     Graphs
	Commits    Commits
	ChangeSets changeset.Store
	Configs    ConfigReader
	// Policies are asked about every component before it is scheduled (police.go); nil: none.
	Policies policy.Evaluator
	// Floor is the operator's floor of governance rules (KARMA_GOVERNANCE): a change set keeps
	// the stricter of its and the commit's karma.json's; nil: the commit's alone.
	Floor *governance.Settings
	Now   func() time.Time
}

// Handle dispatches on the message type.
func (w *Worker) Handle(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
	switch in.Type {
	case message.TypeChangeDetected:
		return w.detected(ctx, in)
	case message.TypeDeploymentApplied:
		var p message.DeploymentApplied
		if err := message.Decode(in, &p); err != nil {
			return nil, err
		}
		return w.settle(ctx, in, p.ChangeSetID, func(cs *changeset.ChangeSet) error { return cs.MarkApplied(p.Component, p.ChangedKeys) })
	case message.TypeDeploymentFailed:
		var p message.DeploymentFailed
		if err := message.Decode(in, &p); err != nil {
			return nil, err
		}
		return w.settle(ctx, in, p.ChangeSetID, func(cs *changeset.ChangeSet) error { return cs.MarkFailed(p.Component, p.Stage+": "+p.Error) })
	case message.TypeChangeSuperseded:
		return w.superseded(ctx, in)
	case message.TypeChangeRejected:
		return w.rejected(ctx, in)
	case message.TypeChangeExpired:
		return w.expired(ctx, in)
	}
	return nil, pipeline.Permanent(fmt.Errorf("resolve: unexpected message type %s", in.Type))
}

func (w *Worker) detected(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
	var p message.ChangeDetected
	if err := message.Decode(in, &p); err != nil {
		return nil, err
	}
	if p.Retry != nil && (in.Env == "" || p.Source != message.SourceGit || p.Promotion != nil || p.Retry.Attempt < 2) {
		return nil, pipeline.Permanent(fmt.Errorf("resolve: change.detected %s: retry (try %d) is the try again of a commit's change held in one environment: "+
			"it needs source git, an env, no promotion and a try of 2 or more (env %q, source %s)", in.ID, p.Retry.Attempt, in.Env, p.Source))
	}
	commit, err := w.commitOf(ctx, &p)
	if err != nil {
		return nil, err
	}
	envs, err := w.envsOf(ctx, in.Env, commit, p)
	if err != nil {
		return nil, err
	}
	promo, err := w.promotionOf(ctx, commit, p)
	if err != nil {
		return nil, err
	}
	if in.Env == "" {
		envs = promo.startNow(envs)
	}
	var out []message.Envelope
	for _, env := range envs {
		msgs, err := w.resolveEnv(ctx, in, p, env, commit, promo)
		if err != nil {
			return nil, err
		}
		out = append(out, msgs...)
	}
	return out, nil
}

// commitOf is the commit the change is built from (for a change that names none, the head
// Prepare read, else the deploy branch's head now), and completes a truncated push's files by
// diffing it in the repository. Failures to reach the repository are retried (with backoff)
// and then dead-lettered with their reason, naming the repository and the commit: nothing is
// ever built from another tree instead.
func (w *Worker) commitOf(ctx context.Context, p *message.ChangeDetected) (string, error) {
	if p.Commit == nil {
		if pr := preparedFor(ctx); pr != nil && pr.head != "" {
			return pr.head, nil
		}
		head, err := w.Commits.Head(ctx)
		if err != nil {
			return "", fmt.Errorf("resolve: the deploy branch's head: %w", err)
		}
		return head, nil
	}
	if p.Truncated {
		changed, err := w.Commits.Diff(ctx, p.Commit.Before, p.Commit.SHA)
		if err != nil {
			return "", fmt.Errorf("resolve: listing the files of truncated push %s..%s: %w", p.Commit.Before, p.Commit.SHA, err)
		}
		// Every path goes to roots (which matches them against the commit's own settings);
		// removed config files are destroys.
		_, removed := model.DeployableChanges(changed, "")
		p.Files, p.Removed = nil, nil
		for _, f := range changed {
			p.Files = append(p.Files, f.Path)
		}
		for _, r := range removed {
			p.Removed = append(p.Removed, message.ComponentRef{Type: r.Type, Nickname: r.Nickname})
		}
		// Nor did it list every author: separation of duties and the policies ask about each.
		if a, ok := w.Commits.(Authors); ok && strings.Trim(p.Commit.Before, "0") != "" {
			authors, err := a.Authors(ctx, p.Commit.Before, p.Commit.SHA)
			if err != nil {
				return "", fmt.Errorf("resolve: listing the authors of truncated push %s..%s: %w", p.Commit.Before, p.Commit.SHA, err)
			}
			for _, au := range authors {
				if !slices.Contains(p.Commit.Authors, au) {
					p.Commit.Authors = append(p.Commit.Authors, au)
				}
			}
			slices.Sort(p.Commit.Authors)
		}
	}
	return p.Commit.SHA, nil
}

// envsOf: the message's env, or, for a commit touching several, every env its files concern.
func (w *Worker) envsOf(ctx context.Context, env, commit string, p message.ChangeDetected) ([]string, error) {
	if env != "" {
		return []string{env}, nil
	}
	return w.concerned(ctx, commit, p.Files, p.Removed)
}

func (w *Worker) resolveEnv(ctx context.Context, in message.Envelope, p message.ChangeDetected, env, commit string, promo *promotionPlan) ([]message.Envelope, error) {
	csID := p.ChangeSetID
	if in.Env == "" || p.Promotion != nil {
		csID += "/" + env // one change set per environment of the change
	}
	if attempt := tryOf(p); attempt > 1 {
		// a change tried again after a hold: a change set of its own, the held one linked to it
		csID = changeset.AttemptID(p.ChangeSetID, env, attempt)
		if err := w.linkRetry(ctx, p.ChangeSetID, env, attempt); err != nil {
			return nil, err
		}
	}
	// A redelivery, or another message for the same change set, builds it again and finds it
	// created: nothing is read first, as the first delivery, by far the usual one, would find
	// nothing, and nothing before the creation writes. Building it again may fail where the
	// first delivery did not (the tree, a parameter, the repository changed since): then too
	// the change set created already is announced as it is.
	var cs *changeset.ChangeSet
	var created bool
	for attempt := 1; ; attempt++ {
		var looked *look
		var err error
		if cs, looked, err = w.newChangeSet(ctx, in, p, env, commit, promo, csID); err != nil {
			if out, found, gerr := w.announceExisting(ctx, in, csID); found || gerr != nil {
				return out, gerr
			}
			return nil, err
		}
		created, err = w.create(ctx, cs, looked)
		if errors.Is(err, changeset.ErrLookedTooEarly) && attempt < lookAttempts {
			// another resolve of the environment created a change set sharing a component
			// between the look and the create: look again, and be ordered behind it
			continue
		} else if errors.Is(err, changeset.ErrLookedTooEarly) {
			return nil, pipeline.Transient(err)
		} else if err != nil {
			return nil, err
		}
		break
	}
	if !created {
		out, found, err := w.announceExisting(ctx, in, csID)
		if err == nil && !found {
			err = pipeline.Transient(fmt.Errorf("resolve: change set %s exists, says its creation, but cannot be read", csID))
		}
		return out, err
	}
	if len(cs.QueuedBehind) > 0 && !changeset.Serialized(ctx, w.ChangeSets) {
		// An earlier change set may have finished between the look and the create: look again
		// (not inside one serializable transaction, where nothing can come in between).
		var err error
		if cs, err = w.recheck(ctx, cs); err != nil {
			return nil, err
		}
	}
	out, err := w.announce(ctx, in, cs, true)
	if err != nil {
		return nil, err
	}
	promoted, err := w.promote(ctx, in, cs)
	return append(out, promoted...), err
}

// newChangeSet builds, governs, plans and orders the change set csID of env for p, in memory;
// it returns what the look that ordered it found (queue).
func (w *Worker) newChangeSet(ctx context.Context, in message.Envelope, p message.ChangeDetected, env, commit string, promo *promotionPlan,
	csID string) (*changeset.ChangeSet, *look, error) {
	if err := w.onBranch(ctx, p); err != nil {
		return nil, nil, err
	}
	own := commit
	if p.Source == message.SourceGit {
		var err error
		if commit, err = w.newest(ctx, env, commit); err != nil {
			return nil, nil, err
		}
	}
	var res *model.Result
	if pr := preparedFor(ctx); pr != nil && pr.res != nil && pr.env == env && pr.commit == commit {
		res = pr.res // built by Prepare, outside the transaction, from the same inputs
	} else {
		var err error
		var gone *model.UnknownEnvironmentError
		if res, err = w.Graphs.Build(ctx, env, commit, overridesFor(p, env)); errors.As(err, &gone) && p.Source == message.SourceGit && len(p.Removed) > 0 {
			// the commit removed the environment's last component: nothing is left to build,
			// and its removals are held destroys (roots), recorded as any other
			if res, err = w.emptyEnvironment(ctx, commit); err != nil {
				return nil, nil, err
			}
		} else if err != nil {
			return nil, nil, pipeline.Permanent(fmt.Errorf("resolve: loading %s at commit %s: %w", env, commit, err))
		}
	}
	var held *changeset.Hold // why a commit's change is not built at that tree (promotion.go)
	if p.Source == message.SourceGit {
		var err error
		if p.Promotion != nil && commit != own {
			held, err = w.heldPromotion(ctx, env, own, commit, res, p, csID)
		} else if p.Promotion == nil {
			held, err = w.heldChange(ctx, env, commit, res, p, in.CorrelationID, csID)
		}
		if err != nil {
			return nil, nil, err
		} else if held != nil {
			commit = "" // nothing is built, at any tree: the root causes name the change's commit
		}
	}
	cs := &changeset.ChangeSet{ID: csID, Env: env, CorrelationID: in.CorrelationID, Source: p.Source, Actor: in.Actor, Commit: commit,
		AutoApprove: p.AutoApprove, Approved: p.AutoApprove, CreatedAt: w.now(), Nodes: map[string]*changeset.Node{}, Waves: [][]string{}}
	cs.RootCauses = rootCauses(p)
	if cs.Approved {
		cs.ApprovedBy = "auto-approve"
	}
	rules := res.Repo.Settings.For(env) // the rules of the commit's karma.json
	if w.Floor != nil {
		rules = governance.Stricter(w.Floor.For(env), rules) // which it may tighten, not loosen
	}
	cs.Govern(rules, commitAuthor(p))
	if p.Commit != nil { // who pushed it, and every author of its push: none may approve it
		cs.Pusher, cs.PushAuthors = p.Commit.Pusher, p.Commit.Authors
	}
	cs.CoveredWriters = coveredWriters(p) // who wrote the earlier versions it carries: nor they
	promo.apply(cs, env, p)
	if attempt := tryOf(p); attempt > 1 {
		cs.HeldBefore = changeset.AttemptID(p.ChangeSetID, env, attempt-1)
	}
	if held != nil {
		cs.Held = held
	} else if err := w.build(ctx, cs, res, p, env); err != nil {
		return nil, nil, err
	}
	looked, err := w.queue(ctx, cs)
	if err != nil {
		return nil, nil, err
	}
	cs.SettlePromotion(w.now()) // nothing to deploy here: promoted at once
	return cs, looked, nil
}

// emptyEnvironment is the build of an environment the commit no longer has: no component, the
// commit's settings.
func (w *Worker) emptyEnvironment(ctx context.Context, commit string) (*model.Result, error) {
	settings, err := w.Graphs.SettingsAt(ctx, commit)
	if err != nil {
		return nil, pipeline.Transient(fmt.Errorf("resolve: the settings at commit %s: %w", commit, err))
	}
	return &model.Result{Repo: &model.Repo{Settings: settings}, Graph: graph.NewBuilder(0).Graph()}, nil
}

// announceExisting announces change set csID as a redelivery does, when it exists (found):
// what is not yet published, after looking again at what it is queued behind (the delivery
// that created it may have died before its recheck).
func (w *Worker) announceExisting(ctx context.Context, in message.Envelope, csID string) (out []message.Envelope, found bool, err error) {
	existing, err := w.ChangeSets.Get(ctx, csID)
	if errors.Is(err, changeset.ErrNotFound) {
		return nil, false, nil
	} else if err != nil {
		return nil, false, pipeline.Transient(err)
	}
	if !existing.Started && len(existing.QueuedBehind) > 0 {
		if existing, err = w.recheck(ctx, existing); err != nil {
			return nil, true, err
		}
	}
	out, err = w.announce(ctx, in, existing, true)
	return out, true, err
}

// build fills the change set from the graph, or rejects it: an invalid repository, a rollback
// that can no longer be applied (rollback.go).
func (w *Worker) build(ctx context.Context, cs *changeset.ChangeSet, res *model.Result, p message.ChangeDetected, env string) error {
	if errs := res.Diagnostics.Errors(); len(errs) > 0 {
		cs.Rejected = rejection(errs)
		return nil
	}
	if p.Rollback == nil {
		return w.plan(ctx, cs, res, p, env)
	}
	target, err := w.rollbackTarget(ctx, cs, res, p, env)
	if err != nil || cs.Rejected != "" {
		return err
	}
	if err := w.plan(ctx, cs, res, p, env); err != nil || cs.Rejected != "" {
		return err
	}
	rollbackRoot(cs, target)
	return nil
}

func rejection(errs model.Diagnostics) string {
	var b strings.Builder
	for i, d := range errs {
		if i == 10 {
			fmt.Fprintf(&b, "\n… and %d more", len(errs)-10)
			break
		}
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(d.String())
	}
	return b.String()
}

// commitAuthor is the author of the change's commit ("" for a parameter or runtime change,
// whose tree is the deploy branch's head: its author did not make this change).
func commitAuthor(p message.ChangeDetected) string {
	if p.Commit == nil {
		return ""
	}
	return p.Commit.Author
}

// coveredWriters are the writers of the earlier parameter versions p carries (its covers), sorted,
// each once; nil when it carries none.
func coveredWriters(p message.ChangeDetected) []string {
	var out []string
	for _, c := range p.Covers {
		if w := strings.TrimSpace(c.ModifiedBy); w != "" && !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	slices.Sort(out)
	return out
}

func rootCauses(p message.ChangeDetected) []message.Cause {
	switch {
	case p.Rollback != nil:
		return []message.Cause{{Kind: message.CauseRollback, ID: p.Rollback.DeploymentID}}
	case p.Source == message.SourceDrift && len(p.Drift) > 0:
		out := make([]message.Cause, len(p.Drift))
		for i, id := range p.Drift {
			out[i] = message.Cause{Kind: message.CauseDrift, ID: id}
		}
		return out
	case p.Commit != nil:
		return []message.Cause{{Kind: message.CauseCommit, ID: p.Commit.SHA}}
	case p.Parameter != nil:
		// Earlier versions the change also carries (written by others, their events coalesced
		// into this one) are causes too, each with the keys it changed, so that the lineage
		// names every writer and not only the newest.
		out := make([]message.Cause, 0, len(p.Covers)+1)
		for _, c := range p.Covers {
			out = append(out, message.Cause{Kind: message.CauseParameter, ID: fmt.Sprintf("%s@%d", p.Parameter.Name, c.Version), Keys: c.ChangedKeys})
		}
		return append(out, message.Cause{Kind: message.CauseParameter, ID: fmt.Sprintf("%s@%d", p.Parameter.Name, p.Parameter.Version), Keys: p.ChangedKeys})
	case p.Request != nil:
		return []message.Cause{{Kind: message.CauseRequest, ID: p.Request.ID}}
	}
	return []message.Cause{{Kind: message.CauseRequest, ID: p.ChangeSetID}}
}

// namesItsConfig refuses for good a change of source parameter that does not name exactly the
// version it deploys: a /config version (name, version ≥ 1) of the one component it roots. The
// value read is the root's /config at that version; naming none would deploy the current value
// under no parameter version, and naming another parameter, or several components, the root's
// value at another parameter's version number — never what the lineage names.
func namesItsConfig(p message.ChangeDetected, roots []int32, g *graph.Graph) error {
	switch {
	case p.Parameter == nil:
		return pipeline.Permanent(fmt.Errorf("resolve: change %s of source parameter names no parameter version", p.ChangeSetID))
	case p.Parameter.Version < 1:
		return pipeline.Permanent(fmt.Errorf("resolve: change %s names version %d of %s: want 1 or more", p.ChangeSetID, p.Parameter.Version, p.Parameter.Name))
	case len(p.Components) != 1 || len(roots) != 1:
		return pipeline.Permanent(fmt.Errorf("resolve: change %s of %s names %d components: a parameter's change is of the one component whose /config it is", p.ChangeSetID, p.Parameter.Name, len(p.Components)))
	}
	c := g.Components[roots[0]]
	if want := "/" + c.Type + "/" + c.Nickname + "/config"; !strings.HasSuffix(p.Parameter.Name, want) {
		return pipeline.Permanent(fmt.Errorf("resolve: change %s names %s, which is not the /config of %s (…%s)", p.ChangeSetID, p.Parameter.Name, c.ID, want))
	}
	return nil
}

// plan fills the change set: roots, the potential set downstream, waves, edges inside the set.
func (w *Worker) plan(ctx context.Context, cs *changeset.ChangeSet, res *model.Result, p message.ChangeDetected, env string) error {
	g := res.Graph
	roots, destroys, notes, err := w.roots(ctx, res, p, env)
	if err != nil {
		return err
	}
	imp, err := g.Downstream(roots, graph.ImpactOptions{})
	if err != nil {
		cs.Rejected = err.Error()
		return nil
	}
	byID := map[string]*model.Component{}
	for _, c := range res.Repo.Components {
		byID[c.ID()] = c
	}
	rootSet := map[int32]bool{}
	for _, r := range roots {
		rootSet[r] = true
	}
	for wi, wave := range imp.Waves {
		cs.Waves = append(cs.Waves, g.IDs(wave))
		for _, v := range wave {
			c := g.Components[v]
			n := &changeset.Node{Component: c.ID, Wave: wi, Root: rootSet[v], State: changeset.Pending,
				DeploymentID: changeset.DeploymentID(cs.ID, c.ID), ConfigHash: c.ConfigHash}
			if mc := byID[c.ID]; mc != nil {
				n.Config = mc.Resolved
			}
			cs.Nodes[c.ID] = n
		}
	}
	for id, n := range cs.Nodes {
		v, _ := g.Index(id)
		for _, ei := range g.Dependencies(v) {
			e := g.Edges[ei]
			up := g.Components[e.To].ID
			if _, in := cs.Nodes[up]; in {
				n.Upstreams = append(n.Upstreams, changeset.Upstream{Component: up, Consumes: e.Consumes, OnAnyApply: e.OnAnyApply()})
				cs.Nodes[up].Dependents = append(cs.Nodes[up].Dependents, id)
			}
		}
		if n.Root {
			n.Causes = cs.RootCauses
			n.Detail = notes[id] // why a shared module folder's change deploys it
		}
	}
	if p.Source == message.SourceRuntime && len(p.Components) == 1 && p.RuntimeDiff != nil {
		// what the policies of the dependents it redeploys see of the upstream's runtime
		if up, _, err := runtimeWriter(res, p.Components[0], env); err == nil {
			cs.RuntimeChange = &changeset.RuntimeChange{Upstream: g.Components[up].ID, Diff: p.RuntimeDiff}
		}
	}
	if p.Source == message.SourceParameter {
		if err := namesItsConfig(p, roots, g); err != nil {
			return err
		}
		for _, r := range roots {
			id := g.Components[r].ID
			// The version the change is about: one written since is a change of its own. And
			// the write it names: a parameter deleted and created again starts again at version
			// 1, and its version of that number is another write, with a change of its own —
			// deployed under this change's name, the lineage would name a write whose value it
			// did not deploy. Either is refused for good (dead-lettered with the reason).
			var version int64
			var writtenAt time.Time
			if p.Parameter != nil {
				version, writtenAt = p.Parameter.Version, p.Parameter.WrittenAt
			}
			cfg, err := w.Configs.Config(ctx, env, id, version, writtenAt)
			if errors.Is(err, params.ErrVersionGone) { // (params.ErrRecreated too)
				return pipeline.Permanent(fmt.Errorf("resolve: change %s: %w", p.ChangeSetID, err))
			}
			if err != nil {
				return pipeline.Transient(err)
			}
			// The value is deployed as the component's config: it must be one as a config file
			// is (one JSON object, each member named once) and meet its type's schema at the
			// head, else the change set is rejected, naming the parameter, its version and why —
			// never deployed past the schema, nor recorded with the hash of another document.
			name := fmt.Sprintf("%s@%d", model.ConfigParam(res.Repo.Settings.Prefix, g.Components[r].Type, g.Components[r].Nickname), version)
			if p.Parameter != nil {
				name = fmt.Sprintf("%s@%d", p.Parameter.Name, p.Parameter.Version)
			}
			reject := func(why string) error {
				cs.Rejected, cs.Nodes, cs.Waves = why, map[string]*changeset.Node{}, [][]string{}
				return nil
			}
			obj, d := model.ParseConfig(name, cfg)
			if d != nil {
				return reject(d.String())
			}
			if errs := res.Repo.ValidateConfig(g.Components[r].Type, cfg).Errors(); len(errs) > 0 {
				for i := range errs {
					errs[i].File = name
				}
				return reject(rejection(errs))
			}
			cs.Nodes[id].Config = cfg
			_, cs.Nodes[id].ConfigHash = model.Canonical(obj)
		}
	}
	for _, id := range destroys {
		cs.Nodes[id] = &changeset.Node{Component: id, Root: true, Destroy: true, State: changeset.Pending,
			DeploymentID: changeset.DeploymentID(cs.ID, id), Causes: cs.RootCauses}
		cs.Waves = append(cs.Waves, []string{id})
	}
	return nil
}
