package configrepo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/gitrepo"
)

// A proposed change keeps Git the source of intent: it becomes a commit of the config
// repository (author: the requester; message: the change id), and that commit is what is
// deployed and named in the lineage. Where Karma may not write the repository, the proposal is
// refused with the reason, so Git and Parameter Store never diverge.

// Write modes: how a proposal reaches the repository.
const (
	// WriteCheckout commits on the checked-out branch of the local clone (the CLI).
	WriteCheckout = "checkout"
	// WriteBranch pushes the commit to the deploy branch (fast-forward only).
	WriteBranch = "branch"
	// WriteChangeBranch pushes the commit to a branch of its own, karma/change/<id>.
	WriteChangeBranch = "change-branch"
	// WriteNone: Karma may not write the repository; proposals are refused.
	WriteNone = "none"
)

// ErrReadOnly refuses a proposal where Karma may not write the repository.
var ErrReadOnly = errors.New("configrepo: Karma may not write the config repository")

// ErrConflict refuses a proposal whose files changed in the repository since it was made.
var ErrConflict = errors.New("configrepo: the file changed in the repository meanwhile")

// Proposal is a change to commit.
type Proposal struct {
	ID        string            // the change request id, named in the commit message
	Base      string            // the commit the proposal was validated against
	Files     map[string][]byte // path (relative to the config repository) -> new content
	Requester gitrepo.Signature // the commit's author
	Summary   string            // first line of the message after the id, e.g. "vpc/core in prod"
}

// Writer commits proposals.
type Writer struct {
	Repo      *gitrepo.Repo
	Mode      string            // Write*
	Committer gitrepo.Signature // default: the requester
	Now       func() time.Time
}

// BranchOf is the branch the commit of proposal id lands on.
func (w *Writer) BranchOf(id string) string {
	if w.Mode == WriteChangeBranch {
		return "karma/change/" + id
	}
	return w.Repo.Branch()
}

// Message is the commit message of a proposal.
func (p Proposal) Message() string {
	return fmt.Sprintf("karma change %s: %s\n\nRequested by %s <%s> through Karma.\n\nKarma-Change: %s\n",
		p.ID, p.Summary, p.Requester.Name, p.Requester.Email, p.ID)
}

// Commit writes the proposal as a commit and returns its sha. In WriteBranch mode a deploy branch
// that moved since Base is fetched and the commit made again on its new head — unless one of the
// proposal's files changed meanwhile (ErrConflict): nobody's commit is ever overwritten.
func (w *Writer) Commit(ctx context.Context, p Proposal) (string, error) {
	committer := w.Committer
	if committer.Name == "" {
		committer = p.Requester
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	switch w.Mode {
	case WriteCheckout:
		if err := w.unchangedSince(ctx, p, w.Repo.Head); err != nil {
			return "", err
		}
		return w.Repo.CommitCheckout(ctx, p.Files, p.Requester, committer, p.Message(), now())
	case WriteChangeBranch:
		sha, err := w.Repo.CommitFiles(ctx, p.Base, p.Files, p.Requester, committer, p.Message(), now())
		if err != nil {
			return "", err
		}
		return sha, w.Repo.Push(ctx, sha, "karma/change/"+p.ID)
	case WriteBranch:
		branch := w.Repo.Branch()
		base := p.Base
		for attempt := 0; ; attempt++ {
			sha, err := w.Repo.CommitFiles(ctx, base, p.Files, p.Requester, committer, p.Message(), now())
			if err != nil {
				return "", err
			}
			err = w.Repo.Push(ctx, sha, branch)
			if !errors.Is(err, gitrepo.ErrBranchMoved) || attempt == 2 {
				return sha, err
			}
			head, err := w.Repo.Head(ctx)
			if err != nil {
				return "", err
			}
			if err := w.sameFiles(ctx, p, p.Base, head); err != nil {
				return "", err
			}
			base = head
		}
	case WriteNone, "":
		return "", fmt.Errorf("%w (%s): commit the change to Git yourself; the push deploys it", ErrReadOnly, w.Repo)
	}
	return "", fmt.Errorf("configrepo: write mode %q: want %s, %s, %s or %s", w.Mode, WriteCheckout, WriteBranch, WriteChangeBranch, WriteNone)
}

// unchangedSince refuses when the branch head is no longer the proposal's base.
func (w *Writer) unchangedSince(ctx context.Context, p Proposal, head func(context.Context) (string, error)) error {
	h, err := head(ctx)
	if err != nil {
		return err
	}
	if h != p.Base {
		return w.sameFiles(ctx, p, p.Base, h)
	}
	return nil
}

// sameFiles refuses when one of the proposal's files differs between two commits.
func (w *Writer) sameFiles(ctx context.Context, p Proposal, a, b string) error {
	var changed []string
	for path := range p.Files {
		x, errA := w.Repo.ReadFileAt(ctx, a, path)
		y, errB := w.Repo.ReadFileAt(ctx, b, path)
		if (errA == nil) != (errB == nil) || !bytes.Equal(x, y) {
			changed = append(changed, path)
		}
	}
	if len(changed) > 0 {
		sort.Strings(changed)
		return fmt.Errorf("%w: %s changed between %.12s and %.12s: propose the change again on the new version", ErrConflict, strings.Join(changed, ", "), a, b)
	}
	return nil
}
