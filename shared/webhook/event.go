package webhook

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Providers, as they appear in Push.Provider, DeliveryKey and Secrets lookups.
const (
	GitHub  = "github"
	GitLab  = "gitlab"
	Gitea   = "gitea"
	Forgejo = "forgejo"
)

// Event is what Parse returns on success: a Push, a Ping or an Ignored.
type Event interface{ webhookEvent() }

// Push is a verified push of a branch or a tag.
type Push struct {
	Provider   string // github, gitlab, gitea or forgejo
	DeliveryID string // the provider's delivery id ("" when it sent none)
	Ref        string // e.g. refs/heads/main
	Branch     string // "main" for refs/heads/main, else ""
	Tag        string // "v1" for refs/tags/v1, else ""
	// Before and After are the ref's SHAs before and after the push (all zeros: none).
	Before, After string
	// Created: the ref did not exist (Before all zeros). Deleted: the ref no longer exists
	// (After all zeros; no commits). Forced: a force push (GitHub only; false elsewhere).
	Created, Deleted, Forced bool
	Repo                     RepoInfo
	Pusher                   string // login (GitHub, Gitea, Forgejo) or username (GitLab)
	Commits                  []Commit
	// Truncated: Commits or their file lists may be incomplete (GitLab total_commits_count or
	// Gitea total_commits > len(Commits), GitHub's 2048-commit cap reached, or a commit without
	// any file list). The caller must then diff Before..After in the repository.
	Truncated bool
}

// RepoInfo names the pushed repository.
type RepoInfo struct {
	FullName string // owner/name (GitLab: path_with_namespace)
	CloneURL string // HTTPS clone URL
	HTMLURL  string // web page
}

// Commit is one pushed commit, as the provider describes it.
type Commit struct {
	ID        string
	Message   string
	Author    string // "Name <email>", or "Name" when the email is missing or [REDACTED]
	Timestamp time.Time
	Added     []string
	Modified  []string
	Removed   []string
}

// Ping is GitHub's (or a compatible server's) hook test.
type Ping struct {
	Provider, DeliveryID string
	Zen                  string
	HookID               int64
}

// Ignored is a verified delivery of an event kind Karma does not act on (pull requests, issues,
// Gitea's separate create/delete events, ...). The handler should still reply 2xx.
type Ignored struct {
	Provider, DeliveryID string
	Kind                 string // the provider's event name, e.g. "issues", "Merge Request Hook"
	Reason               string
}

func (Push) webhookEvent()    {}
func (Ping) webhookEvent()    {}
func (Ignored) webhookEvent() {}

// DeliveryKey is the dedup key of a delivery: "<provider>:<delivery id>", or "" when the
// sender gave no id (or ev is nil or unknown). Redeliveries of the same event share the key.
func DeliveryKey(ev Event) string {
	var provider, id string
	switch e := ev.(type) {
	case Push:
		provider, id = e.Provider, e.DeliveryID
	case *Push:
		if e != nil {
			provider, id = e.Provider, e.DeliveryID
		}
	case Ping:
		provider, id = e.Provider, e.DeliveryID
	case *Ping:
		if e != nil {
			provider, id = e.Provider, e.DeliveryID
		}
	case Ignored:
		provider, id = e.Provider, e.DeliveryID
	case *Ignored:
		if e != nil {
			provider, id = e.Provider, e.DeliveryID
		}
	}
	if provider == "" || id == "" {
		return ""
	}
	return provider + ":" + id
}

// Error is a refused delivery; Status is the HTTP status to reply with (400, 401, 413, 415).
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("webhook: %d %s: %s", e.Status, http.StatusText(e.Status), e.Reason)
}

func errorf(status int, format string, a ...any) *Error {
	return &Error{Status: status, Reason: fmt.Sprintf(format, a...)}
}

// Secrets gives the shared secret configured for a source: a provider and a repository full
// name (which may be "" when the payload names none). ok is false when none is configured.
type Secrets interface {
	Secret(provider, repo string) (secret []byte, ok bool)
}

// StaticSecrets is a Secrets from configuration. Keys are "<provider>:<owner/repo>" (repository
// compared case-insensitively, as GitHub and GitLab do) or "<provider>:*" for every repository
// of that provider. An exact key wins over a case-insensitive one, which wins over the wildcard.
// Empty values count as not configured.
type StaticSecrets map[string]string

// Secret implements Secrets.
func (s StaticSecrets) Secret(provider, repo string) ([]byte, bool) {
	if repo != "" {
		key := provider + ":" + repo
		if v := s[key]; v != "" {
			return []byte(v), true
		}
		for k, v := range s {
			if v != "" && strings.EqualFold(k, key) {
				return []byte(v), true
			}
		}
	}
	if v := s[provider+":*"]; v != "" {
		return []byte(v), true
	}
	return nil, false
}
