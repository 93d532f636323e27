package resolve

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/promotion"
)

// Promotions (shared/changeset's promotion.go): a commit concerning several environments of the
// promotion order of its karma.json starts in the first of them only; the change set there
// records where the change goes next. When it succeeded and its soak elapsed, the next
// environment's change.detected (with "promotion") comes back here and is resolved like the
// commit, in that environment only, as change set "<change>/<env>". An environment whose gate
// asks for an approval never auto-approves a commit's change set.

// promotionPlan is how a commit's change flows through the promotion order.
type promotionPlan struct {
	order model.PromotionOrder
	path  []string // the environments of the order the commit concerns, in order
}

// promotionOf reads the promotion order at commit and the path of p's change through it (nil
// when p is not a commit's change, or the order is not configured).
func (w *Worker) promotionOf(ctx context.Context, commit string, p message.ChangeDetected) (*promotionPlan, error) {
	if p.Source != message.SourceGit {
		return nil, nil
	}
	settings, err := w.Graphs.SettingsAt(ctx, commit)
	if err != nil {
		return nil, pipeline.Permanent(fmt.Errorf("resolve: the settings of commit %s: %w", commit, err))
	}
	if len(settings.Promotion) == 0 {
		return nil, nil
	}
	concerned, err := w.concerned(ctx, commit, p.Files, p.Removed)
	if err != nil {
		return nil, err
	}
	return &promotionPlan{order: settings.Promotion, path: settings.Promotion.Path(concerned)}, nil
}

// startNow keeps, of the environments a commit concerns, those outside the promotion order and
// the first of its path: the others wait for their promotion.
func (pp *promotionPlan) startNow(envs []string) []string {
	if pp == nil || len(pp.path) < 2 {
		return envs
	}
	return slices.DeleteFunc(slices.Clone(envs), func(e string) bool { return slices.Contains(pp.path[1:], e) })
}

// apply records in cs (of env) where the change came from and goes next, and the approval its
// environment's gate asks for.
func (pp *promotionPlan) apply(cs *changeset.ChangeSet, env string, p message.ChangeDetected) {
	if p.Promotion != nil {
		cs.PromotedFrom = p.Promotion.From
		cs.RootCauses = append(cs.RootCauses, message.Cause{Kind: message.CausePromotion, ID: p.Promotion.From})
	}
	if pp == nil {
		return
	}
	if step, ok := pp.order.Step(env); ok && step.Approval && cs.AutoApprove {
		// Refused as a protected environment refuses it (changeset.Govern, which ran first):
		// the change set says why, and waits for people no longer than the approval expiry.
		cs.AutoApprove, cs.Approved, cs.ApprovedBy = false, false, ""
		why := "auto-approve was asked for and refused: the promotion order's gate of " + env + " asks for an approval"
		cs.AutoApproveRefused = strings.TrimPrefix(cs.AutoApproveRefused+"; "+why, "; ")
		if cs.Rules != nil && cs.Rules.ApprovalExpiry > 0 && cs.ExpiresAt.IsZero() {
			cs.ExpiresAt = cs.CreatedAt.Add(time.Duration(cs.Rules.ApprovalExpiry))
		}
	}
	i := slices.Index(pp.path, env)
	if i < 0 || i == len(pp.path)-1 {
		return
	}
	step, _ := pp.order.Step(env)
	cs.Promotion = &changeset.Promotion{Next: pp.path[i+1], Then: pp.path[i+2:], Soak: step.SoakDuration(),
		Files: p.Files, Removed: p.Removed, Commit: p.Commit, AutoApprove: p.AutoApprove}
}

// promote announces the next environment's change once cs's promotion is due (no soak), and
// records it promoted once published.
func (w *Worker) promote(ctx context.Context, in message.Envelope, cs *changeset.ChangeSet) ([]message.Envelope, error) {
	if !cs.PromotionDue(w.now()) {
		return nil, nil
	}
	m, err := promotion.Next(cs, &in)
	if err != nil {
		return nil, err
	}
	pipeline.AfterPublish(ctx, func(ctx context.Context) error {
		_, err := w.ChangeSets.Update(ctx, cs.ID, func(cs *changeset.ChangeSet) error {
			cs.MarkPromoted(w.now())
			return nil
		})
		return err
	})
	return []message.Envelope{m}, nil
}

