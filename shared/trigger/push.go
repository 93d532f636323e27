package trigger

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
)

// FileChange is one file a push changed, relative to the config repository.
type FileChange struct {
	Path    string
	Removed bool
}

// Push is a commit pushed to a deploy branch (a verified push webhook), or a commit of the
// local clone handed over by `karma ingest commit`, with the files it changed.
type Push struct {
	SHA, Author, Message, Branch, Repo string
	// Files are the push's net changes, relative to the config repository.
	Files []FileChange
	// Truncated: Files may be incomplete (a push payload's caps); resolve diffs Before..SHA in
	// the repository instead.
	Truncated   bool
	Before      string
	AutoApprove bool
	// Provider (github, gitlab, gitea, forgejo) and Delivery (its delivery id) say where the push
	// came from; both "" for the CLI.
	Provider, Delivery string
	// OccurredAt is when it was received (zero: now).
	OccurredAt time.Time
	// Pusher is who pushed (the webhook's pusher; "" for the CLI) and Authors the authors of
	// every commit of the push as the webhook listed them — for the CLI, of every commit it
	// brings that was never handed over (gitrepo.Repo.AuthorsSince): none of them may approve
	// the change in a protected environment (separation of duties).
	Pusher  string
	Authors []string
}

// ErrNothingDeployable is GitPushed's answer to a push that changes no file Karma deploys from
// (files outside iac/, account_environments/ and the modules folder): nothing to queue, and the
// webhook answers "ignored".
var ErrNothingDeployable = errors.New("the push changes nothing Karma deploys")

var providers = map[string]bool{"": true, "github": true, "gitlab": true, "gitea": true, "forgejo": true}

// GitPushed validates a push and makes its git.pushed trigger, carrying the deployable files
// only (model.DeployableChanges with modulesDir, the modules folder inside the repository), whose
// change.detected will have id changeID ("" = a fresh one). A push changing nothing deployable
// is ErrNothingDeployable; a truncated push is always queued: its files are known only once
// resolve has diffed it.
func GitPushed(p Push, modulesDir, changeID string) (message.Envelope, error) {
	switch {
	case !shaRe.MatchString(p.SHA):
		return message.Envelope{}, invalid("push: commit sha %q: want the full 40 (or 64) hex digits", p.SHA)
	case strings.TrimSpace(p.Author) == "":
		return message.Envelope{}, invalid("push of %s: no author", p.SHA)
	case p.Truncated && p.Before != "" && !shaRe.MatchString(p.Before):
		return message.Envelope{}, invalid("push of %s: before %q: want the full 40 (or 64) hex digits", p.SHA, p.Before)
	case !providers[p.Provider]:
		return message.Envelope{}, invalid("push of %s: provider %q: want github, gitlab, gitea or forgejo", p.SHA, p.Provider)
	}
	changed := make([]model.ChangedFile, len(p.Files))
	for i, f := range p.Files {
		changed[i] = model.ChangedFile{Path: f.Path, Removed: f.Removed}
	}
	files, refs := model.DeployableChanges(changed, modulesDir)
	if len(files) == 0 && !p.Truncated {
		return message.Envelope{}, ErrNothingDeployable
	}
	gp := message.GitPushed{Files: files, Truncated: p.Truncated, AutoApprove: p.AutoApprove, Provider: p.Provider, Delivery: p.Delivery,
		Commit: message.Commit{SHA: p.SHA, Author: p.Author, Message: firstLine(p.Message), Branch: p.Branch, Repo: p.Repo}}
	for _, r := range refs {
		gp.Removed = append(gp.Removed, message.ComponentRef{Type: r.Type, Nickname: r.Nickname})
	}
	gp.Commit.Pusher = strings.TrimSpace(p.Pusher)
	for _, a := range p.Authors {
		if a = strings.TrimSpace(a); a != "" && !slices.Contains(gp.Commit.Authors, a) {
			gp.Commit.Authors = append(gp.Commit.Authors, a)
		}
	}
	slices.Sort(gp.Commit.Authors)
	if p.Truncated && strings.Trim(p.Before, "0") != "" {
		gp.Commit.Before = p.Before // all zeros: a new branch, nothing to diff from
	}
	return newTrigger(message.TypeGitPushed, "", message.Actor{Kind: "git", Name: p.Author}, message.GitPushedKey(p.SHA), gp, changeID, p.OccurredAt)
}

// CommitKey is the idempotency key of a commit's change.detected ("git:<sha>"): every delivery of
// the commit, and the change request that became it, is one change.
func CommitKey(sha string) string { return "git:" + sha }

// RecordKey is where the change a commit started is recorded (pipeline.Records): the webhook,
// `karma ingest commit` and `karma propose-change` record it, and answer with it.
func RecordKey(sha string) string { return "change|" + CommitKey(sha) }
