package resolve

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/pipeline"
)

// Fetcher is an optional interface of Commits: it makes sure a commit is in the local
// repository, fetching it from the remote if need be.
type Fetcher interface {
	Fetch(ctx context.Context, sha string) error
}

// BranchChecker is an optional interface of Commits: whether a commit is on a branch now (""
// = the deploy branch). With it, a pushed commit a force push has since removed from its branch
// is refused (onBranch), though the repository still holds it.
type BranchChecker interface {
	OnBranch(ctx context.Context, sha, branch string) (bool, error)
}

// prepared is what Prepare found for one change.detected, which Handle uses instead of reading
// or building it again.
type prepared struct {
	head string // the deploy branch's head, for a change that names no commit
	// branchChecked: Prepare asked whether the pushed commit is on its branch, and branchErr
	// is onBranch's answer.
	branchChecked bool
	branchErr     error
	// env's graph at commit with the request's overrides, when Prepare could tell which
	// environment and commit Handle will build (nil otherwise, or when the build failed: Handle
	// builds again and reports it).
	env, commit string
	res         *model.Result
}

// Prepare does, before Handle and outside the state file's transaction (pipeline.Stage.Prepare),
// the work of a change.detected that needs no state: it fetches the change's commit (and, for a
// truncated push, the commit before it) or, for a change that names no commit, reads the deploy
// branch's head, which Handle then builds from (so that a handling tried again builds from the
// same head); for a change of one environment that Handle will build at that commit (a change
// request, a Parameter Store change), it builds the environment's graph with the request's
// configs. Nothing is written.
func (w *Worker) Prepare(ctx context.Context, in message.Envelope) (any, error) {
	if in.Type != message.TypeChangeDetected {
		return nil, nil
	}
	var p message.ChangeDetected
	if err := message.Decode(in, &p); err != nil {
		return nil, err
	}
	pr := &prepared{}
	if p.Commit == nil {
		head, err := w.Commits.Head(ctx)
		if err != nil {
			return nil, fmt.Errorf("resolve: the deploy branch's head: %w", err)
		}
		pr.head = head
		pr.commit = head
	} else if f, ok := w.Commits.(Fetcher); ok {
		shas := []string{p.Commit.SHA}
		if p.Truncated && fullSHA.MatchString(p.Commit.Before) && strings.Trim(p.Commit.Before, "0") != "" {
			shas = append(shas, p.Commit.Before)
		}
		for _, sha := range shas {
			if err := f.Fetch(ctx, sha); err != nil {
				return nil, fmt.Errorf("resolve: fetching commit %s: %w", sha, err)
			}
		}
		pr.commit = p.Commit.SHA
	}
	if p.Commit != nil && p.Source == message.SourceGit {
		// read from the remote here, outside the transaction Handle may run in
		pr.branchChecked, pr.branchErr = true, w.checkBranch(ctx, p)
	}
	// A push is built at the newest commit of its environment, which only the change sets tell;
	// a promotion's environments come from its plan: Handle builds those itself.
	if in.Env != "" && p.Source != message.SourceGit && p.Promotion == nil && pr.commit != "" {
		if res, err := w.Graphs.Build(ctx, in.Env, pr.commit, overridesFor(p, in.Env)); err == nil {
			pr.env, pr.res = in.Env, res
		}
	}
	return pr, nil
}

// preparedFor is what Prepare found for the message being handled, nil when nothing.
func preparedFor(ctx context.Context) *prepared {
	pr, _ := pipeline.Prepared(ctx).(*prepared)
	return pr
}

// overridesFor are the files a change request replaces in env's tree (none for other changes).
func overridesFor(p message.ChangeDetected, env string) map[string][]byte {
	overrides := map[string][]byte{}
	if p.Request != nil {
		for ref, cfg := range p.Request.Configs {
			overrides["iac/"+env+"/"+ref+"/config.json"] = []byte(cfg)
		}
	}
	return overrides
}

// fullSHA is a full commit id (a push's before may be the all-zero id of a new branch).
var fullSHA = regexp.MustCompile(`^[0-9a-f]{40}$`)

// onBranch refuses a pushed commit (source git: a push, `karma ingest commit`, a promotion of
// one) that is no longer on the branch it was pushed to (Commit.Branch; "" = the deploy branch):
// a force push removed it, or it never was there. The repository may still hold it (fetched
// before the force push, or by its id), and deploying it would bring back a tree its branch
// discarded; the error is permanent (dead-lettered, naming the commit and the branch). Prepare's
// answer is used when it asked.
func (w *Worker) onBranch(ctx context.Context, p message.ChangeDetected) error {
	if p.Commit == nil || p.Source != message.SourceGit {
		return nil
	}
	if pr := preparedFor(ctx); pr != nil && pr.branchChecked {
		return pr.branchErr
	}
	return w.checkBranch(ctx, p)
}

func (w *Worker) checkBranch(ctx context.Context, p message.ChangeDetected) error {
	bc, ok := w.Commits.(BranchChecker)
	if !ok {
		return nil
	}
	on, err := bc.OnBranch(ctx, p.Commit.SHA, p.Commit.Branch)
	if err != nil {
		return fmt.Errorf("resolve: is commit %s on branch %s: %w", p.Commit.SHA, branchName(p.Commit.Branch), err)
	}
	if !on {
		return pipeline.Permanent(fmt.Errorf("resolve: commit %s is not on branch %s (a force push removed it, or it was never pushed there): nothing is deployed from it",
			p.Commit.SHA, branchName(p.Commit.Branch)))
	}
	return nil
}

func branchName(b string) string {
	if b == "" {
		return "(the deploy branch)"
	}
	return b
}