// concerned lists every environment of the repository at commit that files concern: their own
// iac/<env>, or every environment for the base layer, account settings and modules — and an
// environment the commit no longer has, whose last component it removed (removed).
func (w *Worker) concerned(ctx context.Context, commit string, files []string, removed []message.ComponentRef) ([]string, error) {
	all, err := w.Graphs.Environments(ctx, commit)
	if err != nil {
		return nil, pipeline.Transient(err)
	}
	set := map[string]bool{}
	for _, f := range files {
		parts := strings.Split(f, "/")
		switch {
		case len(parts) > 1 && parts[0] == "iac" && parts[1] == model.BaseEnv:
			for _, e := range all {
				set[e] = true
			}
		case len(parts) > 1 && parts[0] == "iac":
			set[parts[1]] = true
			if len(parts) == 5 && parts[4] == "config.json" && !slices.Contains(all, parts[1]) &&
				slices.Contains(removed, message.ComponentRef{Type: parts[2], Nickname: parts[3]}) {
				// an environment whose last component the commit removed: its destroys are
				// recorded (held) like any other, in a change set of their own
				all = append(all, parts[1])
			}
		default: // account_environments/ or a module: every environment may be concerned
			for _, e := range all {
				set[e] = true
			}
		}
	}
	var out []string
	for _, e := range all {
		if set[e] {
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return out, nil
}

// heldPromotion says why the promotion p of the change of commit own into env is held rather
// than built at tree, the later commit env's change sets were built from since (newest), whose
// build res is: nil when it can be built there. Building it at its own commit would undo the
// later one; building it at tree deploys, with the change, what tree changed since own in the
// components the promotion deploys (its roots and their dependents at tree) — which is right
// when that concerns env alone or environments outside the promotion order (a hotfix of env,
// which went through no other environment), and wrong when it changes what an environment
// before env in the order deploys first: commits that have not been through that environment.
// A file that changes none of the components the promotion deploys is not deployed by it,
// whatever it is; one that, as tree has it, went through every environment before env already
// (passed) is tested.
//
// A hold names the environments it waits for and their state then (changeset.HeldOn): the
// promotion is tried again, as change set id's next try, once they moved.
func (w *Worker) heldPromotion(ctx context.Context, env, own, tree string, res *model.Result, p message.ChangeDetected, id string) (*changeset.Hold, error) {
	changed, err := w.Commits.Diff(ctx, own, tree)
	if err != nil {
		return nil, pipeline.Transient(fmt.Errorf("resolve: the files changed between %s and %s: %w", own, tree, err))
	}
	settings, err := w.Graphs.SettingsAt(ctx, tree)
	if err != nil {
		return nil, pipeline.Permanent(fmt.Errorf("resolve: the settings of commit %s: %w", tree, err))
	}
	files, removed := model.DeployableChanges(changed, settings.ModulesDir)
	refs := make([]message.ComponentRef, len(removed))
	for i, r := range removed {
		refs[i] = message.ComponentRef{Type: r.Type, Nickname: r.Nickname}
	}
	deployed, err := w.promotionDeploys(ctx, res, p, env)
	if err != nil {
		return nil, err
	}
	pass := &passed{w: w, tree: tree}
	var untested, first []string    // the files deployed first elsewhere, and where
	accounts := map[string]string{} // an account settings file: the one environment it sets
	for _, a := range res.Repo.Accounts {
		accounts[a.File] = a.Environment
	}
	for _, f := range files {
		if _, ok := accounts[f]; ok {
			continue // env's own settings (a hotfix of env), or another environment's, which env does not read
		}
		concerned, err := w.concerned(ctx, tree, []string{f}, refs)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(concerned, env) {
			continue // another environment's own
		}
		path := settings.Promotion.Path(concerned)
		i := slices.Index(path, env)
		if i <= 0 {
			continue
		}
		reached, err := w.reaches(ctx, res, env, f, deployed)
		if err != nil {
			return nil, err
		} else if len(reached) == 0 {
			continue // changes nothing the promotion deploys: built at tree, it deploys none of it
		}
		if ok, err := pass.through(ctx, f, path[:i]); err != nil {
			return nil, err
		} else if ok {
			continue // as tree has it, f went through every environment before env already
		}
		if same, err := w.sameConfigs(ctx, env, tree, res, f, reached, func(fv FileVersions) ([]byte, bool, error) {
			return fv.FileAt(ctx, own, f)
		}); err != nil {
			return nil, err
		} else if same {
			continue // as tree has it rather than as own has it, f changes none of those configs
		}
		untested = append(untested, f)
		for _, e := range path[:i] {
			if !slices.Contains(first, e) {
				first = append(first, e)
			}
		}
	}
	if len(untested) == 0 {
		return nil, nil
	}
	if err := pass.load(ctx); err != nil {
		return nil, err
	}
	attempt := 1
	if p.Promotion.Attempt > 1 {
		attempt = p.Promotion.Attempt
	}
	hold := &changeset.Hold{Attempt: attempt, Waiting: first, On: changeset.HeldOn(pass.sets, env, first, id, w.now())}
	if len(untested) > 5 {
		untested = append(untested[:5:5], fmt.Sprintf("and %d more", len(untested)-5))
	}
	hold.Reason = fmt.Sprintf("promotion held: %s was deployed since at commit %.12s, later than this change's commit %.12s, and that tree also changes %s, "+
		"deployed in %s first, which has not been through it: built at %.12s the promotion could deploy that in %s untested, "+
		"built at %.12s it would undo %.12s. Nothing of this change is deployed in %s yet; it is tried again once a change goes through %s or %s is deployed again",
		env, tree, own, strings.Join(untested, ", "), strings.Join(first, ", "), tree, env, own, tree, env, strings.Join(first, ", "), env)
	return hold, nil
}

// heldChange says why the change of a commit into env, which it enters without a promotion (a
// hotfix of env, or the first environment of its path when that is not the order's first), is
// held rather than built at tree (its commit, or a later one env was built from: newest): nil
// when it can be built there. That tree also holds the earlier changes on their way through the
// promotion order, not through env yet (held, soaking, or stopped before it): built there, the
// change would deploy, in the components it deploys (its roots and their dependents at tree),
// what those changes' files change there, in env, before they went through the environments
// before env, and under this change's name alone. A file of such a change holds when, as tree
// has it, it changes a component the change deploys and has not been through every environment
// before env (passed: a change of it succeeded there, soak over, at a tree having it as tree
// has it) — the rule heldPromotion applies to a later tree. A change that concerns only
// components those files do not reach is built.
//
// A hold names the environments it waits for and their state then (changeset.HeldOn), and the
// change as its next try receives it: the change is tried again, as change set id's next try,
// once they moved.
func (w *Worker) heldChange(ctx context.Context, env, tree string, res *model.Result, p message.ChangeDetected, change, id string) (*changeset.Hold, error) {
	order := res.Repo.Settings.Promotion
	if i := slices.IndexFunc(order, func(s model.PromotionStep) bool { return s.Env == env }); i <= 0 || len(res.Diagnostics.Errors()) > 0 {
		return nil, nil // outside the order, or its first: no environment comes before it (or invalid: rejected)
	}
	pass := &passed{w: w, tree: tree}
	if err := pass.load(ctx); err != nil {
		return nil, err
	}
	// The changes on their way to env: a change set of theirs promotes into env, later, and
	// none of theirs succeeded in env. Oldest first, each once.
	through := map[string]bool{}
	for _, cs := range pass.sets {
		if cs.Env == env && cs.Succeeded() {
			through[cs.CorrelationID] = true
		}
	}
	type onTheWay struct {
		change, commit string
		files          []string
	}
	var ways []onTheWay
	seen := map[string]bool{change: true}
	for _, cs := range slices.Backward(pass.sets) {
		pr := cs.Promotion
		if pr == nil || pr.Commit == nil || pr.Commit.SHA == "" || seen[cs.CorrelationID] || through[cs.CorrelationID] ||
			(pr.Next != env && !slices.Contains(pr.Then, env)) {
			continue
		}
		seen[cs.CorrelationID] = true
		ways = append(ways, onTheWay{change: cs.CorrelationID, commit: pr.Commit.SHA, files: pr.Files})
	}
	if len(ways) == 0 {
		return nil, nil
	}
	deployed, err := w.promotionDeploys(ctx, res, p, env)
	if err != nil {
		return nil, err
	}
	var untested, first []string
	for _, way := range ways {
		if way.commit != tree {
			in, err := w.Commits.IsAncestor(ctx, way.commit, tree)
			if err != nil {
				return nil, pipeline.Transient(fmt.Errorf("resolve: is %s an ancestor of %s: %w", way.commit, tree, err))
			}
			if !in {
				continue // committed after tree, or on no branch of it: tree does not hold it
			}
		}
		for _, f := range way.files {
			concerned, err := w.concerned(ctx, tree, []string{f}, nil)
			if err != nil {
				return nil, err
			}
			path := order.Path(concerned)
			i := slices.Index(path, env)
			if i <= 0 {
				continue // env's own, or another environment's
			}
			reached, err := w.reaches(ctx, res, env, f, deployed)
			if err != nil {
				return nil, err
			}
			if len(reached) == 0 {
				continue // changes nothing this change deploys
			}
			if ok, err := pass.through(ctx, f, path[:i]); err != nil {
				return nil, err
			} else if ok {
				continue // as tree has it, f went through every environment before env already
			}
			if same, err := w.sameConfigs(ctx, env, tree, res, f, reached, func(fv FileVersions) ([]byte, bool, error) {
				return fv.FileBefore(ctx, way.commit, f)
			}); err != nil {
				return nil, err
			} else if same {
				continue // its edit of f changes none of those components' resolved configs in env
			}
			untested = append(untested, fmt.Sprintf("%s of commit %.12s (change %s), which reaches %s", f, way.commit, way.change, strings.Join(reached, ", ")))
			for _, e := range path[:i] {
				if !slices.Contains(first, e) {
					first = append(first, e)
				}
			}
		}
	}
	if len(untested) == 0 {
		return nil, nil
	}
	attempt := max(tryOf(p), 1)
	hold := &changeset.Hold{Attempt: attempt, Waiting: first, On: changeset.HeldOn(pass.sets, env, first, id, w.now()),
		Change: &changeset.HeldChange{Files: p.Files, Removed: p.Removed, Commit: p.Commit, AutoApprove: p.AutoApprove}}
	if len(untested) > 5 {
		untested = append(untested[:5:5], fmt.Sprintf("and %d more", len(untested)-5))
	}
	hold.Reason = fmt.Sprintf("held: built at commit %.12s, this change would also deploy in %s what an earlier change on its way through %s, not through it yet, changes there: %s. "+
		"Deployed now, %s would get that untested, under this change's name alone. Nothing of this change is deployed in %s yet; "+
		"it is tried again once a change goes through %s or %s is deployed again (or reject it: karma reject %s)",
		tree, env, strings.Join(first, ", "), strings.Join(untested, "; "), env, env, strings.Join(first, ", "), env, id)
	return hold, nil
}

// sameConfigs reports whether config file f, as tree has it rather than as other reads it (as
// a change found it: the version before its edit, or at its commit), leaves the resolved config,
// in env at tree (built as res), of every component of reached as it is: env built at tree with
// f as other has it resolves each of them to the same config (its hash) — the edit is of a field
// of a base layer that env overrides, say. Only a config file of the repository (iac/…) can be
// told so, and only when the repository reads versions of files (FileVersions); a file other
// does not have, a module, a build that fails tell nothing (false: the file counts).
func (w *Worker) sameConfigs(ctx context.Context, env, tree string, res *model.Result, f string, reached []string,
	other func(FileVersions) ([]byte, bool, error)) (bool, error) {
	fv, ok := w.Commits.(FileVersions)
	if !ok || !strings.HasPrefix(f, "iac/") || !strings.HasSuffix(f, ".json") {
		return false, nil
	}
	was, found, err := other(fv)
	if err != nil {
		return false, pipeline.Transient(fmt.Errorf("resolve: another version of %s: %w", f, err))
	}
	if !found {
		return false, nil
	}
	without, err := w.Graphs.Build(ctx, env, tree, map[string][]byte{f: was})
	if err != nil || len(without.Diagnostics.Errors()) > 0 {
		return false, nil
	}
	for _, id := range reached {
		a, okA := res.Graph.Index(id)
		b, okB := without.Graph.Index(id)
		if !okA || !okB || res.Graph.Components[a].ConfigHash == "" || res.Graph.Components[a].ConfigHash != without.Graph.Components[b].ConfigHash {
			return false, nil
		}
	}
	return true, nil
}

// tryOf is the try of p's change into its environment: 2 or more after held tries, else 0.
func tryOf(p message.ChangeDetected) int {
	switch {
	case p.Promotion != nil:
		return p.Promotion.Attempt
	case p.Retry != nil:
		return p.Retry.Attempt
	}
	return 0
}

// linkRetry records, on the try of change's promotion into env held before attempt, that
// attempt is its next (RetriedAs): the promotion's status follows it there.
func (w *Worker) linkRetry(ctx context.Context, change, env string, attempt int) error {
	before := changeset.AttemptID(change, env, attempt-1)
	id := changeset.AttemptID(change, env, attempt)
	_, err := w.ChangeSets.Update(ctx, before, func(cs *changeset.ChangeSet) error {
		switch {
		case cs.Held == nil:
			return fmt.Errorf("%w: change set %s was not held: it has no try %d", errNotHeld, before, attempt)
		case cs.Held.RetriedAs != "" && cs.Held.RetriedAs != id:
			return fmt.Errorf("%w: change set %s was tried again as %s already", errNotHeld, before, cs.Held.RetriedAs)
		}
		cs.Held.RetriedAs = id
		return nil
	})
	switch {
	case errors.Is(err, errNotHeld), errors.Is(err, changeset.ErrNotFound):
		return pipeline.Permanent(fmt.Errorf("resolve: promotion of change %s into %s, try %d: %w", change, env, attempt, err))
	case err != nil:
		return pipeline.Transient(err)
	}
	return nil
}

var errNotHeld = errors.New("not a held promotion")

// passed tells which files, as a tree has them, went through environments of the promotion
// order already. It reads the change sets once, and the diff of each tree it asks about once.
type passed struct {
	w     *Worker
	tree  string
	sets  []*changeset.ChangeSet // nil until read
	diffs map[string]map[string]bool
}

// through reports whether file f, as p.tree has it, went through every environment of envs: in
// each, the change set of a change of f (the files of its commit) succeeded and its soak there
// is over, built at a tree having f as p.tree has it. Such a change is through those
// environments, whether or not it was promoted further since; a tree whose diff cannot be read
// proves nothing.
func (p *passed) through(ctx context.Context, f string, envs []string) (bool, error) {
	if err := p.load(ctx); err != nil {
		return false, err
	}
	now := p.w.now()
	for _, env := range envs {
		found := false
		for _, cs := range p.sets {
			if cs.Env != env || !cs.Passed(now) || !slices.Contains(cs.Promotion.Files, f) {
				continue
			}
			if p.same(ctx, cs.Commit, f) {
				found = true
				break
			}
		}
		if !found {
			return false, nil
		}
	}
	return true, nil
}

// load reads the change sets, once.
func (p *passed) load(ctx context.Context) error {
	if p.sets != nil {
		return nil
	}
	all, err := p.w.ChangeSets.List(ctx)
	if err != nil {
		return pipeline.Transient(err)
	}
	p.sets, p.diffs = all, map[string]map[string]bool{}
	if p.sets == nil {
		p.sets = []*changeset.ChangeSet{}
	}
	return nil
}

// same reports whether commit has f as p.tree has it.
func (p *passed) same(ctx context.Context, commit, f string) bool {
	if commit == p.tree {
		return true
	}
	changed, ok := p.diffs[commit]
	if !ok {
		diff, err := p.w.Commits.Diff(ctx, commit, p.tree)
		if err == nil {
			changed = map[string]bool{}
			for _, c := range diff {
				changed[strings.TrimPrefix(c.Path, "./")] = true
			}
		}
		p.diffs[commit] = changed // nil: unreadable, proves nothing
	}
	return changed != nil && !changed[f]
}

// promotionDeploys is what promotion p deploys in env built as res: its roots and everything
// downstream of them (the change set's potential set); nil when that cannot be told.
func (w *Worker) promotionDeploys(ctx context.Context, res *model.Result, p message.ChangeDetected, env string) (map[int32]bool, error) {
	roots, _, _, err := w.roots(ctx, res, p, env)
	if err != nil {
		return nil, err
	}
	imp, err := res.Graph.Downstream(roots, graph.ImpactOptions{})
	if err != nil {
		return nil, nil // unknown (the build rejects it): every component counts
	}
	out := map[int32]bool{}
	for _, a := range imp.Affected {
		out[a.Index] = true
	}
	return out, nil
}

// reaches lists the components deployed (of env, built as res; nil: every one) that file f,
// changed, changes: those of them a commit changing f alone would deploy, by id, sorted.
func (w *Worker) reaches(ctx context.Context, res *model.Result, env, f string, deployed map[int32]bool) ([]string, error) {
	roots, _, _, err := w.roots(ctx, res, message.ChangeDetected{Source: message.SourceGit, Files: []string{f}}, env)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range roots {
		if deployed == nil || deployed[r] {
			out = append(out, res.Graph.Components[r].ID)
		}
	}
	slices.Sort(out)
	return out, nil
}
